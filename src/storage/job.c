/*
 * Storage jobs: blocking storage work run on the libuv thread pool, with
 * lines for the task log sent back to the loop thread as the work goes on.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "qm/storage.h"

struct qm_job {
    uv_work_t work;
    uv_async_t async;
    struct qm_task *task;
    qm_job_work_fn work_fn;
    qm_job_done_fn done_fn;
    void *opaque;
    pthread_mutex_t mutex;
    struct strvec lines;        /* written by the worker, drained on the loop */
    int rc;
    struct qm_error err;
    int last_percent;           /* of the last progress line logged */
};

static void flush_lines(struct qm_job *job)
{
    struct strvec lines;

    pthread_mutex_lock(&job->mutex);
    lines = job->lines;
    memset(&job->lines, 0, sizeof(job->lines));
    pthread_mutex_unlock(&job->mutex);
    for (size_t i = 0; i < lines.n; i++) {
        if (job->task)
            qm_task_log(job->task, "%s", lines.v[i]);
    }
    sv_free(&lines);
}

static void async_cb(uv_async_t *handle)
{
    flush_lines(handle->data);
}

static void work_cb(uv_work_t *req)
{
    struct qm_job *job = req->data;

    qm_error_clear(&job->err);
    job->rc = job->work_fn(job, job->opaque, &job->err);
}

static void async_close_cb(uv_handle_t *handle)
{
    struct qm_job *job = handle->data;

    pthread_mutex_destroy(&job->mutex);
    sv_free(&job->lines);
    free(job);
}

static void after_work_cb(uv_work_t *req, int status)
{
    struct qm_job *job = req->data;

    flush_lines(job);
    if (status == UV_ECANCELED && job->rc == 0)
        job->rc = qm_fail(&job->err, 500, "storage job cancelled");
    job->done_fn(job, job->opaque, job->rc, job->rc < 0 ? &job->err : NULL);
    uv_close((uv_handle_t *)&job->async, async_close_cb);
}

int qm_job_start(uv_loop_t *loop, struct qm_task *task, qm_job_work_fn work,
                 qm_job_done_fn done, void *opaque, struct qm_error *err)
{
    struct qm_job *job = qm_calloc(1, sizeof(*job));

    job->task = task;
    job->work_fn = work;
    job->done_fn = done;
    job->opaque = opaque;
    job->last_percent = -1;
    pthread_mutex_init(&job->mutex, NULL);
    uv_async_init(loop, &job->async, async_cb);
    job->async.data = job;
    job->work.data = job;
    int r = uv_queue_work(loop, &job->work, work_cb, after_work_cb);
    if (r < 0) {
        uv_close((uv_handle_t *)&job->async, async_close_cb);
        return qm_fail(err, 500, "unable to queue storage work: %s", uv_strerror(r));
    }
    return 0;
}

void qm_job_log(struct qm_job *job, const char *fmt, ...)
{
    struct strbuf sb = {0};
    va_list ap;

    va_start(ap, fmt);
    sb_vaddf(&sb, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&job->mutex);
    sv_push(&job->lines, sb.buf ? sb.buf : "");
    pthread_mutex_unlock(&job->mutex);
    sb_free(&sb);
    uv_async_send(&job->async);
}

void qm_job_progress(const char *line, void *opaque)
{
    struct qm_job *job = opaque;
    const char *open = strchr(line, '(');
    double done;

    /* qemu-img convert -p prints "    (12.50/100%)". */
    if (!open || sscanf(open, "(%lf/100%%)", &done) != 1) {
        while (*line == ' ')
            line++;
        if (*line)
            qm_job_log(job, "%s", line);
        return;
    }
    int percent = (int)done;
    if (percent == 100 || percent >= job->last_percent + 10) {
        job->last_percent = percent;
        qm_job_log(job, "transferred %d%%", percent);
    }
}

/* VMs with disk work under way; touched on the loop thread only. */
struct busy_vm {
    int vmid;
    char *operation;   /* the UPID or name of the running disk work */
    struct busy_vm *next;
};
static struct busy_vm *busy_vms;

const char *qm_storage_vm_busy(int vmid)
{
    for (struct busy_vm *b = busy_vms; b; b = b->next)
        if (b->vmid == vmid)
            return b->operation;
    return NULL;
}

int qm_storage_vm_claim(int vmid, const char *what, struct qm_error *err)
{
    const char *current = qm_storage_vm_busy(vmid);

    if (current)
        return qm_fail(err, 409, "VM %d is busy with another disk operation (%s); try again "
                                 "when it has finished", vmid, current);
    struct busy_vm *b = qm_calloc(1, sizeof(*b));
    b->vmid = vmid;
    b->operation = qm_strdup(what);
    b->next = busy_vms;
    busy_vms = b;
    return 0;
}

void qm_storage_vm_release(int vmid)
{
    for (struct busy_vm **p = &busy_vms; *p; p = &(*p)->next) {
        if ((*p)->vmid == vmid) {
            struct busy_vm *b = *p;
            *p = b->next;
            free(b->operation);
            free(b);
            return;
        }
    }
}

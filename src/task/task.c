/* Task UPIDs, logs and the task table. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qm/task.h"

/* Finished tasks kept in memory for the status and list calls. */
#define KEEP_FINISHED 500

/* The start time of this process in clock ticks since boot (field 22 of /proc/self/stat). */
static unsigned long long read_process_start(void)
{
    char *data = NULL;
    unsigned long long start = 0;

    if (qm_read_file("/proc/self/stat", &data, NULL, NULL) < 0)
        return 0;
    /* The command name may contain spaces: count fields after its closing ')'. */
    char *p = strrchr(data, ')');
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p)
        start = strtoull(p + 1, NULL, 10);
    free(data);
    return start;
}

/*
 * Loads the finished tasks of earlier runs from the index file (one line per
 * task: "UPID ENDTIME STATUS"), keeping the newest KEEP_FINISHED and
 * rewriting the file with just those so that it does not grow forever.
 */
static void load_index(struct qm_tasks *tasks)
{
    char *path = qm_sprintf("%s/index", tasks->dir);
    char *data = NULL;
    struct strvec lines = {0};

    if (qm_read_file(path, &data, NULL, NULL) < 0) {
        free(path);
        return;
    }
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        sv_push(&lines, line);
    free(data);

    size_t first = lines.n > KEEP_FINISHED ? lines.n - KEEP_FINISHED : 0;
    struct strbuf kept = {0};
    for (size_t i = first; i < lines.n; i++) {
        char *line = lines.v[i];
        char *sp1 = strchr(line, ' ');
        char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        struct qm_upid u;
        if (!sp2)
            continue;
        *sp1 = '\0';
        if (qm_upid_parse(line, &u) < 0)
            continue;
        struct qm_task *task = qm_calloc(1, sizeof(*task));
        task->upid = qm_strdup(line);
        task->type = qm_strdup(u.type);
        task->id = qm_strdup(u.id);
        task->user = qm_strdup(u.user);
        task->pid = u.pid;
        task->pstart = u.pstart;
        task->starttime = u.starttime;
        task->endtime = (time_t)strtoll(sp1 + 1, NULL, 16);
        task->exitstatus = qm_strdup(sp2 + 1);
        task->log_path = qm_task_log_path(tasks->dir, task->upid);
        task->next = tasks->head;
        tasks->head = task;
        tasks->count++;
        sb_addf(&kept, "%s %s\n", line, sp1 + 1);
    }
    if (first > 0)
        qm_write_file_atomic(path, kept.buf ? kept.buf : "", kept.len, 0644, NULL);
    sb_free(&kept);
    sv_free(&lines);
    free(path);
}

int qm_tasks_init(struct qm_tasks *tasks, const char *dir, const char *node, struct qm_error *err)
{
    memset(tasks, 0, sizeof(*tasks));
    tasks->dir = qm_strdup(dir);
    tasks->node = qm_strdup(node);
    tasks->pid = (unsigned)getpid();
    tasks->pstart = read_process_start();
    for (int i = 0; i < 16; i++) {
        char *sub = qm_sprintf("%s/%X", dir, i);
        int r = qm_mkdir_p(sub, 0755, err);
        free(sub);
        if (r < 0)
            return -1;
    }
    load_index(tasks);
    return 0;
}

static void task_free(struct qm_task *task)
{
    if (task->log)
        fclose(task->log);
    free(task->upid);
    free(task->type);
    free(task->id);
    free(task->user);
    free(task->exitstatus);
    free(task->log_path);
    free(task);
}

void qm_tasks_free(struct qm_tasks *tasks)
{
    struct qm_task *next;

    for (struct qm_task *t = tasks->head; t; t = next) {
        next = t->next;
        task_free(t);
    }
    free(tasks->dir);
    free(tasks->node);
    memset(tasks, 0, sizeof(*tasks));
}

char *qm_task_log_path(const char *dir, const char *upid)
{
    struct qm_upid u;

    if (qm_upid_parse(upid, &u) < 0)
        return NULL;
    return qm_sprintf("%s/%X/%s", dir, (unsigned)(u.starttime & 0xf), upid);
}

struct qm_task *qm_task_find(struct qm_tasks *tasks, const char *upid)
{
    for (struct qm_task *t = tasks->head; t; t = t->next) {
        if (strcmp(t->upid, upid) == 0)
            return t;
    }
    return NULL;
}

/* Drops the oldest finished tasks beyond KEEP_FINISHED. */
static void prune_finished(struct qm_tasks *tasks)
{
    size_t finished = 0;
    struct qm_task **link = &tasks->head;

    while (*link) {
        struct qm_task *t = *link;
        if (t->exitstatus && ++finished > KEEP_FINISHED) {
            *link = t->next;
            task_free(t);
            tasks->count--;
            continue;
        }
        link = &t->next;
    }
}

struct qm_task *qm_task_start(struct qm_tasks *tasks, const char *type, const char *id,
                              const char *user, struct qm_error *err)
{
    struct qm_task *task = qm_calloc(1, sizeof(*task));
    time_t now = time(NULL);

    task->type = qm_strdup(type);
    task->id = qm_strdup(id ? id : "");
    task->user = qm_strdup(user);
    task->pid = tasks->pid;
    task->pstart = tasks->pstart;
    /*
     * Every task of the daemon shares its pid, so two tasks of the same type
     * and id started within one second would get the same UPID. Such a task
     * counts its pstart field up instead, which keeps the start time true.
     */
    task->starttime = now;
    for (;;) {
        task->upid = qm_sprintf("UPID:%s:%08X:%08llX:%08X:%s:%s:%s:", tasks->node, task->pid,
                                task->pstart, (unsigned)now, type, task->id, user);
        if (!qm_task_find(tasks, task->upid))
            break;
        free(task->upid);
        task->pstart++;
    }
    task->log_path = qm_task_log_path(tasks->dir, task->upid);
    task->log = fopen(task->log_path, "we");
    if (!task->log) {
        qm_fail(err, 500, "unable to create task log '%s': %s", task->log_path, strerror(errno));
        task_free(task);
        return NULL;
    }
    setvbuf(task->log, NULL, _IOLBF, 0);
    task->next = tasks->head;
    tasks->head = task;
    tasks->count++;
    prune_finished(tasks);
    return task;
}

static void task_vlog(struct qm_task *task, const char *prefix, const char *fmt, va_list ap)
{
    if (!task->log)
        return;
    fputs(prefix, task->log);
    vfprintf(task->log, fmt, ap);
    fputc('\n', task->log);
}

void qm_task_log(struct qm_task *task, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    task_vlog(task, "", fmt, ap);
    va_end(ap);
}

void qm_task_warn(struct qm_task *task, const char *fmt, ...)
{
    va_list ap;

    task->warnings++;
    va_start(ap, fmt);
    task_vlog(task, "WARN: ", fmt, ap);
    va_end(ap);
}

static void append_index(struct qm_task *task, const char *dir)
{
    char *path = qm_sprintf("%s/index", dir);
    FILE *f = fopen(path, "ae");

    if (f) {
        fprintf(f, "%s %08X %s\n", task->upid, (unsigned)task->endtime, task->exitstatus);
        fclose(f);
    }
    free(path);
}

void qm_task_finish(struct qm_task *task, const char *error)
{
    if (task->exitstatus)
        return;
    task->endtime = time(NULL);
    if (error) {
        /* The status is one line: the API returns it as exitstatus. */
        char *flat = qm_strdup(error);
        for (char *p = flat; *p; p++) {
            if (*p == '\n')
                *p = ' ';
        }
        task->exitstatus = flat;
        qm_task_log(task, "TASK ERROR: %s", flat);
    } else if (task->warnings) {
        task->exitstatus = qm_sprintf("WARNINGS: %d", task->warnings);
        qm_task_log(task, "TASK %s", task->exitstatus);
    } else {
        task->exitstatus = qm_strdup("OK");
        qm_task_log(task, "TASK OK");
    }
    if (task->log) {
        fclose(task->log);
        task->log = NULL;
    }
    char *dir = qm_strdup(task->log_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        append_index(task, dir);
    }
    free(dir);
}

static bool take_field(const char **p, char *out, size_t size)
{
    const char *end = strchr(*p, ':');

    if (!end || (size_t)(end - *p) >= size)
        return false;
    memcpy(out, *p, (size_t)(end - *p));
    out[end - *p] = '\0';
    *p = end + 1;
    return true;
}

static bool valid_field(const char *s, bool allow_empty)
{
    if (!*s)
        return allow_empty;
    for (; *s; s++) {
        if (*s == '/' || *s == ' ' || *s == '\t' || *s == '\n')
            return false;
    }
    return true;
}

static bool parse_hex(const char *s, size_t min_len, size_t max_len, unsigned long long *out)
{
    size_t n = strlen(s);
    char *end;

    if (n < min_len || n > max_len)
        return false;
    *out = strtoull(s, &end, 16);
    return *end == '\0';
}

int qm_upid_parse(const char *upid, struct qm_upid *out)
{
    char pid[16], pstart[16], start[16];
    unsigned long long v;
    const char *p = upid;

    memset(out, 0, sizeof(*out));
    if (!qm_str_starts(p, "UPID:"))
        return -1;
    p += 5;
    if (!take_field(&p, out->node, sizeof(out->node)) || !take_field(&p, pid, sizeof(pid)) ||
        !take_field(&p, pstart, sizeof(pstart)) || !take_field(&p, start, sizeof(start)) ||
        !take_field(&p, out->type, sizeof(out->type)) || !take_field(&p, out->id, sizeof(out->id)) ||
        !take_field(&p, out->user, sizeof(out->user)) || *p != '\0')
        return -1;
    if (!valid_field(out->node, false) || !valid_field(out->type, false) ||
        !valid_field(out->id, true) || !valid_field(out->user, false))
        return -1;
    if (!parse_hex(pid, 8, 8, &v))
        return -1;
    out->pid = (unsigned)v;
    if (!parse_hex(pstart, 8, 9, &out->pstart))
        return -1;
    if (!parse_hex(start, 8, 8, &v))
        return -1;
    out->starttime = (time_t)v;
    return 0;
}

int qm_task_read_exitstatus(const char *dir, const char *upid, char **exitstatus,
                            time_t *endtime, struct qm_error *err)
{
    char *path = qm_task_log_path(dir, upid);
    char *data = NULL;
    size_t len = 0;
    struct stat st;

    if (!path)
        return qm_fail(err, 400, "invalid UPID '%s'", upid);
    if (qm_read_file(path, &data, &len, err) < 0) {
        free(path);
        return -1;
    }
    *endtime = stat(path, &st) == 0 ? st.st_mtime : 0;
    free(path);
    while (len > 0 && data[len - 1] == '\n')
        data[--len] = '\0';
    char *last = strrchr(data, '\n');
    last = last ? last + 1 : data;
    if (qm_str_starts(last, "TASK OK"))
        *exitstatus = qm_strdup("OK");
    else if (qm_str_starts(last, "TASK ERROR: "))
        *exitstatus = qm_strdup(last + 12);
    else if (qm_str_starts(last, "TASK WARNINGS: "))
        *exitstatus = qm_strdup(last + 5);
    else
        *exitstatus = qm_strdup("unexpected status");
    free(data);
    return 0;
}

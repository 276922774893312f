/*
 * What a VM needs around QEMU: files and helper processes set up before the
 * start and removed after the stop. The file work and the swtpm tools run
 * as a storage job on the thread pool.
 */
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qm/qemu.h"
#include "qm/storage.h"
#include "qm/vm.h"

struct prepare {
    struct qm_vm *vm;
    qm_vm_prepared_fn done;
    struct qm_storage_cfg storage;
    char *vars_template;    /* copy to vars_path: OVMF without efidisk0 */
    char *vars_path;
    char *tpm_state;        /* the tpmstate0 file, or NULL */
    char *tpm_socket;
    char *tpm_pidfile;
};

static char *run_file(const struct qm_vm *vm, const char *suffix)
{
    return qm_sprintf("%s/%d.%s", vm->node->paths.run_dir, vm->vmid, suffix);
}

static int copy_file(const char *from, const char *to, struct qm_error *err)
{
    char *data = NULL;
    size_t len = 0;

    if (qm_read_file(from, &data, &len, err) < 0)
        return -1;
    int r = qm_write_file_atomic(to, data, len, 0600, err);
    free(data);
    return r;
}

static int prepare_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct prepare *p = opaque;

    if (p->vars_template) {
        char *dir = qm_strdup(p->vars_path);
        *strrchr(dir, '/') = '\0';
        int r = qm_mkdir_p(dir, 0755, err);
        free(dir);
        if (r < 0 || copy_file(p->vars_template, p->vars_path, err) < 0)
            return -1;
        qm_job_log(job, "copied the EFI vars template '%s' to '%s'", p->vars_template,
                   p->vars_path);
    }
    if (p->tpm_state) {
        char *uri = qm_sprintf("file://%s", p->tpm_state);
        /* --not-overwrite keeps a state that swtpm_setup finds already written. */
        const char *setup[] = {"swtpm_setup", "--tpm2", "--tpmstate", uri, "--createek",
                               "--create-ek-cert", "--create-platform-cert", "--lock-nvram",
                               "--not-overwrite", NULL};
        struct strbuf out = {0};
        int r = qm_command_run(setup, &out, NULL, NULL, err);
        sb_free(&out);
        char *state = qm_sprintf("backend-uri=%s,mode=0600", uri);
        char *ctrl = qm_sprintf("type=unixio,path=%s,mode=0600", p->tpm_socket);
        char *pid = qm_sprintf("file=%s", p->tpm_pidfile);
        const char *swtpm[] = {"swtpm", "socket", "--tpmstate", state, "--ctrl", ctrl, "--pid",
                               pid, "--terminate", "--daemon", "--flags", "startup-clear",
                               "--tpm2", NULL};
        if (r == 0)
            r = qm_command_run(swtpm, NULL, NULL, NULL, err);
        free(state);
        free(ctrl);
        free(pid);
        free(uri);
        if (r < 0)
            return -1;
        qm_job_log(job, "started swtpm on '%s'", p->tpm_socket);
    }
    return 0;
}

static void prepare_free(struct prepare *p)
{
    qm_storage_cfg_free(&p->storage);
    free(p->vars_template);
    free(p->vars_path);
    free(p->tpm_state);
    free(p->tpm_socket);
    free(p->tpm_pidfile);
    free(p);
}

static void reap_when_gone(struct qm_vm *vm, pid_t pid);

static void prepare_done(struct qm_job *job, void *opaque, int rc, const struct qm_error *err)
{
    struct prepare *p = opaque;
    struct qm_vm *vm = p->vm;
    qm_vm_prepared_fn done = p->done;
    char *data = NULL;
    long long pid = 0;

    if (rc == 0 && p->tpm_pidfile && qm_read_file(p->tpm_pidfile, &data, NULL, NULL) == 0) {
        if (qm_parse_int(qm_str_trim(data), &pid) && pid > 0)
            reap_when_gone(vm, (pid_t)pid);
        free(data);
    }

    prepare_free(p);
    done(vm, rc < 0 ? err->msg : NULL);
}

/* Finds the OVMF vars template for a VM without efidisk0: bios vars= or OVMF_VARS.fd. */
static int vars_template(struct prepare *p, const struct qm_propstr *bios, struct qm_error *err)
{
    const char *vars = qm_propstr_get(bios, "vars");

    if (vars)
        return qm_storage_resolve_file(&p->storage, vars, "bios vars", &p->vars_template, err);
    /* The command line generator uses the 2 MiB firmware when there is no efidisk0. */
    return qm_storage_resolve_file(&p->storage, "/usr/share/OVMF/OVMF_VARS.fd",
                                   "OVMF vars template", &p->vars_template, err);
}

static int plan(struct prepare *p, const struct qm_conf *conf, struct qm_error *err)
{
    const char *bios = qm_conf_get(&conf->main, "bios");
    const char *tpm = qm_conf_get(&conf->main, "tpmstate0");
    struct qm_propstr ps = {0};
    int r = 0;

    if (bios && qm_propstr_parse("bios", bios, &ps, err) < 0)
        return -1;
    const char *type = bios ? qm_propstr_get(&ps, "type") : NULL;
    if (type && strcmp(type, "ovmf") == 0) {
        const char *code = qm_propstr_get(&ps, "code");
        char *code_path = NULL;
        if (code && (r = qm_storage_resolve_file(&p->storage, code, "bios code", &code_path,
                                                 err)) < 0)
            goto out;
        free(code_path);
        if (!qm_conf_get(&conf->main, "efidisk0")) {
            if ((r = vars_template(p, &ps, err)) < 0)
                goto out;
            p->vars_path = qm_qemu_efivars_temp_path(&p->vm->node->paths, p->vm->vmid);
        }
    }
    if (tpm) {
        struct qm_propstr tps = {0};
        if ((r = qm_propstr_parse("tpmstate0", tpm, &tps, err)) == 0) {
            const char *file = qm_propstr_get(&tps, "file");
            r = file ? qm_storage_resolve_file(&p->storage, file, "tpmstate0", &p->tpm_state,
                                               err)
                     : qm_fail(err, 400, "tpmstate0 has no volume");
        }
        qm_propstr_free(&tps);
        p->tpm_socket = run_file(p->vm, "swtpm");
        p->tpm_pidfile = run_file(p->vm, "swtpm.pid");
    }
out:
    qm_propstr_free(&ps);
    return r;
}

void qm_vm_prepare_start(struct qm_vm *vm, const struct qm_conf *conf, struct qm_task *task,
                         qm_vm_prepared_fn done)
{
    struct qm_error err;
    const char *busy = qm_storage_vm_busy(vm->vmid);

    if (busy) {
        char *msg = qm_sprintf("VM %d has disk work under way (%s); start it when that task "
                               "has finished", vm->vmid, busy);
        done(vm, msg);
        free(msg);
        return;
    }
    struct prepare *p = qm_calloc(1, sizeof(*p));
    p->vm = vm;
    p->done = done;
    if (qm_storage_cfg_load(vm->node->paths.storage_cfg, &p->storage, &err) < 0 ||
        plan(p, conf, &err) < 0) {
        prepare_free(p);
        done(vm, err.msg);
        return;
    }
    if (!p->vars_template && !p->tpm_state) {
        prepare_free(p);
        done(vm, NULL);
        return;
    }
    if (qm_job_start(vm->node->loop, task, prepare_work, prepare_done, p, &err) < 0) {
        prepare_free(p);
        done(vm, err.msg);
    }
}

/* Whether pid is still an swtpm process, so that a reused pid is never signalled. */
static bool is_swtpm(pid_t pid)
{
    char path[64];
    char *comm = NULL;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    if (qm_read_file(path, &comm, NULL, NULL) < 0)
        return false;
    bool match = strcmp(qm_str_trim(comm), "swtpm") == 0;
    free(comm);
    return match;
}

static void reaper_close_cb(uv_handle_t *handle)
{
    close((int)(intptr_t)handle->data);
    free(handle);
}

static void reaper_cb(uv_poll_t *poll, int status, int events)
{
    int fd = (int)(intptr_t)poll->data;
    siginfo_t info;

    memset(&info, 0, sizeof(info));
    (void)waitid(P_PIDFD, (id_t)fd, &info, WEXITED | WNOHANG);
    uv_close((uv_handle_t *)poll, reaper_close_cb);
}

/*
 * Reaps swtpm once it exits: it daemonizes, and qmd as child subreaper
 * inherits it, so it would stay a zombie otherwise. Watched from its start
 * on, because with --terminate it exits on its own when QEMU goes.
 */
static void reap_when_gone(struct qm_vm *vm, pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd < 0)
        return;
    uv_poll_t *poll = qm_malloc(sizeof(*poll));
    uv_poll_init(vm->node->loop, poll, fd);
    poll->data = (void *)(intptr_t)fd;
    uv_poll_start(poll, UV_READABLE, reaper_cb);
}

void qm_vm_cleanup_stopped(struct qm_vm *vm)
{
    char *pidfile = run_file(vm, "swtpm.pid");
    char *socket = run_file(vm, "swtpm");
    char *data = NULL;
    long long pid = 0;

    /* swtpm runs with --terminate and exits when QEMU goes; this covers a QEMU that never connected. */
    if (qm_read_file(pidfile, &data, NULL, NULL) == 0) {
        if (qm_parse_int(qm_str_trim(data), &pid) && pid > 0 && is_swtpm((pid_t)pid) &&
            kill((pid_t)pid, SIGTERM) == 0)
            qm_log(QM_LOG_INFO, vm->vmid, "stopped swtpm (process %lld)", pid);
        free(data);
    }
    unlink(pidfile);
    unlink(socket);
    free(pidfile);
    free(socket);
}

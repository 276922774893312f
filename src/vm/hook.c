/*
 * Hook scripts: the program that "hookscript: STORAGE:snippets/NAME" names
 * runs as "SCRIPT VMID PHASE" at pre-start, post-start, pre-stop and
 * post-stop, as in Proxmox VE. Its output goes to the task log.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qm/storage.h"
#include "qm/vm.h"

struct hook_run {
    uv_process_t process;
    struct qm_vm *vm;
    struct qm_task *task;       /* NULL: the output goes to qmd's log */
    char *phase;
    char *output_path;
    qm_hook_done_fn done;
    void *opaque;
};

int qm_vm_hookscript(const struct qm_vm *vm, const struct qm_conf *conf, char **path,
                     struct qm_error *err)
{
    struct qm_storage_cfg storage = {0};
    const char *spec = qm_conf_get(&conf->main, "hookscript");

    *path = NULL;
    if (!spec)
        return 0;
    if (qm_storage_cfg_load(vm->node->paths.storage_cfg, &storage, err) < 0)
        return -1;
    char *resolved = qm_storage_file_path(&storage, spec);
    qm_storage_cfg_free(&storage);
    if (!resolved)
        return qm_fail(err, 400, "invalid hookscript '%s'", spec);
    if (access(resolved, X_OK) < 0) {
        qm_fail(err, 400, "script '%s' does not exist or is not executable", resolved);
        free(resolved);
        return -1;
    }
    *path = resolved;
    return 0;
}

static void hook_free(uv_handle_t *handle)
{
    struct hook_run *run = handle->data;

    free(run->phase);
    free(run->output_path);
    free(run);
}

static void hook_exit_cb(uv_process_t *process, int64_t exit_status, int term_signal)
{
    struct hook_run *run = process->data;
    char *output = NULL;
    char *error = NULL;

    if (qm_read_file(run->output_path, &output, NULL, NULL) == 0) {
        char *save = NULL;
        for (char *line = strtok_r(output, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (run->task)
                qm_task_log(run->task, "%s", line);
            else
                qm_log(QM_LOG_INFO, run->vm->vmid, "hookscript %s: %s", run->phase, line);
        }
        free(output);
    }
    unlink(run->output_path);
    if (exit_status != 0 || term_signal != 0)
        error = qm_sprintf("hookscript error for %d on %s: script exited with %s %lld",
                           run->vm->vmid, run->phase, term_signal ? "signal" : "status",
                           term_signal ? (long long)term_signal : (long long)exit_status);
    if (run->done)
        run->done(run->vm, run->opaque, error);
    else if (error)
        qm_log(QM_LOG_WARNING, run->vm->vmid, "%s", error);
    free(error);
    uv_close((uv_handle_t *)process, hook_free);
}

void qm_vm_run_hook(struct qm_vm *vm, const char *script, const char *phase,
                    struct qm_task *task, qm_hook_done_fn done, void *opaque)
{
    struct hook_run *run = qm_calloc(1, sizeof(*run));
    char vmid[16];

    snprintf(vmid, sizeof(vmid), "%d", vm->vmid);
    run->vm = vm;
    run->task = task;
    run->phase = qm_strdup(phase);
    run->output_path = qm_sprintf("%s/%d.hook-%s", vm->node->paths.run_dir, vm->vmid, phase);
    run->done = done;
    run->opaque = opaque;
    if (task)
        qm_task_log(task, "running hookscript %s for %s", script, phase);

    int fd = open(run->output_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *args[] = {(char *)script, vmid, (char *)phase, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = fd >= 0 ? UV_INHERIT_FD : UV_IGNORE, .data.fd = fd},
        {.flags = fd >= 0 ? UV_INHERIT_FD : UV_IGNORE, .data.fd = fd},
    };
    uv_process_options_t options = {
        .exit_cb = hook_exit_cb,
        .file = script,
        .args = args,
        .stdio = stdio,
        .stdio_count = 3,
    };
    run->process.data = run;
    int r = uv_spawn(vm->node->loop, &run->process, &options);
    if (fd >= 0)
        close(fd);
    if (r < 0) {
        char *error = qm_sprintf("hookscript error for %d on %s: unable to run '%s': %s",
                                 vm->vmid, phase, script, uv_strerror(r));
        unlink(run->output_path);
        if (done)
            done(vm, opaque, error);
        else
            qm_log(QM_LOG_WARNING, vm->vmid, "%s", error);
        free(error);
        uv_close((uv_handle_t *)&run->process, hook_free);
    }
}

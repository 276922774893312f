/*
 * The state machine of one VM. Operations (start, stop, shutdown, ...) queue
 * behind each other and each runs as a task; QMP events and the QEMU process
 * going away drive the state between operations.
 */
#ifndef QM_VM_H
#define QM_VM_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <uv.h>

#include "qm/config.h"
#include "qm/node.h"
#include "qm/qmp.h"
#include "qm/task.h"

enum qm_vm_state {
    QM_VM_STOPPED,
    QM_VM_STARTING,
    QM_VM_RUNNING,
    QM_VM_STOPPING,
};

enum qm_vm_op_kind {
    QM_OP_START,
    QM_OP_STOP,
    QM_OP_SHUTDOWN,
    QM_OP_REBOOT,
    QM_OP_RESET,
    QM_OP_SUSPEND,
    QM_OP_RESUME,
};

/* Options of one operation; zero means the default. */
struct qm_vm_op_params {
    int timeout;            /* seconds; -1 for the operation's default */
    bool force_stop;        /* shutdown: stop hard after the timeout */
    bool skiplock;
    bool paused;            /* start: leave the guest paused */
    bool todisk;            /* suspend: hibernate (not supported yet) */
};

struct qm_vm_op;
struct qm_vm_listener;

struct qm_vm {
    struct qm_node *node;
    int vmid;
    enum qm_vm_state state;
    char qmpstatus[32];     /* running, paused, prelaunch, suspended, shutdown, ... */
    pid_t pid;
    int pidfd;              /* readable once the QEMU process has exited */
    uv_poll_t *pidfd_poll;
    uv_timer_t *pid_timer;  /* polls the process where pidfds are not available */
    struct qmp *qmp;
    time_t start_time;
    char *running_qemu;     /* the version QEMU announced */
    bool guest_shutdown;    /* QEMU reported SHUTDOWN: send quit once it is idle */
    struct qm_vm_op *ops;   /* the running operation first, then the queued ones */
    uv_timer_t timer;       /* deadlines of the running operation */
    uv_timer_t *heartbeat;  /* periodic query-status, and QMP reconnects */
    bool qmp_missing_logged;
    struct qm_vm_listener *listeners;   /* see qm_vm_watch_events() */
    char *hookscript;       /* the hook script of the running QEMU, or NULL */
    unsigned long long cpu_ticks;   /* QEMU's user and system time at cpu_sampled */
    uint64_t cpu_sampled;           /* uv_now() of that sample, 0 before the first */
    double cpu_usage;               /* the share of the VM's CPUs used since the sample before */
    struct qm_vm *next;
};

struct qm_vm *qm_vm_new(struct qm_node *node, int vmid);
/* Stops watching the VM (QEMU keeps running) and frees it once libuv is done. */
void qm_vm_release(struct qm_vm *vm);

/*
 * Queues an operation as a task started by user; returns the task (whose
 * UPID the API returns) or NULL with err filled in.
 */
struct qm_task *qm_vm_queue(struct qm_vm *vm, enum qm_vm_op_kind kind,
                            const struct qm_vm_op_params *params, const char *user,
                            struct qm_error *err);

/*
 * Looks for a QEMU left running by an earlier qmd (pidfile, live process
 * with this VM's id, QMP socket) and reconnects to it without touching the
 * guest.
 */
void qm_vm_recover(struct qm_vm *vm);

/*
 * Sets up what QEMU needs before it starts (firmware variable files, volumes,
 * helper processes such as swtpm) and calls done with NULL or an error. It
 * runs on the loop and may finish later.
 */
typedef void (*qm_vm_prepared_fn)(struct qm_vm *vm, const char *error);
void qm_vm_prepare_start(struct qm_vm *vm, const struct qm_conf *conf, struct qm_task *task,
                         qm_vm_prepared_fn done);
/* Undoes qm_vm_prepare_start() once QEMU is gone (stops helper processes). */
void qm_vm_cleanup_stopped(struct qm_vm *vm);

/*
 * Sends a QMP command to the running VM; cb gets the reply. Fails with 409
 * when the VM has no QMP connection.
 */
int qm_vm_qmp_command(struct qm_vm *vm, const char *command, const char *args_json,
                      void (*cb)(struct qmp *qmp, const struct qmp_reply *reply, void *opaque),
                      void *opaque, struct qm_error *err);

/*
 * Generates the QEMU command line of a configuration with the node's
 * storage.cfg and custom CPU models (etc/pve/virtual-guest/cpu-models.conf).
 */
int qm_vm_build_cmdline(const struct qm_paths *paths, const struct qm_host *host,
                        const struct qm_qemu_caps *caps, const struct qm_conf *conf,
                        struct strvec *argv, struct strvec *warnings, struct qm_error *err);

/*
 * Calls fn for every QMP event of the VM (DEVICE_DELETED, BLOCK_JOB_COMPLETED,
 * ...) until qm_vm_unwatch_events() with the same fn and opaque. fn may
 * unwatch itself. Listeners are dropped when QEMU exits.
 */
typedef void (*qm_vm_event_fn)(struct qm_vm *vm, const struct qmp_event *event, void *opaque);
void qm_vm_watch_events(struct qm_vm *vm, qm_vm_event_fn fn, void *opaque);
void qm_vm_unwatch_events(struct qm_vm *vm, qm_vm_event_fn fn, void *opaque);

/* Resolves the VM's hookscript property to an executable path (NULL without one). */
int qm_vm_hookscript(const struct qm_vm *vm, const struct qm_conf *conf, char **path,
                     struct qm_error *err);
/*
 * Runs "script VMID phase" and calls done with NULL or the error (non-zero
 * exit); done may be NULL, and the output goes to the task, or with task
 * NULL to qmd's log.
 */
typedef void (*qm_hook_done_fn)(struct qm_vm *vm, void *opaque, const char *error);
void qm_vm_run_hook(struct qm_vm *vm, const char *script, const char *phase,
                    struct qm_task *task, qm_hook_done_fn done, void *opaque);

const char *qm_vm_status(const struct qm_vm *vm);   /* "running" or "stopped" */
bool qm_vm_is_running(const struct qm_vm *vm);
/* Resident memory of the QEMU process in bytes, or 0. */
unsigned long long qm_vm_rss(const struct qm_vm *vm);
/*
 * The share of its cpus CPUs (0 to 1) that QEMU used between the last two
 * samples; a new sample is taken when the last is at least a second old.
 */
double qm_vm_cpu_usage(struct qm_vm *vm, long long cpus);

#endif

/*
 * The per-VM state machine: queued operations, the QEMU process and its QMP
 * connection.
 *
 * QEMU runs daemonized with a pidfile, so libuv does not track it. Its exit
 * is seen through a pidfd, which becomes readable when the process is gone,
 * whatever killed it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qm/agent.h"
#include "qm/config.h"
#include "qm/json.h"
#include "qm/qemu.h"
#include "qm/qmp.h"
#include "qm/storage.h"
#include "qm/vm.h"

/* Seconds QEMU gets to quit after a QMP "quit" before SIGTERM, and after SIGTERM before SIGKILL. */
#define QUIT_GRACE_S 10
#define TERM_GRACE_S 5
#define DEFAULT_SHUTDOWN_TIMEOUT_S 180
/*
 * Interval of the heartbeat that sends query-status to a running QEMU, which
 * keeps qmpstatus true even if an event was missed, and reconnects a lost
 * QMP connection.
 */
#define HEARTBEAT_MS 10000
#define HEARTBEAT_TIMEOUT_MS 5000

/* How long the guest agent may take to reply to a ping before shutdown uses ACPI instead. */
#define AGENT_PING_TIMEOUT_MS 3000

enum op_phase {
    PHASE_QUEUED,
    PHASE_PREPARING,    /* start: volumes, firmware files and helpers being set up */
    PHASE_SPAWNING,     /* start: waiting for the daemonizing QEMU parent to exit */
    PHASE_CONNECTING,   /* start: waiting for the QMP handshake */
    PHASE_POWERDOWN,    /* shutdown: waiting for the guest to power off */
    PHASE_QUIT,         /* stop: "quit" sent, waiting for the process to exit */
    PHASE_TERM,         /* stop: SIGTERM sent */
    PHASE_KILL,         /* stop: SIGKILL sent */
    PHASE_COMMAND,      /* waiting for a QMP reply */
    PHASE_HOOK,         /* waiting for the hook script */
};

struct qm_vm_op {
    struct qm_vm *vm;
    enum qm_vm_op_kind kind;
    struct qm_vm_op_params params;
    struct qm_task *task;
    enum op_phase phase;
    bool then_start;            /* reboot: start again once stopped */
    bool pre_stop_done;         /* the pre-stop hook has run */
    char *failure;              /* the error to end with once QEMU is gone, or NULL */
    struct qm_conf *conf;       /* start: the configuration being started */
    unsigned timeout_ms;        /* start: the deadline of the QMP handshake */
    unsigned long serial;       /* identifies the operation, so that a late hook callback can check it still runs */
    uv_process_t process;       /* start: the QEMU parent process */
    struct qm_vm_op *next;
};

static void run_next_op(struct qm_vm *vm);
static void heartbeat_cb(uv_timer_t *timer);
static void send_powerdown(struct qm_vm_op *op);
static void begin_stop(struct qm_vm_op *op, const char *why);
static void qmp_ready_cb(struct qmp *qmp, const struct qm_error *err, void *opaque);
static void qmp_event_cb(struct qmp *qmp, const struct qmp_event *event, void *opaque);
static void qmp_closed_cb(struct qmp *qmp, void *opaque);
static void drop_removed_listeners(struct qm_vm *vm, bool all);

static const char *op_names[] = {
    [QM_OP_START] = "start",     [QM_OP_STOP] = "stop",     [QM_OP_SHUTDOWN] = "shutdown",
    [QM_OP_REBOOT] = "reboot",   [QM_OP_RESET] = "reset",   [QM_OP_SUSPEND] = "suspend",
    [QM_OP_RESUME] = "resume",
};

static const char *task_types[] = {
    [QM_OP_START] = "qmstart",   [QM_OP_STOP] = "qmstop",     [QM_OP_SHUTDOWN] = "qmshutdown",
    [QM_OP_REBOOT] = "qmreboot", [QM_OP_RESET] = "qmreset",   [QM_OP_SUSPEND] = "qmsuspend",
    [QM_OP_RESUME] = "qmresume",
};

static const char *state_names[] = {
    [QM_VM_STOPPED] = "stopped",
    [QM_VM_STARTING] = "starting",
    [QM_VM_RUNNING] = "running",
    [QM_VM_STOPPING] = "stopping",
};

static void set_state(struct qm_vm *vm, enum qm_vm_state state, const char *why)
{
    if (vm->state == state)
        return;
    qm_log(QM_LOG_INFO, vm->vmid, "%s -> %s (%s)", state_names[vm->state], state_names[state],
           why);
    vm->state = state;
}

static char *run_path(const struct qm_vm *vm, const char *suffix)
{
    return qm_sprintf("%s/%d.%s", vm->node->paths.run_dir, vm->vmid, suffix);
}

struct qm_vm *qm_vm_new(struct qm_node *node, int vmid)
{
    struct qm_vm *vm = qm_calloc(1, sizeof(*vm));

    vm->node = node;
    vm->vmid = vmid;
    vm->pidfd = -1;
    vm->state = QM_VM_STOPPED;
    snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "stopped");
    uv_timer_init(node->loop, &vm->timer);
    vm->timer.data = vm;
    vm->heartbeat = qm_malloc(sizeof(*vm->heartbeat));
    uv_timer_init(node->loop, vm->heartbeat);
    vm->heartbeat->data = vm;
    uv_timer_start(vm->heartbeat, heartbeat_cb, HEARTBEAT_MS, HEARTBEAT_MS);
    return vm;
}

const char *qm_vm_status(const struct qm_vm *vm)
{
    return vm->pid > 0 ? "running" : "stopped";
}

bool qm_vm_is_running(const struct qm_vm *vm)
{
    return vm->state != QM_VM_STOPPED;
}

unsigned long long qm_vm_rss(const struct qm_vm *vm)
{
    char path[64];
    char *data = NULL;
    unsigned long long size = 0, resident = 0;

    if (vm->pid <= 0)
        return 0;
    /* statm ("SIZE RESIDENT ..." in pages) costs the kernel far less than status. */
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)vm->pid);
    if (qm_read_file(path, &data, NULL, NULL) < 0)
        return 0;
    if (sscanf(data, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    free(data);
    return resident * (unsigned long long)sysconf(_SC_PAGESIZE);
}

double qm_vm_cpu_usage(struct qm_vm *vm, long long cpus)
{
    char path[64];
    char *data = NULL;
    unsigned long long utime = 0, stime = 0;
    uint64_t now = uv_now(vm->node->loop);

    if (vm->pid <= 0 || cpus <= 0)
        return 0;
    if (vm->cpu_sampled && now - vm->cpu_sampled < 1000)
        return vm->cpu_usage;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)vm->pid);
    if (qm_read_file(path, &data, NULL, NULL) < 0)
        return vm->cpu_usage;
    /* Fields 14 and 15, after the command name in parentheses, which may hold spaces. */
    const char *p = strrchr(data, ')');
    for (int field = 2; p && field < 14; field++)
        p = strchr(p + 1, ' ');
    if (p)
        sscanf(p + 1, "%llu %llu", &utime, &stime);
    free(data);

    unsigned long long ticks = utime + stime;
    if (vm->cpu_sampled && ticks >= vm->cpu_ticks) {
        double seconds = (double)(now - vm->cpu_sampled) / 1000.0;
        double used = (double)(ticks - vm->cpu_ticks) / (double)sysconf(_SC_CLK_TCK);
        vm->cpu_usage = used / seconds / (double)cpus;
    }
    vm->cpu_ticks = ticks;
    vm->cpu_sampled = now;
    return vm->cpu_usage;
}

/*
 * Whether the program of pid is QEMU: named qemu-system-* or kvm, or the
 * absolute path that a qemu_binary_* property of the VM names.
 */
static bool process_is_qemu(const struct qm_vm *vm, pid_t pid)
{
    char link[64], exe[4096];
    struct qm_conf *conf = NULL;
    bool qemu = false;

    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, exe, sizeof(exe) - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    const char *base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    if (qm_str_starts(base, "qemu-system-") || strcmp(base, "kvm") == 0)
        return true;
    if (qm_conf_load(&vm->node->paths, vm->vmid, &conf, NULL) < 0)
        return false;
    static const char *const keys[] = {"qemu_binary_x86_64", "qemu_binary_aarch64"};
    for (size_t i = 0; i < QM_ARRAY_SIZE(keys) && !qemu; i++) {
        const char *value = qm_conf_get(&conf->main, keys[i]);
        if (value && value[0] == '/')
            qemu = strncmp(value, exe, strlen(exe)) == 0 &&
                   (value[strlen(exe)] == '\0' || value[strlen(exe)] == ',');
    }
    qm_conf_free(conf);
    return qemu;
}

/*
 * Whether pid is a QEMU started for this VM: a QEMU program whose command
 * line names this VM's pidfile. (Upstream QEMU has no "-id" option to look
 * for.)
 */
static bool process_is_vm(const struct qm_vm *vm, pid_t pid)
{
    char path[64];
    char *data = NULL;
    size_t len = 0;
    bool found = false;
    char *pidfile = run_path(vm, "pid");

    if (!process_is_qemu(vm, pid)) {
        free(pidfile);
        return false;
    }

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (qm_read_file(path, &data, &len, NULL) == 0) {
        for (size_t i = 0; i < len;) {
            const char *arg = data + i;
            size_t n = strlen(arg);
            if (strcmp(arg, "-pidfile") == 0 && i + n + 1 < len &&
                strcmp(arg + n + 1, pidfile) == 0) {
                found = true;
                break;
            }
            i += n + 1;
        }
        free(data);
    }
    free(pidfile);
    return found;
}

static pid_t read_pidfile(const struct qm_vm *vm)
{
    char *path = run_path(vm, "pid");
    char *data = NULL;
    long long pid = 0;

    if (qm_read_file(path, &data, NULL, NULL) == 0) {
        if (!qm_parse_int(qm_str_trim(data), &pid) || pid <= 0)
            pid = 0;
        free(data);
    }
    free(path);
    return (pid_t)pid;
}

/* Removes what a stopped QEMU leaves behind: pidfile and sockets. */
static void remove_runtime_files(const struct qm_vm *vm)
{
    static const char *suffixes[] = {"pid", "qmp", "qga", "serial0"};

    for (size_t i = 0; i < QM_ARRAY_SIZE(suffixes); i++) {
        char *path = run_path(vm, suffixes[i]);
        unlink(path);
        free(path);
    }
}

static void op_free(struct qm_vm_op *op)
{
    qm_conf_free(op->conf);
    free(op->failure);
    free(op);
}

static void process_close_cb(uv_handle_t *handle)
{
    op_free(handle->data);
}

/* Ends the running operation with error (NULL for success) and starts the next one. */
static void finish_op(struct qm_vm *vm, const char *error)
{
    struct qm_vm_op *op = vm->ops;

    if (!op)
        return;
    uv_timer_stop(&vm->timer);
    vm->ops = op->next;
    if (error)
        qm_log(QM_LOG_ERR, vm->vmid, "task %s failed: %s", op->task->type, error);
    else
        qm_log(QM_LOG_INFO, vm->vmid, "%s finished", op_names[op->kind]);
    qm_task_finish(op->task, error);
    if (op->process.loop) {
        op->process.data = op;
        uv_close((uv_handle_t *)&op->process, process_close_cb);
    } else {
        op_free(op);
    }
    run_next_op(vm);
}

static void close_qmp(struct qm_vm *vm)
{
    if (vm->qmp) {
        qmp_close(vm->qmp);
        vm->qmp = NULL;
    }
}

static void pidfd_close_cb(uv_handle_t *handle)
{
    int fd = (int)(intptr_t)handle->data;

    close(fd);
    free(handle);
}

static void free_pid_timer_cb(uv_handle_t *handle)
{
    free(handle);
}

static void stop_watching_pid(struct qm_vm *vm)
{
    if (vm->pid_timer) {
        uv_close((uv_handle_t *)vm->pid_timer, free_pid_timer_cb);
        vm->pid_timer = NULL;
    }
    if (!vm->pidfd_poll)
        return;
    /* The fd stays open until libuv has let go of the handle. */
    vm->pidfd_poll->data = (void *)(intptr_t)vm->pidfd;
    uv_close((uv_handle_t *)vm->pidfd_poll, pidfd_close_cb);
    vm->pidfd_poll = NULL;
    vm->pidfd = -1;
}

/* The QEMU process is gone: clean up and let the running operation know. */
static void on_process_exit(struct qm_vm *vm)
{
    qm_log(QM_LOG_INFO, vm->vmid, "QEMU process %d exited", (int)vm->pid);
    stop_watching_pid(vm);
    close_qmp(vm);
    remove_runtime_files(vm);
    qm_vm_cleanup_stopped(vm);
    drop_removed_listeners(vm, true);
    if (vm->hookscript) {
        qm_vm_run_hook(vm, vm->hookscript, "post-stop", NULL, NULL, NULL);
        free(vm->hookscript);
        vm->hookscript = NULL;
    }
    vm->pid = 0;
    vm->cpu_sampled = 0;
    vm->cpu_usage = 0;
    vm->start_time = 0;
    vm->guest_shutdown = false;
    free(vm->running_qemu);
    vm->running_qemu = NULL;
    snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "stopped");
    set_state(vm, QM_VM_STOPPED, "QEMU exited");

    struct qm_vm_op *op = vm->ops;
    if (!op)
        return;
    switch (op->phase) {
    case PHASE_HOOK:
        /* pre-stop was running: the VM is down, which is what the stop wanted. */
        if (op->kind == QM_OP_START) {
            finish_op(vm, "start failed: QEMU exited while the post-start hook ran");
            break;
        }
        /* fall through */
    case PHASE_POWERDOWN:
    case PHASE_QUIT:
    case PHASE_TERM:
    case PHASE_KILL:
        if (op->then_start) {
            /* Reboot: the guest is down; start it again within the same task. */
            op->then_start = false;
            op->kind = QM_OP_START;
            op->phase = PHASE_QUEUED;
            uv_timer_stop(&vm->timer);
            run_next_op(vm);
            return;
        }
        finish_op(vm, op->failure);
        break;
    case PHASE_CONNECTING:
        finish_op(vm, op->failure ? op->failure
                                  : "start failed: QEMU exited before its QMP socket answered");
        break;
    case PHASE_COMMAND:
        finish_op(vm, "QEMU exited while the command ran");
        break;
    case PHASE_QUEUED:
    case PHASE_PREPARING:
    case PHASE_SPAWNING:
        break;
    }
}

static void pidfd_cb(uv_poll_t *handle, int status, int events)
{
    struct qm_vm *vm = handle->data;
    siginfo_t info;

    /*
     * qmd is the child subreaper of the QEMUs it started, so it reaps them
     * here. A QEMU found after a restart is not its child: waitid fails
     * with ECHILD, and the process that adopted it reaps it.
     */
    memset(&info, 0, sizeof(info));
    (void)waitid(P_PIDFD, (id_t)vm->pidfd, &info, WEXITED | WNOHANG);
    on_process_exit(vm);
}

/* Whether pid is a process that has not exited (a zombie has). */
static bool process_alive(pid_t pid)
{
    char path[64];
    char *data = NULL;
    bool alive = false;

    /* A child of qmd is reaped here; the process that adopted any other reaps it. */
    (void)waitpid(pid, NULL, WNOHANG);
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (qm_read_file(path, &data, NULL, NULL) == 0) {
        const char *state = strrchr(data, ')');
        alive = state && state[1] == ' ' && state[2] != 'Z' && state[2] != 'X';
        free(data);
    }
    return alive;
}

static void pid_timer_cb(uv_timer_t *timer)
{
    struct qm_vm *vm = timer->data;

    if (!process_alive(vm->pid))
        on_process_exit(vm);
}

/* Watches pid through a pidfd; returns -1 when the process is already gone. */
static int watch_pid(struct qm_vm *vm, pid_t pid)
{
    /* One process at a time: a second watch would leave the first handle firing. */
    stop_watching_pid(vm);
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd < 0 && errno == ENOSYS && process_alive(pid)) {
        /* Kernels before 5.3 (and valgrind) lack pidfd_open: poll five times a second. */
        vm->pid = pid;
        vm->pid_timer = qm_malloc(sizeof(*vm->pid_timer));
        uv_timer_init(vm->node->loop, vm->pid_timer);
        vm->pid_timer->data = vm;
        uv_timer_start(vm->pid_timer, pid_timer_cb, 200, 200);
        return 0;
    }
    if (fd < 0)
        return -1;
    vm->pid = pid;
    vm->pidfd = fd;
    vm->pidfd_poll = qm_malloc(sizeof(*vm->pidfd_poll));
    uv_poll_init(vm->node->loop, vm->pidfd_poll, fd);
    vm->pidfd_poll->data = vm;
    uv_poll_start(vm->pidfd_poll, UV_READABLE, pidfd_cb);
    return 0;
}

static int connect_qmp(struct qm_vm *vm, unsigned timeout_ms, struct qm_error *err)
{
    static const struct qmp_callbacks callbacks = {
        .ready = qmp_ready_cb,
        .event = qmp_event_cb,
        .closed = qmp_closed_cb,
    };
    char *path = run_path(vm, "qmp");
    int r = qmp_connect(vm->node->loop, path, timeout_ms, &callbacks, vm, &vm->qmp, err);

    free(path);
    return r;
}

/* A QMP command sent on behalf of the VM itself, not of an operation. */
static void send_simple(struct qm_vm *vm, const char *command, qmp_reply_cb cb)
{
    struct qm_error err;

    if (vm->qmp && qmp_command(vm->qmp, command, NULL, cb, vm, &err) < 0)
        qm_log(QM_LOG_WARNING, vm->vmid, "unable to send %s: %s", command, err.msg);
}

static void status_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct qm_vm *vm = opaque;
    const char *status;

    if (reply->result != QMP_OK)
        return;
    status = qm_json_get_string(reply->ret, "status");
    if (status && vm->state != QM_VM_STOPPED)
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "%s", status);
}

static void heartbeat_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct qm_vm *vm = opaque;

    if (reply->result == QMP_TIMEOUT)
        qm_log(QM_LOG_WARNING, vm->vmid, "QEMU did not answer query-status within %d ms",
               HEARTBEAT_TIMEOUT_MS);
    status_reply_cb(qmp, reply, opaque);
}

static void heartbeat_cb(uv_timer_t *timer)
{
    struct qm_vm *vm = timer->data;
    struct qm_error err;

    if (vm->state != QM_VM_RUNNING || vm->ops)
        return;
    if (vm->qmp) {
        if (qmp_command_timeout(vm->qmp, "query-status", NULL, HEARTBEAT_TIMEOUT_MS,
                                heartbeat_reply_cb, vm, &err) < 0)
            qm_log(QM_LOG_WARNING, vm->vmid, "unable to send query-status: %s", err.msg);
        return;
    }
    /* A running VM without QMP (QEMU was busy when qmd connected): try again. */
    if (!vm->qmp_missing_logged) {
        qm_log(QM_LOG_INFO, vm->vmid, "reconnecting to QMP");
        vm->qmp_missing_logged = true;
    }
    if (connect_qmp(vm, HEARTBEAT_TIMEOUT_MS, &err) < 0)
        qm_log(QM_LOG_WARNING, vm->vmid, "unable to reconnect to QMP: %s", err.msg);
}

static void ignore_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct qm_vm *vm = opaque;

    if (reply->result != QMP_OK && reply->result != QMP_CLOSED)
        qm_log(QM_LOG_WARNING, vm->vmid, "QMP command failed: %s", reply->error_desc);
}

struct qm_vm_listener {
    qm_vm_event_fn fn;
    void *opaque;
    bool removed;
    struct qm_vm_listener *next;
};

void qm_vm_watch_events(struct qm_vm *vm, qm_vm_event_fn fn, void *opaque)
{
    struct qm_vm_listener *l = qm_calloc(1, sizeof(*l));

    l->fn = fn;
    l->opaque = opaque;
    l->next = vm->listeners;
    vm->listeners = l;
}

void qm_vm_unwatch_events(struct qm_vm *vm, qm_vm_event_fn fn, void *opaque)
{
    /* Only marked here: the list may be walked right now. */
    for (struct qm_vm_listener *l = vm->listeners; l; l = l->next) {
        if (l->fn == fn && l->opaque == opaque)
            l->removed = true;
    }
}

static void drop_removed_listeners(struct qm_vm *vm, bool all)
{
    struct qm_vm_listener **link = &vm->listeners;

    while (*link) {
        struct qm_vm_listener *l = *link;
        if (l->removed || all) {
            *link = l->next;
            free(l);
        } else {
            link = &l->next;
        }
    }
}

static void notify_listeners(struct qm_vm *vm, const struct qmp_event *event)
{
    for (struct qm_vm_listener *l = vm->listeners; l; l = l->next) {
        if (!l->removed)
            l->fn(vm, event, l->opaque);
    }
    drop_removed_listeners(vm, false);
}

static void qmp_event_cb(struct qmp *qmp, const struct qmp_event *event, void *opaque)
{
    struct qm_vm *vm = opaque;
    const char *name = event->name;

    qm_log(QM_LOG_DEBUG, vm->vmid, "QMP event %s", name);
    notify_listeners(vm, event);
    if (strcmp(name, "STOP") == 0) {
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "paused");
        send_simple(vm, "query-status", status_reply_cb);
    } else if (strcmp(name, "RESUME") == 0 || strcmp(name, "WAKEUP") == 0) {
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "running");
    } else if (strcmp(name, "SUSPEND") == 0) {
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "suspended");
    } else if (strcmp(name, "GUEST_PANICKED") == 0) {
        qm_log(QM_LOG_WARNING, vm->vmid, "guest panicked");
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "guest-panicked");
    } else if (strcmp(name, "SHUTDOWN") == 0) {
        /*
         * QEMU runs with -no-shutdown, so it stays alive after the guest
         * powers off. qmd sends "quit" here, which also covers a guest
         * that powered itself off with no operation asking for it.
         */
        bool guest = false;
        qm_json_get_bool(event->data, "guest", &guest);
        qm_log(QM_LOG_INFO, vm->vmid, "guest shut down (%s)", guest ? "by the guest" : "by QEMU");
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "shutdown");
        if (!vm->guest_shutdown)
            send_simple(vm, "quit", ignore_reply_cb);
        vm->guest_shutdown = true;
    }
}

static void qmp_closed_cb(struct qmp *qmp, void *opaque)
{
    struct qm_vm *vm = opaque;

    /* The process exit itself is seen through the pidfd. */
    qm_log(QM_LOG_DEBUG, vm->vmid, "QMP connection closed");
    if (vm->qmp == qmp) {
        qmp_close(qmp);
        vm->qmp = NULL;
    }
}

/* The running operation of vm, if it is the one with this serial and waits for a hook. */
static struct qm_vm_op *hook_op(struct qm_vm *vm, void *serial)
{
    struct qm_vm_op *op = vm->ops;

    return op && op->serial == (unsigned long)serial && op->phase == PHASE_HOOK ? op : NULL;
}

static void post_start_done(struct qm_vm *vm, void *serial, const char *error)
{
    struct qm_vm_op *op = hook_op(vm, serial);

    if (!op)
        return;
    /* As in Proxmox VE, a failing post-start hook leaves the VM running. */
    if (error)
        qm_task_warn(op->task, "%s", error);
    finish_op(vm, NULL);
}

static void start_status_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct qm_vm *vm = opaque;
    struct qm_vm_op *op = vm->ops;

    if (reply->result == QMP_OK) {
        const char *status = qm_json_get_string(reply->ret, "status");
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "%s", status ? status : "running");
    }
    if (op && op->kind == QM_OP_START && op->phase == PHASE_CONNECTING) {
        set_state(vm, QM_VM_RUNNING, "QMP answered");
        if (vm->hookscript) {
            op->phase = PHASE_HOOK;
            qm_vm_run_hook(vm, vm->hookscript, "post-start", op->task, post_start_done,
                           (void *)op->serial);
            return;
        }
        finish_op(vm, NULL);
    }
}

static void qmp_ready_cb(struct qmp *qmp, const struct qm_error *err, void *opaque)
{
    struct qm_vm *vm = opaque;
    struct qm_vm_op *op = vm->ops;
    bool starting = op && op->kind == QM_OP_START && op->phase == PHASE_CONNECTING;

    if (err) {
        /* The heartbeat retries every few seconds: report a lasting failure once. */
        bool retry = !starting && vm->qmp_missing_logged;
        qm_log(retry ? QM_LOG_DEBUG : QM_LOG_ERR, vm->vmid, "QMP connection failed: %s",
               err->msg);
        close_qmp(vm);
        if (starting) {
            char *msg = qm_sprintf("start failed: QMP did not answer: %s", err->msg);
            /* A QEMU whose QMP socket never replies is stopped, so that no half-started VM remains. */
            begin_stop(op, msg);
            free(msg);
        } else if (vm->state == QM_VM_RUNNING && !retry) {
            qm_log(QM_LOG_WARNING, vm->vmid, "running without a QMP connection");
        }
        return;
    }
    const struct qmp_version *version = qmp_get_version(qmp);
    free(vm->running_qemu);
    vm->running_qemu = qm_sprintf("%d.%d.%d", version->major, version->minor, version->micro);
    if (starting) {
        send_simple(vm, "query-status", start_status_cb);
    } else {
        set_state(vm, QM_VM_RUNNING, "reconnected");
        vm->qmp_missing_logged = false;
        send_simple(vm, "query-status", status_reply_cb);
    }
}

static int build_cmdline(struct qm_vm *vm, const struct qm_conf *conf, struct strvec *argv,
                         struct qm_task *task, struct qm_error *err)
{
    struct strvec warnings = {0};
    int r = qm_vm_build_cmdline(&vm->node->paths, &vm->node->host, &vm->node->caps, conf, argv,
                                &warnings, err);

    for (size_t i = 0; i < warnings.n; i++)
        qm_task_warn(task, "%s", warnings.v[i]);
    sv_free(&warnings);
    return r;
}

static unsigned start_timeout_ms(const struct qm_conf *conf, int requested)
{
    long long memory = 512;
    const char *value = qm_conf_get(&conf->main, "memory");

    if (requested >= 0)
        return (unsigned)requested * 1000;
    if (value) {
        /* "memory" may be a property string: "current=2048". */
        const char *digits = strchr(value, '=') ? strchr(value, '=') + 1 : value;
        memory = strtoll(digits, NULL, 10);
    }
    long long seconds = memory / 1024 > 30 ? memory / 1024 : 30;
    return (unsigned)seconds * 1000;
}

static void spawn_exit_cb(uv_process_t *process, int64_t exit_status, int term_signal)
{
    struct qm_vm_op *op = process->data;
    struct qm_vm *vm = op->vm;
    char *log_path = run_path(vm, "log");
    char *output = NULL;
    struct qm_error err;

    /* QEMU's messages before it daemonized (errors about the command line). */
    if (qm_read_file(log_path, &output, NULL, NULL) == 0) {
        qm_str_trim(output);
        char *save = NULL;
        for (char *line = strtok_r(output, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            qm_task_log(op->task, "%s", line);
    }
    unlink(log_path);
    free(log_path);

    if (exit_status != 0 || term_signal != 0) {
        char *msg = qm_sprintf("start failed: QEMU exited with status %lld%s%s",
                               (long long)exit_status, output && *output ? ": " : "",
                               output && *output ? output : "");
        free(output);
        remove_runtime_files(vm);
        qm_vm_cleanup_stopped(vm);
        set_state(vm, QM_VM_STOPPED, "QEMU failed to start");
        finish_op(vm, msg);
        free(msg);
        return;
    }
    free(output);

    pid_t pid = read_pidfile(vm);
    if (pid <= 0 || watch_pid(vm, pid) < 0) {
        set_state(vm, QM_VM_STOPPED, "QEMU gone after start");
        finish_op(vm, "start failed: QEMU exited right after it started");
        return;
    }
    vm->start_time = time(NULL);
    op->phase = PHASE_CONNECTING;
    if (connect_qmp(vm, op->timeout_ms, &err) < 0) {
        char *msg = qm_sprintf("start failed: %s", err.msg);
        begin_stop(op, msg);
        free(msg);
    }
}

/* The volume id of a drive value, or NULL for a CD-ROM, "none" or a path; caller frees. */
static char *drive_volume(const char *key, const char *value)
{
    struct qm_propstr ps = {0};
    char *volid = NULL;

    if (qm_propstr_parse(key, value, &ps, NULL) < 0)
        return NULL;
    const char *file = qm_propstr_get(&ps, "file");
    const char *media = qm_propstr_get(&ps, "media");
    if (file && strchr(file, ':') && file[0] != '/' && !(media && strcmp(media, "cdrom") == 0))
        volid = qm_strdup(file);
    qm_propstr_free(&ps);
    return volid;
}

/*
 * Keeps the volume of a drive that a pending change removes or replaces as
 * unusedN, when this VM owns it ("STORAGE:VMID/...") and no other key names
 * it, so that no disk is lost track of.
 */
static void keep_replaced_volume(struct qm_conf *conf, int vmid, const char *key,
                                 const char *new_value, struct qm_task *task)
{
    const char *old = qm_conf_get(&conf->main, key);
    char prefix[32];

    if (!old || !qm_conf_is_drive_key(key))
        return;
    char *volid = drive_volume(key, old);
    const char *colon = volid ? strchr(volid, ':') : NULL;
    snprintf(prefix, sizeof(prefix), "%d/", vmid);
    char *kept = new_value ? drive_volume(key, new_value) : NULL;
    bool still_named = kept && volid && strcmp(kept, volid) == 0;
    free(kept);
    if (!colon || !qm_str_starts(colon + 1, prefix) || still_named) {
        free(volid);
        return;
    }
    for (size_t i = 0; i < conf->main.n; i++) {
        const struct qm_conf_entry *e = &conf->main.entries[i];
        if (strcmp(e->key, key) == 0)
            continue;
        bool unused = qm_str_starts(e->key, "unused") && strcmp(e->value, volid) == 0;
        char *other = qm_conf_is_drive_key(e->key) ? drive_volume(e->key, e->value) : NULL;
        bool named = other && strcmp(other, volid) == 0;
        free(other);
        if (unused || named) {
            free(volid);
            return;
        }
    }
    for (int n = 0;; n++) {
        char unused_key[32];
        snprintf(unused_key, sizeof(unused_key), "unused%d", n);
        if (!qm_conf_get(&conf->main, unused_key)) {
            qm_conf_set(&conf->main, unused_key, volid);
            qm_task_log(task, "volume %s of %s kept as %s", volid, key, unused_key);
            break;
        }
    }
    free(volid);
}

/*
 * Moves the pending changes of a stopped VM into its configuration, as a
 * start does. Returns whether anything changed.
 */
static bool apply_pending(struct qm_conf *conf, struct qm_task *task)
{
    struct strvec deletes = {0};
    bool changed = false;

    if (!conf->pending)
        return false;
    qm_conf_pending_deletes(conf, &deletes, NULL);
    for (size_t i = 0; i < deletes.n; i++) {
        /* NOTE: a forced deletion keeps the volume as unusedN too instead of freeing it. */
        keep_replaced_volume(conf, conf->vmid, deletes.v[i], NULL, task);
        qm_conf_unset(&conf->main, deletes.v[i]);
        qm_task_log(task, "applying pending deletion of %s", deletes.v[i]);
        changed = true;
    }
    sv_free(&deletes);
    for (size_t i = 0; i < conf->pending->n; i++) {
        const struct qm_conf_entry *e = &conf->pending->entries[i];
        if (strcmp(e->key, "delete") == 0)
            continue;
        keep_replaced_volume(conf, conf->vmid, e->key, e->value, task);
        qm_conf_set(&conf->main, e->key, e->value);
        qm_task_log(task, "applying pending change %s: %s", e->key, e->value);
        changed = true;
    }
    for (size_t i = 0; i < conf->pending->n; i++) {
        free(conf->pending->entries[i].key);
        free(conf->pending->entries[i].value);
    }
    free(conf->pending->entries);
    free(conf->pending->name);
    free(conf->pending);
    conf->pending = NULL;
    return changed;
}

static void spawn_qemu(struct qm_vm_op *op)
{
    struct qm_vm *vm = op->vm;
    struct strvec argv = {0};
    struct qm_error err;

    if (build_cmdline(vm, op->conf, &argv, op->task, &err) < 0) {
        qm_vm_cleanup_stopped(vm);
        set_state(vm, QM_VM_STOPPED, "invalid configuration");
        finish_op(vm, err.msg);
        return;
    }
    if (op->params.paused)
        sv_push(&argv, "-S");
    op->timeout_ms = start_timeout_ms(op->conf, op->params.timeout);

    char *cmdline = qm_qemu_cmdline_string(&argv);
    qm_log(QM_LOG_DEBUG, vm->vmid, "running %s", cmdline);
    free(cmdline);

    /* QEMU's standard error goes to a file until it daemonizes. */
    char *log_path = run_path(vm, "log");
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    free(log_path);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = log_fd >= 0 ? UV_INHERIT_FD : UV_IGNORE, .data.fd = log_fd},
        {.flags = log_fd >= 0 ? UV_INHERIT_FD : UV_IGNORE, .data.fd = log_fd},
    };
    uv_process_options_t options = {
        .exit_cb = spawn_exit_cb,
        .file = argv.v[0],
        .args = argv.v,
        .stdio = stdio,
        .stdio_count = 3,
    };
    op->process.data = op;
    op->phase = PHASE_SPAWNING;
    int r = uv_spawn(vm->node->loop, &op->process, &options);
    if (log_fd >= 0)
        close(log_fd);
    if (r < 0) {
        char *msg = qm_sprintf("start failed: unable to run '%s': %s", argv.v[0], uv_strerror(r));
        sv_free(&argv);
        qm_vm_cleanup_stopped(vm);
        set_state(vm, QM_VM_STOPPED, "spawn failed");
        finish_op(vm, msg);
        free(msg);
        return;
    }
    sv_free(&argv);
}

static void prepared_cb(struct qm_vm *vm, const char *error)
{
    struct qm_vm_op *op = vm->ops;

    if (!op || op->kind != QM_OP_START || op->phase != PHASE_PREPARING)
        return;
    if (error) {
        qm_vm_cleanup_stopped(vm);
        set_state(vm, QM_VM_STOPPED, "preparing failed");
        finish_op(vm, error);
        return;
    }
    spawn_qemu(op);
}

static void pre_start_done(struct qm_vm *vm, void *serial, const char *error)
{
    struct qm_vm_op *op = hook_op(vm, serial);

    if (!op)
        return;
    if (error) {
        free(vm->hookscript);
        vm->hookscript = NULL;
        set_state(vm, QM_VM_STOPPED, "pre-start hook failed");
        finish_op(vm, error);
        return;
    }
    op->phase = PHASE_PREPARING;
    qm_vm_prepare_start(vm, op->conf, op->task, prepared_cb);
}

static void run_start(struct qm_vm_op *op)
{
    struct qm_vm *vm = op->vm;
    struct qm_error err;

    if (vm->state != QM_VM_STOPPED) {
        char *msg = qm_sprintf("VM %d already running", vm->vmid);
        finish_op(vm, msg);
        free(msg);
        return;
    }
    if (qm_conf_load(&vm->node->paths, vm->vmid, &op->conf, &err) < 0) {
        finish_op(vm, err.msg);
        return;
    }
    const char *lock = qm_conf_get(&op->conf->main, "lock");
    if (lock && !op->params.skiplock) {
        char *msg = qm_sprintf("VM is locked (%s)", lock);
        finish_op(vm, msg);
        free(msg);
        return;
    }
    if (apply_pending(op->conf, op->task) &&
        qm_conf_store(&vm->node->paths, op->conf, &err) < 0) {
        finish_op(vm, err.msg);
        return;
    }
    if (qm_mkdir_p(vm->node->paths.run_dir, 0755, &err) < 0) {
        finish_op(vm, err.msg);
        return;
    }
    remove_runtime_files(vm);
    free(vm->hookscript);
    vm->hookscript = NULL;
    if (qm_vm_hookscript(vm, op->conf, &vm->hookscript, &err) < 0) {
        finish_op(vm, err.msg);
        return;
    }
    set_state(vm, QM_VM_STARTING, "start requested");
    if (vm->hookscript) {
        op->phase = PHASE_HOOK;
        qm_vm_run_hook(vm, vm->hookscript, "pre-start", op->task, pre_start_done,
                       (void *)op->serial);
        return;
    }
    op->phase = PHASE_PREPARING;
    qm_vm_prepare_start(vm, op->conf, op->task, prepared_cb);
}

static void stop_timer_cb(uv_timer_t *timer)
{
    struct qm_vm *vm = timer->data;
    struct qm_vm_op *op = vm->ops;

    if (!op)
        return;
    switch (op->phase) {
    case PHASE_POWERDOWN:
        if (op->params.force_stop) {
            qm_task_log(op->task, "VM still running - terminating now with SIGTERM");
            begin_stop(op, NULL);
        } else {
            finish_op(vm, "VM quit/powerdown failed - got timeout");
        }
        break;
    case PHASE_QUIT:
        qm_task_log(op->task, "VM still running - terminating now with SIGTERM");
        kill(vm->pid, SIGTERM);
        op->phase = PHASE_TERM;
        uv_timer_start(&vm->timer, stop_timer_cb, TERM_GRACE_S * 1000, 0);
        break;
    case PHASE_TERM:
        qm_task_log(op->task, "VM still running - terminating now with SIGKILL");
        kill(vm->pid, SIGKILL);
        op->phase = PHASE_KILL;
        uv_timer_start(&vm->timer, stop_timer_cb, TERM_GRACE_S * 1000, 0);
        break;
    case PHASE_KILL:
        finish_op(vm, "VM still running after SIGKILL");
        break;
    case PHASE_CONNECTING:
    case PHASE_COMMAND:
        finish_op(vm, "timeout waiting for QEMU");
        break;
    case PHASE_QUEUED:
    case PHASE_PREPARING:
    case PHASE_SPAWNING:
    case PHASE_HOOK:
        break;
    }
}

static void quit_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    /* Nothing to do: the process exit ends the operation, the timer escalates. */
}

/*
 * Stops QEMU: "quit" over QMP, then SIGTERM, then SIGKILL. With failure set
 * the operation ends with that error once QEMU is gone (a start that went
 * wrong); otherwise it ends successfully.
 */
static void begin_stop(struct qm_vm_op *op, const char *failure)
{
    struct qm_vm *vm = op->vm;
    struct qm_error err;

    set_state(vm, QM_VM_STOPPING, failure ? "start failed" : "stop requested");
    if (failure) {
        op->failure = qm_strdup(failure);
        op->then_start = false;
    }
    int timeout = op->kind == QM_OP_STOP && op->params.timeout >= 0 ? op->params.timeout
                                                                      : QUIT_GRACE_S;
    if (vm->qmp && qmp_command(vm->qmp, "quit", NULL, quit_reply_cb, vm, &err) == 0) {
        op->phase = PHASE_QUIT;
        uv_timer_start(&vm->timer, stop_timer_cb, (uint64_t)timeout * 1000, 0);
    } else if (vm->pid > 0) {
        kill(vm->pid, SIGTERM);
        op->phase = PHASE_TERM;
        uv_timer_start(&vm->timer, stop_timer_cb, TERM_GRACE_S * 1000, 0);
    } else {
        set_state(vm, QM_VM_STOPPED, "no QEMU process");
        finish_op(vm, op->failure);
    }
}

static void powerdown_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct qm_vm *vm = opaque;
    struct qm_vm_op *op = vm->ops;

    if (reply->result == QMP_OK || !op || op->phase != PHASE_POWERDOWN)
        return;
    if (op->params.force_stop) {
        qm_task_log(op->task, "system_powerdown failed: %s", reply->error_desc);
        begin_stop(op, NULL);
    } else {
        char *msg = qm_sprintf("system_powerdown failed: %s", reply->error_desc);
        finish_op(vm, msg);
        free(msg);
    }
}

/* Whether the VM's configuration enables the guest agent. */
static bool agent_enabled(const struct qm_vm *vm)
{
    struct qm_conf *conf = NULL;
    struct qm_propstr ps = {0};
    bool enabled = false;

    if (qm_conf_load(&vm->node->paths, vm->vmid, &conf, NULL) < 0)
        return false;
    const char *agent = qm_conf_get(&conf->main, "agent");
    if (agent && qm_propstr_parse("agent", agent, &ps, NULL) == 0) {
        const char *value = qm_propstr_get(&ps, "enabled");
        enabled = value && strcmp(value, "1") == 0;
        qm_propstr_free(&ps);
    }
    qm_conf_free(conf);
    return enabled;
}

static void agent_shutdown_cb(const struct qmp_reply *reply, void *opaque)
{
    /* guest-shutdown sends no reply when it works: the process exit ends the shutdown. */
}

/*
 * As in Proxmox VE, a VM with the guest agent is shut down through the
 * agent. When the agent does not reply to a ping, the ACPI power button is used.
 */
struct agent_ping {
    struct qm_vm *vm;
    unsigned long serial;   /* of the shutdown that sent the ping */
};

static void agent_ping_cb(const struct qmp_reply *reply, void *opaque)
{
    struct agent_ping *ping = opaque;
    struct qm_vm *vm = ping->vm;
    struct qm_vm_op *op = vm->ops;
    struct qm_error err;

    if (!op || op->serial != ping->serial || op->phase != PHASE_POWERDOWN) {
        free(ping);
        return;
    }
    free(ping);
    if (reply->result == QMP_OK) {
        char *path = run_path(vm, "qga");
        qm_task_log(op->task, "shutting down through the guest agent");
        if (agent_command(vm->node->loop, path, "guest-shutdown", NULL, AGENT_PING_TIMEOUT_MS,
                          agent_shutdown_cb, NULL, NULL, &err) < 0)
            send_powerdown(op);
        free(path);
        return;
    }
    qm_task_log(op->task, "guest agent not answering (%s): using the ACPI power button",
                reply->error_desc);
    send_powerdown(op);
}

static void run_shutdown(struct qm_vm_op *op)
{
    struct qm_vm *vm = op->vm;
    struct qm_error err;

    if (vm->state == QM_VM_STOPPED) {
        if (op->then_start) {
            op->then_start = false;
            op->kind = QM_OP_START;
            run_start(op);
            return;
        }
        qm_task_log(op->task, "VM %d is not running", vm->vmid);
        finish_op(vm, NULL);
        return;
    }
    int timeout = op->params.timeout >= 0 ? op->params.timeout : DEFAULT_SHUTDOWN_TIMEOUT_S;
    op->phase = PHASE_POWERDOWN;
    uv_timer_start(&vm->timer, stop_timer_cb, (uint64_t)timeout * 1000, 0);
    if (vm->guest_shutdown)
        return;     /* The guest is already off and QEMU is quitting. */
    if (agent_enabled(vm)) {
        char *path = run_path(vm, "qga");
        struct agent_ping *ping = qm_malloc(sizeof(*ping));
        ping->vm = vm;
        ping->serial = op->serial;
        int r = agent_command(vm->node->loop, path, "guest-ping", NULL, AGENT_PING_TIMEOUT_MS,
                              agent_ping_cb, ping, NULL, &err);
        free(path);
        if (r == 0)
            return;
        free(ping);
    }
    send_powerdown(op);
}

/* Sends the ACPI power button; without QMP, a forced shutdown stops QEMU instead. */
static void send_powerdown(struct qm_vm_op *op)
{
    struct qm_vm *vm = op->vm;
    struct qm_error err;

    if (!vm->qmp || qmp_command(vm->qmp, "system_powerdown", NULL, powerdown_reply_cb,
                                vm, &err) < 0) {
        if (!op->params.force_stop) {
            finish_op(vm, "unable to send system_powerdown: no QMP connection");
            return;
        }
        begin_stop(op, NULL);
        return;
    }
}

static void run_stop(struct qm_vm_op *op)
{
    struct qm_vm *vm = op->vm;

    if (vm->state == QM_VM_STOPPED) {
        qm_task_log(op->task, "VM %d is not running", vm->vmid);
        finish_op(vm, NULL);
        return;
    }
    begin_stop(op, NULL);
}

static void pre_stop_done(struct qm_vm *vm, void *serial, const char *error)
{
    struct qm_vm_op *op = hook_op(vm, serial);

    if (!op)
        return;
    op->phase = PHASE_QUEUED;
    if (error) {
        finish_op(vm, error);
        return;
    }
    if (op->kind == QM_OP_STOP)
        run_stop(op);
    else
        run_shutdown(op);
}

/* Runs the pre-stop hook first when the VM has one; returns whether it was started. */
static bool run_pre_stop(struct qm_vm_op *op)
{
    struct qm_vm *vm = op->vm;

    if (!vm->hookscript || vm->state != QM_VM_RUNNING || op->pre_stop_done)
        return false;
    op->pre_stop_done = true;
    op->phase = PHASE_HOOK;
    qm_vm_run_hook(vm, vm->hookscript, "pre-stop", op->task, pre_stop_done, (void *)op->serial);
    return true;
}

static void command_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct qm_vm *vm = opaque;
    struct qm_vm_op *op = vm->ops;

    if (!op || op->phase != PHASE_COMMAND)
        return;
    if (reply->result != QMP_OK) {
        finish_op(vm, reply->error_desc);
        return;
    }
    if (op->kind == QM_OP_SUSPEND)
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "paused");
    else if (op->kind == QM_OP_RESUME)
        snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "running");
    finish_op(vm, NULL);
}

static void run_command(struct qm_vm_op *op, const char *command)
{
    struct qm_vm *vm = op->vm;
    struct qm_error err;

    if (vm->state != QM_VM_RUNNING) {
        char *msg = qm_sprintf("VM %d not running", vm->vmid);
        finish_op(vm, msg);
        free(msg);
        return;
    }
    if (!vm->qmp) {
        finish_op(vm, "no QMP connection to QEMU");
        return;
    }
    op->phase = PHASE_COMMAND;
    if (qmp_command(vm->qmp, command, NULL, command_reply_cb, vm, &err) < 0)
        finish_op(vm, err.msg);
}

static void run_op(struct qm_vm_op *op)
{
    qm_log(QM_LOG_INFO, op->vm->vmid, "%s started (%s)", op_names[op->kind], op->task->upid);
    switch (op->kind) {
    case QM_OP_START:
        run_start(op);
        break;
    case QM_OP_STOP:
        if (!run_pre_stop(op))
            run_stop(op);
        break;
    case QM_OP_SHUTDOWN:
        if (!run_pre_stop(op))
            run_shutdown(op);
        break;
    case QM_OP_REBOOT:
        op->then_start = true;
        if (!run_pre_stop(op))
            run_shutdown(op);
        break;
    case QM_OP_RESET:
        run_command(op, "system_reset");
        break;
    case QM_OP_SUSPEND:
        if (op->params.todisk) {
            finish_op(op->vm, "suspend to disk is not supported yet");
            return;
        }
        run_command(op, "stop");
        break;
    case QM_OP_RESUME:
        run_command(op, strcmp(op->vm->qmpstatus, "suspended") == 0 ? "system_wakeup" : "cont");
        break;
    }
}

static void run_next_op(struct qm_vm *vm)
{
    struct qm_vm_op *op = vm->ops;

    if (op && op->phase == PHASE_QUEUED && !vm->node->stopping)
        run_op(op);
}

struct qm_task *qm_vm_queue(struct qm_vm *vm, enum qm_vm_op_kind kind,
                            const struct qm_vm_op_params *params, const char *user,
                            struct qm_error *err)
{
    char id[16];
    struct qm_vm_op *op;

    snprintf(id, sizeof(id), "%d", vm->vmid);
    const char *type = task_types[kind];
    if (kind == QM_OP_SUSPEND && !params->todisk)
        type = "qmpause";
    struct qm_task *task = qm_task_start(&vm->node->tasks, type, id, user, err);
    if (!task)
        return NULL;
    op = qm_calloc(1, sizeof(*op));
    op->vm = vm;
    op->kind = kind;
    op->params = *params;
    op->task = task;
    op->phase = PHASE_QUEUED;
    op->serial = ++vm->node->op_serial;

    struct qm_vm_op **tail = &vm->ops;
    while (*tail)
        tail = &(*tail)->next;
    *tail = op;
    if (vm->ops != op)
        qm_task_log(task, "waiting for the running operation (%s) to finish",
                    op_names[vm->ops->kind]);
    run_next_op(vm);
    return task;
}

int qm_vm_qmp_command(struct qm_vm *vm, const char *command, const char *args_json,
                      qmp_reply_cb cb, void *opaque, struct qm_error *err)
{
    if (vm->state != QM_VM_RUNNING || !vm->qmp)
        return qm_fail(err, 409, "VM %d not running", vm->vmid);
    return qmp_command(vm->qmp, command, args_json, cb, opaque, err);
}

void qm_vm_recover(struct qm_vm *vm)
{
    struct qm_error err;

    /* A VM this daemon already manages (a reload) is left as it is. */
    if (vm->state != QM_VM_STOPPED || vm->pid > 0 || vm->pidfd_poll || vm->pid_timer || vm->ops)
        return;
    pid_t pid = read_pidfile(vm);
    if (pid <= 0)
        return;
    if (!process_is_vm(vm, pid) || watch_pid(vm, pid) < 0) {
        qm_log(QM_LOG_INFO, vm->vmid, "removing stale pidfile of process %d", (int)pid);
        remove_runtime_files(vm);
        return;
    }
    qm_log(QM_LOG_INFO, vm->vmid, "found running QEMU process %d", (int)pid);
    vm->start_time = time(NULL);
    /* The uptime restarts from here: the process start time is not read back yet. */
    char stat_path[64];
    snprintf(stat_path, sizeof(stat_path), "/proc/%d", (int)pid);
    struct stat st;
    if (stat(stat_path, &st) == 0)
        vm->start_time = st.st_mtime;
    set_state(vm, QM_VM_RUNNING, "found running");
    snprintf(vm->qmpstatus, sizeof(vm->qmpstatus), "running");
    if (connect_qmp(vm, 5000, &err) < 0)
        qm_log(QM_LOG_WARNING, vm->vmid, "unable to reconnect to QMP: %s", err.msg);
}

static void free_handle_cb(uv_handle_t *handle)
{
    free(handle);
}

static void timer_close_cb(uv_handle_t *handle)
{
    struct qm_vm *vm = handle->data;

    free(vm->hookscript);
    free(vm->running_qemu);
    free(vm);
}

void qm_vm_release(struct qm_vm *vm)
{
    struct qm_vm_op *op = vm->ops;

    /* Queued operations end here; a running one is abandoned with its task failed. */
    while (op) {
        struct qm_vm_op *next = op->next;
        qm_task_finish(op->task, "interrupted: qmd is stopping");
        if (op->process.loop) {
            op->process.data = op;
            uv_close((uv_handle_t *)&op->process, process_close_cb);
        } else {
            op_free(op);
        }
        op = next;
    }
    vm->ops = NULL;
    stop_watching_pid(vm);
    close_qmp(vm);
    drop_removed_listeners(vm, true);
    /* The heartbeat is a handle of its own, so its close needs nothing of vm. */
    uv_close((uv_handle_t *)vm->heartbeat, free_handle_cb);
    vm->heartbeat = NULL;
    uv_close((uv_handle_t *)&vm->timer, timer_close_cb);
}

/*
 * QMP client tests against a real qemu-system-x86_64 (started daemonized with
 * -S in a temporary folder) and against a fake server for framing and
 * handshake failures, plus the JSON helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qm/json.h"
#include "qm/qmp.h"

#define QEMU_BINARY "qemu-system-x86_64"
/* Upper bound for one wait in a test, so that a hang fails instead of blocking. */
#define TEST_WAIT_MS 20000

struct fake_qmp;

struct reply_slot {
    bool done;
    enum qmp_result result;
    char *error_class;
    char *error_desc;
    char *ret_json;
    char *hmp_output;
};

struct fixture {
    char dir[64];
    char socket_path[128];
    char pidfile[128];
    pid_t qemu_pid;

    uv_loop_t loop;
    struct qmp *qmp;
    bool ready;
    bool ready_failed;
    char ready_msg[1024];
    bool closed;
    bool close_in_ready;
    bool close_in_event;
    bool close_in_closed;
    int closed_calls;
    struct strvec events;
    int64_t last_event_seconds;
    struct fake_qmp *fake_server;   /* stopped by teardown, also after a failed assert */
};

static void slot_reset(struct reply_slot *slot)
{
    free(slot->error_class);
    free(slot->error_desc);
    free(slot->ret_json);
    free(slot->hmp_output);
    memset(slot, 0, sizeof(*slot));
}

static void on_reply(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct reply_slot *slot = opaque;

    assert_false(slot->done);
    slot->done = true;
    slot->result = reply->result;
    if (reply->error_class)
        slot->error_class = qm_strdup(reply->error_class);
    if (reply->error_desc)
        slot->error_desc = qm_strdup(reply->error_desc);
    if (reply->result == QMP_OK)
        slot->ret_json = qm_json_dump(reply->ret);
}

static void on_ready(struct qmp *qmp, const struct qm_error *err, void *opaque)
{
    struct fixture *f = opaque;

    if (err) {
        f->ready_failed = true;
        snprintf(f->ready_msg, sizeof(f->ready_msg), "%s", err->msg);
    } else {
        f->ready = true;
    }
    if (f->close_in_ready) {
        qmp_close(qmp);
        f->qmp = NULL;
    }
}

static void on_event(struct qmp *qmp, const struct qmp_event *event, void *opaque)
{
    struct fixture *f = opaque;

    sv_push(&f->events, event->name);
    f->last_event_seconds = event->seconds;
    if (f->close_in_event) {
        qmp_close(qmp);
        f->qmp = NULL;
    }
}

static void on_closed(struct qmp *qmp, void *opaque)
{
    struct fixture *f = opaque;

    f->closed = true;
    f->closed_calls++;
    if (f->close_in_closed) {
        qmp_close(qmp);
        f->qmp = NULL;
    }
}

static const struct qmp_callbacks test_callbacks = {
    .ready = on_ready,
    .event = on_event,
    .closed = on_closed,
};

static void on_guard_timer(uv_timer_t *timer)
{
    *(bool *)timer->data = true;
}

/* Runs the loop until *flag is true; fails the test after TEST_WAIT_MS. */
static void run_until(uv_loop_t *loop, const bool *flag)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard_timer, TEST_WAIT_MS, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_true(*flag);
}

static bool has_event(const struct fixture *f, const char *name)
{
    for (size_t i = 0; i < f->events.n; i++) {
        if (strcmp(f->events.v[i], name) == 0)
            return true;
    }
    return false;
}

static void wait_event(struct fixture *f, const char *name)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(&f->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard_timer, TEST_WAIT_MS, 0);
    while (!has_event(f, name) && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(has_event(f, name));
}

/* Starts QEMU daemonized, paused, with its QMP socket in the fixture's folder. */
static void start_qemu(struct fixture *f)
{
    char qmp_arg[160];
    char *pid_text = NULL;
    size_t pid_len;
    long long pid;
    int status;
    pid_t child;

    snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", f->socket_path);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        execlp(QEMU_BINARY, QEMU_BINARY, "-machine", "none", "-nodefaults", "-display",
               "none", "-S", "-qmp", qmp_arg, "-daemonize", "-pidfile", f->pidfile,
               (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(qm_read_file(f->pidfile, &pid_text, &pid_len, NULL), 0);
    assert_true(qm_parse_int(qm_str_trim(pid_text), &pid));
    free(pid_text);
    f->qemu_pid = (pid_t)pid;
}

/* Returns the state letter ('R', 'S', 'T', 'Z', ...) from a stat file of /proc, or 0. */
static char stat_file_state(const char *path)
{
    char *stat = NULL;
    size_t len;
    const char *end;
    char state = 0;

    if (qm_read_file(path, &stat, &len, NULL) < 0)
        return 0;
    /* The state follows the command name, which is in parentheses. */
    end = strrchr(stat, ')');
    if (end && end[1] == ' ')
        state = end[2];
    free(stat);
    return state;
}

static char process_state(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return stat_file_state(path);
}

/* True when every thread of pid is stopped, not only the main one. */
static bool process_stopped(pid_t pid)
{
    char path[64];
    DIR *dir;
    struct dirent *entry;
    bool stopped = true;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    dir = opendir(path);
    if (!dir)
        return false;
    while (stopped && (entry = readdir(dir))) {
        char task[300];

        if (entry->d_name[0] == '.')
            continue;
        snprintf(task, sizeof(task), "/proc/%d/task/%s/stat", (int)pid, entry->d_name);
        stopped = stat_file_state(task) == 'T';
    }
    closedir(dir);
    return stopped;
}

/* True when pid is gone or a zombie that its new parent has not reaped yet. */
static bool process_gone(pid_t pid)
{
    char state;

    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    state = process_state(pid);
    return state == 0 || state == 'Z' || state == 'X';
}

/* Stops QEMU and waits until it is stopped: kill() returns before that. */
static void pause_qemu(struct fixture *f)
{
    assert_int_equal(kill(f->qemu_pid, SIGSTOP), 0);
    for (int i = 0; i < 500 && !process_stopped(f->qemu_pid); i++)
        usleep(1000);
    assert_true(process_stopped(f->qemu_pid));
}

static void stop_qemu(struct fixture *f)
{
    if (f->qemu_pid <= 0)
        return;
    kill(f->qemu_pid, SIGKILL);
    /* QEMU is not our child after -daemonize: wait for the pid to disappear. */
    for (int i = 0; i < 500 && !process_gone(f->qemu_pid); i++)
        usleep(10000);
    f->qemu_pid = 0;
}

static int setup(void **state)
{
    struct fixture *f = qm_calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/qm-test-qmp-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->socket_path, sizeof(f->socket_path), "%s/qmp.sock", f->dir);
    snprintf(f->pidfile, sizeof(f->pidfile), "%s/qemu.pid", f->dir);
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static void fake_qmp_stop(struct fake_qmp *server);

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->qmp)
        qmp_close(f->qmp);
    if (f->fake_server) {
        fake_qmp_stop(f->fake_server);
        free(f->fake_server);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    stop_qemu(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    unlink(f->socket_path);
    unlink(f->pidfile);
    rmdir(f->dir);
    sv_free(&f->events);
    free(f);
    return 0;
}

/* Starts QEMU, connects and waits for the handshake. */
static void connect_ready(struct fixture *f)
{
    start_qemu(f);
    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 5000, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    run_until(&f->loop, &f->ready);
    assert_false(f->ready_failed);
}

static void command(struct fixture *f, const char *name, const char *args,
                    struct reply_slot *slot)
{
    struct qm_error err = {0};

    slot_reset(slot);
    assert_int_equal(qmp_command(f->qmp, name, args, on_reply, slot, &err), 0);
    run_until(&f->loop, &slot->done);
}

static void query_status(struct fixture *f, const char *expected)
{
    struct reply_slot slot = {0};
    struct qm_error err;
    yajl_val ret;

    command(f, "query-status", NULL, &slot);
    assert_int_equal(slot.result, QMP_OK);
    ret = qm_json_parse(slot.ret_json, strlen(slot.ret_json), &err);
    assert_non_null(ret);
    assert_string_equal(qm_json_get_string(ret, "status"), expected);
    yajl_tree_free(ret);
    slot_reset(&slot);
}

static void greeting_reports_version(void **state)
{
    struct fixture *f = *state;
    const struct qmp_version *version;

    connect_ready(f);
    version = qmp_get_version(f->qmp);
    assert_int_equal(version->major, 7);
    assert_int_equal(version->minor, 2);
    assert_true(version->micro >= 0);
    assert_non_null(version->package);
    assert_string_equal(qmp_get_path(f->qmp), f->socket_path);
}

static void status_follows_cont_and_stop(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    connect_ready(f);
    query_status(f, "prelaunch");

    command(f, "cont", NULL, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{}");
    wait_event(f, "RESUME");
    assert_true(f->last_event_seconds > 0);
    query_status(f, "running");

    command(f, "stop", NULL, &slot);
    assert_int_equal(slot.result, QMP_OK);
    wait_event(f, "STOP");
    query_status(f, "paused");
    slot_reset(&slot);
}

static void unknown_command_error_class(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    connect_ready(f);
    command(f, "no-such-command", NULL, &slot);
    assert_int_equal(slot.result, QMP_ERROR);
    assert_string_equal(slot.error_class, "CommandNotFound");
    assert_non_null(strstr(slot.error_desc, "no-such-command"));
    slot_reset(&slot);

    /* Arguments reach QEMU: a wrong one is rejected by QEMU, not here. */
    command(f, "query-status", "{\"bogus\": 1}", &slot);
    assert_int_equal(slot.result, QMP_ERROR);
    assert_string_equal(slot.error_class, "GenericError");
    slot_reset(&slot);
}

static void invalid_arguments_rejected(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    struct qm_error err = {0};

    connect_ready(f);
    assert_int_equal(qmp_command(f->qmp, "query-status", "[1]", on_reply, &slot, &err), -1);
    assert_non_null(strstr(err.msg, "not a JSON object"));
    assert_int_equal(qmp_command(f->qmp, "query-status", "{", on_reply, &slot, &err), -1);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    assert_false(slot.done);
}

static void quit_fires_closed_callback(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    struct qm_error err = {0};

    connect_ready(f);
    command(f, "quit", NULL, &slot);
    assert_int_equal(slot.result, QMP_OK);
    run_until(&f->loop, &f->closed);
    assert_int_equal(f->closed_calls, 1);
    assert_true(has_event(f, "SHUTDOWN"));

    /* A closed connection rejects new commands at once. */
    slot_reset(&slot);
    assert_int_equal(qmp_command(f->qmp, "query-status", NULL, on_reply, &slot, &err), -1);
    assert_non_null(strstr(err.msg, "closed"));
    assert_false(slot.done);
}

static void pending_commands_fail_on_eof(void **state)
{
    struct fixture *f = *state;
    struct reply_slot first = {0};
    struct reply_slot second = {0};

    connect_ready(f);
    /* A stopped QEMU reads nothing, so both commands stay pending. */
    pause_qemu(f);
    assert_int_equal(qmp_command(f->qmp, "query-status", NULL, on_reply, &first, NULL), 0);
    assert_int_equal(qmp_command(f->qmp, "query-name", NULL, on_reply, &second, NULL), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(first.done);
    stop_qemu(f);

    run_until(&f->loop, &f->closed);
    assert_true(first.done);
    assert_true(second.done);
    assert_int_equal(first.result, QMP_CLOSED);
    assert_int_equal(second.result, QMP_CLOSED);
    assert_string_equal(first.error_desc, "QMP connection closed");
    slot_reset(&first);
    slot_reset(&second);
}

static void command_timeout_then_late_reply(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    uint64_t start;

    connect_ready(f);
    pause_qemu(f);
    start = uv_now(&f->loop);
    assert_int_equal(qmp_command_timeout(f->qmp, "query-status", NULL, 200, on_reply, &slot,
                                         NULL), 0);
    run_until(&f->loop, &slot.done);
    assert_int_equal(slot.result, QMP_TIMEOUT);
    assert_non_null(strstr(slot.error_desc, "timed out"));
    assert_true(uv_now(&f->loop) - start >= 200);
    slot_reset(&slot);

    /* The late reply to the timed-out command must not reach the next one. */
    assert_int_equal(kill(f->qemu_pid, SIGCONT), 0);
    command(f, "query-name", NULL, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{}");
    slot_reset(&slot);
    query_status(f, "prelaunch");
}

static void missing_socket_times_out(void **state)
{
    struct fixture *f = *state;
    uint64_t start = uv_now(&f->loop);

    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 300, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    run_until(&f->loop, &f->ready_failed);
    assert_false(f->ready);
    assert_true(uv_now(&f->loop) - start >= 300);
    assert_non_null(strstr(f->ready_msg, "timed out"));
    assert_non_null(strstr(f->ready_msg, f->socket_path));
}

static void overlong_path_rejected(void **state)
{
    struct fixture *f = *state;
    struct qm_error err = {0};
    char path[200];
    struct qmp *qmp = NULL;

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(qmp_connect(&f->loop, path, 300, &test_callbacks, f, &qmp, &err), -1);
    assert_null(qmp);
    assert_non_null(strstr(err.msg, "longer than"));
}

static void on_start_qemu_timer(uv_timer_t *timer)
{
    start_qemu(timer->data);
}

static void connect_retries_until_socket(void **state)
{
    struct fixture *f = *state;
    uv_timer_t later;

    /* The socket appears only after a few failed attempts. */
    uv_timer_init(&f->loop, &later);
    later.data = f;
    uv_timer_start(&later, on_start_qemu_timer, 300, 0);
    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 10000, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    run_until(&f->loop, &f->ready);
    assert_false(f->ready_failed);
    assert_true(f->qemu_pid > 0);
    uv_close((uv_handle_t *)&later, NULL);
    query_status(f, "prelaunch");
}

static void commands_wait_for_handshake(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    start_qemu(f);
    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 5000, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    assert_int_equal(qmp_command(f->qmp, "query-status", NULL, on_reply, &slot, NULL), 0);
    run_until(&f->loop, &slot.done);
    assert_true(f->ready);
    assert_int_equal(slot.result, QMP_OK);
    assert_non_null(strstr(slot.ret_json, "prelaunch"));
    slot_reset(&slot);
}

static void queued_commands_fail_with_handshake(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 200, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    assert_int_equal(qmp_command(f->qmp, "query-status", NULL, on_reply, &slot, NULL), 0);
    run_until(&f->loop, &f->ready_failed);
    assert_true(slot.done);
    assert_int_equal(slot.result, QMP_CLOSED);
    assert_non_null(strstr(slot.error_desc, "timed out"));
    slot_reset(&slot);
}

static void large_reply_spans_reads(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    connect_ready(f);
    /* The schema is far larger than one read buffer of 64 KiB. */
    command(f, "query-qmp-schema", NULL, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_true(strlen(slot.ret_json) > 100000);
    assert_non_null(strstr(slot.ret_json, "\"query-status\""));
    slot_reset(&slot);
}

static void many_commands_in_flight(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slots[50];

    memset(slots, 0, sizeof(slots));
    connect_ready(f);
    for (size_t i = 0; i < QM_ARRAY_SIZE(slots); i++) {
        const char *name = i % 2 ? "query-name" : "query-status";

        assert_int_equal(qmp_command(f->qmp, name, NULL, on_reply, &slots[i], NULL), 0);
    }
    run_until(&f->loop, &slots[QM_ARRAY_SIZE(slots) - 1].done);
    for (size_t i = 0; i < QM_ARRAY_SIZE(slots); i++) {
        assert_true(slots[i].done);
        assert_int_equal(slots[i].result, QMP_OK);
        if (i % 2)
            assert_string_equal(slots[i].ret_json, "{}");
        else
            assert_non_null(strstr(slots[i].ret_json, "prelaunch"));
        slot_reset(&slots[i]);
    }
}

static void on_hmp(struct qmp *qmp, const char *output, const struct qmp_reply *reply,
                   void *opaque)
{
    struct reply_slot *slot = opaque;

    on_reply(qmp, reply, slot);
    if (output)
        slot->hmp_output = qm_strdup(output);
}

static void hmp_info_status(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    connect_ready(f);
    assert_int_equal(qmp_hmp_command(f->qmp, "info status", on_hmp, &slot, NULL), 0);
    run_until(&f->loop, &slot.done);
    assert_int_equal(slot.result, QMP_OK);
    assert_non_null(slot.hmp_output);
    assert_non_null(strstr(slot.hmp_output, "VM status: paused (prelaunch)"));
    slot_reset(&slot);

    /* QEMU reports an unknown HMP command in the output, not as a QMP error. */
    assert_int_equal(qmp_hmp_command(f->qmp, "no-such-hmp", on_hmp, &slot, NULL), 0);
    run_until(&f->loop, &slot.done);
    assert_int_equal(slot.result, QMP_OK);
    assert_non_null(strstr(slot.hmp_output, "unknown command"));
    slot_reset(&slot);
}

struct close_in_reply {
    struct fixture *f;
    struct reply_slot slot;
};

static void on_reply_then_close(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct close_in_reply *c = opaque;

    on_reply(qmp, reply, &c->slot);
    qmp_close(qmp);
    c->f->qmp = NULL;
}

static void close_inside_reply_callback(void **state)
{
    struct fixture *f = *state;
    struct close_in_reply c = {.f = f};
    struct reply_slot later = {0};
    struct qm_error err = {0};

    connect_ready(f);
    assert_int_equal(qmp_command(f->qmp, "query-status", NULL, on_reply_then_close, &c,
                                 NULL), 0);
    assert_int_equal(qmp_command(f->qmp, "query-name", NULL, on_reply, &later, NULL), 0);
    run_until(&f->loop, &c.slot.done);
    assert_int_equal(c.slot.result, QMP_OK);
    /* The second command completes inside qmp_close(), before the loop runs again. */
    assert_true(later.done);
    assert_int_equal(later.result, QMP_CLOSED);
    assert_null(f->qmp);
    assert_false(f->closed);
    slot_reset(&c.slot);
    slot_reset(&later);
    (void)err;
}

static void close_inside_ready_callback(void **state)
{
    struct fixture *f = *state;

    f->close_in_ready = true;
    connect_ready(f);
    assert_null(f->qmp);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

static void close_inside_event_callback(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    connect_ready(f);
    f->close_in_event = true;
    assert_int_equal(qmp_command(f->qmp, "cont", NULL, on_reply, &slot, NULL), 0);
    wait_event(f, "RESUME");
    assert_null(f->qmp);
    /* QEMU sends RESUME before the reply to cont, so the reply is lost with the connection. */
    run_until(&f->loop, &slot.done);
    assert_int_equal(slot.result, QMP_CLOSED);
    slot_reset(&slot);
}

static void close_inside_closed_callback(void **state)
{
    struct fixture *f = *state;

    f->close_in_closed = true;
    connect_ready(f);
    stop_qemu(f);
    run_until(&f->loop, &f->closed);
    assert_null(f->qmp);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

static void close_before_handshake(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 5000, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    assert_int_equal(qmp_command(f->qmp, "query-status", NULL, on_reply, &slot, NULL), 0);
    qmp_close(f->qmp);
    f->qmp = NULL;
    assert_true(slot.done);
    assert_int_equal(slot.result, QMP_CLOSED);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_false(f->ready);
    assert_false(f->ready_failed);
    slot_reset(&slot);
}

/*
 * A fake QMP server for framing cases that a real QEMU does not produce on
 * demand: messages split at arbitrary bytes, several messages in one write,
 * and broken handshakes.
 */
enum fake_qmp_mode {
    FAKE_QMP_SPLIT,          /* valid protocol, written in awkward pieces */
    FAKE_QMP_NO_GREETING,    /* accepts and stays silent */
    FAKE_QMP_BAD_GREETING,   /* sends an object without "QMP" */
    FAKE_QMP_CAPS_ERROR,     /* rejects qmp_capabilities */
};

struct fake_qmp_chunk {
    uv_timer_t timer;
    struct fake_qmp *server;
    struct fake_qmp_chunk *next;
    char *text;
};

struct fake_qmp {
    uv_loop_t *loop;
    uv_pipe_t listener;
    uv_pipe_t client;
    bool connected;
    enum fake_qmp_mode mode;
    struct strbuf input;
    struct fake_qmp_chunk *chunks;
};

static void fake_qmp_on_write(uv_write_t *req, int status)
{
    free(req->data);
    free(req);
}

static void fake_qmp_write_now(struct fake_qmp *server, const char *text)
{
    uv_write_t *req = qm_calloc(1, sizeof(*req));
    uv_buf_t buf;

    req->data = qm_strdup(text);
    buf = uv_buf_init(req->data, strlen(text));
    if (uv_write(req, (uv_stream_t *)&server->client, &buf, 1, fake_qmp_on_write) < 0) {
        free(req->data);
        free(req);
    }
}

static void fake_qmp_chunk_fire(uv_timer_t *timer)
{
    struct fake_qmp_chunk *chunk = timer->data;

    if (chunk->server->connected)
        fake_qmp_write_now(chunk->server, chunk->text);
}

/* Writes text after delay_ms, so that the client reads it separately. */
static void fake_qmp_write_later(struct fake_qmp *server, const char *text, unsigned delay_ms)
{
    struct fake_qmp_chunk *chunk = qm_calloc(1, sizeof(*chunk));

    chunk->server = server;
    chunk->text = qm_strdup(text);
    chunk->next = server->chunks;
    server->chunks = chunk;
    uv_timer_init(server->loop, &chunk->timer);
    chunk->timer.data = chunk;
    uv_timer_start(&chunk->timer, fake_qmp_chunk_fire, delay_ms, 0);
}

static void fake_qmp_handle(struct fake_qmp *server, yajl_val request)
{
    const char *command = qm_json_get_string(request, "execute");
    long long id = 0;
    char *text;

    assert_non_null(command);
    if (strcmp(command, "qmp_capabilities") == 0) {
        if (server->mode == FAKE_QMP_CAPS_ERROR)
            fake_qmp_write_now(server, "{\"error\": {\"class\": \"GenericError\", "
                               "\"desc\": \"fake refusal\"}}\r\n");
        else
            fake_qmp_write_now(server, "{\"return\": {}}\r\n");
        return;
    }
    assert_true(qm_json_get_int(request, "id", &id));
    /* An event, the reply and half an event in one write, the rest later. */
    text = qm_sprintf("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
                      "\"event\": \"FAKE_BEFORE\"}\r\n"
                      "{\"return\": {\"id-seen\": %lld}, \"id\": %lld}\r\n"
                      "{\"timestamp\": {\"seconds\": 3, \"microseconds\": 4}, \"ev",
                      id, id);
    fake_qmp_write_now(server, text);
    free(text);
    fake_qmp_write_later(server, "ent\": \"FAKE_AFTER\", \"data\": {\"k\": 1}}\r", 20);
    fake_qmp_write_later(server, "\n", 40);
}

static void fake_qmp_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    buf->base = qm_malloc(suggested);
    buf->len = suggested;
}

static void fake_qmp_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_qmp *server = stream->data;

    if (nread > 0) {
        char *newline;

        sb_addn(&server->input, buf->base, (size_t)nread);
        while ((newline = memchr(server->input.buf, '\n', server->input.len))) {
            size_t used = (size_t)(newline - server->input.buf) + 1;
            yajl_val request = qm_json_parse(server->input.buf, used, NULL);

            assert_true(YAJL_IS_OBJECT(request));
            fake_qmp_handle(server, request);
            yajl_tree_free(request);
            memmove(server->input.buf, server->input.buf + used, server->input.len - used);
            server->input.len -= used;
        }
    }
    free(buf->base);
}

static void fake_qmp_on_connection(uv_stream_t *listener, int status)
{
    struct fake_qmp *server = listener->data;

    assert_int_equal(status, 0);
    assert_false(server->connected);
    uv_pipe_init(server->loop, &server->client, 0);
    server->client.data = server;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&server->client), 0);
    server->connected = true;
    uv_read_start((uv_stream_t *)&server->client, fake_qmp_alloc, fake_qmp_on_read);

    switch (server->mode) {
    case FAKE_QMP_NO_GREETING:
        break;
    case FAKE_QMP_BAD_GREETING:
        fake_qmp_write_now(server, "{\"hello\": 1}\r\n");
        break;
    default:
        /* The greeting in three reads, split inside a key and between \r and \n. */
        fake_qmp_write_now(server, "{\"QMP\": {\"version\": {\"qemu\": {\"mic");
        fake_qmp_write_later(server, "ro\": 3, \"minor\": 2, \"major\": 9}, \"package\": "
                             "\"fake\"}, \"capabilities\": []}}\r", 20);
        fake_qmp_write_later(server, "\n", 40);
        break;
    }
}

static void fake_qmp_start(struct fake_qmp *server, uv_loop_t *loop, const char *path,
                           enum fake_qmp_mode mode)
{
    server->loop = loop;
    server->mode = mode;
    uv_pipe_init(loop, &server->listener, 0);
    server->listener.data = server;
    assert_int_equal(uv_pipe_bind(&server->listener, path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server->listener, 4, fake_qmp_on_connection), 0);
}

static void fake_qmp_stop(struct fake_qmp *server)
{
    uv_close((uv_handle_t *)&server->listener, NULL);
    if (server->connected)
        uv_close((uv_handle_t *)&server->client, NULL);
    server->connected = false;
    for (struct fake_qmp_chunk *c = server->chunks; c; c = c->next)
        uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(server->loop, UV_RUN_DEFAULT);
    while (server->chunks) {
        struct fake_qmp_chunk *c = server->chunks;

        server->chunks = c->next;
        free(c->text);
        free(c);
    }
    sb_free(&server->input);
}

static void split_messages_reassembled(void **state)
{
    struct fixture *f = *state;
    struct fake_qmp *server = qm_calloc(1, sizeof(*server));
    struct reply_slot slot = {0};
    const struct qmp_version *version;

    fake_qmp_start(server, &f->loop, f->socket_path, FAKE_QMP_SPLIT);
    f->fake_server = server;
    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 5000, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    run_until(&f->loop, &f->ready);
    version = qmp_get_version(f->qmp);
    assert_int_equal(version->major, 9);
    assert_int_equal(version->minor, 2);
    assert_int_equal(version->micro, 3);
    assert_string_equal(version->package, "fake");

    command(f, "query-anything", NULL, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{\"id-seen\":1}");
    assert_true(has_event(f, "FAKE_BEFORE"));
    wait_event(f, "FAKE_AFTER");
    assert_int_equal(f->last_event_seconds, 3);
    slot_reset(&slot);

    /* The second command proves that the split event left no stray bytes. */
    command(f, "query-anything", NULL, &slot);
    assert_string_equal(slot.ret_json, "{\"id-seen\":2}");
    slot_reset(&slot);
}

static void handshake_failure(struct fixture *f, enum fake_qmp_mode mode, const char *expected)
{
    struct fake_qmp *server = qm_calloc(1, sizeof(*server));

    fake_qmp_start(server, &f->loop, f->socket_path, mode);
    f->fake_server = server;
    assert_int_equal(qmp_connect(&f->loop, f->socket_path, 300, &test_callbacks, f,
                                 &f->qmp, NULL), 0);
    run_until(&f->loop, &f->ready_failed);
    assert_false(f->ready);
    assert_non_null(strstr(f->ready_msg, expected));
    assert_non_null(strstr(f->ready_msg, f->socket_path));
}

static void silent_server_times_out(void **state)
{
    handshake_failure(*state, FAKE_QMP_NO_GREETING, "handshake");
    assert_non_null(strstr(((struct fixture *)*state)->ready_msg, "timed out"));
}

static void bad_greeting_fails(void **state)
{
    handshake_failure(*state, FAKE_QMP_BAD_GREETING, "invalid QMP greeting");
}

static void capabilities_error_fails(void **state)
{
    handshake_failure(*state, FAKE_QMP_CAPS_ERROR, "fake refusal");
}

static void json_build_escapes(void **state)
{
    char *text = qm_json_build("{\"a\": %s, \"b\": %d, \"c\": %lld, \"d\": %b, \"e\": %j, "
                               "\"f\": %s, \"g\": %u, \"h\": \"100%%\"}",
                               "q\"uo\\te\n\x01", -5, 1LL << 40, 1, "[1,2]", NULL, 7u);

    assert_string_equal(text, "{\"a\": \"q\\\"uo\\\\te\\n\\u0001\", \"b\": -5, "
                              "\"c\": 1099511627776, \"d\": true, \"e\": [1,2], "
                              "\"f\": null, \"g\": 7, \"h\": \"100%\"}");
    free(text);
}

static void json_get_by_path(void **state)
{
    const char *text = "{\"a\": {\"b\": {\"c\": 42, \"s\": \"x\", \"t\": true}}, \"n\": null}";
    struct qm_error err;
    yajl_val v = qm_json_parse(text, strlen(text), &err);
    long long n = 0;
    bool b = false;
    char *dump;

    assert_non_null(v);
    assert_true(qm_json_get_int(v, "a/b/c", &n));
    assert_int_equal(n, 42);
    assert_string_equal(qm_json_get_string(v, "a/b/s"), "x");
    assert_true(qm_json_get_bool(v, "a/b/t", &b));
    assert_true(b);
    assert_null(qm_json_get(v, "a/x/c"));
    assert_null(qm_json_get(v, "a/b/c/d"));
    assert_null(qm_json_get_string(v, "a/b/c"));
    assert_false(qm_json_get_int(v, "a/b/s", &n));
    assert_true(qm_json_get(v, "") == v);
    assert_true(YAJL_IS_NULL(qm_json_get(v, "n")));

    dump = qm_json_dump(v);
    assert_string_equal(dump, "{\"a\":{\"b\":{\"c\":42,\"s\":\"x\",\"t\":true}},\"n\":null}");
    free(dump);
    yajl_tree_free(v);

    assert_null(qm_json_parse("{\"a\":", 5, &err));
    assert_non_null(strstr(err.msg, "invalid JSON"));
    /* The length bounds the text: no NUL is needed after it. */
    v = qm_json_parse("[1]xyz", 3, &err);
    assert_true(YAJL_IS_ARRAY(v));
    yajl_tree_free(v);
}

int main(void)
{
    /* Writes to a QEMU killed mid-test must fail with EPIPE, not kill the test. */
    signal(SIGPIPE, SIG_IGN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_build_escapes),
        cmocka_unit_test(json_get_by_path),
        cmocka_unit_test_setup_teardown(greeting_reports_version, setup, teardown),
        cmocka_unit_test_setup_teardown(status_follows_cont_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_command_error_class, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_arguments_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(quit_fires_closed_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(pending_commands_fail_on_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(command_timeout_then_late_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_socket_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(overlong_path_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_retries_until_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(commands_wait_for_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(queued_commands_fail_with_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(large_reply_spans_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(many_commands_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(hmp_info_status, setup, teardown),
        cmocka_unit_test_setup_teardown(close_inside_reply_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(close_inside_ready_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(close_inside_event_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(close_inside_closed_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(close_before_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(split_messages_reassembled, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_server_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_greeting_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(capabilities_error_fails, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

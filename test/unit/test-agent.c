/*
 * Guest-agent client tests against a fake agent: a unix socket server on the
 * test's loop that speaks the guest-sync-delimited framing. It models the
 * behaviour of QEMU's agent socket that matters here: a reply that a client
 * did not wait for goes to the next client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "qm/agent.h"
#include "qm/json.h"

/* Upper bound for one wait in a test, so that a hang fails instead of blocking. */
#define TEST_WAIT_MS 20000

enum fake_agent_mode {
    FAKE_AGENT_NORMAL,
    FAKE_AGENT_STALE,          /* sends leftovers and an old sync reply before each reply */
    FAKE_AGENT_SILENT,         /* reads requests and never replies */
    FAKE_AGENT_SLOW,           /* replies after reply_delay_ms */
    FAKE_AGENT_STOP_READING,   /* stops reading after the sync reply */
    FAKE_AGENT_BYTEWISE,       /* writes every reply one byte at a time */
    FAKE_AGENT_HANGUP,         /* closes the connection after the sync reply */
    FAKE_AGENT_NO_ID,          /* leaves "id" out of replies */
};

struct fake_agent;

struct fake_agent_client {
    uv_pipe_t pipe;
    struct fake_agent *agent;
    struct fake_agent_client *next;
    struct strbuf input;
    int serial;
    bool closed;
};

struct fake_agent_delayed {
    uv_timer_t timer;
    struct fake_agent *agent;
    struct fake_agent_delayed *next;
    int client_serial;
    char *text;
};

struct fake_agent {
    uv_loop_t *loop;
    uv_pipe_t server;
    char path[128];
    enum fake_agent_mode mode;
    unsigned reply_delay_ms;
    int connections;
    struct fake_agent_client *clients;
    struct fake_agent_client *current;   /* the latest client while it is connected */
    struct fake_agent_delayed *delayed;
    struct strbuf stale;                 /* replies whose client left, for the next one */
    struct strvec executed;              /* command names in the order received */
};

struct fixture {
    char dir[64];
    uv_loop_t loop;
    struct fake_agent agent;
};

struct reply_slot {
    bool done;
    int calls;
    enum qmp_result result;
    char *error_class;
    char *error_desc;
    char *ret_json;
};

/* ---- the fake agent ---- */

static void fake_agent_client_closed(uv_handle_t *handle)
{
    struct fake_agent_client *client = handle->data;

    sb_free(&client->input);
}

static void fake_agent_client_close(struct fake_agent_client *client)
{
    if (client->closed)
        return;
    client->closed = true;
    if (client->agent->current == client)
        client->agent->current = NULL;
    uv_close((uv_handle_t *)&client->pipe, fake_agent_client_closed);
}

static void fake_agent_on_write(uv_write_t *req, int status)
{
    free(req->data);
    free(req);
}

static void fake_agent_write(struct fake_agent_client *client, const char *data, size_t len)
{
    uv_write_t *req;
    uv_buf_t buf;

    if (client->closed)
        return;
    req = qm_calloc(1, sizeof(*req));
    req->data = qm_strndup(data, len);
    buf = uv_buf_init(req->data, len);
    if (uv_write(req, (uv_stream_t *)&client->pipe, &buf, 1, fake_agent_on_write) < 0) {
        free(req->data);
        free(req);
    }
}

static void fake_agent_send(struct fake_agent_client *client, const char *text)
{
    if (client->agent->mode != FAKE_AGENT_BYTEWISE) {
        fake_agent_write(client, text, strlen(text));
        return;
    }
    for (size_t i = 0; text[i]; i++)
        fake_agent_write(client, text + i, 1);
}

static void fake_agent_delayed_fire(uv_timer_t *timer)
{
    struct fake_agent_delayed *d = timer->data;
    struct fake_agent *agent = d->agent;

    if (agent->current && agent->current->serial == d->client_serial)
        fake_agent_send(agent->current, d->text);
    else
        sb_add(&agent->stale, d->text);
    free(d->text);
    d->text = NULL;
}

static void fake_agent_reply(struct fake_agent_client *client, const char *text)
{
    struct fake_agent *agent = client->agent;
    struct fake_agent_delayed *d;

    if (agent->mode != FAKE_AGENT_SLOW) {
        fake_agent_send(client, text);
        return;
    }
    d = qm_calloc(1, sizeof(*d));
    d->agent = agent;
    d->client_serial = client->serial;
    d->text = qm_strdup(text);
    d->next = agent->delayed;
    agent->delayed = d;
    uv_timer_init(agent->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, fake_agent_delayed_fire, agent->reply_delay_ms, 0);
}

static void fake_agent_add_echo(struct strbuf *reply, yajl_val request)
{
    sb_add(reply, "{\"return\": ");
    qm_json_add_value(reply, qm_json_get(request, "arguments"));
}

static void fake_agent_execute(struct fake_agent_client *client, yajl_val request)
{
    struct fake_agent *agent = client->agent;
    const char *name = qm_json_get_string(request, "execute");
    yajl_val id = qm_json_get(request, "id");
    struct strbuf reply = {0};

    assert_non_null(name);
    sv_push(&agent->executed, name);
    if (agent->mode == FAKE_AGENT_SILENT)
        return;

    if (strcmp(name, "guest-sync-delimited") == 0) {
        long long sync_id;

        assert_true(qm_json_get_int(request, "arguments/id", &sync_id));
        if (agent->mode == FAKE_AGENT_STALE) {
            /* An old reply, an old sync reply and a reply cut off mid-way. */
            sb_add(&reply, "{\"return\": {\"stale\": 1}}\n");
            sb_add(&reply, "\xff{\"return\": 4242}\n");
            sb_add(&reply, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"stale\"}}\n");
            sb_add(&reply, "\xff{\"ret");
        }
        sb_addf(&reply, "\xff{\"return\": %lld}\n", sync_id);
        fake_agent_reply(client, reply.buf);
        sb_free(&reply);
        if (agent->mode == FAKE_AGENT_STOP_READING)
            uv_read_stop((uv_stream_t *)&client->pipe);
        if (agent->mode == FAKE_AGENT_HANGUP)
            fake_agent_client_close(client);
        return;
    }

    if (agent->mode == FAKE_AGENT_STALE)
        sb_add(&reply, "{\"return\": {\"wrong\": 1}, \"id\": 1}\n");
    if (strcmp(name, "guest-ping") == 0)
        sb_add(&reply, "{\"return\": {}");
    else if (strcmp(name, "guest-info") == 0)
        sb_add(&reply, "{\"return\": {\"version\": \"fake-1.0\"}");
    else if (strcmp(name, "fake-echo") == 0)
        fake_agent_add_echo(&reply, request);
    else
        sb_addf(&reply, "{\"error\": {\"class\": \"CommandNotFound\", "
                "\"desc\": \"The command %s has not been found\"}", name);
    if (id && agent->mode != FAKE_AGENT_NO_ID) {
        char *id_text = qm_json_dump(id);

        sb_addf(&reply, ", \"id\": %s", id_text);
        free(id_text);
    }
    sb_add(&reply, "}\n");
    fake_agent_reply(client, reply.buf);
    sb_free(&reply);
}

/* Handles complete lines. A sentinel byte drops a partial request. */
static void fake_agent_process(struct fake_agent_client *client)
{
    for (;;) {
        char *buf = client->input.buf;
        char *sentinel = memchr(buf, 0xff, client->input.len);
        char *newline = memchr(buf, '\n', client->input.len);
        size_t used;

        if (sentinel && (!newline || sentinel < newline)) {
            used = (size_t)(sentinel - buf) + 1;
        } else if (newline) {
            yajl_val request = qm_json_parse(buf, (size_t)(newline - buf), NULL);

            assert_true(YAJL_IS_OBJECT(request));
            fake_agent_execute(client, request);
            yajl_tree_free(request);
            used = (size_t)(newline - buf) + 1;
        } else {
            return;
        }
        if (client->closed)
            return;
        memmove(buf, buf + used, client->input.len - used);
        client->input.len -= used;
    }
}

static void fake_agent_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    buf->base = qm_malloc(suggested);
    buf->len = suggested;
}

static void fake_agent_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_agent_client *client = stream->data;

    if (nread < 0) {
        fake_agent_client_close(client);
    } else if (nread > 0) {
        sb_addn(&client->input, buf->base, (size_t)nread);
        fake_agent_process(client);
    }
    free(buf->base);
}

static void fake_agent_on_connection(uv_stream_t *server, int status)
{
    struct fake_agent *agent = server->data;
    struct fake_agent_client *client = qm_calloc(1, sizeof(*client));

    assert_int_equal(status, 0);
    client->agent = agent;
    client->serial = ++agent->connections;
    client->next = agent->clients;
    agent->clients = client;
    uv_pipe_init(agent->loop, &client->pipe, 0);
    client->pipe.data = client;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&client->pipe), 0);
    agent->current = client;
    if (agent->stale.len > 0) {
        fake_agent_write(client, agent->stale.buf, agent->stale.len);
        sb_reset(&agent->stale);
    }
    uv_read_start((uv_stream_t *)&client->pipe, fake_agent_alloc, fake_agent_on_read);
}

static void fake_agent_start(struct fake_agent *agent, uv_loop_t *loop, const char *dir)
{
    agent->loop = loop;
    snprintf(agent->path, sizeof(agent->path), "%s/agent.sock", dir);
    uv_pipe_init(loop, &agent->server, 0);
    agent->server.data = agent;
    assert_int_equal(uv_pipe_bind(&agent->server, agent->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&agent->server, 16, fake_agent_on_connection), 0);
}

static void fake_agent_stop(struct fake_agent *agent)
{
    uv_close((uv_handle_t *)&agent->server, NULL);
    for (struct fake_agent_client *c = agent->clients; c; c = c->next)
        fake_agent_client_close(c);
    for (struct fake_agent_delayed *d = agent->delayed; d; d = d->next)
        uv_close((uv_handle_t *)&d->timer, NULL);
    uv_run(agent->loop, UV_RUN_DEFAULT);

    while (agent->clients) {
        struct fake_agent_client *c = agent->clients;

        agent->clients = c->next;
        free(c);
    }
    while (agent->delayed) {
        struct fake_agent_delayed *d = agent->delayed;

        agent->delayed = d->next;
        free(d->text);
        free(d);
    }
    sb_free(&agent->stale);
    sv_free(&agent->executed);
    unlink(agent->path);
}

/* ---- test helpers ---- */

static int setup(void **state)
{
    struct fixture *f = qm_calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/qm-test-agent-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    uv_loop_init(&f->loop);
    fake_agent_start(&f->agent, &f->loop, f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fake_agent_stop(&f->agent);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void slot_reset(struct reply_slot *slot)
{
    free(slot->error_class);
    free(slot->error_desc);
    free(slot->ret_json);
    memset(slot, 0, sizeof(*slot));
}

static void on_reply(const struct qmp_reply *reply, void *opaque)
{
    struct reply_slot *slot = opaque;

    slot->calls++;
    slot->done = true;
    slot->result = reply->result;
    if (reply->error_class)
        slot->error_class = qm_strdup(reply->error_class);
    if (reply->error_desc)
        slot->error_desc = qm_strdup(reply->error_desc);
    if (reply->result == QMP_OK)
        slot->ret_json = qm_json_dump(reply->ret);
}

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

static void run_for(uv_loop_t *loop, unsigned ms)
{
    uv_timer_t wait;
    bool fired = false;

    uv_timer_init(loop, &wait);
    wait.data = &fired;
    uv_timer_start(&wait, on_guard_timer, ms, 0);
    run_until(loop, &fired);
    uv_close((uv_handle_t *)&wait, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs one exchange to its end. */
static void exchange(struct fixture *f, const char *command, const char *args,
                     unsigned timeout_ms, struct reply_slot *slot)
{
    struct qm_error err = {0};

    slot_reset(slot);
    assert_int_equal(agent_command(&f->loop, f->agent.path, command, args, timeout_ms,
                                   on_reply, slot, NULL, &err), 0);
    run_until(&f->loop, &slot->done);
    assert_int_equal(slot->calls, 1);
}

/* ---- tests ---- */

static void ping_after_sync(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    exchange(f, "guest-ping", NULL, 2000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{}");
    assert_int_equal(f->agent.executed.n, 2);
    assert_string_equal(f->agent.executed.v[0], "guest-sync-delimited");
    assert_string_equal(f->agent.executed.v[1], "guest-ping");
    slot_reset(&slot);

    exchange(f, "guest-info", NULL, 2000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{\"version\":\"fake-1.0\"}");
    assert_int_equal(f->agent.connections, 2);
    slot_reset(&slot);
}

static void arguments_reach_agent(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    exchange(f, "fake-echo", "{\"path\": \"/etc/hostname\", \"n\": 3}", 2000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{\"path\":\"/etc/hostname\",\"n\":3}");
    slot_reset(&slot);
}

static void error_reply_has_class(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    exchange(f, "guest-no-such", NULL, 2000, &slot);
    assert_int_equal(slot.result, QMP_ERROR);
    assert_string_equal(slot.error_class, "CommandNotFound");
    assert_non_null(strstr(slot.error_desc, "guest-no-such"));
    slot_reset(&slot);
}

static void stale_data_discarded(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    f->agent.mode = FAKE_AGENT_STALE;
    exchange(f, "guest-info", NULL, 2000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{\"version\":\"fake-1.0\"}");
    slot_reset(&slot);
}

static void late_command_reply_discarded(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    /*
     * Every reply comes 400 ms late: the sync reply at 400 ms is in time, the
     * command's reply at 800 ms is not, and waits for the next client.
     */
    f->agent.mode = FAKE_AGENT_SLOW;
    f->agent.reply_delay_ms = 400;
    exchange(f, "fake-echo", "{\"first\": true}", 600, &slot);
    assert_int_equal(slot.result, QMP_TIMEOUT);
    assert_non_null(strstr(slot.error_desc, "'fake-echo'"));
    assert_non_null(strstr(slot.error_desc, "timed out"));
    slot_reset(&slot);

    run_for(&f->loop, 400);
    assert_non_null(strstr(f->agent.stale.buf, "first"));

    f->agent.mode = FAKE_AGENT_NORMAL;

    exchange(f, "fake-echo", "{\"second\": true}", 2000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{\"second\":true}");
    assert_int_equal(f->agent.stale.len, 0);
    slot_reset(&slot);
}

static void late_sync_reply_discarded(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    /* The sync reply comes too late for the first client and reaches the second. */
    f->agent.mode = FAKE_AGENT_SLOW;
    f->agent.reply_delay_ms = 400;
    exchange(f, "guest-ping", NULL, 100, &slot);
    assert_int_equal(slot.result, QMP_TIMEOUT);
    assert_non_null(strstr(slot.error_desc, "guest-sync-delimited"));
    slot_reset(&slot);

    run_for(&f->loop, 500);
    assert_non_null(strstr(f->agent.stale.buf, "\xff{\"return\": "));

    f->agent.mode = FAKE_AGENT_NORMAL;
    exchange(f, "guest-info", NULL, 2000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{\"version\":\"fake-1.0\"}");
    slot_reset(&slot);
}

static void silent_agent_times_out(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    uint64_t start = uv_now(&f->loop);

    f->agent.mode = FAKE_AGENT_SILENT;
    exchange(f, "guest-ping", NULL, 300, &slot);
    assert_int_equal(slot.result, QMP_TIMEOUT);
    assert_non_null(strstr(slot.error_desc, "guest-sync-delimited"));
    assert_true(uv_now(&f->loop) - start >= 300);
    /* The command itself is never sent to an agent that did not sync. */
    assert_int_equal(f->agent.executed.n, 1);
    slot_reset(&slot);
}

static void unread_write_does_not_block(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    size_t big = 8u << 20;
    char *payload = qm_malloc(big + 1);
    char *args;
    uint64_t start;

    /* Far more than a socket buffer holds, to a peer that stopped reading. */
    memset(payload, 'x', big);
    payload[big] = '\0';
    args = qm_json_build("{\"data\": %s}", payload);
    free(payload);

    f->agent.mode = FAKE_AGENT_STOP_READING;
    start = uv_now(&f->loop);
    exchange(f, "fake-echo", args, 500, &slot);
    assert_int_equal(slot.result, QMP_TIMEOUT);
    assert_non_null(strstr(slot.error_desc, "'fake-echo'"));
    assert_true(uv_now(&f->loop) - start < 5000);
    free(args);
    slot_reset(&slot);
}

static void bytewise_replies_reassembled(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    f->agent.mode = FAKE_AGENT_BYTEWISE;
    exchange(f, "guest-info", NULL, 5000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{\"version\":\"fake-1.0\"}");
    slot_reset(&slot);
}

static void reply_without_id_accepted(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    f->agent.mode = FAKE_AGENT_NO_ID;
    exchange(f, "guest-ping", NULL, 2000, &slot);
    assert_int_equal(slot.result, QMP_OK);
    assert_string_equal(slot.ret_json, "{}");
    slot_reset(&slot);
}

static void hangup_reports_closed(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};

    f->agent.mode = FAKE_AGENT_HANGUP;
    exchange(f, "guest-ping", NULL, 2000, &slot);
    /* Either the write of the command or the read of its reply fails first. */
    assert_int_equal(slot.result, QMP_CLOSED);
    assert_non_null(strstr(slot.error_desc, f->agent.path));
    slot_reset(&slot);
}

static void missing_socket_reports_closed(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    char path[160];

    snprintf(path, sizeof(path), "%s/missing.sock", f->dir);
    assert_int_equal(agent_command(&f->loop, path, "guest-ping", NULL, 2000, on_reply, &slot,
                                   NULL, NULL), 0);
    assert_false(slot.done);
    run_until(&f->loop, &slot.done);
    assert_int_equal(slot.result, QMP_CLOSED);
    assert_non_null(strstr(slot.error_desc, path));
    assert_non_null(strstr(slot.error_desc, "no such file"));
    slot_reset(&slot);
}

static void invalid_input_rejected(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    struct qm_error err = {0};
    char path[200];

    assert_int_equal(agent_command(&f->loop, f->agent.path, "guest-ping", "[]", 2000, on_reply,
                                   &slot, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "not a JSON object"));

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(agent_command(&f->loop, path, "guest-ping", NULL, 2000, on_reply, &slot,
                                   NULL, &err), -1);
    assert_non_null(strstr(err.msg, "longer than"));
    assert_false(slot.done);
}

static void cancel_suppresses_callback(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slot = {0};
    struct agent_exchange *ex = NULL;

    f->agent.mode = FAKE_AGENT_SILENT;
    assert_int_equal(agent_command(&f->loop, f->agent.path, "guest-ping", NULL, 300, on_reply,
                                   &slot, &ex, NULL), 0);
    assert_non_null(ex);
    run_for(&f->loop, 100);
    agent_cancel(ex);

    /* Past the exchange's deadline: the callback must still not run. */
    run_for(&f->loop, 400);
    assert_false(slot.done);
}

static void parallel_exchanges(void **state)
{
    struct fixture *f = *state;
    struct reply_slot slots[10];

    memset(slots, 0, sizeof(slots));
    for (size_t i = 0; i < QM_ARRAY_SIZE(slots); i++) {
        char *args = qm_json_build("{\"n\": %d}", (int)i);

        assert_int_equal(agent_command(&f->loop, f->agent.path, "fake-echo", args, 2000,
                                       on_reply, &slots[i], NULL, NULL), 0);
        free(args);
    }
    for (size_t i = 0; i < QM_ARRAY_SIZE(slots); i++) {
        char expected[32];

        run_until(&f->loop, &slots[i].done);
        snprintf(expected, sizeof(expected), "{\"n\":%d}", (int)i);
        assert_int_equal(slots[i].result, QMP_OK);
        assert_string_equal(slots[i].ret_json, expected);
        slot_reset(&slots[i]);
    }
}

int main(void)
{
    /* Writes to a peer that has closed must fail with EPIPE, not kill the test. */
    signal(SIGPIPE, SIG_IGN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ping_after_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(arguments_reach_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(error_reply_has_class, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_data_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(late_command_reply_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(late_sync_reply_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_agent_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(unread_write_does_not_block, setup, teardown),
        cmocka_unit_test_setup_teardown(bytewise_replies_reassembled, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_without_id_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(hangup_reports_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_socket_reports_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_input_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_suppresses_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(parallel_exchanges, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

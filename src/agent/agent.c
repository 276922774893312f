/*
 * Guest-agent exchanges: connect, guest-sync-delimited, command, reply, each
 * under one deadline, with every libuv handle freed through its close callback.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "qm/agent.h"
#include "qm/json.h"

/* The sentinel byte that guest-sync-delimited puts before its reply. */
#define AGENT_SENTINEL '\xff'
/* Input limit without a complete message, so that a broken stream cannot grow the buffer forever. */
#define AGENT_MAX_MESSAGE (16u << 20)

enum agent_phase {
    AGENT_PHASE_CONNECTING,
    AGENT_PHASE_SYNCING,        /* guest-sync-delimited sent, discarding stale data */
    AGENT_PHASE_WAITING_REPLY,  /* command sent */
};

struct agent_exchange {
    uv_loop_t *loop;
    uv_pipe_t pipe;
    uv_connect_t connect_req;
    uv_timer_t timer;
    int open_handles;           /* freed when this drops to 0 */
    bool finished;              /* the callback ran or the exchange was cancelled */

    enum agent_phase phase;
    bool after_sentinel;        /* a sentinel arrived since the last discarded message */
    long long sync_id;
    long long command_id;
    unsigned timeout_ms;
    char *path;
    char *command;
    char *request;              /* the command line, sent after the sync reply */

    struct strbuf input;
    char read_buf[16384];

    agent_reply_cb cb;
    void *opaque;
};

struct agent_write {
    uv_write_t req;
    char *data;
};

static void agent_handle_closed(uv_handle_t *handle)
{
    struct agent_exchange *ex = handle->data;

    if (--ex->open_handles > 0)
        return;
    sb_free(&ex->input);
    free(ex->path);
    free(ex->command);
    free(ex->request);
    free(ex);
}

/* Closes the handles; the exchange is freed after libuv has released both. */
static void agent_shutdown(struct agent_exchange *ex)
{
    ex->finished = true;
    uv_timer_stop(&ex->timer);
    uv_close((uv_handle_t *)&ex->pipe, agent_handle_closed);
    uv_close((uv_handle_t *)&ex->timer, agent_handle_closed);
}

static void agent_finish(struct agent_exchange *ex, const struct qmp_reply *reply)
{
    if (ex->finished)
        return;
    agent_shutdown(ex);
    /* The exchange stays allocated until the close callbacks, after this call. */
    ex->cb(reply, ex->opaque);
}

static void agent_fail(struct agent_exchange *ex, enum qmp_result result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void agent_fail(struct agent_exchange *ex, enum qmp_result result, const char *fmt, ...)
{
    struct qmp_reply reply = {.result = result};
    char desc[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    reply.error_desc = desc;
    agent_finish(ex, &reply);
}

static void on_write(uv_write_t *req, int status)
{
    struct agent_write *w = (struct agent_write *)req;
    struct agent_exchange *ex = req->data;

    /* Write callbacks run before the close callback, so ex is still allocated. */
    if (status < 0 && status != UV_ECANCELED && !ex->finished)
        agent_fail(ex, QMP_CLOSED, "writing to guest agent socket %s failed: %s", ex->path,
                   uv_strerror(status));
    free(w->data);
    free(w);
}

/* Queues len bytes of data for writing and takes ownership of data. */
static void agent_write(struct agent_exchange *ex, char *data, size_t len)
{
    struct agent_write *w = qm_calloc(1, sizeof(*w));
    uv_buf_t buf = uv_buf_init(data, len);
    int rc;

    w->data = data;
    w->req.data = ex;
    rc = uv_write(&w->req, (uv_stream_t *)&ex->pipe, &buf, 1, on_write);
    if (rc < 0) {
        free(w->data);
        free(w);
        agent_fail(ex, QMP_CLOSED, "writing to guest agent socket %s failed: %s", ex->path,
                   uv_strerror(rc));
    }
}

static void agent_handle_sync_reply(struct agent_exchange *ex, yajl_val msg)
{
    long long id;

    if (qm_json_get_int(msg, "return", &id) && id == ex->sync_id) {
        ex->phase = AGENT_PHASE_WAITING_REPLY;
        agent_write(ex, ex->request, strlen(ex->request));
        ex->request = NULL;
        return;
    }
    /* A reply left over from an earlier client: skip to the next sentinel. */
    qm_log(QM_LOG_DEBUG, 0, "discarding a stale guest agent message on %s", ex->path);
    ex->after_sentinel = false;
}

static void agent_handle_command_reply(struct agent_exchange *ex, yajl_val msg)
{
    struct qmp_reply reply = {0};
    yajl_val error = qm_json_get(msg, "error");
    long long id;

    /* An agent that echoes ids lets us skip anything that is not our reply. */
    if (qm_json_get_int(msg, "id", &id) && id != ex->command_id)
        return;
    if (error) {
        reply.result = QMP_ERROR;
        reply.error_class = qm_json_get_string(error, "class");
        reply.error_desc = qm_json_get_string(error, "desc");
        if (!reply.error_class)
            reply.error_class = "GenericError";
        if (!reply.error_desc)
            reply.error_desc = "the guest agent returned an error without a description";
    } else if (qm_json_get(msg, "return")) {
        reply.result = QMP_OK;
        reply.ret = qm_json_get(msg, "return");
    } else {
        return;
    }
    agent_finish(ex, &reply);
}

static void agent_handle_line(struct agent_exchange *ex, const char *line, size_t len)
{
    yajl_val msg;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return;
    msg = qm_json_parse(line, len, NULL);
    if (!YAJL_IS_OBJECT(msg)) {
        /* Garbage, such as the tail of a reply cut off for an earlier client. */
        if (ex->phase == AGENT_PHASE_SYNCING)
            ex->after_sentinel = false;
        yajl_tree_free(msg);
        return;
    }
    if (ex->phase == AGENT_PHASE_SYNCING)
        agent_handle_sync_reply(ex, msg);
    else
        agent_handle_command_reply(ex, msg);
    yajl_tree_free(msg);
}

static void agent_consume(struct agent_exchange *ex, size_t n)
{
    memmove(ex->input.buf, ex->input.buf + n, ex->input.len - n);
    ex->input.len -= n;
    ex->input.buf[ex->input.len] = '\0';
}

/*
 * Splits the input into newline-terminated messages. A sentinel byte resets
 * the parser wherever it appears, because it never occurs in valid JSON text.
 */
static void agent_process_input(struct agent_exchange *ex)
{
    while (!ex->finished && ex->input.len > 0) {
        char *start = ex->input.buf;
        char *sentinel = memchr(start, AGENT_SENTINEL, ex->input.len);
        char *newline;

        if (ex->phase == AGENT_PHASE_SYNCING && !ex->after_sentinel) {
            if (!sentinel) {
                agent_consume(ex, ex->input.len);
                return;
            }
            agent_consume(ex, (size_t)(sentinel - start) + 1);
            ex->after_sentinel = true;
            continue;
        }
        newline = memchr(start, '\n', ex->input.len);
        if (sentinel && (!newline || sentinel < newline)) {
            agent_consume(ex, (size_t)(sentinel - start) + 1);
            ex->after_sentinel = true;
            continue;
        }
        if (!newline)
            return;
        agent_handle_line(ex, start, (size_t)(newline - start));
        if (ex->finished)
            return;
        agent_consume(ex, (size_t)(newline - start) + 1);
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct agent_exchange *ex = handle->data;

    *buf = uv_buf_init(ex->read_buf, sizeof(ex->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct agent_exchange *ex = stream->data;

    if (ex->finished)
        return;
    if (nread < 0) {
        agent_fail(ex, QMP_CLOSED, "guest agent connection on %s closed before the reply to '%s': %s",
                   ex->path, ex->command, uv_strerror((int)nread));
        return;
    }
    sb_addn(&ex->input, buf->base, (size_t)nread);
    agent_process_input(ex);
    if (!ex->finished && ex->input.len > AGENT_MAX_MESSAGE)
        agent_fail(ex, QMP_CLOSED, "guest agent message on %s exceeds %u bytes", ex->path,
                   AGENT_MAX_MESSAGE);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct agent_exchange *ex = req->data;
    char *sync;
    int rc;

    if (ex->finished)
        return;
    if (status < 0) {
        agent_fail(ex, QMP_CLOSED, "connecting to guest agent socket %s failed: %s", ex->path,
                   uv_strerror(status));
        return;
    }
    rc = uv_read_start((uv_stream_t *)&ex->pipe, on_alloc, on_read);
    if (rc < 0) {
        agent_fail(ex, QMP_CLOSED, "reading from guest agent socket %s failed: %s", ex->path,
                   uv_strerror(rc));
        return;
    }
    /*
     * The leading sentinel is invalid in JSON, so it ends any partial request
     * that an earlier client left in the agent's parser.
     */
    ex->phase = AGENT_PHASE_SYNCING;
    sync = qm_sprintf("%c{\"execute\": \"guest-sync-delimited\", \"arguments\": "
                      "{\"id\": %lld}}\n", AGENT_SENTINEL, ex->sync_id);
    agent_write(ex, sync, strlen(sync));
}

static void on_timer(uv_timer_t *timer)
{
    struct agent_exchange *ex = timer->data;

    if (ex->phase == AGENT_PHASE_WAITING_REPLY)
        agent_fail(ex, QMP_TIMEOUT, "guest agent command '%s' on %s timed out after %u ms",
                   ex->command, ex->path, ex->timeout_ms);
    else
        agent_fail(ex, QMP_TIMEOUT, "guest agent on %s did not respond to guest-sync-delimited "
                   "within %u ms: check that the agent runs in the guest",
                   ex->path, ex->timeout_ms);
}

static long long agent_random_id(void)
{
    uint32_t r = 0;

    if (uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) < 0)
        r = (uint32_t)uv_hrtime();
    /* Positive, and leaves room for the command id right after it. */
    return (long long)(r & 0x3fffffff) + 1;
}

int agent_command(uv_loop_t *loop, const char *socket_path, const char *command,
                  const char *args_json, unsigned timeout_ms, agent_reply_cb cb,
                  void *opaque, struct agent_exchange **exchange_out, struct qm_error *err)
{
    struct sockaddr_un addr;
    struct agent_exchange *ex;

    if (!socket_path || !*socket_path)
        return qm_fail(err, 500, "guest agent socket path is empty");
    if (strlen(socket_path) >= sizeof(addr.sun_path))
        return qm_fail(err, 500, "guest agent socket path is longer than %zu bytes: %s",
                       sizeof(addr.sun_path) - 1, socket_path);
    if (args_json) {
        struct qm_error parse_err;
        yajl_val args = qm_json_parse(args_json, strlen(args_json), &parse_err);
        bool is_object = YAJL_IS_OBJECT(args);

        yajl_tree_free(args);
        if (!is_object)
            return qm_fail(err, 500,
                           "arguments of guest agent command '%s' are not a JSON object: %s",
                           command, args ? "wrong type" : parse_err.msg);
    }

    ex = qm_calloc(1, sizeof(*ex));
    ex->loop = loop;
    ex->path = qm_strdup(socket_path);
    ex->command = qm_strdup(command);
    ex->timeout_ms = timeout_ms;
    ex->sync_id = agent_random_id();
    ex->command_id = ex->sync_id + 1;
    if (args_json)
        ex->request = qm_json_build("{\"execute\": %s, \"arguments\": %j, \"id\": %lld}\n",
                                    command, args_json, ex->command_id);
    else
        ex->request = qm_json_build("{\"execute\": %s, \"id\": %lld}\n", command,
                                    ex->command_id);
    ex->cb = cb;
    ex->opaque = opaque;

    uv_pipe_init(loop, &ex->pipe, 0);
    ex->pipe.data = ex;
    uv_timer_init(loop, &ex->timer);
    ex->timer.data = ex;
    ex->open_handles = 2;
    uv_timer_start(&ex->timer, on_timer, timeout_ms, 0);
    ex->phase = AGENT_PHASE_CONNECTING;
    ex->connect_req.data = ex;
    uv_pipe_connect(&ex->connect_req, &ex->pipe, socket_path, on_connect);

    if (exchange_out)
        *exchange_out = ex;
    return 0;
}

void agent_cancel(struct agent_exchange *exchange)
{
    if (!exchange || exchange->finished)
        return;
    agent_shutdown(exchange);
}

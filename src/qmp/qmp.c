/*
 * QMP client: connection with retries, greeting and capabilities handshake,
 * commands matched to replies by id, events, timeouts and deferred freeing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "qm/json.h"
#include "qm/qmp.h"

/* Delay between two connection attempts while the socket does not accept yet. */
#define QMP_RETRY_MS 50
/*
 * Largest message accepted. The reply to query-qmp-schema from QEMU 7.2 with
 * -machine none is 207 KB, so a message near this limit means a broken stream.
 */
#define QMP_MAX_MESSAGE (64u << 20)

enum qmp_state {
    QMP_STATE_CONNECTING,    /* connection attempts, maybe waiting for a retry */
    QMP_STATE_GREETING,      /* connected, waiting for the greeting */
    QMP_STATE_CAPABILITIES,  /* qmp_capabilities sent, waiting for its reply */
    QMP_STATE_READY,
    QMP_STATE_DISCONNECTED,  /* the handshake failed or QEMU closed the connection */
};

struct qmp_pending {
    struct qmp_pending *next;
    long long id;
    char *command;
    char *request;           /* the request line until it is written, then NULL */
    uint64_t deadline;       /* uv_now() time in ms */
    qmp_reply_cb cb;
    void *opaque;
};

struct qmp {
    uv_loop_t *loop;
    char *path;
    enum qmp_state state;
    bool closing;            /* qmp_close() was called */
    int open_handles;        /* the struct is freed when closing and this is 0 */

    uv_pipe_t *pipe;         /* a new handle for each connection attempt */
    uv_connect_t connect_req;
    uv_timer_t timer;        /* handshake deadline, retries, command deadlines */
    unsigned connect_timeout_ms;
    uint64_t connect_deadline;
    uint64_t retry_at;       /* 0: no retry scheduled */
    int last_connect_error;  /* libuv error of the latest attempt, for messages */

    unsigned timeout_ms;
    long long next_id;
    struct qmp_pending *pending_head;
    struct qmp_pending *pending_tail;

    struct strbuf input;     /* bytes received but not yet parsed */
    char read_buf[65536];

    struct qmp_version version;
    char *package;

    struct qmp_callbacks callbacks;
    void *opaque;
};

struct qmp_write {
    uv_write_t req;
    char *data;
};

static void qmp_arm_timer(struct qmp *qmp);
static void qmp_start_attempt(struct qmp *qmp);

static void qmp_free(struct qmp *qmp)
{
    sb_free(&qmp->input);
    free(qmp->package);
    free(qmp->path);
    free(qmp);
}

static void qmp_handle_released(struct qmp *qmp)
{
    qmp->open_handles--;
    if (qmp->closing && qmp->open_handles == 0)
        qmp_free(qmp);
}

static void on_pipe_closed(uv_handle_t *handle)
{
    struct qmp *qmp = handle->data;

    free(handle);
    qmp_handle_released(qmp);
}

static void on_timer_closed(uv_handle_t *handle)
{
    qmp_handle_released(handle->data);
}

static void qmp_close_pipe(struct qmp *qmp)
{
    if (!qmp->pipe)
        return;
    uv_close((uv_handle_t *)qmp->pipe, on_pipe_closed);
    qmp->pipe = NULL;
}

static void on_write(uv_write_t *req, int status)
{
    struct qmp_write *w = (struct qmp_write *)req;

    /* A broken connection also ends the read side, which fails the commands. */
    if (status < 0 && status != UV_ECANCELED)
        qm_log(QM_LOG_DEBUG, 0, "writing to QMP socket failed: %s", uv_strerror(status));
    free(w->data);
    free(w);
}

/* Queues text for writing and takes ownership of it. */
static void qmp_write(struct qmp *qmp, char *text)
{
    struct qmp_write *w = qm_calloc(1, sizeof(*w));
    uv_buf_t buf = uv_buf_init(text, strlen(text));
    int rc;

    w->data = text;
    rc = uv_write(&w->req, (uv_stream_t *)qmp->pipe, &buf, 1, on_write);
    if (rc < 0) {
        qm_log(QM_LOG_DEBUG, 0, "writing to QMP socket %s failed: %s", qmp->path,
               uv_strerror(rc));
        free(w->data);
        free(w);
    }
}

static void pending_free(struct qmp_pending *p)
{
    free(p->command);
    free(p->request);
    free(p);
}

/* Calls the command's callback with a local failure and frees the entry. */
static void pending_fail(struct qmp *qmp, struct qmp_pending *p, enum qmp_result result,
                         const char *desc)
{
    struct qmp_reply reply = {.result = result, .error_desc = desc};

    p->cb(qmp, &reply, p->opaque);
    pending_free(p);
}

/* Completes every pending command. Callbacks may close qmp or send commands. */
static void qmp_fail_pending(struct qmp *qmp, const char *desc)
{
    struct qmp_pending *p = qmp->pending_head;

    qmp->pending_head = NULL;
    qmp->pending_tail = NULL;
    while (p) {
        struct qmp_pending *next = p->next;

        pending_fail(qmp, p, QMP_CLOSED, desc);
        p = next;
    }
}

static struct qmp_pending *pending_take(struct qmp *qmp, long long id)
{
    struct qmp_pending *prev = NULL;

    for (struct qmp_pending *p = qmp->pending_head; p; prev = p, p = p->next) {
        if (p->id != id)
            continue;
        if (prev)
            prev->next = p->next;
        else
            qmp->pending_head = p->next;
        if (qmp->pending_tail == p)
            qmp->pending_tail = prev;
        p->next = NULL;
        return p;
    }
    return NULL;
}

/* Ends the handshake with a failure: queued commands fail, then ready reports it. */
static void qmp_fail_handshake(struct qmp *qmp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void qmp_fail_handshake(struct qmp *qmp, const char *fmt, ...)
{
    struct qm_error err = {.code = 500};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);

    qmp->state = QMP_STATE_DISCONNECTED;
    qmp->retry_at = 0;
    qmp_close_pipe(qmp);
    qmp_fail_pending(qmp, err.msg);
    if (!qmp->closing && qmp->callbacks.ready)
        qmp->callbacks.ready(qmp, &err, qmp->opaque);
    qmp_arm_timer(qmp);
}

/* Handles the end of an established connection: EOF or a read error. */
static void qmp_connection_lost(struct qmp *qmp, int status)
{
    char desc[256];

    /* A peer killed with unread input resets the connection instead of closing it. */
    if (status == UV_EOF || status == UV_ECONNRESET)
        snprintf(desc, sizeof(desc), "QMP connection closed");
    else
        snprintf(desc, sizeof(desc), "QMP connection closed: %s", uv_strerror(status));

    if (qmp->state != QMP_STATE_READY) {
        qmp_fail_handshake(qmp, "%s during the handshake on %s", desc, qmp->path);
        return;
    }
    qm_log(QM_LOG_DEBUG, 0, "%s on %s", desc, qmp->path);
    qmp->state = QMP_STATE_DISCONNECTED;
    qmp_close_pipe(qmp);
    qmp_fail_pending(qmp, desc);
    if (!qmp->closing && qmp->callbacks.closed)
        qmp->callbacks.closed(qmp, qmp->opaque);
    qmp_arm_timer(qmp);
}

static void qmp_send_queued(struct qmp *qmp)
{
    for (struct qmp_pending *p = qmp->pending_head; p; p = p->next) {
        if (!p->request)
            continue;
        qmp_write(qmp, p->request);
        p->request = NULL;
    }
}

static void qmp_handle_greeting(struct qmp *qmp, yajl_val msg)
{
    yajl_val greeting = qm_json_get(msg, "QMP");
    long long n;
    const char *package;

    if (!YAJL_IS_OBJECT(greeting)) {
        qmp_fail_handshake(qmp, "invalid QMP greeting on %s: no \"QMP\" object", qmp->path);
        return;
    }
    if (qm_json_get_int(greeting, "version/qemu/major", &n))
        qmp->version.major = (int)n;
    if (qm_json_get_int(greeting, "version/qemu/minor", &n))
        qmp->version.minor = (int)n;
    if (qm_json_get_int(greeting, "version/qemu/micro", &n))
        qmp->version.micro = (int)n;
    package = qm_json_get_string(greeting, "version/package");
    free(qmp->package);
    qmp->package = qm_strdup(package ? package : "");
    qmp->version.package = qmp->package;

    qmp->state = QMP_STATE_CAPABILITIES;
    qmp_write(qmp, qm_strdup("{\"execute\": \"qmp_capabilities\"}\n"));
}

static void qmp_handle_capabilities(struct qmp *qmp, yajl_val msg)
{
    yajl_val error = qm_json_get(msg, "error");

    if (error) {
        const char *desc = qm_json_get_string(error, "desc");

        qmp_fail_handshake(qmp, "qmp_capabilities failed on %s: %s", qmp->path,
                           desc ? desc : "no description");
        return;
    }
    if (!qm_json_get(msg, "return"))
        return;   /* not the reply: QEMU sends no events before it, but be lenient */

    qmp->state = QMP_STATE_READY;
    qmp_send_queued(qmp);
    qmp_arm_timer(qmp);
    if (qmp->callbacks.ready)
        qmp->callbacks.ready(qmp, NULL, qmp->opaque);
}

static void qmp_handle_event(struct qmp *qmp, yajl_val msg)
{
    struct qmp_event event = {0};
    long long n;

    if (!qmp->callbacks.event)
        return;
    event.name = qm_json_get_string(msg, "event");
    if (!event.name)
        event.name = "";
    event.data = qm_json_get(msg, "data");
    if (qm_json_get_int(msg, "timestamp/seconds", &n))
        event.seconds = n;
    if (qm_json_get_int(msg, "timestamp/microseconds", &n))
        event.microseconds = n;
    qmp->callbacks.event(qmp, &event, qmp->opaque);
}

static void qmp_handle_reply(struct qmp *qmp, yajl_val msg)
{
    struct qmp_reply reply = {0};
    struct qmp_pending *p;
    yajl_val error;
    long long id;

    if (!qm_json_get_int(msg, "id", &id)) {
        qm_log(QM_LOG_WARNING, 0, "QMP reply without a valid id on %s, ignored", qmp->path);
        return;
    }
    p = pending_take(qmp, id);
    if (!p) {
        /* The command timed out before: its late reply has no one waiting. */
        qm_log(QM_LOG_DEBUG, 0, "QMP reply for unknown id %lld on %s, ignored", id, qmp->path);
        return;
    }
    error = qm_json_get(msg, "error");
    if (error) {
        reply.result = QMP_ERROR;
        reply.error_class = qm_json_get_string(error, "class");
        reply.error_desc = qm_json_get_string(error, "desc");
        if (!reply.error_class)
            reply.error_class = "GenericError";
        if (!reply.error_desc)
            reply.error_desc = "QEMU returned an error without a description";
    } else {
        reply.result = QMP_OK;
        reply.ret = qm_json_get(msg, "return");
    }
    p->cb(qmp, &reply, p->opaque);
    pending_free(p);
    qmp_arm_timer(qmp);
}

static void qmp_handle_line(struct qmp *qmp, const char *line, size_t len)
{
    struct qm_error err;
    yajl_val msg;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return;
    msg = qm_json_parse(line, len, &err);
    if (!YAJL_IS_OBJECT(msg)) {
        qm_log(QM_LOG_WARNING, 0, "invalid QMP message on %s, ignored: %s", qmp->path,
               msg ? "not a JSON object" : err.msg);
        yajl_tree_free(msg);
        return;
    }

    switch (qmp->state) {
    case QMP_STATE_GREETING:
        qmp_handle_greeting(qmp, msg);
        break;
    case QMP_STATE_CAPABILITIES:
        qmp_handle_capabilities(qmp, msg);
        break;
    case QMP_STATE_READY:
        if (qm_json_get(msg, "event"))
            qmp_handle_event(qmp, msg);
        else if (qm_json_get(msg, "return") || qm_json_get(msg, "error"))
            qmp_handle_reply(qmp, msg);
        else
            qm_log(QM_LOG_WARNING, 0, "unexpected QMP message on %s, ignored", qmp->path);
        break;
    default:
        break;
    }
    yajl_tree_free(msg);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct qmp *qmp = handle->data;

    /* One buffer suffices: on_read consumes it before the next read. */
    *buf = uv_buf_init(qmp->read_buf, sizeof(qmp->read_buf));
}

/* Handles every complete line in the input; keeps a trailing partial one. */
static void qmp_process_input(struct qmp *qmp)
{
    size_t start = 0;

    while (start < qmp->input.len) {
        char *nl = memchr(qmp->input.buf + start, '\n', qmp->input.len - start);
        size_t len;

        if (!nl)
            break;
        len = (size_t)(nl - (qmp->input.buf + start));
        qmp_handle_line(qmp, qmp->input.buf + start, len);
        start += len + 1;
        /* A callback may have closed the connection: drop the rest. */
        if (qmp->closing || qmp->state == QMP_STATE_DISCONNECTED) {
            sb_reset(&qmp->input);
            return;
        }
    }
    memmove(qmp->input.buf, qmp->input.buf + start, qmp->input.len - start);
    qmp->input.len -= start;
    qmp->input.buf[qmp->input.len] = '\0';
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct qmp *qmp = stream->data;

    if (nread < 0) {
        qmp_connection_lost(qmp, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    sb_addn(&qmp->input, buf->base, (size_t)nread);
    qmp_process_input(qmp);
    if (qmp->closing || qmp->state == QMP_STATE_DISCONNECTED)
        return;
    if (qmp->input.len > QMP_MAX_MESSAGE) {
        qm_log(QM_LOG_ERR, 0, "QMP message on %s exceeds %u bytes, closing the connection",
               qmp->path, QMP_MAX_MESSAGE);
        qmp_connection_lost(qmp, UV_E2BIG);
    }
}

static bool connect_error_is_transient(int status)
{
    /* The socket is not there yet, or QEMU has not started listening. */
    return status == UV_ENOENT || status == UV_ECONNREFUSED || status == UV_EAGAIN;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct qmp *qmp = req->data;
    int rc;

    /* The pipe was closed while connecting: qmp_close() or a deadline. */
    if (status == UV_ECANCELED || qmp->closing || qmp->state != QMP_STATE_CONNECTING)
        return;
    qmp->last_connect_error = status;
    if (status < 0) {
        qmp_close_pipe(qmp);
        if (!connect_error_is_transient(status)) {
            qmp_fail_handshake(qmp, "connecting to QMP socket %s failed: %s", qmp->path,
                               uv_strerror(status));
            return;
        }
        qmp->retry_at = uv_now(qmp->loop) + QMP_RETRY_MS;
        qmp_arm_timer(qmp);
        return;
    }
    qmp->state = QMP_STATE_GREETING;
    rc = uv_read_start((uv_stream_t *)qmp->pipe, on_alloc, on_read);
    if (rc < 0)
        qmp_fail_handshake(qmp, "reading from QMP socket %s failed: %s", qmp->path,
                           uv_strerror(rc));
}

static void qmp_start_attempt(struct qmp *qmp)
{
    qmp->pipe = qm_calloc(1, sizeof(*qmp->pipe));
    uv_pipe_init(qmp->loop, qmp->pipe, 0);
    qmp->pipe->data = qmp;
    qmp->open_handles++;
    qmp->connect_req.data = qmp;
    uv_pipe_connect(&qmp->connect_req, qmp->pipe, qmp->path, on_connect);
}

static void qmp_expire_commands(struct qmp *qmp, uint64_t now)
{
    struct qmp_pending *expired = NULL;
    struct qmp_pending **link = &qmp->pending_head;

    /* Unlink first, so that callbacks see a consistent list. */
    qmp->pending_tail = NULL;
    while (*link) {
        struct qmp_pending *p = *link;

        if (p->deadline <= now) {
            *link = p->next;
            p->next = expired;
            expired = p;
        } else {
            qmp->pending_tail = p;
            link = &p->next;
        }
    }
    while (expired) {
        struct qmp_pending *p = expired;
        char desc[256];

        expired = p->next;
        snprintf(desc, sizeof(desc), "QMP command '%s' timed out on %s", p->command,
                 qmp->path);
        qm_log(QM_LOG_WARNING, 0, "%s", desc);
        pending_fail(qmp, p, QMP_TIMEOUT, desc);
    }
}

static void on_timer(uv_timer_t *timer)
{
    struct qmp *qmp = timer->data;
    uint64_t now = uv_now(qmp->loop);

    if (qmp->state < QMP_STATE_READY && now >= qmp->connect_deadline) {
        int last = qmp->last_connect_error;

        if (qmp->state == QMP_STATE_CONNECTING && last < 0)
            qmp_fail_handshake(qmp, "connecting to QMP socket %s timed out after %u ms: %s",
                               qmp->path, qmp->connect_timeout_ms, uv_strerror(last));
        else
            qmp_fail_handshake(qmp, "QMP handshake on %s timed out after %u ms", qmp->path,
                               qmp->connect_timeout_ms);
        return;
    }
    if (qmp->retry_at && now >= qmp->retry_at) {
        qmp->retry_at = 0;
        qmp_start_attempt(qmp);
    }
    qmp_expire_commands(qmp, now);
    qmp_arm_timer(qmp);
}

/* Starts the timer for the earliest of the handshake deadline, a retry and a command deadline. */
static void qmp_arm_timer(struct qmp *qmp)
{
    uint64_t next = UINT64_MAX;
    uint64_t now;

    if (qmp->closing)
        return;
    if (qmp->state < QMP_STATE_READY)
        next = qmp->connect_deadline;
    if (qmp->retry_at && qmp->retry_at < next)
        next = qmp->retry_at;
    for (struct qmp_pending *p = qmp->pending_head; p; p = p->next) {
        if (p->deadline < next)
            next = p->deadline;
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&qmp->timer);
        return;
    }
    now = uv_now(qmp->loop);
    uv_timer_start(&qmp->timer, on_timer, next > now ? next - now : 0, 0);
}

int qmp_connect(uv_loop_t *loop, const char *path, unsigned timeout_ms,
                const struct qmp_callbacks *callbacks, void *opaque,
                struct qmp **out, struct qm_error *err)
{
    struct sockaddr_un addr;
    struct qmp *qmp;

    if (!path || !*path)
        return qm_fail(err, 500, "QMP socket path is empty");
    if (strlen(path) >= sizeof(addr.sun_path))
        return qm_fail(err, 500, "QMP socket path is longer than %zu bytes: %s",
                       sizeof(addr.sun_path) - 1, path);

    qmp = qm_calloc(1, sizeof(*qmp));
    qmp->loop = loop;
    qmp->path = qm_strdup(path);
    qmp->state = QMP_STATE_CONNECTING;
    qmp->connect_timeout_ms = timeout_ms;
    qmp->timeout_ms = QMP_DEFAULT_TIMEOUT_MS;
    qmp->next_id = 1;
    qmp->package = qm_strdup("");
    qmp->version.package = qmp->package;
    if (callbacks)
        qmp->callbacks = *callbacks;
    qmp->opaque = opaque;

    uv_timer_init(loop, &qmp->timer);
    qmp->timer.data = qmp;
    qmp->open_handles++;
    qmp->connect_deadline = uv_now(loop) + timeout_ms;
    qmp_start_attempt(qmp);
    qmp_arm_timer(qmp);
    *out = qmp;
    return 0;
}

void qmp_close(struct qmp *qmp)
{
    if (!qmp || qmp->closing)
        return;
    qmp->closing = true;
    qmp->state = QMP_STATE_DISCONNECTED;
    qmp_close_pipe(qmp);
    qmp_fail_pending(qmp, "QMP connection closed");
    uv_timer_stop(&qmp->timer);
    uv_close((uv_handle_t *)&qmp->timer, on_timer_closed);
}

int qmp_command_timeout(struct qmp *qmp, const char *command, const char *args_json,
                        unsigned timeout_ms, qmp_reply_cb cb, void *opaque,
                        struct qm_error *err)
{
    struct qmp_pending *p;

    if (qmp->closing || qmp->state == QMP_STATE_DISCONNECTED)
        return qm_fail(err, 500, "QMP command '%s' failed: connection to %s is closed",
                       command, qmp->path);
    if (args_json) {
        struct qm_error parse_err;
        yajl_val args = qm_json_parse(args_json, strlen(args_json), &parse_err);
        bool is_object = YAJL_IS_OBJECT(args);

        yajl_tree_free(args);
        if (!is_object)
            return qm_fail(err, 500, "arguments of QMP command '%s' are not a JSON object: %s",
                           command, args ? "wrong type" : parse_err.msg);
    }

    p = qm_calloc(1, sizeof(*p));
    p->id = qmp->next_id++;
    p->command = qm_strdup(command);
    if (args_json)
        p->request = qm_json_build("{\"execute\": %s, \"arguments\": %j, \"id\": %lld}\n",
                                   command, args_json, p->id);
    else
        p->request = qm_json_build("{\"execute\": %s, \"id\": %lld}\n", command, p->id);
    p->deadline = uv_now(qmp->loop) + (timeout_ms ? timeout_ms : qmp->timeout_ms);
    p->cb = cb;
    p->opaque = opaque;

    if (qmp->pending_tail)
        qmp->pending_tail->next = p;
    else
        qmp->pending_head = p;
    qmp->pending_tail = p;

    if (qmp->state == QMP_STATE_READY) {
        qmp_write(qmp, p->request);
        p->request = NULL;
    }
    qmp_arm_timer(qmp);
    return 0;
}

int qmp_command(struct qmp *qmp, const char *command, const char *args_json,
                qmp_reply_cb cb, void *opaque, struct qm_error *err)
{
    return qmp_command_timeout(qmp, command, args_json, 0, cb, opaque, err);
}

struct qmp_hmp_call {
    qmp_hmp_cb cb;
    void *opaque;
};

static void on_hmp_reply(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct qmp_hmp_call *call = opaque;
    const char *output = NULL;

    if (reply->result == QMP_OK)
        output = YAJL_GET_STRING(reply->ret) ? YAJL_GET_STRING(reply->ret) : "";
    call->cb(qmp, output, reply, call->opaque);
    free(call);
}

int qmp_hmp_command(struct qmp *qmp, const char *command_line, qmp_hmp_cb cb,
                    void *opaque, struct qm_error *err)
{
    struct qmp_hmp_call *call = qm_calloc(1, sizeof(*call));
    char *args = qm_json_build("{\"command-line\": %s}", command_line);
    int rc;

    call->cb = cb;
    call->opaque = opaque;
    rc = qmp_command(qmp, "human-monitor-command", args, on_hmp_reply, call, err);
    free(args);
    if (rc < 0)
        free(call);
    return rc;
}

void qmp_set_timeout(struct qmp *qmp, unsigned timeout_ms)
{
    qmp->timeout_ms = timeout_ms ? timeout_ms : QMP_DEFAULT_TIMEOUT_MS;
}

const struct qmp_version *qmp_get_version(const struct qmp *qmp)
{
    return &qmp->version;
}

const char *qmp_get_path(const struct qmp *qmp)
{
    return qmp->path;
}

/*
 * The HTTP/1.1 server: listeners, connections, request parsing with llhttp
 * and responses, over plain sockets or mbedTLS.
 *
 * A connection reads into a byte buffer (ciphertext first on TLS, which
 * mbedTLS decrypts into the plaintext buffer through memory BIO callbacks),
 * feeds llhttp, and pauses the parser at the end of each request until the
 * handler responds. Responses are appended to an output buffer and written
 * with one uv_write; a second buffer takes new output while a write is in
 * flight. Buffers are reused across requests, so a keep-alive request needs
 * no allocation once they have grown.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <llhttp.h>
#include <mbedtls/ssl.h>

#include "qm/http.h"
#include "http-tls.h"

/* Free space offered to each socket read: one TLS record is at most 16 KiB plus overhead. */
#define READ_CHUNK (17 * 1024)
/* Unparsed input beyond which reading stops while a request is pending. */
#define INPUT_HIGH_WATER (64 * 1024)
/* Unwritten output beyond which pipelined requests wait for the socket. */
#define OUTPUT_HIGH_WATER (256 * 1024)
/* After the last response, how long to drain input before closing anyway. */
#define LINGER_TIMEOUT_MS 2000
#define LISTEN_BACKLOG 511
#define MAX_REASON_LEN 256

/* Bytes with a consumed prefix, so that parsing from the front needs no memmove. */
struct byte_buf {
    char *data;
    size_t start;
    size_t end;
    size_t cap;
};

struct header_slot {
    size_t name_off;   /* offsets into conn->head */
    size_t value_off;
};

enum header_state { HS_URL, HS_NAME, HS_VALUE };

struct http_listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    struct http_server *srv;
    const struct http_tls *tls;
    bool is_unix;
    char *path;        /* unix socket, removed on close */
    struct http_listener *next;
};

struct http_conn {
    struct http_request req;   /* handed to the handler */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;          /* idle timeout, then the linger timeout */
    struct http_server *srv;   /* NULL once detached from a closed server */
    struct http_conn *prev, *next;
    int open_handles;

    llhttp_t parser;
    const struct http_tls *tls;
    mbedtls_ssl_context ssl;
    bool handshake_done;

    struct byte_buf in;        /* plaintext not yet parsed */
    struct byte_buf tls_in;    /* ciphertext not yet decrypted */
    struct strbuf out;         /* bytes for the next write */
    struct strbuf writing;     /* bytes of the write in flight */
    struct strbuf plain;       /* TLS: a response before encryption */
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;

    /* The request being parsed or handled. */
    struct strbuf head;        /* URL, then names and values, each NUL-terminated */
    struct header_slot *headers;
    size_t nheaders;
    size_t headers_cap;
    enum header_state header_state;
    struct strbuf body;
    int reject_status;         /* set by a parser callback that rejects the request */
    struct strbuf response_headers;
    char reason[MAX_REASON_LEN + 1];
    bool keep_alive;
    bool is_head;
    char peer_addr[64];        /* numeric IP address of a TCP client */
    char label[96];            /* the client in log messages */

    uint64_t last_active;      /* uv_now() of the last read */
    uint64_t request_started;  /* uv_now() of the current request's first byte, 0 between requests */
    bool reading;
    bool write_busy;
    bool pending;              /* the handler has the request and has not responded */
    bool processing;           /* inside run_connection(); stops recursion */
    bool eof;                  /* the client sent EOF or close_notify */
    bool closing;              /* end the connection once the output is written */
    bool shutting_down;        /* FIN sent: input is drained until EOF or timeout */
    bool handle_closing;       /* uv_close() called */
    bool close_notify_sent;
};

struct http_server {
    uv_loop_t *loop;
    http_handler_fn handler;
    void *data;
    struct http_listener *listeners;
    struct http_conn *conns;
    int open_handles;          /* listeners and connections not yet closed */
    int last_port;
    uint64_t idle_timeout_ms;
    bool closing;
    void (*done)(void *data);
    void *done_data;
};

static const char empty_string[] = "";

static void run_connection(struct http_conn *conn);
static void close_connection(struct http_conn *conn);
static void flush_output(struct http_conn *conn);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* ---- byte buffers ---- */

static size_t bb_len(const struct byte_buf *b)
{
    return b->end - b->start;
}

/* Makes room for at least n bytes after end, moving data to the front first. */
static void bb_reserve(struct byte_buf *b, size_t n)
{
    if (b->start > 0 && b->cap - b->end < n) {
        memmove(b->data, b->data + b->start, bb_len(b));
        b->end -= b->start;
        b->start = 0;
    }
    if (b->cap - b->end < n) {
        size_t cap = b->cap ? b->cap : READ_CHUNK;
        while (cap - b->end < n)
            cap *= 2;
        b->data = qm_realloc(b->data, cap);
        b->cap = cap;
    }
}

static void bb_consume(struct byte_buf *b, size_t n)
{
    b->start += n;
    if (b->start == b->end) {
        b->start = b->end = 0;
        /* Give back what a large body grew, so that idle connections stay small. */
        if (b->cap > 4 * READ_CHUNK) {
            free(b->data);
            b->data = NULL;
            b->cap = 0;
        }
    }
}

/* Empties sb, and frees its memory if a large request or response grew it. */
static void reset_buffer(struct strbuf *sb)
{
    if (sb->cap > OUTPUT_HIGH_WATER)
        sb_free(sb);
    else
        sb_reset(sb);
}

static void bb_free(struct byte_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ---- request parsing ---- */

static struct http_conn *conn_of_request(struct http_request *req)
{
    return (struct http_conn *)((char *)req - offsetof(struct http_conn, req));
}

static int reject(struct http_conn *conn, int status)
{
    conn->reject_status = status;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *parser)
{
    struct http_conn *conn = parser->data;

    reset_buffer(&conn->head);
    reset_buffer(&conn->body);
    reset_buffer(&conn->response_headers);
    conn->nheaders = 0;
    conn->header_state = HS_URL;
    conn->reason[0] = '\0';
    conn->reject_status = 0;
    conn->request_started = uv_now(conn->h.handle.loop);
    return 0;
}

static int on_url(llhttp_t *parser, const char *at, size_t len)
{
    struct http_conn *conn = parser->data;

    if (conn->head.len + len > HTTP_MAX_HEADER_SIZE)
        return reject(conn, 414);
    sb_addn(&conn->head, at, len);
    return 0;
}

static int on_header_field(llhttp_t *parser, const char *at, size_t len)
{
    struct http_conn *conn = parser->data;

    if (conn->head.len + len > HTTP_MAX_HEADER_SIZE)
        return reject(conn, 431);
    if (conn->header_state != HS_NAME) {
        /* A new header: end the URL or the previous value. */
        sb_addc(&conn->head, '\0');
        if (conn->nheaders == conn->headers_cap) {
            conn->headers_cap = conn->headers_cap ? conn->headers_cap * 2 : 16;
            conn->headers = qm_realloc(conn->headers,
                                       conn->headers_cap * sizeof(*conn->headers));
        }
        conn->headers[conn->nheaders++].name_off = conn->head.len;
        conn->header_state = HS_NAME;
    }
    sb_addn(&conn->head, at, len);
    return 0;
}

/* Called once per name, so that an empty value still gets its own string. */
static int on_header_field_complete(llhttp_t *parser)
{
    struct http_conn *conn = parser->data;

    sb_addc(&conn->head, '\0');
    conn->headers[conn->nheaders - 1].value_off = conn->head.len;
    conn->header_state = HS_VALUE;
    return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len)
{
    struct http_conn *conn = parser->data;

    if (conn->head.len + len > HTTP_MAX_HEADER_SIZE)
        return reject(conn, 431);
    sb_addn(&conn->head, at, len);
    return 0;
}

/* Points path and query into the URL, skipping the scheme and host of an absolute URL. */
static void split_url(struct http_conn *conn)
{
    char *url = conn->head.buf;
    char *scheme_end = strstr(url, "://");

    if (url[0] != '/' && scheme_end) {
        char *slash = strchr(scheme_end + 3, '/');
        url = slash ? slash : (char *)"/";
    }
    char *question = strchr(url, '?');
    if (question) {
        *question = '\0';
        conn->req.query = question + 1;
    } else {
        conn->req.query = empty_string;
    }
    conn->req.path = url;
}

/* Sends "100 Continue" when a client waits for it before sending a body. */
static void answer_expect(struct http_conn *conn)
{
    const char *expect = http_request_header(&conn->req, "Expect");
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (!expect || strcasecmp(expect, "100-continue") != 0 || conn->parser.http_minor < 1)
        return;
    if (conn->tls) {
        int rc = mbedtls_ssl_write(&conn->ssl, (const unsigned char *)interim,
                                   sizeof(interim) - 1);
        if (rc < 0)
            return;
    } else {
        sb_addn(&conn->out, interim, sizeof(interim) - 1);
    }
    flush_output(conn);
}

static int on_headers_complete(llhttp_t *parser)
{
    struct http_conn *conn = parser->data;
    struct http_request *req = &conn->req;

    sb_addc(&conn->head, '\0');
    if (conn->head.len > HTTP_MAX_HEADER_SIZE)
        return reject(conn, 431);
    split_url(conn);
    req->method = llhttp_method_name(llhttp_get_method(parser));
    req->http_minor = parser->http_minor;
    req->user = NULL;
    conn->is_head = llhttp_get_method(parser) == HTTP_HEAD;

    if ((parser->flags & F_CONTENT_LENGTH) && parser->content_length > HTTP_MAX_BODY_SIZE)
        return reject(conn, 413);
    answer_expect(conn);
    return 0;
}

static int on_body(llhttp_t *parser, const char *at, size_t len)
{
    struct http_conn *conn = parser->data;

    if (conn->body.len + len > HTTP_MAX_BODY_SIZE)
        return reject(conn, 413);
    sb_addn(&conn->body, at, len);
    return 0;
}

/* Pauses the parser so that the caller hands the request to the handler. */
static int on_message_complete(llhttp_t *parser)
{
    struct http_conn *conn = parser->data;

    conn->req.body = conn->body.buf ? conn->body.buf : empty_string;
    conn->req.body_len = conn->body.len;
    conn->keep_alive = llhttp_should_keep_alive(parser) && !parser->upgrade;
    conn->request_started = 0;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

const char *http_request_header(const struct http_request *req, const char *name)
{
    struct http_conn *conn = conn_of_request((struct http_request *)req);

    for (size_t i = 0; i < conn->nheaders; i++) {
        if (strcasecmp(conn->head.buf + conn->headers[i].name_off, name) == 0)
            return conn->head.buf + conn->headers[i].value_off;
    }
    return NULL;
}

/* ---- responses ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

static bool has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

void http_request_add_response_header(struct http_request *req, const char *name,
                                      const char *value)
{
    struct http_conn *conn = conn_of_request(req);

    if (!*name || has_line_break(name) || strchr(name, ':') || has_line_break(value)) {
        qm_log(QM_LOG_ERR, 0, "dropped response header '%.64s': the name or value "
               "contains a line break", name);
        return;
    }
    sb_add(&conn->response_headers, name);
    sb_addn(&conn->response_headers, ": ", 2);
    sb_add(&conn->response_headers, value);
    sb_addn(&conn->response_headers, "\r\n", 2);
}

void http_request_set_reason(struct http_request *req, const char *reason)
{
    struct http_conn *conn = conn_of_request(req);
    size_t i = 0;

    for (; reason[i] && i < MAX_REASON_LEN; i++) {
        unsigned char c = (unsigned char)reason[i];
        conn->reason[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    conn->reason[i] = '\0';
}

static void add_decimal(struct strbuf *sb, unsigned long long v)
{
    char digits[24];
    size_t i = sizeof(digits);

    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    sb_addn(sb, digits + i, sizeof(digits) - i);
}

/* Appends the whole response to sb: status line, headers, blank line, body. */
static void format_response(struct http_conn *conn, struct strbuf *sb, int status,
                            const char *content_type, const char *body, size_t len)
{
    /* 1xx, 204 and 304 responses have no body. RFC 9110 forbids Content-Length on 1xx and 204. */
    bool bodyless = status < 200 || status == 204 || status == 304;

    sb_addn(sb, "HTTP/1.1 ", 9);
    add_decimal(sb, (unsigned long long)status);
    sb_addc(sb, ' ');
    sb_add(sb, conn->reason[0] ? conn->reason : reason_phrase(status));
    sb_addn(sb, "\r\n", 2);
    if (content_type && !bodyless) {
        sb_addn(sb, "Content-Type: ", 14);
        sb_add(sb, content_type);
        sb_addn(sb, "\r\n", 2);
    }
    if (!bodyless) {
        sb_addn(sb, "Content-Length: ", 16);
        add_decimal(sb, len);
        sb_addn(sb, "\r\n", 2);
    }
    if (!conn->keep_alive)
        sb_addn(sb, "Connection: close\r\n", 19);
    else if (conn->req.http_minor == 0)
        sb_addn(sb, "Connection: keep-alive\r\n", 24);
    sb_addn(sb, conn->response_headers.buf ? conn->response_headers.buf : "",
            conn->response_headers.len);
    sb_addn(sb, "\r\n", 2);
    if (!bodyless && !conn->is_head)
        sb_addn(sb, body, len);
}

/* Encrypts data into conn->out. mbedTLS splits it into records of at most 16 KiB. */
static int tls_write_all(struct http_conn *conn, const char *data, size_t len)
{
    while (len > 0) {
        int rc = mbedtls_ssl_write(&conn->ssl, (const unsigned char *)data, len);
        if (rc < 0) {
            qm_log(QM_LOG_ERR, 0, "TLS write to %s failed: mbedTLS error -0x%04x",
                   conn->label, (unsigned int)-rc);
            return -1;
        }
        data += rc;
        len -= (size_t)rc;
    }
    return 0;
}

static void free_connection(struct http_conn *conn)
{
    bb_free(&conn->in);
    bb_free(&conn->tls_in);
    sb_free(&conn->out);
    sb_free(&conn->writing);
    sb_free(&conn->plain);
    sb_free(&conn->head);
    sb_free(&conn->body);
    sb_free(&conn->response_headers);
    free(conn->headers);
    free(conn);
}

static void send_response(struct http_conn *conn, int status, const char *content_type,
                          const char *body, size_t len)
{
    if (status < 100 || status > 999) {
        qm_log(QM_LOG_ERR, 0, "invalid HTTP status %d in a response, sending 500", status);
        status = 500;
        conn->reason[0] = '\0';
    }
    if (!conn->keep_alive || conn->eof)
        conn->closing = true;
    if (conn->tls) {
        reset_buffer(&conn->plain);
        format_response(conn, &conn->plain, status, content_type, body, len);
        if (tls_write_all(conn, conn->plain.buf, conn->plain.len) < 0) {
            close_connection(conn);
            return;
        }
    } else {
        format_response(conn, &conn->out, status, content_type, body, len);
    }
    flush_output(conn);
}

void http_respond(struct http_request *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    struct http_conn *conn = conn_of_request(req);

    if (!conn->pending) {
        qm_log(QM_LOG_ERR, 0, "http_respond called for a request without a pending response");
        return;
    }
    conn->pending = false;
    if (conn->handle_closing) {
        /* The connection is gone, and its memory was kept only for this call. */
        if (conn->open_handles == 0)
            free_connection(conn);
        return;
    }
    conn->last_active = uv_now(conn->h.handle.loop);
    send_response(conn, status, content_type, body ? body : "", body ? len : 0);
    run_connection(conn);
}

/* Sends the error response for a request that the parser rejected, then closes. */
static void send_error(struct http_conn *conn, int status)
{
    const char *reason = reason_phrase(status);
    char body[96];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);

    conn->keep_alive = false;
    conn->is_head = false;
    conn->reason[0] = '\0';
    sb_reset(&conn->response_headers);
    send_response(conn, status, "text/plain", body, (size_t)n);
}

/* ---- connection I/O ---- */

static void on_write(uv_write_t *wreq, int status);

static void on_shutdown(uv_shutdown_t *sreq, int status)
{
    struct http_conn *conn = sreq->data;

    if (status < 0 || conn->eof)
        close_connection(conn);
}

static void on_linger_timeout(uv_timer_t *timer)
{
    close_connection(timer->data);
}

/* Sends FIN and drains input, so that unread client data cannot turn the close into a reset. */
static void begin_shutdown(struct http_conn *conn)
{
    if (conn->shutting_down || conn->handle_closing)
        return;
    conn->shutting_down = true;
    conn->shutdown_req.data = conn;
    if (uv_shutdown(&conn->shutdown_req, &conn->h.stream, on_shutdown) < 0) {
        close_connection(conn);
        return;
    }
    uv_timer_start(&conn->timer, on_linger_timeout, LINGER_TIMEOUT_MS, 0);
}

static void flush_output(struct http_conn *conn)
{
    if (conn->write_busy || conn->handle_closing)
        return;
    if (conn->out.len == 0 && conn->closing && !conn->pending) {
        if (conn->tls && conn->handshake_done && !conn->close_notify_sent) {
            conn->close_notify_sent = true;
            mbedtls_ssl_close_notify(&conn->ssl);
        }
        if (conn->out.len == 0) {
            begin_shutdown(conn);
            return;
        }
    }
    if (conn->out.len == 0)
        return;

    /*
     * Most responses fit into the socket buffer. Writing them directly saves
     * the write request, and libuv re-arming the epoll watcher after it.
     */
    uv_buf_t buf = uv_buf_init(conn->out.buf, (unsigned int)conn->out.len);
    int rc = uv_try_write(&conn->h.stream, &buf, 1);
    if (rc < 0 && rc != UV_EAGAIN) {
        qm_log(QM_LOG_DEBUG, 0, "write to %s failed: %s", conn->label, uv_strerror(rc));
        close_connection(conn);
        return;
    }
    size_t written = rc > 0 ? (size_t)rc : 0;
    if (written == conn->out.len) {
        reset_buffer(&conn->out);
        if (conn->closing)
            flush_output(conn);
        return;
    }

    /* Swap buffers: out starts empty again while writing is in flight. */
    struct strbuf tmp = conn->writing;
    conn->writing = conn->out;
    conn->out = tmp;
    reset_buffer(&conn->out);

    buf = uv_buf_init(conn->writing.buf + written, (unsigned int)(conn->writing.len - written));
    conn->write_req.data = conn;
    rc = uv_write(&conn->write_req, &conn->h.stream, &buf, 1, on_write);
    if (rc < 0) {
        qm_log(QM_LOG_DEBUG, 0, "write to %s failed: %s", conn->label, uv_strerror(rc));
        close_connection(conn);
        return;
    }
    conn->write_busy = true;
}

static void on_write(uv_write_t *wreq, int status)
{
    struct http_conn *conn = wreq->data;

    conn->write_busy = false;
    reset_buffer(&conn->writing);
    if (conn->handle_closing)
        return;
    if (status < 0) {
        qm_log(QM_LOG_DEBUG, 0, "write to %s failed: %s", conn->label,
               uv_strerror(status));
        close_connection(conn);
        return;
    }
    flush_output(conn);
    /* Pipelined requests may have waited for the output to drain. */
    run_connection(conn);
}

/* Runs the handshake as far as the buffered input allows. Returns -1 on failure. */
static int tls_handshake(struct http_conn *conn)
{
    int rc = mbedtls_ssl_handshake(&conn->ssl);

    if (rc == 0) {
        conn->handshake_done = true;
    } else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
        qm_log(QM_LOG_DEBUG, 0, "TLS handshake with %s failed: mbedTLS error -0x%04x",
               conn->label, (unsigned int)-rc);
        return -1;
    }
    flush_output(conn);
    return 0;
}

/*
 * Decrypts buffered ciphertext into conn->in until it runs out or the input
 * is full. Returns the number of bytes added, or -1 when the connection ended.
 */
static long tls_decrypt(struct http_conn *conn)
{
    long added = 0;

    while (bb_len(&conn->in) < INPUT_HIGH_WATER) {
        bb_reserve(&conn->in, READ_CHUNK);
        int rc = mbedtls_ssl_read(&conn->ssl, (unsigned char *)conn->in.data + conn->in.end,
                                  conn->in.cap - conn->in.end);
        if (rc > 0) {
            conn->in.end += (size_t)rc;
            added += rc;
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            conn->eof = true;
            break;
        }
        qm_log(QM_LOG_DEBUG, 0, "TLS read from %s failed: mbedTLS error -0x%04x",
               conn->label, (unsigned int)-rc);
        return -1;
    }
    return added;
}

static void dispatch_request(struct http_conn *conn)
{
    struct http_server *srv = conn->srv;

    conn->pending = true;
    srv->handler(&conn->req, srv->data);
}

/* Parses buffered input and hands out complete requests until one is pending. */
static void parse_input(struct http_conn *conn)
{
    while (!conn->pending && !conn->closing && !conn->handle_closing &&
           bb_len(&conn->in) > 0 && conn->out.len < OUTPUT_HIGH_WATER) {
        const char *data = conn->in.data + conn->in.start;
        size_t len = bb_len(&conn->in);
        llhttp_errno_t rc = llhttp_execute(&conn->parser, data, len);

        if (rc == HPE_OK) {
            bb_consume(&conn->in, len);
            break;
        }
        if (rc == HPE_PAUSED) {
            bb_consume(&conn->in, (size_t)(llhttp_get_error_pos(&conn->parser) - data));
            llhttp_resume(&conn->parser);
            dispatch_request(conn);
            continue;
        }
        int status = conn->reject_status ? conn->reject_status : 400;
        qm_log(QM_LOG_DEBUG, 0, "rejected request from %s with %d: %s", conn->label,
               status, llhttp_get_error_reason(&conn->parser));
        bb_consume(&conn->in, len);
        send_error(conn, status);
        break;
    }
}

static void update_reading(struct http_conn *conn)
{
    bool want = !conn->handle_closing && !conn->eof &&
                (conn->shutting_down ||
                 (bb_len(&conn->in) < INPUT_HIGH_WATER &&
                  bb_len(&conn->tls_in) < INPUT_HIGH_WATER));

    if (want == conn->reading)
        return;
    conn->reading = want;
    if (want) {
        int rc = uv_read_start(&conn->h.stream, on_alloc, on_read);
        if (rc < 0) {
            qm_log(QM_LOG_ERR, 0, "reading from %s failed: %s", conn->label, uv_strerror(rc));
            close_connection(conn);
        }
    } else {
        uv_read_stop(&conn->h.stream);
    }
}

/* Moves input through TLS and the parser as far as it can go, then adjusts reading. */
static void run_connection(struct http_conn *conn)
{
    if (conn->processing || conn->handle_closing)
        return;
    conn->processing = true;
    for (;;) {
        if (conn->tls && !conn->handshake_done) {
            if (tls_handshake(conn) < 0) {
                close_connection(conn);
                break;
            }
            if (!conn->handshake_done)
                break;
        }
        long added = 0;
        if (conn->tls && !conn->shutting_down) {
            added = tls_decrypt(conn);
            if (added < 0) {
                close_connection(conn);
                break;
            }
        }
        parse_input(conn);
        if (conn->handle_closing || added == 0 || conn->pending || conn->closing)
            break;
    }
    conn->processing = false;
    if (conn->handle_closing)
        return;
    if (conn->eof && !conn->pending && !conn->write_busy && conn->out.len == 0) {
        /* The client is done and nothing is owed to it. */
        close_connection(conn);
        return;
    }
    if (conn->closing)
        flush_output(conn);
    update_reading(conn);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *conn = handle->data;
    struct byte_buf *b = conn->tls ? &conn->tls_in : &conn->in;

    bb_reserve(b, READ_CHUNK);
    buf->base = b->data + b->end;
    buf->len = b->cap - b->end;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *conn = stream->data;
    struct byte_buf *b = conn->tls ? &conn->tls_in : &conn->in;

    if (nread > 0) {
        conn->last_active = uv_now(stream->loop);
        /* After the last response, input is read only to be dropped. */
        if (!conn->shutting_down) {
            b->end += (size_t)nread;
            run_connection(conn);
        }
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF) {
        qm_log(QM_LOG_DEBUG, 0, "read from %s failed: %s", conn->label,
               uv_strerror((int)nread));
        close_connection(conn);
        return;
    }
    conn->eof = true;
    if (conn->shutting_down) {
        close_connection(conn);
        return;
    }
    /* A client may half-close after its request and still wait for the response. */
    run_connection(conn);
}

/* mbedTLS BIO callbacks, which pass ciphertext through conn->out and conn->tls_in. */
static int bio_send(void *ctx, const unsigned char *data, size_t len)
{
    struct http_conn *conn = ctx;

    sb_addn(&conn->out, (const char *)data, len);
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *data, size_t len)
{
    struct http_conn *conn = ctx;
    size_t n = bb_len(&conn->tls_in);

    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(data, conn->tls_in.data + conn->tls_in.start, n);
    bb_consume(&conn->tls_in, n);
    return (int)n;
}

static void on_idle_timer(uv_timer_t *timer)
{
    struct http_conn *conn = timer->data;
    uint64_t timeout = conn->srv->idle_timeout_ms;
    uint64_t idle = uv_now(timer->loop) - conn->last_active;

    /* A slow handler is not the client's fault. */
    if (conn->pending) {
        uv_timer_start(timer, on_idle_timer, timeout, 0);
        return;
    }
    /*
     * A client that sends a request a byte at a time keeps the connection
     * active but must still finish the request within the request timeout.
     */
    uint64_t now = uv_now(timer->loop);
    uint64_t wait = idle < timeout ? timeout - idle : 0;
    if (conn->request_started) {
        uint64_t age = now - conn->request_started;
        uint64_t left = age < timeout ? timeout - age : 0;
        if (left < wait)
            wait = left;
    }
    if (wait > 0) {
        uv_timer_start(timer, on_idle_timer, wait, 0);
        return;
    }
    qm_log(QM_LOG_DEBUG, 0, "closing connection from %s: idle for %llu ms or request too slow",
           conn->label, (unsigned long long)idle);
    close_connection(conn);
}

static void finish_server_close(struct http_server *srv)
{
    if (!srv->closing || srv->open_handles > 0)
        return;
    if (srv->done)
        srv->done(srv->done_data);
    free(srv);
}

static void on_connection_closed(uv_handle_t *handle)
{
    struct http_conn *conn = handle->data;
    struct http_server *srv = conn->srv;

    if (--conn->open_handles > 0)
        return;
    if (conn->tls)
        mbedtls_ssl_free(&conn->ssl);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->srv = NULL;
    srv->open_handles--;
    /* A pending request keeps the memory until http_respond(). */
    if (!conn->pending)
        free_connection(conn);
    finish_server_close(srv);
}

static void close_connection(struct http_conn *conn)
{
    if (conn->handle_closing)
        return;
    conn->handle_closing = true;
    conn->reading = false;
    uv_close(&conn->h.handle, on_connection_closed);
    uv_close((uv_handle_t *)&conn->timer, on_connection_closed);
}

/* ---- accepting connections ---- */

static int describe_unix_peer(struct http_conn *conn)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;

    if (uv_fileno(&conn->h.handle, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        qm_log(QM_LOG_ERR, 0, "reading the credentials of a unix socket client failed: %s",
               strerror(errno));
        return -1;
    }
    conn->req.peer_uid = cred.uid;
    conn->req.peer_gid = cred.gid;
    conn->req.peer_pid = cred.pid;
    snprintf(conn->label, sizeof(conn->label), "unix socket client pid %d uid %u",
             (int)cred.pid, (unsigned int)cred.uid);
    return 0;
}

static int describe_tcp_peer(struct http_conn *conn)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    int rc = uv_tcp_getpeername(&conn->h.tcp, (struct sockaddr *)&addr, &len);

    if (rc < 0) {
        qm_log(QM_LOG_DEBUG, 0, "reading the address of a TCP client failed: %s",
               uv_strerror(rc));
        return -1;
    }
    if (addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
        uv_ip6_name(in6, conn->peer_addr, sizeof(conn->peer_addr));
        conn->req.peer_port = ntohs(in6->sin6_port);
        /* Show IPv4 clients of a dual-stack listener as IPv4. */
        if (qm_str_starts(conn->peer_addr, "::ffff:") && strchr(conn->peer_addr, '.'))
            memmove(conn->peer_addr, conn->peer_addr + 7, strlen(conn->peer_addr + 7) + 1);
        snprintf(conn->label, sizeof(conn->label), "[%s]:%d", conn->peer_addr,
                 conn->req.peer_port);
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&addr;
        uv_ip4_name(in4, conn->peer_addr, sizeof(conn->peer_addr));
        conn->req.peer_port = ntohs(in4->sin_port);
        snprintf(conn->label, sizeof(conn->label), "%s:%d", conn->peer_addr,
                 conn->req.peer_port);
    }
    uv_tcp_nodelay(&conn->h.tcp, 1);
    return 0;
}

static int setup_tls(struct http_conn *conn)
{
    mbedtls_ssl_init(&conn->ssl);
    int rc = mbedtls_ssl_setup(&conn->ssl, &conn->tls->conf);
    if (rc != 0) {
        qm_log(QM_LOG_ERR, 0, "setting up TLS for %s failed: mbedTLS error -0x%04x",
               conn->label, (unsigned int)-rc);
        return -1;
    }
    mbedtls_ssl_set_bio(&conn->ssl, conn, bio_send, bio_recv, NULL);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct http_listener *listener = server->data;
    struct http_server *srv = listener->srv;
    uv_loop_t *loop = server->loop;

    if (status < 0) {
        qm_log(QM_LOG_ERR, 0, "accepting a connection failed: %s", uv_strerror(status));
        return;
    }

    struct http_conn *conn = qm_calloc(1, sizeof(*conn));
    conn->srv = srv;
    conn->tls = listener->tls;
    conn->req.is_unix = listener->is_unix;
    conn->req.is_tls = listener->tls != NULL;
    conn->req.peer_uid = (uid_t)-1;
    conn->req.peer_gid = (gid_t)-1;
    conn->req.peer_addr = conn->peer_addr;
    conn->req.method = conn->req.path = conn->req.query = conn->req.body = empty_string;
    snprintf(conn->label, sizeof(conn->label), "a new client");
    if (listener->is_unix)
        uv_pipe_init(loop, &conn->h.pipe, 0);
    else
        uv_tcp_init(loop, &conn->h.tcp);
    conn->h.handle.data = conn;
    uv_timer_init(loop, &conn->timer);
    conn->timer.data = conn;
    conn->open_handles = 2;
    conn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->open_handles++;

    llhttp_init(&conn->parser, HTTP_REQUEST, &parser_settings);
    conn->parser.data = conn;

    int rc = uv_accept(server, &conn->h.stream);
    if (rc < 0) {
        qm_log(QM_LOG_ERR, 0, "accepting a connection failed: %s", uv_strerror(rc));
        close_connection(conn);
        return;
    }
    if ((listener->is_unix ? describe_unix_peer(conn) : describe_tcp_peer(conn)) < 0 ||
        (conn->tls && setup_tls(conn) < 0)) {
        close_connection(conn);
        return;
    }
    conn->last_active = uv_now(loop);
    uv_timer_start(&conn->timer, on_idle_timer, srv->idle_timeout_ms, 0);
    update_reading(conn);
}

/* ---- listeners and the server ---- */

struct http_server *http_server_new(uv_loop_t *loop, http_handler_fn handler, void *data)
{
    struct http_server *srv = qm_calloc(1, sizeof(*srv));
    struct sigaction old;

    /*
     * libuv writes with write(2), so a client that resets its connection
     * would kill the process with SIGPIPE; the write fails with EPIPE instead.
     */
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    srv->loop = loop;
    srv->handler = handler;
    srv->data = data;
    srv->last_port = -1;
    srv->idle_timeout_ms = HTTP_IDLE_TIMEOUT_MS;
    return srv;
}

void http_server_set_idle_timeout(struct http_server *srv, unsigned int timeout_ms)
{
    srv->idle_timeout_ms = timeout_ms;
}

static void free_listener(uv_handle_t *handle)
{
    struct http_listener *listener = handle->data;

    free(listener->path);
    free(listener);
}

static void on_listener_closed(uv_handle_t *handle)
{
    struct http_listener *listener = handle->data;
    struct http_server *srv = listener->srv;

    free_listener(handle);
    srv->open_handles--;
    finish_server_close(srv);
}

/* Starts listening and links the listener into srv. On failure it closes the listener. */
static int start_listener(struct http_server *srv, struct http_listener *listener,
                          const char *what, struct qm_error *err)
{
    int rc = uv_listen(&listener->h.stream, LISTEN_BACKLOG, on_connection);

    if (rc < 0) {
        uv_close(&listener->h.handle, free_listener);
        return qm_fail(err, 500, "listening on %s failed: %s", what, uv_strerror(rc));
    }
    listener->next = srv->listeners;
    srv->listeners = listener;
    srv->open_handles++;
    return 0;
}

int http_server_listen_tcp(struct http_server *srv, const char *host, int port,
                           const struct http_tls *tls, struct qm_error *err)
{
    struct sockaddr_storage addr;
    char what[128];
    int rc;

    if (!host)
        host = "::";
    if (port < 0 || port > 65535)
        return qm_fail(err, 400, "invalid port %d: expected 0 to 65535", port);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0)
        return qm_fail(err, 400, "invalid listen address '%s': expected an IPv4 or IPv6 "
                       "address", host);
    snprintf(what, sizeof(what), "%s port %d", host, port);

    struct http_listener *listener = qm_calloc(1, sizeof(*listener));
    listener->srv = srv;
    listener->tls = tls;
    uv_tcp_init(srv->loop, &listener->h.tcp);
    listener->h.handle.data = listener;
    rc = uv_tcp_bind(&listener->h.tcp, (struct sockaddr *)&addr, 0);
    if (rc < 0) {
        uv_close(&listener->h.handle, free_listener);
        return qm_fail(err, 500, "binding %s failed: %s", what, uv_strerror(rc));
    }
    if (start_listener(srv, listener, what, err) < 0)
        return -1;

    int len = sizeof(addr);
    rc = uv_tcp_getsockname(&listener->h.tcp, (struct sockaddr *)&addr, &len);
    if (rc == 0)
        srv->last_port = ntohs(addr.ss_family == AF_INET6
                                   ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                   : ((struct sockaddr_in *)&addr)->sin_port);
    qm_log(QM_LOG_INFO, 0, "listening on %s port %d (%s)", host, srv->last_port,
           tls ? "HTTPS" : "HTTP");
    return 0;
}

int http_server_port(const struct http_server *srv)
{
    return srv->last_port;
}

/* Removes a socket at path unless a process still accepts connections on it. */
static int remove_stale_socket(const char *path, struct qm_error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return qm_fail(err, 500, "unable to stat '%s': %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return qm_fail(err, 500, "'%s' exists and is not a socket; remove it or choose "
                       "another path", path);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return qm_fail(err, 500, "unable to create a socket: %s", strerror(errno));
    strcpy(addr.sun_path, path);
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    int saved = errno;
    close(fd);
    if (rc == 0 || saved == EAGAIN || saved == EINPROGRESS)
        return qm_fail(err, 409, "another process listens on '%s'", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return qm_fail(err, 500, "unable to remove stale socket '%s': %s", path,
                       strerror(errno));
    return 0;
}

int http_server_listen_unix(struct http_server *srv, const char *path, int mode,
                            struct qm_error *err)
{
    struct sockaddr_un addr;
    char what[sizeof(addr.sun_path) + 16];
    int rc;

    if (strlen(path) >= sizeof(addr.sun_path))
        return qm_fail(err, 400, "unix socket path '%s' is too long: the maximum is %zu "
                       "bytes", path, sizeof(addr.sun_path) - 1);
    if (remove_stale_socket(path, err) < 0)
        return -1;
    snprintf(what, sizeof(what), "'%s'", path);

    struct http_listener *listener = qm_calloc(1, sizeof(*listener));
    listener->srv = srv;
    listener->is_unix = true;
    uv_pipe_init(srv->loop, &listener->h.pipe, 0);
    listener->h.handle.data = listener;
    rc = uv_pipe_bind(&listener->h.pipe, path);
    if (rc < 0) {
        uv_close(&listener->h.handle, free_listener);
        return qm_fail(err, 500, "binding unix socket '%s' failed: %s", path, uv_strerror(rc));
    }
    /* No client can connect before uv_listen(), so the mode is set in time. */
    if (chmod(path, (mode_t)mode) < 0) {
        int saved = errno;
        uv_close(&listener->h.handle, free_listener);
        unlink(path);
        return qm_fail(err, 500, "unable to set mode %04o on '%s': %s", (unsigned int)mode,
                       path, strerror(saved));
    }
    listener->path = qm_strdup(path);
    if (start_listener(srv, listener, what, err) < 0) {
        unlink(path);
        return -1;
    }
    qm_log(QM_LOG_INFO, 0, "listening on unix socket '%s'", path);
    return 0;
}

void http_server_close(struct http_server *srv, void (*done)(void *data), void *data)
{
    srv->closing = true;
    srv->done = done;
    srv->done_data = data;
    for (struct http_listener *l = srv->listeners; l; l = l->next) {
        if (l->path)
            unlink(l->path);
        uv_close(&l->h.handle, on_listener_closed);
    }
    srv->listeners = NULL;
    for (struct http_conn *conn = srv->conns; conn; conn = conn->next)
        close_connection(conn);
    finish_server_close(srv);
}

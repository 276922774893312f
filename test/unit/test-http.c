/*
 * The HTTP server against real clients: curl over HTTPS with a freshly made
 * self-signed certificate, and a blocking socket client in a thread for raw
 * requests over TCP and the unix socket. The server's loop runs in the main
 * thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <uv.h>

#include "qm/http.h"

#define ASYNC_DELAY_MS 50
/* Larger than one TLS record and than the socket buffer. */
#define BIG_RESPONSE_SIZE (5 * 1024 * 1024 + 7)

static uv_loop_t *loop;
static uv_async_t wake;
static struct http_server *server;
static struct http_tls *tls;
static char tmpdir[64];
static char cert_path[128], key_path[128], sock_path[128];
static int https_port, http_port;
static int async_responses;

/* ---- server side ---- */

struct delayed_response {
    uv_timer_t timer;
    struct http_request *req;
};

static void on_delay(uv_timer_t *timer)
{
    struct delayed_response *d = timer->data;
    static const char body[] = "async done\n";

    http_respond(d->req, 200, "text/plain", body, strlen(body));
    async_responses++;
    uv_close((uv_handle_t *)timer, (uv_close_cb)free);
}

static void respond_later(struct http_request *req, uint64_t delay_ms)
{
    struct delayed_response *d = calloc(1, sizeof(*d));

    d->req = req;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_delay, delay_ms, 0);
}

/* Echoes what the server parsed, one "name=value" line each. */
static void respond_echo(struct http_request *req)
{
    struct strbuf sb = {0};
    struct strvec keys = {0}, values = {0};
    struct qm_error err = {0};
    const char *x_test = http_request_header(req, "x-TEST");
    const char *content_type = http_request_header(req, "Content-Type");

    sb_addf(&sb, "method=%s\npath=%s\nquery=%s\n", req->method, req->path, req->query);
    if (http_parse_form(req->query, strlen(req->query), &keys, &values, &err) < 0)
        sb_addf(&sb, "query-error=%s\n", err.msg);
    if (content_type && strcmp(content_type, "application/x-www-form-urlencoded") == 0 &&
        http_parse_form(req->body, req->body_len, &keys, &values, &err) < 0)
        sb_addf(&sb, "body-error=%s\n", err.msg);
    for (size_t i = 0; i < keys.n; i++)
        sb_addf(&sb, "param %s=%s\n", keys.v[i], values.v[i]);
    sb_addf(&sb, "body-length=%zu\n", req->body_len);
    sb_addf(&sb, "x-test=%s\n", x_test ? x_test : "(none)");
    sb_addf(&sb, "unix=%d\ntls=%d\n", req->is_unix, req->is_tls);
    sb_addf(&sb, "uid=%d\npid=%d\n", (int)req->peer_uid, (int)req->peer_pid);
    sb_addf(&sb, "peer=%s\n", req->peer_addr);

    http_request_add_response_header(req, "Set-Cookie", "session=abc; Secure");
    http_request_add_response_header(req, "X-Bad", "a\r\nInjected: yes");
    http_respond(req, 200, "text/plain", sb.buf, sb.len);
    sb_free(&sb);
    sv_free(&keys);
    sv_free(&values);
}

static void handle(struct http_request *req, void *data)
{
    if (strcmp(req->path, "/echo") == 0) {
        respond_echo(req);
    } else if (strcmp(req->path, "/async") == 0) {
        respond_later(req, ASYNC_DELAY_MS);
    } else if (strcmp(req->path, "/slow") == 0) {
        respond_later(req, 300);
    } else if (strcmp(req->path, "/reason") == 0) {
        http_request_set_reason(req, "Parameter verification failed.\n");
        http_respond(req, 400, "application/json", "{}", 2);
    } else if (strcmp(req->path, "/big") == 0) {
        char *big = qm_malloc(BIG_RESPONSE_SIZE);
        for (size_t i = 0; i < BIG_RESPONSE_SIZE; i++)
            big[i] = (char)('a' + i % 26);
        http_respond(req, 200, "application/octet-stream", big, BIG_RESPONSE_SIZE);
        free(big);
    } else if (strcmp(req->path, "/empty") == 0) {
        http_respond(req, 204, NULL, NULL, 0);
    } else {
        http_respond(req, 404, "text/plain", "not found\n", 10);
    }
}

/* ---- running the loop until something happens ---- */

static void on_wake(uv_async_t *handle)
{
}

static void run_until(atomic_bool *flag)
{
    while (!atomic_load(flag))
        uv_run(loop, UV_RUN_ONCE);
}

static void on_run_for_timer(uv_timer_t *timer)
{
}

static void run_for(uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    uv_timer_t timer;

    uv_timer_init(loop, &timer);
    while (uv_now(loop) < end) {
        uv_timer_start(&timer, on_run_for_timer, end - uv_now(loop), 0);
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* ---- curl in a child process ---- */

struct curl_run {
    uv_process_t process;
    uv_pipe_t out_pipe;
    struct strbuf out;
    int64_t exit_status;
    atomic_bool exited;
    atomic_bool out_closed;
    atomic_bool done;
};

static void curl_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    static char chunk[65536];

    buf->base = chunk;
    buf->len = sizeof(chunk);
}

static void curl_maybe_done(struct curl_run *run)
{
    if (atomic_load(&run->exited) && atomic_load(&run->out_closed))
        atomic_store(&run->done, true);
}

static void curl_pipe_closed(uv_handle_t *handle)
{
    struct curl_run *run = handle->data;

    atomic_store(&run->out_closed, true);
    curl_maybe_done(run);
}

static void curl_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct curl_run *run = stream->data;

    if (nread > 0)
        sb_addn(&run->out, buf->base, (size_t)nread);
    else if (nread < 0)
        uv_close((uv_handle_t *)stream, curl_pipe_closed);
}

static void curl_exited(uv_process_t *process, int64_t status, int signal)
{
    struct curl_run *run = process->data;

    run->exit_status = signal ? -signal : status;
    uv_close((uv_handle_t *)process, NULL);
    atomic_store(&run->exited, true);
    curl_maybe_done(run);
}

/* Runs curl with args (NULL-terminated), stores its stdout in out and returns its exit status. */
static int run_curl(const char *const *args, struct strbuf *out)
{
    struct curl_run run = {0};
    const char *argv[32] = {"curl", "--silent", "--show-error", "--max-time", "10"};
    size_t n = 5;
    uv_stdio_container_t stdio[3];
    uv_process_options_t options = {0};

    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    uv_pipe_init(loop, &run.out_pipe, 0);
    run.out_pipe.data = &run;
    run.process.data = &run;
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&run.out_pipe;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    options.file = "curl";
    options.args = (char **)argv;
    options.exit_cb = curl_exited;
    options.stdio = stdio;
    options.stdio_count = 3;
    assert_int_equal(uv_spawn(loop, &run.process, &options), 0);
    uv_read_start((uv_stream_t *)&run.out_pipe, curl_alloc, curl_read);
    run_until(&run.done);
    *out = run.out;
    return (int)run.exit_status;
}

/* ---- a blocking socket client in a thread ---- */

enum client_end {
    READ_UNTIL_EOF,      /* read until the server closes (or 3 s pass) */
    HALF_CLOSE,          /* shut down writing after the request, then read until EOF */
    RESET_AFTER_SEND,    /* close with RST right after sending, without reading */
};

struct raw_client {
    bool use_unix;
    int port;
    const char *request;
    size_t request_len;
    enum client_end end;
    struct strbuf response;
    bool saw_eof;
    bool timed_out;
    atomic_bool done;
};

static int client_connect(const struct raw_client *c)
{
    int fd;

    if (c->use_unix) {
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        strcpy(addr.sun_path, sock_path);
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            close(fd);
            return -1;
        }
    } else {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(c->port)};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void client_thread(void *arg)
{
    struct raw_client *c = arg;
    struct timeval timeout = {.tv_sec = 3};
    char buf[65536];
    int fd = client_connect(c);

    if (fd < 0)
        goto out;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    for (size_t off = 0; off < c->request_len;) {
        ssize_t n = send(fd, c->request + off, c->request_len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (c->end == RESET_AFTER_SEND) {
        /* Give the server time to read the request, which a reset would discard. */
        usleep(50000);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        goto out;
    }
    if (c->end == HALF_CLOSE)
        shutdown(fd, SHUT_WR);
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            sb_addn(&c->response, buf, (size_t)n);
            continue;
        }
        if (n == 0)
            c->saw_eof = true;
        else
            c->timed_out = true;
        break;
    }
    close(fd);
out:
    atomic_store(&c->done, true);
    uv_async_send(&wake);
}

static void run_client(struct raw_client *c)
{
    uv_thread_t thread;

    if (!c->request_len)
        c->request_len = strlen(c->request);
    assert_int_equal(uv_thread_create(&thread, client_thread, c), 0);
    run_until(&c->done);
    uv_thread_join(&thread);
}

static int count_occurrences(const char *s, const char *needle)
{
    int n = 0;

    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- fixtures ---- */

static int setup_server(void **state)
{
    struct qm_error err = {0};

    qm_log_max_level = QM_LOG_WARNING;
    strcpy(tmpdir, "/tmp/test-http-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cert_path, sizeof(cert_path), "%s/node.pem", tmpdir);
    snprintf(key_path, sizeof(key_path), "%s/node.key", tmpdir);
    snprintf(sock_path, sizeof(sock_path), "%s/qmd.sock", tmpdir);
    if (http_tls_ensure_self_signed(cert_path, key_path, "node1", &err) < 0 ||
        http_tls_load(&tls, cert_path, key_path, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }

    loop = qm_calloc(1, sizeof(*loop));
    uv_loop_init(loop);
    uv_async_init(loop, &wake, on_wake);
    server = http_server_new(loop, handle, NULL);
    if (http_server_listen_tcp(server, "127.0.0.1", 0, tls, &err) < 0)
        goto fail;
    https_port = http_server_port(server);
    if (http_server_listen_tcp(server, "127.0.0.1", 0, NULL, &err) < 0)
        goto fail;
    http_port = http_server_port(server);
    if (http_server_listen_unix(server, sock_path, 0600, &err) < 0)
        goto fail;
    return 0;

fail:
    fprintf(stderr, "%s\n", err.msg);
    return -1;
}

static void on_server_closed(void *data)
{
    *(bool *)data = true;
}

static int teardown_server(void **state)
{
    bool closed = false;
    char cmd[128];

    http_server_close(server, on_server_closed, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0)
        fprintf(stderr, "loop still has open handles\n");
    free(loop);
    http_tls_free(tls);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *https_url(const char *host, const char *path)
{
    return qm_sprintf("https://%s:%d%s", host, https_port, path);
}

/* ---- HTTPS with curl ---- */

static void https_get_with_query(void **state)
{
    struct strbuf out = {0};
    char *url = https_url("localhost", "/echo?a=1&b=x%20y&c=1+2");
    const char *args[] = {"--cacert", cert_path, "-H", "X-Test: hello", "-i", url, NULL};

    assert_int_equal(run_curl(args, &out), 0);
    assert_non_null(strstr(out.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out.buf, "method=GET\n"));
    assert_non_null(strstr(out.buf, "path=/echo\n"));
    assert_non_null(strstr(out.buf, "query=a=1&b=x%20y&c=1+2\n"));
    assert_non_null(strstr(out.buf, "param a=1\n"));
    assert_non_null(strstr(out.buf, "param b=x y\n"));
    assert_non_null(strstr(out.buf, "param c=1 2\n"));
    assert_non_null(strstr(out.buf, "x-test=hello\n"));
    assert_non_null(strstr(out.buf, "tls=1\n"));
    assert_non_null(strstr(out.buf, "peer=127.0.0.1\n"));
    assert_non_null(strstr(out.buf, "Set-Cookie: session=abc; Secure\r\n"));
    assert_null(strstr(out.buf, "Injected"));
    sb_free(&out);
    free(url);
}

static void https_certificate_names_ip(void **state)
{
    struct strbuf out = {0};
    char *url = https_url("127.0.0.1", "/echo");
    const char *args[] = {"--cacert", cert_path, url, NULL};

    /* curl verifies the name against the subject alternative names. */
    assert_int_equal(run_curl(args, &out), 0);
    assert_non_null(strstr(out.buf, "path=/echo\n"));
    sb_free(&out);
    free(url);
}

static void https_post_form(void **state)
{
    struct strbuf out = {0};
    char *url = https_url("localhost", "/echo");
    const char *args[] = {"--cacert", cert_path, "--data", "name=vm+1&memory=2048&desc=a%26b%3Dc&flag",
                          url, NULL};

    assert_int_equal(run_curl(args, &out), 0);
    assert_non_null(strstr(out.buf, "method=POST\n"));
    assert_non_null(strstr(out.buf, "param name=vm 1\n"));
    assert_non_null(strstr(out.buf, "param memory=2048\n"));
    assert_non_null(strstr(out.buf, "param desc=a&b=c\n"));
    assert_non_null(strstr(out.buf, "param flag=\n"));
    sb_free(&out);
    free(url);
}

static void https_keep_alive_reuses_connection(void **state)
{
    struct strbuf out = {0};
    char *url1 = https_url("localhost", "/empty");
    char *url2 = https_url("localhost", "/async");
    const char *args[] = {"--cacert", cert_path, "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-w", "connects=%{num_connects} status=%{http_code}\n",
                          url1, url2, url1, NULL};

    assert_int_equal(run_curl(args, &out), 0);
    assert_string_equal(out.buf, "connects=1 status=204\n"
                                 "connects=0 status=200\n"
                                 "connects=0 status=204\n");
    sb_free(&out);
    free(url1);
    free(url2);
}

static void https_async_response(void **state)
{
    struct strbuf out = {0};
    char *url = https_url("localhost", "/async");
    const char *args[] = {"--cacert", cert_path, url, NULL};
    int before = async_responses;
    uint64_t start = uv_now(loop);

    assert_int_equal(run_curl(args, &out), 0);
    assert_string_equal(out.buf, "async done\n");
    assert_int_equal(async_responses, before + 1);
    uv_update_time(loop);
    assert_true(uv_now(loop) - start >= ASYNC_DELAY_MS);
    sb_free(&out);
    free(url);
}

static void https_large_body_with_expect(void **state)
{
    struct strbuf out = {0};
    char *url = https_url("localhost", "/echo");
    char *body_path = qm_sprintf("%s/body", tmpdir);
    char *body_arg = qm_sprintf("@%s", body_path);
    char *body = qm_malloc(3 * 1024 * 1024);
    struct qm_error err = {0};
    const char *args[] = {"--cacert", cert_path, "-H", "Expect: 100-continue", "-H",
                          "Content-Type: application/octet-stream", "--data-binary", body_arg,
                          url, NULL};

    memset(body, 'x', 3 * 1024 * 1024);
    assert_int_equal(qm_write_file_atomic(body_path, body, 3 * 1024 * 1024, 0600, &err), 0);
    uint64_t start = uv_now(loop);
    assert_int_equal(run_curl(args, &out), 0);
    assert_non_null(strstr(out.buf, "body-length=3145728\n"));
    /* curl waits 1 s for "100 Continue" before it sends the body anyway. */
    uv_update_time(loop);
    assert_true(uv_now(loop) - start < 1000);
    sb_free(&out);
    free(url);
    free(body_path);
    free(body_arg);
    free(body);
}

static void https_large_response(void **state)
{
    struct strbuf out = {0};
    char *url = https_url("localhost", "/big");
    const char *args[] = {"--cacert", cert_path, "-o", "/dev/null", "-o", "/dev/null", "-w", "%{size_download} ",
                          url, url, NULL};

    /* The second transfer checks that the connection is still usable. */
    assert_int_equal(run_curl(args, &out), 0);
    assert_string_equal(out.buf, "5242887 5242887 ");
    sb_free(&out);
    free(url);
}

static void https_custom_reason(void **state)
{
    struct strbuf out = {0};
    char *url = https_url("localhost", "/reason");
    const char *args[] = {"--cacert", cert_path, "-i", url, NULL};

    assert_int_equal(run_curl(args, &out), 0);
    assert_true(qm_str_starts(out.buf, "HTTP/1.1 400 Parameter verification failed. \r\n"));
    sb_free(&out);
    free(url);
}

/* ---- raw requests ---- */

static void malformed_request_gets_400(void **state)
{
    struct raw_client c = {.port = http_port, .request = "GARBAGE\r\n\r\n"};

    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(c.response.buf, "Connection: close\r\n"));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void oversized_headers_get_431(void **state)
{
    struct strbuf req = {0};
    struct raw_client c = {.port = http_port};

    sb_add(&req, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < HTTP_MAX_HEADER_SIZE + 10; i++)
        sb_addc(&req, 'a');
    sb_add(&req, "\r\n\r\n");
    c.request = req.buf;
    c.request_len = req.len;
    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 431 "));
    assert_true(c.saw_eof);
    sb_free(&c.response);
    sb_free(&req);
}

static void oversized_url_gets_414(void **state)
{
    struct strbuf req = {0};
    struct raw_client c = {.port = http_port};

    sb_add(&req, "GET /echo?");
    for (int i = 0; i < HTTP_MAX_HEADER_SIZE + 10; i++)
        sb_addc(&req, 'a');
    sb_add(&req, " HTTP/1.1\r\nHost: x\r\n\r\n");
    c.request = req.buf;
    c.request_len = req.len;
    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 414 "));
    assert_true(c.saw_eof);
    sb_free(&c.response);
    sb_free(&req);
}

static void oversized_body_gets_413(void **state)
{
    struct raw_client c = {.port = http_port,
                           .request = "POST /echo HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 20000000\r\n\r\nabc"};

    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 413 "));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void chunked_body_is_decoded(void **state)
{
    struct raw_client c = {.port = http_port,
                           .request = "POST /echo HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Type: application/x-www-form-urlencoded\r\n"
                                      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                      "4\r\na=12\r\n5\r\n&b=34\r\n0\r\n\r\n"};

    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c.response.buf, "param a=12\n"));
    assert_non_null(strstr(c.response.buf, "param b=34\n"));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void unix_socket_exposes_peer(void **state)
{
    struct raw_client c = {.use_unix = true,
                           .request = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"};
    char uid_line[32], pid_line[32];
    struct stat st;

    run_client(&c);
    snprintf(uid_line, sizeof(uid_line), "uid=%d\n", (int)getuid());
    snprintf(pid_line, sizeof(pid_line), "pid=%d\n", (int)getpid());
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c.response.buf, "unix=1\n"));
    assert_non_null(strstr(c.response.buf, "tls=0\n"));
    assert_non_null(strstr(c.response.buf, uid_line));
    assert_non_null(strstr(c.response.buf, pid_line));
    assert_true(c.saw_eof);
    assert_int_equal(stat(sock_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    sb_free(&c.response);
}

static void pipelined_requests_answer_in_order(void **state)
{
    struct raw_client c = {.port = http_port,
                           .request = "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
                                      "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                                      "HEAD /echo?n=3 HTTP/1.1\r\nHost: x\r\n\r\n"
                                      "GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"};

    run_client(&c);
    const char *first = strstr(c.response.buf, "async done\n");
    const char *second = strstr(c.response.buf, "query=n=2\n");
    const char *fourth = strstr(c.response.buf, "HTTP/1.1 204 No Content\r\n");
    assert_non_null(first);
    assert_non_null(second);
    assert_non_null(fourth);
    assert_true(first < second);
    assert_true(second < fourth);
    /* HEAD gets the headers of the GET but no body. */
    assert_int_equal(count_occurrences(c.response.buf, "HTTP/1.1 200 OK\r\n"), 3);
    assert_int_equal(count_occurrences(c.response.buf, "query=n=3"), 0);
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void http10_closes_after_response(void **state)
{
    struct raw_client c = {.port = http_port, .request = "GET /empty HTTP/1.0\r\n\r\n"};

    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 204 No Content\r\n"));
    assert_non_null(strstr(c.response.buf, "Connection: close\r\n"));
    assert_null(strstr(c.response.buf, "Content-Length"));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void http10_keep_alive_is_honoured(void **state)
{
    struct raw_client c = {.port = http_port,
                           .request = "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                      "GET /empty HTTP/1.0\r\n\r\n"};

    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c.response.buf, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(c.response.buf, "HTTP/1.1 204 No Content\r\n"));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void upgrade_request_is_answered(void **state)
{
    struct raw_client c = {.port = http_port,
                           .request = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                      "Upgrade: websocket\r\n\r\nGET /echo HTTP/1.1\r\n\r\n"};

    /* The server does not switch protocols, so it responds once and closes. */
    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 200 OK\r\n"));
    assert_int_equal(count_occurrences(c.response.buf, "HTTP/1.1 "), 1);
    assert_non_null(strstr(c.response.buf, "Connection: close\r\n"));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void plain_http_on_https_port(void **state)
{
    struct raw_client c = {.port = 0, .request = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"};

    c.port = https_port;
    run_client(&c);
    assert_null(strstr(c.response.buf ? c.response.buf : "", "HTTP/1.1"));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void half_closed_client_gets_response(void **state)
{
    struct raw_client c = {.port = http_port, .end = HALF_CLOSE,
                           .request = "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"};

    run_client(&c);
    assert_true(qm_str_starts(c.response.buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(c.response.buf, "async done\n"));
    assert_true(c.saw_eof);
    sb_free(&c.response);
}

static void reset_before_async_response(void **state)
{
    struct raw_client plain = {.port = http_port, .end = RESET_AFTER_SEND,
                               .request = "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"};
    struct raw_client unix_client = {.use_unix = true, .end = RESET_AFTER_SEND,
                                     .request = "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"};
    int before = async_responses;

    run_client(&plain);
    run_client(&unix_client);
    /* The responses go to connections that are already gone. */
    run_for(ASYNC_DELAY_MS * 4);
    assert_int_equal(async_responses, before + 2);
}

static void idle_connection_is_closed(void **state)
{
    struct raw_client c = {.port = http_port, .request = ""};

    http_server_set_idle_timeout(server, 200);
    run_client(&c);
    http_server_set_idle_timeout(server, HTTP_IDLE_TIMEOUT_MS);
    assert_true(c.saw_eof);
    assert_false(c.timed_out);
    assert_int_equal(c.response.len, 0);
    sb_free(&c.response);
}

struct slow_client {
    int port;
    bool closed_early;      /* the server closed before the client gave up */
    atomic_bool done;
};

/* Sends one header line every 50 ms for up to 3 s, as a slowloris client does. */
static void slow_client_thread(void *arg)
{
    struct slow_client *c = arg;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    char buf[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
        send(fd, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL);
        for (int i = 0; i < 60; i++) {
            usleep(50 * 1000);
            if (send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0 ||
                recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0) {
                c->closed_early = true;
                break;
            }
        }
    }
    if (fd >= 0)
        close(fd);
    atomic_store(&c->done, true);
}

static void slow_request_is_closed(void **state)
{
    struct slow_client c = {.port = http_port};
    uv_thread_t thread;

    http_server_set_idle_timeout(server, 300);
    assert_int_equal(uv_thread_create(&thread, slow_client_thread, &c), 0);
    /* The client may end without the loop seeing an event, so the loop polls. */
    while (!atomic_load(&c.done))
        run_for(20);
    uv_thread_join(&thread);
    http_server_set_idle_timeout(server, HTTP_IDLE_TIMEOUT_MS);
    assert_true(c.closed_early);
}

static void server_close_with_pending_request(void **state)
{
    struct http_server *srv = http_server_new(loop, handle, NULL);
    struct raw_client c = {.request = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"};
    struct qm_error err = {0};
    bool closed = false;
    int before = async_responses;

    assert_int_equal(http_server_listen_tcp(srv, "127.0.0.1", 0, NULL, &err), 0);
    c.port = http_server_port(srv);
    /* The client reads until the server closes, which happens before /slow responds. */
    uv_thread_t thread;
    c.request_len = strlen(c.request);
    assert_int_equal(uv_thread_create(&thread, client_thread, &c), 0);
    run_for(100);
    http_server_close(srv, on_server_closed, &closed);
    run_until(&c.done);
    uv_thread_join(&thread);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(c.saw_eof);
    assert_int_equal(c.response.len, 0);
    run_for(400);
    assert_int_equal(async_responses, before + 1);
    sb_free(&c.response);
}

/* ---- helpers without a server ---- */

static void form_parsing_decodes(void **state)
{
    static const char form[] = "a=1&b=x+y%2Bz&&empty=&flag&%C3%A9t%C3%A9=%e2%82%ac";
    struct strvec keys = {0}, values = {0};
    struct qm_error err = {0};

    assert_int_equal(http_parse_form(form, strlen(form), &keys, &values, &err), 0);
    assert_int_equal(keys.n, 5);
    assert_int_equal(values.n, 5);
    assert_string_equal(keys.v[0], "a");
    assert_string_equal(values.v[0], "1");
    assert_string_equal(keys.v[1], "b");
    assert_string_equal(values.v[1], "x y+z");
    assert_string_equal(keys.v[2], "empty");
    assert_string_equal(values.v[2], "");
    assert_string_equal(keys.v[3], "flag");
    assert_string_equal(values.v[3], "");
    assert_string_equal(keys.v[4], "\xc3\xa9t\xc3\xa9");
    assert_string_equal(values.v[4], "\xe2\x82\xac");
    sv_free(&keys);
    sv_free(&values);
}

static void form_parsing_rejects_bad_escapes(void **state)
{
    static const char *const bad[] = {"a=%", "a=%4", "a=%zz", "%00=1", "a=b%0"};
    struct strvec keys = {0}, values = {0};
    struct qm_error err = {0};

    for (size_t i = 0; i < QM_ARRAY_SIZE(bad); i++) {
        assert_int_equal(http_parse_form(bad[i], strlen(bad[i]), &keys, &values, &err), -1);
        assert_int_equal(err.code, 400);
        sv_free(&keys);
        sv_free(&values);
    }
}

static void url_decode_keeps_plus_in_paths(void **state)
{
    struct strbuf out = {0};
    struct qm_error err = {0};

    assert_int_equal(http_url_decode("/a+b%2Fc", 8, false, &out, &err), 0);
    assert_string_equal(out.buf, "/a+b/c");
    sb_free(&out);
}

static void self_signed_keeps_existing_files(void **state)
{
    struct qm_error err = {0};
    char *before = NULL, *after = NULL;
    struct stat st;

    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(qm_read_file(cert_path, &before, NULL, &err), 0);
    assert_int_equal(http_tls_ensure_self_signed(cert_path, key_path, "node1", &err), 0);
    assert_int_equal(qm_read_file(cert_path, &after, NULL, &err), 0);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(http_tls_ensure_self_signed(cert_path, key_path, "bad,name", &err), 0);
}

static void self_signed_rejects_bad_name(void **state)
{
    struct qm_error err = {0};
    char *cert = qm_sprintf("%s/other.pem", tmpdir);
    char *key = qm_sprintf("%s/other.key", tmpdir);

    assert_int_equal(http_tls_ensure_self_signed(cert, key, "bad,name", &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(access(key, F_OK), -1);
    free(cert);
    free(key);
}

static void tls_load_rejects_missing_file(void **state)
{
    struct http_tls *t = NULL;
    struct qm_error err = {0};
    char *missing = qm_sprintf("%s/missing.pem", tmpdir);

    assert_int_equal(http_tls_load(&t, missing, key_path, &err), -1);
    assert_null(t);
    assert_non_null(strstr(err.msg, missing));
    free(missing);
}

static void dual_stack_shows_ipv4_peer(void **state)
{
    struct http_server *srv = http_server_new(loop, handle, NULL);
    struct raw_client c = {.request = "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n"};
    struct qm_error err = {0};
    bool closed = false;

    if (http_server_listen_tcp(srv, NULL, 0, NULL, &err) < 0) {
        /* A host without IPv6 cannot bind "::". */
        http_server_close(srv, on_server_closed, &closed);
        while (!closed)
            uv_run(loop, UV_RUN_ONCE);
        skip();
    }
    c.port = http_server_port(srv);
    run_client(&c);
    assert_non_null(strstr(c.response.buf, "peer=127.0.0.1\n"));
    http_server_close(srv, on_server_closed, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
    sb_free(&c.response);
}

static void listen_rejects_bad_address(void **state)
{
    struct http_server *srv = http_server_new(loop, handle, NULL);
    struct qm_error err = {0};
    bool closed = false;

    assert_int_equal(http_server_listen_tcp(srv, "localhost", 0, NULL, &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(http_server_listen_tcp(srv, "127.0.0.1", 70000, NULL, &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(http_server_port(srv), -1);
    http_server_close(srv, on_server_closed, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
}

static void unix_listen_rejects_live_socket(void **state)
{
    struct http_server *srv = http_server_new(loop, handle, NULL);
    struct qm_error err = {0};
    bool closed = false;

    assert_int_equal(http_server_listen_unix(srv, sock_path, 0600, &err), -1);
    assert_int_equal(err.code, 409);
    http_server_close(srv, on_server_closed, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(form_parsing_decodes),
        cmocka_unit_test(form_parsing_rejects_bad_escapes),
        cmocka_unit_test(url_decode_keeps_plus_in_paths),
        cmocka_unit_test(self_signed_keeps_existing_files),
        cmocka_unit_test(self_signed_rejects_bad_name),
        cmocka_unit_test(tls_load_rejects_missing_file),
        cmocka_unit_test(https_get_with_query),
        cmocka_unit_test(https_certificate_names_ip),
        cmocka_unit_test(https_post_form),
        cmocka_unit_test(https_keep_alive_reuses_connection),
        cmocka_unit_test(https_async_response),
        cmocka_unit_test(https_large_body_with_expect),
        cmocka_unit_test(https_large_response),
        cmocka_unit_test(https_custom_reason),
        cmocka_unit_test(malformed_request_gets_400),
        cmocka_unit_test(oversized_headers_get_431),
        cmocka_unit_test(oversized_url_gets_414),
        cmocka_unit_test(oversized_body_gets_413),
        cmocka_unit_test(chunked_body_is_decoded),
        cmocka_unit_test(unix_socket_exposes_peer),
        cmocka_unit_test(pipelined_requests_answer_in_order),
        cmocka_unit_test(http10_closes_after_response),
        cmocka_unit_test(http10_keep_alive_is_honoured),
        cmocka_unit_test(upgrade_request_is_answered),
        cmocka_unit_test(plain_http_on_https_port),
        cmocka_unit_test(half_closed_client_gets_response),
        cmocka_unit_test(reset_before_async_response),
        cmocka_unit_test(idle_connection_is_closed),
        cmocka_unit_test(slow_request_is_closed),
        cmocka_unit_test(server_close_with_pending_request),
        cmocka_unit_test(dual_stack_shows_ipv4_peer),
        cmocka_unit_test(listen_rejects_bad_address),
        cmocka_unit_test(unix_listen_rejects_live_socket),
    };

    return cmocka_run_group_tests(tests, setup_server, teardown_server);
}

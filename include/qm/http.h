/*
 * The HTTP/1.1 server of qmd: HTTPS over TCP (mbedTLS) for API clients and
 * plain HTTP over a unix socket for local tools, on a caller's libuv loop.
 *
 * Each connection handles one request at a time: the server stops parsing
 * until the handler has called http_respond(), which it may do later from
 * any callback on the same loop. Keep-alive, pipelining, HTTP/1.0 and
 * "Connection: close" are handled here; handlers only see whole requests.
 */
#ifndef QM_HTTP_H
#define QM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

#include "qm/util.h"

/* Limits on what a client may send; larger requests get 431, 414 or 413. */
#define HTTP_MAX_HEADER_SIZE (64 * 1024)  /* request line and headers, bytes */
#define HTTP_MAX_BODY_SIZE (16 * 1024 * 1024)
/* Between requests, while reading one, and from a request's first byte to its last. */
#define HTTP_IDLE_TIMEOUT_MS 60000

struct http_server;
struct http_tls;

/*
 * One request, valid from the handler call until http_respond() returns.
 * All strings are NUL-terminated and owned by the server.
 */
struct http_request {
    const char *method;     /* "GET", "POST", ... */
    const char *path;       /* raw path before '?', still percent-encoded */
    const char *query;      /* raw text after '?' without it, "" if none */
    const char *body;       /* NUL-terminated after body_len bytes */
    size_t body_len;
    int http_minor;         /* 0 for HTTP/1.0, 1 for HTTP/1.1 */

    bool is_unix;           /* arrived on the unix socket */
    bool is_tls;
    uid_t peer_uid;         /* unix socket: from SO_PEERCRED; (uid_t)-1 on TCP */
    gid_t peer_gid;
    pid_t peer_pid;         /* unix socket: from SO_PEERCRED; 0 on TCP */
    const char *peer_addr;  /* TCP: numeric IP address; "" on the unix socket */
    int peer_port;          /* TCP: the client's port; 0 on the unix socket */

    void *user;             /* for the handler; NULL at the start of each request */
};

/*
 * Called once per complete request. The handler (or code it starts) must
 * call http_respond() exactly once, now or later on the same loop.
 */
typedef void (*http_handler_fn)(struct http_request *req, void *data);

/*
 * Creates a server without listeners; it never fails. It sets SIGPIPE to
 * be ignored unless the process has a handler for it, because a client that
 * resets its connection would otherwise kill the process on the next write.
 */
struct http_server *http_server_new(uv_loop_t *loop, http_handler_fn handler, void *data);

/*
 * Listens on host (an IPv4 or IPv6 address; NULL for "::", which also
 * accepts IPv4 where the system allows it) and port (0 picks a free port).
 * With tls the connections speak HTTPS, otherwise plain HTTP. tls must stay
 * valid until the server is closed. May be called more than once.
 */
int http_server_listen_tcp(struct http_server *srv, const char *host, int port,
                           const struct http_tls *tls, struct qm_error *err);

/* Sets how long a connection may stay silent before it is closed; for tests. */
void http_server_set_idle_timeout(struct http_server *srv, unsigned int timeout_ms);

/* Returns the port of the last TCP listener, or -1 without one. */
int http_server_port(const struct http_server *srv);

/*
 * Listens on a unix socket at path with plain HTTP, after removing a socket
 * left at that path by an earlier run, and sets its file mode (e.g. 0600).
 */
int http_server_listen_unix(struct http_server *srv, const char *path, int mode,
                            struct qm_error *err);

/*
 * Closes listeners and connections, and frees the server once every handle
 * is closed; then calls done(data) if done is not NULL. A request whose
 * response is still pending stays valid: http_respond() then frees it
 * without sending anything.
 */
void http_server_close(struct http_server *srv, void (*done)(void *data), void *data);

/*
 * Returns the value of the first header named name (compared without case),
 * or NULL. Repeated headers are not joined.
 */
const char *http_request_header(const struct http_request *req, const char *name);

/*
 * Adds a header to the response of req; call it before http_respond(). A
 * header is dropped with a logged error if its name is empty or contains ':',
 * CR or LF, or its value contains CR or LF, because it would split the response.
 */
void http_request_add_response_header(struct http_request *req, const char *name,
                                      const char *value);

/*
 * Replaces the standard reason phrase of the status line, as the Proxmox VE
 * API does for error messages. Control characters become spaces and the
 * text is cut at 256 bytes.
 */
void http_request_set_reason(struct http_request *req, const char *reason);

/*
 * Sends the response to req and ends it: req must not be used afterwards.
 * content_type may be NULL when len is 0. The server adds Content-Length
 * and Connection itself. After a client disconnect this only frees req.
 */
void http_respond(struct http_request *req, int status, const char *content_type,
                  const char *body, size_t len);

/*
 * Decodes percent-encoding in s[0..len) and appends the result to out; with
 * form set, '+' decodes to a space (application/x-www-form-urlencoded).
 * Fails with 400 on a malformed escape or an encoded NUL byte.
 */
int http_url_decode(const char *s, size_t len, bool form, struct strbuf *out,
                    struct qm_error *err);

/*
 * Splits a query string or an application/x-www-form-urlencoded body into
 * decoded names and values, appended in order to keys and values. A pair
 * without '=' gets the value "", and empty pairs ("a=1&&b=2") are skipped.
 */
int http_parse_form(const char *s, size_t len, struct strvec *keys, struct strvec *values,
                    struct qm_error *err);

/* Loads a PEM certificate chain and its private key for HTTPS (TLS 1.2 or later). */
int http_tls_load(struct http_tls **out, const char *cert_path, const char *key_path,
                  struct qm_error *err);
void http_tls_free(struct http_tls *tls);

/*
 * Creates a self-signed certificate for common_name unless cert_path and
 * key_path both exist: an EC P-256 key (kept if only the certificate is
 * missing), valid for 10 years, with the subject alternative names
 * common_name, "localhost" and 127.0.0.1. The key is written with mode 0600.
 * common_name must be a host name (letters, digits, '-' and '.').
 */
int http_tls_ensure_self_signed(const char *cert_path, const char *key_path,
                                const char *common_name, struct qm_error *err);

#endif

/*
 * The event socket. Each QEMU that qmd starts connects back here with a
 * second QMP monitor (chardev "qmp-event", reconnecting every 5 s). Events
 * reach the state machines through the per-VM QMP connection; this side
 * only drains the stream so that QEMU's output buffer never grows.
 */
#include <stdlib.h>
#include <unistd.h>

#include "daemon.h"

static uv_pipe_t *listener;

/* The connected QEMUs, so that closing the server closes them too. */
struct event_client {
    uv_pipe_t pipe;
    struct event_client *next;
};

static struct event_client *clients;

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    static char scratch[4096];

    buf->base = scratch;
    buf->len = sizeof(scratch);
}

static void free_handle_cb(uv_handle_t *handle)
{
    free(handle);
}

static void close_client(struct event_client *client)
{
    for (struct event_client **link = &clients; *link; link = &(*link)->next) {
        if (*link == client) {
            *link = client->next;
            break;
        }
    }
    /* pipe is the first member, so the handle's address is the client's. */
    uv_close((uv_handle_t *)&client->pipe, free_handle_cb);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0)
        close_client(stream->data);
}

static void connection_cb(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct event_client *client = qm_calloc(1, sizeof(*client));
    uv_pipe_init(server->loop, &client->pipe, 0);
    client->pipe.data = client;
    client->next = clients;
    clients = client;
    if (uv_accept(server, (uv_stream_t *)&client->pipe) < 0) {
        close_client(client);
        return;
    }
    uv_read_start((uv_stream_t *)&client->pipe, alloc_cb, read_cb);
}

int event_server_listen(uv_loop_t *loop, const char *path, struct qm_error *err)
{
    int r;

    unlink(path);
    listener = qm_malloc(sizeof(*listener));
    uv_pipe_init(loop, listener, 0);
    r = uv_pipe_bind(listener, path);
    if (r == 0)
        r = uv_listen((uv_stream_t *)listener, 64, connection_cb);
    if (r < 0) {
        uv_close((uv_handle_t *)listener, free_handle_cb);
        listener = NULL;
        return qm_fail(err, 500, "unable to listen on '%s': %s", path, uv_strerror(r));
    }
    return 0;
}

void event_server_close(void)
{
    while (clients)
        close_client(clients);
    if (listener) {
        uv_close((uv_handle_t *)listener, free_handle_cb);
        listener = NULL;
    }
}

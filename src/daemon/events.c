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

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0)
        uv_close((uv_handle_t *)stream, free_handle_cb);
}

static void connection_cb(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_pipe_t *client = qm_malloc(sizeof(*client));
    uv_pipe_init(server->loop, client, 0);
    if (uv_accept(server, (uv_stream_t *)client) < 0) {
        uv_close((uv_handle_t *)client, free_handle_cb);
        return;
    }
    uv_read_start((uv_stream_t *)client, alloc_cb, read_cb);
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
    if (listener) {
        uv_close((uv_handle_t *)listener, free_handle_cb);
        listener = NULL;
    }
}

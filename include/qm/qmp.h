/*
 * Asynchronous QMP client on a libuv loop that the caller owns.
 *
 * One struct qmp is one connection to a QEMU monitor socket. Every callback
 * runs on the loop thread. The owner calls qmp_close() exactly once for each
 * successful qmp_connect(), also after a failed handshake or after the
 * closed callback; qmp_close() may be called from inside any callback.
 */
#ifndef QM_QMP_H
#define QM_QMP_H

#include <stdint.h>

#include <uv.h>
#include <yajl/yajl_tree.h>

#include "qm/util.h"

struct qmp;

/* Default time limit of one command, in milliseconds. */
#define QMP_DEFAULT_TIMEOUT_MS 30000

enum qmp_result {
    QMP_OK,         /* QEMU returned "return" */
    QMP_ERROR,      /* QEMU returned "error" */
    QMP_TIMEOUT,    /* no reply before the command's deadline */
    QMP_CLOSED,     /* the connection closed before the reply arrived */
};

/* The outcome of one command. Pointers are valid only during the callback. */
struct qmp_reply {
    enum qmp_result result;
    yajl_val ret;               /* the "return" member when result is QMP_OK */
    const char *error_class;    /* QEMU's class, such as "CommandNotFound", for QMP_ERROR */
    const char *error_desc;     /* what failed, for every result other than QMP_OK */
};

/* An asynchronous event. data is NULL when QEMU sent no "data" member. */
struct qmp_event {
    const char *name;           /* "STOP", "RESUME", "SHUTDOWN", ... */
    yajl_val data;
    int64_t seconds;            /* QEMU's timestamp: seconds since the epoch */
    int64_t microseconds;
};

/* QEMU's version, from the greeting. */
struct qmp_version {
    int major;
    int minor;
    int micro;
    const char *package;        /* the distribution's version string, may be "" */
};

struct qmp_callbacks {
    /*
     * Called once when the handshake (greeting and qmp_capabilities) has
     * finished: err is NULL on success, or gives the reason connecting
     * failed or timed out. Not called when the owner closes the connection
     * first.
     */
    void (*ready)(struct qmp *qmp, const struct qm_error *err, void *opaque);
    /* Called for every event received after the handshake; may be NULL. */
    void (*event)(struct qmp *qmp, const struct qmp_event *event, void *opaque);
    /*
     * Called once when QEMU closes the connection (it exited or was killed)
     * after a successful handshake, after every pending command has completed
     * with QMP_CLOSED; may be NULL. Not called after qmp_close().
     */
    void (*closed)(struct qmp *qmp, void *opaque);
};

typedef void (*qmp_reply_cb)(struct qmp *qmp, const struct qmp_reply *reply, void *opaque);

/*
 * Starts connecting to the QMP socket at path. QEMU creates the socket shortly
 * after it starts, so a missing socket or a refused connection is retried
 * until timeout_ms have passed. Returns -1 with err filled in only for an
 * unusable path; later failures reach callbacks->ready.
 */
int qmp_connect(uv_loop_t *loop, const char *path, unsigned timeout_ms,
                const struct qmp_callbacks *callbacks, void *opaque,
                struct qmp **out, struct qm_error *err);

/*
 * Closes the connection and frees qmp once libuv has released its handles.
 * Pending commands complete with QMP_CLOSED before this returns.
 */
void qmp_close(struct qmp *qmp);

/*
 * Sends a command. args_json is a JSON object with the arguments, or NULL.
 * cb is called exactly once, with the reply, a timeout or a closed
 * connection, and never before this function returns. Commands sent before
 * the handshake has finished wait for it. Returns -1 with err filled in when
 * the connection is closed or args_json is not a JSON object.
 */
int qmp_command(struct qmp *qmp, const char *command, const char *args_json,
                qmp_reply_cb cb, void *opaque, struct qm_error *err);
/* Like qmp_command() with a time limit for this command alone (0: the default). */
int qmp_command_timeout(struct qmp *qmp, const char *command, const char *args_json,
                        unsigned timeout_ms, qmp_reply_cb cb, void *opaque,
                        struct qm_error *err);

/*
 * Runs a human monitor (HMP) command line through human-monitor-command.
 * output is the monitor's text when reply->result is QMP_OK, else NULL.
 */
typedef void (*qmp_hmp_cb)(struct qmp *qmp, const char *output,
                           const struct qmp_reply *reply, void *opaque);
int qmp_hmp_command(struct qmp *qmp, const char *command_line, qmp_hmp_cb cb,
                    void *opaque, struct qm_error *err);

/* Sets the time limit of commands sent from now on, in milliseconds (0: the default). */
void qmp_set_timeout(struct qmp *qmp, unsigned timeout_ms);

/* Returns QEMU's version from the greeting; all zero before it arrived. */
const struct qmp_version *qmp_get_version(const struct qmp *qmp);

/* Returns the socket path given to qmp_connect(). */
const char *qmp_get_path(const struct qmp *qmp);

#endif

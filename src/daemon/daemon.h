/* Pieces of qmd that only the daemon uses. */
#ifndef QM_DAEMON_H
#define QM_DAEMON_H

#include <uv.h>

#include "qm/util.h"

/* Sends a state line ("READY=1", ...) to systemd when it started qmd with Type=notify. */
void qm_notify(const char *state);

/*
 * Installs the system call filter of qmd. It is inherited by every child,
 * QEMU included, so it only denies calls that neither qmd nor QEMU make:
 * loading kernels and modules, rebooting, swap, mounting, setting the clock
 * and tracing other processes. A denied call fails with EPERM.
 */
int qm_seccomp_install(struct qm_error *err);

/*
 * Listens on the event socket that every QEMU connects back to (its second
 * QMP monitor) and drains what arrives, so that QEMU never waits on it.
 */
int event_server_listen(uv_loop_t *loop, const char *path, struct qm_error *err);
void event_server_close(void);

#endif

/*
 * Guest-agent client: one exchange per connection to the agent's
 * virtio-serial socket, on a libuv loop that the caller owns.
 *
 * QEMU is the server side of that socket and keeps it open whether or not an
 * agent runs in the guest, and the agent may still hold the reply to an
 * earlier client. So every exchange first sends guest-sync-delimited with a
 * fresh random id and discards everything up to the matching reply, then
 * sends the command. One deadline covers the whole exchange, and writes never
 * block the loop.
 */
#ifndef QM_AGENT_H
#define QM_AGENT_H

#include <uv.h>

#include "qm/qmp.h"
#include "qm/util.h"

struct agent_exchange;

/*
 * The outcome of an exchange, in the QMP reply form: QMP_OK with the
 * "return" member, QMP_ERROR with the agent's error class, QMP_TIMEOUT when
 * the deadline passed, and QMP_CLOSED when the socket could not be reached or
 * closed early. Pointers in reply are valid only during the callback.
 */
typedef void (*agent_reply_cb)(const struct qmp_reply *reply, void *opaque);

/*
 * Starts one exchange with the agent behind socket_path. args_json is a JSON
 * object or NULL. cb is called exactly once, never before this returns,
 * unless agent_cancel() comes first. When exchange_out is not NULL it
 * receives a handle that is valid until cb is called. Returns -1 with err
 * filled in for an unusable path or arguments that are not a JSON object.
 *
 * NOTE: commands that send no reply on success (guest-shutdown,
 * guest-suspend-*) end with QMP_TIMEOUT or QMP_CLOSED, and the caller decides
 * what that means.
 */
int agent_command(uv_loop_t *loop, const char *socket_path, const char *command,
                  const char *args_json, unsigned timeout_ms, agent_reply_cb cb,
                  void *opaque, struct agent_exchange **exchange_out, struct qm_error *err);

/*
 * NOTE: QEMU serves one client at a time on a chardev socket, so further
 * exchanges with the same VM wait in the listen backlog, and a full backlog
 * fails them with QMP_CLOSED (EAGAIN). Callers should run exchanges with one
 * VM one after another.
 */

/* Abandons an exchange whose callback has not run: the callback is never called. */
void agent_cancel(struct agent_exchange *exchange);

#endif

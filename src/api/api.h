/* Internal interface of the REST API: request context, parameters, replies. */
#ifndef QM_API_INTERNAL_H
#define QM_API_INTERNAL_H

#include <stdbool.h>

#include "qm/http.h"
#include "qm/node.h"
#include "qm/util.h"

/* One API request from routing to its reply. */
struct api_call {
    struct qm_node *node;
    struct http_request *req;
    char *user;                 /* authenticated user@realm or user@realm!token */
    struct strvec keys;         /* request parameters: query, then body */
    struct strvec values;
    int vmid;                   /* from the path, 0 when it has none */
    char *upid;                 /* from the path, or NULL */
    char *name;                 /* a {name} segment of the path, or NULL */
    struct strbuf param_errors; /* JSON members "name": "message" for a 400 reply */
};

/* Sends {"data": json} (json NULL: null) with status 200 and ends the call. */
void api_reply(struct api_call *call, const char *json);
/* Like api_reply() with a "total" member beside "data". */
void api_reply_total(struct api_call *call, const char *json, long long total);
/* Sends an error status with message and ends the call. */
void api_fail(struct api_call *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void api_fail_error(struct api_call *call, const struct qm_error *err);
/* Ends a call that returns nothing: null on success, else a 500 with error. */
void api_reply_done(struct api_call *call, const char *error);

/* Records a parameter error; api_param_errors_reply() sends them all as one 400. */
void api_param_error(struct api_call *call, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool api_has_param_errors(const struct api_call *call);
void api_param_errors_reply(struct api_call *call);

/* The value of a parameter, or NULL. */
const char *api_param(const struct api_call *call, const char *name);
/* Reads a boolean (1/0/true/false/yes/no/on/off); records an error on junk. */
bool api_param_bool(struct api_call *call, const char *name, bool fallback);
/* Reads an integer within [min, max]; records an error on junk or out of range. */
long long api_param_int(struct api_call *call, const char *name, long long min, long long max,
                        long long fallback);

/*
 * Returns a VM's configuration for reading, from a cache checked against the
 * file. It stays valid until the next call for the same VM; NULL with err
 * filled in when it cannot be read.
 */
const struct qm_conf *api_conf_cached(struct qm_node *node, int vmid, struct qm_error *err);

/* Handlers: each ends the call with exactly one reply. */
/* A standalone node's view of /cluster: its own VMs and free ids (api-vm.c). */
void api_cluster_resources(struct api_call *call);
void api_cluster_nextid(struct api_call *call);
void api_vm_list(struct api_call *call);
void api_vm_create(struct api_call *call);
void api_vm_index(struct api_call *call);
void api_vm_config_get(struct api_call *call);
void api_vm_config_set(struct api_call *call);
void api_vm_pending_get(struct api_call *call);
void api_vm_destroy(struct api_call *call);
void api_vm_status_current(struct api_call *call);
void api_vm_status_index(struct api_call *call);
void api_vm_status_action(struct api_call *call);
void api_vm_monitor(struct api_call *call);
void api_vm_unlock(struct api_call *call);
void api_vm_showcmd(struct api_call *call);
/* Disks (api-disk.c). rescan is not in Proxmox VE's API, where qm does it locally. */
void api_vm_resize(struct api_call *call);
void api_vm_move_disk(struct api_call *call);
void api_vm_unlink(struct api_call *call);
void api_vm_rescan(struct api_call *call);
void api_vm_agent_index(struct api_call *call);
void api_vm_agent(struct api_call *call);
void api_tasks_list(struct api_call *call);
void api_task_index(struct api_call *call);
void api_task_status(struct api_call *call);
void api_task_log(struct api_call *call);

#endif

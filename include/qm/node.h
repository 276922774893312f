/* The state of one running qmd: its loop, files, listeners, tasks and VMs. */
#ifndef QM_NODE_H
#define QM_NODE_H

#include <uv.h>

#include "qm/access.h"
#include "qm/qemu.h"
#include "qm/task.h"
#include "qm/util.h"

struct http_server;
struct http_tls;
struct qm_vm;

struct qm_node {
    uv_loop_t *loop;
    struct qm_paths paths;
    char *name;                 /* the node name used in API paths and UPIDs */
    struct qm_tasks tasks;
    struct qm_access access;
    struct http_server *http;
    struct http_tls *tls;
    struct qm_vm *vms;          /* sorted by vmid */
    struct qm_qemu_caps caps;   /* probed once at start */
    struct qm_host host;
    bool stopping;
    unsigned long op_serial;    /* the last serial number given to a VM operation */
};

struct qm_vm *qm_node_find_vm(struct qm_node *node, int vmid);
/* Returns the VM with that id, creating its (stopped) state machine when missing. */
struct qm_vm *qm_node_get_vm(struct qm_node *node, int vmid);
/* Drops the state machine of a VM whose configuration is gone. */
void qm_node_forget_vm(struct qm_node *node, int vmid);
/* Returns the ids of every VM with a configuration file, sorted (caller frees). */
int *qm_node_list_vmids(struct qm_node *node, size_t *count);

#endif

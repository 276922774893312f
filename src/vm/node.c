/* The node's table of VM state machines, sorted by VM id. */
#include "qm/node.h"
#include "qm/vm.h"

struct qm_vm *qm_node_find_vm(struct qm_node *n, int vmid)
{
    for (struct qm_vm *vm = n->vms; vm && vm->vmid <= vmid; vm = vm->next) {
        if (vm->vmid == vmid)
            return vm;
    }
    return NULL;
}

struct qm_vm *qm_node_get_vm(struct qm_node *n, int vmid)
{
    struct qm_vm **link = &n->vms;

    while (*link && (*link)->vmid < vmid)
        link = &(*link)->next;
    if (*link && (*link)->vmid == vmid)
        return *link;
    struct qm_vm *vm = qm_vm_new(n, vmid);
    vm->next = *link;
    *link = vm;
    return vm;
}

void qm_node_forget_vm(struct qm_node *n, int vmid)
{
    for (struct qm_vm **link = &n->vms; *link; link = &(*link)->next) {
        struct qm_vm *vm = *link;
        if (vm->vmid == vmid) {
            if (qm_vm_is_running(vm) || vm->ops)
                return;
            *link = vm->next;
            qm_vm_release(vm);
            return;
        }
    }
}

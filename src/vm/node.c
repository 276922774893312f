/* The node's table of VM state machines, sorted by VM id. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

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

static int compare_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;

    return (x > y) - (x < y);
}

int *qm_node_list_vmids(struct qm_node *node, size_t *count)
{
    DIR *dir = opendir(node->paths.conf_dir);
    int *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *entry;

    *count = 0;
    if (!dir)
        return NULL;
    while ((entry = readdir(dir))) {
        long long vmid;
        char *dot = strrchr(entry->d_name, '.');
        if (!dot || strcmp(dot, ".conf") != 0)
            continue;
        char *digits = qm_strndup(entry->d_name, (size_t)(dot - entry->d_name));
        bool ok = qm_parse_int(digits, &vmid) && vmid >= 100 && vmid <= 999999999;
        free(digits);
        if (!ok)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            ids = qm_realloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = (int)vmid;
    }
    closedir(dir);
    if (n)
        qsort(ids, n, sizeof(*ids), compare_int);
    *count = n;
    return ids;
}

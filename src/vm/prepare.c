/*
 * What a VM needs around QEMU: files and helper processes set up before the
 * start and removed after the stop.
 */
#include "qm/vm.h"

void qm_vm_prepare_start(struct qm_vm *vm, const struct qm_conf *conf, struct qm_task *task,
                         qm_vm_prepared_fn done)
{
    done(vm, NULL);
}

void qm_vm_cleanup_stopped(struct qm_vm *vm)
{
}

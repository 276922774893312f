/*
 * Disk hotplug on a running VM. A scsiN or virtioN drive is added through
 * QMP with the same -drive options and -device properties that a cold start
 * of the configuration would use, after the SCSI controller, iothread and
 * PCI bridge it needs. Removal waits for QEMU's DEVICE_DELETED event.
 */
#ifndef QM_HOTPLUG_H
#define QM_HOTPLUG_H

#include <stdbool.h>

#include "qm/config.h"
#include "qm/task.h"
#include "qm/vm.h"

/* How long a removal waits for the guest to release a device, in milliseconds. */
#define QM_HOTPLUG_UNPLUG_TIMEOUT_MS 5000

/*
 * Whether drive key can be added to or removed from a running VM whose
 * current configuration is main: scsiN or virtioN, with "disk" in the
 * hotplug option (default "network,disk,usb"). When it cannot, *reason
 * is set to a static message with the cause.
 */
bool qm_hotplug_disk_supported(const struct qm_conf_section *main, const char *key,
                               const char **reason);

/* Called exactly once, with NULL on success or the reason of the failure. */
typedef void (*qm_hotplug_done_fn)(const char *error, void *opaque);

/*
 * Adds drive key with value to the running VM. main is the current
 * configuration without key; it gives the controller type and the other
 * options that decide the device's bus and address. Steps are logged in
 * task. On failure the drive added for key is deleted again; a controller
 * or bridge added for it stays, as it would after a cold start. done may
 * be called before this function returns.
 */
void qm_hotplug_disk_add(struct qm_vm *vm, const struct qm_conf_section *main, const char *key,
                         const char *value, struct qm_task *task, qm_hotplug_done_fn done,
                         void *opaque);

/*
 * Removes drive key, as main (the current configuration) names it, from
 * the running VM: device_del, the DEVICE_DELETED event within
 * QM_HOTPLUG_UNPLUG_TIMEOUT_MS, then the drive, then a SCSI controller
 * that no other drive of main uses and its iothread. done gets an error
 * only when the device or its drive is still there. A controller that does
 * not go away is a warning in task. done may be called before this
 * function returns.
 */
void qm_hotplug_disk_remove(struct qm_vm *vm, const struct qm_conf_section *main,
                            const char *key, struct qm_task *task, qm_hotplug_done_fn done,
                            void *opaque);

#endif

/*
 * Disk work shared by the create, config and destroy handlers: volumes to
 * allocate or import for new drives, drives detached to unusedN, and
 * volumes freed once the configuration no longer names them.
 */
#ifndef QM_API_DISK_H
#define QM_API_DISK_H

#include "qm/config.h"
#include "qm/storage.h"
#include "api.h"

struct disk_update;

/*
 * Writes the configuration once the volumes exist (on the loop thread).
 * On failure the new volumes are freed again.
 */
typedef int (*disk_commit_fn)(struct disk_update *update, void *opaque, struct qm_error *err);
/* Called last, with NULL or the error the task ended with; frees opaque. */
typedef void (*disk_finish_fn)(struct disk_update *update, void *opaque, const char *error);

struct disk_update *disk_update_new(struct qm_node *node, int vmid, struct qm_error *err);
void disk_update_free(struct disk_update *update);

/*
 * Plans the disk work that value of drive key requests: "STORAGE:SIZE"
 * (GiB, fractions allowed) allocates a volume, import-from= copies an
 * image in, efidisk0 and tpmstate0 are created from their templates.
 * conf gives the firmware for efidisk0. Returns 1 when there is work, 0
 * when the value names an existing volume, -1 with err (400 or 404).
 */
int disk_update_plan(struct disk_update *update, const struct qm_conf *conf, const char *key,
                     const char *value, const char *default_storage, struct qm_error *err);
/*
 * Returns value without its import-from= item (which the configuration
 * schema does not know) and sets *import to that item's value or NULL.
 * The caller frees both.
 */
char *disk_split_import_from(const char *value, char **import);
/* The value of key once its volume exists ("local:100/vm-100-disk-0.qcow2,size=1G"), or NULL. */
const char *disk_update_value(const struct disk_update *update, const char *key);
bool disk_update_has_work(const struct disk_update *update);
int disk_update_vmid(const struct disk_update *update);
/* The task the update runs in (set by disk_update_run). */
struct qm_task *disk_update_task(const struct disk_update *update);

/*
 * Drops drive key from section: a volume that the VM owns becomes unusedN,
 * or with force is queued to be freed after the commit; a foreign volume or
 * a CD-ROM is only dropped. Deleting unusedN queues its volume to be freed.
 * A volume that another key or a snapshot still names is never freed.
 */
void disk_update_detach(struct disk_update *update, struct qm_conf *conf, const char *key,
                        bool force, struct qm_task *task);
/*
 * Queues drive key of a running VM for hotplug after the commit, which
 * leaves the change in [PENDING]. A new drive gets its pending value added.
 * With remove the drive is removed, and force frees its volume instead of
 * keeping it as unusedN. A change that QEMU applies moves from [PENDING]
 * into the current configuration. One that fails stays pending, with the
 * reason as a task warning. Returns false for keys other than drives, and
 * for drives that cannot be hot-plugged, whose reason goes to task's log.
 * conf is the configuration being committed.
 */
bool disk_update_hotplug(struct disk_update *update, const struct qm_conf *conf, const char *key,
                         bool remove, bool force, struct qm_task *task);
/* Queues every volume the VM owns (its configuration, and with unreferenced its storages). */
void disk_update_free_all(struct disk_update *update, const struct qm_conf *conf,
                          bool unreferenced);

/*
 * Runs the planned work inside task: allocation on the thread pool, then
 * commit on the loop, then the hotplug changes that commit queued, then
 * freeing the queued volumes, then finish. The VM is marked busy with disk
 * work throughout. Takes ownership of update.
 */
void disk_update_run(struct disk_update *update, struct qm_task *task, disk_commit_fn commit,
                     disk_finish_fn finish, void *opaque);

/* Adds volid to the first free unusedN of section; returns the key (caller frees). */
char *disk_add_unused(struct qm_conf_section *section, const char *volid);
/* Whether volid is a volume on a storage whose name marks vmid as owner. */
bool disk_owned_by(const struct qm_storage_cfg *storage, const char *volid, int vmid);

#endif

/*
 * storage.cfg (the Proxmox VE storage configuration) and volume ids: which
 * storages exist, what content they may hold, and how a volume such as
 * "local:100/vm-100-disk-0.qcow2" reaches QEMU (a file, a block device or a
 * network protocol).
 */
#ifndef QM_STORAGE_H
#define QM_STORAGE_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "qm/task.h"
#include "qm/util.h"

/* Content types, as a bit mask. */
enum qm_content {
    QM_CONTENT_IMAGES = 1 << 0,
    QM_CONTENT_ROOTDIR = 1 << 1,
    QM_CONTENT_ISO = 1 << 2,
    QM_CONTENT_VZTMPL = 1 << 3,
    QM_CONTENT_BACKUP = 1 << 4,
    QM_CONTENT_SNIPPETS = 1 << 5,
    QM_CONTENT_IMPORT = 1 << 6,
};

/* One "TYPE: ID" section of storage.cfg. */
struct qm_storage {
    char *type;             /* dir, btrfs, nfs, cifs, lvm, lvmthin, rbd, zfspool, zfs, iscsi */
    char *id;
    unsigned content;       /* enum qm_content bits; the type's default when not set */
    char *path;             /* file storages: the base folder (nfs and cifs default to /mnt/pve/ID) */
    struct strvec keys;     /* every property as written, parallel to values */
    struct strvec values;
};

struct qm_storage_cfg {
    struct qm_storage *storages;
    size_t n;
};

/*
 * Parses storage.cfg text. An unknown storage type, a property line outside
 * a section or a duplicate id is an error (400) naming the line.
 */
int qm_storage_cfg_parse(const char *text, struct qm_storage_cfg *cfg, struct qm_error *err);
/*
 * Loads path. A missing file gives the default configuration of a fresh node:
 * dir storage "local" at /var/lib/vz.
 */
int qm_storage_cfg_load(const char *path, struct qm_storage_cfg *cfg, struct qm_error *err);
void qm_storage_cfg_free(struct qm_storage_cfg *cfg);

/* Returns the storage with this id, or NULL. */
const struct qm_storage *qm_storage_find(const struct qm_storage_cfg *cfg, const char *id);
/* Returns the value of a property of the storage, or NULL. */
const char *qm_storage_get(const struct qm_storage *storage, const char *key);
/* Returns whether a boolean property is set to 1/yes/on/true. */
bool qm_storage_flag(const struct qm_storage *storage, const char *key);

/* Returns the content bit for a name ("images", "iso", ...), or 0. */
unsigned qm_content_from_name(const char *name);
const char *qm_content_name(unsigned content);

/* How QEMU reaches a volume. */
enum qm_volume_kind {
    QM_VOLUME_FILE,     /* a regular file: path */
    QM_VOLUME_BLOCK,    /* a block device: path */
    QM_VOLUME_RBD,      /* Ceph RBD through librbd: pool, image, monitors */
    QM_VOLUME_ISCSI,    /* iSCSI through libiscsi: portal, target, lun */
};

struct qm_volume {
    const struct qm_storage *storage;   /* NULL for an absolute path */
    char *name;          /* the volume name inside the storage, or the path */
    unsigned content;    /* the one enum qm_content bit the name denotes */
    int vmid;            /* owner from the name, 0 when none */
    char *format;        /* raw, qcow2, vmdk, subvol; NULL for ISOs and other non-images */
    enum qm_volume_kind kind;
    char *path;          /* FILE/BLOCK: the path; RBD/ISCSI: a URI for messages */
    /* QM_VOLUME_RBD */
    char *pool;
    char *image;
    char *rbd_namespace;      /* NULL when not set */
    char *rbd_user;           /* NULL when not set */
    struct strvec monitors;   /* host names or addresses, without ports */
    /* QM_VOLUME_ISCSI */
    char *portal;
    char *target;
    int lun;
};

/*
 * Resolves a volume id ("STORAGE:NAME") or an absolute path. When content is
 * not 0, the volume must be of that content type. The storage must allow the
 * volume's content type. Volume names with "..", empty or unexpected path
 * components are rejected (400); an unknown storage is 404.
 */
int qm_volume_resolve(const struct qm_storage_cfg *cfg, const char *volid, unsigned content,
                      struct qm_volume *out, struct qm_error *err);
void qm_volume_free(struct qm_volume *vol);

/* Resolves volid and returns its path (a URI for network volumes); the caller frees it. */
int qm_volume_path(const struct qm_storage_cfg *cfg, const char *volid, unsigned content,
                   char **path, struct qm_error *err);
/* Returns the image format that a file name's extension denotes, or NULL. */
const char *qm_volume_format(const char *name);

/* Returns whether volid names a storage ("ID:NAME") rather than a path or a special word. */
bool qm_volid_has_storage(const char *volid);

/*
 * Volume operations. Only file-based storages (dir, nfs, cifs, btrfs) are
 * managed here; every operation on another type fails with 501 naming the
 * type. The functions block (file system work, qemu-img, btrfs), so the
 * daemon runs them inside a storage job (qm_job_start) only.
 */

/* Whether volumes of the storage are files under its path (dir, nfs, cifs, btrfs). */
bool qm_storage_is_file_based(const struct qm_storage *storage);
/* Fails (501) for a storage type this layer cannot manage, or (400) when it has no 'images'. */
int qm_storage_check_images(const struct qm_storage *storage, const char *operation,
                            struct qm_error *err);
/* The "format" property, else raw on btrfs and qcow2 on the others. */
const char *qm_storage_default_format(const struct qm_storage *storage);
int qm_storage_check_format(const struct qm_storage *storage, const char *format,
                            struct qm_error *err);

/*
 * Allocates an image of size bytes in format (NULL: the storage's default)
 * named vm-VMID-disk-N with the first free N, and returns its volume id
 * (caller frees). On failure nothing is left on the storage.
 */
int qm_volume_alloc(const struct qm_storage_cfg *cfg, const char *storeid, int vmid,
                    const char *format, unsigned long long size, char **volid,
                    struct qm_error *err);
/* Frees a volume and, on btrfs, its snapshots. A missing volume is 404. */
int qm_volume_delete(const struct qm_storage_cfg *cfg, const char *volid, struct qm_error *err);
/* Appends the volume ids of the images under images/VMID of a storage, sorted. */
int qm_volume_list(const struct qm_storage_cfg *cfg, const char *storeid, int vmid,
                   struct strvec *volids, struct qm_error *err);
/* The virtual size of a volume in bytes. */
int qm_volume_size(const struct qm_storage_cfg *cfg, const char *volid,
                   unsigned long long *size, struct qm_error *err);
/* Grows a volume to size bytes with qemu-img; a smaller size is 400. */
int qm_volume_resize(const struct qm_storage_cfg *cfg, const char *volid,
                     unsigned long long size, struct qm_error *err);

enum qm_snapshot_op {
    QM_SNAPSHOT_CREATE,
    QM_SNAPSHOT_DELETE,
    QM_SNAPSHOT_ROLLBACK,
};
/*
 * Snapshots of one volume: btrfs snapshots (NAME@SNAP, read-only) for raw
 * volumes on btrfs, qcow2 internal snapshots for qcow2 images; other
 * volumes fail with 400.
 */
int qm_volume_snapshot(const struct qm_storage_cfg *cfg, const char *volid, const char *snap,
                       enum qm_snapshot_op op, struct qm_error *err);

/* Receives each line of a tool's output, or each progress redraw. */
typedef void (*qm_command_line_fn)(const char *line, void *opaque);
/*
 * Runs argv (argv[0] looked up in PATH) to completion with standard output
 * and error captured. output (may be NULL) receives the text; line_cb (may
 * be NULL) each line as it arrives. A failure names the tool, its exit code
 * and the last line it printed.
 */
int qm_command_run(const char *const *argv, struct strbuf *output, qm_command_line_fn line_cb,
                   void *opaque, struct qm_error *err);
/* Reads an image's virtual size and, when detected_format is not NULL, its format. */
int qm_image_info(const char *path, const char *format, unsigned long long *size,
                  char **detected_format, struct qm_error *err);
/* Copies an image into an existing target with "qemu-img convert -p -n". */
int qm_image_copy(const char *src_path, const char *src_format, const char *dst_path,
                  const char *dst_format, qm_command_line_fn progress, void *opaque,
                  struct qm_error *err);

/*
 * A storage job: work runs on the libuv thread pool, then done runs on the
 * loop thread with rc and err (NULL on success) from work. Lines given to
 * qm_job_log() reach the task log (task may be NULL) on the loop thread.
 */
struct qm_job;
typedef int (*qm_job_work_fn)(struct qm_job *job, void *opaque, struct qm_error *err);
typedef void (*qm_job_done_fn)(struct qm_job *job, void *opaque, int rc,
                               const struct qm_error *err);
int qm_job_start(uv_loop_t *loop, struct qm_task *task, qm_job_work_fn work,
                 qm_job_done_fn done, void *opaque, struct qm_error *err);
/* Queues a line for the task log; callable from the worker thread. */
void qm_job_log(struct qm_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A qm_command_line_fn that logs qemu-img progress in steps of 10 %; opaque is the job. */
void qm_job_progress(const char *line, void *opaque);

/*
 * VMs with disk work under way (allocation, move, resize, freeing), so that
 * such operations and a start do not overlap. Loop thread only.
 * claim fails with 409 naming the running operation.
 */
int qm_storage_vm_claim(int vmid, const char *what, struct qm_error *err);
void qm_storage_vm_release(int vmid);
/* The description of the disk work under way for vmid, or NULL. */
const char *qm_storage_vm_busy(int vmid);

/*
 * The path of a file that a configuration names as an absolute path, a
 * volume id, or "STORAGE:DIR/FILE" below a file-based storage's folder
 * (firmware images, QEMU binaries). NULL for a malformed spec, an unknown
 * storage or a path that leaves the storage's folder. Caller frees.
 */
char *qm_storage_file_path(const struct qm_storage_cfg *cfg, const char *spec);

/*
 * Resolves a file like qm_storage_file_path() and checks that it is
 * readable; what names the setting in messages. The caller frees *path.
 */
int qm_storage_resolve_file(const struct qm_storage_cfg *cfg, const char *spec,
                            const char *what, char **path, struct qm_error *err);

#endif

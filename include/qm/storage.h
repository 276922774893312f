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

#endif

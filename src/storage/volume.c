/* Volume ids: "STORAGE:NAME" or an absolute path, resolved per storage type. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "qm/storage.h"

bool qm_volid_has_storage(const char *volid)
{
    const char *colon = strchr(volid, ':');

    if (!colon || colon == volid || volid[0] == '/')
        return false;
    for (const char *p = volid; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

const char *qm_volume_format(const char *name)
{
    static const char *const formats[] = {"raw", "qcow2", "vmdk", "subvol"};
    const char *dot = strrchr(name, '.');

    if (!dot)
        return NULL;
    for (size_t i = 0; i < QM_ARRAY_SIZE(formats); i++)
        if (strcmp(dot + 1, formats[i]) == 0)
            return formats[i];
    return NULL;
}

/* Rejects names that could leave the storage: "..", empty components, odd characters. */
static int check_name_safe(const char *volid, const char *name, struct qm_error *err)
{
    if (name[0] == '\0' || name[0] == '/')
        return qm_fail(err, 400, "invalid volume name in '%s'", volid);
    for (const char *p = name; *p; p++) {
        if (iscntrl((unsigned char)*p) || isspace((unsigned char)*p))
            return qm_fail(err, 400, "invalid character in volume name '%s'", volid);
    }
    const char *comp = name;
    while (comp) {
        const char *slash = strchr(comp, '/');
        size_t len = slash ? (size_t)(slash - comp) : strlen(comp);
        if (len == 0 || (len == 1 && comp[0] == '.') || (len == 2 && strncmp(comp, "..", 2) == 0))
            return qm_fail(err, 400, "invalid path component in volume name '%s'", volid);
        comp = slash ? slash + 1 : NULL;
    }
    return 0;
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* Parses "vm-VMID-..." / "base-VMID-..." / "subvol-VMID-..." and returns VMID, or 0. */
static int owner_from_disk_name(const char *name)
{
    static const char *const prefixes[] = {"vm-", "base-", "subvol-", "basevol-"};

    for (size_t i = 0; i < QM_ARRAY_SIZE(prefixes); i++) {
        size_t plen = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], plen) != 0)
            continue;
        const char *num = name + plen;
        const char *dash = strchr(num, '-');
        if (dash && dash[1] && all_digits(num, (size_t)(dash - num)))
            return atoi(num);
    }
    return 0;
}

static bool has_iso_extension(const char *name)
{
    return qm_str_ends(name, ".iso") || qm_str_ends(name, ".img") ||
           qm_str_ends(name, ".ISO") || qm_str_ends(name, ".IMG");
}

/* Volumes of dir, btrfs, nfs and cifs storages: files under storage->path. */
static int resolve_file_volume(const struct qm_storage *s, const char *volid, const char *name,
                               struct qm_volume *vol, struct qm_error *err)
{
    const char *slash = strchr(name, '/');

    if (!slash)
        return qm_fail(err, 400, "unable to parse volume name '%s'", volid);

    size_t head = (size_t)(slash - name);
    const char *rest = slash + 1;

    if (all_digits(name, head)) {
        /* VMID/FILE, or the linked clone BASEVMID/BASEFILE/VMID/FILE. */
        const char *file = rest;
        int vmid = atoi(name);
        const char *s2 = strchr(rest, '/');
        if (s2) {
            const char *s3 = strchr(s2 + 1, '/');
            if (!s3 || strchr(s3 + 1, '/') || !all_digits(s2 + 1, (size_t)(s3 - s2 - 1)))
                return qm_fail(err, 400, "unable to parse volume name '%s'", volid);
            vmid = atoi(s2 + 1);
            file = s3 + 1;
        }
        const char *format = qm_volume_format(file);
        if (!format)
            return qm_fail(err, 400, "unable to parse image format of volume '%s'", volid);
        vol->content = QM_CONTENT_IMAGES;
        vol->vmid = vmid;
        vol->format = qm_strdup(format);
        vol->kind = QM_VOLUME_FILE;
        if (strcmp(s->type, "btrfs") == 0 && strcmp(format, "raw") == 0) {
            /* Raw images on btrfs are subvolumes holding one disk.raw file. */
            vol->path = qm_sprintf("%s/images/%d/%.*s/disk.raw", s->path, vmid,
                                   (int)(strlen(file) - 4), file);
        } else {
            vol->path = qm_sprintf("%s/images/%d/%s", s->path, vmid, file);
        }
        return 0;
    }

    static const struct {
        const char *dir;        /* the first component of the volume name */
        unsigned content;
        const char *subdir;     /* where those files live under the storage path */
    } areas[] = {
        {"iso", QM_CONTENT_ISO, "template/iso"},
        {"vztmpl", QM_CONTENT_VZTMPL, "template/cache"},
        {"backup", QM_CONTENT_BACKUP, "dump"},
        {"snippets", QM_CONTENT_SNIPPETS, "snippets"},
        {"import", QM_CONTENT_IMPORT, "import"},
        {"rootdir", QM_CONTENT_ROOTDIR, "private"},
    };
    for (size_t i = 0; i < QM_ARRAY_SIZE(areas); i++) {
        if (strlen(areas[i].dir) != head || strncmp(name, areas[i].dir, head) != 0)
            continue;
        if (strchr(rest, '/'))
            return qm_fail(err, 400, "unable to parse volume name '%s'", volid);
        if (areas[i].content == QM_CONTENT_ISO && !has_iso_extension(rest))
            return qm_fail(err, 400, "volume '%s' is not an ISO image (.iso or .img)", volid);
        vol->content = areas[i].content;
        vol->kind = QM_VOLUME_FILE;
        vol->path = qm_sprintf("%s/%s/%s", s->path, areas[i].subdir, rest);
        if (areas[i].content == QM_CONTENT_ROOTDIR)
            vol->vmid = atoi(rest);
        return 0;
    }
    return qm_fail(err, 400, "unable to parse volume name '%s'", volid);
}

/* Names of block storages: "vm-100-disk-0", or "base-100-disk-0/vm-101-disk-0" for clones. */
static int parse_block_name(const char *volid, const char *name, const char **image,
                            int *vmid, struct qm_error *err)
{
    const char *slash = strchr(name, '/');

    *image = slash ? slash + 1 : name;
    if (strchr(*image, '/'))
        return qm_fail(err, 400, "unable to parse volume name '%s'", volid);
    *vmid = owner_from_disk_name(*image);
    if (*vmid == 0)
        return qm_fail(err, 400, "unable to parse volume name '%s'", volid);
    return 0;
}

static void split_monitors(const char *monhost, struct strvec *out)
{
    char *copy = qm_strdup(monhost);
    char *save = NULL;

    for (char *tok = strtok_r(copy, ",; ", &save); tok; tok = strtok_r(NULL, ",; ", &save))
        sv_push(out, tok);
    free(copy);
}

static int resolve_block_volume(const struct qm_storage *s, const char *volid, const char *name,
                                struct qm_volume *vol, struct qm_error *err)
{
    const char *image;
    int vmid;

    if (strcmp(s->type, "iscsi") == 0) {
        /* LUN volumes are named "CHANNEL.ID.LUN.DEVICE-ID" after /dev/disk/by-id. */
        const char *p = name;
        for (int i = 0; i < 3; i++) {
            p = strchr(p, '.');
            if (!p)
                return qm_fail(err, 400, "unable to parse volume name '%s'", volid);
            p++;
        }
        if (*p == '\0' || strchr(p, '/'))
            return qm_fail(err, 400, "unable to parse volume name '%s'", volid);
        vol->content = QM_CONTENT_IMAGES;
        vol->format = qm_strdup("raw");
        vol->kind = QM_VOLUME_BLOCK;
        vol->path = qm_sprintf("/dev/disk/by-id/%s", p);
        return 0;
    }

    if (parse_block_name(volid, name, &image, &vmid, err) < 0)
        return -1;
    vol->content = QM_CONTENT_IMAGES;
    vol->vmid = vmid;
    const char *format = qm_volume_format(image);
    vol->format = qm_strdup(format && strcmp(format, "qcow2") == 0 ? "qcow2" : "raw");

    if (strcmp(s->type, "lvm") == 0 || strcmp(s->type, "lvmthin") == 0) {
        const char *vg = qm_storage_get(s, "vgname");
        if (!vg)
            return qm_fail(err, 400, "storage '%s': missing property 'vgname'", s->id);
        vol->kind = QM_VOLUME_BLOCK;
        vol->path = qm_sprintf("/dev/%s/%s", vg, image);
        return 0;
    }
    if (strcmp(s->type, "zfspool") == 0) {
        const char *pool = qm_storage_get(s, "pool");
        if (!pool)
            return qm_fail(err, 400, "storage '%s': missing property 'pool'", s->id);
        if (qm_str_starts(image, "subvol-") || qm_str_starts(image, "basevol-")) {
            free(vol->format);
            vol->format = qm_strdup("subvol");
            vol->content = QM_CONTENT_ROOTDIR;
            vol->kind = QM_VOLUME_FILE;
            vol->path = qm_sprintf("/%s/%s", pool, image);
        } else {
            vol->kind = QM_VOLUME_BLOCK;
            vol->path = qm_sprintf("/dev/zvol/%s/%s", pool, image);
        }
        return 0;
    }
    if (strcmp(s->type, "rbd") == 0) {
        const char *pool = qm_storage_get(s, "pool");
        const char *ns = qm_storage_get(s, "namespace");
        const char *fsid = qm_storage_get(s, "fsid");
        vol->pool = qm_strdup(pool ? pool : "rbd");
        vol->image = qm_strdup(image);
        vol->rbd_namespace = ns ? qm_strdup(ns) : NULL;
        if (qm_storage_flag(s, "krbd")) {
            /* The kernel client maps images under /dev/rbd-pve/FSID/POOL[/NAMESPACE]/IMAGE. */
            vol->kind = QM_VOLUME_BLOCK;
            vol->path = qm_sprintf("/dev/rbd-pve/%s/%s%s%s/%s", fsid ? fsid : "unknown",
                                   vol->pool, ns ? "/" : "", ns ? ns : "", image);
            return 0;
        }
        const char *user = qm_storage_get(s, "username");
        const char *monhost = qm_storage_get(s, "monhost");
        vol->kind = QM_VOLUME_RBD;
        vol->rbd_user = user ? qm_strdup(user) : NULL;
        if (monhost)
            split_monitors(monhost, &vol->monitors);
        vol->path = qm_sprintf("rbd:%s/%s%s%s", vol->pool, ns ? ns : "", ns ? "/" : "", image);
        return 0;
    }
    if (strcmp(s->type, "zfs") == 0) {
        const char *portal = qm_storage_get(s, "portal");
        const char *target = qm_storage_get(s, "target");
        if (!portal || !target)
            return qm_fail(err, 400, "storage '%s': missing property 'portal' or 'target'",
                           s->id);
        vol->kind = QM_VOLUME_ISCSI;
        vol->portal = qm_strdup(portal);
        vol->target = qm_strdup(target);
        /*
         * NOTE: the LUN number is assigned by the iSCSI target provider when the
         * zvol is exported; it is not queried here and taken to be 0.
         */
        vol->lun = 0;
        vol->path = qm_sprintf("iscsi://%s/%s/%d", portal, target, vol->lun);
        return 0;
    }
    return qm_fail(err, 500, "storage '%s': volumes of type '%s' are not supported", s->id,
                   s->type);
}

int qm_volume_resolve(const struct qm_storage_cfg *cfg, const char *volid, unsigned content,
                      struct qm_volume *out, struct qm_error *err)
{
    memset(out, 0, sizeof(*out));

    if (volid[0] == '/') {
        if (check_name_safe(volid, volid + 1, err) < 0)
            return -1;
        out->name = qm_strdup(volid);
        out->path = qm_strdup(volid);
        out->content = content ? content : QM_CONTENT_IMAGES;
        out->kind = qm_str_starts(volid, "/dev/") ? QM_VOLUME_BLOCK : QM_VOLUME_FILE;
        const char *format = qm_volume_format(volid);
        out->format = qm_strdup(format ? format : "raw");
        return 0;
    }
    if (!qm_volid_has_storage(volid))
        return qm_fail(err, 400, "invalid volume id '%s'", volid);

    const char *colon = strchr(volid, ':');
    char *storeid = qm_strndup(volid, (size_t)(colon - volid));
    const char *name = colon + 1;
    const struct qm_storage *s = qm_storage_find(cfg, storeid);

    if (!s) {
        qm_fail(err, 404, "storage '%s' does not exist", storeid);
        free(storeid);
        return -1;
    }
    free(storeid);
    if (check_name_safe(volid, name, err) < 0)
        return -1;

    out->storage = s;
    out->name = qm_strdup(name);
    bool file_based = strcmp(s->type, "dir") == 0 || strcmp(s->type, "btrfs") == 0 ||
                      strcmp(s->type, "nfs") == 0 || strcmp(s->type, "cifs") == 0;
    int rc = file_based ? resolve_file_volume(s, volid, name, out, err)
                        : resolve_block_volume(s, volid, name, out, err);
    if (rc < 0) {
        qm_volume_free(out);
        return -1;
    }
    if (!(s->content & out->content)) {
        qm_fail(err, 400, "storage '%s' does not support content-type '%s'", s->id,
                qm_content_name(out->content));
        qm_volume_free(out);
        return -1;
    }
    if (content && !(content & out->content)) {
        qm_fail(err, 400, "volume '%s' has content type '%s', expected '%s'", volid,
                qm_content_name(out->content), qm_content_name(content));
        qm_volume_free(out);
        return -1;
    }
    return 0;
}

int qm_volume_path(const struct qm_storage_cfg *cfg, const char *volid, unsigned content,
                   char **path, struct qm_error *err)
{
    struct qm_volume vol;

    if (qm_volume_resolve(cfg, volid, content, &vol, err) < 0)
        return -1;
    *path = vol.path;
    vol.path = NULL;
    qm_volume_free(&vol);
    return 0;
}

void qm_volume_free(struct qm_volume *vol)
{
    free(vol->name);
    free(vol->format);
    free(vol->path);
    free(vol->pool);
    free(vol->image);
    free(vol->rbd_namespace);
    free(vol->rbd_user);
    sv_free(&vol->monitors);
    free(vol->portal);
    free(vol->target);
    memset(vol, 0, sizeof(*vol));
}

char *qm_storage_file_path(const struct qm_storage_cfg *cfg, const char *spec)
{
    struct qm_volume vol;

    if (spec[0] == '/')
        return qm_strdup(spec);
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !qm_volid_has_storage(spec))
        return NULL;
    if (qm_volume_resolve(cfg, spec, 0, &vol, NULL) == 0) {
        char *path = vol.kind == QM_VOLUME_FILE ? vol.path : NULL;
        if (path)
            vol.path = NULL;
        qm_volume_free(&vol);
        return path;
    }

    /* Any other file below the folder of a file-based storage: "STORAGE:DIR/FILE". */
    char *id = qm_strndup(spec, (size_t)(colon - spec));
    const struct qm_storage *storage = qm_storage_find(cfg, id);
    free(id);
    const char *rel = colon + 1;
    if (!storage || !storage->path || !qm_storage_is_file_based(storage) || !*rel ||
        rel[0] == '/' || strstr(rel, "//") || qm_str_ends(rel, "/"))
        return NULL;
    for (const char *p = rel; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
            return NULL;
    }
    return qm_sprintf("%s/%s", storage->path, rel);
}

int qm_storage_resolve_file(const struct qm_storage_cfg *cfg, const char *spec,
                            const char *what, char **path, struct qm_error *err)
{
    char *resolved = qm_storage_file_path(cfg, spec);

    if (!resolved)
        return qm_fail(err, 400, "%s: '%s' is neither an absolute path nor a file on a storage",
                       what, spec);
    if (access(resolved, R_OK) < 0) {
        int e = errno;
        qm_fail(err, e == ENOENT ? 404 : 500, "%s: '%s' (%s) is not readable: %s", what, spec,
                resolved, strerror(e));
        free(resolved);
        return -1;
    }
    *path = resolved;
    return 0;
}

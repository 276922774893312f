/*
 * Volume operations of the storage types: allocate, free, list, size,
 * resize, copy and snapshot. dir, nfs and cifs keep images as files under
 * PATH/images/VMID/; btrfs keeps raw images as subvolumes
 * (PATH/images/VMID/vm-VMID-disk-N/disk.raw) and other formats as files.
 * Every function here blocks on the file system or a tool, so the daemon
 * calls them on the libuv thread pool (see job.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qm/json.h"
#include "qm/storage.h"

/* Serializes picking a free disk name and creating it, across threads. */
static pthread_mutex_t alloc_mutex = PTHREAD_MUTEX_INITIALIZER;

bool qm_storage_is_file_based(const struct qm_storage *s)
{
    return strcmp(s->type, "dir") == 0 || strcmp(s->type, "btrfs") == 0 ||
           strcmp(s->type, "nfs") == 0 || strcmp(s->type, "cifs") == 0;
}

static bool is_btrfs(const struct qm_storage *s)
{
    return strcmp(s->type, "btrfs") == 0;
}

int qm_storage_check_images(const struct qm_storage *s, const char *operation,
                            struct qm_error *err)
{
    if (!qm_storage_is_file_based(s))
        return qm_fail(err, 501,
                       "storage '%s' is of type '%s': %s is supported only on dir, nfs, cifs "
                       "and btrfs storages",
                       s->id, s->type, operation);
    if (!(s->content & QM_CONTENT_IMAGES))
        return qm_fail(err, 400,
                       "storage '%s' does not support content-type 'images'; add it to the "
                       "storage's 'content' list",
                       s->id);
    return 0;
}

const char *qm_storage_default_format(const struct qm_storage *s)
{
    const char *format = qm_storage_get(s, "format");

    if (format)
        return format;
    return is_btrfs(s) ? "raw" : "qcow2";
}

int qm_storage_check_format(const struct qm_storage *s, const char *format,
                            struct qm_error *err)
{
    if (strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0 &&
        strcmp(format, "vmdk") != 0)
        return qm_fail(err, 400,
                       "unsupported format '%s' for storage '%s': use raw, qcow2 or vmdk",
                       format, s->id);
    return 0;
}

static char *image_dir(const struct qm_storage *s, int vmid)
{
    return qm_sprintf("%s/images/%d", s->path, vmid);
}

/*
 * Returns N when entry is a disk of vmid named vm-VMID-disk-N, followed by
 * nothing, ".EXT" or "@SNAPSHOT"; otherwise -1.
 */
static long disk_number(const char *entry, int vmid)
{
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "vm-%d-disk-", vmid);
    if (!qm_str_starts(entry, prefix))
        return -1;
    const char *digits = entry + strlen(prefix);
    char *end = NULL;
    errno = 0;
    long n = strtol(digits, &end, 10);
    if (end == digits || errno != 0 || n < 0)
        return -1;
    if (*end != '\0' && *end != '.' && *end != '@')
        return -1;
    return n;
}

/* Finds the first N that no entry of dir uses; the caller holds alloc_mutex. */
static long first_free_disk(const char *dir, int vmid)
{
    DIR *d = opendir(dir);
    size_t cap = 64;
    bool *used = qm_calloc(cap, sizeof(*used));
    struct dirent *e;
    long n = 0;

    while (d && (e = readdir(d))) {
        long k = disk_number(e->d_name, vmid);
        if (k < 0)
            continue;
        if ((size_t)k >= cap) {
            size_t grown = (size_t)k * 2;
            used = qm_realloc(used, grown * sizeof(*used));
            memset(used + cap, 0, (grown - cap) * sizeof(*used));
            cap = grown;
        }
        used[k] = true;
    }
    if (d)
        closedir(d);
    while ((size_t)n < cap && used[n])
        n++;
    free(used);
    return n;
}

static int format_size_arg(unsigned long long size, char *buf, size_t len)
{
    /* qemu-img takes bytes without a suffix. */
    return snprintf(buf, len, "%llu", size);
}

/* Creates an image file at path with qemu-img as Proxmox VE does (qcow2 with metadata preallocated). */
static int create_image_file(const char *path, const char *format, unsigned long long size,
                             struct qm_error *err)
{
    char size_arg[32];
    format_size_arg(size, size_arg, sizeof(size_arg));
    if (strcmp(format, "qcow2") == 0) {
        const char *argv[] = {"qemu-img", "create", "-o", "preallocation=metadata", "-f",
                              "qcow2", path, size_arg, NULL};
        return qm_command_run(argv, NULL, NULL, NULL, err);
    }
    const char *argv[] = {"qemu-img", "create", "-f", format, path, size_arg, NULL};
    return qm_command_run(argv, NULL, NULL, NULL, err);
}

static int btrfs_subvolume_create(const char *path, struct qm_error *err)
{
    const char *argv[] = {"btrfs", "-q", "subvolume", "create", path, NULL};
    return qm_command_run(argv, NULL, NULL, NULL, err);
}

static int btrfs_subvolume_delete(const char *path, struct qm_error *err)
{
    const char *argv[] = {"btrfs", "-q", "subvolume", "delete", path, NULL};
    return qm_command_run(argv, NULL, NULL, NULL, err);
}

int qm_volume_alloc(const struct qm_storage_cfg *cfg, const char *storeid, int vmid,
                    const char *format, unsigned long long size, char **volid,
                    struct qm_error *err)
{
    const struct qm_storage *s = qm_storage_find(cfg, storeid);

    if (!s)
        return qm_fail(err, 404, "storage '%s' does not exist", storeid);
    if (qm_storage_check_images(s, "allocating volumes", err) < 0)
        return -1;
    if (!format)
        format = qm_storage_default_format(s);
    if (qm_storage_check_format(s, format, err) < 0)
        return -1;
    if (size == 0)
        return qm_fail(err, 400, "invalid disk size 0: the size must be larger than zero");

    char *dir = image_dir(s, vmid);
    if (qm_mkdir_p(dir, 0755, err) < 0) {
        free(dir);
        return -1;
    }
    int rc = -1;
    pthread_mutex_lock(&alloc_mutex);
    long n = first_free_disk(dir, vmid);
    bool subvolume = is_btrfs(s) && strcmp(format, "raw") == 0;
    char *name = qm_sprintf("vm-%d-disk-%ld.%s", vmid, n, format);
    char *path = NULL;
    if (subvolume) {
        char *subvol = qm_sprintf("%s/vm-%d-disk-%ld", dir, vmid, n);
        rc = btrfs_subvolume_create(subvol, err);
        path = qm_sprintf("%s/disk.raw", subvol);
        if (rc == 0 && (rc = create_image_file(path, format, size, err)) < 0) {
            struct qm_error ignored;
            btrfs_subvolume_delete(subvol, &ignored);
        }
        free(subvol);
    } else {
        path = qm_sprintf("%s/%s", dir, name);
        /* Reserve the name first, so that no existing file is ever overwritten. */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = qm_fail(err, 500, "unable to create '%s': %s", path, strerror(errno));
        } else {
            close(fd);
            rc = create_image_file(path, format, size, err);
            if (rc < 0)
                unlink(path);
        }
    }
    pthread_mutex_unlock(&alloc_mutex);
    if (rc == 0)
        *volid = qm_sprintf("%s:%d/%s", s->id, vmid, name);
    free(path);
    free(name);
    free(dir);
    return rc;
}

/* Resolves volid on a storage whose volumes this layer manages. */
static int resolve_managed(const struct qm_storage_cfg *cfg, const char *volid,
                           const char *operation, struct qm_volume *vol, struct qm_error *err)
{
    if (!qm_volid_has_storage(volid))
        return qm_fail(err, 400, "invalid volume id '%s': expected STORAGE:VOLUME", volid);
    if (qm_volume_resolve(cfg, volid, 0, vol, err) < 0)
        return -1;
    if (qm_storage_check_images(vol->storage, operation, err) < 0 ||
        vol->content != QM_CONTENT_IMAGES) {
        if (vol->content != QM_CONTENT_IMAGES && err)
            qm_fail(err, 400, "volume '%s' is not a disk image", volid);
        qm_volume_free(vol);
        return -1;
    }
    return 0;
}

/* For a raw volume on btrfs: the subvolume folder holding disk.raw; else NULL. */
static char *subvolume_of(const struct qm_volume *vol)
{
    if (!is_btrfs(vol->storage) || strcmp(vol->format, "raw") != 0)
        return NULL;
    const char *slash = strrchr(vol->path, '/');
    return qm_strndup(vol->path, (size_t)(slash - vol->path));
}

/* Deletes the btrfs snapshots NAME@SNAP of the subvolume folder subvol. */
static int delete_btrfs_snapshots(const char *subvol, struct qm_error *err)
{
    const char *slash = strrchr(subvol, '/');
    char *dir = qm_strndup(subvol, (size_t)(slash - subvol));
    char *prefix = qm_sprintf("%s@", slash + 1);
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    while (d && rc == 0 && (e = readdir(d))) {
        if (!qm_str_starts(e->d_name, prefix))
            continue;
        char *snap = qm_sprintf("%s/%s", dir, e->d_name);
        rc = btrfs_subvolume_delete(snap, err);
        free(snap);
    }
    if (d)
        closedir(d);
    free(prefix);
    free(dir);
    return rc;
}

int qm_volume_delete(const struct qm_storage_cfg *cfg, const char *volid, struct qm_error *err)
{
    struct qm_volume vol;

    if (resolve_managed(cfg, volid, "freeing volumes", &vol, err) < 0)
        return -1;
    int rc = 0;
    char *subvol = subvolume_of(&vol);
    if (subvol) {
        struct stat st;
        if (stat(subvol, &st) < 0)
            rc = qm_fail(err, 404, "volume '%s' does not exist", volid);
        else if ((rc = delete_btrfs_snapshots(subvol, err)) == 0)
            rc = btrfs_subvolume_delete(subvol, err);
        free(subvol);
    } else if (unlink(vol.path) < 0) {
        rc = qm_fail(err, errno == ENOENT ? 404 : 500, "unable to free volume '%s': %s",
                     volid, strerror(errno));
    }
    qm_volume_free(&vol);
    return rc;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int qm_volume_list(const struct qm_storage_cfg *cfg, const char *storeid, int vmid,
                   struct strvec *volids, struct qm_error *err)
{
    const struct qm_storage *s = qm_storage_find(cfg, storeid);

    if (!s)
        return qm_fail(err, 404, "storage '%s' does not exist", storeid);
    if (qm_storage_check_images(s, "listing volumes", err) < 0)
        return -1;
    char *dir = image_dir(s, vmid);
    DIR *d = opendir(dir);
    size_t first = volids->n;
    struct dirent *e;

    while (d && (e = readdir(d))) {
        const char *name = e->d_name;
        if (name[0] == '.')
            continue;
        char *path = qm_sprintf("%s/%s", dir, name);
        struct stat st;
        if (stat(path, &st) == 0) {
            if (S_ISREG(st.st_mode) && qm_volume_format(name) &&
                strcmp(qm_volume_format(name), "subvol") != 0) {
                sv_pushf(volids, "%s:%d/%s", s->id, vmid, name);
            } else if (S_ISDIR(st.st_mode) && is_btrfs(s) && !strchr(name, '@')) {
                char *raw = qm_sprintf("%s/disk.raw", path);
                if (access(raw, F_OK) == 0)
                    sv_pushf(volids, "%s:%d/%s.raw", s->id, vmid, name);
                free(raw);
            }
        }
        free(path);
    }
    if (d)
        closedir(d);
    free(dir);
    if (volids->n > first)
        qsort(volids->v + first, volids->n - first, sizeof(char *), compare_strings);
    return 0;
}

int qm_image_info(const char *path, const char *format, unsigned long long *size,
                  char **detected_format, struct qm_error *err)
{
    struct strbuf out = {0};
    /* -U: the image may be open in a running QEMU. */
    const char *argv[] = {"qemu-img", "info", "-U", "--output=json", format ? "-f" : path,
                          format, format ? path : NULL, NULL};

    if (qm_command_run(argv, &out, NULL, NULL, err) < 0) {
        sb_free(&out);
        return -1;
    }
    struct qm_error parse_err;
    yajl_val info = qm_json_parse(out.buf, out.len, &parse_err);
    long long virtual_size = -1;
    const char *fmt = info ? qm_json_get_string(info, "format") : NULL;
    if (!info || !qm_json_get_int(info, "virtual-size", &virtual_size) || virtual_size < 0) {
        if (info)
            yajl_tree_free(info);
        sb_free(&out);
        return qm_fail(err, 500, "unable to read the size of '%s' from qemu-img info", path);
    }
    *size = (unsigned long long)virtual_size;
    if (detected_format)
        *detected_format = qm_strdup(fmt ? fmt : "raw");
    yajl_tree_free(info);
    sb_free(&out);
    return 0;
}

int qm_volume_size(const struct qm_storage_cfg *cfg, const char *volid,
                   unsigned long long *size, struct qm_error *err)
{
    struct qm_volume vol;

    if (resolve_managed(cfg, volid, "reading volume sizes", &vol, err) < 0)
        return -1;
    int rc;
    struct stat st;
    if (stat(vol.path, &st) < 0)
        rc = qm_fail(err, errno == ENOENT ? 404 : 500, "volume '%s' does not exist: %s", volid,
                     strerror(errno));
    else if (strcmp(vol.format, "raw") == 0 && S_ISREG(st.st_mode)) {
        *size = (unsigned long long)st.st_size;
        rc = 0;
    } else
        rc = qm_image_info(vol.path, vol.format, size, NULL, err);
    qm_volume_free(&vol);
    return rc;
}

int qm_volume_resize(const struct qm_storage_cfg *cfg, const char *volid,
                     unsigned long long size, struct qm_error *err)
{
    struct qm_volume vol;
    unsigned long long current;

    if (resolve_managed(cfg, volid, "resizing volumes", &vol, err) < 0)
        return -1;
    int rc = qm_volume_size(cfg, volid, &current, err);
    if (rc == 0 && size < current)
        rc = qm_fail(err, 400,
                     "shrinking disks is not supported: volume '%s' has %llu bytes, requested "
                     "%llu",
                     volid, current, size);
    if (rc == 0 && size > current) {
        char size_arg[32];
        format_size_arg(size, size_arg, sizeof(size_arg));
        const char *argv[] = {"qemu-img", "resize", "-f", vol.format, vol.path, size_arg, NULL};
        rc = qm_command_run(argv, NULL, NULL, NULL, err);
    }
    qm_volume_free(&vol);
    return rc;
}

int qm_image_copy(const char *src_path, const char *src_format, const char *dst_path,
                  const char *dst_format, qm_command_line_fn progress, void *opaque,
                  struct qm_error *err)
{
    /* -n: the target exists already (allocated with its final name and size). */
    const char *argv[] = {"qemu-img", "convert", "-p", "-n", "-f", src_format, "-O",
                          dst_format, src_path, dst_path, NULL};

    return qm_command_run(argv, NULL, progress, opaque, err);
}

int qm_volume_snapshot(const struct qm_storage_cfg *cfg, const char *volid, const char *snap,
                       enum qm_snapshot_op op, struct qm_error *err)
{
    static const char *const op_names[] = {
        [QM_SNAPSHOT_CREATE] = "creating snapshots",
        [QM_SNAPSHOT_DELETE] = "deleting snapshots",
        [QM_SNAPSHOT_ROLLBACK] = "rolling back snapshots",
    };
    struct qm_volume vol;

    if (!snap[0] || strchr(snap, '/') || strchr(snap, '@') || strcmp(snap, ".") == 0 ||
        strcmp(snap, "..") == 0)
        return qm_fail(err, 400, "invalid snapshot name '%s'", snap);
    if (resolve_managed(cfg, volid, op_names[op], &vol, err) < 0)
        return -1;
    int rc;
    char *subvol = subvolume_of(&vol);
    if (subvol) {
        char *snap_path = qm_sprintf("%s@%s", subvol, snap);
        if (op == QM_SNAPSHOT_CREATE) {
            const char *argv[] = {"btrfs", "-q", "subvolume", "snapshot", "-r", subvol,
                                  snap_path, NULL};
            rc = qm_command_run(argv, NULL, NULL, NULL, err);
        } else if (op == QM_SNAPSHOT_DELETE) {
            rc = btrfs_subvolume_delete(snap_path, err);
        } else {
            /* Take a writable snapshot of the snapshot first, so a failure loses nothing. */
            char *fresh = qm_sprintf("%s@.rollback", subvol);
            const char *argv[] = {"btrfs", "-q", "subvolume", "snapshot", snap_path, fresh,
                                  NULL};
            rc = qm_command_run(argv, NULL, NULL, NULL, err);
            if (rc == 0 && (rc = btrfs_subvolume_delete(subvol, err)) == 0 &&
                rename(fresh, subvol) < 0)
                rc = qm_fail(err, 500, "unable to rename '%s' to '%s': %s", fresh, subvol,
                             strerror(errno));
            free(fresh);
        }
        free(snap_path);
        free(subvol);
    } else if (strcmp(vol.format, "qcow2") == 0) {
        static const char *const flags[] = {
            [QM_SNAPSHOT_CREATE] = "-c", [QM_SNAPSHOT_DELETE] = "-d",
            [QM_SNAPSHOT_ROLLBACK] = "-a",
        };
        const char *argv[] = {"qemu-img", "snapshot", flags[op], snap, vol.path, NULL};
        rc = qm_command_run(argv, NULL, NULL, NULL, err);
    } else {
        rc = qm_fail(err, 400,
                     "volume '%s' cannot have snapshots: use qcow2, or raw on a btrfs storage",
                     volid);
    }
    qm_volume_free(&vol);
    return rc;
}

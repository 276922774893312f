/*
 * A VM's disks: allocation and import for new drives, detaching to unusedN,
 * freeing, and the resize, move_disk, unlink and rescan handlers.
 *
 * Volumes are created before the configuration names them and freed only
 * after it no longer does, so a failure at any step leaves either the old
 * configuration with its volumes or the new one, never a configuration
 * naming a missing volume. A new volume whose configuration could not be
 * written is freed again.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/schema.h"
#include "qm/hotplug.h"
#include "qm/json.h"
#include "qm/vm.h"
#include "api-disk.h"

/* Size of a tpmstate0 volume, as Proxmox VE allocates it. */
#define TPM_STATE_SIZE (4ULL * 1024 * 1024)
/* Sizes up to 2^53 bytes are exact in the double used to parse fractions of a GiB. */
#define MAX_DISK_SIZE (1ULL << 53)

struct planned_disk {
    char *key;
    struct qm_propstr ps;
    char *storeid;
    char *format;
    unsigned long long size;    /* bytes; 0: the size of the source */
    char *source_path;          /* import-from or a firmware template, or NULL */
    char *source_format;        /* NULL: detected by qemu-img */
    char *volid;                /* the new volume, once allocated */
    char *value;                /* the configuration value naming it */
};

/* A drive change of a running VM to apply with hotplug after the commit. */
struct hot_change {
    char *key;
    bool remove;
    bool force;                 /* remove: free the volume instead of keeping it as unusedN */
    char *value;                /* add: the value that was hot-plugged */
};

struct disk_update {
    struct qm_node *node;
    int vmid;
    struct qm_storage_cfg storage;
    struct planned_disk *items;
    size_t n;
    struct strvec to_free;
    bool scan_storages;         /* also free unreferenced volumes found on the storages */
    struct strvec warnings;     /* from the worker, logged on the loop */
    struct qm_task *task;
    bool claimed;               /* holds the VM's disk-work mark */
    char *error;                /* the error the task ends with, or NULL */
    disk_commit_fn commit;
    disk_finish_fn finish;
    void *opaque;
    struct hot_change *hot;     /* in the order queued */
    size_t nhot;
    size_t hot_next;
};

struct disk_update *disk_update_new(struct qm_node *node, int vmid, struct qm_error *err)
{
    struct disk_update *u = qm_calloc(1, sizeof(*u));

    u->node = node;
    u->vmid = vmid;
    if (qm_storage_cfg_load(node->paths.storage_cfg, &u->storage, err) < 0) {
        free(u);
        return NULL;
    }
    return u;
}

void disk_update_free(struct disk_update *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        struct planned_disk *d = &u->items[i];
        free(d->key);
        qm_propstr_free(&d->ps);
        free(d->storeid);
        free(d->format);
        free(d->source_path);
        free(d->source_format);
        free(d->volid);
        free(d->value);
    }
    free(u->items);
    for (size_t i = 0; i < u->nhot; i++) {
        free(u->hot[i].key);
        free(u->hot[i].value);
    }
    free(u->hot);
    sv_free(&u->to_free);
    sv_free(&u->warnings);
    qm_storage_cfg_free(&u->storage);
    free(u);
}

bool disk_update_has_work(const struct disk_update *u)
{
    return u->n > 0;
}

int disk_update_vmid(const struct disk_update *u)
{
    return u->vmid;
}

struct qm_task *disk_update_task(const struct disk_update *u)
{
    return u->task;
}

const char *disk_update_value(const struct disk_update *u, const char *key)
{
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->items[i].key, key) == 0)
            return u->items[i].value;
    return NULL;
}

static bool is_unused_key(const char *key)
{
    long long n;

    return qm_str_starts(key, "unused") && qm_parse_int(key + 6, &n) && n >= 0;
}

/*
 * Parses "[STORAGE:]SIZE" with SIZE in GiB into bytes, rounded up to whole
 * KiB as Proxmox VE does. Returns 1 on a match, 0 when spec is no size, -1
 * with err on a size out of range.
 */
static int parse_alloc_spec(const char *spec, char **storeid, unsigned long long *bytes,
                            struct qm_error *err)
{
    const char *colon = strrchr(spec, ':');
    const char *num = colon ? colon + 1 : spec;
    const char *p = num;

    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p != '\0' || (colon && !qm_volid_has_storage(spec)))
        return 0;
    double gib = strtod(num, NULL);
    double kib = ceil(gib * 1024 * 1024);
    if (kib * 1024 > (double)MAX_DISK_SIZE)
        return qm_fail(err, 400, "disk size %s GiB is too large: the maximum is %llu GiB", num,
                       MAX_DISK_SIZE >> 30);
    *bytes = (unsigned long long)kib * 1024;
    *storeid = colon ? qm_strndup(spec, (size_t)(colon - spec)) : NULL;
    return 1;
}

/* The OVMF variables template for a new efidisk0: bios vars= or the one for efitype. */
static int efi_vars_template(struct disk_update *u, const struct qm_conf *conf,
                             const struct qm_propstr *ps, char **path, struct qm_error *err)
{
    const char *bios = conf ? qm_conf_get(&conf->main, "bios") : NULL;
    struct qm_propstr bios_ps = {0};

    if (bios && qm_propstr_parse("bios", bios, &bios_ps, NULL) == 0) {
        const char *vars = qm_propstr_get(&bios_ps, "vars");
        if (vars) {
            int r = qm_storage_resolve_file(&u->storage, vars, "bios vars", path, err);
            qm_propstr_free(&bios_ps);
            return r;
        }
    }
    qm_propstr_free(&bios_ps);
    const char *efitype = qm_propstr_get(ps, "efitype");
    const char *keys = qm_propstr_get(ps, "pre-enrolled-keys");
    bool four_mb = efitype && strcmp(efitype, "4m") == 0;
    bool ms = keys && strcmp(keys, "1") == 0;
    const char *name = four_mb ? (ms ? "OVMF_VARS_4M.ms.fd" : "OVMF_VARS_4M.fd")
                               : "OVMF_VARS.fd";
    char *file = qm_sprintf("/usr/share/OVMF/%s", name);
    int r = qm_storage_resolve_file(&u->storage, file, "efidisk0 template", path, err);
    free(file);
    return r;
}

/* Resolves import-from into a readable image path and, when known, its format. */
static int import_source(struct disk_update *u, const char *source, struct planned_disk *d,
                         struct qm_error *err)
{
    struct qm_volume vol;
    struct qm_error inner;

    if (source[0] != '/' && !qm_volid_has_storage(source))
        return qm_fail(err, 400, "import-from: '%s' is neither an absolute path nor a volume id",
                       source);
    if (qm_volume_resolve(&u->storage, source, 0, &vol, &inner) < 0)
        return qm_fail(err, inner.code, "import-from: %s", inner.msg);
    if (vol.content != QM_CONTENT_IMAGES && vol.content != QM_CONTENT_IMPORT) {
        qm_volume_free(&vol);
        return qm_fail(err, 400, "import-from: '%s' is not a disk image", source);
    }
    if (vol.kind != QM_VOLUME_FILE && vol.kind != QM_VOLUME_BLOCK) {
        qm_volume_free(&vol);
        return qm_fail(err, 501, "import-from: '%s' is not a local file or block device",
                       source);
    }
    char *path = NULL;
    if (qm_storage_resolve_file(&u->storage, source, "import-from", &path, err) < 0) {
        qm_volume_free(&vol);
        return -1;
    }
    d->source_path = path;
    /* A path's extension is no proof of its format, so qemu-img detects it. */
    d->source_format = vol.storage && vol.format ? qm_strdup(vol.format) : NULL;
    qm_volume_free(&vol);
    return 0;
}

char *disk_split_import_from(const char *value, char **import)
{
    struct strbuf rest = {0};
    char *copy = qm_strdup(value);
    char *save = NULL;

    *import = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (qm_str_starts(item, "import-from=")) {
            free(*import);
            *import = qm_strdup(item + strlen("import-from="));
            continue;
        }
        if (rest.len)
            sb_addc(&rest, ',');
        sb_add(&rest, item);
    }
    free(copy);
    return sb_detach(&rest);
}

int disk_update_plan(struct disk_update *u, const struct qm_conf *conf, const char *key,
                     const char *value, const char *default_storage, struct qm_error *err)
{
    struct planned_disk d = {0};
    char *import = NULL;

    if (!qm_is_drive_key(key))
        return 0;
    char *rest = disk_split_import_from(value, &import);
    int r = qm_propstr_parse(key, rest, &d.ps, err);
    free(rest);
    if (r < 0) {
        free(import);
        return -1;
    }
    const char *file = qm_propstr_get(&d.ps, "file");
    const char *media = qm_propstr_get(&d.ps, "media");
    if (!file || (media && strcmp(media, "cdrom") == 0)) {
        qm_propstr_free(&d.ps);
        free(import);
        return import ? qm_fail(err, 400, "'import-from' is not allowed for CD-ROM drives")
                      : 0;
    }
    r = parse_alloc_spec(file, &d.storeid, &d.size, err);
    if (r <= 0) {
        qm_propstr_free(&d.ps);
        bool had_import = import != NULL;
        free(import);
        if (r == 0 && had_import)
            return qm_fail(err, 400, "'import-from' requires special syntax - use <storage "
                                     "ID>:0,import-from=<source>");
        return r;
    }
    if (!d.storeid)
        d.storeid = qm_strdup(default_storage ? default_storage : "");
    const struct qm_storage *s = qm_storage_find(&u->storage, d.storeid);
    if (!s) {
        r = qm_fail(err, d.storeid[0] ? 404 : 400,
                    d.storeid[0] ? "storage '%s' does not exist"
                                 : "missing storage for '%s': use STORAGE:SIZE",
                    d.storeid[0] ? d.storeid : file);
        goto fail;
    }
    if (qm_storage_check_images(s, "allocating volumes", err) < 0)
        goto fail;
    const char *format = qm_propstr_get(&d.ps, "format");
    d.format = qm_strdup(format ? format : qm_storage_default_format(s));
    if (strcmp(key, "tpmstate0") == 0) {
        /* swtpm keeps its state in a raw file. */
        free(d.format);
        d.format = qm_strdup("raw");
        d.size = TPM_STATE_SIZE;
    } else if (strcmp(key, "efidisk0") == 0) {
        if (efi_vars_template(u, conf, &d.ps, &d.source_path, err) < 0)
            goto fail;
        d.source_format = qm_strdup("raw");
        d.size = 0;
    } else if (import) {
        if (d.size != 0) {
            qm_fail(err, 400, "'import-from' requires special syntax - use <storage "
                              "ID>:0,import-from=<source>");
            goto fail;
        }
        if (import_source(u, import, &d, err) < 0)
            goto fail;
    } else if (d.size == 0) {
        qm_fail(err, 400, "invalid disk size in '%s': the size must be larger than zero", file);
        goto fail;
    }
    if (qm_storage_check_format(s, d.format, err) < 0)
        goto fail;
    qm_propstr_unset(&d.ps, "format");
    free(import);
    d.key = qm_strdup(key);
    u->items = qm_realloc(u->items, (u->n + 1) * sizeof(*u->items));
    u->items[u->n++] = d;
    return 1;
fail:
    free(import);
    qm_propstr_free(&d.ps);
    free(d.storeid);
    free(d.format);
    free(d.source_path);
    free(d.source_format);
    return -1;
}

/* The volume of a drive value: its file= (or first) part; the caller frees it. */
static char *drive_volid(const char *key, const char *value)
{
    if (is_unused_key(key))
        return qm_strdup(value);
    if (!qm_is_drive_key(key))
        return NULL;
    struct qm_propstr ps = {0};
    char *volid = NULL;
    if (qm_propstr_parse(key, value, &ps, NULL) == 0) {
        const char *file = qm_propstr_get(&ps, "file");
        const char *media = qm_propstr_get(&ps, "media");
        if (file && !(media && strcmp(media, "cdrom") == 0) && strcmp(file, "none") != 0 &&
            strcmp(file, "cdrom") != 0)
            volid = qm_strdup(file);
    }
    qm_propstr_free(&ps);
    return volid;
}

bool disk_owned_by(const struct qm_storage_cfg *storage, const char *volid, int vmid)
{
    struct qm_volume vol;

    if (!qm_volid_has_storage(volid) || qm_volume_resolve(storage, volid, 0, &vol, NULL) < 0)
        return false;
    bool owned = vol.content == QM_CONTENT_IMAGES && vol.vmid == vmid &&
                 qm_storage_is_file_based(vol.storage);
    /* A linked clone "BASE/BASEFILE/VMID/FILE" owns its own image only: still VMID. */
    qm_volume_free(&vol);
    return owned;
}

static bool section_uses(const struct qm_conf_section *section, const char *volid,
                         const char *skip_key)
{
    for (size_t i = 0; section && i < section->n; i++) {
        const char *key = section->entries[i].key;
        if (skip_key && strcmp(key, skip_key) == 0)
            continue;
        char *v = drive_volid(key, section->entries[i].value);
        bool same = v && strcmp(v, volid) == 0;
        free(v);
        if (same)
            return true;
    }
    return false;
}

/* Whether volid is named by any key other than skip_key of the main section, or anywhere else. */
static bool volume_in_use(const struct qm_conf *conf, const char *volid, const char *skip_key)
{
    if (section_uses(&conf->main, volid, skip_key) || section_uses(conf->pending, volid, NULL))
        return true;
    for (size_t i = 0; i < conf->nsnapshots; i++)
        if (section_uses(&conf->snapshots[i], volid, NULL))
            return true;
    return false;
}

char *disk_add_unused(struct qm_conf_section *section, const char *volid)
{
    for (int i = 0;; i++) {
        char key[32];
        snprintf(key, sizeof(key), "unused%d", i);
        const char *old = qm_conf_get(section, key);
        if (old && strcmp(old, volid) == 0)
            return qm_strdup(key);
        if (!old) {
            qm_conf_set(section, key, volid);
            return qm_strdup(key);
        }
    }
}

static void queue_free(struct disk_update *u, const char *volid)
{
    for (size_t i = 0; i < u->to_free.n; i++)
        if (strcmp(u->to_free.v[i], volid) == 0)
            return;
    sv_push(&u->to_free, volid);
}

void disk_update_detach(struct disk_update *u, struct qm_conf *conf, const char *key,
                        bool force, struct qm_task *task)
{
    const char *value = qm_conf_get(&conf->main, key);

    if (!value)
        return;
    char *volid = drive_volid(key, value);
    bool owned = volid && disk_owned_by(&u->storage, volid, u->vmid);
    bool used_elsewhere = volid && volume_in_use(conf, volid, key);

    qm_conf_unset(&conf->main, key);
    if (!volid) {
        free(volid);
        return;
    }
    if (is_unused_key(key) || force) {
        if (!owned)
            qm_task_log(task, "%s: volume '%s' is not owned by VM %d, so it is kept", key,
                        volid, u->vmid);
        else if (used_elsewhere)
            qm_task_log(task, "%s: volume '%s' is still used, so it is kept", key, volid);
        else
            queue_free(u, volid);
    } else if (owned && !used_elsewhere) {
        char *unused = disk_add_unused(&conf->main, volid);
        qm_task_log(task, "%s: volume '%s' kept as %s", key, volid, unused);
        free(unused);
    }
    free(volid);
}

static void collect_owned(struct disk_update *u, const struct qm_conf_section *section)
{
    for (size_t i = 0; section && i < section->n; i++) {
        char *volid = drive_volid(section->entries[i].key, section->entries[i].value);
        if (volid && disk_owned_by(&u->storage, volid, u->vmid))
            queue_free(u, volid);
        free(volid);
    }
}

void disk_update_free_all(struct disk_update *u, const struct qm_conf *conf, bool unreferenced)
{
    collect_owned(u, &conf->main);
    collect_owned(u, conf->pending);
    for (size_t i = 0; i < conf->nsnapshots; i++)
        collect_owned(u, &conf->snapshots[i]);
    u->scan_storages = unreferenced;
}

/* Allocates (and fills) the planned volumes; on failure frees those it made. */
static int alloc_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct disk_update *u = opaque;
    size_t done = 0;
    int rc = 0;

    for (; done < u->n && rc == 0; done++) {
        struct planned_disk *d = &u->items[done];
        unsigned long long size = d->size;
        char *detected = NULL;
        if (d->source_path && size == 0) {
            rc = qm_image_info(d->source_path, d->source_format, &size, &detected, err);
            if (rc < 0)
                break;
            if (!d->source_format)
                d->source_format = detected;
            else
                free(detected);
        }
        rc = qm_volume_alloc(&u->storage, d->storeid, u->vmid, d->format, size, &d->volid, err);
        if (rc < 0)
            break;
        char *human = qm_format_size(size);
        qm_job_log(job, "%s: allocated volume '%s' (%s)", d->key, d->volid, human);
        if (d->source_path) {
            struct qm_volume vol;
            qm_job_log(job, "%s: copying '%s' into '%s'", d->key, d->source_path, d->volid);
            rc = qm_volume_resolve(&u->storage, d->volid, 0, &vol, err);
            if (rc == 0) {
                rc = qm_image_copy(d->source_path, d->source_format, vol.path, d->format,
                                   qm_job_progress, job, err);
                qm_volume_free(&vol);
            }
        }
        qm_propstr_set(&d->ps, "file", d->volid);
        qm_propstr_set(&d->ps, "size", human);
        free(human);
        if (rc == 0 && !(d->value = qm_propstr_print(d->key, &d->ps, err)))
            rc = -1;
        if (rc < 0) {
            done++;
            break;
        }
    }
    if (rc < 0) {
        /* Nothing names these volumes yet: free them all. */
        for (size_t i = 0; i < done && i < u->n; i++) {
            struct planned_disk *d = &u->items[i];
            struct qm_error ignored;
            if (!d->volid)
                continue;
            if (qm_volume_delete(&u->storage, d->volid, &ignored) == 0)
                qm_job_log(job, "%s: freed volume '%s' again", d->key, d->volid);
            else
                qm_job_log(job, "%s: unable to free volume '%s': %s", d->key, d->volid,
                           ignored.msg);
            free(d->volid);
            d->volid = NULL;
        }
    }
    return rc;
}

static int free_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct disk_update *u = opaque;

    if (u->scan_storages) {
        for (size_t i = 0; i < u->storage.n; i++) {
            const struct qm_storage *s = &u->storage.storages[i];
            if (!qm_storage_is_file_based(s) || !(s->content & QM_CONTENT_IMAGES))
                continue;
            struct strvec found = {0};
            if (qm_volume_list(&u->storage, s->id, u->vmid, &found, NULL) == 0)
                for (size_t j = 0; j < found.n; j++)
                    queue_free(u, found.v[j]);
            sv_free(&found);
        }
    }
    for (size_t i = 0; i < u->to_free.n; i++) {
        struct qm_error e;
        if (qm_volume_delete(&u->storage, u->to_free.v[i], &e) == 0)
            qm_job_log(job, "freed volume '%s'", u->to_free.v[i]);
        else if (e.code == 404)
            qm_job_log(job, "volume '%s' was already gone", u->to_free.v[i]);
        else
            sv_pushf(&u->warnings, "unable to free volume '%s': %s", u->to_free.v[i], e.msg);
    }
    return 0;
}

static void update_finish(struct disk_update *u)
{
    struct qm_task *task = u->task;
    char *error = u->error;

    for (size_t i = 0; i < u->warnings.n; i++)
        qm_task_warn(task, "%s", u->warnings.v[i]);
    if (u->claimed)
        qm_storage_vm_release(u->vmid);
    qm_task_finish(task, error);
    if (u->finish)
        u->finish(u, u->opaque, error);
    u->error = NULL;
    disk_update_free(u);
    free(error);
}

static void free_done(struct qm_job *job, void *opaque, int rc, const struct qm_error *err)
{
    update_finish(opaque);
}

/* Frees the queued volumes on the thread pool, then ends the task. */
static void start_free(struct disk_update *u)
{
    struct qm_error err;

    if (u->to_free.n == 0 && !u->scan_storages) {
        update_finish(u);
        return;
    }
    if (qm_job_start(u->node->loop, u->task, free_work, free_done, u, &err) < 0) {
        for (size_t i = 0; i < u->to_free.n; i++)
            qm_task_warn(u->task, "volume '%s' was not freed: %s", u->to_free.v[i], err.msg);
        update_finish(u);
    }
}

bool disk_update_hotplug(struct disk_update *u, const struct qm_conf *conf, const char *key,
                         bool remove, bool force, struct qm_task *task)
{
    const char *reason = NULL;

    if (!qm_is_drive_key(key))
        return false;
    if (remove && !qm_conf_get(&conf->main, key))
        return false;
    if (!remove && qm_conf_get(&conf->main, key))
        reason = "changing a drive that is in use takes a restart";
    else
        qm_hotplug_disk_supported(&conf->main, key, &reason);
    if (reason) {
        qm_task_log(task, "%s: the change stays pending until the next start: %s", key, reason);
        return false;
    }
    u->hot = qm_realloc(u->hot, (u->nhot + 1) * sizeof(*u->hot));
    u->hot[u->nhot++] = (struct hot_change){
        .key = qm_strdup(key),
        .remove = remove,
        .force = force,
    };
    return true;
}

static void drop_empty_pending(struct qm_conf *conf)
{
    if (conf->pending && conf->pending->n == 0) {
        free(conf->pending->entries);
        free(conf->pending->name);
        free(conf->pending);
        conf->pending = NULL;
    }
}

/* Moves a hot-plugged change from [PENDING] into the current configuration. */
static int apply_hot_change(struct disk_update *u, const struct hot_change *h,
                            struct qm_error *err)
{
    struct qm_conf *conf = NULL;

    if (qm_conf_load(&u->node->paths, u->vmid, &conf, err) < 0)
        return -1;
    if (h->remove) {
        bool forced = false;
        qm_conf_pending_delete_has(conf, h->key, &forced);
        disk_update_detach(u, conf, h->key, h->force || forced, u->task);
        qm_conf_pending_delete_remove(conf, h->key);
    } else {
        const char *pending = conf->pending ? qm_conf_get(conf->pending, h->key) : NULL;
        if (!pending || strcmp(pending, h->value) != 0) {
            qm_conf_free(conf);
            return qm_fail(err, 409, "the pending value of %s changed during the hotplug",
                           h->key);
        }
        qm_conf_set(&conf->main, h->key, h->value);
        qm_conf_unset(conf->pending, h->key);
    }
    drop_empty_pending(conf);
    int r = qm_conf_store(&u->node->paths, conf, err);
    qm_conf_free(conf);
    return r;
}

static void hotplug_next(struct disk_update *u);

static void hotplug_done(const char *error, void *opaque)
{
    struct disk_update *u = opaque;
    struct hot_change *h = &u->hot[u->hot_next];
    struct qm_error err;

    if (error) {
        qm_task_warn(u->task, "%s: hot-%s failed, so the change stays pending until the next "
                              "start: %s", h->key, h->remove ? "unplug" : "plug", error);
    } else if (apply_hot_change(u, h, &err) < 0) {
        qm_task_warn(u->task, "%s: hot-%s done, but the configuration was not updated: %s",
                     h->key, h->remove ? "unplug" : "plug", err.msg);
    } else {
        qm_task_log(u->task, "%s: hot-%s done", h->key, h->remove ? "unplug" : "plug");
    }
    u->hot_next++;
    hotplug_next(u);
}

/* Runs the queued hotplug changes one after the other, then frees the queued volumes. */
static void hotplug_next(struct disk_update *u)
{
    struct qm_error err;

    while (u->hot_next < u->nhot) {
        struct hot_change *h = &u->hot[u->hot_next];
        struct qm_vm *vm = qm_node_find_vm(u->node, u->vmid);
        struct qm_conf *conf = NULL;
        if (!vm || !qm_vm_is_running(vm)) {
            qm_task_log(u->task, "%s: the VM stopped, so the change stays pending", h->key);
            u->hot_next++;
            continue;
        }
        if (qm_conf_load(&u->node->paths, u->vmid, &conf, &err) < 0) {
            qm_task_warn(u->task, "%s: the change stays pending: %s", h->key, err.msg);
            u->hot_next++;
            continue;
        }
        const char *value = conf->pending ? qm_conf_get(conf->pending, h->key) : NULL;
        bool applicable = h->remove ? qm_conf_pending_delete_has(conf, h->key, NULL) &&
                                      qm_conf_get(&conf->main, h->key)
                                : value && !qm_conf_get(&conf->main, h->key);
        if (!applicable) {
            qm_conf_free(conf);
            u->hot_next++;
            continue;
        }
        if (h->remove) {
            qm_hotplug_disk_remove(vm, &conf->main, h->key, u->task, hotplug_done, u);
        } else {
            h->value = qm_strdup(value);
            qm_hotplug_disk_add(vm, &conf->main, h->key, value, u->task, hotplug_done, u);
        }
        qm_conf_free(conf);
        return;
    }
    start_free(u);
}

static void commit_and_free(struct disk_update *u)
{
    struct qm_error err;

    qm_error_clear(&err);
    if (u->commit(u, u->opaque, &err) < 0) {
        /* The configuration does not name the new volumes: free them instead. */
        u->error = qm_strdup(err.msg);
        sv_free(&u->to_free);
        u->scan_storages = false;
        for (size_t i = 0; i < u->n; i++)
            if (u->items[i].volid)
                queue_free(u, u->items[i].volid);
        start_free(u);
        return;
    }
    /* The configuration names the new volumes in [PENDING] before QEMU opens them. */
    u->hot_next = 0;
    hotplug_next(u);
}

static void alloc_done(struct qm_job *job, void *opaque, int rc, const struct qm_error *err)
{
    struct disk_update *u = opaque;

    if (rc < 0) {
        u->error = qm_strdup(err->msg);
        update_finish(u);
        return;
    }
    commit_and_free(u);
}

void disk_update_run(struct disk_update *u, struct qm_task *task, disk_commit_fn commit,
                     disk_finish_fn finish, void *opaque)
{
    struct qm_error err;

    u->task = task;
    u->commit = commit;
    u->finish = finish;
    u->opaque = opaque;
    if (u->n == 0) {
        /* Nothing to allocate: the configuration is written at once. */
        u->claimed = qm_storage_vm_claim(u->vmid, task->upid, NULL) == 0;
        commit_and_free(u);
        return;
    }
    if (qm_storage_vm_claim(u->vmid, task->upid, &err) < 0) {
        u->error = qm_strdup(err.msg);
        update_finish(u);
        return;
    }
    u->claimed = true;
    if (qm_job_start(u->node->loop, task, alloc_work, alloc_done, u, &err) < 0) {
        u->error = qm_strdup(err.msg);
        update_finish(u);
    }
}

/* ---- Handlers ---- */

/* One resize or move of a drive, from the request to the final configuration. */
struct drive_op {
    struct qm_node *node;
    int vmid;
    struct qm_task *task;
    struct qm_storage_cfg storage;
    char *key;
    char *volid;                /* the drive's volume when the operation started */
    bool running;
    /* resize */
    bool relative;
    unsigned long long size;    /* requested: absolute bytes, or bytes to add */
    unsigned long long new_size;
    /* move */
    char *target_storage;
    char *target_format;
    bool delete_source;
    char *new_volid;
    char *new_path;
    unsigned long long source_size;
    struct mirror *mirror;      /* the running drive-mirror job, or NULL */
    char *error;
};

static void drive_op_free(struct drive_op *op)
{
    qm_storage_cfg_free(&op->storage);
    free(op->key);
    free(op->volid);
    free(op->target_storage);
    free(op->target_format);
    free(op->new_volid);
    free(op->new_path);
    free(op->error);
    free(op);
}

static void drive_op_end(struct drive_op *op, const char *error)
{
    qm_storage_vm_release(op->vmid);
    qm_task_finish(op->task, error);
    drive_op_free(op);
}

static void reply_task(struct api_call *call, const struct qm_task *task)
{
    struct strbuf sb = {0};

    qm_json_add_string(&sb, task->upid);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

/*
 * Loads the configuration and the drive named by the "disk" parameter, and
 * checks that its volume is one this layer manages. Ends the call on error.
 */
static struct drive_op *drive_op_begin(struct api_call *call, const char *task_type,
                                       struct qm_conf **conf_out)
{
    const char *disk = api_param(call, "disk");
    const char *digest = api_param(call, "digest");
    bool skiplock = api_param_bool(call, "skiplock", false);
    struct qm_conf *conf = NULL;
    struct qm_error err;

    if (!disk)
        api_param_error(call, "disk", "property is missing and it is not optional");
    else if (!qm_is_drive_key(disk))
        api_param_error(call, "disk", "value '%s' does not name a disk", disk);
    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return NULL;
    }
    if (qm_conf_load(&call->node->paths, call->vmid, &conf, &err) < 0) {
        api_fail(call, err.code == 404 ? 500 : err.code, "%s", err.msg);
        return NULL;
    }
    int status = 0;
    char *msg = NULL;
    const char *lock = qm_conf_get(&conf->main, "lock");
    const char *value = qm_conf_get(&conf->main, disk);
    char *volid = value ? drive_volid(disk, value) : NULL;
    if (digest && strcmp(digest, conf->digest) != 0) {
        status = 409;
        msg = qm_strdup("detected modified configuration - file changed by other user? Try "
                        "again.");
    } else if (lock && !skiplock) {
        status = 500;
        msg = qm_sprintf("VM is locked (%s)", lock);
    } else if (!value) {
        status = 400;
        msg = qm_sprintf("disk '%s' does not exist", disk);
    } else if (!volid) {
        status = 400;
        msg = qm_sprintf("disk '%s' is a CD-ROM drive or has no volume", disk);
    }
    if (msg) {
        free(volid);
        qm_conf_free(conf);
        api_fail(call, status, "%s", msg);
        free(msg);
        return NULL;
    }
    struct drive_op *op = qm_calloc(1, sizeof(*op));
    op->node = call->node;
    op->vmid = call->vmid;
    op->key = qm_strdup(disk);
    op->volid = volid;
    struct qm_volume vol;
    if (qm_storage_cfg_load(call->node->paths.storage_cfg, &op->storage, &err) < 0 ||
        qm_volume_resolve(&op->storage, volid, 0, &vol, &err) < 0) {
        api_fail_error(call, &err);
        qm_conf_free(conf);
        drive_op_free(op);
        return NULL;
    }
    int r = vol.storage ? qm_storage_check_images(vol.storage, task_type, &err)
                        : qm_fail(&err, 400, "disk '%s' is a path ('%s'), not a storage volume",
                                  disk, volid);
    qm_volume_free(&vol);
    char id[16];
    snprintf(id, sizeof(id), "%d", call->vmid);
    if (r < 0 || qm_storage_vm_claim(call->vmid, task_type, &err) < 0) {
        api_fail_error(call, &err);
        qm_conf_free(conf);
        drive_op_free(op);
        return NULL;
    }
    struct qm_vm *vm = qm_node_find_vm(call->node, call->vmid);
    op->running = vm && qm_vm_is_running(vm);
    *conf_out = conf;
    return op;
}

/* Starts the task of op and replies with its UPID; false (call ended) on failure. */
static bool drive_op_start_task(struct drive_op *op, struct api_call *call, const char *type)
{
    struct qm_error err;
    char id[16];

    snprintf(id, sizeof(id), "%d", call->vmid);
    op->task = qm_task_start(&call->node->tasks, type, id, call->user, &err);
    if (!op->task) {
        qm_storage_vm_release(op->vmid);
        drive_op_free(op);
        api_fail_error(call, &err);
        return false;
    }
    reply_task(call, op->task);
    return true;
}

/* Sets size= of the drive key in the stored configuration (and of its pending value). */
static int store_drive_size(struct drive_op *op, unsigned long long size, struct qm_error *err)
{
    struct qm_conf *conf = NULL;

    if (qm_conf_load(&op->node->paths, op->vmid, &conf, err) < 0)
        return -1;
    struct qm_conf_section *sections[] = {&conf->main, conf->pending};
    char *human = qm_format_size(size);
    int rc = 0;
    for (size_t i = 0; i < QM_ARRAY_SIZE(sections) && rc == 0; i++) {
        const char *value = sections[i] ? qm_conf_get(sections[i], op->key) : NULL;
        char *volid = value ? drive_volid(op->key, value) : NULL;
        if (volid && strcmp(volid, op->volid) == 0) {
            struct qm_propstr ps = {0};
            char *printed = NULL;
            rc = qm_propstr_parse(op->key, value, &ps, err);
            if (rc == 0) {
                qm_propstr_set(&ps, "size", human);
                printed = qm_propstr_print(op->key, &ps, err);
                rc = printed ? 0 : -1;
            }
            if (printed)
                qm_conf_set(sections[i], op->key, printed);
            free(printed);
            qm_propstr_free(&ps);
        }
        free(volid);
    }
    free(human);
    if (rc == 0)
        rc = qm_conf_store(&op->node->paths, conf, err);
    qm_conf_free(conf);
    return rc;
}

static void resize_finish(struct drive_op *op)
{
    struct qm_error err;

    if (store_drive_size(op, op->new_size, &err) < 0) {
        drive_op_end(op, err.msg);
        return;
    }
    char *human = qm_format_size(op->new_size);
    qm_task_log(op->task, "%s: size is now %s", op->key, human);
    free(human);
    drive_op_end(op, NULL);
}

static void block_resize_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct drive_op *op = opaque;

    if (reply->result != QMP_OK) {
        char *msg = qm_sprintf("block_resize of %s failed: %s", op->key, reply->error_desc);
        drive_op_end(op, msg);
        free(msg);
        return;
    }
    resize_finish(op);
}

static int resize_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct drive_op *op = opaque;
    unsigned long long current;

    if (qm_volume_size(&op->storage, op->volid, &current, err) < 0)
        return -1;
    op->new_size = op->relative ? current + op->size : op->size;
    if (op->new_size < current)
        return qm_fail(err, 400, "shrinking disks is not supported: %s has %llu bytes, the "
                                 "request is %llu",
                       op->key, current, op->new_size);
    if (op->new_size > MAX_DISK_SIZE)
        return qm_fail(err, 400, "disk size %llu is too large", op->new_size);
    qm_job_log(job, "%s: resizing '%s' from %llu to %llu bytes", op->key, op->volid, current,
               op->new_size);
    if (op->running || op->new_size == current)
        return 0;
    return qm_volume_resize(&op->storage, op->volid, op->new_size, err);
}

static void resize_done(struct qm_job *job, void *opaque, int rc, const struct qm_error *err)
{
    struct drive_op *op = opaque;
    struct qm_error qerr;

    if (rc < 0) {
        drive_op_end(op, err->msg);
        return;
    }
    struct qm_vm *vm = qm_node_find_vm(op->node, op->vmid);
    if (!op->running) {
        resize_finish(op);
        return;
    }
    /* Drives on the -drive command line are named drive-KEY in QEMU. */
    char *device = qm_sprintf("drive-%s", op->key);
    char *args = qm_json_build("{\"device\": %s, \"size\": %lld}", device,
                               (long long)op->new_size);
    free(device);
    int r = vm ? qm_vm_qmp_command(vm, "block_resize", args, block_resize_cb, op, &qerr)
               : qm_fail(&qerr, 409, "VM %d stopped during the resize", op->vmid);
    free(args);
    if (r < 0)
        drive_op_end(op, qerr.msg);
}

void api_vm_resize(struct api_call *call)
{
    const char *size = api_param(call, "size");
    struct qm_conf *conf = NULL;
    unsigned long long bytes = 0;

    if (!size)
        api_param_error(call, "size", "property is missing and it is not optional");
    else if (!qm_parse_size(size[0] == '+' ? size + 1 : size, &bytes))
        api_param_error(call, "size", "value '%s' does not match the format \\+?\\d+(\\.\\d+)?"
                                      "[KMGT]?", size);
    struct drive_op *op = drive_op_begin(call, "resize", &conf);
    if (!op)
        return;
    qm_conf_free(conf);
    op->relative = size[0] == '+';
    op->size = bytes;
    if (!drive_op_start_task(op, call, "resize"))
        return;
    struct qm_error err;
    if (qm_job_start(op->node->loop, op->task, resize_work, resize_done, op, &err) < 0)
        drive_op_end(op, err.msg);
}

/* Milliseconds between two progress lines of a running mirror job. */
#define MIRROR_PROGRESS_MS 1000

static void move_free_new_work_done(struct qm_job *job, void *opaque, int rc,
                                    const struct qm_error *err)
{
    struct drive_op *op = opaque;

    if (rc < 0)
        qm_task_warn(op->task, "unable to free the new volume '%s': %s", op->new_volid,
                     err->msg);
    drive_op_end(op, op->error);
}

static int free_new_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct drive_op *op = opaque;

    if (qm_volume_delete(&op->storage, op->new_volid, err) < 0)
        return -1;
    qm_job_log(job, "freed the new volume '%s' again", op->new_volid);
    return 0;
}

/* Ends a failed move: the source stays in use, the new volume is freed. */
static void move_fail(struct drive_op *op, const char *error)
{
    struct qm_error err;

    free(op->error);
    op->error = qm_strdup(error);
    if (!op->new_volid ||
        qm_job_start(op->node->loop, op->task, free_new_work, move_free_new_work_done, op,
                     &err) < 0)
        drive_op_end(op, op->error);
}

static int free_old_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct drive_op *op = opaque;

    if (qm_volume_delete(&op->storage, op->volid, err) < 0)
        return -1;
    qm_job_log(job, "freed the source volume '%s'", op->volid);
    return 0;
}

static void free_old_done(struct qm_job *job, void *opaque, int rc, const struct qm_error *err)
{
    struct drive_op *op = opaque;

    if (rc < 0)
        qm_task_warn(op->task, "unable to free the source volume '%s': %s", op->volid,
                     err->msg);
    drive_op_end(op, NULL);
}

/* Points the drive at the new volume; the source is freed or kept as unusedN. */
static void move_commit(struct drive_op *op)
{
    struct qm_conf *conf = NULL;
    struct qm_error err;

    if (qm_conf_load(&op->node->paths, op->vmid, &conf, &err) < 0) {
        move_fail(op, err.msg);
        return;
    }
    const char *value = qm_conf_get(&conf->main, op->key);
    char *volid = value ? drive_volid(op->key, value) : NULL;
    bool same = volid && strcmp(volid, op->volid) == 0;
    free(volid);
    if (!same) {
        qm_conf_free(conf);
        char *msg = qm_sprintf("%s changed during the move; the new volume is not used",
                               op->key);
        move_fail(op, msg);
        free(msg);
        return;
    }
    struct qm_propstr ps = {0};
    char *printed = NULL;
    char *human = qm_format_size(op->source_size);
    if (qm_propstr_parse(op->key, value, &ps, &err) == 0) {
        qm_propstr_set(&ps, "file", op->new_volid);
        qm_propstr_unset(&ps, "format");
        qm_propstr_set(&ps, "size", human);
        printed = qm_propstr_print(op->key, &ps, &err);
    }
    qm_propstr_free(&ps);
    free(human);
    bool free_source = false;
    if (printed) {
        qm_conf_set(&conf->main, op->key, printed);
        bool owned = disk_owned_by(&op->storage, op->volid, op->vmid);
        if (op->delete_source && owned && !volume_in_use(conf, op->volid, NULL)) {
            free_source = true;
        } else if (owned) {
            char *unused = disk_add_unused(&conf->main, op->volid);
            qm_task_log(op->task, "source volume '%s' kept as %s", op->volid, unused);
            free(unused);
        }
    }
    int r = printed ? qm_conf_store(&op->node->paths, conf, &err) : -1;
    free(printed);
    qm_conf_free(conf);
    if (r < 0) {
        if (op->running) {
            /* QEMU already writes to the new volume, so it must stay. */
            qm_task_log(op->task, "the VM now uses '%s' but the configuration could not be "
                                  "written: %s", op->new_volid, err.msg);
            drive_op_end(op, err.msg);
            return;
        }
        move_fail(op, err.msg);
        return;
    }
    qm_task_log(op->task, "%s: now on '%s'", op->key, op->new_volid);
    if (!free_source ||
        qm_job_start(op->node->loop, op->task, free_old_work, free_old_done, op, &err) < 0)
        drive_op_end(op, NULL);
}

/*
 * The online move: a drive-mirror job whose progress QEMU reports with the
 * BLOCK_JOB_READY, BLOCK_JOB_ERROR and BLOCK_JOB_COMPLETED events. A timer
 * reads query-block-jobs for the progress lines of the task log, and it
 * notices a VM that stopped, because QEMU's events end with its process.
 */
struct mirror {
    struct drive_op *op;        /* NULL once the move went on without the mirror */
    struct qm_node *node;
    int vmid;
    char *job_id;
    bool ready;
    char *error;                /* the last BLOCK_JOB_ERROR, as a message */
    unsigned inflight;          /* QMP commands whose reply has not arrived */
    uv_timer_t *timer;
};

static void mirror_event_cb(struct qm_vm *vm, const struct qmp_event *event, void *opaque);

static void mirror_timer_close_cb(uv_handle_t *handle)
{
    free(handle);
}

static void mirror_free_if_idle(struct mirror *m)
{
    if (m->op || m->inflight)
        return;
    free(m->job_id);
    free(m->error);
    free(m);
}

/* Stops watching the job and returns its move, which the caller goes on with. */
static struct drive_op *mirror_stop(struct mirror *m)
{
    struct drive_op *op = m->op;
    struct qm_vm *vm = qm_node_find_vm(m->node, m->vmid);

    if (vm)
        qm_vm_unwatch_events(vm, mirror_event_cb, m);
    if (m->timer) {
        uv_close((uv_handle_t *)m->timer, mirror_timer_close_cb);
        m->timer = NULL;
    }
    m->op = NULL;
    op->mirror = NULL;
    mirror_free_if_idle(m);
    return op;
}

static void mirror_fail(struct mirror *m, const char *error)
{
    move_fail(mirror_stop(m), error);
}

/* Takes back the reference of a reply; false when the mirror has stopped meanwhile. */
static bool mirror_reply_arrived(struct mirror *m)
{
    m->inflight--;
    if (!m->op) {
        mirror_free_if_idle(m);
        return false;
    }
    return true;
}

static int mirror_command(struct mirror *m, const char *command, const char *args,
                          qmp_reply_cb cb, struct qm_error *err)
{
    struct qm_vm *vm = qm_node_find_vm(m->node, m->vmid);

    if (!vm)
        return qm_fail(err, 409, "VM %d stopped during the move", m->vmid);
    if (qm_vm_qmp_command(vm, command, args, cb, m, err) < 0)
        return -1;
    m->inflight++;
    return 0;
}

static void complete_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct mirror *m = opaque;

    if (!mirror_reply_arrived(m))
        return;
    if (reply->result != QMP_OK) {
        char *msg = qm_sprintf("block-job-complete failed: %s", reply->error_desc);
        mirror_fail(m, msg);
        free(msg);
    }
}

static void mirror_event_cb(struct qm_vm *vm, const struct qmp_event *event, void *opaque)
{
    struct mirror *m = opaque;
    struct drive_op *op = m->op;
    const char *device = qm_json_get_string(event->data, "device");
    struct qm_error err;

    if (!qm_str_starts(event->name, "BLOCK_JOB_") || !device || strcmp(device, m->job_id) != 0)
        return;
    if (strcmp(event->name, "BLOCK_JOB_READY") == 0 && !m->ready) {
        m->ready = true;
        qm_task_log(op->task, "mirror %s: ready, switching to '%s'", op->key, op->new_volid);
        char *args = qm_json_build("{\"device\": %s}", m->job_id);
        int r = mirror_command(m, "block-job-complete", args, complete_cb, &err);
        free(args);
        if (r < 0)
            mirror_fail(m, err.msg);
    } else if (strcmp(event->name, "BLOCK_JOB_ERROR") == 0) {
        const char *operation = qm_json_get_string(event->data, "operation");
        const char *action = qm_json_get_string(event->data, "action");
        /* QEMU sends one event per failed request: log the first of them. */
        if (!m->error)
            qm_task_log(op->task, "mirror %s: %s error (action: %s)", op->key,
                        operation ? operation : "I/O", action ? action : "report");
        free(m->error);
        m->error = qm_sprintf("%s error", operation ? operation : "I/O");
    } else if (strcmp(event->name, "BLOCK_JOB_CANCELLED") == 0) {
        mirror_fail(m, "the mirror job was cancelled");
    } else if (strcmp(event->name, "BLOCK_JOB_COMPLETED") == 0) {
        const char *error = qm_json_get_string(event->data, "error");
        if (error || m->error) {
            char *msg = qm_sprintf("mirror of %s failed: %s", op->key, error ? error : m->error);
            mirror_fail(m, msg);
            free(msg);
        } else if (!m->ready) {
            mirror_fail(m, "the mirror job ended before the copy was complete");
        } else {
            move_commit(mirror_stop(m));
        }
    }
}

static void jobs_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct mirror *m = opaque;

    if (!mirror_reply_arrived(m))
        return;
    if (reply->result == QMP_CLOSED) {
        mirror_fail(m, "the VM stopped during the move; the source is still in use");
        return;
    }
    for (size_t i = 0; YAJL_IS_ARRAY(reply->ret) && i < reply->ret->u.array.len; i++) {
        yajl_val j = reply->ret->u.array.values[i];
        const char *device = qm_json_get_string(j, "device");
        long long offset = 0, len = 0;
        if (!device || strcmp(device, m->job_id) != 0)
            continue;
        qm_json_get_int(j, "offset", &offset);
        qm_json_get_int(j, "len", &len);
        if (len > 0)
            qm_task_log(m->op->task, "mirror %s: transferred %lld of %lld bytes (%.0f%%)",
                        m->op->key, offset, len, 100.0 * (double)offset / (double)len);
    }
}

static void mirror_timer_cb(uv_timer_t *timer)
{
    struct mirror *m = timer->data;
    struct qm_error err;

    /* One query at a time: a slow reply skips a progress line. */
    if (m->inflight)
        return;
    if (mirror_command(m, "query-block-jobs", NULL, jobs_cb, &err) < 0)
        mirror_fail(m, "the VM stopped during the move; the source is still in use");
}

static void mirror_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct mirror *m = opaque;

    if (!mirror_reply_arrived(m))
        return;
    if (reply->result != QMP_OK) {
        char *msg = qm_sprintf("drive-mirror of %s failed: %s", m->op->key, reply->error_desc);
        mirror_fail(m, msg);
        free(msg);
        return;
    }
    qm_task_log(m->op->task, "mirror %s to '%s' started", m->op->key, m->op->new_volid);
}

/* Starts the drive-mirror job of a running VM's move; its events take it from there. */
static void mirror_start(struct drive_op *op)
{
    struct qm_vm *vm = qm_node_find_vm(op->node, op->vmid);
    struct qm_error err;

    if (!vm || !qm_vm_is_running(vm)) {
        move_fail(op, "the VM stopped during the move; the source is still in use");
        return;
    }
    struct mirror *m = qm_calloc(1, sizeof(*m));
    m->op = op;
    m->node = op->node;
    m->vmid = op->vmid;
    m->job_id = qm_sprintf("mirror-%s", op->key);
    op->mirror = m;
    /* Watch first: a small disk may be ready before the reply to drive-mirror. */
    qm_vm_watch_events(vm, mirror_event_cb, m);
    m->timer = qm_malloc(sizeof(*m->timer));
    uv_timer_init(op->node->loop, m->timer);
    m->timer->data = m;
    uv_timer_start(m->timer, mirror_timer_cb, MIRROR_PROGRESS_MS, MIRROR_PROGRESS_MS);

    char *device = qm_sprintf("drive-%s", op->key);
    char *args = qm_json_build("{\"job-id\": %s, \"device\": %s, \"target\": %s, "
                               "\"format\": %s, \"mode\": \"existing\", \"sync\": \"full\"}",
                               m->job_id, device, op->new_path, op->target_format);
    int r = mirror_command(m, "drive-mirror", args, mirror_cb, &err);
    free(args);
    free(device);
    if (r < 0)
        mirror_fail(m, err.msg);
}

static int move_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct drive_op *op = opaque;
    struct qm_volume src, dst;

    if (qm_volume_size(&op->storage, op->volid, &op->source_size, err) < 0)
        return -1;
    if (qm_volume_resolve(&op->storage, op->volid, 0, &src, err) < 0)
        return -1;
    if (!op->target_format)
        op->target_format = qm_strdup(
            qm_storage_default_format(qm_storage_find(&op->storage, op->target_storage)));
    int rc = qm_volume_alloc(&op->storage, op->target_storage, op->vmid, op->target_format,
                             op->source_size, &op->new_volid, err);
    if (rc == 0)
        rc = qm_volume_resolve(&op->storage, op->new_volid, 0, &dst, err);
    if (rc < 0) {
        qm_volume_free(&src);
        return -1;
    }
    op->new_path = qm_strdup(dst.path);
    qm_job_log(job, "%s: allocated volume '%s'", op->key, op->new_volid);
    if (!op->running) {
        qm_job_log(job, "%s: copying '%s' to '%s'", op->key, op->volid, op->new_volid);
        rc = qm_image_copy(src.path, src.format, dst.path, op->target_format, qm_job_progress,
                           job, err);
        if (rc < 0) {
            struct qm_error ignored;
            if (qm_volume_delete(&op->storage, op->new_volid, &ignored) == 0)
                qm_job_log(job, "freed the new volume '%s' again", op->new_volid);
            free(op->new_volid);
            op->new_volid = NULL;
        }
    }
    qm_volume_free(&src);
    qm_volume_free(&dst);
    return rc;
}

static void move_done(struct qm_job *job, void *opaque, int rc, const struct qm_error *err)
{
    struct drive_op *op = opaque;

    if (rc < 0) {
        /* An allocated volume was already freed by the worker. */
        drive_op_end(op, err->msg);
        return;
    }
    if (!op->running) {
        move_commit(op);
        return;
    }
    mirror_start(op);
}

void api_vm_move_disk(struct api_call *call)
{
    const char *storage = api_param(call, "storage");
    const char *format = api_param(call, "format");
    bool delete_source = api_param_bool(call, "delete", false);
    struct qm_conf *conf = NULL;
    struct qm_error err;

    if (!storage)
        api_param_error(call, "storage", "property is missing and it is not optional");
    if (format && strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0 &&
        strcmp(format, "vmdk") != 0)
        api_param_error(call, "format", "value '%s' does not have a value in the enumeration "
                                        "'raw, qcow2, vmdk'", format);
    if (api_param(call, "target-vmid") || api_param(call, "target-disk"))
        api_param_error(call, "target-vmid", "moving a disk to another VM is not supported");
    struct drive_op *op = drive_op_begin(call, "move_disk", &conf);
    if (!op)
        return;
    qm_conf_free(conf);
    const struct qm_storage *target = qm_storage_find(&op->storage, storage);
    struct qm_volume src;
    int r = target ? 0 : qm_fail(&err, 404, "storage '%s' does not exist", storage);
    if (r == 0)
        r = qm_storage_check_images(target, "moving disks", &err);
    if (r == 0 && format)
        r = qm_storage_check_format(target, format, &err);
    if (r == 0 && (r = qm_volume_resolve(&op->storage, op->volid, 0, &src, &err)) == 0) {
        const char *new_format = format ? format : qm_storage_default_format(target);
        if (strcmp(src.storage->id, storage) == 0 && strcmp(src.format, new_format) == 0)
            r = qm_fail(&err, 400, "unable to move disk '%s' to the storage it is on ('%s') "
                                   "in the same format '%s'",
                        op->key, storage, new_format);
        qm_volume_free(&src);
    }
    if (r < 0) {
        qm_storage_vm_release(op->vmid);
        drive_op_free(op);
        api_fail_error(call, &err);
        return;
    }
    op->target_storage = qm_strdup(storage);
    op->target_format = format ? qm_strdup(format) : NULL;
    op->delete_source = delete_source;
    if (!drive_op_start_task(op, call, "qmmove"))
        return;
    /* The call, and so storage, is gone once the task has replied. */
    qm_task_log(op->task, "moving %s '%s' to storage '%s' (%s)", op->key, op->volid,
                op->target_storage, op->running ? "online, with a mirror job" : "offline");
    if (qm_job_start(op->node->loop, op->task, move_work, move_done, op, &err) < 0)
        drive_op_end(op, err.msg);
}

/* unlink and rescan: a configuration change with volumes freed after it. */
struct simple_change {
    struct api_call *call;      /* unlink replies when done; NULL for rescan */
    struct qm_node *node;
    struct strvec ids;
    bool force;
    struct strvec found;        /* rescan: volumes found on the storages */
};

static int unlink_commit(struct disk_update *u, void *opaque, struct qm_error *err)
{
    struct simple_change *c = opaque;
    struct qm_conf *conf = NULL;

    if (qm_conf_load(&c->node->paths, u->vmid, &conf, err) < 0)
        return -1;
    struct qm_vm *vm = qm_node_find_vm(c->node, u->vmid);
    bool running = vm && qm_vm_is_running(vm);
    for (size_t i = 0; i < c->ids.n; i++) {
        const char *key = c->ids.v[i];
        if (running && !is_unused_key(key) && qm_conf_get(&conf->main, key)) {
            /* Pending first, so that a failed hot-unplug leaves the drive to go at the next start. */
            qm_conf_pending_delete_add(conf, key, c->force);
            if (!disk_update_hotplug(u, conf, key, true, c->force, u->task))
                qm_task_log(u->task, "%s: detached at the next start", key);
            continue;
        }
        disk_update_detach(u, conf, key, c->force, u->task);
    }
    int r = qm_conf_store(&c->node->paths, conf, err);
    qm_conf_free(conf);
    return r;
}

static void simple_finish(struct disk_update *u, void *opaque, const char *error)
{
    struct simple_change *c = opaque;

    if (c->call)
        api_reply_done(c->call, error);
    sv_free(&c->ids);
    sv_free(&c->found);
    free(c);
}

void api_vm_unlink(struct api_call *call)
{
    const char *idlist = api_param(call, "idlist");
    bool force = api_param_bool(call, "force", false);
    struct qm_error err;

    if (!idlist)
        api_param_error(call, "idlist", "property is missing and it is not optional");
    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    struct qm_conf *conf = NULL;
    if (qm_conf_load(&call->node->paths, call->vmid, &conf, &err) < 0) {
        api_fail(call, err.code == 404 ? 500 : err.code, "%s", err.msg);
        return;
    }
    qm_conf_free(conf);
    struct simple_change *c = qm_calloc(1, sizeof(*c));
    c->node = call->node;
    c->force = force;
    char *copy = qm_strdup(idlist);
    char *save = NULL;
    for (char *k = strtok_r(copy, ",; \t", &save); k; k = strtok_r(NULL, ",; \t", &save)) {
        if (!qm_is_drive_key(k) && !is_unused_key(k))
            api_param_error(call, "idlist", "'%s' is not a disk key", k);
        sv_push(&c->ids, k);
    }
    free(copy);
    struct disk_update *u = api_has_param_errors(call)
                                ? NULL
                                : disk_update_new(call->node, call->vmid, &err);
    if (!u) {
        simple_finish(NULL, c, NULL);
        if (api_has_param_errors(call))
            api_param_errors_reply(call);
        else
            api_fail_error(call, &err);
        return;
    }
    char id[16];
    snprintf(id, sizeof(id), "%d", call->vmid);
    struct qm_task *task = qm_task_start(&call->node->tasks, "qmconfig", id, call->user, &err);
    if (!task) {
        disk_update_free(u);
        simple_finish(NULL, c, NULL);
        api_fail_error(call, &err);
        return;
    }
    c->call = call;
    disk_update_run(u, task, unlink_commit, simple_finish, c);
}

static int rescan_commit(struct disk_update *u, void *opaque, struct qm_error *err)
{
    struct simple_change *c = opaque;
    struct qm_conf *conf = NULL;
    int added = 0;

    if (qm_conf_load(&c->node->paths, u->vmid, &conf, err) < 0)
        return -1;
    for (size_t i = 0; i < c->found.n; i++) {
        const char *volid = c->found.v[i];
        if (volume_in_use(conf, volid, NULL))
            continue;
        char *key = disk_add_unused(&conf->main, volid);
        qm_task_log(u->task, "add unreferenced volume '%s' as '%s' to config", volid, key);
        free(key);
        added++;
    }
    int r = added ? qm_conf_store(&c->node->paths, conf, err) : 0;
    if (!added)
        qm_task_log(u->task, "no unreferenced volumes found");
    qm_conf_free(conf);
    return r;
}

static int rescan_work(struct qm_job *job, void *opaque, struct qm_error *err)
{
    struct disk_update *u = opaque;
    struct simple_change *c = u->opaque;

    for (size_t i = 0; i < u->storage.n; i++) {
        const struct qm_storage *s = &u->storage.storages[i];
        if (!qm_storage_is_file_based(s) || !(s->content & QM_CONTENT_IMAGES))
            continue;
        qm_job_log(job, "rescan volumes on storage '%s'", s->id);
        if (qm_volume_list(&u->storage, s->id, u->vmid, &c->found, err) < 0)
            return -1;
    }
    return 0;
}

static void rescan_done(struct qm_job *job, void *opaque, int rc, const struct qm_error *err)
{
    struct disk_update *u = opaque;

    if (rc < 0) {
        u->error = qm_strdup(err->msg);
        update_finish(u);
        return;
    }
    commit_and_free(u);
}

void api_vm_rescan(struct api_call *call)
{
    struct qm_error err;
    struct qm_conf *conf = NULL;

    if (qm_conf_load(&call->node->paths, call->vmid, &conf, &err) < 0) {
        api_fail(call, err.code == 404 ? 500 : err.code, "%s", err.msg);
        return;
    }
    qm_conf_free(conf);
    struct disk_update *u = disk_update_new(call->node, call->vmid, &err);
    if (!u) {
        api_fail_error(call, &err);
        return;
    }
    char id[16];
    snprintf(id, sizeof(id), "%d", call->vmid);
    struct qm_task *task = qm_task_start(&call->node->tasks, "qmrescan", id, call->user, &err);
    if (!task) {
        disk_update_free(u);
        api_fail_error(call, &err);
        return;
    }
    struct simple_change *c = qm_calloc(1, sizeof(*c));
    c->node = call->node;
    u->task = task;
    u->commit = rescan_commit;
    u->finish = simple_finish;
    u->opaque = c;
    reply_task(call, task);
    if (qm_storage_vm_claim(u->vmid, task->upid, &err) < 0) {
        u->error = qm_strdup(err.msg);
        update_finish(u);
        return;
    }
    u->claimed = true;
    if (qm_job_start(u->node->loop, task, rescan_work, rescan_done, u, &err) < 0) {
        u->error = qm_strdup(err.msg);
        update_finish(u);
    }
}

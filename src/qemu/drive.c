/*
 * Disks and CD-ROM drives: the -drive form used up to machine version 9.x
 * and the -blockdev form (throttle -> format -> file nodes) from 10.0 on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "gen.h"

/* JSON objects with sorted keys. */

char *json_quote(const char *s)
{
    struct strbuf sb = {0};

    sb_addc(&sb, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_addf(&sb, "\\%c", *p);
        else if (*p < 0x20)
            sb_addf(&sb, "\\u%04x", *p);
        else
            sb_addc(&sb, (char)*p);
    }
    sb_addc(&sb, '"');
    return sb_detach(&sb);
}

void json_set_raw(struct json_obj *o, const char *key, const char *raw)
{
    for (size_t i = 0; i < o->keys.n; i++) {
        if (strcmp(o->keys.v[i], key) == 0) {
            free(o->values.v[i]);
            o->values.v[i] = qm_strdup(raw);
            return;
        }
    }
    sv_push(&o->keys, key);
    sv_push(&o->values, raw);
}

void json_set_str(struct json_obj *o, const char *key, const char *value)
{
    char *q = json_quote(value);

    json_set_raw(o, key, q);
    free(q);
}

void json_set_bool(struct json_obj *o, const char *key, bool value)
{
    json_set_raw(o, key, value ? "true" : "false");
}

void json_set_obj(struct json_obj *o, const char *key, struct json_obj *child)
{
    char *enc = json_encode(child);

    json_set_raw(o, key, enc);
    free(enc);
    json_free(child);
}

const char *json_get_raw(const struct json_obj *o, const char *key)
{
    for (size_t i = 0; i < o->keys.n; i++)
        if (strcmp(o->keys.v[i], key) == 0)
            return o->values.v[i];
    return NULL;
}

char *json_encode(const struct json_obj *o)
{
    size_t n = o->keys.n;
    size_t *order = qm_calloc(n ? n : 1, sizeof(*order));
    struct strbuf sb = {0};

    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) {
        size_t cur = order[i], j = i;
        while (j > 0 && strcmp(o->keys.v[order[j - 1]], o->keys.v[cur]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = cur;
    }
    sb_addc(&sb, '{');
    for (size_t i = 0; i < n; i++) {
        char *k = json_quote(o->keys.v[order[i]]);
        sb_addf(&sb, "%s%s:%s", i ? "," : "", k, o->values.v[order[i]]);
        free(k);
    }
    sb_addc(&sb, '}');
    free(order);
    return sb_detach(&sb);
}

void json_free(struct json_obj *o)
{
    sv_free(&o->keys);
    sv_free(&o->values);
}

/* One parsed drive property. */
struct drive {
    char id[16];            /* "scsi0" */
    char iface[8];          /* "scsi" */
    int index;
    struct qm_propstr ps;
    const char *file;
    bool cdrom;
    int bootindex;
    /* Resolved. */
    char *path;             /* NULL for an empty CD-ROM drive */
    char *format;           /* NULL for an empty CD-ROM drive */
    struct qm_volume vol;   /* storage volumes only */
    bool has_vol;
};

static void drive_free(struct drive *d)
{
    qm_propstr_free(&d->ps);
    free(d->path);
    free(d->format);
    if (d->has_vol)
        qm_volume_free(&d->vol);
}

static const char *dget(const struct drive *d, const char *key)
{
    return ps_get(&d->ps, key);
}

static const struct qm_storage *drive_storage(const struct drive *d)
{
    return d->has_vol ? d->vol.storage : NULL;
}

static bool cache_direct(const struct drive *d)
{
    const char *cache = dget(d, "cache");
    const struct qm_storage *s = drive_storage(d);

    if (cache)
        return strcmp(cache, "off") == 0 || strcmp(cache, "none") == 0 ||
               strcmp(cache, "directsync") == 0;
    if (d->cdrom)
        return false;
    if (s && strcmp(s->type, "btrfs") == 0 && !qm_storage_flag(s, "nocow"))
        return false;
    return true;
}

static const char *aio_option(const struct drive *d, bool direct)
{
    const char *aio = dget(d, "aio");
    const struct qm_storage *s = drive_storage(d);

    if (aio)
        return aio;
    /* io_uring hangs with krbd without O_DIRECT, with LVM, and misbehaves on CIFS. */
    bool uring = !(s && ((strcmp(s->type, "rbd") == 0 && qm_storage_flag(s, "krbd") && !direct) ||
                         strcmp(s->type, "lvm") == 0 || strcmp(s->type, "cifs") == 0));
    if (uring)
        return "io_uring";
    return direct ? "native" : "threads";
}

static const char *detect_zeroes(const struct drive *d)
{
    const char *dz = dget(d, "detect_zeroes");
    const char *discard = dget(d, "discard");

    if (dz && (strcmp(dz, "0") == 0 || strcmp(dz, "off") == 0))
        return "off";
    if (discard)
        return strcmp(discard, "on") == 0 ? "unmap" : "on";
    return "on";
}

static int resolve_drive(struct gen *g, struct drive *d)
{
    const char *file = d->file;
    const char *fmt_opt = dget(d, "format");

    if (d->cdrom && strcmp(file, "cdrom") == 0) {
        d->path = qm_strdup(g->in->host->cdrom ? g->in->host->cdrom : "/dev/cdrom");
    } else if (d->cdrom && strcmp(file, "none") == 0) {
        return 0;
    } else if (file[0] == '/') {
        d->path = qm_strdup(file);
    } else {
        if (qm_volume_resolve(g->in->storage, file, 0, &d->vol, g->err) < 0)
            return -1;
        d->has_vol = true;
        if (d->vol.content == QM_CONTENT_ISO && !dget(d, "media"))
            return qm_fail(g->err, 400, "%s: explicit media parameter is required for iso images",
                           d->id);
        d->path = qm_strdup(d->vol.path);
        const char *vf = d->vol.format ? d->vol.format : "raw";
        if (fmt_opt && strcmp(fmt_opt, vf) != 0)
            return qm_fail(g->err, 400,
                           "drive '%s' - volume '%s' - 'format=%s' option different from"
                           " storage format '%s'",
                           d->id, file, fmt_opt, vf);
        d->format = qm_strdup(vf);
        return 0;
    }
    d->format = qm_strdup(fmt_opt ? fmt_opt : "raw");
    return 0;
}

/* The legacy -drive option value. */
static char *drive_option(struct gen *g, const struct drive *d)
{
    struct strbuf sb = {0};
    static const char *const passthrough[] = {"media", "cache", "rerror", "werror", "discard"};

    if (d->path) {
        if (d->has_vol && d->vol.kind == QM_VOLUME_RBD) {
            sb_addf(&sb, "file=rbd:%s/%s", d->vol.pool, d->vol.image);
            if (d->vol.monitors.n) {
                sb_add(&sb, ":mon_host=");
                for (size_t i = 0; i < d->vol.monitors.n; i++)
                    sb_addf(&sb, "%s%s", i ? ";" : "", d->vol.monitors.v[i]);
            }
            sb_add(&sb, ",");
        } else {
            sb_addf(&sb, "file=%s,", d->path);
        }
    }
    sb_addf(&sb, "if=none,id=drive-%s", d->id);
    for (size_t i = 0; i < QM_ARRAY_SIZE(passthrough); i++) {
        const char *v = dget(d, passthrough[i]);
        if (v)
            sb_addf(&sb, ",%s=%s", passthrough[i], v);
    }
    const char *snapshot = dget(d, "snapshot");
    if (snapshot)
        sb_addf(&sb, ",snapshot=%s", ps_bool(&d->ps, "snapshot", false) ? "on" : "off");
    const char *ro = dget(d, "ro");
    if (ro)
        sb_addf(&sb, ",readonly=%s", ps_bool(&d->ps, "ro", false) ? "on" : "off");

    static const char *const dirs[][2] = {{"", "-total"}, {"_rd", "-read"}, {"_wr", "-write"}};
    for (size_t i = 0; i < QM_ARRAY_SIZE(dirs); i++) {
        char key[32];
        const char *v;
        snprintf(key, sizeof(key), "mbps%s", dirs[i][0]);
        if ((v = dget(d, key)))
            sb_addf(&sb, ",throttling.bps%s=%lld", dirs[i][1], (long long)(atof(v) * 1048576));
        snprintf(key, sizeof(key), "mbps%s_max", dirs[i][0]);
        if ((v = dget(d, key)))
            sb_addf(&sb, ",throttling.bps%s-max=%lld", dirs[i][1],
                    (long long)(atof(v) * 1048576));
        snprintf(key, sizeof(key), "bps%s_max_length", dirs[i][0]);
        if ((v = dget(d, key)))
            sb_addf(&sb, ",throttling.bps%s-max-length=%s", dirs[i][1], v);
        snprintf(key, sizeof(key), "iops%s", dirs[i][0]);
        if ((v = dget(d, key)))
            sb_addf(&sb, ",throttling.iops%s=%s", dirs[i][1], v);
        snprintf(key, sizeof(key), "iops%s_max", dirs[i][0]);
        if ((v = dget(d, key)))
            sb_addf(&sb, ",throttling.iops%s-max=%s", dirs[i][1], v);
        snprintf(key, sizeof(key), "iops%s_max_length", dirs[i][0]);
        if ((v = dget(d, key)))
            sb_addf(&sb, ",throttling.iops%s-max-length=%s", dirs[i][1], v);
    }
    if (d->format)
        sb_addf(&sb, ",format=%s", d->format);
    bool direct = cache_direct(d);
    if (!dget(d, "cache") && direct)
        sb_add(&sb, ",cache=none");
    sb_addf(&sb, ",aio=%s", aio_option(d, direct));
    if (!d->cdrom)
        sb_addf(&sb, ",detect-zeroes=%s", detect_zeroes(d));
    (void)g;
    return sb_detach(&sb);
}

/*
 * "e" (file node) or "f" (format node) and the first 30 hex digits of the
 * SHA-256 of "drive=ID,[snap=NAME,]volid=VOLID", as qemu-server names nodes.
 */
static char *node_name(char prefix, const char *drive_id, const char *snap, const char *volid)
{
    unsigned char digest[32];
    char *info = snap ? qm_sprintf("drive=%s,snap=%s,volid=%s", drive_id, snap, volid)
                      : qm_sprintf("drive=%s,volid=%s", drive_id, volid);
    char hex[65];

    mbedtls_sha256_ret((const unsigned char *)info, strlen(info), digest, 0);
    free(info);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return qm_sprintf("%c%.30s", prefix, hex);
}

static void add_common_options(struct json_obj *o, const struct drive *d, bool read_only)
{
    if (!d->cdrom) {
        const char *discard = dget(d, "discard");
        json_set_str(o, "discard", discard && strcmp(discard, "on") == 0 ? "unmap" : "ignore");
        json_set_str(o, "detect-zeroes", detect_zeroes(d));
    }
    json_set_bool(o, "read-only", ps_bool(&d->ps, "ro", false) || d->cdrom || read_only);
}

static struct json_obj cache_object(const struct drive *d, bool direct)
{
    struct json_obj c = {0};
    const char *cache = dget(d, "cache");

    json_set_bool(&c, "direct", direct);
    json_set_bool(&c, "no-flush", cache && strcmp(cache, "unsafe") == 0);
    return c;
}

/*
 * Builds the format node of a drive and its file node into fmt. snap names a
 * snapshot of a volume chain and filename its image, both NULL for the
 * current image; size is 0 or the raw size to enforce.
 */
static void format_node(const struct drive *d, bool read_only, long long size, const char *snap,
                        const char *filename, struct json_obj *fmt)
{
    struct json_obj file = {0};
    bool direct = cache_direct(d);

    if (d->has_vol && d->vol.kind == QM_VOLUME_RBD) {
        struct strbuf servers = {0};
        json_set_str(&file, "driver", "rbd");
        json_set_str(&file, "pool", d->vol.pool);
        json_set_str(&file, "image", d->vol.image);
        if (d->vol.rbd_namespace)
            json_set_str(&file, "namespace", d->vol.rbd_namespace);
        sb_addc(&servers, '[');
        for (size_t i = 0; i < d->vol.monitors.n; i++) {
            char *h = json_quote(d->vol.monitors.v[i]);
            sb_addf(&servers, "%s{\"host\":%s,\"port\":\"3300\"}", i ? "," : "", h);
            free(h);
        }
        sb_addc(&servers, ']');
        json_set_raw(&file, "server", servers.buf);
        sb_free(&servers);
        /* NOTE: cephx keys are not looked up; the client authenticates without one. */
        json_set_raw(&file, "auth-client-required", "[\"none\"]");
    } else if (d->has_vol && d->vol.kind == QM_VOLUME_ISCSI) {
        char lun[16];
        snprintf(lun, sizeof(lun), "%d", d->vol.lun);
        json_set_str(&file, "driver", "iscsi");
        json_set_str(&file, "portal", d->vol.portal);
        json_set_str(&file, "target", d->vol.target);
        json_set_raw(&file, "lun", lun);
        json_set_str(&file, "transport", "tcp");
    } else {
        bool block = d->has_vol ? d->vol.kind == QM_VOLUME_BLOCK : qm_str_starts(d->path, "/dev/");
        const char *driver = !block ? "file" : d->cdrom ? "host_cdrom" : "host_device";
        json_set_str(&file, "driver", driver);
        json_set_str(&file, "filename", filename ? filename : d->path);
    }
    struct json_obj cache = cache_object(d, direct);
    char *cache_json = json_encode(&cache);
    json_free(&cache);
    json_set_raw(&file, "cache", cache_json);
    const char *driver = json_get_raw(&file, "driver");
    if (strcmp(driver, "\"file\"") == 0 || strcmp(driver, "\"host_cdrom\"") == 0 ||
        strcmp(driver, "\"host_device\"") == 0)
        json_set_str(&file, "aio", aio_option(d, direct));
    char *fnode = node_name('e', d->id, snap, d->file);
    json_set_str(&file, "node-name", fnode);
    free(fnode);
    add_common_options(&file, d, read_only);

    char *node = node_name('f', d->id, snap, d->file);
    json_set_str(fmt, "node-name", node);
    free(node);
    json_set_str(fmt, "driver", d->format);
    json_set_raw(fmt, "cache", cache_json);
    json_set_obj(fmt, "file", &file);
    add_common_options(fmt, d, read_only);
    if (size > 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", size);
        json_set_raw(fmt, "size", buf);
    }
    const struct qm_storage *s = drive_storage(d);
    if (s && qm_storage_flag(s, "snapshot-as-volume-chain") && strcmp(d->format, "qcow2") == 0)
        json_set_bool(fmt, "discard-no-unref", true);
    free(cache_json);
}

/*
 * Adds the snapshots below the current image as nested "backing" nodes, for
 * qcow2 volumes on storages that keep snapshots as a chain of volumes.
 */
static int add_backing_chain(struct gen *g, const struct drive *d, bool read_only,
                             struct json_obj *fmt)
{
    const struct qm_storage *s = drive_storage(d);
    struct strvec names = {0}, files = {0};

    /* Proxmox VE 9 keeps snapshots of qcow2 volumes on LVM as a volume chain, flag or not. */
    bool chain = s && (qm_storage_flag(s, "snapshot-as-volume-chain") || strcmp(s->type, "lvm") == 0);
    if (!chain || !d->format || strcmp(d->format, "qcow2") != 0 || !g->in->volume_chain)
        return 0;
    if (g->in->volume_chain(d->file, d->path, &names, &files, g->err) < 0)
        return -1;
    /* Built from the oldest snapshot up, each becoming the backing of the next. */
    struct json_obj below = {0};
    bool have_below = false;
    for (size_t i = names.n; i-- > 0;) {
        struct json_obj node = {0};
        format_node(d, read_only, 0, names.v[i], files.v[i], &node);
        if (have_below)
            json_set_obj(&node, "backing", &below);
        below = node;
        have_below = true;
    }
    if (have_below)
        json_set_obj(fmt, "backing", &below);
    sv_free(&names);
    sv_free(&files);
    return 0;
}

/* Returns the -blockdev JSON of a drive, or NULL with g->err filled in. */
static char *drive_blockdev(struct gen *g, const struct drive *d, bool read_only, long long size)
{
    struct json_obj fmt = {0};

    format_node(d, read_only, size, NULL, NULL, &fmt);
    if (add_backing_chain(g, d, read_only, &fmt) < 0) {
        json_free(&fmt);
        return NULL;
    }

    if (ps_bool(&d->ps, "scsiblock", false)) {
        json_set_str(&fmt, "node-name", "");
        char *top = qm_sprintf("drive-%s", d->id);
        json_set_str(&fmt, "node-name", top);
        free(top);
        char *out = json_encode(&fmt);
        json_free(&fmt);
        return out;
    }

    struct json_obj top = {0};
    json_set_str(&top, "driver", "throttle");
    char *name = qm_sprintf("drive-%s", d->id);
    json_set_str(&top, "node-name", name);
    free(name);
    char *group = qm_sprintf("throttle-drive-%s", d->id);
    json_set_str(&top, "throttle-group", group);
    free(group);
    json_set_obj(&top, "file", &fmt);
    add_common_options(&top, d, read_only);
    char *out = json_encode(&top);
    json_free(&top);
    return out;
}

static char *throttle_group(const struct drive *d)
{
    struct json_obj o = {0}, limits = {0};
    static const char *const dirs[][2] = {{"", "-total"}, {"_rd", "-read"}, {"_wr", "-write"}};

    for (size_t i = 0; i < QM_ARRAY_SIZE(dirs); i++) {
        char key[32], name[48], num[32];
        const char *v;
        snprintf(key, sizeof(key), "mbps%s", dirs[i][0]);
        if ((v = dget(d, key))) {
            snprintf(name, sizeof(name), "bps%s", dirs[i][1]);
            snprintf(num, sizeof(num), "%lld", (long long)(atof(v) * 1048576));
            json_set_raw(&limits, name, num);
        }
        snprintf(key, sizeof(key), "mbps%s_max", dirs[i][0]);
        if ((v = dget(d, key))) {
            snprintf(name, sizeof(name), "bps%s-max", dirs[i][1]);
            snprintf(num, sizeof(num), "%lld", (long long)(atof(v) * 1048576));
            json_set_raw(&limits, name, num);
        }
        snprintf(key, sizeof(key), "bps%s_max_length", dirs[i][0]);
        if ((v = dget(d, key))) {
            snprintf(name, sizeof(name), "bps%s-max-length", dirs[i][1]);
            json_set_raw(&limits, name, v);
        }
        snprintf(key, sizeof(key), "iops%s", dirs[i][0]);
        if ((v = dget(d, key))) {
            snprintf(name, sizeof(name), "iops%s", dirs[i][1]);
            json_set_raw(&limits, name, v);
        }
        snprintf(key, sizeof(key), "iops%s_max", dirs[i][0]);
        if ((v = dget(d, key))) {
            snprintf(name, sizeof(name), "iops%s-max", dirs[i][1]);
            json_set_raw(&limits, name, v);
        }
        snprintf(key, sizeof(key), "iops%s_max_length", dirs[i][0]);
        if ((v = dget(d, key))) {
            snprintf(name, sizeof(name), "iops%s-max-length", dirs[i][1]);
            json_set_raw(&limits, name, v);
        }
    }
    char *id = qm_sprintf("throttle-drive-%s", d->id);
    json_set_str(&o, "id", id);
    free(id);
    json_set_obj(&o, "limits", &limits);
    json_set_str(&o, "qom-type", "throttle-group");
    char *out = json_encode(&o);
    json_free(&o);
    return out;
}

static char *drive_device(struct gen *g, const struct drive *d)
{
    struct strbuf sb = {0};
    char addr[64];
    bool blockdev = gen_machine_at_least(g, 10, 0, 0);
    bool attach = !blockdev || d->path;
    bool has_write_cache = true;
    const char *scsihw = gen_get(g, "scsihw");

    if (strcmp(d->iface, "virtio") == 0) {
        sb_add(&sb, "virtio-blk-pci");
        if (attach)
            sb_addf(&sb, ",drive=drive-%s", d->id);
        sb_addf(&sb, ",id=%s%s", d->id, gen_pci_addr(g, d->id, addr, sizeof(addr)));
        if (ps_bool(&d->ps, "iothread", false))
            sb_addf(&sb, ",iothread=iothread-%s", d->id);
    } else if (strcmp(d->iface, "scsi") == 0) {
        int maxdev = !scsihw || qm_str_starts(scsihw, "lsi") ? 7
                     : strcmp(scsihw, "virtio-scsi-single") == 0 ? 1
                                                                  : 256;
        const char *prefix = scsihw && strcmp(scsihw, "virtio-scsi-single") == 0 ? "virtioscsi"
                                                                                 : "scsihw";
        int controller = d->index / maxdev;
        const char *type = d->cdrom ? "cd" : "hd";
        if (!scsihw || qm_str_starts(scsihw, "lsi") || strcmp(scsihw, "pvscsi") == 0)
            sb_addf(&sb, "scsi-%s,bus=%s%d.0,scsi-id=%d", type, prefix, controller,
                    d->index % maxdev);
        else
            sb_addf(&sb, "scsi-%s,bus=%s%d.0,channel=0,scsi-id=0,lun=%d", type, prefix,
                    controller, d->index);
        if (attach)
            sb_addf(&sb, ",drive=drive-%s", d->id);
        sb_addf(&sb, ",id=%s", d->id);
        if (blockdev)
            sb_addf(&sb, ",device_id=drive-%s", d->id);
        if (ps_bool(&d->ps, "ssd", false))
            sb_add(&sb, ",rotation_rate=1");
        if (dget(d, "wwn"))
            sb_addf(&sb, ",wwn=%s", dget(d, "wwn"));
        if (dget(d, "vendor"))
            sb_addf(&sb, ",vendor=%s", dget(d, "vendor"));
        if (dget(d, "product"))
            sb_addf(&sb, ",product=%s", dget(d, "product"));
    } else {
        bool sata = strcmp(d->iface, "sata") == 0;
        int maxdev = sata ? 6 : 2;
        int controller = d->index / maxdev;
        int unit = d->index % maxdev;
        if (g->q35 && !sata) {
            /* q35 has one unit per IDE bus; odd indexes move two buses up. */
            controller += 2 * (unit % 2);
            unit = 0;
        }
        bool cd = d->cdrom || gen_bool(g, "template", false);
        sb_addf(&sb, "ide-%s", cd ? "cd" : "hd");
        if (sata)
            sb_addf(&sb, ",bus=ahci%d.%d", controller, unit);
        else
            sb_addf(&sb, ",bus=ide.%d,unit=%d", controller, unit);
        if (attach)
            sb_addf(&sb, ",drive=drive-%s", d->id);
        sb_addf(&sb, ",id=%s", d->id);
        if (!cd) {
            if (dget(d, "model"))
                sb_addf(&sb, ",model=%s", dget(d, "model"));
            if (ps_bool(&d->ps, "ssd", false))
                sb_add(&sb, ",rotation_rate=1");
        }
        if (dget(d, "wwn"))
            sb_addf(&sb, ",wwn=%s", dget(d, "wwn"));
    }
    if (d->bootindex)
        sb_addf(&sb, ",bootindex=%d", d->bootindex);
    const char *serial = dget(d, "serial");
    if (serial) {
        sb_add(&sb, ",serial=");
        for (const char *c = serial; *c; c++) {
            if (*c == ',')
                sb_addc(&sb, ',');
            sb_addc(&sb, *c);
        }
    }
    if (blockdev) {
        if (!d->cdrom && has_write_cache) {
            const char *cache = dget(d, "cache");
            bool off = cache && (strcmp(cache, "writethrough") == 0 ||
                                 strcmp(cache, "directsync") == 0);
            sb_addf(&sb, ",write-cache=%s", off ? "off" : "on");
        }
        if (dget(d, "rerror"))
            sb_addf(&sb, ",rerror=%s", dget(d, "rerror"));
        if (dget(d, "werror"))
            sb_addf(&sb, ",werror=%s", dget(d, "werror"));
    }
    return sb_detach(&sb);
}

static int add_controller(struct gen *g, struct drive *d, unsigned *scsi_done,
                          unsigned *ahci_done)
{
    char addr[64], id[32];
    const char *scsihw = gen_get(g, "scsihw");

    if (strcmp(d->iface, "scsi") == 0) {
        bool single = scsihw && strcmp(scsihw, "virtio-scsi-single") == 0;
        int maxdev = !scsihw || qm_str_starts(scsihw, "lsi") ? 7 : single ? 1 : 256;
        const char *prefix = single ? "virtioscsi" : "scsihw";
        int controller = d->index / maxdev;
        if (d->index > 13 && !gen_version_guard(g, 4, 1, 2))
            return qm_fail(g->err, 400,
                           "scsi%d: machine version 4.1~pve2 or higher is required to use more"
                           " than 14 SCSI disks",
                           d->index);
        snprintf(id, sizeof(id), "%s%d", prefix, controller);
        gen_pci_addr(g, id, addr, sizeof(addr));
        const char *type = scsihw ? (single ? "virtio-scsi-pci" : scsihw) : "lsi";
        struct strbuf sb = {0};
        sb_addf(&sb, "%s,id=%s%s", type, id, addr);
        if (single && ps_bool(&d->ps, "iothread", false)) {
            sb_addf(&sb, ",iothread=iothread-%s", id);
            sv_push(&g->cmd, "-object");
            sv_pushf(&g->cmd, "iothread,id=iothread-%s", id);
        } else if (ps_bool(&d->ps, "iothread", false)) {
            gen_warn(g, "iothread is only valid with virtio disk or virtio-scsi-single"
                        " controller, ignoring");
        }
        if (single && dget(d, "queues"))
            sb_addf(&sb, ",num_queues=%s", dget(d, "queues"));
        if (controller < 32 && !(*scsi_done & (1u << controller))) {
            sv_push(&g->devices, "-device");
            sv_push(&g->devices, sb.buf);
            *scsi_done |= 1u << controller;
        }
        sb_free(&sb);
    } else if (strcmp(d->iface, "sata") == 0) {
        int controller = d->index / 6;
        snprintf(id, sizeof(id), "ahci%d", controller);
        if (!(*ahci_done & (1u << controller))) {
            sv_push(&g->devices, "-device");
            sv_pushf(&g->devices, "ahci,id=%s,multifunction=on%s", id,
                     gen_pci_addr(g, id, addr, sizeof(addr)));
            *ahci_done |= 1u << controller;
        }
    }
    return 0;
}

static int parse_drive(struct gen *g, const char *iface, int index, const char *value,
                       struct drive *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->iface, sizeof(d->iface), "%s", iface);
    snprintf(d->id, sizeof(d->id), "%s%d", iface, index);
    d->index = index;
    if (qm_propstr_parse(d->id, value, &d->ps, g->err) < 0)
        return -1;
    d->file = dget(d, "file");
    if (!d->file)
        return qm_fail(g->err, 400, "%s: missing volume", d->id);
    const char *media = dget(d, "media");
    d->cdrom = media && strcmp(media, "cdrom") == 0;
    return 0;
}

int gen_drives(struct gen *g, const struct strvec *boot_keys, const struct strvec *boot_values)
{
    static const char *const ifaces[] = {"ide", "scsi", "virtio", "sata"};
    static const int max_index[] = {4, 31, 16, 6};
    unsigned scsi_done = 0, ahci_done = 0;
    bool blockdev = gen_machine_at_least(g, 10, 0, 0);

    for (size_t f = 0; f < QM_ARRAY_SIZE(ifaces); f++) {
        for (int i = 0; i < max_index[f]; i++) {
            char key[16];
            snprintf(key, sizeof(key), "%s%d", ifaces[f], i);
            const char *value = gen_get(g, key);
            if (!value)
                continue;
            struct drive d;
            int rc = parse_drive(g, ifaces[f], i, value, &d);
            for (size_t b = 0; rc == 0 && b < boot_keys->n; b++)
                if (strcmp(boot_keys->v[b], key) == 0)
                    d.bootindex = atoi(boot_values->v[b]);
            if (rc == 0 && strcmp(ifaces[f], "virtio") == 0 && ps_bool(&d.ps, "iothread", false)) {
                sv_push(&g->cmd, "-object");
                sv_pushf(&g->cmd, "iothread,id=iothread-%s", key);
            }
            if (rc == 0)
                rc = add_controller(g, &d, &scsi_done, &ahci_done);
            if (rc == 0)
                rc = resolve_drive(g, &d);
            if (rc == 0 && blockdev) {
                if (d.path) {
                    char *tg = throttle_group(&d);
                    sv_push(&g->cmd, "-object");
                    sv_push(&g->cmd, tg);
                    free(tg);
                    char *bd = drive_blockdev(g, &d, gen_bool(g, "template", false), 0);
                    if (bd) {
                        sv_push(&g->devices, "-blockdev");
                        sv_push(&g->devices, bd);
                        free(bd);
                    } else {
                        rc = -1;
                    }
                }
            } else if (rc == 0) {
                const struct qm_storage *s = drive_storage(&d);
                if (s && qm_storage_flag(s, "snapshot-as-volume-chain") && d.format &&
                    strcmp(d.format, "qcow2") == 0) {
                    rc = qm_fail(g->err, 400,
                                 "storage for '%s' is configured for snapshots as a volume chain"
                                 " - this requires QEMU machine version >= 10.0",
                                 d.file);
                } else {
                    char *opt = drive_option(g, &d);
                    sv_push(&g->devices, "-drive");
                    sv_push(&g->devices, opt);
                    free(opt);
                }
            }
            if (rc == 0) {
                char *dev = drive_device(g, &d);
                sv_push(&g->devices, "-device");
                sv_push(&g->devices, dev);
                free(dev);
            }
            drive_free(&d);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/*
 * Chooses the firmware images as qemu-server 9.2 does (OVMF.pm). Proxmox builds
 * ship them in pve-edk2-firmware; Debian's ovmf and qemu-efi-aarch64 packages
 * use the same file names in other folders. vars is NULL for SEV-SNP, which
 * boots from one -bios image.
 */
static int ovmf_files(struct gen *g, const struct drive *efidisk, char **code, char **vars,
                      long long *vars_size)
{
    const char *efitype = efidisk ? dget(efidisk, "efitype") : NULL;
    bool ms = efidisk && ps_bool(&efidisk->ps, "pre-enrolled-keys", false);
    const char *cvm = g->cvm_type;
    const char *code_name, *vars_name = NULL;
    const char *dir;

    *code = *vars = NULL;
    *vars_size = 0;
    if (g->ovmf_code) {
        *code = qm_strdup(g->ovmf_code);
        *vars = qm_strdup(g->ovmf_vars);
        *vars_size = gen_host_file_size(g->in->host, *vars);
        return 0;
    }
    if (strcmp(g->arch, "aarch64") == 0) {
        dir = g->pve ? "/usr/share/pve-edk2-firmware/" : "/usr/share/AAVMF";
        code_name = ms ? "AAVMF_CODE.secboot.fd" : "AAVMF_CODE.fd";
        vars_name = ms ? "AAVMF_VARS.ms.fd" : "AAVMF_VARS.fd";
    } else if (strcmp(g->arch, "x86_64") == 0) {
        dir = g->pve ? "/usr/share/pve-edk2-firmware/" : "/usr/share/OVMF";
        if (cvm && strcmp(cvm, "snp") == 0) {
            code_name = "OVMF_SEV_4M.fd";
        } else if (cvm) {
            code_name = "OVMF_SEV_CODE_4M.fd";
            vars_name = "OVMF_SEV_VARS_4M.fd";
        } else if (efitype && strcmp(efitype, "4m") == 0) {
            /* The secure-boot build needs SMM, which q35 has. */
            code_name = g->q35 ? "OVMF_CODE_4M.secboot.fd" : "OVMF_CODE_4M.fd";
            vars_name = ms ? "OVMF_VARS_4M.ms.fd" : "OVMF_VARS_4M.fd";
        } else {
            code_name = "OVMF_CODE.fd";
            vars_name = "OVMF_VARS.fd";
        }
    } else {
        return qm_fail(g->err, 400, "no OVMF images known for architecture '%s'", g->arch);
    }

    *code = qm_sprintf("%s/%s", dir, code_name);
    if (gen_host_file_size(g->in->host, *code) < 0)
        return qm_fail(g->err, 500, "EFI base image '%s' not found", *code);
    if (vars_name) {
        *vars = qm_sprintf("%s/%s", dir, vars_name);
        *vars_size = gen_host_file_size(g->in->host, *vars);
        if (*vars_size < 0)
            return qm_fail(g->err, 500, "EFI vars image '%s' not found", *vars);
    }
    return 0;
}

char *qm_qemu_efivars_temp_path(const struct qm_paths *paths, int vmid)
{
    return qm_sprintf("%s/run/qemu-server/efidisk/%d-ovmf.fd", paths->root ? paths->root : "",
                      vmid);
}

int gen_efi(struct gen *g)
{
    const char *value = gen_get(g, "efidisk0");
    struct drive d = {0};
    bool have = value != NULL;
    char *code = NULL, *vars = NULL;
    long long vars_size;
    int rc = 0;

    if (have && parse_drive(g, "efidisk", 0, value, &d) < 0) {
        drive_free(&d);
        return -1;
    }
    char *temp_vars = qm_qemu_efivars_temp_path(g->in->paths, g->in->vmid);
    if (ovmf_files(g, have ? &d : NULL, &code, &vars, &vars_size) < 0) {
        rc = -1;
        goto out;
    }
    if (!vars) {
        /* SEV-SNP: one image, no EFI vars drive. */
        if (have)
            gen_warn(g, "EFI disks are not supported with Confidential Virtual Machines and will"
                        " be ignored");
        sv_push(&g->cmd, "-bios");
        sv_push(&g->cmd, code);
        goto out;
    }

    if (gen_version_guard(g, 10, 0, 0)) {
        if (!have) {
            gen_warn(g, "no efidisk configured! Using temporary efivars disk.");
            snprintf(d.iface, sizeof(d.iface), "efidisk");
            snprintf(d.id, sizeof(d.id), "efidisk0");
            d.file = temp_vars;
            d.path = qm_strdup(temp_vars);
            d.format = qm_strdup("raw");
        } else if (resolve_drive(g, &d) < 0) {
            rc = -1;
            goto out;
        }
        /* EFI vars use QEMU's writeback cache unless the drive sets one. */
        if (!dget(&d, "cache")) {
            struct qm_conf_entry *items = qm_realloc(d.ps.items, (d.ps.n + 1) * sizeof(*items));
            items[d.ps.n].key = qm_strdup("cache");
            items[d.ps.n].value = qm_strdup("writeback");
            d.ps.items = items;
            d.ps.n++;
        }
        char *tg = throttle_group(&d);
        sv_push(&g->cmd, "-object");
        sv_push(&g->cmd, tg);
        free(tg);
        char *codef = json_quote(code);
        sv_push(&g->cmd, "-blockdev");
        sv_pushf(&g->cmd,
                 "{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":%s},"
                 "\"node-name\":\"pflash0\",\"read-only\":true}",
                 codef);
        free(codef);
        char *bd = drive_blockdev(g, &d, gen_bool(g, "template", false),
                                  strcmp(d.format, "raw") == 0 ? vars_size : 0);
        if (!bd) {
            rc = -1;
            goto out;
        }
        sv_push(&g->cmd, "-blockdev");
        sv_push(&g->cmd, bd);
        free(bd);
        sv_push(&g->machine_flags, "pflash0=pflash0");
        sv_push(&g->machine_flags, "pflash1=drive-efidisk0");
    } else {
        struct strbuf vd = {0};
        sb_add(&vd, "if=pflash,unit=1,id=drive-efidisk0");
        if (have) {
            if (resolve_drive(g, &d) < 0) {
                sb_free(&vd);
                rc = -1;
                goto out;
            }
            sb_addf(&vd, ",format=%s,file=%s", d.format, d.path);
            if (strcmp(d.format, "raw") == 0 && gen_version_guard(g, 4, 1, 2))
                sb_addf(&vd, ",size=%lld", vars_size);
        } else {
            gen_warn(g, "no efidisk configured! Using temporary efivars disk.");
            sb_addf(&vd, ",format=raw,file=%s", temp_vars);
            if (gen_version_guard(g, 4, 1, 2))
                sb_addf(&vd, ",size=%lld", vars_size);
        }
        sv_push(&g->cmd, "-drive");
        sv_pushf(&g->cmd, "if=pflash,unit=0,format=raw,readonly=on,file=%s", code);
        sv_push(&g->cmd, "-drive");
        sv_push(&g->cmd, vd.buf);
        sb_free(&vd);
    }
out:
    if (have) {
        drive_free(&d);
    } else {
        /* d.file points to temp_vars, which is freed below. */
        qm_propstr_free(&d.ps);
        free(d.path);
        free(d.format);
    }
    free(temp_vars);
    free(code);
    free(vars);
    return rc;
}

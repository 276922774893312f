/* Validation of single values: as read from a file, and as set through the API. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conf-internal.h"

/*
 * Maps a drive's file to a volume as qemu-server's filename_to_volume_id
 * does. Bare names become volumes of storage local, and relative paths are
 * rejected (NULL).
 */
static char *drive_file_to_volume(int vmid, const char *file, const char *media)
{
    if (strcmp(file, "none") == 0 || strcmp(file, "cdrom") == 0 ||
        (qm_str_starts(file, "/dev/") && file[5] != '\0') ||
        qm_regex_match("^[^:]+:.+$", file))
        return qm_strdup(file);
    /* NOTE: qemu-server 9.2.6 rejects absolute paths outside /dev here, yet its
     * cfg2cmd vectors expect "scsi1: /mnt/file.raw" to be used, so they are kept. */
    if (file[0] == '/')
        return qm_strdup(file);
    if (strchr(file, '/'))
        return NULL;
    if (media && strcmp(media, "cdrom") == 0)
        return qm_sprintf("local:iso/%s", file);
    return qm_sprintf("local:%d/%s", vmid, file);
}

static bool has_value(const struct qm_propstr *ps, const char *key)
{
    const char *value = qm_propstr_get(ps, key);
    return value && *value && strcmp(value, "0") != 0;
}

/*
 * Applies the checks that qemu-server's parse_drive makes beyond the format.
 * Legacy bps/bps_rd/bps_wr become mbps/mbps_rd/mbps_wr of "0.000", because
 * qemu-server 9.2.6 converts the defined-flag instead of the value, and this
 * keeps its output.
 */
static bool normalize_drive(const char *key, struct qm_propstr *drive)
{
    static const char *const legacy[] = { "bps", "bps_rd", "bps_wr" };
    for (size_t i = 0; i < QM_ARRAY_SIZE(legacy); i++) {
        if (!qm_propstr_get(drive, legacy[i]))
            continue;
        char *mkey = qm_sprintf("m%s", legacy[i]);
        bool clash = qm_propstr_get(drive, mkey) != NULL;
        qm_propstr_unset(drive, legacy[i]);
        if (!clash)
            qm_propstr_set(drive, mkey, "0.000");
        free(mkey);
        if (clash)
            return false;
    }

    static const char *const requirements[][2] = {
        { "mbps_max", "mbps" },
        { "mbps_rd_max", "mbps_rd" },
        { "mbps_wr_max", "mbps_wr" },
        { "bps_max_length", "mbps_max" },
        { "bps_rd_max_length", "mbps_rd_max" },
        { "bps_wr_max_length", "mbps_wr_max" },
        { "iops_max_length", "iops_max" },
        { "iops_rd_max_length", "iops_rd_max" },
        { "iops_wr_max_length", "iops_wr_max" },
    };
    for (size_t i = 0; i < QM_ARRAY_SIZE(requirements); i++) {
        if (has_value(drive, requirements[i][0]) && !has_value(drive, requirements[i][1]))
            return false;
    }
    if ((has_value(drive, "mbps_rd") || has_value(drive, "mbps_wr")) && has_value(drive, "mbps"))
        return false;
    if ((has_value(drive, "iops_rd") || has_value(drive, "iops_wr")) && has_value(drive, "iops"))
        return false;

    const char *media = qm_propstr_get(drive, "media");
    if (media && strcmp(media, "cdrom") == 0) {
        if (has_value(drive, "snapshot") || qm_propstr_get(drive, "format"))
            return false;
        if (qm_str_starts(key, "virtio"))
            return false;
    }
    const char *size = qm_propstr_get(drive, "size");
    unsigned long long bytes;
    if (size && *size && !qm_parse_size(size, &bytes))
        return false;
    return true;
}

static bool is_disk_interface(const char *key)
{
    return qm_is_drive_key(key) && !qm_str_starts(key, "efidisk") &&
           !qm_str_starts(key, "tpmstate");
}

static int read_drive(int vmid, const char *key, const char *value, char **normalized,
                      struct qm_error *err)
{
    struct qm_propstr drive;
    if (qm_propstr_parse(key, value, &drive, err) < 0)
        return -1;

    int rc = -1;
    char *volume = NULL;
    if (normalize_drive(key, &drive)) {
        volume = drive_file_to_volume(vmid, qm_propstr_get(&drive, "file"),
                                      qm_propstr_get(&drive, "media"));
    }
    if (volume) {
        qm_propstr_set(&drive, "file", volume);
        *normalized = qm_propstr_print(key, &drive, err);
        rc = *normalized ? 0 : -1;
    } else {
        qm_fail(err, 400, "invalid drive");
    }
    free(volume);
    qm_propstr_free(&drive);
    return rc;
}

static char *strip_quotes(const char *value)
{
    size_t len = strlen(value);
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"')
        return qm_strndup(value + 1, len - 2);
    return qm_strdup(value);
}

int qm_conf_read_value(bool fleecing, int vmid, const char *key, const char *value,
                       char **normalized, bool *known, struct qm_error *err)
{
    const struct qm_schema_key *prop =
        fleecing ? qm_schema_lookup_fleecing(key) : qm_schema_lookup(key);

    *normalized = NULL;
    *known = prop != NULL;
    if (!prop)
        return qm_fail(err, 400, "unknown setting '%s'", key);
    if (strpbrk(value, "\r\n"))
        return qm_fail(err, 400, "property contains a line feed");

    int flag;
    const char *digits;
    switch (prop->type) {
    case QM_TYPE_BOOLEAN:
        if (!qm_parse_boolean(value, &flag))
            return qm_fail(err, 400, "type check ('boolean') failed - got '%s'", value);
        *normalized = qm_strdup(flag ? "1" : "0");
        return 0;
    case QM_TYPE_INTEGER:
        if (!qm_regex_match("^[0-9]+$", value))
            return qm_fail(err, 400, "type check ('integer') failed - got '%s'", value);
        for (digits = value; digits[0] == '0' && digits[1] != '\0'; digits++)
            ;
        *normalized = qm_strdup(digits);
        return 0;
    case QM_TYPE_NUMBER:
        if (!qm_regex_match("^[0-9]+(\\.[0-9]+)?$", value))
            return qm_fail(err, 400, "type check ('number') failed - got '%s'", value);
        *normalized = qm_strdup(value);
        return 0;
    case QM_TYPE_STRING:
        break;
    }

    if (prop->propstr) {
        struct qm_propstr ps;
        if (qm_propstr_parse_format(prop->propstr, value, &ps, err) < 0)
            return -1;
        qm_propstr_free(&ps);
        if (is_disk_interface(key) || strcmp(key, "cdrom") == 0) {
            const char *drive_key = strcmp(key, "cdrom") == 0 ? "ide2" : key;
            if (read_drive(vmid, drive_key, value, normalized, err) < 0)
                return -2;
            return 0;
        }
        *normalized = qm_strdup(value);
        return 0;
    }
    if (prop->format) {
        struct strbuf reason = { 0 };
        bool ok = qm_format_check(prop->format, value, &reason);
        if (!ok)
            qm_fail(err, 400, "%s", reason.buf);
        sb_free(&reason);
        if (!ok)
            return -1;
        *normalized = qm_strdup(value);
        return 0;
    }
    *normalized = strip_quotes(value);
    return 0;
}

char *qm_conf_normalize_value(int vmid, const char *key, const char *value, struct qm_error *err)
{
    char *normalized = NULL;
    bool known;
    struct qm_error why;
    int rc = qm_conf_read_value(false, vmid, key, value, &normalized, &known, &why);

    if (rc == -2)
        qm_fail(err, 400, "unable to parse value of '%s'", key);
    else if (rc < 0)
        qm_fail(err, 400, "unable to parse value of '%s' - %s", key, why.msg);
    return rc == 0 ? normalized : NULL;
}

/* Whether a volume id's name ("STORAGE:NAME") has a ".." component. */
static bool volume_leaves_storage(const char *volid)
{
    const char *colon = strchr(volid, ':');

    if (!colon || volid[0] == '/')
        return false;
    for (const char *p = colon + 1; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0' || p[2] == ','))
            return true;
    }
    return false;
}

/* Rejects volume ids that would reach outside their storage's folder. */
static int check_volume_paths(const char *key, const char *value, struct qm_error *err)
{
    struct qm_propstr ps = { 0 };
    const char *volid = NULL;
    bool drive = qm_is_drive_key(key);

    if (drive || qm_str_starts(key, "unused") || strcmp(key, "hookscript") == 0 ||
        strcmp(key, "cicustom") == 0 || strcmp(key, "vmstatestorage") == 0) {
        if (drive && qm_propstr_parse(key, value, &ps, NULL) == 0)
            volid = qm_propstr_get(&ps, "file");
        /* cicustom lists several volumes; each is checked as part of the value. */
        bool bad = volid ? volume_leaves_storage(volid) : volume_leaves_storage(value) ||
                                                          strstr(value, "/../") != NULL;
        qm_propstr_free(&ps);
        if (bad)
            return qm_fail(err, 400, "%s: invalid path component in volume name", key);
    }
    return 0;
}

/* Custom firmware needs both images: code= without vars= cannot boot. */
static int check_custom_ovmf(const char *value, struct qm_error *err)
{
    struct qm_propstr ps = { 0 };

    if (qm_propstr_parse("bios", value, &ps, err) < 0)
        return -1;
    bool code = qm_propstr_get(&ps, "code") != NULL;
    bool vars = qm_propstr_get(&ps, "vars") != NULL;
    qm_propstr_free(&ps);
    if (code != vars)
        return qm_fail(err, 400,
                       "bios: Custom OVMF requires both 'code' and 'vars' to be specified");
    return 0;
}

int qm_conf_check_property(const char *key, const char *value, struct qm_error *err)
{
    const struct qm_schema_key *prop = qm_schema_lookup(key);
    if (!prop)
        return qm_fail(err, 400,
                       "%s: property is not defined in schema and the schema does not allow "
                       "additional properties",
                       key);
    if (strpbrk(value, "\r\n") && strcmp(key, "description") != 0)
        return qm_fail(err, 400, "%s: property contains a line feed", key);

    struct strbuf reason = { 0 };
    bool ok = qm_schema_check_value(prop, value, &reason);
    if (!ok)
        qm_fail(err, 400, "%s: %s", key, reason.buf);
    sb_free(&reason);
    if (!ok || check_volume_paths(key, value, err) < 0)
        return -1;
    if (strcmp(key, "bios") == 0)
        return check_custom_ovmf(value, err);
    return 0;
}

/* The configuration model: sections, entries, load and store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/sha1.h>

#include "conf-internal.h"

void qm_conf_section_clear(struct qm_conf_section *section)
{
    for (size_t i = 0; i < section->n; i++) {
        free(section->entries[i].key);
        free(section->entries[i].value);
    }
    free(section->entries);
    section->entries = NULL;
    section->n = 0;
    section->cap = 0;
}

static void section_free(struct qm_conf_section *section)
{
    if (!section)
        return;
    qm_conf_section_clear(section);
    free(section->name);
    section->name = NULL;
}

struct qm_conf *qm_conf_new(int vmid)
{
    struct qm_conf *conf = qm_calloc(1, sizeof(*conf));
    conf->vmid = vmid;
    return conf;
}

void qm_conf_free(struct qm_conf *conf)
{
    if (!conf)
        return;
    section_free(&conf->main);
    section_free(conf->pending);
    free(conf->pending);
    section_free(conf->cloudinit);
    free(conf->cloudinit);
    section_free(conf->fleecing);
    free(conf->fleecing);
    for (size_t i = 0; i < conf->nsnapshots; i++)
        section_free(&conf->snapshots[i]);
    free(conf->snapshots);
    free(conf);
}

const char *qm_conf_get(const struct qm_conf_section *section, const char *key)
{
    if (!section)
        return NULL;
    for (size_t i = 0; i < section->n; i++) {
        if (strcmp(section->entries[i].key, key) == 0)
            return section->entries[i].value;
    }
    return NULL;
}

void qm_conf_set(struct qm_conf_section *section, const char *key, const char *value)
{
    for (size_t i = 0; i < section->n; i++) {
        if (strcmp(section->entries[i].key, key) == 0) {
            char *copy = qm_strdup(value);
            free(section->entries[i].value);
            section->entries[i].value = copy;
            return;
        }
    }
    if (section->n == section->cap) {
        section->cap = section->cap ? section->cap * 2 : 16;
        section->entries = qm_realloc(section->entries, section->cap * sizeof(*section->entries));
    }
    section->entries[section->n].key = qm_strdup(key);
    section->entries[section->n].value = qm_strdup(value);
    section->n++;
}

bool qm_conf_unset(struct qm_conf_section *section, const char *key)
{
    if (!section)
        return false;
    for (size_t i = 0; i < section->n; i++) {
        if (strcmp(section->entries[i].key, key) == 0) {
            free(section->entries[i].key);
            free(section->entries[i].value);
            memmove(&section->entries[i], &section->entries[i + 1],
                    (section->n - i - 1) * sizeof(*section->entries));
            section->n--;
            return true;
        }
    }
    return false;
}

struct qm_conf_section *qm_conf_pending(struct qm_conf *conf)
{
    if (!conf->pending) {
        conf->pending = qm_calloc(1, sizeof(*conf->pending));
        conf->pending->name = qm_strdup("PENDING");
    }
    return conf->pending;
}

struct qm_conf_section *qm_conf_snapshot(const struct qm_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->nsnapshots; i++) {
        if (strcmp(conf->snapshots[i].name, name) == 0)
            return &conf->snapshots[i];
    }
    return NULL;
}

struct qm_conf_section *qm_conf_snapshot_add(struct qm_conf *conf, const char *name)
{
    struct qm_conf_section *existing = qm_conf_snapshot(conf, name);
    if (existing) {
        qm_conf_section_clear(existing);
        return existing;
    }
    conf->snapshots = qm_realloc(conf->snapshots, (conf->nsnapshots + 1) * sizeof(*conf->snapshots));
    struct qm_conf_section *section = &conf->snapshots[conf->nsnapshots++];
    memset(section, 0, sizeof(*section));
    section->name = qm_strdup(name);
    return section;
}

bool qm_conf_snapshot_remove(struct qm_conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->nsnapshots; i++) {
        if (strcmp(conf->snapshots[i].name, name) == 0) {
            section_free(&conf->snapshots[i]);
            memmove(&conf->snapshots[i], &conf->snapshots[i + 1],
                    (conf->nsnapshots - i - 1) * sizeof(*conf->snapshots));
            conf->nsnapshots--;
            return true;
        }
    }
    return false;
}

void qm_conf_digest(const char *data, size_t len, char out[41])
{
    unsigned char sum[20];
    mbedtls_sha1_ret((const unsigned char *)data, len, sum);
    for (size_t i = 0; i < sizeof(sum); i++)
        snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

bool qm_conf_drive_is_cloudinit(const char *file)
{
    /* A volume named [vm-N-]cloudinit[.FORMAT] after a ':' or '/'. */
    return qm_regex_match("[:/](vm-[0-9]+-)?cloudinit(\\.(raw|qcow|qcow2|qed|vmdk|cloop))?$", file);
}

bool qm_conf_has_cloudinit(const struct qm_conf_section *section)
{
    for (size_t i = 0; i < section->n; i++) {
        if (!qm_is_drive_key(section->entries[i].key))
            continue;
        struct qm_propstr drive;
        if (qm_propstr_parse(section->entries[i].key, section->entries[i].value, &drive, NULL) < 0)
            continue;
        const char *file = qm_propstr_get(&drive, "file");
        bool found = file && qm_conf_drive_is_cloudinit(file);
        qm_propstr_free(&drive);
        if (found)
            return true;
    }
    return false;
}

char *qm_conf_path(const struct qm_paths *paths, int vmid)
{
    return qm_sprintf("%s/%d.conf", paths->conf_dir, vmid);
}

int qm_conf_load(const struct qm_paths *paths, int vmid, struct qm_conf **out,
                 struct qm_error *err)
{
    char *path = qm_conf_path(paths, vmid);
    struct stat st;
    if (stat(path, &st) < 0 && errno == ENOENT) {
        qm_fail(err, 404, "configuration file '%s' does not exist", path);
        free(path);
        return -1;
    }

    char *data = NULL;
    size_t len = 0;
    if (qm_read_file(path, &data, &len, err) < 0) {
        free(path);
        return -1;
    }

    struct strvec warnings = { 0 };
    int rc = qm_conf_parse(data, len, path, false, out, &warnings, err);
    for (size_t i = 0; i < warnings.n; i++)
        qm_log(QM_LOG_WARNING, vmid, "%s", warnings.v[i]);
    sv_free(&warnings);
    free(data);
    free(path);
    return rc;
}

int qm_conf_store(const struct qm_paths *paths, const struct qm_conf *conf,
                  struct qm_error *err)
{
    if (qm_conf_get(&conf->main, "cdrom") && qm_conf_get(&conf->main, "ide2"))
        return qm_fail(err, 400, "option ide2 conflicts with cdrom");

    char *text = qm_conf_format(conf);
    char *path = qm_conf_path(paths, conf->vmid);
    int rc = qm_write_file_atomic(path, text, strlen(text), 0640, err);
    free(path);
    free(text);
    return rc;
}

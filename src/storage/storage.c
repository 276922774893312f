/* storage.cfg parsing and volume id resolution. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qm/storage.h"

struct storage_type {
    const char *name;
    unsigned default_content;
    bool file_based;    /* volumes are files under a base folder */
};

static const struct storage_type storage_types[] = {
    {"dir", QM_CONTENT_IMAGES | QM_CONTENT_ROOTDIR, true},
    {"btrfs", QM_CONTENT_IMAGES | QM_CONTENT_ROOTDIR, true},
    {"nfs", QM_CONTENT_IMAGES, true},
    {"cifs", QM_CONTENT_IMAGES, true},
    {"lvm", QM_CONTENT_IMAGES | QM_CONTENT_ROOTDIR, false},
    {"lvmthin", QM_CONTENT_IMAGES | QM_CONTENT_ROOTDIR, false},
    {"rbd", QM_CONTENT_IMAGES, false},
    {"zfspool", QM_CONTENT_IMAGES | QM_CONTENT_ROOTDIR, false},
    {"zfs", QM_CONTENT_IMAGES, false},
    {"iscsi", QM_CONTENT_IMAGES, false},
};

static const struct {
    const char *name;
    unsigned bit;
} content_names[] = {
    {"images", QM_CONTENT_IMAGES}, {"rootdir", QM_CONTENT_ROOTDIR},
    {"iso", QM_CONTENT_ISO},       {"vztmpl", QM_CONTENT_VZTMPL},
    {"backup", QM_CONTENT_BACKUP}, {"snippets", QM_CONTENT_SNIPPETS},
    {"import", QM_CONTENT_IMPORT},
};

static const struct storage_type *find_type(const char *name)
{
    for (size_t i = 0; i < QM_ARRAY_SIZE(storage_types); i++)
        if (strcmp(storage_types[i].name, name) == 0)
            return &storage_types[i];
    return NULL;
}

unsigned qm_content_from_name(const char *name)
{
    for (size_t i = 0; i < QM_ARRAY_SIZE(content_names); i++)
        if (strcmp(content_names[i].name, name) == 0)
            return content_names[i].bit;
    return 0;
}

const char *qm_content_name(unsigned content)
{
    for (size_t i = 0; i < QM_ARRAY_SIZE(content_names); i++)
        if (content_names[i].bit == content)
            return content_names[i].name;
    return "unknown";
}

const struct qm_storage *qm_storage_find(const struct qm_storage_cfg *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->storages[i].id, id) == 0)
            return &cfg->storages[i];
    return NULL;
}

const char *qm_storage_get(const struct qm_storage *storage, const char *key)
{
    for (size_t i = 0; i < storage->keys.n; i++)
        if (strcmp(storage->keys.v[i], key) == 0)
            return storage->values.v[i];
    return NULL;
}

bool qm_storage_flag(const struct qm_storage *storage, const char *key)
{
    const char *v = qm_storage_get(storage, key);

    if (!v)
        return false;
    return strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0 ||
           strcasecmp(v, "true") == 0;
}

static int parse_content_list(const char *value, unsigned *out, int lineno, struct qm_error *err)
{
    char *copy = qm_strdup(value);
    char *save = NULL;
    unsigned bits = 0;

    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        unsigned bit = qm_content_from_name(tok);
        if (bit == 0 && strcmp(tok, "none") != 0) {
            qm_fail(err, 400, "storage.cfg line %d: invalid content type '%s'", lineno, tok);
            free(copy);
            return -1;
        }
        bits |= bit;
    }
    free(copy);
    *out = bits;
    return 0;
}

/* Fills in what the properties imply once a section is complete. */
static int finish_storage(struct qm_storage *s, struct qm_error *err)
{
    const struct storage_type *type = find_type(s->type);
    const char *content = qm_storage_get(s, "content");
    const char *path = qm_storage_get(s, "path");

    s->content = type->default_content;
    if (content && parse_content_list(content, &s->content, 0, err) < 0)
        return -1;
    if (path)
        s->path = qm_strdup(path);
    else if (strcmp(s->type, "nfs") == 0 || strcmp(s->type, "cifs") == 0)
        s->path = qm_sprintf("/mnt/pve/%s", s->id);
    else if (type->file_based)
        return qm_fail(err, 400, "storage '%s': missing property 'path'", s->id);
    return 0;
}

static bool valid_storage_id(const char *id)
{
    if (!isalpha((unsigned char)id[0]))
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

int qm_storage_cfg_parse(const char *text, struct qm_storage_cfg *cfg, struct qm_error *err)
{
    char *copy = qm_strdup(text);
    char *save = NULL;
    struct qm_storage *cur = NULL;
    int lineno = 0;
    int rc = 0;

    memset(cfg, 0, sizeof(*cfg));
    /* strtok_r drops empty lines, which is fine: a section ends at the next header. */
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\r' || isspace((unsigned char)line[len - 1])))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;

        if (!isspace((unsigned char)line[0])) {
            char *colon = strchr(line, ':');
            if (!colon) {
                rc = qm_fail(err, 400, "storage.cfg line %d: invalid section header '%s'",
                             lineno, line);
                break;
            }
            *colon = '\0';
            char *type = qm_str_trim(line);
            char *id = qm_str_trim(colon + 1);
            if (!find_type(type)) {
                rc = qm_fail(err, 400, "storage.cfg line %d: unsupported storage type '%s'",
                             lineno, type);
                break;
            }
            if (!valid_storage_id(id)) {
                rc = qm_fail(err, 400, "storage.cfg line %d: invalid storage id '%s'", lineno,
                             id);
                break;
            }
            if (qm_storage_find(cfg, id)) {
                rc = qm_fail(err, 400, "storage.cfg line %d: duplicate storage id '%s'", lineno,
                             id);
                break;
            }
            if (cur && finish_storage(cur, err) < 0) {
                rc = -1;
                break;
            }
            cfg->storages = qm_realloc(cfg->storages, (cfg->n + 1) * sizeof(*cfg->storages));
            cur = &cfg->storages[cfg->n++];
            memset(cur, 0, sizeof(*cur));
            cur->type = qm_strdup(type);
            cur->id = qm_strdup(id);
            continue;
        }

        if (!cur) {
            rc = qm_fail(err, 400, "storage.cfg line %d: property outside of a section",
                         lineno);
            break;
        }
        char *key = qm_str_trim(line);
        char *value = key;
        while (*value && !isspace((unsigned char)*value))
            value++;
        if (*value)
            *value++ = '\0';
        value = qm_str_trim(value);
        if (strcmp(key, "content") == 0) {
            unsigned bits;
            if (parse_content_list(value, &bits, lineno, err) < 0) {
                rc = -1;
                break;
            }
        }
        sv_push(&cur->keys, key);
        sv_push(&cur->values, value);
    }
    if (rc == 0 && cur && finish_storage(cur, err) < 0)
        rc = -1;
    free(copy);
    if (rc < 0)
        qm_storage_cfg_free(cfg);
    return rc;
}

/* The configuration Proxmox VE writes on a fresh node. */
static const char default_storage_cfg[] =
    "dir: local\n"
    "\tpath /var/lib/vz\n"
    "\tcontent images,rootdir,iso,vztmpl,backup,snippets,import\n";

int qm_storage_cfg_load(const char *path, struct qm_storage_cfg *cfg, struct qm_error *err)
{
    char *data = NULL;
    size_t len = 0;
    struct qm_error read_err = {0};

    if (qm_read_file(path, &data, &len, &read_err) < 0) {
        if (read_err.code == 404)
            return qm_storage_cfg_parse(default_storage_cfg, cfg, err);
        if (err)
            *err = read_err;
        return -1;
    }
    int rc = qm_storage_cfg_parse(data, cfg, err);
    free(data);
    return rc;
}

void qm_storage_cfg_free(struct qm_storage_cfg *cfg)
{
    for (size_t i = 0; i < cfg->n; i++) {
        struct qm_storage *s = &cfg->storages[i];
        free(s->type);
        free(s->id);
        free(s->path);
        sv_free(&s->keys);
        sv_free(&s->values);
    }
    free(cfg->storages);
    cfg->storages = NULL;
    cfg->n = 0;
}

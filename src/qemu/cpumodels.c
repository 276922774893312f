/*
 * Custom CPU models (Proxmox VE's /etc/pve/virtual-guest/cpu-models.conf):
 *
 *   cpu-model: NAME
 *       reported-model athlon
 *       flags +aes;-kvm_pv_unhalt
 *
 * A VM uses one as "cpu: custom-NAME".
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qm/qemu.h"

static const char *const model_keys[] = {
    "reported-model", "flags", "hv-vendor-id", "phys-bits", "guest-phys-bits",
    "hidden", "level", "description", "digest",
};

static bool known_key(const char *key)
{
    for (size_t i = 0; i < QM_ARRAY_SIZE(model_keys); i++)
        if (strcmp(model_keys[i], key) == 0)
            return true;
    return false;
}

void qm_cpu_models_free(struct qm_cpu_models *models)
{
    for (size_t i = 0; i < models->n; i++) {
        free(models->v[i].name);
        qm_propstr_free(&models->v[i].props);
    }
    free(models->v);
    memset(models, 0, sizeof(*models));
}

int qm_cpu_models_parse(const char *text, struct qm_cpu_models *models, struct qm_error *err)
{
    char *copy = qm_strdup(text);
    char *save = NULL;
    struct qm_cpu_model *current = NULL;
    int lineno = 0;

    memset(models, 0, sizeof(*models));
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        bool indented = isspace((unsigned char)line[0]);
        char *t = qm_str_trim(line);
        if (*t == '\0' || *t == '#')
            continue;
        if (!indented) {
            if (!qm_str_starts(t, "cpu-model:")) {
                free(copy);
                qm_cpu_models_free(models);
                return qm_fail(err, 400, "cpu-models.conf line %d: expected 'cpu-model: NAME'",
                               lineno);
            }
            models->v = qm_realloc(models->v, (models->n + 1) * sizeof(*models->v));
            current = &models->v[models->n++];
            memset(current, 0, sizeof(*current));
            current->name = qm_strdup(qm_str_trim(t + strlen("cpu-model:")));
            continue;
        }
        if (!current) {
            free(copy);
            qm_cpu_models_free(models);
            return qm_fail(err, 400, "cpu-models.conf line %d: property outside a cpu-model",
                           lineno);
        }
        size_t klen = strcspn(t, " \t");
        char *key = qm_strndup(t, klen);
        const char *value = qm_str_trim(t + klen);
        if (!known_key(key)) {
            int rc = qm_fail(err, 400, "cpu-models.conf line %d: unknown property '%s'", lineno,
                             key);
            free(key);
            free(copy);
            qm_cpu_models_free(models);
            return rc;
        }
        qm_propstr_set(&current->props, key, value);
        free(key);
    }
    free(copy);
    return 0;
}

int qm_cpu_models_load(const char *path, struct qm_cpu_models *models, struct qm_error *err)
{
    char *text = NULL;
    struct qm_error rerr = {0};

    memset(models, 0, sizeof(*models));
    if (qm_read_file(path, &text, NULL, &rerr) < 0) {
        if (rerr.code == 404 || errno == ENOENT)
            return 0;
        return qm_fail(err, rerr.code ? rerr.code : 500, "%s", rerr.msg);
    }
    int rc = qm_cpu_models_parse(text, models, err);
    free(text);
    return rc;
}

const struct qm_cpu_model *qm_cpu_models_find(const struct qm_cpu_models *models,
                                              const char *name)
{
    if (!models)
        return NULL;
    for (size_t i = 0; i < models->n; i++)
        if (strcmp(models->v[i].name, name) == 0)
            return &models->v[i];
    return NULL;
}

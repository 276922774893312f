/*
 * Custom firmware and QEMU binaries: "bios: ovmf,code=...,vars=..." and
 * "qemu_binary_ARCH: FILE[,validate=0]". Each file is an absolute path or a
 * volume of a file-based storage ("local:firmware/OVMF_CODE_4M.fd").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gen.h"

static char *resolve_spec(const struct gen *g, const char *spec)
{
    return g->in->storage ? qm_storage_file_path(g->in->storage, spec)
                          : spec[0] == '/' ? qm_strdup(spec) : NULL;
}

int gen_parse_bios(struct gen *g)
{
    const char *bios = gen_get(g, "bios");
    struct qm_propstr ps = {0};

    g->ovmf = false;
    if (!bios)
        return 0;
    if (qm_propstr_parse("bios", bios, &ps, g->err) < 0)
        return -1;
    const char *type = qm_propstr_get(&ps, "type");
    const char *code = qm_propstr_get(&ps, "code");
    const char *vars = qm_propstr_get(&ps, "vars");
    int rc = 0;

    g->ovmf = type && strcmp(type, "ovmf") == 0;
    if (!code && !vars)
        goto out;
    if (!code || !vars) {
        rc = qm_fail(g->err, 400, "Custom OVMF requires both 'code' and 'vars' to be specified");
        goto out;
    }
    const char *specs[2] = {code, vars};
    const char *names[2] = {"OVMF_code", "OVMF_vars"};
    char **paths[2] = {&g->ovmf_code, &g->ovmf_vars};
    for (int i = 0; i < 2; i++) {
        char *path = resolve_spec(g, specs[i]);
        if (!path) {
            rc = qm_fail(g->err, 400, "Invalid %s storage path '%s'", names[i], specs[i]);
            goto out;
        }
        if (gen_host_file_size(g->in->host, path) < 0) {
            rc = qm_fail(g->err, 400, "%s file does not exist at '%s'", names[i], path);
            free(path);
            goto out;
        }
        *paths[i] = path;
    }
out:
    qm_propstr_free(&ps);
    return rc;
}

int gen_qemu_binary(struct gen *g, char **binary)
{
    char key[64];
    struct qm_propstr ps = {0};
    struct stat st;

    *binary = NULL;
    snprintf(key, sizeof(key), "qemu_binary_%s", g->arch);
    const char *value = gen_get(g, key);
    if (!value)
        return 0;
    if (qm_propstr_parse(key, value, &ps, g->err) < 0)
        return -1;
    const char *file = qm_propstr_get(&ps, "file");
    const char *validate = qm_propstr_get(&ps, "validate");
    char *path = file ? resolve_spec(g, file) : NULL;
    int rc = 0;

    if (!path) {
        rc = qm_fail(g->err, 400, "Invalid QEMU binary storage path '%s'", file ? file : "");
    } else if (!validate || strcmp(validate, "0") != 0) {
        /* The binary runs on this host, so its own file system is checked, never a profile. */
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            rc = qm_fail(g->err, 400, "QEMU binary does not exist at '%s'", path);
        else if (access(path, X_OK) < 0)
            rc = qm_fail(g->err, 400, "QEMU binary is not executable at '%s'", path);
    }
    qm_propstr_free(&ps);
    if (rc < 0) {
        free(path);
        return -1;
    }
    *binary = path;
    return 0;
}

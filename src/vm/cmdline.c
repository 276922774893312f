/* The command line of a VM from the node's files: storage.cfg and cpu-models.conf. */
#include <stdlib.h>

#include "qm/qemu.h"
#include "qm/storage.h"
#include "qm/vm.h"

int qm_vm_build_cmdline(const struct qm_paths *paths, const struct qm_host *host,
                        const struct qm_qemu_caps *caps, const struct qm_conf *conf,
                        struct strvec *argv, struct strvec *warnings, struct qm_error *err)
{
    struct qm_storage_cfg storage = {0};
    struct qm_cpu_models models = {0};
    char *models_path = qm_sprintf("%s/virtual-guest/cpu-models.conf", paths->etc);
    int r = -1;

    if (qm_storage_cfg_load(paths->storage_cfg, &storage, err) < 0 ||
        qm_cpu_models_load(models_path, &models, err) < 0)
        goto out;
    struct qm_cmdline_input in = {
        .vmid = conf->vmid,
        .conf = conf,
        .storage = &storage,
        .host = host,
        .caps = caps,
        .paths = paths,
        .cpu_models = &models,
        /* NOTE: no backing chains: snapshot-as-volume-chain storages cannot be operated here. */
        .volume_chain = NULL,
    };
    r = qm_qemu_cmdline(&in, argv, warnings, err);
out:
    qm_cpu_models_free(&models);
    qm_storage_cfg_free(&storage);
    free(models_path);
    return r;
}

/*
 * libFuzzer target: parses the input as a VM configuration and generates its
 * QEMU command line. The first input byte picks the host and QEMU variant
 * (architecture, CPU vendor, Proxmox or upstream build, QEMU version), so the
 * version-dependent branches are reached too. Build and run with test/fuzz/run.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qm/config.h"
#include "qm/qemu.h"
#include "qm/storage.h"

static const char storage_text[] =
    "dir: local\n\tpath /var/lib/vz\n\tcontent images,iso,vztmpl,snippets\n\n"
    "dir: localsnapext\n\tpath /var/lib/vzsnapext\n\tcontent images\n"
    "\tsnapshot-as-volume-chain 1\n\n"
    "lvm: lvm-store\n\tvgname veegee\n\tcontent images\n\n"
    "lvmthin: local-lvm\n\tvgname pve\n\tthinpool data\n\tcontent images\n\n"
    "rbd: rbd-store\n\tmonhost 127.0.0.42 127.0.0.21\n\tpool cpool\n\tcontent images\n"
    "\tkrbd 0\n";

static const char cpu_models_text[] =
    "cpu-model: qemu64\n    reported-model athlon\n    flags +aes;+avx;-kvm_pv_unhalt\n"
    "    hv-vendor-id testvend\n    phys-bits 40\n\ncpu-model: alldefault\n";

static const char *const versions[] = {"6.0.0", "7.2.0", "9.2.0", "10.1.0", "11.0.0"};

static struct qm_storage_cfg storage;
static struct qm_cpu_models cpu_models;
static struct qm_paths paths;

static int fuzz_volume_chain(const char *volid, const char *path, struct strvec *names,
                             struct strvec *files, struct qm_error *err)
{
    (void)volid;
    (void)err;
    sv_push(names, "snap1");
    sv_pushf(files, "%s.snap1", path);
    return 0;
}

static void fuzz_host(struct qm_host *host, uint8_t variant)
{
    qm_host_default(host);
    if (variant & 1) {
        free(host->arch);
        host->arch = qm_strdup("aarch64");
    }
    if (variant & 2) {
        free(host->cpu_vendor);
        host->cpu_vendor = qm_strdup("AuthenticAMD");
        host->sev = host->sev_es = host->sev_snp = true;
        host->sev_cbitpos = 51;
        host->sev_reduced_phys_bits = 6;
    }
    host->numa_nodes = 4;
    host->iscsi_initiator = qm_strdup("iqn.1993-08.org.debian:01:fuzz");
    qm_host_add_pci(host, "0000:00:ff.1", "8086", "1520", 2, false);
    qm_host_add_pci(host, "0000:f0:43.0", "10de", "2231", 1, true);
    qm_host_add_pci(host, "0000:f0:43.1", "10de", "2231", 1, true);
    host->pci_mappings = qm_calloc(1, sizeof(*host->pci_mappings));
    host->npci_mappings = 1;
    host->pci_mappings[0].name = qm_strdup("someGpu");
    host->pci_mappings[0].id = qm_strdup("10de:2231");
    host->pci_mappings[0].iommu_group = 1;
    sv_push(&host->pci_mappings[0].paths, "0000:f0:43.0;0000:f0:43.1");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct qm_error err = {0};

    (void)argc;
    (void)argv;
    if (qm_storage_cfg_parse(storage_text, &storage, &err) < 0 ||
        qm_cpu_models_parse(cpu_models_text, &cpu_models, &err) < 0)
        abort();
    qm_paths_init(&paths, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t variant = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct qm_error err = {0};
    struct qm_conf *conf = NULL;

    /* The parser reads text of a given length; keep a NUL-terminated copy for safety. */
    char *copy = qm_strndup(text, len);
    if (qm_conf_parse(copy, strlen(copy), "8006.conf", false, &conf, NULL, &err) < 0) {
        free(copy);
        return 0;
    }

    struct qm_host host;
    struct qm_qemu_caps caps;
    fuzz_host(&host, variant);
    const char *version = versions[(variant >> 2) % QM_ARRAY_SIZE(versions)];
    bool pve = (variant & 0x80) == 0;
    if (qm_qemu_caps_from_version("/usr/bin/kvm", version, pve, &caps, &err) == 0) {
        struct qm_cmdline_input in = {
            .vmid = 8006, .conf = conf, .storage = &storage, .host = &host, .caps = &caps,
            .paths = &paths, .cpu_models = &cpu_models, .volume_chain = fuzz_volume_chain,
        };
        struct strvec argv = {0};
        struct strvec warnings = {0};
        if (qm_qemu_cmdline(&in, &argv, &warnings, &err) == 0) {
            char *pretty = qm_qemu_cmdline_pretty(&argv);
            free(pretty);
        }
        sv_free(&argv);
        sv_free(&warnings);
        qm_qemu_caps_free(&caps);
    }
    qm_host_free(&host);
    qm_conf_free(conf);
    free(copy);
    return 0;
}

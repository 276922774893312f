/*
 * The QEMU side of a VM: what the installed binary supports, what the host
 * offers, and the command line generated from a configuration.
 */
#ifndef QM_QEMU_H
#define QM_QEMU_H

#include <stdbool.h>

#include "qm/config.h"
#include "qm/storage.h"
#include "qm/util.h"

/* Capabilities of the installed QEMU binary. */
struct qm_qemu_caps {
    char *binary;            /* the program to run, e.g. /usr/bin/kvm */
    int major, minor, micro;
    bool pve_build;          /* a Proxmox build: machine types accept "+pveN" */
    struct strvec machines;  /* machine type names from "-machine help" */
    char *default_machine;   /* the one marked "(default)", e.g. pc-i440fx-7.2 */
};

/*
 * Probes binary (NULL: /usr/bin/kvm when it exists, else qemu-system-x86_64
 * from PATH) by running "--version" and "-machine help". It spawns two short
 * processes, so call it once at start and keep the result.
 */
int qm_qemu_caps_probe(const char *binary, struct qm_qemu_caps *caps, struct qm_error *err);
/* Fills caps from the output of "--version" and "-machine help" (which may be NULL). */
int qm_qemu_caps_parse(const char *binary, const char *version_output,
                       const char *machine_help, struct qm_qemu_caps *caps,
                       struct qm_error *err);
/* Fills caps for a given version, e.g. "11.0.0", without probing a binary. */
int qm_qemu_caps_from_version(const char *binary, const char *version, bool pve_build,
                              struct qm_qemu_caps *caps, struct qm_error *err);
void qm_qemu_caps_free(struct qm_qemu_caps *caps);
bool qm_qemu_caps_has_machine(const struct qm_qemu_caps *caps, const char *name);

/* A PCI function of the host, as listed under /sys/bus/pci/devices. */
struct qm_host_pci {
    char *id;                /* full address: 0000:01:00.4 */
    char *vendor;            /* "10de", without 0x */
    char *device;            /* "2231" */
    int iommu_group;         /* -1 when the device has no IOMMU group */
    bool mdev;               /* supports mediated devices (mdev_supported_types) */
};

/* A cluster-wide PCI resource mapping (/etc/pve/mapping/pci.cfg), for this node only. */
struct qm_pci_mapping {
    char *name;              /* the mapping id, e.g. someGpu */
    char *id;                /* expected vendor:device, e.g. 10de:2231, or NULL */
    int iommu_group;         /* expected IOMMU group, or -1 */
    bool mdev;               /* mediated devices may be created */
    bool live_migration;     /* live-migration-capable */
    struct strvec paths;     /* alternatives, each "ADDR" or "ADDR;ADDR" for multifunction */
};

/* A network bridge and its MTU. */
struct qm_host_bridge {
    char *name;
    int mtu;
};

/* The host profile: the resources and features a VM can use. */
struct qm_host {
    char *arch;              /* x86_64, aarch64 */
    char *cpu_vendor;        /* GenuineIntel, AuthenticAMD, ... */
    int cpus;                /* online logical CPUs */
    int phys_bits;           /* physical address width, 0 when unknown */
    bool kvm;                /* KVM can run guests (see qm_host_probe) */
    bool vhost_net;          /* /dev/vhost-net exists */
    char *iscsi_initiator;   /* InitiatorName from /etc/iscsi/initiatorname.iscsi, or NULL */
    char *cdrom;             /* the host CD-ROM drive (/dev/cdrom), or NULL */

    /*
     * With live_sysfs set (qm_host_probe), PCI devices and bridge MTUs are
     * read from /sys at each generation, because they change while the
     * daemon runs. Without it, the lists below are used.
     */
    bool live_sysfs;
    struct qm_host_pci *pci;
    size_t npci;
    struct qm_host_bridge *bridges;   /* bridges not listed have MTU 1500 */
    size_t nbridges;
    struct qm_pci_mapping *pci_mappings;
    size_t npci_mappings;

    bool hugepages_2m;       /* /sys/kernel/mm/hugepages/hugepages-2048kB exists */
    bool hugepages_1g;       /* /sys/kernel/mm/hugepages/hugepages-1048576kB exists */
    int numa_nodes;          /* host NUMA nodes 0 .. numa_nodes-1 exist */

    /* AMD SEV support of the host (kvm_amd parameters and CPUID 0x8000001F). */
    bool sev, sev_es, sev_snp;
    int sev_cbitpos;
    int sev_reduced_phys_bits;

    /* Firmware images that exist, with their sizes; NULL: stat() the real files. */
    long long (*file_size)(const char *path);
};

/*
 * Probes the running host. kvm is true only when /dev/kvm opens read-write,
 * /proc/cpuinfo has the vmx or svm flag and /sys/module/kvm_intel or
 * /sys/module/kvm_amd exists.
 */
void qm_host_probe(struct qm_host *host);
/*
 * Fills a host with fixed values: x86_64, GenuineIntel, KVM usable, 46 address
 * bits, 2M and 1G huge pages, one NUMA node, no PCI devices, no SEV.
 */
void qm_host_default(struct qm_host *host);
void qm_host_free(struct qm_host *host);
/*
 * Returns the size of a firmware image of Proxmox VE's pve-edk2-firmware by
 * its file name (VARS 4M: 528 KiB, VARS: 128 KiB, AAVMF VARS: 64 MiB), or -1.
 * qm_host_default() uses it for host->file_size.
 */
long long qm_host_pve_firmware_size(const char *path);
/* Appends a PCI function to host->pci. */
void qm_host_add_pci(struct qm_host *host, const char *id, const char *vendor,
                     const char *device, int iommu_group, bool mdev);

/* A custom CPU model from /etc/pve/virtual-guest/cpu-models.conf. */
struct qm_cpu_model {
    char *name;              /* without the "custom-" prefix */
    struct qm_propstr props; /* reported-model, flags, hv-vendor-id, phys-bits, ... */
};

struct qm_cpu_models {
    struct qm_cpu_model *v;
    size_t n;
};

/*
 * Reads cpu-models.conf: "cpu-model: NAME" sections with indented
 * "KEY VALUE" lines. A missing file gives an empty list.
 */
int qm_cpu_models_load(const char *path, struct qm_cpu_models *models, struct qm_error *err);
int qm_cpu_models_parse(const char *text, struct qm_cpu_models *models, struct qm_error *err);
void qm_cpu_models_free(struct qm_cpu_models *models);
const struct qm_cpu_model *qm_cpu_models_find(const struct qm_cpu_models *models,
                                              const char *name);

struct qm_cmdline_input {
    int vmid;
    const struct qm_conf *conf;
    const struct qm_storage_cfg *storage;
    const struct qm_host *host;
    const struct qm_qemu_caps *caps;
    const struct qm_paths *paths;   /* run_dir and event_socket */
    const struct qm_cpu_models *cpu_models;   /* custom CPU models, or NULL for none */
    /*
     * Lists the snapshots below the current image of a qcow2 volume on a
     * storage with snapshot-as-volume-chain, nearest parent first: names
     * receives the snapshot names, files their image paths. NULL: the
     * command line has no backing chain, and QEMU opens the images named
     * in the qcow2 headers itself.
     */
    int (*volume_chain)(const char *volid, const char *path, struct strvec *names,
                        struct strvec *files, struct qm_error *err);
};

/*
 * The temporary EFI vars file of a VM without efidisk0
 * (ROOT/run/qemu-server/efidisk/VMID-ovmf.fd). The caller of qm_qemu_cmdline()
 * copies the OVMF vars template there before it starts QEMU. Caller frees.
 */
char *qm_qemu_efivars_temp_path(const struct qm_paths *paths, int vmid);

/*
 * Generates the QEMU command line for a VM, as Proxmox VE's qemu-server does
 * for a Proxmox build of QEMU, and without Proxmox-only options and machine
 * types for an upstream build. argv receives the program and its arguments;
 * warnings (may be NULL) receives one line per ignored or overridden setting.
 * A configuration that cannot run (unknown storage, missing KVM, invalid
 * values) is an error with err filled in.
 */
int qm_qemu_cmdline(const struct qm_cmdline_input *in, struct strvec *argv,
                    struct strvec *warnings, struct qm_error *err);

/* Quotes one argument for a POSIX shell the way Proxmox VE does; the caller frees it. */
char *qm_shell_quote(const char *arg);
/*
 * Formats argv like "qm showcmd --pretty": quoted arguments, a line break
 * before every " -" option, two spaces of indent and " \" at each line end.
 * The caller frees the result, which has no final newline.
 */
char *qm_qemu_cmdline_pretty(const struct strvec *argv);
/* Formats argv on one line, quoted like qm_qemu_cmdline_pretty(). */
char *qm_qemu_cmdline_string(const struct strvec *argv);

#endif

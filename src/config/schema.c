/*
 * The schema of {vmid}.conf, transcribed from Proxmox VE qemu-server 9.2.6:
 * every property, its type, range, enum, pattern or named format, and the
 * sub-keys of every property string. Patterns are POSIX extended regular
 * expressions written with their own anchors. The reference anchors the
 * parallelN pattern as /^A|B$/ without a group, so its table entry keeps
 * that split of the anchors on purpose.
 *
 * Beyond the reference, bios is a property string (ovmf/seabios plus the
 * code= and vars= firmware images) and qemu_binary_x86_64/_aarch64 name the
 * QEMU binary to run.
 */
#include <stdlib.h>
#include <string.h>

#include "schema.h"

static int validate_vm_cpu(const struct qm_propstr *ps, struct qm_error *err);
static int validate_bios(const struct qm_propstr *ps, struct qm_error *err);

static const char *const enum_agent_type[] = {
    "virtio", "isa", NULL,
};

static const char *const enum_amd_sev_type[] = {
    "std", "es", "snp", NULL,
};

static const char *const enum_audio0_device[] = {
    "ich9-intel-hda", "intel-hda", "AC97", NULL,
};

static const char *const enum_audio0_driver[] = {
    "spice", "none", NULL,
};

static const char *const enum_drive_aio[] = {
    "native", "threads", "io_uring", NULL,
};

static const char *const enum_drive_cache[] = {
    "none", "writethrough", "writeback", "unsafe", "directsync", NULL,
};

static const char *const enum_drive_discard[] = {
    "ignore", "on", NULL,
};

static const char *const enum_drive_format[] = {
    "raw", "qcow", "qed", "qcow2", "vmdk", "cloop", NULL,
};

static const char *const enum_drive_media[] = {
    "cdrom", "disk", NULL,
};

static const char *const enum_drive_rerror[] = {
    "ignore", "report", "stop", NULL,
};

static const char *const enum_drive_werror[] = {
    "enospc", "ignore", "report", "stop", NULL,
};

static const char *const enum_cpu_reported_model[] = {
    "486", "a64fx", "athlon", "Broadwell", "Broadwell-IBRS", "Broadwell-noTSX", "Broadwell-noTSX-IBRS", "Cascadelake-Server", "Cascadelake-Server-noTSX", "Cascadelake-Server-v2", "Cascadelake-Server-v4", "Cascadelake-Server-v5", "ClearwaterForest", "Conroe", "Cooperlake", "Cooperlake-v2", "core2duo", "coreduo", "cortex-a35", "cortex-a53", "cortex-a55", "cortex-a57", "cortex-a710", "cortex-a72", "cortex-a76", "EPYC", "EPYC-Genoa", "EPYC-Genoa-v2", "EPYC-IBPB", "EPYC-Milan", "EPYC-Milan-v2", "EPYC-Milan-v3", "EPYC-Rome", "EPYC-Rome-v2", "EPYC-Rome-v3", "EPYC-Rome-v4", "EPYC-Rome-v5", "EPYC-Turin", "EPYC-v3", "EPYC-v4", "EPYC-v5", "GraniteRapids", "GraniteRapids-v2", "GraniteRapids-v3", "Haswell", "Haswell-IBRS", "Haswell-noTSX", "Haswell-noTSX-IBRS", "host", "Icelake-Client", "Icelake-Client-noTSX", "Icelake-Server", "Icelake-Server-noTSX", "Icelake-Server-v3", "Icelake-Server-v4", "Icelake-Server-v5", "Icelake-Server-v6", "Icelake-Server-v7", "IvyBridge", "IvyBridge-IBRS", "KnightsMill", "kvm32", "kvm64", "max", "Nehalem", "Nehalem-IBRS", "neoverse-n1", "neoverse-n2", "neoverse-v1", "Opteron_G1", "Opteron_G2", "Opteron_G3", "Opteron_G4", "Opteron_G5", "Penryn", "pentium", "pentium2", "pentium3", "phenom", "qemu32", "qemu64", "SandyBridge", "SandyBridge-IBRS", "SapphireRapids", "SapphireRapids-v2", "SapphireRapids-v3", "SapphireRapids-v4", "SierraForest", "SierraForest-v2", "SierraForest-v3", "Skylake-Client", "Skylake-Client-IBRS", "Skylake-Client-noTSX-IBRS", "Skylake-Client-v4", "Skylake-Server", "Skylake-Server-IBRS", "Skylake-Server-noTSX-IBRS", "Skylake-Server-v4", "Skylake-Server-v5", "Westmere", "Westmere-IBRS", NULL,
};

static const char *const enum_efidisk0_efitype[] = {
    "2m", "4m", NULL,
};

static const char *const enum_efidisk0_ms_cert[] = {
    "2011", "2023", "2023w", "2023k", NULL,
};

static const char *const enum_hostpci_driver[] = {
    "vfio", "keep", NULL,
};

static const char *const enum_intel_tdx_type[] = {
    "tdx", NULL,
};

static const char *const enum_machine_viommu[] = {
    "intel", "virtio", NULL,
};

static const char *const enum_net_model[] = {
    "e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3", NULL,
};

static const char *const enum_numa_policy[] = {
    "preferred", "bind", "interleave", NULL,
};

static const char *const enum_rng0_source[] = {
    "/dev/urandom", "/dev/random", "/dev/hwrng", NULL,
};

static const char *const enum_spice_enhancements_videostreaming[] = {
    "off", "all", "filter", NULL,
};

static const char *const enum_tpmstate0_format[] = {
    "raw", "qcow2", "vmdk", NULL,
};

static const char *const enum_tpmstate0_version[] = {
    "v1.2", "v2.0", NULL,
};

static const char *const enum_vga_clipboard[] = {
    "vnc", NULL,
};

static const char *const enum_vga_type[] = {
    "cirrus", "qxl", "qxl2", "qxl3", "qxl4", "none", "serial0", "serial1", "serial2", "serial3", "std", "virtio", "virtio-gl", "vmware", NULL,
};

static const char *const enum_virtiofs_cache[] = {
    "auto", "always", "metadata", "never", NULL,
};

static const char *const enum_watchdog_action[] = {
    "reset", "shutdown", "poweroff", "pause", "debug", "none", NULL,
};

static const char *const enum_watchdog_model[] = {
    "i6300esb", "ib700", NULL,
};

static const char *const enum_arch[] = {
    "x86_64", "aarch64", NULL,
};

static const char *const enum_citype[] = {
    "configdrive2", "nocloud", "opennebula", NULL,
};

static const char *const enum_hugepages[] = {
    "any", "2", "1024", NULL,
};

static const char *const enum_keyboard[] = {
    "de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr", NULL,
};

static const char *const enum_lock[] = {
    "backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended", NULL,
};

static const char *const enum_ostype[] = {
    "other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris", NULL,
};

static const char *const enum_scsihw[] = {
    "lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi", NULL,
};

static const struct qm_schema_key format_agent_keys[] = {
    { .name = "enabled", .type = QM_TYPE_BOOLEAN, .required = true, .default_key = true, .default_value = "0" },
    { .name = "freeze-fs", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
    { .name = "freeze-fs-on-backup", .alias_of = "freeze-fs" },
    { .name = "fstrim_cloned_disks", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "guest-fsfreeze", .alias_of = "freeze-fs" },
    { .name = "type", .type = QM_TYPE_STRING, .enum_values = enum_agent_type, .default_value = "virtio" },
};

static const struct qm_propstr_format format_agent = {
    "agent", format_agent_keys, QM_ARRAY_SIZE(format_agent_keys), NULL,
};

static const struct qm_schema_key format_amd_sev_keys[] = {
    { .name = "allow-smt", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
    { .name = "kernel-hashes", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "no-debug", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "no-key-sharing", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "type", .type = QM_TYPE_STRING, .required = true, .default_key = true, .enum_values = enum_amd_sev_type, .max_length = 3 },
};

static const struct qm_propstr_format format_amd_sev = {
    "amd-sev", format_amd_sev_keys, QM_ARRAY_SIZE(format_amd_sev_keys), NULL,
};

static const struct qm_schema_key format_audio0_keys[] = {
    { .name = "device", .type = QM_TYPE_STRING, .required = true, .enum_values = enum_audio0_device },
    { .name = "driver", .type = QM_TYPE_STRING, .enum_values = enum_audio0_driver, .default_value = "spice" },
};

static const struct qm_propstr_format format_audio0 = {
    "audio0", format_audio0_keys, QM_ARRAY_SIZE(format_audio0_keys), NULL,
};

static const struct qm_schema_key format_boot_keys[] = {
    { .name = "legacy", .type = QM_TYPE_STRING, .default_key = true, .pattern = "^[acdn]{1,4}$", .default_value = "cdn" },
    { .name = "order", .type = QM_TYPE_STRING, .format = "pve-qm-bootdev-list" },
};

static const struct qm_propstr_format format_boot = {
    "boot", format_boot_keys, QM_ARRAY_SIZE(format_boot_keys), NULL,
};

static const struct qm_schema_key format_drive_ide_keys[] = {
    { .name = "aio", .type = QM_TYPE_STRING, .enum_values = enum_drive_aio },
    { .name = "backup", .type = QM_TYPE_BOOLEAN },
    { .name = "bps", .type = QM_TYPE_INTEGER },
    { .name = "bps_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_rd", .type = QM_TYPE_INTEGER },
    { .name = "bps_rd_length", .alias_of = "bps_rd_max_length" },
    { .name = "bps_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_wr", .type = QM_TYPE_INTEGER },
    { .name = "bps_wr_length", .alias_of = "bps_wr_max_length" },
    { .name = "bps_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "cache", .type = QM_TYPE_STRING, .enum_values = enum_drive_cache },
    { .name = "detect_zeroes", .type = QM_TYPE_BOOLEAN },
    { .name = "discard", .type = QM_TYPE_STRING, .enum_values = enum_drive_discard },
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id-or-qm-path" },
    { .name = "format", .type = QM_TYPE_STRING, .enum_values = enum_drive_format },
    { .name = "iops", .type = QM_TYPE_INTEGER },
    { .name = "iops_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_rd", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_length", .alias_of = "iops_rd_max_length" },
    { .name = "iops_rd_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_wr", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_length", .alias_of = "iops_wr_max_length" },
    { .name = "iops_wr_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "mbps", .type = QM_TYPE_NUMBER },
    { .name = "mbps_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr_max", .type = QM_TYPE_NUMBER },
    { .name = "media", .type = QM_TYPE_STRING, .enum_values = enum_drive_media, .default_value = "disk" },
    { .name = "model", .type = QM_TYPE_STRING, .format = "urlencoded", .max_length = 120 },
    { .name = "replicate", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
    { .name = "rerror", .type = QM_TYPE_STRING, .enum_values = enum_drive_rerror },
    { .name = "serial", .type = QM_TYPE_STRING, .format = "urlencoded", .max_length = 60 },
    { .name = "shared", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "size", .type = QM_TYPE_STRING, .format = "disk-size" },
    { .name = "snapshot", .type = QM_TYPE_BOOLEAN },
    { .name = "ssd", .type = QM_TYPE_BOOLEAN },
    { .name = "volume", .alias_of = "file" },
    { .name = "werror", .type = QM_TYPE_STRING, .enum_values = enum_drive_werror },
    { .name = "wwn", .type = QM_TYPE_STRING, .pattern = "^0x[0-9a-fA-F]{16}$" },
};

static const struct qm_propstr_format format_drive_ide = {
    "pve-qm-ide", format_drive_ide_keys, QM_ARRAY_SIZE(format_drive_ide_keys), NULL,
};

static const struct qm_schema_key format_cicustom_keys[] = {
    { .name = "meta", .type = QM_TYPE_STRING, .format = "pve-volume-id" },
    { .name = "network", .type = QM_TYPE_STRING, .format = "pve-volume-id" },
    { .name = "user", .type = QM_TYPE_STRING, .format = "pve-volume-id" },
    { .name = "vendor", .type = QM_TYPE_STRING, .format = "pve-volume-id" },
};

static const struct qm_propstr_format format_cicustom = {
    "cicustom", format_cicustom_keys, QM_ARRAY_SIZE(format_cicustom_keys), NULL,
};

static const struct qm_schema_key format_cpu_keys[] = {
    { .name = "cputype", .type = QM_TYPE_STRING, .default_key = true, .default_value = "kvm64" },
    { .name = "flags", .type = QM_TYPE_STRING, .pattern = "^[+-][a-zA-Z0-9_.-]+(;[+-][a-zA-Z0-9_.-]+)*$" },
    { .name = "guest-phys-bits", .type = QM_TYPE_INTEGER, .has_min = true, .min = 32, .has_max = true, .max = 64 },
    { .name = "hidden", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "hv-vendor-id", .type = QM_TYPE_STRING, .pattern = "^[a-zA-Z0-9]{1,12}$" },
    { .name = "level", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0, .has_max = true, .max = 4294967295 },
    { .name = "phys-bits", .type = QM_TYPE_STRING, .format = "pve-phys-bits" },
    { .name = "reported-model", .type = QM_TYPE_STRING, .enum_values = enum_cpu_reported_model, .default_value = "kvm64" },
};

static const struct qm_propstr_format format_cpu = {
    "cpu", format_cpu_keys, QM_ARRAY_SIZE(format_cpu_keys), validate_vm_cpu,
};

static const struct qm_schema_key format_efidisk0_keys[] = {
    { .name = "efitype", .type = QM_TYPE_STRING, .enum_values = enum_efidisk0_efitype, .default_value = "2m" },
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id-or-qm-path" },
    { .name = "format", .type = QM_TYPE_STRING, .enum_values = enum_drive_format },
    { .name = "ms-cert", .type = QM_TYPE_STRING, .enum_values = enum_efidisk0_ms_cert, .default_value = "2011" },
    { .name = "pre-enrolled-keys", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "size", .type = QM_TYPE_STRING, .format = "disk-size" },
    { .name = "volume", .alias_of = "file" },
};

static const struct qm_propstr_format format_efidisk0 = {
    "efidisk0", format_efidisk0_keys, QM_ARRAY_SIZE(format_efidisk0_keys), NULL,
};

static const struct qm_schema_key format_hostpci_keys[] = {
    { .name = "device-id", .type = QM_TYPE_STRING, .pattern = "^0x[0-9a-fA-F]{4}$" },
    { .name = "driver", .type = QM_TYPE_STRING, .enum_values = enum_hostpci_driver, .default_value = "vfio" },
    { .name = "host", .type = QM_TYPE_STRING, .default_key = true, .pattern = "^([a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(\\.[a-f0-9])?(;([a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(\\.[a-f0-9])?)*$" },
    { .name = "legacy-igd", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "mapping", .type = QM_TYPE_STRING, .format = "pve-configid" },
    { .name = "mdev", .type = QM_TYPE_STRING, .pattern = "^[^/.:]+$" },
    { .name = "pcie", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "rombar", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
    { .name = "romfile", .type = QM_TYPE_STRING, .pattern = "^[^,;]+$" },
    { .name = "sub-device-id", .type = QM_TYPE_STRING, .pattern = "^0x[0-9a-fA-F]{4}$" },
    { .name = "sub-vendor-id", .type = QM_TYPE_STRING, .pattern = "^0x[0-9a-fA-F]{4}$" },
    { .name = "vendor-id", .type = QM_TYPE_STRING, .pattern = "^0x[0-9a-fA-F]{4}$" },
    { .name = "x-vga", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
};

static const struct qm_propstr_format format_hostpci = {
    "hostpci", format_hostpci_keys, QM_ARRAY_SIZE(format_hostpci_keys), NULL,
};

static const struct qm_schema_key format_intel_tdx_keys[] = {
    { .name = "attestation", .type = QM_TYPE_BOOLEAN, .required = true, .default_value = "1" },
    { .name = "type", .type = QM_TYPE_STRING, .required = true, .default_key = true, .enum_values = enum_intel_tdx_type },
    { .name = "vsock-cid", .type = QM_TYPE_INTEGER, .has_min = true, .min = 2, .default_value = "2" },
    { .name = "vsock-port", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0, .default_value = "4050" },
};

static const struct qm_propstr_format format_intel_tdx = {
    "intel-tdx", format_intel_tdx_keys, QM_ARRAY_SIZE(format_intel_tdx_keys), NULL,
};

static const struct qm_schema_key format_ipconfig_keys[] = {
    { .name = "gw", .type = QM_TYPE_STRING, .format = "ipv4", .requires = "ip" },
    { .name = "gw6", .type = QM_TYPE_STRING, .format = "ipv6", .requires = "ip6" },
    { .name = "ip", .type = QM_TYPE_STRING, .format = "pve-ipv4-config", .default_value = "dhcp" },
    { .name = "ip6", .type = QM_TYPE_STRING, .format = "pve-ipv6-config", .default_value = "dhcp" },
};

static const struct qm_propstr_format format_ipconfig = {
    "ipconfig", format_ipconfig_keys, QM_ARRAY_SIZE(format_ipconfig_keys), NULL,
};

static const struct qm_schema_key format_ivshmem_keys[] = {
    { .name = "name", .type = QM_TYPE_STRING, .pattern = "^[a-zA-Z0-9-]+$" },
    { .name = "size", .type = QM_TYPE_INTEGER, .required = true, .has_min = true, .min = 1 },
};

static const struct qm_propstr_format format_ivshmem = {
    "ivshmem", format_ivshmem_keys, QM_ARRAY_SIZE(format_ivshmem_keys), NULL,
};

static const struct qm_schema_key format_machine_keys[] = {
    { .name = "aw-bits", .type = QM_TYPE_NUMBER, .has_min = true, .min = 32, .has_max = true, .max = 64 },
    { .name = "enable-s3", .type = QM_TYPE_BOOLEAN },
    { .name = "enable-s4", .type = QM_TYPE_BOOLEAN },
    { .name = "type", .type = QM_TYPE_STRING, .default_key = true, .pattern = "^(pc|pc(-i440fx)?-[0-9]+(\\.[0-9]+)+(\\+pve[0-9]+)?(\\.pxe)?|q35|pc-q35-[0-9]+(\\.[0-9]+)+(\\+pve[0-9]+)?(\\.pxe)?|virt(-[0-9]+(\\.[0-9]+)+)?(\\+pve[0-9]+)?)$", .max_length = 40 },
    { .name = "viommu", .type = QM_TYPE_STRING, .enum_values = enum_machine_viommu },
};

static const struct qm_propstr_format format_machine = {
    "machine", format_machine_keys, QM_ARRAY_SIZE(format_machine_keys), NULL,
};

static const struct qm_schema_key format_memory_keys[] = {
    { .name = "current", .type = QM_TYPE_INTEGER, .required = true, .default_key = true, .has_min = true, .min = 16, .default_value = "512" },
};

static const struct qm_propstr_format format_memory = {
    "memory", format_memory_keys, QM_ARRAY_SIZE(format_memory_keys), NULL,
};

static const struct qm_schema_key format_meta_keys[] = {
    { .name = "creation-qemu", .type = QM_TYPE_STRING, .pattern = "^[0-9]+(\\.[0-9]+)+$" },
    { .name = "ctime", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0 },
};

static const struct qm_propstr_format format_meta = {
    "meta", format_meta_keys, QM_ARRAY_SIZE(format_meta_keys), NULL,
};

static const struct qm_schema_key format_net_keys[] = {
    { .name = "bridge", .type = QM_TYPE_STRING, .format = "pve-bridge-id" },
    { .name = "e1000", .alias_of = "macaddr", .key_alias = true },
    { .name = "e1000-82540em", .alias_of = "macaddr", .key_alias = true },
    { .name = "e1000-82544gc", .alias_of = "macaddr", .key_alias = true },
    { .name = "e1000-82545em", .alias_of = "macaddr", .key_alias = true },
    { .name = "e1000e", .alias_of = "macaddr", .key_alias = true },
    { .name = "firewall", .type = QM_TYPE_BOOLEAN },
    { .name = "host-tunnel", .type = QM_TYPE_BOOLEAN },
    { .name = "i82551", .alias_of = "macaddr", .key_alias = true },
    { .name = "i82557b", .alias_of = "macaddr", .key_alias = true },
    { .name = "i82559er", .alias_of = "macaddr", .key_alias = true },
    { .name = "link_down", .type = QM_TYPE_BOOLEAN },
    { .name = "macaddr", .type = QM_TYPE_STRING, .format = "mac-addr" },
    { .name = "model", .type = QM_TYPE_STRING, .required = true, .default_key = true, .enum_values = enum_net_model },
    { .name = "mtu", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1, .has_max = true, .max = 65520 },
    { .name = "ne2k_isa", .alias_of = "macaddr", .key_alias = true },
    { .name = "ne2k_pci", .alias_of = "macaddr", .key_alias = true },
    { .name = "pcnet", .alias_of = "macaddr", .key_alias = true },
    { .name = "queues", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0, .has_max = true, .max = 64 },
    { .name = "rate", .type = QM_TYPE_NUMBER, .has_min = true, .min = 0 },
    { .name = "rtl8139", .alias_of = "macaddr", .key_alias = true },
    { .name = "tag", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1, .has_max = true, .max = 4094 },
    { .name = "trunks", .type = QM_TYPE_STRING, .pattern = "^[0-9]+(-[0-9]+)?(;[0-9]+(-[0-9]+)?)*$" },
    { .name = "virtio", .alias_of = "macaddr", .key_alias = true },
    { .name = "vmxnet3", .alias_of = "macaddr", .key_alias = true },
};

static const struct qm_propstr_format format_net = {
    "net", format_net_keys, QM_ARRAY_SIZE(format_net_keys), NULL,
};

static const struct qm_schema_key format_numa_keys[] = {
    { .name = "cpus", .type = QM_TYPE_STRING, .required = true, .pattern = "^[0-9]+(-[0-9]+)?(;[0-9]+(-[0-9]+)?)*$" },
    { .name = "hostnodes", .type = QM_TYPE_STRING, .pattern = "^[0-9]+(-[0-9]+)?(;[0-9]+(-[0-9]+)?)*$" },
    { .name = "memory", .type = QM_TYPE_NUMBER },
    { .name = "policy", .type = QM_TYPE_STRING, .enum_values = enum_numa_policy },
};

static const struct qm_propstr_format format_numa = {
    "numa", format_numa_keys, QM_ARRAY_SIZE(format_numa_keys), NULL,
};

static const struct qm_schema_key format_rng0_keys[] = {
    { .name = "max_bytes", .type = QM_TYPE_INTEGER, .default_value = "1024" },
    { .name = "period", .type = QM_TYPE_INTEGER, .default_value = "1000" },
    { .name = "source", .type = QM_TYPE_STRING, .required = true, .default_key = true, .enum_values = enum_rng0_source },
};

static const struct qm_propstr_format format_rng0 = {
    "rng0", format_rng0_keys, QM_ARRAY_SIZE(format_rng0_keys), NULL,
};

static const struct qm_schema_key format_sata_keys[] = {
    { .name = "aio", .type = QM_TYPE_STRING, .enum_values = enum_drive_aio },
    { .name = "backup", .type = QM_TYPE_BOOLEAN },
    { .name = "bps", .type = QM_TYPE_INTEGER },
    { .name = "bps_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_rd", .type = QM_TYPE_INTEGER },
    { .name = "bps_rd_length", .alias_of = "bps_rd_max_length" },
    { .name = "bps_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_wr", .type = QM_TYPE_INTEGER },
    { .name = "bps_wr_length", .alias_of = "bps_wr_max_length" },
    { .name = "bps_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "cache", .type = QM_TYPE_STRING, .enum_values = enum_drive_cache },
    { .name = "detect_zeroes", .type = QM_TYPE_BOOLEAN },
    { .name = "discard", .type = QM_TYPE_STRING, .enum_values = enum_drive_discard },
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id-or-qm-path" },
    { .name = "format", .type = QM_TYPE_STRING, .enum_values = enum_drive_format },
    { .name = "iops", .type = QM_TYPE_INTEGER },
    { .name = "iops_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_rd", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_length", .alias_of = "iops_rd_max_length" },
    { .name = "iops_rd_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_wr", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_length", .alias_of = "iops_wr_max_length" },
    { .name = "iops_wr_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "mbps", .type = QM_TYPE_NUMBER },
    { .name = "mbps_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr_max", .type = QM_TYPE_NUMBER },
    { .name = "media", .type = QM_TYPE_STRING, .enum_values = enum_drive_media, .default_value = "disk" },
    { .name = "replicate", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
    { .name = "rerror", .type = QM_TYPE_STRING, .enum_values = enum_drive_rerror },
    { .name = "serial", .type = QM_TYPE_STRING, .format = "urlencoded", .max_length = 60 },
    { .name = "shared", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "size", .type = QM_TYPE_STRING, .format = "disk-size" },
    { .name = "snapshot", .type = QM_TYPE_BOOLEAN },
    { .name = "ssd", .type = QM_TYPE_BOOLEAN },
    { .name = "volume", .alias_of = "file" },
    { .name = "werror", .type = QM_TYPE_STRING, .enum_values = enum_drive_werror },
    { .name = "wwn", .type = QM_TYPE_STRING, .pattern = "^0x[0-9a-fA-F]{16}$" },
};

static const struct qm_propstr_format format_sata = {
    "sata", format_sata_keys, QM_ARRAY_SIZE(format_sata_keys), NULL,
};

static const struct qm_schema_key format_scsi_keys[] = {
    { .name = "aio", .type = QM_TYPE_STRING, .enum_values = enum_drive_aio },
    { .name = "backup", .type = QM_TYPE_BOOLEAN },
    { .name = "bps", .type = QM_TYPE_INTEGER },
    { .name = "bps_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_rd", .type = QM_TYPE_INTEGER },
    { .name = "bps_rd_length", .alias_of = "bps_rd_max_length" },
    { .name = "bps_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_wr", .type = QM_TYPE_INTEGER },
    { .name = "bps_wr_length", .alias_of = "bps_wr_max_length" },
    { .name = "bps_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "cache", .type = QM_TYPE_STRING, .enum_values = enum_drive_cache },
    { .name = "detect_zeroes", .type = QM_TYPE_BOOLEAN },
    { .name = "discard", .type = QM_TYPE_STRING, .enum_values = enum_drive_discard },
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id-or-qm-path" },
    { .name = "format", .type = QM_TYPE_STRING, .enum_values = enum_drive_format },
    { .name = "iops", .type = QM_TYPE_INTEGER },
    { .name = "iops_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_rd", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_length", .alias_of = "iops_rd_max_length" },
    { .name = "iops_rd_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_wr", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_length", .alias_of = "iops_wr_max_length" },
    { .name = "iops_wr_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iothread", .type = QM_TYPE_BOOLEAN },
    { .name = "mbps", .type = QM_TYPE_NUMBER },
    { .name = "mbps_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr_max", .type = QM_TYPE_NUMBER },
    { .name = "media", .type = QM_TYPE_STRING, .enum_values = enum_drive_media, .default_value = "disk" },
    { .name = "product", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9_[:space:]-]{0,16}$" },
    { .name = "queues", .type = QM_TYPE_INTEGER, .has_min = true, .min = 2 },
    { .name = "replicate", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
    { .name = "rerror", .type = QM_TYPE_STRING, .enum_values = enum_drive_rerror },
    { .name = "ro", .type = QM_TYPE_BOOLEAN },
    { .name = "scsiblock", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "serial", .type = QM_TYPE_STRING, .format = "urlencoded", .max_length = 60 },
    { .name = "shared", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "size", .type = QM_TYPE_STRING, .format = "disk-size" },
    { .name = "snapshot", .type = QM_TYPE_BOOLEAN },
    { .name = "ssd", .type = QM_TYPE_BOOLEAN },
    { .name = "vendor", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9_[:space:]-]{0,8}$" },
    { .name = "volume", .alias_of = "file" },
    { .name = "werror", .type = QM_TYPE_STRING, .enum_values = enum_drive_werror },
    { .name = "wwn", .type = QM_TYPE_STRING, .pattern = "^0x[0-9a-fA-F]{16}$" },
};

static const struct qm_propstr_format format_scsi = {
    "scsi", format_scsi_keys, QM_ARRAY_SIZE(format_scsi_keys), NULL,
};

static const struct qm_schema_key format_smbios1_keys[] = {
    { .name = "base64", .type = QM_TYPE_BOOLEAN },
    { .name = "family", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9+/]+={0,2}$" },
    { .name = "manufacturer", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9+/]+={0,2}$" },
    { .name = "product", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9+/]+={0,2}$" },
    { .name = "serial", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9+/]+={0,2}$" },
    { .name = "sku", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9+/]+={0,2}$" },
    { .name = "uuid", .type = QM_TYPE_STRING, .pattern = "^[a-fA-F0-9]{8}(-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}$" },
    { .name = "version", .type = QM_TYPE_STRING, .pattern = "^[A-Za-z0-9+/]+={0,2}$" },
};

static const struct qm_propstr_format format_smbios1 = {
    "smbios1", format_smbios1_keys, QM_ARRAY_SIZE(format_smbios1_keys), NULL,
};

static const struct qm_schema_key format_spice_enhancements_keys[] = {
    { .name = "foldersharing", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "videostreaming", .type = QM_TYPE_STRING, .enum_values = enum_spice_enhancements_videostreaming, .default_value = "off" },
};

static const struct qm_propstr_format format_spice_enhancements = {
    "spice_enhancements", format_spice_enhancements_keys, QM_ARRAY_SIZE(format_spice_enhancements_keys), NULL,
};

static const struct qm_schema_key format_tpmstate0_keys[] = {
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id-or-qm-path" },
    { .name = "format", .type = QM_TYPE_STRING, .enum_values = enum_tpmstate0_format },
    { .name = "size", .type = QM_TYPE_STRING, .format = "disk-size" },
    { .name = "version", .type = QM_TYPE_STRING, .enum_values = enum_tpmstate0_version, .default_value = "v1.2" },
    { .name = "volume", .alias_of = "file" },
};

static const struct qm_propstr_format format_tpmstate0 = {
    "tpmstate0", format_tpmstate0_keys, QM_ARRAY_SIZE(format_tpmstate0_keys), NULL,
};

static const struct qm_schema_key format_unused_keys[] = {
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id" },
    { .name = "volume", .alias_of = "file" },
};

static const struct qm_propstr_format format_unused = {
    "unused", format_unused_keys, QM_ARRAY_SIZE(format_unused_keys), NULL,
};

static const struct qm_schema_key format_usb_keys[] = {
    { .name = "host", .type = QM_TYPE_STRING, .default_key = true, .pattern = "^((0x)?[0-9A-Fa-f]{4}:(0x)?[0-9A-Fa-f]{4}|[0-9]+-[0-9]+(\\.[0-9]+)*|[Ss][Pp][Ii][Cc][Ee])$" },
    { .name = "mapping", .type = QM_TYPE_STRING, .format = "pve-configid" },
    { .name = "usb3", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
};

static const struct qm_propstr_format format_usb = {
    "usb", format_usb_keys, QM_ARRAY_SIZE(format_usb_keys), NULL,
};

static const struct qm_schema_key format_vga_keys[] = {
    { .name = "clipboard", .type = QM_TYPE_STRING, .enum_values = enum_vga_clipboard },
    { .name = "memory", .type = QM_TYPE_INTEGER, .has_min = true, .min = 4, .has_max = true, .max = 512 },
    { .name = "type", .type = QM_TYPE_STRING, .default_key = true, .enum_values = enum_vga_type, .default_value = "std" },
};

static const struct qm_propstr_format format_vga = {
    "vga", format_vga_keys, QM_ARRAY_SIZE(format_vga_keys), NULL,
};

static const struct qm_schema_key format_virtio_keys[] = {
    { .name = "aio", .type = QM_TYPE_STRING, .enum_values = enum_drive_aio },
    { .name = "backup", .type = QM_TYPE_BOOLEAN },
    { .name = "bps", .type = QM_TYPE_INTEGER },
    { .name = "bps_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_rd", .type = QM_TYPE_INTEGER },
    { .name = "bps_rd_length", .alias_of = "bps_rd_max_length" },
    { .name = "bps_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "bps_wr", .type = QM_TYPE_INTEGER },
    { .name = "bps_wr_length", .alias_of = "bps_wr_max_length" },
    { .name = "bps_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "cache", .type = QM_TYPE_STRING, .enum_values = enum_drive_cache },
    { .name = "detect_zeroes", .type = QM_TYPE_BOOLEAN },
    { .name = "discard", .type = QM_TYPE_STRING, .enum_values = enum_drive_discard },
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id-or-qm-path" },
    { .name = "format", .type = QM_TYPE_STRING, .enum_values = enum_drive_format },
    { .name = "iops", .type = QM_TYPE_INTEGER },
    { .name = "iops_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_rd", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_length", .alias_of = "iops_rd_max_length" },
    { .name = "iops_rd_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_rd_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iops_wr", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_length", .alias_of = "iops_wr_max_length" },
    { .name = "iops_wr_max", .type = QM_TYPE_INTEGER },
    { .name = "iops_wr_max_length", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1 },
    { .name = "iothread", .type = QM_TYPE_BOOLEAN },
    { .name = "mbps", .type = QM_TYPE_NUMBER },
    { .name = "mbps_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd", .type = QM_TYPE_NUMBER },
    { .name = "mbps_rd_max", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr", .type = QM_TYPE_NUMBER },
    { .name = "mbps_wr_max", .type = QM_TYPE_NUMBER },
    { .name = "media", .type = QM_TYPE_STRING, .enum_values = enum_drive_media, .default_value = "disk" },
    { .name = "replicate", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
    { .name = "rerror", .type = QM_TYPE_STRING, .enum_values = enum_drive_rerror },
    { .name = "ro", .type = QM_TYPE_BOOLEAN },
    { .name = "serial", .type = QM_TYPE_STRING, .format = "urlencoded", .max_length = 60 },
    { .name = "shared", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "size", .type = QM_TYPE_STRING, .format = "disk-size" },
    { .name = "snapshot", .type = QM_TYPE_BOOLEAN },
    { .name = "volume", .alias_of = "file" },
    { .name = "werror", .type = QM_TYPE_STRING, .enum_values = enum_drive_werror },
};

static const struct qm_propstr_format format_virtio = {
    "virtio", format_virtio_keys, QM_ARRAY_SIZE(format_virtio_keys), NULL,
};

static const struct qm_schema_key format_virtiofs_keys[] = {
    { .name = "cache", .type = QM_TYPE_STRING, .enum_values = enum_virtiofs_cache, .default_value = "auto" },
    { .name = "direct-io", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "dirid", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-configid" },
    { .name = "expose-acl", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
    { .name = "expose-xattr", .type = QM_TYPE_BOOLEAN, .default_value = "0" },
};

static const struct qm_propstr_format format_virtiofs = {
    "virtiofs", format_virtiofs_keys, QM_ARRAY_SIZE(format_virtiofs_keys), NULL,
};

static const struct qm_schema_key format_watchdog_keys[] = {
    { .name = "action", .type = QM_TYPE_STRING, .enum_values = enum_watchdog_action },
    { .name = "model", .type = QM_TYPE_STRING, .default_key = true, .enum_values = enum_watchdog_model, .default_value = "i6300esb" },
};

static const struct qm_propstr_format format_watchdog = {
    "watchdog", format_watchdog_keys, QM_ARRAY_SIZE(format_watchdog_keys), NULL,
};

/* Extensions: see the file comment. */
static const char *const enum_bios_type[] = {
    "seabios", "ovmf", NULL,
};

static const struct qm_schema_key format_bios_keys[] = {
    { .name = "code", .type = QM_TYPE_STRING, .format = "pve-volume-id-or-absolute-path" },
    { .name = "type", .type = QM_TYPE_STRING, .default_key = true, .enum_values = enum_bios_type, .default_value = "seabios" },
    { .name = "vars", .type = QM_TYPE_STRING, .format = "pve-volume-id-or-absolute-path" },
};
static const struct qm_propstr_format format_bios = {
    "bios", format_bios_keys, QM_ARRAY_SIZE(format_bios_keys), validate_bios,
};

static const struct qm_schema_key format_qemu_binary_keys[] = {
    { .name = "file", .type = QM_TYPE_STRING, .required = true, .default_key = true, .format = "pve-volume-id-or-absolute-path" },
    { .name = "validate", .type = QM_TYPE_BOOLEAN, .default_value = "1" },
};
static const struct qm_propstr_format format_qemu_binary = {
    "qemu-binary", format_qemu_binary_keys, QM_ARRAY_SIZE(format_qemu_binary_keys), NULL,
};

/* Sorted by name; a family ("net") and a plain key ("numa") may share a name. */
static const struct qm_schema_key properties[] = {
    { .name = "acpi", .type = QM_TYPE_BOOLEAN, .default_value = "1", .max_index = -1 },
    { .name = "affinity", .type = QM_TYPE_STRING, .format = "pve-cpuset", .max_index = -1 },
    { .name = "agent", .type = QM_TYPE_STRING, .propstr = &format_agent, .max_index = -1 },
    { .name = "allow-ksm", .type = QM_TYPE_BOOLEAN, .default_value = "1", .max_index = -1 },
    { .name = "amd-sev", .type = QM_TYPE_STRING, .propstr = &format_amd_sev, .max_index = -1 },
    { .name = "arch", .type = QM_TYPE_STRING, .enum_values = enum_arch, .max_index = -1 },
    { .name = "args", .type = QM_TYPE_STRING, .max_index = -1 },
    { .name = "audio0", .type = QM_TYPE_STRING, .propstr = &format_audio0, .max_index = -1 },
    { .name = "autostart", .type = QM_TYPE_BOOLEAN, .default_value = "0", .max_index = -1 },
    { .name = "balloon", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0, .max_index = -1 },
    { .name = "bios", .type = QM_TYPE_STRING, .propstr = &format_bios, .max_index = -1 },
    { .name = "boot", .type = QM_TYPE_STRING, .propstr = &format_boot, .max_index = -1 },
    { .name = "bootdisk", .type = QM_TYPE_STRING, .format = "pve-qm-bootdisk", .pattern = "^(ide|sata|scsi|virtio)[0-9]+$", .max_index = -1 },
    { .name = "cdrom", .type = QM_TYPE_STRING, .propstr = &format_drive_ide, .max_index = -1 },
    { .name = "cicustom", .type = QM_TYPE_STRING, .propstr = &format_cicustom, .max_index = -1 },
    { .name = "cipassword", .type = QM_TYPE_STRING, .max_index = -1 },
    { .name = "citype", .type = QM_TYPE_STRING, .enum_values = enum_citype, .max_index = -1 },
    { .name = "ciupgrade", .type = QM_TYPE_BOOLEAN, .default_value = "1", .max_index = -1 },
    { .name = "ciuser", .type = QM_TYPE_STRING, .max_index = -1 },
    { .name = "cores", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1, .default_value = "1", .max_index = -1 },
    { .name = "cpu", .type = QM_TYPE_STRING, .propstr = &format_cpu, .max_index = -1 },
    { .name = "cpulimit", .type = QM_TYPE_NUMBER, .has_min = true, .min = 0, .has_max = true, .max = 128, .default_value = "0", .max_index = -1 },
    { .name = "cpuunits", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1, .has_max = true, .max = 262144, .max_index = -1 },
    { .name = "description", .type = QM_TYPE_STRING, .max_length = 8192, .max_index = -1 },
    { .name = "efidisk0", .type = QM_TYPE_STRING, .propstr = &format_efidisk0, .max_index = -1 },
    { .name = "freeze", .type = QM_TYPE_BOOLEAN, .max_index = -1 },
    { .name = "hookscript", .type = QM_TYPE_STRING, .format = "pve-volume-id", .max_index = -1 },
    { .name = "hostpci", .type = QM_TYPE_STRING, .propstr = &format_hostpci, .max_index = 15 },
    { .name = "hotplug", .type = QM_TYPE_STRING, .format = "pve-hotplug-features", .default_value = "network,disk,usb", .max_index = -1 },
    { .name = "hugepages", .type = QM_TYPE_STRING, .enum_values = enum_hugepages, .max_index = -1 },
    { .name = "ide", .type = QM_TYPE_STRING, .propstr = &format_drive_ide, .max_index = 3 },
    { .name = "intel-tdx", .type = QM_TYPE_STRING, .propstr = &format_intel_tdx, .max_index = -1 },
    { .name = "ipconfig", .type = QM_TYPE_STRING, .propstr = &format_ipconfig, .max_index = 31 },
    { .name = "ivshmem", .type = QM_TYPE_STRING, .propstr = &format_ivshmem, .max_index = -1 },
    { .name = "keephugepages", .type = QM_TYPE_BOOLEAN, .default_value = "0", .max_index = -1 },
    { .name = "keyboard", .type = QM_TYPE_STRING, .enum_values = enum_keyboard, .max_index = -1 },
    { .name = "kvm", .type = QM_TYPE_BOOLEAN, .default_value = "1", .max_index = -1 },
    { .name = "localtime", .type = QM_TYPE_BOOLEAN, .max_index = -1 },
    { .name = "lock", .type = QM_TYPE_STRING, .enum_values = enum_lock, .max_index = -1 },
    { .name = "machine", .type = QM_TYPE_STRING, .propstr = &format_machine, .max_index = -1 },
    { .name = "memory", .type = QM_TYPE_STRING, .propstr = &format_memory, .max_index = -1 },
    { .name = "meta", .type = QM_TYPE_STRING, .propstr = &format_meta, .max_index = -1 },
    { .name = "migrate_downtime", .type = QM_TYPE_NUMBER, .has_min = true, .min = 0, .default_value = "0.1", .max_index = -1 },
    { .name = "migrate_speed", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0, .default_value = "0", .max_index = -1 },
    { .name = "name", .type = QM_TYPE_STRING, .format = "dns-name", .max_index = -1 },
    { .name = "nameserver", .type = QM_TYPE_STRING, .format = "address-list", .max_index = -1 },
    { .name = "net", .type = QM_TYPE_STRING, .propstr = &format_net, .max_index = 31 },
    { .name = "numa", .type = QM_TYPE_BOOLEAN, .default_value = "0", .max_index = -1 },
    { .name = "numa", .type = QM_TYPE_STRING, .propstr = &format_numa, .max_index = 7 },
    { .name = "onboot", .type = QM_TYPE_BOOLEAN, .default_value = "0", .max_index = -1 },
    { .name = "ostype", .type = QM_TYPE_STRING, .enum_values = enum_ostype, .default_value = "other", .max_index = -1 },
    { .name = "parallel", .type = QM_TYPE_STRING, .pattern = "^/dev/parport[0-9]+|/dev/usb/lp[0-9]+$", .max_index = 2 },
    { .name = "parent", .type = QM_TYPE_STRING, .format = "pve-configid", .max_length = 40, .max_index = -1 },
    { .name = "protection", .type = QM_TYPE_BOOLEAN, .default_value = "0", .max_index = -1 },
    { .name = "reboot", .type = QM_TYPE_BOOLEAN, .default_value = "1", .max_index = -1 },
    { .name = "qemu_binary_aarch64", .type = QM_TYPE_STRING, .propstr = &format_qemu_binary, .max_index = -1 },
    { .name = "qemu_binary_x86_64", .type = QM_TYPE_STRING, .propstr = &format_qemu_binary, .max_index = -1 },
    { .name = "rng0", .type = QM_TYPE_STRING, .propstr = &format_rng0, .max_index = -1 },
    { .name = "running-nets-host-mtu", .type = QM_TYPE_STRING, .pattern = "^net[0-9]+=[0-9]+(,net[0-9]+=[0-9]+)*$", .max_index = -1 },
    { .name = "runningcpu", .type = QM_TYPE_STRING, .pattern = "^([+-]?[[:alnum:]_.=-]+,?)+$", .max_index = -1 },
    { .name = "runningmachine", .type = QM_TYPE_STRING, .propstr = &format_machine, .max_index = -1 },
    { .name = "sata", .type = QM_TYPE_STRING, .propstr = &format_sata, .max_index = 5 },
    { .name = "scsi", .type = QM_TYPE_STRING, .propstr = &format_scsi, .max_index = 30 },
    { .name = "scsihw", .type = QM_TYPE_STRING, .enum_values = enum_scsihw, .default_value = "lsi", .max_index = -1 },
    { .name = "searchdomain", .type = QM_TYPE_STRING, .max_index = -1 },
    { .name = "serial", .type = QM_TYPE_STRING, .pattern = "^(/dev/[^,]+|socket)$", .max_index = 3 },
    { .name = "shares", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0, .has_max = true, .max = 50000, .default_value = "1000", .max_index = -1 },
    { .name = "smbios1", .type = QM_TYPE_STRING, .max_length = 512, .propstr = &format_smbios1, .max_index = -1 },
    { .name = "smp", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1, .default_value = "1", .max_index = -1 },
    { .name = "snaptime", .type = QM_TYPE_INTEGER, .has_min = true, .min = 0, .max_index = -1 },
    { .name = "sockets", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1, .default_value = "1", .max_index = -1 },
    { .name = "spice_enhancements", .type = QM_TYPE_STRING, .propstr = &format_spice_enhancements, .max_index = -1 },
    { .name = "sshkeys", .type = QM_TYPE_STRING, .format = "urlencoded", .max_index = -1 },
    { .name = "startdate", .type = QM_TYPE_STRING, .pattern = "^(now|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(T[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2})?)$", .default_value = "now", .max_index = -1 },
    { .name = "startup", .type = QM_TYPE_STRING, .format = "pve-startup-order", .max_index = -1 },
    { .name = "tablet", .type = QM_TYPE_BOOLEAN, .default_value = "1", .max_index = -1 },
    { .name = "tags", .type = QM_TYPE_STRING, .format = "pve-tag-list", .max_index = -1 },
    { .name = "tdf", .type = QM_TYPE_BOOLEAN, .default_value = "0", .max_index = -1 },
    { .name = "template", .type = QM_TYPE_BOOLEAN, .default_value = "0", .max_index = -1 },
    { .name = "tpmstate0", .type = QM_TYPE_STRING, .propstr = &format_tpmstate0, .max_index = -1 },
    { .name = "unused", .type = QM_TYPE_STRING, .propstr = &format_unused, .max_index = 255 },
    { .name = "usb", .type = QM_TYPE_STRING, .propstr = &format_usb, .max_index = 13 },
    { .name = "vcpus", .type = QM_TYPE_INTEGER, .has_min = true, .min = 1, .default_value = "0", .max_index = -1 },
    { .name = "vga", .type = QM_TYPE_STRING, .propstr = &format_vga, .max_index = -1 },
    { .name = "virtio", .type = QM_TYPE_STRING, .propstr = &format_virtio, .max_index = 15 },
    { .name = "virtiofs", .type = QM_TYPE_STRING, .propstr = &format_virtiofs, .max_index = 9 },
    { .name = "vmgenid", .type = QM_TYPE_STRING, .pattern = "^([a-fA-F0-9]{8}(-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])$", .max_index = -1 },
    { .name = "vmstate", .type = QM_TYPE_STRING, .format = "pve-volume-id", .max_index = -1 },
    { .name = "vmstatestorage", .type = QM_TYPE_STRING, .format = "pve-storage-id", .max_index = -1 },
    { .name = "watchdog", .type = QM_TYPE_STRING, .propstr = &format_watchdog, .max_index = -1 },
};

static const struct qm_schema_key fleecing_properties[] = {
    { .name = "fleecing-images", .type = QM_TYPE_STRING, .format = "pve-volume-id-list", .max_index = -1 },
};

/* CPU models defined without the custom- prefix, besides the reported-model list. */
static const char *const builtin_cpu_models[] = {
    "x86-64-v2", "x86-64-v2-AES", "x86-64-v3", "x86-64-v4", NULL,
};

/* CPU flags that a VM's own configuration may set (qemu-server 9.2.6, x86_64). */
static const char *const vm_cpu_flags =
    "^[+-](nested-virt|md-clear|pcid|spec-ctrl|ssbd|ibpb|virt-ssbd|amd-ssbd|amd-no-ssb|"
    "pdpe1gb|hv-tlbflush|hv-evmcs|aes)"
    "(;[+-](nested-virt|md-clear|pcid|spec-ctrl|ssbd|ibpb|virt-ssbd|amd-ssbd|amd-no-ssb|"
    "pdpe1gb|hv-tlbflush|hv-evmcs|aes))*$";

static bool in_list(const char *const *list, const char *value)
{
    for (; *list; list++) {
        if (strcmp(*list, value) == 0)
            return true;
    }
    return false;
}

static int validate_vm_cpu(const struct qm_propstr *ps, struct qm_error *err)
{
    const char *cputype = qm_propstr_get(ps, "cputype");
    if (!cputype || !*cputype)
        return qm_fail(err, 400, "CPU is missing cputype");

    /* NOTE: custom- models are accepted unchecked, because their definitions live in
     * cpu-models.conf, which this module does not read. */
    if (!qm_str_starts(cputype, "custom-") && !in_list(enum_cpu_reported_model, cputype) &&
        !in_list(builtin_cpu_models, cputype))
        return qm_fail(err, 400,
                       "Built-in cputype '%s' is not defined (missing 'custom-' prefix?)",
                       cputype);

    const char *flags = qm_propstr_get(ps, "flags");
    if (flags && *flags && !qm_regex_match(vm_cpu_flags, flags))
        return qm_fail(err, 400,
                       "VM-specific CPU flags must be a subset of: aes, amd-no-ssb, amd-ssbd, "
                       "hv-evmcs, hv-tlbflush, ibpb, md-clear, nested-virt, pcid, pdpe1gb, "
                       "spec-ctrl, ssbd, virt-ssbd");

    if (qm_propstr_get(ps, "reported-model"))
        return qm_fail(err, 400, "Property 'reported-model' not allowed in VM-specific CPU config.");
    return 0;
}

static int validate_bios(const struct qm_propstr *ps, struct qm_error *err)
{
    const char *type = qm_propstr_get(ps, "type");
    bool code = qm_propstr_get(ps, "code") != NULL;
    bool vars = qm_propstr_get(ps, "vars") != NULL;

    if ((code || vars) && (!type || strcmp(type, "ovmf") != 0))
        return qm_fail(err, 400, "code and vars are only allowed with ovmf");
    /*
     * code without vars (or the reverse) is read from a file as it is, and
     * the command line generator rejects it; qm_conf_check_property rejects
     * it in API requests.
     */
    return 0;
}

/* Parses a family index: decimal digits without a leading zero. */
static bool parse_index(const char *digits, long long *index)
{
    if (digits[0] < '0' || digits[0] > '9')
        return false;
    if (digits[0] == '0' && digits[1] != '\0')
        return false;
    return qm_parse_int(digits, index);
}

static const struct qm_schema_key *lookup_in(const struct qm_schema_key *table, size_t n,
                                             const char *key)
{
    for (size_t i = 0; i < n; i++) {
        const struct qm_schema_key *prop = &table[i];
        if (prop->max_index < 0) {
            if (strcmp(prop->name, key) == 0)
                return prop;
            continue;
        }
        size_t len = strlen(prop->name);
        long long index;
        if (strncmp(prop->name, key, len) == 0 && parse_index(key + len, &index) &&
            index <= prop->max_index)
            return prop;
    }
    return NULL;
}

const struct qm_schema_key *qm_schema_lookup(const char *key)
{
    return lookup_in(properties, QM_ARRAY_SIZE(properties), key);
}

const struct qm_schema_key *qm_schema_lookup_fleecing(const char *key)
{
    return lookup_in(fleecing_properties, QM_ARRAY_SIZE(fleecing_properties), key);
}

const struct qm_schema_key *qm_schema_all(size_t *count)
{
    *count = QM_ARRAY_SIZE(properties);
    return properties;
}

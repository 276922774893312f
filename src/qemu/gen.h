/* State shared by the parts of the command-line generator. Private to src/qemu. */
#ifndef QM_QEMU_GEN_H
#define QM_QEMU_GEN_H

#include <stdbool.h>

#include "qm/config.h"
#include "qm/qemu.h"
#include "qm/util.h"

/* A "major.minor+pveN" version; pve is 0 when absent. */
struct qm_version {
    int major, minor, pve;
};

struct gen {
    const struct qm_cmdline_input *in;
    const struct qm_conf_section *conf;
    struct strvec *warnings;
    struct qm_error *err;

    const char *arch;
    const char *ostype;         /* "" when not set */
    int winversion;             /* 0 for non-Windows */
    bool kvm;
    bool q35;
    bool pve;                   /* caps->pve_build */
    char *machine_type;         /* with "+pveN" (and ".pxe") as qemu-server computes it */
    bool use_old_bios_files;
    struct qm_version mver;     /* the machine version */
    int required_pve;           /* highest +pveN that a used feature asked for */

    struct strvec cmd;
    struct strvec devices;
    struct strvec machine_flags;
    struct strvec rtc_flags;
    unsigned bridges;           /* bit N: PCI bridge pci.N is used */
    const struct strvec *boot_keys;     /* device names of the boot order */
    const struct strvec *boot_values;   /* their bootindex values */
    bool kvm_off;               /* a hostpci device with x-vga hides KVM from the guest */
    bool gpu_passthrough;       /* a hostpci device with x-vga */
    bool legacy_igd;            /* a hostpci device in legacy IGD mode */
    const char *cvm_type;       /* amd-sev type: "std", "es", "snp"; NULL without SEV */
    bool ovmf;                  /* bios type ovmf */
    char *ovmf_code;            /* custom firmware paths of bios code= and vars=, or NULL */
    char *ovmf_vars;
};

/* Reads "bios" into g->ovmf, g->ovmf_code and g->ovmf_vars, checking custom firmware files. */
int gen_parse_bios(struct gen *g);
/* The custom QEMU binary of the VM's architecture (caller frees), or NULL for the probed one. */
int gen_qemu_binary(struct gen *g, char **binary);

/* Returns the configured value of key, or NULL. */
const char *gen_get(const struct gen *g, const char *key);
/* Returns key's value as a boolean; def when not set. */
bool gen_bool(const struct gen *g, const char *key, bool def);
void gen_warn(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether the machine version is at least major.minor(+pve). */
bool gen_machine_at_least(const struct gen *g, int major, int minor, int pve);
/* Whether the QEMU binary is at least major.minor. */
bool gen_qemu_at_least(const struct gen *g, int major, int minor);
/*
 * Whether a feature introduced in machine version major.minor+pve may be
 * used; records pve as required when the machine version relies on it.
 */
bool gen_version_guard(struct gen *g, int major, int minor, int pve);

/* ",bus=pci.N,addr=0xM" for a device id, or "" when it has no fixed slot. */
const char *gen_pci_addr(struct gen *g, const char *id, char *buf, size_t len);
/* ",bus=pcie.0,addr=0xM" for the devices that q35 places on the root bus. */
const char *gen_pcie_addr(const char *id, char *buf, size_t len);

/* A parsed property string; NULL-safe lookups. */
const char *ps_get(const struct qm_propstr *ps, const char *key);
bool ps_bool(const struct qm_propstr *ps, const char *key, bool def);

/* The bootindex of a device name such as "net0", or NULL when it is not in the boot order. */
const char *gen_bootindex(const struct gen *g, const char *key);

/* Parts of the command line, in src/qemu/{cpu,drive,usb,memory,pci,devices}.c. */
int gen_cpu(struct gen *g);
int gen_usb_controllers(struct gen *g);
int gen_usb_devices(struct gen *g);
int gen_memory(struct gen *g, long long sockets, long long cores);
int gen_hostpci(struct gen *g, char **vga_type);
int gen_rng(struct gen *g);
int gen_tpm(struct gen *g);
int gen_sev(struct gen *g);
int gen_drives(struct gen *g, const struct strvec *bootorder_keys,
               const struct strvec *bootorder_values);
int gen_efi(struct gen *g);

/* Whether a hotplug feature such as "memory" is in the "hotplug" list ("1" is the default set). */
bool gen_hotplug_has(const struct gen *g, const char *feature);

/* Host facts, in src/qemu/host.c. */
void gen_host_probe_sysfs(struct qm_host *host);
void gen_host_free_lists(struct qm_host *host);
/*
 * Finds the host PCI functions that an address such as "00:ff.1", "f0:43"
 * (all functions) or "1234:f0:43" names; out->pci receives them sorted.
 * Returns their number. The caller frees out with gen_host_free_lists().
 */
int gen_host_pci_find(const struct qm_host *host, const char *id, struct qm_host *out);
int gen_host_bridge_mtu(const struct qm_host *host, const char *bridge);
/* The size of a file in bytes, or -1 when it does not exist. */
long long gen_host_file_size(const struct qm_host *host, const char *path);

/* A JSON object built with keys in byte order, as Perl's canonical JSON prints them. */
struct json_obj {
    struct strvec keys;
    struct strvec values;   /* already-encoded JSON values */
};
void json_set_raw(struct json_obj *o, const char *key, const char *raw);
void json_set_str(struct json_obj *o, const char *key, const char *value);
void json_set_bool(struct json_obj *o, const char *key, bool value);
/* Encodes child, frees it, and stores it under key. */
void json_set_obj(struct json_obj *o, const char *key, struct json_obj *child);
const char *json_get_raw(const struct json_obj *o, const char *key);
char *json_encode(const struct json_obj *o);
void json_free(struct json_obj *o);
char *json_quote(const char *s);

#endif

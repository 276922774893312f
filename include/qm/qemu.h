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

/* What the installed QEMU binary reports. */
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

/* What the host offers a VM. */
struct qm_host {
    char *arch;              /* x86_64, aarch64 */
    char *cpu_vendor;        /* GenuineIntel, AuthenticAMD, ... */
    int cpus;                /* online logical CPUs */
    int phys_bits;           /* physical address width, 0 when unknown */
    bool kvm;                /* KVM can run guests (see qm_host_probe) */
    bool vhost_net;          /* /dev/vhost-net exists */
    char *iscsi_initiator;   /* InitiatorName from /etc/iscsi/initiatorname.iscsi, or NULL */
    char *cdrom;             /* the host CD-ROM drive (/dev/cdrom), or NULL */
};

/*
 * Probes the running host. kvm is true only when /dev/kvm opens read-write,
 * /proc/cpuinfo has the vmx or svm flag and /sys/module/kvm_intel or
 * /sys/module/kvm_amd exists.
 */
void qm_host_probe(struct qm_host *host);
/* Fills a host with fixed values: x86_64, GenuineIntel, KVM usable, 46 address bits. */
void qm_host_default(struct qm_host *host);
void qm_host_free(struct qm_host *host);

struct qm_cmdline_input {
    int vmid;
    const struct qm_conf *conf;
    const struct qm_storage_cfg *storage;
    const struct qm_host *host;
    const struct qm_qemu_caps *caps;
    const struct qm_paths *paths;   /* run_dir and event_socket */
};

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

/*
 * Configuration to QEMU command line. The order of the options and their
 * spelling follow Proxmox VE's qemu-server (config_to_command), so that a
 * command line can be compared with the one Proxmox VE generates.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "gen.h"

const char *gen_get(const struct gen *g, const char *key)
{
    const char *v = qm_conf_get(g->conf, key);

    return v && *v ? v : NULL;
}

static bool str_true(const char *v)
{
    return strcmp(v, "1") == 0 || strcmp(v, "on") == 0 || strcmp(v, "yes") == 0 ||
           strcmp(v, "true") == 0;
}

bool gen_bool(const struct gen *g, const char *key, bool def)
{
    const char *v = gen_get(g, key);

    return v ? str_true(v) : def;
}

const char *ps_get(const struct qm_propstr *ps, const char *key)
{
    return ps ? qm_propstr_get(ps, key) : NULL;
}

bool ps_bool(const struct qm_propstr *ps, const char *key, bool def)
{
    const char *v = ps_get(ps, key);

    return v ? str_true(v) : def;
}

void gen_warn(struct gen *g, const char *fmt, ...)
{
    va_list ap;
    struct strbuf sb = {0};

    va_start(ap, fmt);
    sb_vaddf(&sb, fmt, ap);
    va_end(ap);
    if (g->warnings)
        sv_push(g->warnings, sb.buf);
    sb_free(&sb);
}

static int version_cmp(int a1, int b1, int a2, int b2, int a3, int b3)
{
    if (a1 != b1)
        return a1 < b1 ? -1 : 1;
    if (a2 != b2)
        return a2 < b2 ? -1 : 1;
    if (a3 != b3)
        return a3 < b3 ? -1 : 1;
    return 0;
}

bool gen_machine_at_least(const struct gen *g, int major, int minor, int pve)
{
    return version_cmp(g->mver.major, major, g->mver.minor, minor, g->mver.pve, pve) >= 0;
}

bool gen_qemu_at_least(const struct gen *g, int major, int minor)
{
    return version_cmp(g->in->caps->major, major, g->in->caps->minor, minor, 0, 0) >= 0;
}

/* The highest "+pveN" revision that qemu-server 9.2 defines per machine version. */
static int pve_revision(int major, int minor)
{
    static const struct {
        int major, minor, highest;
    } table[] = {{4, 1, 2}, {9, 2, 1}, {10, 0, 1}, {11, 0, 2}};

    for (size_t i = 0; i < QM_ARRAY_SIZE(table); i++)
        if (table[i].major == major && table[i].minor == minor)
            return table[i].highest;
    return 0;
}

bool gen_version_guard(struct gen *g, int major, int minor, int pve)
{
    if (!gen_machine_at_least(g, major, minor, pve))
        return false;
    int max_pve = pve_revision(major, minor);
    if (gen_machine_at_least(g, major, minor, max_pve + 1))
        return true;
    if (pve > g->required_pve)
        g->required_pve = pve;
    return true;
}

/* Fixed PCI slots of qemu-server's i440fx layout: bus, slot. */
static const struct {
    const char *id;
    int bus, addr;
} pci_slots[] = {
    {"piix3", 0, 1},     {"ehci", 0, 1},      {"vga", 0, 2},       {"legacy-igd", 0, 2},
    {"balloon0", 0, 3},  {"watchdog", 0, 4},  {"scsihw0", 0, 5},   {"pci.3", 0, 5},
    {"scsihw1", 0, 6},   {"ahci0", 0, 7},     {"qga0", 0, 8},      {"spice", 0, 9},
    {"virtio0", 0, 10},  {"virtio1", 0, 11},  {"virtio2", 0, 12},  {"virtio3", 0, 13},
    {"virtio4", 0, 14},  {"virtio5", 0, 15},  {"hostpci0", 0, 16}, {"hostpci1", 0, 17},
    {"net0", 0, 18},     {"net1", 0, 19},     {"net2", 0, 20},     {"net3", 0, 21},
    {"net4", 0, 22},     {"net5", 0, 23},     {"vga1", 0, 24},     {"vga2", 0, 25},
    {"vga3", 0, 26},     {"hostpci2", 0, 27}, {"hostpci3", 0, 28}, {"pci.1", 0, 30},
    {"pci.2", 0, 31},    {"xhci", 1, 27},     {"pci.4", 1, 28},    {"rng0", 1, 29},
    {"pci.2-igd", 1, 30}, {"ivshmem", 2, 11}, {"audio0", 2, 12},   {"scsihw2", 4, 1},
    {"scsihw3", 4, 2},   {"scsihw4", 4, 3},
};

static bool slot_of(const char *id, int *bus, int *addr)
{
    long long n;

    for (size_t i = 0; i < QM_ARRAY_SIZE(pci_slots); i++) {
        if (strcmp(pci_slots[i].id, id) == 0) {
            *bus = pci_slots[i].bus;
            *addr = pci_slots[i].addr;
            return true;
        }
    }
    /* Numbered families that continue on the bridges. */
    if (qm_str_starts(id, "net") && qm_parse_int(id + 3, &n) && n >= 6 && n <= 31) {
        *bus = 1;
        *addr = (int)n - 5;
        return true;
    }
    if (qm_str_starts(id, "virtioscsi") && qm_parse_int(id + 10, &n) && n >= 0 && n <= 30) {
        *bus = 3;
        *addr = (int)n + 1;
        return true;
    }
    if (qm_str_starts(id, "virtio") && qm_parse_int(id + 6, &n) && n >= 6 && n <= 15) {
        *bus = 2;
        *addr = (int)n - 5;
        return true;
    }
    if (qm_str_starts(id, "hostpci") && qm_parse_int(id + 7, &n) && n >= 4 && n <= 15) {
        *bus = 2;
        *addr = (int)n + 9;
        return true;
    }
    return false;
}

const char *gen_pci_addr(struct gen *g, const char *id, char *buf, size_t len)
{
    int bus, addr;

    buf[0] = '\0';
    if (!slot_of(id, &bus, &addr))
        return buf;
    const char *busname = strcmp(g->arch, "aarch64") == 0 && bus == 0 ? "pcie" : "pci";
    snprintf(buf, len, ",bus=%s.%d,addr=0x%x", busname, bus, addr);
    g->bridges |= 1u << bus;
    return buf;
}

const char *gen_pcie_addr(const char *id, char *buf, size_t len)
{
    /* Root-bus slots of "hostpciNbus0", used for Windows 7 guests. */
    static const int bus0_slots[] = {16, 17, 18, 19, 9, 10, 11, 12,
                                     13, 14, 15, 21, 22, 23, 24, 25};
    long long n;

    buf[0] = '\0';
    if (strcmp(id, "vga") == 0) {
        snprintf(buf, len, ",bus=pcie.0,addr=0x1");
    } else if (strcmp(id, "ivshmem") == 0) {
        snprintf(buf, len, ",bus=pcie.0,addr=0x14");
    } else if (qm_str_starts(id, "hostpci")) {
        char *num = qm_strdup(id + 7);
        bool bus0 = qm_str_ends(num, "bus0");
        if (bus0)
            num[strlen(num) - 4] = '\0';
        if (qm_parse_int(num, &n) && n >= 0 && n < 16) {
            if (bus0)
                snprintf(buf, len, ",bus=pcie.0,addr=0x%x", bus0_slots[n]);
            else
                snprintf(buf, len, ",bus=ich9-pcie-port-%lld,addr=0x0", n + 1);
        }
        free(num);
    }
    return buf;
}

int qm_windows_version(const char *ostype);
int qm_windows_version(const char *ostype)
{
    if (!ostype)
        return 0;
    if (strcmp(ostype, "wxp") == 0 || strcmp(ostype, "w2k3") == 0 || strcmp(ostype, "w2k") == 0)
        return 5;
    if (strcmp(ostype, "w2k8") == 0 || strcmp(ostype, "wvista") == 0)
        return 6;
    if (qm_str_starts(ostype, "win")) {
        long long n;
        if (qm_parse_int(ostype + 3, &n))
            return (int)n;
    }
    return 0;
}

/* Parses "pc-i440fx-5.1+pve2", "pc-q35-8.0", "virt-9.0", "pc-5.0.1"; false without a version. */
static bool machine_version_of(const char *type, struct qm_version *v)
{
    const char *p = NULL;

    if (qm_str_starts(type, "pc-i440fx-"))
        p = type + 10;
    else if (qm_str_starts(type, "pc-q35-"))
        p = type + 7;
    else if (qm_str_starts(type, "pc-"))
        p = type + 3;
    else if (qm_str_starts(type, "virt-"))
        p = type + 5;
    if (!p || !isdigit((unsigned char)*p))
        return false;
    int major = 0, minor = -1;
    if (sscanf(p, "%d.%d", &major, &minor) != 2)
        return false;
    v->major = major;
    v->minor = minor;
    v->pve = 0;
    const char *plus = strstr(p, "+pve");
    if (plus)
        v->pve = atoi(plus + 4);
    return true;
}

/* Determines the machine type and version the way qemu-server's get_vm_machine() does. */
static int choose_machine(struct gen *g, const char *configured)
{
    const struct qm_qemu_caps *caps = g->in->caps;
    struct strbuf m = {0};

    if (!configured || strcmp(configured, "pc") == 0 || strcmp(configured, "q35") == 0 ||
        strcmp(configured, "virt") == 0) {
        const char *base = configured ? configured
                           : strcmp(g->arch, "aarch64") == 0 ? "virt" : "pc";
        if (g->winversion) {
            /*
             * Windows guests without a pinned version get 5.1, because the ACPI
             * layout changed in 5.2; those created with QEMU 9.1 or later keep
             * their creation version (from meta: creation-qemu=...).
             */
            int pin_major = 5, pin_minor = 1;
            const char *meta = gen_get(g, "meta");
            const char *cq = meta ? strstr(meta, "creation-qemu=") : NULL;
            int cmaj, cmin;
            if (cq && sscanf(cq + 14, "%d.%d", &cmaj, &cmin) == 2 &&
                version_cmp(cmaj, 9, cmin, 1, 0, 0) >= 0) {
                pin_major = cmaj;
                pin_minor = cmin;
            }
            int pin_pve = 0;
            if (version_cmp(caps->major, pin_major, caps->minor, pin_minor, 0, 0) < 0) {
                pin_major = caps->major;
                pin_minor = caps->minor;
                pin_pve = pve_revision(pin_major, pin_minor);
            }
            const char *family = strcmp(base, "pc") == 0    ? "pc-i440fx-"
                                 : strcmp(base, "q35") == 0 ? "pc-q35-"
                                                            : "virt-";
            sb_addf(&m, "%s%d.%d", family, pin_major, pin_minor);
            if (pin_pve)
                sb_addf(&m, "+pve%d", pin_pve);
        } else {
            sb_addf(&m, "%s+pve%d", base, pve_revision(caps->major, caps->minor));
        }
    } else {
        sb_add(&m, configured);
    }

    if (!strstr(m.buf, "+pve")) {
        /* Pinned versions without a revision stay at +pve0. */
        bool pxe = qm_str_ends(m.buf, ".pxe");
        if (pxe)
            m.buf[m.len -= 4] = '\0';
        sb_add(&m, "+pve0");
        if (pxe)
            sb_add(&m, ".pxe");
    }
    g->machine_type = sb_detach(&m);

    if (!machine_version_of(g->machine_type, &g->mver)) {
        g->mver.major = caps->major;
        g->mver.minor = caps->minor;
        g->mver.pve = pve_revision(caps->major, caps->minor);
    }
    g->q35 = qm_str_starts(g->machine_type, "q35") || qm_str_starts(g->machine_type, "pc-q35");

    if (qm_str_ends(g->machine_type, ".pxe")) {
        g->machine_type[strlen(g->machine_type) - 4] = '\0';
        g->use_old_bios_files = true;
    } else {
        g->use_old_bios_files = !gen_machine_at_least(g, 2, 4, 0);
    }

    if (version_cmp(caps->major, g->mver.major, caps->minor, g->mver.minor, 0, 0) < 0) {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        return qm_fail(g->err, 400,
                       "Installed QEMU version '%d.%d.%d' is too old to run machine type '%s',"
                       " please upgrade node '%s'",
                       caps->major, caps->minor, caps->micro, g->machine_type, host);
    }
    if (g->mver.pve > pve_revision(g->mver.major, g->mver.minor))
        return qm_fail(g->err, 400,
                       "Installed qemu-server (max feature level for %d.%d is pve%d) is too old"
                       " to run machine type '%s'",
                       g->mver.major, g->mver.minor, pve_revision(g->mver.major, g->mver.minor),
                       g->machine_type);
    return 0;
}

/* Boot order: device name -> bootindex, from "boot: order=..." or the legacy "boot: cdn". */
struct bootorder {
    struct strvec keys;
    struct strvec values;
};

static void bootorder_set(struct bootorder *b, const char *key, int index)
{
    sv_push(&b->keys, key);
    sv_pushf(&b->values, "%d", index);
}

const char *gen_bootindex(const struct gen *g, const char *key)
{
    if (!g->boot_keys)
        return NULL;
    for (size_t i = 0; i < g->boot_keys->n; i++)
        if (strcmp(g->boot_keys->v[i], key) == 0)
            return g->boot_values->v[i];
    return NULL;
}

static const char *const drive_prefixes[] = {"ide", "scsi", "virtio", "sata"};
static const int drive_max[] = {4, 31, 16, 6};

static bool drive_is_cdrom_value(const char *value)
{
    struct qm_propstr ps = {0};
    bool cdrom = false;

    if (qm_propstr_parse("ide0", value, &ps, NULL) == 0) {
        const char *media = ps_get(&ps, "media");
        const char *file = ps_get(&ps, "file");
        cdrom = (media && strcmp(media, "cdrom") == 0) ||
                (file && (strcmp(file, "cdrom") == 0 || strcmp(file, "none") == 0) && media &&
                 strcmp(media, "cdrom") == 0);
    }
    qm_propstr_free(&ps);
    return cdrom;
}

static void bootorder_legacy(struct gen *g, const char *legacy, struct bootorder *b)
{
    int next_c = 0, next_d = 0, next_n = 0;
    const char *p = legacy ? legacy : "cdn";

    for (int i = 1; *p; p++, i++) {
        if (*p == 'c')
            next_c = i * 100;
        else if (*p == 'd')
            next_d = i * 100;
        else if (*p == 'n')
            next_n = i * 100;
    }
    const char *bootdisk = gen_get(g, "bootdisk");
    for (size_t f = 0; f < QM_ARRAY_SIZE(drive_prefixes); f++) {
        for (int i = 0; i < drive_max[f]; i++) {
            char key[16];
            snprintf(key, sizeof(key), "%s%d", drive_prefixes[f], i);
            const char *v = gen_get(g, key);
            if (!v)
                continue;
            if (drive_is_cdrom_value(v)) {
                if (next_d)
                    bootorder_set(b, key, next_d++);
            } else if (next_c) {
                if (bootdisk && strcmp(bootdisk, key) == 0)
                    bootorder_set(b, key, next_c);
                next_c++;
            }
        }
    }
    if (next_n) {
        for (int i = 0; i < 32; i++) {
            char key[16];
            snprintf(key, sizeof(key), "net%d", i);
            if (gen_get(g, key))
                bootorder_set(b, key, next_n++);
        }
    }
}

static int device_bootorder(struct gen *g, struct bootorder *b)
{
    /* An empty "boot:" line means no boot devices, not the legacy default. */
    const char *boot = qm_conf_get(g->conf, "boot");
    struct qm_propstr ps = {0};

    if (!boot) {
        bootorder_legacy(g, NULL, b);
        return 0;
    }
    if (*boot == '\0')
        return 0;
    if (qm_propstr_parse("boot", boot, &ps, g->err) < 0)
        return -1;
    const char *legacy = ps_get(&ps, "legacy");
    const char *order = ps_get(&ps, "order");
    if (legacy) {
        bootorder_legacy(g, legacy, b);
    } else if (order) {
        char *copy = qm_strdup(order);
        char *save = NULL;
        int i = 100;
        for (char *dev = strtok_r(copy, ";, ", &save); dev; dev = strtok_r(NULL, ";, ", &save))
            bootorder_set(b, dev, i++);
        free(copy);
    }
    qm_propstr_free(&ps);
    return 0;
}

static void add_smbios(struct gen *g)
{
    const char *smbios = gen_get(g, "smbios1");
    struct qm_propstr ps = {0};

    if (!smbios || qm_propstr_parse("smbios1", smbios, &ps, NULL) < 0)
        return;
    /* Keys in sorted order, as qemu-server prints them; commas are doubled for QEMU. */
    static const char *const keys[] = {"family", "manufacturer", "product", "serial",
                                       "sku",    "uuid",         "version"};
    bool base64 = ps_bool(&ps, "base64", false);
    struct strbuf sb = {0};
    sb_add(&sb, "type=1");
    for (size_t i = 0; i < QM_ARRAY_SIZE(keys); i++) {
        const char *v = ps_get(&ps, keys[i]);
        char *decoded = NULL;
        if (v && base64 && strcmp(keys[i], "uuid") != 0) {
            size_t len;
            decoded = qm_base64_decode(v, &len);
            if (!decoded)
                gen_warn(g, "smbios1: ignoring %s, which is not valid base64", keys[i]);
            v = decoded;
        }
        /* Like qemu-server, leave out empty values and "0". */
        if (v && *v && strcmp(v, "0") != 0) {
            sb_addf(&sb, ",%s=", keys[i]);
            for (const char *c = v; *c; c++) {
                if (*c == ',')
                    sb_addc(&sb, ',');
                sb_addc(&sb, *c);
            }
        }
        free(decoded);
    }
    sv_push(&g->cmd, "-smbios");
    sv_push(&g->cmd, sb.buf);
    sb_free(&sb);
    qm_propstr_free(&ps);
}

/*
 * Appends the node's TLS certificate to the SPICE options. Proxmox builds of
 * QEMU read it from /etc/pve/local themselves; upstream QEMU looks for
 * server-cert.pem in its working folder and fails to start without it. The
 * CA is pve-root-ca.pem when the node has one, else the certificate itself,
 * which works for the self-signed certificate that qmd creates.
 */
static void add_spice_certificates(struct gen *g, struct strbuf *options)
{
    const struct qm_paths *paths = g->in->paths;
    char *ca = qm_sprintf("%s/pve-root-ca.pem", paths->etc);

    if (gen_host_file_size(g->in->host, ca) < 0) {
        free(ca);
        ca = qm_sprintf("%s/pve-ssl.pem", paths->local_dir);
    }
    sb_addf(options, ",x509-key-file=%s/pve-ssl.key,x509-cert-file=%s/pve-ssl.pem"
                     ",x509-cacert-file=%s",
            paths->local_dir, paths->local_dir, ca);
    free(ca);
}

struct vga {
    char *type;
    char *memory;
    char *clipboard;
    int qxlnum;
};

static void parse_vga(struct gen *g, struct vga *vga)
{
    const char *v = gen_get(g, "vga");
    struct qm_propstr ps = {0};

    memset(vga, 0, sizeof(*vga));
    if (v && qm_propstr_parse("vga", v, &ps, NULL) == 0) {
        const char *type = ps_get(&ps, "type");
        if (type)
            vga->type = qm_strdup(type);
        if (ps_get(&ps, "memory"))
            vga->memory = qm_strdup(ps_get(&ps, "memory"));
        if (ps_get(&ps, "clipboard"))
            vga->clipboard = qm_strdup(ps_get(&ps, "clipboard"));
    }
    qm_propstr_free(&ps);
    if (vga->type && qm_str_starts(vga->type, "qxl")) {
        vga->qxlnum = vga->type[3] ? atoi(vga->type + 3) : 1;
        free(vga->type);
        vga->type = qm_strdup("qxl");
    }
    if (!vga->type) {
        if (strcmp(g->arch, "aarch64") == 0)
            vga->type = qm_strdup("virtio");
        else
            vga->type = qm_strdup(!g->winversion || g->winversion >= 6 ? "std" : "cirrus");
    }
}

static const char *vga_model(const struct gen *g, const char *type)
{
    bool arm = strcmp(g->arch, "aarch64") == 0;

    if (strcmp(type, "cirrus") == 0)
        return "cirrus-vga";
    if (strcmp(type, "std") == 0)
        return "VGA";
    if (strcmp(type, "vmware") == 0)
        return "vmware-svga";
    if (strcmp(type, "virtio") == 0)
        return arm ? "virtio-gpu" : "virtio-vga";
    if (strcmp(type, "virtio-gl") == 0)
        return arm ? "virtio-gpu-gl" : "virtio-vga-gl";
    return NULL;
}

static int vga_device(struct gen *g, const struct vga *vga, int id, char **out)
{
    const char *type = vga_model(g, vga->type);
    char idbuf[16], addr[64];
    struct strbuf sb = {0};

    if (vga->qxlnum)
        type = id ? "qxl" : "qxl-vga";
    if (!type)
        return qm_fail(g->err, 400, "no device type for vga type '%s'", vga->type);
    snprintf(idbuf, sizeof(idbuf), id ? "vga%d" : "vga", id);
    sb_addf(&sb, "%s,id=%s", type, idbuf);
    if (vga->memory) {
        long mb = atol(vga->memory);
        if (qm_str_starts(vga->type, "virtio"))
            sb_addf(&sb, ",max_hostmem=%ld", mb * 1024 * 1024);
        else if (vga->qxlnum)
            sb_addf(&sb, ",vgamem_mb=%ld,ram_size_mb=%ld,vram_size_mb=%ld", mb, mb * 4, mb * 2);
        else
            sb_addf(&sb, ",vgamem_mb=%ld", mb);
    } else if (vga->qxlnum && id) {
        sb_add(&sb, ",ram_size=67108864,vram_size=33554432");
    }
    if (vga->qxlnum && (!*g->ostype || strcmp(g->ostype, "other") == 0 ||
                        (g->ostype[0] == 'l' && isdigit((unsigned char)g->ostype[1]))) &&
        gen_machine_at_least(g, 4, 1, 0))
        sb_add(&sb, ",max_outputs=4");
    if (g->q35 && id == 0)
        sb_add(&sb, gen_pcie_addr("vga", addr, sizeof(addr)));
    else
        sb_add(&sb, gen_pci_addr(g, idbuf, addr, sizeof(addr)));
    if (strcmp(type, "VGA") == 0 && g->winversion) {
        if (!g->ovmf)
            sb_add(&sb, ",edid=off");
    }
    *out = sb_detach(&sb);
    return 0;
}

static int add_serial(struct gen *g)
{
    const struct qm_paths *paths = g->in->paths;

    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof(key), "serial%d", i);
        const char *v = gen_get(g, key);
        if (!v)
            continue;
        if (strcmp(v, "socket") == 0) {
            sv_push(&g->devices, "-chardev");
            sv_pushf(&g->devices, "socket,id=serial%d,path=%s/%d.serial%d,server=on,wait=off", i,
                     paths->run_dir, g->in->vmid, i);
            if (strcmp(g->arch, "aarch64") == 0 && i == 0) {
                sv_push(&g->devices, "-serial");
                sv_pushf(&g->devices, "chardev:serial%d", i);
                continue;
            }
        } else {
            if (!qm_str_starts(v, "/dev/"))
                return qm_fail(g->err, 400, "serial%d: invalid serial device '%s'", i, v);
            sv_push(&g->devices, "-chardev");
            sv_pushf(&g->devices, "serial,id=serial%d,path=%s", i, v);
        }
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "isa-serial,chardev=serial%d", i);
    }
    return 0;
}

/*
 * Adds the audio0 device, its codecs and the backend they play to, as
 * qemu-server does for machine versions 4.0 and later.
 */
static int add_audio(struct gen *g)
{
    const char *value = gen_get(g, "audio0");
    struct qm_propstr ps = {0};
    char addr[64];

    if (!value || !gen_machine_at_least(g, 4, 0, 0))
        return 0;
    if (qm_propstr_parse("audio0", value, &ps, g->err) < 0)
        return -1;
    const char *device = ps_get(&ps, "device");
    const char *driver = ps_get(&ps, "driver");
    if (!driver)
        driver = "spice";
    if (!device) {
        qm_propstr_free(&ps);
        return qm_fail(g->err, 400, "audio0: missing audio device");
    }
    char *backend = qm_sprintf("%s-backend0", driver);
    /* Machine versions before 4.2 connect the codecs to the default backend. */
    char *audiodev = gen_machine_at_least(g, 4, 2, 0) ? qm_sprintf(",audiodev=%s", backend)
                                                      : qm_strdup("");
    const char *pci = gen_pci_addr(g, "audio0", addr, sizeof(addr));
    int rc = 0;

    if (strcmp(device, "AC97") == 0) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "AC97,id=audiodev0%s%s", pci, audiodev);
    } else if (qm_str_ends(device, "intel-hda")) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "%s,id=audiodev0%s", device, pci);
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "hda-micro,id=audiodev0-codec0,bus=audiodev0.0,cad=0%s",
                 audiodev);
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "hda-duplex,id=audiodev0-codec1,bus=audiodev0.0,cad=1%s",
                 audiodev);
    } else {
        rc = qm_fail(g->err, 400, "audio0: unknown audio device '%s'", device);
    }
    if (rc == 0) {
        sv_push(&g->devices, "-audiodev");
        sv_pushf(&g->devices, "%s,id=%s", driver, backend);
    }
    free(audiodev);
    free(backend);
    qm_propstr_free(&ps);
    return rc;
}

static void add_timer_flags(struct gen *g)
{
    bool acpi = gen_bool(g, "acpi", true);
    const char *tdf = gen_get(g, "tdf");
    const char *localtime = gen_get(g, "localtime");
    const char *startdate = gen_get(g, "startdate");
    bool use_tdf = tdf && str_true(tdf);
    bool use_localtime = localtime && str_true(localtime);

    if (g->winversion >= 5) {
        if (!localtime)
            use_localtime = true;
        if (acpi && !tdf)
            use_tdf = true;
    }
    if (g->winversion >= 6) {
        sv_push(&g->cmd, "-global");
        sv_push(&g->cmd, "kvm-pit.lost_tick_policy=discard");
        if (strcmp(g->arch, "aarch64") != 0)
            sv_push(&g->machine_flags, "hpet=off");
    } else if (strcmp(g->ostype, "l26") == 0 && gen_version_guard(g, 10, 1, 0)) {
        if (strcmp(g->arch, "aarch64") != 0)
            sv_push(&g->machine_flags, "hpet=off");
    }
    if (use_tdf)
        sv_push(&g->rtc_flags, "driftfix=slew");
    if (startdate && strcmp(startdate, "now") != 0)
        sv_pushf(&g->rtc_flags, "base=%s", startdate);
    else if (use_localtime)
        sv_push(&g->rtc_flags, "base=localtime");
}

static void add_agent(struct gen *g)
{
    const char *agent = gen_get(g, "agent");
    struct qm_propstr ps = {0};
    char addr[64];

    if (!agent || qm_propstr_parse("agent", agent, &ps, NULL) < 0)
        return;
    if (ps_bool(&ps, "enabled", false)) {
        const char *type = ps_get(&ps, "type");
        sv_push(&g->devices, "-chardev");
        sv_pushf(&g->devices, "socket,path=%s/%d.qga,server=on,wait=off,id=qga0",
                 g->in->paths->run_dir, g->in->vmid);
        if (!type || strcmp(type, "virtio") == 0) {
            sv_push(&g->devices, "-device");
            sv_pushf(&g->devices, "virtio-serial,id=qga0%s",
                     gen_pci_addr(g, "qga0", addr, sizeof(addr)));
            sv_push(&g->devices, "-device");
            sv_push(&g->devices, "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0");
        } else if (strcmp(type, "isa") == 0) {
            sv_push(&g->devices, "-device");
            sv_push(&g->devices, "isa-serial,chardev=qga0");
        }
    }
    qm_propstr_free(&ps);
}

static int add_nets(struct gen *g, const struct bootorder *bo)
{
    char addr[64];

    for (int i = 0; i < 32; i++) {
        char key[16];
        snprintf(key, sizeof(key), "net%d", i);
        const char *v = gen_get(g, key);
        if (!v)
            continue;
        struct qm_propstr ps = {0};
        if (qm_propstr_parse(key, v, &ps, g->err) < 0)
            return -1;
        const char *model = ps_get(&ps, "model");
        const char *mac = ps_get(&ps, "macaddr");
        const char *bridge = ps_get(&ps, "bridge");
        const char *queues_s = ps_get(&ps, "queues");
        const char *mtu_s = ps_get(&ps, "mtu");
        int queues = queues_s ? atoi(queues_s) : 0;
        if (!model) {
            qm_propstr_free(&ps);
            return qm_fail(g->err, 400, "%s: missing network card model", key);
        }
        bool virtio = strcmp(model, "virtio") == 0;
        bool native = strcmp(g->arch, g->in->host->arch) == 0;

        /* -netdev */
        struct strbuf nd = {0};
        if (bridge) {
            char ifname[32];
            snprintf(ifname, sizeof(ifname), "tap%di%d", g->in->vmid, i);
            if (strlen(ifname) >= 16) {
                qm_propstr_free(&ps);
                return qm_fail(g->err, 400,
                               "interface name '%s' is too long (max 15 character)", ifname);
            }
            sb_addf(&nd, "type=tap,id=%s,ifname=%s,script=%s/pve-bridge,downscript=%s/pve-bridgedown",
                    key, ifname, g->in->paths->helper_dir, g->in->paths->helper_dir);
            if (native && g->in->host->vhost_net && virtio)
                sb_add(&nd, ",vhost=on");
        } else {
            const char *name = gen_get(g, "name");
            if (name)
                sb_addf(&nd, "type=user,id=%s,hostname=%s", key, name);
            else
                sb_addf(&nd, "type=user,id=%s,hostname=vm%d", key, g->in->vmid);
        }
        /*
         * qemu-server adds "queues" to user networking as well, which
         * upstream QEMU rejects because a user netdev has one queue.
         */
        if (queues && virtio && (bridge || g->pve))
            sb_addf(&nd, ",queues=%d", queues);
        else if (queues && virtio)
            gen_warn(g, "netdev %s: ignoring queues '%d', user networking has one queue", key,
                     queues);
        sv_push(&g->devices, "-netdev");
        sv_push(&g->devices, nd.buf);
        sb_free(&nd);

        /* -device */
        gen_version_guard(g, 10, 0, 1);
        char random_mac[18];
        if (!mac) {
            /*
             * Like qemu-server for a configuration written without a MAC: a
             * random address under the default mac_prefix of datacenter.cfg.
             */
            unsigned char bytes[3] = {0};
            if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
                gen_warn(g, "%s: getrandom failed, so the MAC address is not random", key);
            snprintf(random_mac, sizeof(random_mac), "BC:24:11:%02X:%02X:%02X", bytes[0],
                     bytes[1], bytes[2]);
            mac = random_mac;
        }
        struct strbuf dev = {0};
        sb_addf(&dev, "%s,mac=%s,netdev=%s%s,id=%s", virtio ? "virtio-net-pci" : model, mac,
                key, gen_pci_addr(g, key, addr, sizeof(addr)), key);
        if (queues > 1 && virtio) {
            sb_addf(&dev, ",vectors=%d,mq=on", queues * 2 + 2);
            if (gen_machine_at_least(g, 7, 1, 0))
                sb_add(&dev, ",packed=on");
        }
        if (virtio && gen_machine_at_least(g, 7, 1, 0))
            sb_add(&dev, ",rx_queue_size=1024,tx_queue_size=256");
        for (size_t b = 0; b < bo->keys.n; b++)
            if (strcmp(bo->keys.v[b], key) == 0)
                sb_addf(&dev, ",bootindex=%s", bo->values.v[b]);
        if (virtio && bridge) {
            int bmtu = gen_host_bridge_mtu(g->in->host, bridge);
            int mtu = mtu_s ? atoi(mtu_s) : 0;
            if (mtu == 0 || mtu == 1) {
                mtu = bmtu;
            } else if (mtu < 576) {
                sb_free(&dev);
                qm_propstr_free(&ps);
                return qm_fail(g->err, 400,
                               "netdev %s: MTU '%d' is smaller than the IP minimum MTU '576'",
                               key, mtu);
            } else if (mtu > bmtu) {
                sb_free(&dev);
                qm_propstr_free(&ps);
                return qm_fail(g->err, 400,
                               "netdev %s: MTU '%d' is bigger than the bridge MTU '%d'", key,
                               mtu, bmtu);
            }
            if (gen_machine_at_least(g, 10, 0, 1) || mtu != 1500)
                sb_addf(&dev, ",host_mtu=%d", mtu);
        } else if (mtu_s) {
            gen_warn(g, "netdev %s: ignoring MTU '%s', %s", key, mtu_s,
                     bridge ? "not using VirtIO" : "no bridge configured");
        }
        if (g->use_old_bios_files) {
            static const char *const roms[][2] = {
                {"virtio-net-pci", "pxe-virtio.rom"}, {"e1000", "pxe-e1000.rom"},
                {"e1000e", "pxe-e1000e.rom"},         {"ne2k", "pxe-ne2k_pci.rom"},
                {"pcnet", "pxe-pcnet.rom"},           {"rtl8139", "pxe-rtl8139.rom"}};
            const char *device = virtio ? "virtio-net-pci" : model;
            for (size_t r = 0; r < QM_ARRAY_SIZE(roms); r++)
                if (strcmp(roms[r][0], device) == 0)
                    sb_addf(&dev, ",romfile=%s", roms[r][1]);
        }
        if (virtio) {
            const char *tunnel = ps_get(&ps, "host-tunnel");
            if (gen_machine_at_least(g, 11, 0, 1)) {
                if (!tunnel || !str_true(tunnel))
                    sb_add(&dev, ",host_tunnel=off");
            } else if (gen_machine_at_least(g, 10, 2, 0) && tunnel && !str_true(tunnel)) {
                sb_add(&dev, ",host_tunnel=off");
            }
        }
        sv_push(&g->devices, "-device");
        sv_push(&g->devices, dev.buf);
        sb_free(&dev);
        qm_propstr_free(&ps);
    }
    return 0;
}

/* The devices of qemu-server's pve-q35-4.0.cfg, for QEMU builds without that file. */
static void add_q35_layout(struct strvec *out)
{
    static const char *const devices[] = {
        "ich9-usb-ehci1,id=ehci,multifunction=on,bus=pcie.0,addr=1d.7",
        "ich9-usb-uhci1,id=uhci-1,multifunction=on,bus=pcie.0,addr=1d.0,masterbus=ehci.0,"
        "firstport=0",
        "ich9-usb-uhci2,id=uhci-2,multifunction=on,bus=pcie.0,addr=1d.1,masterbus=ehci.0,"
        "firstport=2",
        "ich9-usb-uhci3,id=uhci-3,multifunction=on,bus=pcie.0,addr=1d.2,masterbus=ehci.0,"
        "firstport=4",
        "i82801b11-bridge,id=pcidmi,bus=pcie.0,addr=1e.0",
        "pci-bridge,id=pci.0,bus=pcidmi,addr=1.0,chassis_nr=1",
        "pci-bridge,id=pci.1,bus=pcidmi,addr=2.0,chassis_nr=2",
        "pci-bridge,id=pci.2,bus=pcidmi,addr=3.0,chassis_nr=3",
        "pci-bridge,id=pci.3,bus=pcidmi,addr=4.0,chassis_nr=4",
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(devices); i++) {
        sv_push(out, "-device");
        sv_push(out, devices[i]);
    }
}

static void splice_strings(struct strvec *sv, size_t at, const char *a, const char *b)
{
    sv_push(sv, a);
    sv_push(sv, b);
    char *first = sv->v[sv->n - 2], *second = sv->v[sv->n - 1];
    memmove(&sv->v[at + 2], &sv->v[at], (sv->n - 2 - at) * sizeof(char *));
    sv->v[at] = first;
    sv->v[at + 1] = second;
}

static void add_bridges(struct gen *g)
{
    const char *scsihw = gen_get(g, "scsihw");
    char addr[64], name[16];

    if (g->bridges & (1u << 4))
        g->bridges |= 1u << 1;
    if (!g->q35) {
        if (gen_machine_at_least(g, 2, 3, 0))
            g->bridges |= (1u << 1) | (1u << 2);
        if (scsihw && qm_str_starts(scsihw, "virtio-scsi-single"))
            g->bridges |= 1u << 3;
    }
    /* Highest first, each inserted at the front, so pci.1 ends up first. */
    for (int k = 31; k >= 1; k--) {
        if (!(g->bridges & (1u << k)))
            continue;
        if (g->q35 && k < 4)
            continue;
        snprintf(name, sizeof(name), "pci.%d", k);
        gen_pci_addr(g, name, addr, sizeof(addr));
        char *dev = qm_sprintf("pci-bridge,id=pci.%d,chassis_nr=%d%s", k, k, addr);
        if (g->q35 && g->devices.n >= 2)
            splice_strings(&g->devices, 2, "-device", dev);
        else
            splice_strings(&g->devices, 0, "-device", dev);
        free(dev);
    }
}

static void add_power_state_flags(struct gen *g, const struct qm_propstr *machine)
{
    if (qm_str_starts(g->machine_type, "virt"))
        return;
    const char *object = g->q35 ? "ICH9-LPC" : "PIIX4_PM";
    bool def = !gen_version_guard(g, 9, 2, 1);
    bool s3 = ps_bool(machine, "enable-s3", def);
    bool s4 = ps_bool(machine, "enable-s4", def);

    if (!s3) {
        sv_push(&g->cmd, "-global");
        sv_pushf(&g->cmd, "%s.disable_s3=1", object);
    }
    if (!s4) {
        sv_push(&g->cmd, "-global");
        sv_pushf(&g->cmd, "%s.disable_s4=1", object);
    }
}

/* Splits "args" like a shell would for simple quoting: words, '...' and "...". */
static int split_args(const char *args, struct strvec *out, struct qm_error *err)
{
    const char *p = args;

    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        struct strbuf word = {0};
        sb_add(&word, "");
        while (*p && !isspace((unsigned char)*p)) {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                while (*p && *p != q) {
                    if (q == '"' && *p == '\\' && p[1])
                        p++;
                    sb_addc(&word, *p++);
                }
                if (!*p) {
                    sb_free(&word);
                    return qm_fail(err, 400, "args: unterminated quote in '%s'", args);
                }
                p++;
            } else if (*p == '\\' && p[1]) {
                sb_addc(&word, p[1]);
                p += 2;
            } else {
                sb_addc(&word, *p++);
            }
        }
        sv_push(out, word.buf);
        sb_free(&word);
    }
    return 0;
}

static void gen_free(struct gen *g)
{
    free(g->machine_type);
    free(g->ovmf_code);
    free(g->ovmf_vars);
    sv_free(&g->cmd);
    sv_free(&g->devices);
    sv_free(&g->machine_flags);
    sv_free(&g->rtc_flags);
}

static void append_all(struct strvec *dst, const struct strvec *src)
{
    for (size_t i = 0; i < src->n; i++)
        sv_push(dst, src->v[i]);
}

static char *join(const struct strvec *sv, const char *sep)
{
    struct strbuf sb = {0};

    sb_add(&sb, "");
    for (size_t i = 0; i < sv->n; i++) {
        if (i)
            sb_add(&sb, sep);
        sb_add(&sb, sv->v[i]);
    }
    return sb_detach(&sb);
}

static int generate(struct gen *g, struct qm_propstr *machine, struct bootorder *bo)
{
    const struct qm_cmdline_input *in = g->in;
    const struct qm_qemu_caps *caps = in->caps;
    const struct qm_paths *paths = in->paths;
    char addr[64];

    if (caps->major < 6)
        return qm_fail(g->err, 500,
                       "Detected old QEMU binary ('%d.%d.%d', at least 6.0 is required)",
                       caps->major, caps->minor, caps->micro);
    if (gen_parse_bios(g) < 0 || choose_machine(g, ps_get(machine, "type")) < 0)
        return -1;
    g->boot_keys = &bo->keys;
    g->boot_values = &bo->values;
    g->kvm = gen_bool(g, "kvm", strcmp(g->arch, in->host->arch) == 0);
    if (g->kvm && !in->host->kvm)
        return qm_fail(g->err, 400,
                       "KVM virtualisation configured, but not available. Either disable in VM"
                       " configuration or enable in BIOS.");

    const char *affinity = gen_get(g, "affinity");
    if (affinity) {
        sv_push(&g->cmd, "/usr/bin/taskset");
        sv_push(&g->cmd, "--cpu-list");
        sv_push(&g->cmd, "--all-tasks");
        sv_push(&g->cmd, affinity);
    }
    /*
     * A VM of another architecture than the host's runs in that architecture's
     * emulator, unless qemu_binary_ARCH names another binary.
     */
    char *binary = NULL;
    if (gen_qemu_binary(g, &binary) < 0)
        return -1;
    if (binary)
        sv_push(&g->cmd, binary);
    else if (strcmp(g->arch, in->host->arch) == 0)
        sv_push(&g->cmd, caps->binary);
    else
        sv_pushf(&g->cmd, "/usr/bin/qemu-system-%s", g->arch);
    free(binary);
    /* "-id" exists only in Proxmox builds; upstream QEMU rejects it. */
    if (g->pve) {
        sv_push(&g->cmd, "-id");
        sv_pushf(&g->cmd, "%d", in->vmid);
    }

    const char *name = gen_get(g, "name");
    char *vmname = name ? qm_strdup(name) : qm_sprintf("vm%d", in->vmid);
    sv_push(&g->cmd, "-name");
    if (gen_qemu_at_least(g, 11, 0))
        sv_push(&g->cmd, vmname);
    else
        sv_pushf(&g->cmd, "%s,debug-threads=on", vmname);
    free(vmname);
    sv_push(&g->cmd, "-no-shutdown");

    sv_push(&g->cmd, "-chardev");
    sv_pushf(&g->cmd, "socket,id=qmp,path=%s/%d.qmp,server=on,wait=off", paths->run_dir,
             in->vmid);
    sv_push(&g->cmd, "-mon");
    sv_push(&g->cmd, "chardev=qmp,mode=control");
    if (gen_machine_at_least(g, 2, 12, 0)) {
        sv_push(&g->cmd, "-chardev");
        sv_pushf(&g->cmd, "socket,id=qmp-event,path=%s,%s", paths->event_socket,
                 gen_qemu_at_least(g, 9, 2) ? "reconnect-ms=5000" : "reconnect=5");
        sv_push(&g->cmd, "-mon");
        sv_push(&g->cmd, "chardev=qmp-event,mode=control");
    }
    sv_push(&g->cmd, "-pidfile");
    sv_pushf(&g->cmd, "%s/%d.pid", paths->run_dir, in->vmid);
    sv_push(&g->cmd, "-daemonize");

    add_smbios(g);

    char cvm_type[16] = "";
    const char *sev = gen_get(g, "amd-sev");
    if (sev) {
        struct qm_propstr sev_ps = {0};
        if (qm_propstr_parse("amd-sev", sev, &sev_ps, g->err) < 0)
            return -1;
        const char *type = ps_get(&sev_ps, "type");
        snprintf(cvm_type, sizeof(cvm_type), "%s", type ? type : "std");
        qm_propstr_free(&sev_ps);
        g->cvm_type = cvm_type;
    }
    if (g->ovmf && gen_efi(g) < 0)
        return -1;

    if (g->q35) {
        if (!g->pve) {
            add_q35_layout(&g->devices);
        } else {
            sv_push(&g->devices, "-readconfig");
            sv_push(&g->devices, gen_machine_at_least(g, 4, 0, 0)
                                     ? "/usr/share/qemu-server/pve-q35-4.0.cfg"
                                     : "/usr/share/qemu-server/pve-q35.cfg");
        }
    }

    /*
     * VMs that follow the latest machine version and were created before
     * QEMU 6.1 keep ACPI PCI hotplug off on q35, so that Linux NIC names stay.
     */
    const char *meta = gen_get(g, "meta");
    const char *cq = meta ? strstr(meta, "creation-qemu=") : NULL;
    int cmaj = 0, cmin = 0;
    bool created_before_61 = !cq || sscanf(cq + 14, "%d.%d", &cmaj, &cmin) != 2 ||
                             version_cmp(cmaj, 6, cmin, 1, 0, 0) < 0;
    const char *mtype = ps_get(machine, "type");
    bool unversioned = !mtype || strcmp(mtype, "pc") == 0 || strcmp(mtype, "q35") == 0 ||
                       strcmp(mtype, "virt") == 0;
    if (unversioned && created_before_61 && gen_qemu_at_least(g, 6, 1) && g->q35 &&
        strcmp(g->ostype, "l26") == 0) {
        sv_push(&g->cmd, "-global");
        sv_push(&g->cmd, "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off");
    }

    const char *vmgenid = gen_get(g, "vmgenid");
    if (vmgenid && strcmp(vmgenid, "0") != 0) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "vmgenid,guid=%s", vmgenid);
    }

    if (gen_usb_controllers(g) < 0)
        return -1;

    struct vga vga;
    parse_vga(g, &vga);
    int rc = 0;

    const char *tablet_s = gen_get(g, "tablet");
    bool tablet = tablet_s ? str_true(tablet_s) : true;
    if (!tablet_s && (vga.qxlnum || qm_str_starts(vga.type, "serial")))
        tablet = false;
    if (tablet) {
        bool ehci = g->q35 || strcmp(g->arch, "aarch64") == 0;
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "usb-tablet,id=tablet,bus=%s.0,port=1", ehci ? "ehci" : "uhci");
        if (strcmp(g->arch, "aarch64") == 0) {
            sv_push(&g->devices, "-device");
            sv_push(&g->devices, "usb-kbd,id=keyboard,bus=ehci.0,port=2");
        }
    }

    if (gen_hostpci(g, &vga.type) < 0 || gen_usb_devices(g) < 0 || add_serial(g) < 0 ||
        add_audio(g) < 0) {
        rc = -1;
        goto out;
    }
    /* A template starts only for backups, and its TPM state may be read-only. */
    if (!gen_bool(g, "template", false) && gen_tpm(g) < 0) {
        rc = -1;
        goto out;
    }

    long long sockets = 1, cores = 1, vcpus = 0;
    const char *v;
    if ((v = gen_get(g, "smp")))
        qm_parse_int(v, &sockets);
    if ((v = gen_get(g, "sockets")))
        qm_parse_int(v, &sockets);
    if ((v = gen_get(g, "cores")))
        qm_parse_int(v, &cores);
    /* Values beyond any host are caught here before their product can overflow. */
    long long maxcpus;
    if (sockets < 1 || cores < 1 || __builtin_mul_overflow(sockets, cores, &maxcpus) ||
        maxcpus > 65536) {
        rc = qm_fail(g->err, 400, "MAX %d vcpus allowed per VM on this node",
                     in->host->cpus > 0 ? in->host->cpus : 65536);
        goto out;
    }
    if ((v = gen_get(g, "vcpus")))
        qm_parse_int(v, &vcpus);
    if (vcpus <= 0)
        vcpus = maxcpus;
    if (in->host->cpus > 0 && maxcpus > in->host->cpus) {
        rc = qm_fail(g->err, 400, "MAX %d vcpus allowed per VM on this node", in->host->cpus);
        goto out;
    }
    const char *hotplug = gen_get(g, "hotplug");
    bool cpu_hotplug = hotplug && strstr(hotplug, "cpu");
    sv_push(&g->cmd, "-smp");
    if (cpu_hotplug && gen_machine_at_least(g, 2, 7, 0)) {
        sv_pushf(&g->cmd, "1,sockets=%lld,cores=%lld,maxcpus=%lld", sockets, cores, maxcpus);
        /* NOTE: the hot-pluggable vCPU devices for vcpus > 1 are not generated yet. */
    } else {
        sv_pushf(&g->cmd, "%lld,sockets=%lld,cores=%lld,maxcpus=%lld", vcpus, sockets, cores,
                 maxcpus);
    }
    sv_push(&g->cmd, "-nodefaults");
    sv_push(&g->cmd, "-boot");
    if (g->pve)
        sv_push(&g->cmd, "menu=on,strict=on,reboot-timeout=1000,"
                         "splash=/usr/share/qemu-server/bootsplash.jpg");
    else
        sv_push(&g->cmd, "menu=on,strict=on,reboot-timeout=1000");

    if (!gen_bool(g, "acpi", true))
        sv_push(&g->machine_flags, "acpi=off");
    if (!gen_bool(g, "reboot", true))
        sv_push(&g->cmd, "-no-reboot");

    if (strcmp(vga.type, "none") != 0 && !qm_str_starts(vga.type, "serial")) {
        char *dev = NULL;
        if (vga_device(g, &vga, 0, &dev) < 0) {
            rc = -1;
            goto out;
        }
        sv_push(&g->devices, "-device");
        sv_push(&g->devices, dev);
        free(dev);
        if (strcmp(vga.type, "virtio-gl") == 0) {
            sv_push(&g->cmd, "-display");
            sv_push(&g->cmd, "egl-headless,gl=core");
        }
        sv_push(&g->cmd, "-vnc");
        sv_pushf(&g->cmd, "unix:%s/%d.vnc,password=on", paths->run_dir, in->vmid);
    } else {
        if (strcmp(vga.type, "none") == 0) {
            sv_push(&g->cmd, "-vga");
            sv_push(&g->cmd, "none");
        }
        sv_push(&g->cmd, "-nographic");
    }

    add_timer_flags(g);

    if (gen_cpu(g) < 0 || gen_memory(g, sockets, cores) < 0) {
        rc = -1;
        goto out;
    }
    if (gen_bool(g, "freeze", false))
        sv_push(&g->cmd, "-S");
    if ((v = gen_get(g, "keyboard"))) {
        sv_push(&g->cmd, "-k");
        sv_push(&g->cmd, v);
    }

    add_agent(g);
    if (gen_rng(g) < 0) {
        rc = -1;
        goto out;
    }

    if (vga.clipboard && strcmp(vga.clipboard, "vnc") == 0 &&
        !(qm_str_starts(vga.type, "std") || qm_str_starts(vga.type, "cirrus") ||
          qm_str_starts(vga.type, "vmware") || qm_str_starts(vga.type, "virtio") ||
          qm_str_starts(vga.type, "qxl"))) {
        rc = qm_fail(g->err, 400, "vga type %s is not compatible with VNC clipboard", vga.type);
        goto out;
    }
    bool spice = vga.qxlnum || qm_str_starts(vga.type, "virtio");
    if (spice || (vga.clipboard && strcmp(vga.clipboard, "vnc") == 0)) {
        if (vga.qxlnum > 1) {
            if (g->winversion) {
                for (int i = 1; i < vga.qxlnum; i++) {
                    char *dev = NULL;
                    if (vga_device(g, &vga, i, &dev) < 0) {
                        rc = -1;
                        goto out;
                    }
                    sv_push(&g->devices, "-device");
                    sv_push(&g->devices, dev);
                    free(dev);
                }
            } else {
                long long ram = 134217728, vram = 67108864;
                if (vga.memory) {
                    ram = (long long)vga.qxlnum * 4 * atoll(vga.memory) * 1024 * 1024;
                    vram = (long long)vga.qxlnum * 2 * atoll(vga.memory) * 1024 * 1024;
                }
                sv_push(&g->cmd, "-global");
                sv_pushf(&g->cmd, "qxl-vga.ram_size=%lld", ram);
                sv_push(&g->cmd, "-global");
                sv_pushf(&g->cmd, "qxl-vga.vram_size=%lld", vram);
            }
        }
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "virtio-serial,id=spice%s",
                 gen_pci_addr(g, "spice", addr, sizeof(addr)));
        sv_push(&g->devices, "-chardev");
        if (vga.clipboard && strcmp(vga.clipboard, "vnc") == 0)
            sv_push(&g->devices, "qemu-vdagent,id=vdagent,name=vdagent,clipboard=on");
        else
            sv_push(&g->devices, "spicevmc,id=vdagent,name=vdagent");
        sv_push(&g->devices, "-device");
        sv_push(&g->devices, "virtserialport,chardev=vdagent,name=com.redhat.spice.0");
        if (spice) {
            const char *enh = gen_get(g, "spice_enhancements");
            struct qm_propstr eps = {0};
            if (enh)
                qm_propstr_parse("spice_enhancements", enh, &eps, NULL);
            if (ps_bool(&eps, "foldersharing", false)) {
                sv_push(&g->devices, "-chardev");
                sv_push(&g->devices, "spiceport,id=foldershare,name=org.spice-space.webdav.0");
                sv_push(&g->devices, "-device");
                sv_push(&g->devices,
                        "virtserialport,chardev=foldershare,name=org.spice-space.webdav.0");
            }
            /* NOTE: the port is the first free one from 61000; the check is not done here. */
            struct strbuf so = {0};
            sb_add(&so, "tls-port=61000,addr=127.0.0.1,tls-ciphers=HIGH,seamless-migration=on");
            const char *vs = ps_get(&eps, "videostreaming");
            if (vs)
                sb_addf(&so, ",streaming-video=%s", vs);
            if (!g->pve)
                add_spice_certificates(g, &so);
            sv_push(&g->devices, "-spice");
            sv_push(&g->devices, so.buf);
            sb_free(&so);
            qm_propstr_free(&eps);
        }
    }

    /* "balloon" is a size in MiB: any value but 0 keeps the balloon device. */
    const char *balloon = gen_get(g, "balloon");
    if (!balloon || strtoll(balloon, NULL, 10) != 0) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "virtio-balloon-pci,id=balloon0%s%s",
                 gen_pci_addr(g, "balloon0", addr, sizeof(addr)),
                 gen_machine_at_least(g, 6, 2, 0) ? ",free-page-reporting=on" : "");
    }

    const char *watchdog = gen_get(g, "watchdog");
    if (watchdog) {
        struct qm_propstr wps = {0};
        if (qm_propstr_parse("watchdog", watchdog, &wps, g->err) < 0) {
            rc = -1;
            goto out;
        }
        const char *model = ps_get(&wps, "model");
        const char *action = ps_get(&wps, "action");
        /*
         * ib700 is an ISA device. qemu-server gives it the watchdog's PCI
         * address all the same, which QEMU rejects, so only the Proxmox
         * line keeps that address.
         */
        bool isa = model && strcmp(model, "ib700") == 0;
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "%s%s", model ? model : "i6300esb",
                 isa && !g->pve ? "" : gen_pci_addr(g, "watchdog", addr, sizeof(addr)));
        if (action) {
            sv_push(&g->devices, "-watchdog-action");
            sv_push(&g->devices, action);
        }
        qm_propstr_free(&wps);
    }

    if (in->host->iscsi_initiator) {
        sv_push(&g->devices, "-iscsi");
        sv_pushf(&g->devices, "initiator-name=%s", in->host->iscsi_initiator);
    }

    if (gen_drives(g, &bo->keys, &bo->values) < 0 || add_nets(g, bo) < 0) {
        rc = -1;
        goto out;
    }

    add_bridges(g);

    if (!g->kvm)
        sv_push(&g->machine_flags, "accel=tcg");
    add_power_state_flags(g, machine);
    if (!qm_str_starts(g->machine_type, "virt") && !g->ovmf &&
        (strcmp(vga.type, "none") == 0 || qm_str_starts(vga.type, "serial")))
        sv_push(&g->machine_flags, "smm=off");

    char *type = qm_strdup(g->machine_type);
    char *plus = strstr(type, "+pve");
    if (plus)
        *plus = '\0';
    if (g->pve)
        sv_pushf(&g->machine_flags, "type=%s+pve%d", type, g->required_pve);
    else
        sv_pushf(&g->machine_flags, "type=%s", type);
    free(type);

    const char *viommu = ps_get(machine, "viommu");
    const char *aw_bits = ps_get(machine, "aw-bits");
    if (aw_bits && !viommu) {
        rc = qm_fail(g->err, 400, "cannot set aw-bits if no vIOMMU is configured");
        goto out;
    }
    if (viommu && strcmp(viommu, "intel") == 0 && !g->q35) {
        rc = qm_fail(g->err, 400, "to use Intel vIOMMU please set the machine type to q35");
        goto out;
    }
    if (viommu) {
        char *extra = aw_bits ? qm_sprintf(",aw-bits=%s", aw_bits) : qm_strdup("");
        if (strcmp(viommu, "intel") == 0) {
            splice_strings(&g->devices, 0, "-device",
                           "intel-iommu,intremap=on,caching-mode=on");
            if (*extra) {
                char *d = qm_sprintf("intel-iommu,intremap=on,caching-mode=on%s", extra);
                free(g->devices.v[1]);
                g->devices.v[1] = d;
            }
            sv_push(&g->machine_flags, "kernel-irqchip=split");
        } else if (strcmp(viommu, "virtio") == 0) {
            sv_push(&g->devices, "-device");
            sv_pushf(&g->devices, "virtio-iommu-pci%s", extra);
        }
        free(extra);
    }

    if (gen_sev(g) < 0) {
        rc = -1;
        goto out;
    }

    const char *ksm = gen_get(g, "allow-ksm");
    if (ksm && !str_true(ksm))
        sv_push(&g->machine_flags, "mem-merge=off");

    append_all(&g->cmd, &g->devices);
    if (g->rtc_flags.n) {
        sv_push(&g->cmd, "-rtc");
        char *s = join(&g->rtc_flags, ",");
        sv_push(&g->cmd, s);
        free(s);
    }
    if (g->machine_flags.n) {
        sv_push(&g->cmd, "-machine");
        char *s = join(&g->machine_flags, ",");
        sv_push(&g->cmd, s);
        free(s);
    }
    const char *args = gen_get(g, "args");
    if (args && split_args(args, &g->cmd, g->err) < 0)
        rc = -1;

out:
    free(vga.type);
    free(vga.memory);
    free(vga.clipboard);
    return rc;
}

int qm_qemu_cmdline(const struct qm_cmdline_input *in, struct strvec *argv,
                    struct strvec *warnings, struct qm_error *err)
{
    struct gen g = {0};
    struct qm_propstr machine = {0};
    struct bootorder bo = {0};

    g.in = in;
    g.conf = &in->conf->main;
    g.warnings = warnings;
    g.err = err;
    g.arch = in->host->arch;
    const char *arch = gen_get(&g, "arch");
    if (arch)
        g.arch = arch;
    const char *ostype = gen_get(&g, "ostype");
    g.ostype = ostype ? ostype : "";
    g.winversion = qm_windows_version(ostype);
    g.pve = in->caps->pve_build;

    /*
     * Templates only start for backups: keep the disks and what attaches
     * them, and run without KVM and display like qemu-server does.
     */
    struct qm_conf_section template_conf = {0};
    bool is_template = gen_bool(&g, "template", false);
    if (is_template) {
        static const char *const kept[] = {"scsihw", "bios", "name"};
        qm_conf_set(&template_conf, "template", "1");
        qm_conf_set(&template_conf, "kvm", "0");
        qm_conf_set(&template_conf, "vga", "none");
        for (size_t i = 0; i < QM_ARRAY_SIZE(kept); i++)
            if (gen_get(&g, kept[i]))
                qm_conf_set(&template_conf, kept[i], gen_get(&g, kept[i]));
        for (size_t i = 0; i < g.conf->n; i++) {
            const char *key = g.conf->entries[i].key;
            if (qm_str_starts(key, "ide") || qm_str_starts(key, "scsi") ||
                qm_str_starts(key, "virtio") || qm_str_starts(key, "sata") ||
                strcmp(key, "efidisk0") == 0 || strcmp(key, "tpmstate0") == 0)
                if (strcmp(key, "scsihw") != 0)
                    qm_conf_set(&template_conf, key, g.conf->entries[i].value);
        }
        g.conf = &template_conf;
        g.ostype = "";
        g.winversion = 0;
    }

    const char *m = gen_get(&g, "machine");
    int rc = 0;
    if (m && qm_propstr_parse("machine", m, &machine, err) < 0)
        rc = -1;
    if (rc == 0)
        rc = device_bootorder(&g, &bo);
    if (rc == 0)
        rc = generate(&g, &machine, &bo);
    if (rc == 0 && is_template) {
        /* Base volumes may be read-only, so writes go to a temporary overlay. */
        sv_push(&g.cmd, "-snapshot");
    }
    if (rc == 0)
        append_all(argv, &g.cmd);
    for (size_t i = 0; i < template_conf.n; i++) {
        free(template_conf.entries[i].key);
        free(template_conf.entries[i].value);
    }
    free(template_conf.entries);
    qm_propstr_free(&machine);
    sv_free(&bo.keys);
    sv_free(&bo.values);
    gen_free(&g);
    return rc;
}

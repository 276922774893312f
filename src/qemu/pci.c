/* Host PCI pass-through (hostpciN), by address or by PCI resource mapping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

#define MAX_HOSTPCI 16

/* One hostpciN entry: its options and the alternatives it may use. */
struct hostpci {
    struct qm_propstr ps;
    struct qm_host *alternatives;   /* each contains the functions of one alternative */
    size_t nalternatives;
    const struct qm_host *chosen;   /* the alternative in use */
    bool multifunction;             /* the chosen alternative has several functions */
    bool mdev;
    bool live_migration;
};

static void hostpci_free(struct hostpci *d)
{
    for (size_t i = 0; i < d->nalternatives; i++)
        gen_host_free_lists(&d->alternatives[i]);
    free(d->alternatives);
    qm_propstr_free(&d->ps);
    memset(d, 0, sizeof(*d));
}

static struct qm_host *add_alternative(struct hostpci *d)
{
    d->alternatives = qm_realloc(d->alternatives,
                                 (d->nalternatives + 1) * sizeof(*d->alternatives));
    struct qm_host *alt = &d->alternatives[d->nalternatives++];
    memset(alt, 0, sizeof(*alt));
    return alt;
}

/* Adds the host functions of "ADDR;ADDR..." to alt. */
static int resolve_addresses(struct gen *g, const char *list, struct qm_host *alt)
{
    char *copy = qm_strdup(list);
    char *save = NULL;
    int rc = 0;

    for (char *id = strtok_r(copy, ";", &save); id && rc == 0; id = strtok_r(NULL, ";", &save)) {
        struct qm_host found;
        if (gen_host_pci_find(g->in->host, id, &found) == 0)
            rc = qm_fail(g->err, 400, "no PCI device found for '%s'", id);
        for (size_t i = 0; i < found.npci; i++) {
            const struct qm_host_pci *p = &found.pci[i];
            qm_host_add_pci(alt, p->id, p->vendor, p->device, p->iommu_group, p->mdev);
        }
        gen_host_free_lists(&found);
    }
    free(copy);
    return rc;
}

/* Checks that the devices of a mapping's path still are what the mapping recorded. */
static int check_mapping_path(struct gen *g, const struct qm_pci_mapping *m, const char *path)
{
    struct qm_host alt = {0};
    int rc = resolve_addresses(g, path, &alt);

    for (size_t i = 0; rc == 0 && i < alt.npci; i++) {
        const struct qm_host_pci *p = &alt.pci[i];
        char id[32];
        snprintf(id, sizeof(id), "%s:%s", p->vendor, p->device);
        if (m->id && strcasecmp(m->id, id) != 0)
            rc = qm_fail(g->err, 400,
                         "PCI device mapping invalid (hardware probably changed): PCI device"
                         " '%s' has id '%s', expected '%s'",
                         p->id, id, m->id);
        else if (m->iommu_group >= 0 && p->iommu_group != m->iommu_group)
            rc = qm_fail(g->err, 400,
                         "PCI device mapping invalid (hardware probably changed): PCI device"
                         " '%s' is in IOMMU group %d, expected %d",
                         p->id, p->iommu_group, m->iommu_group);
    }
    gen_host_free_lists(&alt);
    return rc;
}

static int parse_hostpci(struct gen *g, const char *key, const char *value, struct hostpci *d)
{
    if (qm_propstr_parse(key, value, &d->ps, g->err) < 0)
        return -1;
    const char *host = ps_get(&d->ps, "host");
    const char *mapping = ps_get(&d->ps, "mapping");
    d->mdev = ps_get(&d->ps, "mdev") != NULL;

    if (host && mapping)
        return qm_fail(g->err, 400, "%s: cannot set both 'host' and 'mapping'", key);
    if (mapping) {
        const struct qm_pci_mapping *m = NULL;
        for (size_t i = 0; i < g->in->host->npci_mappings; i++)
            if (strcmp(g->in->host->pci_mappings[i].name, mapping) == 0)
                m = &g->in->host->pci_mappings[i];
        if (!m || m->paths.n == 0)
            return qm_fail(g->err, 400, "PCI device mapping not found for '%s'", mapping);
        d->live_migration = m->live_migration;
        for (size_t i = 0; i < m->paths.n; i++) {
            if (check_mapping_path(g, m, m->paths.v[i]) < 0)
                return -1;
            if (resolve_addresses(g, m->paths.v[i], add_alternative(d)) < 0)
                return -1;
        }
    } else if (host) {
        if (resolve_addresses(g, host, add_alternative(d)) < 0)
            return -1;
    } else {
        return qm_fail(g->err, 400, "%s: either 'host' or 'mapping' must be set", key);
    }
    for (size_t i = 0; i < d->nalternatives; i++)
        if (d->alternatives[i].npci > 1 && d->mdev)
            return qm_fail(g->err, 400, "cannot use mediated device with multifunction device");
    return 0;
}

/* Checks the rules of legacy IGD mode, which makes the device the only graphics adapter. */
static int check_legacy_igd(struct gen *g, const struct hostpci *d)
{
    const char *vga = gen_get(g, "vga");

    if (g->legacy_igd)
        return qm_fail(g->err, 400, "only one device can be assigned in legacy-igd mode");
    if (!vga || strcmp(vga, "none") != 0)
        return qm_fail(g->err, 400, "legacy IGD assignment requires VGA mode to be 'none'");
    if (!ps_bool(&d->ps, "rombar", true))
        return qm_fail(g->err, 400, "legacy IGD assignment requires rombar to be enabled");
    if (ps_bool(&d->ps, "x-vga", false))
        return qm_fail(g->err, 400, "legacy IGD assignment is not compatible with x-vga");
    if (d->mdev)
        return qm_fail(g->err, 400, "legacy IGD assignment is not compatible with mdev");
    if (g->q35)
        return qm_fail(g->err, 400, "legacy IGD assignment is not compatible with q35");
    if (d->alternatives[0].npci > 1)
        return qm_fail(g->err, 400,
                       "legacy IGD assignment is not compatible with multifunction devices");
    if (d->nalternatives > 1)
        return qm_fail(g->err, 400,
                       "legacy IGD assignment is not compatible with alternate devices");
    if (!qm_str_ends(d->alternatives[0].pci[0].id, "02.0"))
        return qm_fail(g->err, 400,
                       "legacy IGD assignment only works for devices on host bus 00:02.0");
    g->legacy_igd = true;
    return 0;
}

static bool id_used(const struct strvec *used, const char *id)
{
    for (size_t i = 0; i < used->n; i++)
        if (strcmp(used->v[i], id) == 0)
            return true;
    return false;
}

/*
 * Picks the first alternative whose functions no earlier hostpci entry uses.
 * NOTE: devices reserved by other running VMs are not checked here; the
 * caller that starts QEMU has to reserve them.
 */
static int choose_alternative(struct gen *g, const char *key, struct hostpci *d,
                              struct strvec *used)
{
    for (size_t a = 0; a < d->nalternatives; a++) {
        const struct qm_host *alt = &d->alternatives[a];
        bool busy = false;
        for (size_t i = 0; i < alt->npci; i++)
            busy = busy || id_used(used, alt->pci[i].id);
        if (busy && d->nalternatives > 1 && !d->mdev)
            continue;
        for (size_t i = 0; i < alt->npci; i++) {
            if (id_used(used, alt->pci[i].id))
                return qm_fail(g->err, 400, "device '%s' assigned more than once",
                               alt->pci[i].id);
            sv_push(used, alt->pci[i].id);
        }
        d->chosen = alt;
        d->multifunction = alt->npci > 1 && !d->mdev;
        return 0;
    }
    return qm_fail(g->err, 400, "could not find a free device for '%s'", key);
}

/* A pcie-root-port for hostpci4 and up; pve-q35-4.0.cfg defines the first four. */
static void add_root_port(struct gen *g, int index)
{
    static const char *const addresses[] = {"10.0", "10.1", "10.2", "10.3", "10.4", "10.5",
                                            "10.6", "10.7", "11.0", "11.1", "11.2", "11.3"};

    if (index < 4 || index > 15)
        return;
    int port = index + 1;
    sv_push(&g->devices, "-device");
    sv_pushf(&g->devices,
             "pcie-root-port,id=ich9-pcie-port-%d,addr=%s,x-speed=16,x-width=32,"
             "multifunction=on,bus=pcie.0,port=%d,chassis=%d",
             port, addresses[index - 4], port, port);
}

static void add_hostpci_devices(struct gen *g, int index, const char *key,
                                const struct hostpci *d, const char *pciaddr, const char *xvga)
{
    const struct qm_host *alt = d->chosen;
    char sysfs[96] = "";

    if (d->mdev)
        snprintf(sysfs, sizeof(sysfs), "/sys/bus/mdev/devices/%08d-0000-0000-0000-%012d", index,
                 g->in->vmid);
    for (size_t j = 0; j < alt->npci; j++) {
        struct strbuf sb = {0};
        char mf[32] = "";
        if (d->multifunction)
            snprintf(mf, sizeof(mf), ".%zu", j);
        sb_add(&sb, "vfio-pci");
        if (d->mdev)
            sb_addf(&sb, ",sysfsdev=%s", sysfs);
        else
            sb_addf(&sb, ",host=%s", alt->pci[j].id);
        if (d->live_migration)
            sb_add(&sb, ",enable-migration=on");
        sb_addf(&sb, ",id=%s%s%s%s", key, mf, pciaddr, mf);
        if (j == 0) {
            static const char *const overrides[] = {"vendor-id", "device-id", "sub-vendor-id",
                                                    "sub-device-id"};
            if (!ps_bool(&d->ps, "rombar", true))
                sb_add(&sb, ",rombar=0");
            sb_add(&sb, xvga);
            if (d->multifunction)
                sb_add(&sb, ",multifunction=on");
            const char *romfile = ps_get(&d->ps, "romfile");
            if (romfile)
                sb_addf(&sb, ",romfile=/usr/share/kvm/%s", romfile);
            const char *bootindex = gen_bootindex(g, key);
            if (bootindex)
                sb_addf(&sb, ",bootindex=%s", bootindex);
            for (size_t o = 0; o < QM_ARRAY_SIZE(overrides); o++) {
                const char *v = ps_get(&d->ps, overrides[o]);
                if (v)
                    sb_addf(&sb, ",x-pci-%s=%s", overrides[o], v);
            }
        }
        sv_push(&g->devices, "-device");
        sv_push(&g->devices, sb.buf);
        sb_free(&sb);
        if (d->mdev)
            break;
    }
}

int gen_hostpci(struct gen *g, char **vga_type)
{
    struct hostpci devices[MAX_HOSTPCI];
    struct strvec used = {0};
    int rc = 0;

    memset(devices, 0, sizeof(devices));
    for (int i = 0; i < MAX_HOSTPCI && rc == 0; i++) {
        char key[16];
        snprintf(key, sizeof(key), "hostpci%d", i);
        const char *v = gen_get(g, key);
        if (!v)
            continue;
        struct hostpci *d = &devices[i];
        rc = parse_hostpci(g, key, v, d);
        if (rc == 0 && !g->q35 && ps_bool(&d->ps, "pcie", false))
            rc = qm_fail(g->err, 400, "q35 machine model is not enabled");
        if (rc == 0 && ps_bool(&d->ps, "legacy-igd", false))
            rc = check_legacy_igd(g, d);
    }
    for (int i = 0; i < MAX_HOSTPCI && rc == 0; i++) {
        char key[16];
        snprintf(key, sizeof(key), "hostpci%d", i);
        if (devices[i].nalternatives)
            rc = choose_alternative(g, key, &devices[i], &used);
    }

    for (int i = 0; i < MAX_HOSTPCI && rc == 0; i++) {
        struct hostpci *d = &devices[i];
        char key[16], addr[96];
        if (!d->chosen)
            continue;
        snprintf(key, sizeof(key), "hostpci%d", i);
        if (ps_bool(&d->ps, "pcie", false)) {
            /* Windows 7 wants the devices on the root bus, not behind root ports. */
            if (g->winversion == 7) {
                char bus0[32];
                snprintf(bus0, sizeof(bus0), "%sbus0", key);
                gen_pcie_addr(bus0, addr, sizeof(addr));
            } else {
                add_root_port(g, i);
                gen_pcie_addr(key, addr, sizeof(addr));
            }
        } else {
            gen_pci_addr(g, ps_bool(&d->ps, "legacy-igd", false) ? "legacy-igd" : key, addr,
                         sizeof(addr));
        }
        const char *xvga = "";
        if (ps_bool(&d->ps, "x-vga", false)) {
            if (!g->ovmf)
                xvga = ",x-vga=on";
            g->kvm_off = true;
            g->gpu_passthrough = true;
            if (!gen_get(g, "vga")) {
                free(*vga_type);
                *vga_type = qm_strdup("none");
            }
        }
        add_hostpci_devices(g, i, key, d, addr, xvga);
    }

    for (int i = 0; i < MAX_HOSTPCI; i++)
        hostpci_free(&devices[i]);
    sv_free(&used);
    return rc;
}

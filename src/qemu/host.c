/*
 * Host facts that the command line depends on: PCI devices, bridge MTUs,
 * huge pages, NUMA nodes, SEV support and firmware image sizes.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "gen.h"

void qm_host_add_pci(struct qm_host *host, const char *id, const char *vendor,
                     const char *device, int iommu_group, bool mdev)
{
    host->pci = qm_realloc(host->pci, (host->npci + 1) * sizeof(*host->pci));
    struct qm_host_pci *p = &host->pci[host->npci++];
    p->id = qm_strdup(id);
    p->vendor = qm_strdup(vendor ? vendor : "");
    p->device = qm_strdup(device ? device : "");
    p->iommu_group = iommu_group;
    p->mdev = mdev;
}

void gen_host_free_lists(struct qm_host *host)
{
    for (size_t i = 0; i < host->npci; i++) {
        free(host->pci[i].id);
        free(host->pci[i].vendor);
        free(host->pci[i].device);
    }
    free(host->pci);
    for (size_t i = 0; i < host->nbridges; i++)
        free(host->bridges[i].name);
    free(host->bridges);
    for (size_t i = 0; i < host->npci_mappings; i++) {
        free(host->pci_mappings[i].name);
        free(host->pci_mappings[i].id);
        sv_free(&host->pci_mappings[i].paths);
    }
    free(host->pci_mappings);
}

static bool path_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* Reads the first line of a small sysfs file, without the newline; the caller frees it. */
static char *read_line(const char *path)
{
    char buf[256];
    FILE *f = fopen(path, "r");

    if (!f)
        return NULL;
    char *line = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (!line)
        return NULL;
    buf[strcspn(buf, "\n")] = '\0';
    return qm_strdup(buf);
}

static bool sysfs_flag(const char *path)
{
    char *v = read_line(path);
    bool on = v && (strcmp(v, "Y") == 0 || strcmp(v, "1") == 0);

    free(v);
    return on;
}

/* Reads one device from /sys/bus/pci/devices/ID into a qm_host_pci entry of host. */
static void sysfs_add_pci(struct qm_host *host, const char *id)
{
    char path[PATH_MAX], link[PATH_MAX];

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", id);
    char *vendor = read_line(path);
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", id);
    char *device = read_line(path);
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", id);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    int group = -1;
    if (n > 0) {
        link[n] = '\0';
        const char *slash = strrchr(link, '/');
        group = atoi(slash ? slash + 1 : link);
    }
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/mdev_supported_types", id);
    bool mdev = path_exists(path);
    const char *v = vendor && strncmp(vendor, "0x", 2) == 0 ? vendor + 2 : vendor;
    const char *d = device && strncmp(device, "0x", 2) == 0 ? device + 2 : device;
    qm_host_add_pci(host, id, v, d, group, mdev);
    free(vendor);
    free(device);
}

static int compare_pci(const void *a, const void *b)
{
    return strcmp(((const struct qm_host_pci *)a)->id, ((const struct qm_host_pci *)b)->id);
}

/* Whether a full address "DDDD:BB:SS.F" matches a pattern with or without the function. */
static bool pci_id_matches(const char *full, const char *pattern)
{
    size_t plen = strlen(pattern);

    if (strchr(pattern, '.'))
        return strcasecmp(full, pattern) == 0;
    return strncasecmp(full, pattern, plen) == 0 && full[plen] == '.';
}

int gen_host_pci_find(const struct qm_host *host, const char *id, struct qm_host *out)
{
    char pattern[64];

    /* "BB:SS.F" and "BB:SS" are in PCI domain 0000. */
    if (strlen(id) <= 7)
        snprintf(pattern, sizeof(pattern), "0000:%s", id);
    else
        snprintf(pattern, sizeof(pattern), "%s", id);
    memset(out, 0, sizeof(*out));
    if (host->live_sysfs) {
        DIR *dir = opendir("/sys/bus/pci/devices");
        struct dirent *e;
        while (dir && (e = readdir(dir)))
            if (e->d_name[0] != '.' && pci_id_matches(e->d_name, pattern))
                sysfs_add_pci(out, e->d_name);
        if (dir)
            closedir(dir);
    } else {
        for (size_t i = 0; i < host->npci; i++) {
            const struct qm_host_pci *p = &host->pci[i];
            if (pci_id_matches(p->id, pattern))
                qm_host_add_pci(out, p->id, p->vendor, p->device, p->iommu_group, p->mdev);
        }
    }
    if (out->npci > 1)
        qsort(out->pci, out->npci, sizeof(*out->pci), compare_pci);
    return (int)out->npci;
}

int gen_host_bridge_mtu(const struct qm_host *host, const char *bridge)
{
    if (host->live_sysfs) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", bridge);
        char *v = read_line(path);
        int mtu = v ? atoi(v) : 0;
        free(v);
        return mtu > 0 ? mtu : 1500;
    }
    for (size_t i = 0; i < host->nbridges; i++)
        if (strcmp(host->bridges[i].name, bridge) == 0)
            return host->bridges[i].mtu;
    return 1500;
}

long long gen_host_file_size(const struct qm_host *host, const char *path)
{
    struct stat st;

    if (host->file_size)
        return host->file_size(path);
    if (stat(path, &st) < 0)
        return -1;
    return (long long)st.st_size;
}

/*
 * Sizes of the VARS images of Proxmox VE's pve-edk2-firmware packages, by
 * file name; other files are reported missing.
 */
long long qm_host_pve_firmware_size(const char *path)
{
    const char *name = strrchr(path, '/');

    name = name ? name + 1 : path;
    if (strstr(name, "OVMF_VARS_4M") || strstr(name, "OVMF32_VARS_4M") ||
        strstr(name, "OVMF_SEV_VARS_4M"))
        return 528 * 1024;
    if (strstr(name, "OVMF_VARS"))
        return 128 * 1024;
    if (strstr(name, "AAVMF_VARS"))
        return 64LL * 1024 * 1024;
    if (strstr(name, "RISCV_VIRT_VARS"))
        return 32LL * 1024 * 1024;
    if (strstr(name, "_CODE") || strstr(name, "OVMF_SEV_4M") || strstr(name, "OVMF_TDX"))
        return 4LL * 1024 * 1024;
    return -1;
}

void gen_host_probe_sysfs(struct qm_host *host)
{
    host->live_sysfs = true;
    host->hugepages_2m = path_exists("/sys/kernel/mm/hugepages/hugepages-2048kB");
    host->hugepages_1g = path_exists("/sys/kernel/mm/hugepages/hugepages-1048576kB");
    host->numa_nodes = 0;
    for (int i = 0; i < 1024; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", i);
        if (!path_exists(path))
            break;
        host->numa_nodes = i + 1;
    }
    /* Without /sys/devices/system/node (no CONFIG_NUMA) the host is one node. */
    if (host->numa_nodes == 0)
        host->numa_nodes = 1;

    host->sev = sysfs_flag("/sys/module/kvm_amd/parameters/sev");
    host->sev_es = sysfs_flag("/sys/module/kvm_amd/parameters/sev_es");
    host->sev_snp = sysfs_flag("/sys/module/kvm_amd/parameters/sev_snp");
#if defined(__x86_64__)
    unsigned eax, ebx, ecx, edx;
    if (host->sev && __get_cpuid(0x8000001f, &eax, &ebx, &ecx, &edx)) {
        host->sev_cbitpos = (int)(ebx & 0x3f);
        host->sev_reduced_phys_bits = (int)((ebx >> 6) & 0x3f);
    }
#endif
}

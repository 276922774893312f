/* The -m option, NUMA nodes, huge pages and hot-pluggable memory modules (pc-dimm). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

#define MAX_NUMA 8
/* Memory that is not hot-pluggable when memory hotplug is on, in MiB (per socket with 1G pages). */
#define STATIC_MEMORY_MB 1024

/* One "a-b" or "a" entry of a "0-1;3" number set; end is start for a single number. */
struct range {
    long long start, end;
};

struct ranges {
    struct range v[64];
    size_t n;
};

static bool parse_number_sets(const char *text, struct ranges *out)
{
    const char *p = text;

    out->n = 0;
    while (*p) {
        char *end;
        if (out->n == QM_ARRAY_SIZE(out->v))
            return false;
        struct range r;
        r.start = strtoll(p, &end, 10);
        if (end == p)
            return false;
        r.end = r.start;
        p = end;
        if (*p == '-') {
            r.end = strtoll(p + 1, &end, 10);
            if (end == p + 1 || r.end < r.start)
                return false;
            p = end;
        }
        out->v[out->n++] = r;
        if (*p == ';')
            p++;
        else if (*p)
            return false;
    }
    return out->n > 0;
}

/* Whether a hotplug feature such as "memory" is in the "hotplug" list ("1" is the default set). */
bool gen_hotplug_has(const struct gen *g, const char *feature)
{
    const char *v = gen_get(g, "hotplug");

    if (!v || strcmp(v, "1") == 0)
        v = "network,disk,usb";
    if (strcmp(v, "0") == 0)
        return false;
    size_t flen = strlen(feature);
    for (const char *p = v; *p;) {
        size_t len = strcspn(p, ",");
        if (len == flen && strncmp(p, feature, len) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* The largest memory size that hotplug may reach, from the guest's physical address bits. */
static long long max_memory_mb(const struct gen *g)
{
    const char *cpu = gen_get(g, "cpu");
    struct qm_propstr ps = {0};
    int host_bits = g->in->host->phys_bits > 0 ? g->in->host->phys_bits : 36;
    int bits = 0;

    if (cpu && qm_propstr_parse("cpu", cpu, &ps, NULL) == 0) {
        const char *pb = ps_get(&ps, "phys-bits");
        const char *type = ps_get(&ps, "cputype");
        if (pb && strcmp(pb, "host") == 0)
            bits = host_bits;
        else if (pb)
            bits = atoi(pb);
        if (!bits && type && (strcmp(type, "host") == 0 || strcmp(type, "max") == 0))
            bits = host_bits;
    }
    qm_propstr_free(&ps);
    if (!bits)
        bits = host_bits > 40 ? 40 : host_bits;
    /* Odd widths give a lower limit; 20 bits make MiB, and QEMU needs half as headroom. */
    bits &= ~1;
    long long max = 1LL << (bits - 21);
    return max > 4LL * 1024 * 1024 ? 4LL * 1024 * 1024 : max;
}

static bool host_hugepages(const struct qm_host *host, long long size_mb)
{
    if (size_mb == 2)
        return host->hugepages_2m;
    if (size_mb == 1024)
        return host->hugepages_1g;
    return false;
}

static bool host_numa_node_exists(const struct qm_host *host, long long node)
{
    return node >= 0 && node < host->numa_nodes;
}

/* Chooses the huge page size in MiB for a memory object of size_mb. */
static int hugepage_size(struct gen *g, double size_mb, long long *page_mb)
{
    const char *hp = gen_get(g, "hugepages");
    const struct qm_host *host = g->in->host;
    long long size = (long long)size_mb;

    if ((double)size != size_mb || size <= 0 || size & 1) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%.15g", size_mb);
        return qm_fail(g->err, 400,
                       "memory size '%s' is not a positive even integer; cannot use for hugepages",
                       buf);
    }
    if (!host->hugepages_2m && !host->hugepages_1g)
        return qm_fail(g->err, 400, "your system doesn't support hugepages");
    if (strcmp(hp, "any") == 0) {
        if (host->hugepages_1g && (size & 1023) == 0)
            *page_mb = 1024;
        else if (host->hugepages_2m)
            *page_mb = 2;
        else
            return qm_fail(g->err, 400,
                           "host only supports 1024 GB hugepages, but requested size '%lld' is"
                           " not a multiple of 1024 MB",
                           size);
        return 0;
    }
    long long want = atoll(hp);
    if (!host_hugepages(host, want))
        return qm_fail(g->err, 400, "your system doesn't support hugepages of %lld MB", want);
    if (size % want != 0)
        return qm_fail(g->err, 400,
                       "Memory size %lld is not a multiple of the requested hugepages size %lld",
                       size, want);
    *page_mb = want;
    return 0;
}

/* Formats a memory-backend object of size_mb for id. */
static int memory_object(struct gen *g, const char *id, double size_mb, char **out)
{
    char size[64];

    snprintf(size, sizeof(size), "%.15g", size_mb);
    if (gen_get(g, "hugepages")) {
        long long page_mb = 0;
        if (hugepage_size(g, size_mb, &page_mb) < 0)
            return -1;
        *out = qm_sprintf("memory-backend-file,id=%s,size=%sM,"
                          "mem-path=/run/hugepages/kvm/%lldkB,share=on,prealloc=yes",
                          id, size, page_mb * 1024);
    } else {
        *out = qm_sprintf("memory-backend-ram,id=%s,size=%sM", id, size);
    }
    return 0;
}

static int push_memory_object(struct gen *g, const char *id, double size_mb)
{
    char *obj;

    if (memory_object(g, id, size_mb, &obj) < 0)
        return -1;
    sv_push(&g->cmd, "-object");
    sv_push(&g->cmd, obj);
    free(obj);
    return 0;
}

static void print_ranges(struct strbuf *sb, const struct ranges *r, const char *sep)
{
    for (size_t i = 0; i < r->n; i++) {
        if (i)
            sb_add(sb, sep);
        sb_addf(sb, "%lld", r->v[i].start);
        if (r->v[i].end != r->v[i].start)
            sb_addf(sb, "-%lld", r->v[i].end);
    }
}

/* The -object/-numa pairs of the custom topology numa0..numa7; total receives their memory. */
static int custom_numa(struct gen *g, double *total)
{
    *total = 0;
    for (int i = 0; i < MAX_NUMA; i++) {
        char key[16];
        snprintf(key, sizeof(key), "numa%d", i);
        const char *v = gen_get(g, key);
        if (!v)
            continue;
        struct qm_propstr ps = {0};
        if (qm_propstr_parse(key, v, &ps, g->err) < 0)
            return -1;
        const char *mem = ps_get(&ps, "memory");
        const char *cpus = ps_get(&ps, "cpus");
        const char *hostnodes = ps_get(&ps, "hostnodes");
        const char *policy = ps_get(&ps, "policy");
        struct ranges cpu_ranges, node_ranges;
        char id[32];
        char *obj = NULL;
        int rc = 0;

        snprintf(id, sizeof(id), "ram-node%d", i);
        if (!mem || atof(mem) == 0)
            rc = qm_fail(g->err, 400, "missing NUMA node%d memory value", i);
        else if (!cpus || !parse_number_sets(cpus, &cpu_ranges))
            rc = qm_fail(g->err, 400, "missing NUMA node%d cpus", i);
        else
            rc = memory_object(g, id, atof(mem), &obj);
        if (rc == 0) {
            *total += atof(mem);
            struct strbuf sb = {0};
            sb_add(&sb, obj);
            if (hostnodes) {
                struct strbuf nodes = {0};
                sb_add(&nodes, "");
                if (!parse_number_sets(hostnodes, &node_ranges)) {
                    rc = qm_fail(g->err, 400, "%s: invalid hostnodes '%s'", key, hostnodes);
                } else {
                    print_ranges(&nodes, &node_ranges, ",");
                    for (size_t r = 0; rc == 0 && r < node_ranges.n; r++)
                        for (long long n = node_ranges.v[r].start;
                             rc == 0 && n <= node_ranges.v[r].end; n++)
                            if (!host_numa_node_exists(g->in->host, n))
                                rc = qm_fail(g->err, 400, "host NUMA node%lld doesn't exist", n);
                }
                if (rc == 0 && !policy)
                    rc = qm_fail(g->err, 400, "you need to define a policy for hostnode %s",
                                 nodes.buf);
                if (rc == 0)
                    sb_addf(&sb, ",host-nodes=%s,policy=%s", nodes.buf, policy);
                sb_free(&nodes);
            } else if (gen_get(g, "hugepages")) {
                rc = qm_fail(g->err, 400, "numa hostnodes need to be defined to use hugepages");
            }
            if (rc == 0) {
                sv_push(&g->cmd, "-object");
                sv_push(&g->cmd, sb.buf);
                struct strbuf numa = {0};
                sb_addf(&numa, "node,nodeid=%d,cpus=", i);
                print_ranges(&numa, &cpu_ranges, ",cpus=");
                sb_addf(&numa, ",memdev=%s", id);
                sv_push(&g->cmd, "-numa");
                sv_push(&g->cmd, numa.buf);
                sb_free(&numa);
            }
            sb_free(&sb);
        }
        free(obj);
        qm_propstr_free(&ps);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Guest NUMA nodes that DIMMs are spread over: numaN entries, else one per socket. */
static size_t numa_node_list(const struct gen *g, long long sockets, int nodes[MAX_NUMA])
{
    size_t n = 0;

    for (int i = 0; i < MAX_NUMA; i++) {
        char key[16];
        snprintf(key, sizeof(key), "numa%d", i);
        if (gen_get(g, key))
            nodes[n++] = i;
    }
    if (n)
        return n;
    for (long long i = 0; i < sockets && n < MAX_NUMA; i++)
        nodes[n++] = (int)i;
    return n;
}

/*
 * The DIMMs that make up memory_mb above static_mb: 32 modules of each size,
 * starting at 512 MiB (1 GiB with 1G huge pages) and doubling 8 times.
 */
static int add_dimms(struct gen *g, long long memory_mb, long long static_mb, long long sockets)
{
    const char *hp = gen_get(g, "hugepages");
    long long dimm_size = hp && strcmp(hp, "1024") == 0 ? 1024 : 512;
    long long current = static_mb;
    int nodes[MAX_NUMA];
    size_t nnodes = numa_node_list(g, sockets, nodes);
    int dimm_id = 0;

    if (current == memory_mb || nnodes == 0)
        return 0;
    for (int j = 0; j < 8; j++) {
        for (int i = 0; i < 32; i++) {
            char id[32];
            int node = nodes[(size_t)i % nnodes];
            snprintf(id, sizeof(id), "mem-dimm%d", dimm_id);
            current += dimm_size;
            if (push_memory_object(g, id, (double)dimm_size) < 0)
                return -1;
            sv_push(&g->cmd, "-device");
            sv_pushf(&g->cmd, "pc-dimm,id=dimm%d,memdev=mem-dimm%d,node=%d", dimm_id, dimm_id,
                     node);
            dimm_id++;
            if (current > memory_mb)
                return qm_fail(g->err, 400,
                               "memory size (%lld) must be aligned to %lld for hotplugging",
                               memory_mb, dimm_size);
            if (current == memory_mb)
                return 0;
        }
        dimm_size *= 2;
    }
    return 0;
}

int gen_memory(struct gen *g, long long sockets, long long cores)
{
    const char *mem = gen_get(g, "memory");
    const char *hp = gen_get(g, "hugepages");
    bool numa = gen_bool(g, "numa", false);
    bool hotplug = gen_hotplug_has(g, "memory");
    long long memory = 512, static_mb;

    if (mem) {
        struct qm_propstr ps = {0};
        if (qm_propstr_parse("memory", mem, &ps, g->err) < 0)
            return -1;
        const char *current = ps_get(&ps, "current");
        bool ok = current && qm_parse_int(current, &memory);
        qm_propstr_free(&ps);
        if (!ok)
            return qm_fail(g->err, 400, "memory: invalid value '%s'", mem);
    }

    sv_push(&g->cmd, "-m");
    if (hotplug) {
        if (!numa)
            return qm_fail(g->err, 400, "NUMA needs to be enabled for memory hotplug");
        long long max = max_memory_mb(g);
        if (memory > max)
            return qm_fail(g->err, 400, "Total memory is bigger than %lldMB", max);
        for (int i = 0; i < MAX_NUMA; i++) {
            char key[16];
            snprintf(key, sizeof(key), "numa%d", i);
            if (gen_get(g, key))
                return qm_fail(g->err, 400,
                               "cannot enable memory hotplugging with custom NUMA topology");
        }
        static_mb = STATIC_MEMORY_MB;
        if (hp && strcmp(hp, "1024") == 0)
            static_mb *= sockets;
        if (memory < static_mb)
            return qm_fail(g->err, 400, "minimum memory must be %lldMB", static_mb);
        sv_pushf(&g->cmd, "size=%lld,slots=255,maxmem=%lldM", static_mb, max);
    } else {
        static_mb = memory;
        sv_pushf(&g->cmd, "%lld", memory);
    }

    if (hp && !numa)
        return qm_fail(g->err, 400, "numa needs to be enabled to use hugepages");

    if (numa) {
        double total;
        if (custom_numa(g, &total) < 0)
            return -1;
        if (total != 0 && total != (double)static_mb)
            return qm_fail(g->err, 400,
                           "total memory for NUMA nodes must be equal to vm static memory");
        if (total == 0) {
            /* Without a custom topology, memory and cores are split evenly over the sockets. */
            double per_node = (double)static_mb / (double)sockets;
            for (long long i = 0; i < sockets; i++) {
                if (hp && !host_numa_node_exists(g->in->host, i))
                    return qm_fail(g->err, 400, "host NUMA node%lld doesn't exist", i);
                char id[32];
                snprintf(id, sizeof(id), "ram-node%lld", i);
                if (push_memory_object(g, id, per_node) < 0)
                    return -1;
                long long first = cores * i;
                sv_push(&g->cmd, "-numa");
                if (cores > 1)
                    sv_pushf(&g->cmd, "node,nodeid=%lld,cpus=%lld-%lld,memdev=%s", i, first,
                             first + cores - 1, id);
                else
                    sv_pushf(&g->cmd, "node,nodeid=%lld,cpus=%lld,memdev=%s", i, first, id);
            }
        }
    }

    if (hotplug)
        return add_dimms(g, memory, static_mb, sockets);
    return 0;
}

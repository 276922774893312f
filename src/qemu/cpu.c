/* The -cpu option: model, vendor, flags and Hyper-V enlightenments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

static const char *const intel_models[] = {
    "486", "pentium", "pentium2", "pentium3", "coreduo", "core2duo", "Conroe", "Penryn",
    "Nehalem", "Nehalem-IBRS", "Westmere", "Westmere-IBRS", "SandyBridge", "SandyBridge-IBRS",
    "IvyBridge", "IvyBridge-IBRS", "Haswell", "Haswell-IBRS", "Haswell-noTSX",
    "Haswell-noTSX-IBRS", "Broadwell", "Broadwell-IBRS", "Broadwell-noTSX",
    "Broadwell-noTSX-IBRS", "Skylake-Client", "Skylake-Client-IBRS",
    "Skylake-Client-noTSX-IBRS", "Skylake-Client-v4", "Skylake-Server", "Skylake-Server-IBRS",
    "Skylake-Server-noTSX-IBRS", "Skylake-Server-v4", "Skylake-Server-v5",
    "Cascadelake-Server", "Cascadelake-Server-v2", "Cascadelake-Server-noTSX",
    "Cascadelake-Server-v4", "Cascadelake-Server-v5", "Cooperlake", "Cooperlake-v2",
    "KnightsMill", "Icelake-Client", "Icelake-Client-noTSX", "Icelake-Server",
    "Icelake-Server-noTSX", "Icelake-Server-v3", "Icelake-Server-v4", "Icelake-Server-v5",
    "Icelake-Server-v6", "Icelake-Server-v7", "SapphireRapids", "SapphireRapids-v2",
    "SapphireRapids-v3", "SapphireRapids-v4", "GraniteRapids", "GraniteRapids-v2",
    "GraniteRapids-v3", "SierraForest", "SierraForest-v2", "SierraForest-v3",
    "ClearwaterForest",
};

static const char *const amd_models[] = {
    "athlon", "phenom", "Opteron_G1", "Opteron_G2", "Opteron_G3", "Opteron_G4", "Opteron_G5",
    "EPYC", "EPYC-IBPB", "EPYC-v3", "EPYC-v4", "EPYC-v5", "EPYC-Rome", "EPYC-Rome-v2",
    "EPYC-Rome-v3", "EPYC-Rome-v4", "EPYC-Rome-v5", "EPYC-Milan", "EPYC-Milan-v2",
    "EPYC-Milan-v3", "EPYC-Genoa", "EPYC-Genoa-v2", "EPYC-Turin",
};

static const char *const generic_models[] = {"kvm32", "kvm64", "qemu32", "qemu64", "max", "host"};

static const char *const arm_models[] = {
    "a64fx", "cortex-a35", "cortex-a53", "cortex-a55", "cortex-a57", "cortex-a710",
    "cortex-a72", "cortex-a76", "neoverse-n1", "neoverse-n2", "neoverse-v1", "max", "host",
};

/* x86-64 ABI levels: name, model reported to the guest, flags. */
static const char *const builtin_models[][3] = {
    {"x86-64-v2", "qemu64", "+popcnt;+pni;+sse4.1;+sse4.2;+ssse3"},
    {"x86-64-v2-AES", "qemu64", "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3"},
    {"x86-64-v3", "qemu64",
     "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3;+avx;+avx2;+bmi1;+bmi2;+f16c;+fma;+abm;+movbe;"
     "+xsave"},
    {"x86-64-v4", "qemu64",
     "+aes;+popcnt;+pni;+sse4.1;+sse4.2;+ssse3;+avx;+avx2;+bmi1;+bmi2;+f16c;+fma;+abm;+movbe;"
     "+xsave;+avx512f;+avx512bw;+avx512cd;+avx512dq;+avx512vl"},
};

static bool in_list(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

/* Returns the vendor of a CPU model ("default" for generic ones), or NULL when unknown. */
static const char *model_vendor(const char *arch, const char *model)
{
    if (strcmp(arch, "aarch64") == 0) {
        if (!in_list(arm_models, QM_ARRAY_SIZE(arm_models), model))
            return NULL;
        return strcmp(model, "max") == 0 || strcmp(model, "host") == 0 ? "default" : "ARM";
    }
    if (in_list(intel_models, QM_ARRAY_SIZE(intel_models), model))
        return "GenuineIntel";
    if (in_list(amd_models, QM_ARRAY_SIZE(amd_models), model))
        return "AuthenticAMD";
    if (in_list(generic_models, QM_ARRAY_SIZE(generic_models), model))
        return "default";
    return NULL;
}

struct cpu_flag {
    char *name;
    char op[2];       /* "+", "-" or "" */
    char *value;      /* NULL for none */
    char *reason;
};

struct cpu_flags {
    struct cpu_flag *v;
    size_t n;
};

static void flag_describe(struct strbuf *sb, const struct cpu_flag *f)
{
    sb_addf(sb, "'%s%s", f->op, f->name);
    if (f->value)
        sb_addf(sb, "=%s", f->value);
    sb_addf(sb, "' (%s)", f->reason);
}

/* Merges one flag; a later source wins, and a change of op or value is warned about. */
static void flags_merge(struct gen *g, struct cpu_flags *flags, const char *name,
                        const char *op, const char *value, const char *reason)
{
    for (size_t i = 0; i < flags->n; i++) {
        struct cpu_flag *f = &flags->v[i];
        if (strcmp(f->name, name) != 0)
            continue;
        bool same_value = (!f->value && !value) || (f->value && value && !strcmp(f->value, value));
        if (strcmp(f->op, op) == 0 && same_value) {
            char *r = qm_sprintf("%s & %s", f->reason, reason);
            free(f->reason);
            f->reason = r;
            return;
        }
        struct cpu_flag nf = {.name = (char *)name, .value = (char *)value, .reason = (char *)reason};
        snprintf(nf.op, sizeof(nf.op), "%s", op);
        struct strbuf sb = {0};
        sb_add(&sb, "warning: CPU flag/setting ");
        flag_describe(&sb, &nf);
        sb_add(&sb, " overwrites ");
        flag_describe(&sb, f);
        gen_warn(g, "%s", sb.buf);
        sb_free(&sb);
        snprintf(f->op, sizeof(f->op), "%s", op);
        free(f->value);
        f->value = value ? qm_strdup(value) : NULL;
        free(f->reason);
        f->reason = qm_strdup(reason);
        return;
    }
    flags->v = qm_realloc(flags->v, (flags->n + 1) * sizeof(*flags->v));
    struct cpu_flag *f = &flags->v[flags->n++];
    f->name = qm_strdup(name);
    snprintf(f->op, sizeof(f->op), "%s", op);
    f->value = value ? qm_strdup(value) : NULL;
    f->reason = qm_strdup(reason);
}

/*
 * Merges a "+aes;-x2apic" list. vm_only restricts the names to what a VM
 * configuration may set (the flags qemu-server allows without a custom model).
 */
static void flags_merge_list(struct gen *g, struct cpu_flags *flags, const char *list,
                             const char *reason, bool vm_only)
{
    static const char *const vm_allowed[] = {
        "pcid", "spec-ctrl", "ibpb", "ssbd", "virt-ssbd", "amd-ssbd", "amd-no-ssb", "pdpe1gb",
        "md-clear", "hv-tlbflush", "hv-evmcs", "aes", "nested-virt",
    };

    if (!list)
        return;
    char *copy = qm_strdup(list);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        if (tok[0] != '+' && tok[0] != '-')
            continue;
        char op[2] = {tok[0], '\0'};
        const char *name = tok + 1;
        if (vm_only && !in_list(vm_allowed, QM_ARRAY_SIZE(vm_allowed), name))
            continue;
        if (strcmp(name, "nested-virt") == 0) {
            gen_warn(g, "ignoring 'nested-virt' CPU flag - unable to resolve from host CPU flags");
            continue;
        }
        flags_merge(g, flags, name, op, NULL, reason);
    }
    free(copy);
}

static int flag_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cpu_flag *)a)->name, ((const struct cpu_flag *)b)->name);
}

static void flags_free(struct cpu_flags *flags)
{
    for (size_t i = 0; i < flags->n; i++) {
        free(flags->v[i].name);
        free(flags->v[i].value);
        free(flags->v[i].reason);
    }
    free(flags->v);
}

static void add_pve_flags(struct gen *g, struct cpu_flags *flags, const char *cputype)
{
    bool x86 = strcmp(g->arch, "x86_64") == 0;

    if (strcmp(cputype, "kvm64") == 0 && x86)
        flags_merge(g, flags, "lahf_lm", "+", NULL, "set by PVE; to support Windows 8.1+");
    if (strcmp(g->ostype, "solaris") == 0)
        flags_merge(g, flags, "x2apic", "-", NULL, "set by PVE; incompatible with Solaris");
    if (strcmp(cputype, "kvm64") == 0 || strcmp(cputype, "kvm32") == 0)
        flags_merge(g, flags, "sep", "+", NULL,
                    "set by PVE; to support Windows 8+ and improve Windows XP+");
    if (qm_str_starts(cputype, "Opteron"))
        flags_merge(g, flags, "rdtscp", "-", NULL, "set by PVE; broken on AMD Opteron");
    if (gen_version_guard(g, 2, 3, 0) && g->kvm && x86) {
        flags_merge(g, flags, "kvm_pv_unhalt", "+", NULL,
                    "set by PVE; to improve Linux guest spinlock performance");
        flags_merge(g, flags, "kvm_pv_eoi", "+", NULL,
                    "set by PVE; to improve Linux guest interrupt performance");
    }
    if (x86 && gen_qemu_at_least(g, 11, 0) && g->winversion >= 11) {
        const char *r = "set by PVE; to avoid issues with certain Windows configurations like VBS";
        flags_merge(g, flags, "cet-ibt", "-", NULL, r);
        flags_merge(g, flags, "cet-ss", "-", NULL, r);
    }
    if (x86 && gen_qemu_at_least(g, 11, 0) && strcmp(cputype, "host") == 0 &&
        !gen_version_guard(g, 11, 0, 0))
        flags_merge(g, flags, "vmx-mbec", "-", NULL,
                    "set by PVE; for backwards compatibility with older kernel and QEMU");
}

static void add_hyperv_flags(struct gen *g, struct cpu_flags *flags, const char *hv_vendor_id)
{
    const char *r = "automatic Hyper-V enlightenment for Windows";
    const char *r7 = "automatic Hyper-V enlightenment for Windows 7 and higher";

    if (g->winversion < 6)
        return;
    if (g->ovmf && g->winversion < 8)
        return;
    if (hv_vendor_id)
        flags_merge(g, flags, "hv_vendor_id", "", hv_vendor_id, "custom hv_vendor_id set");
    else if (g->gpu_passthrough)
        flags_merge(g, flags, "hv_vendor_id", "", "proxmox",
                    "NVIDIA workaround for GPU passthrough");
    if (gen_version_guard(g, 2, 3, 0)) {
        flags_merge(g, flags, "hv_spinlocks", "", "0x1fff", r);
        flags_merge(g, flags, "hv_vapic", "", NULL, r);
        flags_merge(g, flags, "hv_time", "", NULL, r);
    } else {
        flags_merge(g, flags, "hv_spinlocks", "", "0xffff", r);
    }
    if (gen_version_guard(g, 2, 6, 0)) {
        flags_merge(g, flags, "hv_reset", "", NULL, r);
        flags_merge(g, flags, "hv_vpindex", "", NULL, r);
        flags_merge(g, flags, "hv_runtime", "", NULL, r);
    }
    if (g->winversion >= 7) {
        flags_merge(g, flags, "hv_relaxed", "", NULL, r7);
        if (gen_version_guard(g, 2, 12, 0)) {
            flags_merge(g, flags, "hv_synic", "", NULL, r7);
            flags_merge(g, flags, "hv_stimer", "", NULL, r7);
        }
        if (gen_version_guard(g, 3, 1, 0))
            flags_merge(g, flags, "hv_ipi", "", NULL, r7);
    }
    if (strcmp(g->in->host->cpu_vendor, "GenuineIntel") == 0 && g->winversion >= 11 &&
        gen_version_guard(g, 11, 0, 2))
        flags_merge(g, flags, "hv_evmcs", "", NULL,
                    "automatic Hyper-V enlightenment for Windows for Windows 11 on Intel host");
}

int gen_cpu(struct gen *g)
{
    bool arm = strcmp(g->arch, "aarch64") == 0;
    bool x86 = strcmp(g->arch, "x86_64") == 0;
    const char *cputype = arm ? (g->kvm ? "host" : "max") : (g->kvm ? "kvm64" : "qemu64");
    const char *builtin_flags = NULL;
    const char *cpu = gen_get(g, "cpu");
    struct qm_propstr ps = {0};
    struct cpu_flags flags = {0};
    bool hidden = g->kvm_off;
    const char *hv_vendor_id = NULL;
    const struct qm_cpu_model *custom = NULL;
    int rc = 0;

    if (cpu) {
        if (qm_propstr_parse("cpu", cpu, &ps, g->err) < 0)
            return -1;
        const char *t = ps_get(&ps, "cputype");
        if (t)
            cputype = t;
        for (size_t i = 0; x86 && i < QM_ARRAY_SIZE(builtin_models); i++) {
            if (strcmp(builtin_models[i][0], cputype) == 0) {
                cputype = builtin_models[i][1];
                builtin_flags = builtin_models[i][2];
            }
        }
        if (qm_str_starts(cputype, "custom-")) {
            custom = qm_cpu_models_find(g->in->cpu_models, cputype + 7);
            if (!custom) {
                rc = qm_fail(g->err, 400, "Custom cputype '%s' not found", cputype + 7);
                goto out;
            }
            const char *reported = ps_get(&custom->props, "reported-model");
            cputype = reported && *reported ? reported : "kvm64";
            if (ps_get(&custom->props, "hidden"))
                hidden = ps_bool(&custom->props, "hidden", false);
            hv_vendor_id = ps_get(&custom->props, "hv-vendor-id");
        }
        if (strcmp(cputype, "Icelake-Client") == 0)
            cputype = "Icelake-Server";
        else if (strcmp(cputype, "Icelake-Client-noTSX") == 0)
            cputype = "Icelake-Server-noTSX";
        /* Settings of the VM override those of its custom model. */
        if (ps_get(&ps, "hidden"))
            hidden = ps_bool(&ps, "hidden", false);
        if (ps_get(&ps, "hv-vendor-id"))
            hv_vendor_id = ps_get(&ps, "hv-vendor-id");
    }

    const char *vendor = model_vendor(g->arch, cputype);
    if (!vendor) {
        rc = qm_fail(g->err, 400,
                     "CPU model '%s' does not exist for configured vCPU architecture '%s'",
                     cputype, g->arch);
        goto out;
    }

    add_pve_flags(g, &flags, cputype);
    if (g->kvm && x86)
        add_hyperv_flags(g, &flags, hv_vendor_id);
    flags_merge_list(g, &flags, builtin_flags, "set by builtin CPU model", false);
    if (custom)
        flags_merge_list(g, &flags, ps_get(&custom->props, "flags"), "set by custom CPU model",
                         false);
    flags_merge_list(g, &flags, ps_get(&ps, "flags"), "manually set for VM", true);
    if (strcmp(cputype, "host") != 0 && g->kvm && x86)
        flags_merge(g, &flags, "enforce", "", NULL,
                    "error if requested CPU settings not available");
    if (hidden && x86)
        flags_merge(g, &flags, "kvm", "", "off", "hide KVM virtualization from guest");
    if (x86 && strcmp(vendor, "default") != 0)
        flags_merge(g, &flags, "vendor", "", vendor, "");

    struct strbuf sb = {0};
    sb_add(&sb, cputype);
    const char *level = ps_get(&ps, "level");
    if (!level && custom)
        level = ps_get(&custom->props, "level");
    if (level) {
        if (x86)
            sb_addf(&sb, ",level=%s", level);
        else
            gen_warn(g, "CPU 'level' property is ignored for architecture '%s'", g->arch);
    }
    if (flags.n > 1)
        qsort(flags.v, flags.n, sizeof(*flags.v), flag_cmp);
    for (size_t i = 0; i < flags.n; i++) {
        sb_addf(&sb, ",%s%s", flags.v[i].op, flags.v[i].name);
        if (flags.v[i].value && *flags.v[i].value)
            sb_addf(&sb, "=%s", flags.v[i].value);
    }
    /* The VM's values win over those of a custom model. */
    const char *gpb = ps_get(&ps, "guest-phys-bits");
    if (!gpb && custom)
        gpb = ps_get(&custom->props, "guest-phys-bits");
    if (gpb)
        sb_addf(&sb, ",guest-phys-bits=%s", gpb);
    const char *pb = ps_get(&ps, "phys-bits");
    if (!pb && custom)
        pb = ps_get(&custom->props, "phys-bits");
    if (pb) {
        if (strcmp(pb, "host") == 0)
            sb_add(&sb, ",host-phys-bits=true");
        else
            sb_addf(&sb, ",phys-bits=%s", pb);
    }
    sv_push(&g->cmd, "-cpu");
    sv_push(&g->cmd, sb.buf);
    sb_free(&sb);

out:
    flags_free(&flags);
    qm_propstr_free(&ps);
    return rc;
}

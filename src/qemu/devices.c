/* VirtIO RNG, the TPM (served by swtpm) and AMD SEV confidential guests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gen.h"

int gen_rng(struct gen *g)
{
    const char *value = gen_get(g, "rng0");
    struct qm_propstr ps = {0};
    char addr[64];

    if (!value)
        return 0;
    /* An unparsable rng0 is skipped with a warning, as qemu-server does. */
    if (qm_propstr_parse("rng0", value, &ps, NULL) < 0) {
        gen_warn(g, "rng0: ignoring invalid value '%s'", value);
        return 0;
    }
    if (!gen_version_guard(g, 4, 1, 2)) {
        qm_propstr_free(&ps);
        return 0;
    }
    const char *source = ps_get(&ps, "source");
    struct stat st;
    if (!source || (g->in->host->live_sysfs && stat(source, &st) < 0)) {
        int rc = qm_fail(g->err, 400,
                         "cannot create VirtIO RNG device: source file '%s' doesn't exist",
                         source ? source : "");
        qm_propstr_free(&ps);
        return rc;
    }
    const char *max_bytes = ps_get(&ps, "max_bytes");
    const char *period = ps_get(&ps, "period");
    if (!max_bytes)
        max_bytes = "1024";
    if (!period)
        period = "1000";

    sv_push(&g->devices, "-object");
    sv_pushf(&g->devices, "rng-random,filename=%s,id=rng0", source);
    struct strbuf sb = {0};
    sb_add(&sb, "virtio-rng-pci,rng=rng0");
    /* max_bytes=0 turns the rate limit off. */
    if (strcmp(max_bytes, "0") != 0)
        sb_addf(&sb, ",max-bytes=%s,period=%s", max_bytes, period);
    sb_add(&sb, gen_pci_addr(g, "rng0", addr, sizeof(addr)));
    sv_push(&g->devices, "-device");
    sv_push(&g->devices, sb.buf);
    sb_free(&sb);
    qm_propstr_free(&ps);
    return 0;
}

/* The TPM is an swtpm process that the caller starts on RUN_DIR/VMID.swtpm before QEMU. */
int gen_tpm(struct gen *g)
{
    if (!gen_get(g, "tpmstate0"))
        return 0;
    sv_push(&g->devices, "-chardev");
    sv_pushf(&g->devices, "socket,id=tpmchar,path=%s/%d.swtpm", g->in->paths->run_dir,
             g->in->vmid);
    sv_push(&g->devices, "-tpmdev");
    sv_push(&g->devices, "emulator,id=tpmdev,chardev=tpmchar");
    sv_push(&g->devices, "-device");
    sv_push(&g->devices, "tpm-tis,tpmdev=tpmdev");
    return 0;
}

int gen_sev(struct gen *g)
{
    const char *value = gen_get(g, "amd-sev");
    const struct qm_host *host = g->in->host;
    struct qm_propstr ps = {0};
    unsigned policy = 0;
    int rc = 0;

    if (!value)
        return 0;
    if (qm_propstr_parse("amd-sev", value, &ps, g->err) < 0)
        return -1;
    const char *type = ps_get(&ps, "type");
    if (!type)
        type = "std";
    if (!host->sev)
        rc = qm_fail(g->err, 400, "Your CPU does not support AMD SEV.");
    else if (strcmp(type, "es") == 0 && !host->sev_es)
        rc = qm_fail(g->err, 400, "Your CPU does not support AMD SEV-ES.");
    else if (strcmp(type, "snp") == 0 && !host->sev_snp)
        rc = qm_fail(g->err, 400, "Your CPU does not support AMD SEV-SNP.");
    else if (!g->ovmf)
        rc = qm_fail(g->err, 400, "To use AMD SEV, you need to change the BIOS to OVMF.");
    if (rc < 0) {
        qm_propstr_free(&ps);
        return -1;
    }

    struct strbuf sb = {0};
    if (strcmp(type, "snp") == 0) {
        sb_add(&sb, "sev-snp-guest");
        /* SEV-SNP guest policy (AMD document 56860, section 4.3): bit 17 is reserved as 1. */
        policy = 1u << 17;
        if (ps_bool(&ps, "allow-smt", true))
            policy |= 1u << 16;
        if (!ps_bool(&ps, "no-debug", false))
            policy |= 1u << 19;
    } else {
        sb_add(&sb, "sev-guest");
        /* SEV guest policy: NODBG, NOKS, ES, and NOSEND so the guest cannot be migrated. */
        if (ps_bool(&ps, "no-debug", false))
            policy |= 1u << 0;
        if (ps_bool(&ps, "no-key-sharing", false))
            policy |= 1u << 1;
        if (strcmp(type, "es") == 0)
            policy |= 1u << 2;
        policy |= 1u << 3;
    }
    sb_addf(&sb, ",id=sev0,cbitpos=%d,reduced-phys-bits=%d,policy=%#x", host->sev_cbitpos,
            host->sev_reduced_phys_bits, policy);
    if (ps_bool(&ps, "kernel-hashes", false))
        sb_add(&sb, ",kernel-hashes=on");
    sv_push(&g->devices, "-object");
    sv_push(&g->devices, sb.buf);
    sv_push(&g->machine_flags, "confidential-guest-support=sev0");
    sb_free(&sb);
    qm_propstr_free(&ps);
    return 0;
}

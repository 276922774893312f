/*
 * cfg2cmd mode of the conformance runner, included by conformance.c.
 *
 *   cfg2cmd  DIR/NAME.conf (and those of subfolders) is turned into a QEMU
 *            command line for VM 8006 on the fixed host the cases assume,
 *            and compared with DIR/NAME.conf.cmd in "qm showcmd --pretty"
 *            layout. A case whose description has "EXPECT_ERROR: MESSAGE"
 *            passes when generation fails; whether the message matches is
 *            printed beside the result.
 *
 * The description comments may set QEMU_VERSION (default 11.0.0),
 * HOST_ARCH (x86_64), HOST_CPU_VENDOR (GenuineIntel) and HW_CAPABILITIES
 * (SEV support). The storage configuration and the custom CPU models are
 * env/storage.cfg and env/cpu-models.conf of the case folder or of its
 * parent. The host has the PCI devices, PCI mappings and bridge MTUs that
 * the cases assume (set_case_host).
 */
#include "qm/qemu.h"
#include "qm/storage.h"

/* Returns the value of a "# NAME: VALUE" description line, or NULL; the caller frees it. */
static char *case_setting(const char *text, const char *name)
{
    const char *line = text;
    size_t nlen = strlen(name);

    while (line && *line == '#') {
        const char *p = line + 1;
        while (*p == ' ')
            p++;
        if (strncmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            while (*p == ' ')
                p++;
            const char *end = strchr(p, '\n');
            return qm_strndup(p, end ? (size_t)(end - p) : strlen(p));
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

/* Finds env/NAME in dir or its parent. */
static char *find_env_file(const char *dir, const char *name)
{
    char *path = qm_sprintf("%s/env/%s", dir, name);
    if (is_file(path))
        return path;
    free(path);
    path = qm_sprintf("%s/../env/%s", dir, name);
    if (is_file(path))
        return path;
    free(path);
    return NULL;
}

/* Reads "KEY": true / number from raw JSON text; a minimal lookup for HW_CAPABILITIES. */
static const char *json_value_of(const char *json, const char *key)
{
    char *quoted = qm_sprintf("\"%s\"", key);
    const char *p = strstr(json, quoted);
    free(quoted);
    if (!p)
        return NULL;
    p = strchr(p + strlen(key) + 2, ':');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

/* Sets the SEV capabilities of a HW_CAPABILITIES value. */
static void set_hw_capabilities(struct qm_host *host, const char *caps)
{
    if (strcmp(caps, "amd-turin-9005") == 0) {
        host->sev = host->sev_es = host->sev_snp = true;
        host->sev_cbitpos = 51;
        host->sev_reduced_phys_bits = 6;
        return;
    }
    const char *v;
    if ((v = json_value_of(caps, "sev-support")))
        host->sev = qm_str_starts(v, "true") || qm_str_starts(v, "1");
    if ((v = json_value_of(caps, "sev-support-es")))
        host->sev_es = qm_str_starts(v, "true") || qm_str_starts(v, "1");
    if ((v = json_value_of(caps, "sev-support-snp")))
        host->sev_snp = qm_str_starts(v, "true") || qm_str_starts(v, "1");
    if ((v = json_value_of(caps, "cbitpos")))
        host->sev_cbitpos = atoi(v);
    if ((v = json_value_of(caps, "reduced-phys-bits")))
        host->sev_reduced_phys_bits = atoi(v);
}

/*
 * The snapshot chain of the cases' snapshot-as-volume-chain storages: the
 * current image has parent snap2, whose parent is snap1, each a file
 * "SNAP-NAME" beside the current image.
 */
static int case_volume_chain(const char *volid, const char *path, struct strvec *names,
                             struct strvec *files, struct qm_error *err)
{
    static const char *const chain[] = {"snap2", "snap1"};
    const char *slash = strrchr(path, '/');

    (void)volid;
    (void)err;
    if (!slash)
        return 0;
    for (size_t i = 0; i < QM_ARRAY_SIZE(chain); i++) {
        sv_push(names, chain[i]);
        sv_pushf(files, "%.*s/%s-%s", (int)(slash - path), path, chain[i], slash + 1);
    }
    return 0;
}

/* The fixed host of the cases: its PCI devices, mappings and bridges. */
static void set_case_host(struct qm_host *host)
{
    static const char *const plain[] = {
        "0000:00:43.1", "0000:00:f4.0", "0000:00:ff.1", "0000:0f:f2.0", "0000:d0:13.0",
        "0000:d0:15.1", "0000:d0:15.2", "0000:d0:17.0", "0000:f0:42.0", "0000:f0:43.0",
        "0000:f0:43.1", "1234:f0:43.1",
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(plain); i++)
        qm_host_add_pci(host, plain[i], "", "", -1, false);
    for (int f = 4; f <= 6; f++) {
        char id[32];
        snprintf(id, sizeof(id), "0000:01:00.%d", f);
        qm_host_add_pci(host, id, "10de", "2231", 1, true);
    }
    static const int nic_functions[] = {0, 1, 4};
    for (size_t i = 0; i < QM_ARRAY_SIZE(nic_functions); i++) {
        char id[32];
        snprintf(id, sizeof(id), "0000:07:10.%d", nic_functions[i]);
        qm_host_add_pci(host, id, "8086", "1520", 2, false);
    }

    host->pci_mappings = qm_calloc(2, sizeof(*host->pci_mappings));
    host->npci_mappings = 2;
    struct qm_pci_mapping *gpu = &host->pci_mappings[0];
    gpu->name = qm_strdup("someGpu");
    gpu->id = qm_strdup("10de:2231");
    gpu->iommu_group = 1;
    gpu->mdev = true;
    sv_push(&gpu->paths, "0000:01:00.4");
    sv_push(&gpu->paths, "0000:01:00.5");
    sv_push(&gpu->paths, "0000:01:00.6");
    struct qm_pci_mapping *nic = &host->pci_mappings[1];
    nic->name = qm_strdup("someNic");
    nic->id = qm_strdup("8086:1520");
    nic->iommu_group = 2;
    sv_push(&nic->paths, "0000:07:10.0");
    sv_push(&nic->paths, "0000:07:10.1");
    sv_push(&nic->paths, "0000:07:10.4");

    host->bridges = qm_calloc(1, sizeof(*host->bridges));
    host->nbridges = 1;
    host->bridges[0].name = qm_strdup("vxlan_bridge");
    host->bridges[0].mtu = 1450;

    /* Every host NUMA node exists. */
    host->numa_nodes = 1 << 16;
}

/* Returns a description of the first line where got and expected differ. */
static char *cmd_first_difference(const char *got, const char *expected)
{
    int lineno = 1;

    while (*got && *expected) {
        size_t glen = strcspn(got, "\n");
        size_t elen = strcspn(expected, "\n");
        if (glen != elen || strncmp(got, expected, glen) != 0)
            return qm_sprintf("line %d: got '%.*s', expected '%.*s'", lineno, (int)glen, got,
                              (int)elen, expected);
        got += glen + (got[glen] == '\n');
        expected += elen + (expected[elen] == '\n');
        lineno++;
    }
    if (*got)
        return qm_sprintf("line %d: extra output '%.*s'", lineno, (int)strcspn(got, "\n"), got);
    if (*expected)
        return qm_sprintf("line %d: missing '%.*s'", lineno, (int)strcspn(expected, "\n"),
                          expected);
    return NULL;
}

static void run_cfg2cmd_case(const char *dir, const char *file, struct qm_storage_cfg *storage,
                             const struct qm_cpu_models *cpu_models, struct tally *t)
{
    char *path = qm_sprintf("%s/%s", dir, file);
    char *name = qm_strndup(file, strlen(file) - strlen(".conf"));
    char *text = NULL;
    struct qm_error err = {0};

    if (qm_read_file(path, &text, NULL, &err) < 0) {
        fail(t, name, "%s", err.msg);
        free(path);
        free(name);
        return;
    }
    char *version = case_setting(text, "QEMU_VERSION");
    char *arch = case_setting(text, "HOST_ARCH");
    char *vendor = case_setting(text, "HOST_CPU_VENDOR");
    char *expect_error = case_setting(text, "EXPECT_ERROR");
    char *hw_caps = case_setting(text, "HW_CAPABILITIES");

    struct qm_host host;
    qm_host_default(&host);
    if (arch) {
        free(host.arch);
        host.arch = qm_strdup(arch);
    }
    if (vendor) {
        free(host.cpu_vendor);
        host.cpu_vendor = qm_strdup(vendor);
    }
    host.iscsi_initiator = qm_strdup("iqn.1993-08.org.debian:01:aabbccddeeff");
    host.cdrom = qm_strdup("/dev/cdrom");
    set_case_host(&host);
    if (hw_caps)
        set_hw_capabilities(&host, hw_caps);

    struct qm_qemu_caps caps;
    struct qm_paths paths;
    struct qm_conf *conf = NULL;
    struct strvec argv = {0};
    struct strvec warnings = {0};
    int rc = qm_qemu_caps_from_version("/usr/bin/kvm", version ? version : "11.0.0", true,
                                       &caps, &err);
    qm_paths_init(&paths, NULL);
    if (rc == 0)
        rc = qm_conf_parse(text, strlen(text), "8006.conf", false, &conf, NULL, &err);
    if (rc == 0) {
        struct qm_cmdline_input in = {
            .vmid = 8006, .conf = conf, .storage = storage, .host = &host, .caps = &caps,
            .paths = &paths, .cpu_models = cpu_models, .volume_chain = case_volume_chain,
        };
        rc = qm_qemu_cmdline(&in, &argv, &warnings, &err);
    }

    if (expect_error) {
        if (rc == 0)
            fail(t, name, "generation succeeded, expected error '%s'", expect_error);
        else if (strstr(err.msg, expect_error))
            printf("PASS %s (message matches)\n", name), t->passed++;
        else
            printf("PASS %s (message differs: '%s')\n", name, err.msg), t->passed++;
    } else if (rc < 0) {
        fail(t, name, "generation failed: %s", err.msg);
    } else {
        char *cmd_path = qm_sprintf("%s.cmd", path);
        char *expected = NULL;
        if (qm_read_file(cmd_path, &expected, NULL, &err) < 0) {
            fail(t, name, "%s", err.msg);
        } else {
            size_t len = strlen(expected);
            while (len > 0 && expected[len - 1] == '\n')
                expected[--len] = '\0';
            char *got = qm_qemu_cmdline_pretty(&argv);
            char *diff = cmd_first_difference(got, expected);
            if (diff)
                fail(t, name, "%s", diff);
            else
                pass(t, name);
            free(diff);
            free(got);
        }
        free(expected);
        free(cmd_path);
    }

    sv_free(&argv);
    sv_free(&warnings);
    qm_conf_free(conf);
    qm_paths_free(&paths);
    qm_qemu_caps_free(&caps);
    qm_host_free(&host);
    free(version);
    free(arch);
    free(vendor);
    free(expect_error);
    free(hw_caps);
    free(text);
    free(name);
    free(path);
}

static void run_cfg2cmd_dir(const char *dir, struct tally *t)
{
    struct strvec files = {0};
    struct qm_storage_cfg storage = {0};
    struct qm_cpu_models cpu_models = {0};
    struct qm_error err = {0};
    char *storage_path = find_env_file(dir, "storage.cfg");
    char *models_path = find_env_file(dir, "cpu-models.conf");

    if (storage_path && qm_storage_cfg_load(storage_path, &storage, &err) < 0) {
        fprintf(stderr, "conformance: %s\n", err.msg);
        free(storage_path);
        free(models_path);
        return;
    }
    if (models_path && qm_cpu_models_load(models_path, &cpu_models, &err) < 0) {
        fprintf(stderr, "conformance: %s\n", err.msg);
        free(storage_path);
        free(models_path);
        qm_storage_cfg_free(&storage);
        return;
    }
    free(storage_path);
    free(models_path);
    list_files(dir, ".conf", &files);
    for (size_t i = 0; i < files.n; i++)
        run_cfg2cmd_case(dir, files.v[i], &storage, &cpu_models, t);
    sv_free(&files);
    qm_storage_cfg_free(&storage);
    qm_cpu_models_free(&cpu_models);

    /* Case folders below this one, such as aarch64/. */
    DIR *d = opendir(dir);
    struct dirent *entry;
    struct strvec subdirs = {0};
    while (d && (entry = readdir(d))) {
        if (entry->d_name[0] == '.' || strcmp(entry->d_name, "env") == 0)
            continue;
        char *sub = qm_sprintf("%s/%s", dir, entry->d_name);
        if (is_dir(sub))
            sv_push(&subdirs, sub);
        free(sub);
    }
    if (d)
        closedir(d);
    if (subdirs.n > 1)
        qsort(subdirs.v, subdirs.n, sizeof(char *), compare_names);
    for (size_t i = 0; i < subdirs.n; i++)
        run_cfg2cmd_dir(subdirs.v[i], t);
    sv_free(&subdirs);
}

static bool detect_cfg2cmd(const char *dir)
{
    struct strvec files = {0};

    list_files(dir, ".conf.cmd", &files);
    bool found = files.n > 0;
    sv_free(&files);
    return found;
}

static void run_cfg2cmd(const char *dir, struct tally *t)
{
    run_cfg2cmd_dir(dir, t);
}

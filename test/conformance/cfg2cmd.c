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
 * HOST_ARCH (x86_64) and HOST_CPU_VENDOR (GenuineIntel). The storage
 * configuration is env/storage.cfg of the case folder or of its parent.
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

/* Finds env/storage.cfg in dir or its parent. */
static char *find_storage_cfg(const char *dir)
{
    char *path = qm_sprintf("%s/env/storage.cfg", dir);
    if (is_file(path))
        return path;
    free(path);
    path = qm_sprintf("%s/../env/storage.cfg", dir);
    if (is_file(path))
        return path;
    free(path);
    return NULL;
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
                             struct tally *t)
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
            .paths = &paths,
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
    free(text);
    free(name);
    free(path);
}

static void run_cfg2cmd_dir(const char *dir, struct tally *t)
{
    struct strvec files = {0};
    struct qm_storage_cfg storage = {0};
    struct qm_error err = {0};
    char *storage_path = find_storage_cfg(dir);

    if (storage_path && qm_storage_cfg_load(storage_path, &storage, &err) < 0) {
        fprintf(stderr, "conformance: %s\n", err.msg);
        free(storage_path);
        return;
    }
    free(storage_path);
    list_files(dir, ".conf", &files);
    for (size_t i = 0; i < files.n; i++)
        run_cfg2cmd_case(dir, files.v[i], &storage, t);
    sv_free(&files);
    qm_storage_cfg_free(&storage);

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

/*
 * Conformance runner: checks this implementation against a folder of test
 * vectors taken from Proxmox VE qemu-server.
 *
 *   conformance [--mode MODE] DIR
 *
 * Modes (detected from the folder's layout when --mode is not given):
 *   parse-config  DIR/input/NAME.conf is read and written back. The result
 *                 must equal DIR/expected/NAME.conf, or the input when there
 *                 is none. DIR/expected/NAME.conf.strict.error contains the
 *                 message that reading in strict mode must fail with, and
 *                 without it reading in strict mode must succeed.
 *
 * Prints "PASS NAME" or "FAIL NAME: reason" per case and a closing line
 * "N passed, N failed". Exits 0 only when no case failed, 2 on usage errors.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qm/config.h"
#include "qm/util.h"

struct tally {
    int passed;
    int failed;
};

static void pass(struct tally *t, const char *name)
{
    printf("PASS %s\n", name);
    t->passed++;
}

static void fail(struct tally *t, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct tally *t, const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    t->failed++;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the file names in dir that end in suffix, sorted. */
static void list_files(const char *dir, const char *suffix, struct strvec *names)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        if (entry->d_name[0] != '.' && qm_str_ends(entry->d_name, suffix))
            sv_push(names, entry->d_name);
    }
    closedir(d);
    if (names->n > 0)
        qsort(names->v, names->n, sizeof(*names->v), compare_names);
}

/* Describes the first line where got differs from expected; NULL when equal. */
static char *first_difference(const char *expected, const char *got)
{
    int line = 1;
    const char *e = expected, *g = got;

    while (*e || *g) {
        const char *e_end = strchrnul(e, '\n');
        const char *g_end = strchrnul(g, '\n');
        int e_len = (int)(e_end - e), g_len = (int)(g_end - g);
        bool e_eof = !*e, g_eof = !*g;

        if (e_eof != g_eof || e_len != g_len || memcmp(e, g, (size_t)e_len) != 0 ||
            (*e_end == '\n') != (*g_end == '\n')) {
            return qm_sprintf("line %d: expected %s%.*s%s, got %s%.*s%s", line,
                              e_eof ? "" : "'", e_len, e, e_eof ? "end of file" : "'",
                              g_eof ? "" : "'", g_len, g, g_eof ? "end of file" : "'");
        }
        e = *e_end ? e_end + 1 : e_end;
        g = *g_end ? g_end + 1 : g_end;
        line++;
    }
    return NULL;
}

static char *read_text(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    struct qm_error err;
    if (qm_read_file(path, &data, &len, &err) < 0)
        return NULL;
    return data;
}

static void trim_trailing_newlines(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
}

/* One parse-config case; returns a failure description or NULL. */
static char *check_parse_case(const char *dir, const char *file)
{
    char *input_path = qm_sprintf("%s/input/%s", dir, file);
    char *expected_path = qm_sprintf("%s/expected/%s", dir, file);
    char *error_path = qm_sprintf("%s/expected/%s.strict.error", dir, file);
    /* The reference derives the VM id from ".../qemu-server/ID.conf". */
    char *filename = qm_sprintf("%s/qemu-server/8006.conf", file);
    char *input = read_text(input_path);
    char *expected = is_file(expected_path) ? read_text(expected_path) : NULL;
    char *problem = NULL;

    if (!input) {
        problem = qm_sprintf("cannot read %s", input_path);
        goto out;
    }

    struct qm_conf *conf = NULL;
    struct qm_error err = { 0 };
    if (qm_conf_parse(input, strlen(input), filename, false, &conf, NULL, &err) < 0) {
        problem = qm_sprintf("non-strict read failed: %s", err.msg);
        goto out;
    }
    char *written = qm_conf_format(conf);
    qm_conf_free(conf);
    problem = first_difference(expected ? expected : input, written);
    free(written);
    if (problem)
        goto out;

    struct qm_conf *strict_conf = NULL;
    int rc = qm_conf_parse(input, strlen(input), filename, true, &strict_conf, NULL, &err);
    qm_conf_free(strict_conf);
    if (is_file(error_path)) {
        char *want = read_text(error_path);
        trim_trailing_newlines(want);
        trim_trailing_newlines(err.msg);
        if (rc == 0)
            problem = qm_sprintf("strict read succeeded, expected error '%s'", want);
        else if (strcmp(want, err.msg) != 0)
            problem = qm_sprintf("strict error: expected '%s', got '%s'", want, err.msg);
        free(want);
    } else if (rc < 0) {
        problem = qm_sprintf("strict read failed: %s", err.msg);
    }

out:
    free(input);
    free(expected);
    free(input_path);
    free(expected_path);
    free(error_path);
    free(filename);
    return problem;
}

static bool detect_parse_config(const char *dir)
{
    char *input = qm_sprintf("%s/input", dir);
    bool found = is_dir(input);
    free(input);
    return found;
}

static void run_parse_config(const char *dir, struct tally *t)
{
    char *input_dir = qm_sprintf("%s/input", dir);
    struct strvec files = { 0 };
    list_files(input_dir, ".conf", &files);
    for (size_t i = 0; i < files.n; i++) {
        char *name = qm_strndup(files.v[i], strlen(files.v[i]) - strlen(".conf"));
        char *problem = check_parse_case(dir, files.v[i]);
        if (problem)
            fail(t, name, "%s", problem);
        else
            pass(t, name);
        free(problem);
        free(name);
    }
    sv_free(&files);
    free(input_dir);
}

#include "cfg2cmd.c"

struct mode {
    const char *name;
    /* Whether dir is laid out for this mode. */
    bool (*detect)(const char *dir);
    void (*run)(const char *dir, struct tally *t);
};

static const struct mode modes[] = {
    { "parse-config", detect_parse_config, run_parse_config },
    { "cfg2cmd", detect_cfg2cmd, run_cfg2cmd },
};

static int usage(void)
{
    fprintf(stderr, "usage: conformance [--mode MODE] DIR\nmodes:");
    for (size_t i = 0; i < QM_ARRAY_SIZE(modes); i++)
        fprintf(stderr, " %s", modes[i].name);
    fprintf(stderr, "\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *mode_name = NULL;
    const char *dir = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            mode_name = argv[++i];
        else if (argv[i][0] == '-' || dir)
            return usage();
        else
            dir = argv[i];
    }
    if (!dir)
        return usage();
    if (!is_dir(dir)) {
        fprintf(stderr, "conformance: '%s' is not a folder\n", dir);
        return 2;
    }

    const struct mode *mode = NULL;
    for (size_t i = 0; i < QM_ARRAY_SIZE(modes) && !mode; i++) {
        if (mode_name ? strcmp(modes[i].name, mode_name) == 0 : modes[i].detect(dir))
            mode = &modes[i];
    }
    if (!mode) {
        fprintf(stderr, mode_name ? "conformance: unknown mode '%s'\n"
                                  : "conformance: cannot tell the mode of folder '%s'\n",
                mode_name ? mode_name : dir);
        return usage();
    }

    /* Warnings of non-strict reads are expected in these cases; keep the output to results. */
    qm_log_max_level = QM_LOG_ERR;

    struct tally t = { 0 };
    mode->run(dir, &t);
    printf("%d passed, %d failed\n", t.passed, t.failed);
    return t.failed == 0 ? 0 : 1;
}

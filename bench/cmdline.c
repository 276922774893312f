/*
 * Measures the time to parse a VM configuration and generate its QEMU command
 * line, over the cfg2cmd conformance cases. Prints the median per case and
 * the median over all cases, in microseconds.
 *
 *   cmdline [CASE_DIR] [ROUNDS]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qm/config.h"
#include "qm/qemu.h"
#include "qm/storage.h"

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), compare_doubles);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs one parse and generation; returns whether generation succeeded. */
static bool run_once(const char *text, const struct qm_cmdline_input *base)
{
    struct qm_conf *conf = NULL;
    struct qm_error err = {0};
    struct strvec argv = {0};
    bool ok = false;

    if (qm_conf_parse(text, strlen(text), "8006.conf", false, &conf, NULL, &err) == 0) {
        struct qm_cmdline_input in = *base;
        in.conf = conf;
        ok = qm_qemu_cmdline(&in, &argv, NULL, &err) == 0;
    }
    sv_free(&argv);
    qm_conf_free(conf);
    return ok;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/conformance/cfg2cmd";
    int rounds = argc > 2 ? atoi(argv[2]) : 200;
    struct qm_error err = {0};
    struct qm_storage_cfg storage = {0};
    struct qm_cpu_models models = {0};
    struct qm_qemu_caps caps;
    struct qm_host host;
    struct qm_paths paths;

    char *path = qm_sprintf("%s/env/storage.cfg", dir);
    if (qm_storage_cfg_load(path, &storage, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    free(path);
    path = qm_sprintf("%s/env/cpu-models.conf", dir);
    if (qm_cpu_models_load(path, &models, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    free(path);
    qm_host_default(&host);
    host.iscsi_initiator = qm_strdup("iqn.1993-08.org.debian:01:aabbccddeeff");
    qm_paths_init(&paths, NULL);
    if (qm_qemu_caps_from_version("/usr/bin/kvm", "11.0.0", true, &caps, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    struct qm_cmdline_input base = {
        .vmid = 8006, .storage = &storage, .host = &host, .caps = &caps, .paths = &paths,
        .cpu_models = &models,
    };

    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench: cannot open case folder '%s'\n", dir);
        return 1;
    }
    double *medians = NULL;
    size_t ncases = 0, failed = 0;
    double *samples = qm_calloc((size_t)rounds, sizeof(*samples));
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".conf") != 0)
            continue;
        char *file = qm_sprintf("%s/%s", dir, e->d_name);
        char *text = NULL;
        if (qm_read_file(file, &text, NULL, &err) < 0) {
            free(file);
            continue;
        }
        if (!run_once(text, &base))
            failed++;
        for (int r = 0; r < rounds; r++) {
            double start = now_us();
            run_once(text, &base);
            samples[r] = now_us() - start;
        }
        medians = qm_realloc(medians, (ncases + 1) * sizeof(*medians));
        medians[ncases++] = median(samples, (size_t)rounds);
        free(text);
        free(file);
    }
    closedir(d);
    if (ncases == 0) {
        fprintf(stderr, "bench: no .conf files in '%s'\n", dir);
        return 1;
    }
    double max = 0;
    for (size_t i = 0; i < ncases; i++)
        if (medians[i] > max)
            max = medians[i];
    double med = median(medians, ncases);
    printf("cases: %zu (%zu end in an error), rounds per case: %d\n", ncases, failed, rounds);
    printf("parse + generate, median over cases: %.1f us (slowest case: %.1f us)\n", med, max);

    free(samples);
    free(medians);
    qm_qemu_caps_free(&caps);
    qm_host_free(&host);
    qm_paths_free(&paths);
    qm_storage_cfg_free(&storage);
    qm_cpu_models_free(&models);
    return 0;
}

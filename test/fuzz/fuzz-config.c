/*
 * libFuzzer target: reads the input as a configuration file in both modes,
 * writes it back and reads the result again. A written file that the reader
 * rejects, or that changes when written a second time, aborts the run.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qm_conf *conf = NULL;
    struct qm_conf *again = NULL;
    struct strvec warnings = {0};
    struct qm_error err;

    if (qm_conf_parse((const char *)data, size, "fuzz/8006.conf", true, &conf, NULL, &err) == 0)
        qm_conf_free(conf);
    conf = NULL;
    if (qm_conf_parse((const char *)data, size, "fuzz/8006.conf", false, &conf, &warnings,
                      &err) < 0) {
        sv_free(&warnings);
        return 0;
    }
    sv_free(&warnings);

    char *text = qm_conf_format(conf);
    if (qm_conf_parse(text, strlen(text), "fuzz/8006.conf", false, &again, &warnings, &err) < 0) {
        fprintf(stderr, "written configuration is rejected: %s\n", err.msg);
        abort();
    }
    char *text2 = qm_conf_format(again);
    if (strcmp(text, text2) != 0) {
        fprintf(stderr, "writing is not stable:\n--- first\n%s--- second\n%s", text, text2);
        abort();
    }
    free(text2);
    free(text);
    sv_free(&warnings);
    qm_conf_free(again);
    qm_conf_free(conf);
    return 0;
}

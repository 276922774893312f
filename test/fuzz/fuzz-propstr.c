/*
 * libFuzzer target: the first input byte picks a property, the rest is its
 * value. The value is parsed as that property's property string and, when
 * valid, printed and parsed again; a printed value that fails to parse
 * aborts the run.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {
    "net0", "scsi0", "virtio0", "ide2", "sata1", "efidisk0", "tpmstate0", "bios", "cpu",
    "agent", "boot", "memory", "smbios1", "vga", "serial0", "usb0", "hostpci0", "rng0",
    "numa0", "ipconfig0", "audio0", "spice_enhancements", "watchdog", "startup",
    "qemu_binary_x86_64", "machine", "amd-sev", "virtiofs0", "unused0", "parallel0",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qm_propstr ps = {0};
    struct qm_propstr again = {0};
    struct qm_error err;

    if (size < 1)
        return 0;
    const char *key = keys[data[0] % (sizeof(keys) / sizeof(keys[0]))];
    char *value = qm_strndup((const char *)data + 1, size - 1);

    (void)qm_conf_check_property(key, value, &err);
    if (qm_propstr_parse(key, value, &ps, &err) == 0) {
        char *printed = qm_propstr_print(key, &ps, &err);
        if (printed) {
            if (qm_propstr_parse(key, printed, &again, &err) < 0) {
                fprintf(stderr, "%s: printed '%s' (from '%s') is rejected: %s\n", key, printed,
                        value, err.msg);
                abort();
            }
            qm_propstr_free(&again);
            free(printed);
        }
        qm_propstr_free(&ps);
    }
    free(value);
    return 0;
}

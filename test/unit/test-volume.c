/* Volume operations on a dir storage in a temporary folder, with real qemu-img. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qm/storage.h"

#define GIB (1024ULL * 1024 * 1024)

static char base[] = "/tmp/qm-test-volume-XXXXXX";
static struct qm_storage_cfg cfg;

static int setup(void **state)
{
    struct qm_error err = {0};

    if (!mkdtemp(base))
        return -1;
    char *text = qm_sprintf("dir: local\n\tpath %s/dir\n\tcontent images,iso\n"
                            "dir: rawdir\n\tpath %s/raw\n\tformat raw\n"
                            "dir: isoonly\n\tpath %s/iso\n\tcontent iso\n"
                            "lvmthin: thin\n\tvgname pve\n\tthinpool data\n",
                            base, base, base);
    int r = qm_storage_cfg_parse(text, &cfg, &err);
    free(text);
    return r;
}

static int teardown(void **state)
{
    char *cmd = qm_sprintf("rm -rf '%s'", base);
    int r = system(cmd);
    free(cmd);
    qm_storage_cfg_free(&cfg);
    return r == 0 ? 0 : -1;
}

static void volume_alloc_names_and_formats(void **state)
{
    struct qm_error err = {0};
    char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

    assert_int_equal(qm_volume_alloc(&cfg, "local", 100, NULL, GIB, &a, &err), 0);
    assert_string_equal(a, "local:100/vm-100-disk-0.qcow2");
    assert_int_equal(qm_volume_alloc(&cfg, "local", 100, "raw", GIB / 1024, &b, &err), 0);
    assert_string_equal(b, "local:100/vm-100-disk-1.raw");
    assert_int_equal(qm_volume_alloc(&cfg, "local", 100, "vmdk", GIB, &c, &err), 0);
    assert_string_equal(c, "local:100/vm-100-disk-2.vmdk");
    assert_int_equal(qm_volume_alloc(&cfg, "rawdir", 100, NULL, GIB, &d, &err), 0);
    assert_string_equal(d, "rawdir:100/vm-100-disk-0.raw");

    unsigned long long size = 0;
    assert_int_equal(qm_volume_size(&cfg, a, &size, &err), 0);
    assert_int_equal(size, GIB);
    assert_int_equal(qm_volume_size(&cfg, b, &size, &err), 0);
    assert_int_equal(size, GIB / 1024);

    /* A freed number is reused first. */
    assert_int_equal(qm_volume_delete(&cfg, b, &err), 0);
    free(b);
    assert_int_equal(qm_volume_alloc(&cfg, "local", 100, "raw", GIB, &b, &err), 0);
    assert_string_equal(b, "local:100/vm-100-disk-1.raw");

    struct strvec list = {0};
    assert_int_equal(qm_volume_list(&cfg, "local", 100, &list, &err), 0);
    assert_int_equal(list.n, 3);
    assert_string_equal(list.v[0], "local:100/vm-100-disk-0.qcow2");
    assert_string_equal(list.v[2], "local:100/vm-100-disk-2.vmdk");
    sv_free(&list);
    assert_int_equal(qm_volume_list(&cfg, "local", 101, &list, &err), 0);
    assert_int_equal(list.n, 0);

    char *volids[] = {a, b, c, d};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(qm_volume_delete(&cfg, volids[i], &err), 0);
        free(volids[i]);
    }
    assert_int_equal(qm_volume_list(&cfg, "local", 100, &list, &err), 0);
    assert_int_equal(list.n, 0);
}

static void volume_resize_grows_never_shrinks(void **state)
{
    struct qm_error err = {0};
    char *volid = NULL;
    unsigned long long size = 0;

    assert_int_equal(qm_volume_alloc(&cfg, "local", 102, "qcow2", GIB, &volid, &err), 0);
    assert_int_equal(qm_volume_resize(&cfg, volid, 2 * GIB, &err), 0);
    assert_int_equal(qm_volume_size(&cfg, volid, &size, &err), 0);
    assert_int_equal(size, 2 * GIB);
    assert_int_equal(qm_volume_resize(&cfg, volid, GIB, &err), -1);
    assert_int_equal(err.code, 400);
    assert_non_null(strstr(err.msg, "shrinking"));
    assert_int_equal(qm_volume_size(&cfg, volid, &size, &err), 0);
    assert_int_equal(size, 2 * GIB);
    assert_int_equal(qm_volume_delete(&cfg, volid, &err), 0);
    free(volid);
}

static void volume_rejects_bad_requests(void **state)
{
    struct qm_error err = {0};
    char *volid = NULL;

    /* Other storage types are refused by name. */
    assert_int_equal(qm_volume_alloc(&cfg, "thin", 100, NULL, GIB, &volid, &err), -1);
    assert_int_equal(err.code, 501);
    assert_non_null(strstr(err.msg, "'lvmthin'"));
    assert_int_equal(qm_volume_delete(&cfg, "thin:vm-100-disk-0", &err), -1);
    assert_non_null(strstr(err.msg, "'lvmthin'"));
    assert_int_equal(qm_volume_alloc(&cfg, "isoonly", 100, NULL, GIB, &volid, &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(qm_volume_alloc(&cfg, "nowhere", 100, NULL, GIB, &volid, &err), -1);
    assert_int_equal(err.code, 404);
    assert_int_equal(qm_volume_alloc(&cfg, "local", 100, "vdi", GIB, &volid, &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(qm_volume_alloc(&cfg, "local", 100, NULL, 0, &volid, &err), -1);
    assert_int_equal(err.code, 400);
    /* Path traversal never reaches the file system. */
    assert_int_equal(qm_volume_delete(&cfg, "local:100/../../etc/passwd.raw", &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(qm_volume_delete(&cfg, "local:iso/x.iso", &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(qm_volume_delete(&cfg, "/etc/passwd", &err), -1);
    assert_int_equal(qm_volume_delete(&cfg, "local:100/vm-100-disk-9.raw", &err), -1);
    assert_int_equal(err.code, 404);
    /* A failing qemu-img leaves no file behind. */
    assert_int_equal(qm_volume_alloc(&cfg, "local", 103, "qcow2", 1ULL << 62, &volid, &err),
                     -1);
    assert_non_null(strstr(err.msg, "qemu-img"));
    struct strvec list = {0};
    assert_int_equal(qm_volume_list(&cfg, "local", 103, &list, &err), 0);
    assert_int_equal(list.n, 0);
}

static void volume_copy_and_snapshot(void **state)
{
    struct qm_error err = {0};
    char *src = NULL, *dst = NULL;
    struct qm_volume s, d;

    assert_int_equal(qm_volume_alloc(&cfg, "local", 104, "raw", 1 << 20, &src, &err), 0);
    assert_int_equal(qm_volume_alloc(&cfg, "local", 104, "qcow2", 1 << 20, &dst, &err), 0);
    assert_int_equal(qm_volume_resolve(&cfg, src, 0, &s, &err), 0);
    assert_int_equal(qm_volume_resolve(&cfg, dst, 0, &d, &err), 0);
    FILE *f = fopen(s.path, "r+");
    assert_non_null(f);
    fputs("qm-test-data", f);
    fclose(f);
    assert_int_equal(qm_image_copy(s.path, "raw", d.path, "qcow2", NULL, NULL, &err), 0);
    unsigned long long size = 0;
    char *format = NULL;
    assert_int_equal(qm_image_info(d.path, NULL, &size, &format, &err), 0);
    assert_string_equal(format, "qcow2");
    assert_int_equal(size, 1 << 20);
    free(format);

    assert_int_equal(qm_volume_snapshot(&cfg, dst, "first", QM_SNAPSHOT_CREATE, &err), 0);
    assert_int_equal(qm_volume_snapshot(&cfg, dst, "first", QM_SNAPSHOT_DELETE, &err), 0);
    assert_int_equal(qm_volume_snapshot(&cfg, src, "first", QM_SNAPSHOT_CREATE, &err), -1);
    assert_int_equal(err.code, 400);
    assert_int_equal(qm_volume_snapshot(&cfg, dst, "../x", QM_SNAPSHOT_CREATE, &err), -1);
    qm_volume_free(&s);
    qm_volume_free(&d);
    assert_int_equal(qm_volume_delete(&cfg, src, &err), 0);
    assert_int_equal(qm_volume_delete(&cfg, dst, &err), 0);
    free(src);
    free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(volume_alloc_names_and_formats),
        cmocka_unit_test(volume_resize_grows_never_shrinks),
        cmocka_unit_test(volume_rejects_bad_requests),
        cmocka_unit_test(volume_copy_and_snapshot),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

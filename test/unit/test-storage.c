#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qm/storage.h"

static const char cfg_text[] =
    "dir: local\n"
    "\tpath /var/lib/vz\n"
    "\tcontent images,iso,snippets\n"
    "\tshared 0\n"
    "\n"
    "dir: noimages\n"
    "\tpath /srv/iso\n"
    "\tcontent iso\n"
    "\n"
    "btrfs: btrfs-store\n"
    "\tpath /butter/bread\n"
    "\tcontent images\n"
    "\n"
    "cifs: cifs-store\n"
    "\tserver 127.0.0.42\n"
    "\tshare CIFShare\n"
    "\tcontent images,iso\n"
    "\n"
    "rbd: rbd-store\n"
    "\tmonhost 127.0.0.42,127.0.0.21,::1\n"
    "\tpool cpool\n"
    "\tusername admin\n"
    "\tfsid fc4181a6-56eb-4f68-b452-8ba1f381ca2a\n"
    "\tcontent images\n"
    "\n"
    "rbd: krbd-store\n"
    "\tpool cpool\n"
    "\tfsid fc4181a6-56eb-4f68-b452-8ba1f381ca2a\n"
    "\tkrbd 1\n"
    "\n"
    "zfs: zfs-over-iscsi-store\n"
    "\tportal 127.0.0.1\n"
    "\ttarget iqn.2019-10.org.test:foobar\n"
    "\tpool tank\n"
    "\tcontent images\n"
    "\n"
    "zfspool: local-zfs\n"
    "\tpool rpool/data\n"
    "\n"
    "lvm: lvm-store\n"
    "\tvgname veegee\n"
    "\tcontent images\n"
    "\n"
    "lvmthin: local-lvm\n"
    "\tvgname pve\n"
    "\tthinpool data\n";

static struct qm_storage_cfg cfg;

static int setup(void **state)
{
    struct qm_error err = {0};

    return qm_storage_cfg_parse(cfg_text, &cfg, &err);
}

static int teardown(void **state)
{
    qm_storage_cfg_free(&cfg);
    return 0;
}

static void storage_parse_sections(void **state)
{
    const struct qm_storage *s = qm_storage_find(&cfg, "local");

    assert_int_equal(cfg.n, 10);
    assert_non_null(s);
    assert_string_equal(s->type, "dir");
    assert_string_equal(s->path, "/var/lib/vz");
    assert_true(s->content & QM_CONTENT_IMAGES);
    assert_true(s->content & QM_CONTENT_SNIPPETS);
    assert_false(s->content & QM_CONTENT_BACKUP);
    assert_string_equal(qm_storage_get(s, "shared"), "0");
    assert_null(qm_storage_find(&cfg, "nowhere"));
    /* nfs and cifs mount under /mnt/pve/ID unless a path is set. */
    assert_string_equal(qm_storage_find(&cfg, "cifs-store")->path, "/mnt/pve/cifs-store");
    /* Content defaults by type. */
    assert_int_equal(qm_storage_find(&cfg, "local-lvm")->content,
                     QM_CONTENT_IMAGES | QM_CONTENT_ROOTDIR);
}

static void storage_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "frobfs: x\n\tpath /x\n",
        "\tpath /x\n",
        "dir: a\n\tpath /x\ndir: a\n\tpath /y\n",
        "dir: a\n\tcontent images,videos\n\tpath /x\n",
        "dir: nopath\n\tcontent images\n",
        "dir: 1bad\n\tpath /x\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct qm_storage_cfg c;
        struct qm_error err = {0};
        assert_int_equal(qm_storage_cfg_parse(bad[i], &c, &err), -1);
        assert_int_equal(err.code, 400);
    }
}

static void storage_load_default(void **state)
{
    struct qm_storage_cfg c;
    struct qm_error err = {0};

    assert_int_equal(qm_storage_cfg_load("/nonexistent/storage.cfg", &c, &err), 0);
    const struct qm_storage *s = qm_storage_find(&c, "local");
    assert_non_null(s);
    assert_string_equal(s->path, "/var/lib/vz");
    assert_true(s->content & QM_CONTENT_ISO);
    qm_storage_cfg_free(&c);
}

static void volume_paths(void **state)
{
    static const struct {
        const char *volid;
        const char *path;
        const char *format;
    } cases[] = {
        {"local:100/vm-100-disk-0.qcow2", "/var/lib/vz/images/100/vm-100-disk-0.qcow2", "qcow2"},
        {"local:100/base-100-disk-0.raw/101/vm-101-disk-0.qcow2",
         "/var/lib/vz/images/101/vm-101-disk-0.qcow2", "qcow2"},
        {"local:iso/debian.iso", "/var/lib/vz/template/iso/debian.iso", NULL},
        {"local:snippets/user.yaml", "/var/lib/vz/snippets/user.yaml", NULL},
        {"btrfs-store:100/vm-100-disk-0.raw", "/butter/bread/images/100/vm-100-disk-0/disk.raw",
         "raw"},
        {"cifs-store:iso/one.iso", "/mnt/pve/cifs-store/template/iso/one.iso", NULL},
        {"krbd-store:vm-100-disk-0",
         "/dev/rbd-pve/fc4181a6-56eb-4f68-b452-8ba1f381ca2a/cpool/vm-100-disk-0", "raw"},
        {"local-zfs:vm-100-disk-0", "/dev/zvol/rpool/data/vm-100-disk-0", "raw"},
        {"lvm-store:vm-100-disk-0", "/dev/veegee/vm-100-disk-0", "raw"},
        {"local-lvm:vm-100-disk-1", "/dev/pve/vm-100-disk-1", "raw"},
        {"/dev/sda", "/dev/sda", "raw"},
        {"/mnt/file.qcow2", "/mnt/file.qcow2", "qcow2"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct qm_volume vol;
        struct qm_error err = {0};
        if (qm_volume_resolve(&cfg, cases[i].volid, 0, &vol, &err) < 0)
            fail_msg("%s: %s", cases[i].volid, err.msg);
        assert_string_equal(vol.path, cases[i].path);
        if (cases[i].format)
            assert_string_equal(vol.format, cases[i].format);
        else
            assert_null(vol.format);
        qm_volume_free(&vol);
    }
}

static void volume_network_protocols(void **state)
{
    struct qm_volume vol;
    struct qm_error err = {0};

    assert_int_equal(qm_volume_resolve(&cfg, "rbd-store:vm-100-disk-0", 0, &vol, &err), 0);
    assert_int_equal(vol.kind, QM_VOLUME_RBD);
    assert_string_equal(vol.pool, "cpool");
    assert_string_equal(vol.image, "vm-100-disk-0");
    assert_int_equal(vol.monitors.n, 3);
    assert_string_equal(vol.monitors.v[2], "::1");
    assert_string_equal(vol.rbd_user, "admin");
    qm_volume_free(&vol);

    assert_int_equal(qm_volume_resolve(&cfg, "zfs-over-iscsi-store:vm-100-disk-0", 0, &vol,
                                       &err), 0);
    assert_int_equal(vol.kind, QM_VOLUME_ISCSI);
    assert_string_equal(vol.portal, "127.0.0.1");
    assert_string_equal(vol.target, "iqn.2019-10.org.test:foobar");
    assert_int_equal(vol.lun, 0);
    qm_volume_free(&vol);
}

static void volume_rejects(void **state)
{
    static const struct {
        const char *volid;
        unsigned content;
        int code;
        const char *message;
    } cases[] = {
        {"noimages:100/vm-100-disk-0.qcow2", 0, 400,
         "storage 'noimages' does not support content-type 'images'"},
        {"local:iso/debian.iso", QM_CONTENT_IMAGES, 400, "has content type 'iso'"},
        {"nowhere:100/vm-100-disk-0.qcow2", 0, 404, "storage 'nowhere' does not exist"},
        {"local:iso/../../../etc/passwd", 0, 400, "invalid path component"},
        {"local:100/../vm-100-disk-0.qcow2", 0, 400, "invalid path component"},
        {"local:snippets/../x", 0, 400, "invalid path component"},
        {"/var/lib/vz/../../etc/shadow", 0, 400, "invalid path component"},
        {"local:100/vm-100-disk-0", 0, 400, "unable to parse image format"},
        {"local:iso/notes.txt", 0, 400, "is not an ISO image"},
        {"lvm-store:something", 0, 400, "unable to parse volume name"},
        {"relative/path", 0, 400, "invalid volume id"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct qm_volume vol;
        struct qm_error err = {0};
        assert_int_equal(qm_volume_resolve(&cfg, cases[i].volid, cases[i].content, &vol, &err),
                         -1);
        assert_int_equal(err.code, cases[i].code);
        if (!strstr(err.msg, cases[i].message))
            fail_msg("%s: message '%s' lacks '%s'", cases[i].volid, err.msg, cases[i].message);
    }
}

static void volume_path_and_format(void **state)
{
    char *path = NULL;
    struct qm_error err = {0};

    assert_int_equal(qm_volume_path(&cfg, "local:iso/x.iso", QM_CONTENT_ISO, &path, &err), 0);
    assert_string_equal(path, "/var/lib/vz/template/iso/x.iso");
    free(path);
    assert_string_equal(qm_volume_format("vm-1-disk-0.vmdk"), "vmdk");
    assert_null(qm_volume_format("vm-1-disk-0"));
    assert_true(qm_volid_has_storage("local:iso/x.iso"));
    assert_false(qm_volid_has_storage("/dev/sda"));
    assert_false(qm_volid_has_storage("cdrom"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(storage_parse_sections),
        cmocka_unit_test(storage_parse_rejects),
        cmocka_unit_test(storage_load_default),
        cmocka_unit_test(volume_paths),
        cmocka_unit_test(volume_network_protocols),
        cmocka_unit_test(volume_rejects),
        cmocka_unit_test(volume_path_and_format),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Unit tests of the configuration model: parser, writer, property strings, schema checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qm/config.h"
#include "qm/util.h"

#define FILENAME "/etc/pve/qemu-server/8006.conf"

static struct qm_conf *parse_ok(const char *text, bool strict)
{
    struct qm_conf *conf = NULL;
    struct qm_error err = { 0 };
    int rc = qm_conf_parse(text, strlen(text), FILENAME, strict, &conf, NULL, &err);
    if (rc != 0)
        fail_msg("parse failed: %s", err.msg);
    return conf;
}

/* Parses strictly, expects failure and returns the message in err. */
static void parse_fails(const char *text, struct qm_error *err)
{
    struct qm_conf *conf = NULL;
    int rc = qm_conf_parse(text, strlen(text), FILENAME, true, &conf, NULL, err);
    assert_int_equal(rc, -1);
    assert_null(conf);
    assert_int_equal(err->code, 400);
}

static char *roundtrip(const char *text)
{
    struct qm_conf *conf = parse_ok(text, false);
    char *out = qm_conf_format(conf);
    qm_conf_free(conf);
    return out;
}

static void parse_main_section(void **state)
{
    struct qm_conf *conf = parse_ok("cores: 2\nname: vm1\nmemory: 1024\nonboot: yes\n", true);

    assert_int_equal(conf->vmid, 8006);
    assert_string_equal(qm_conf_get(&conf->main, "cores"), "2");
    assert_string_equal(qm_conf_get(&conf->main, "name"), "vm1");
    assert_string_equal(qm_conf_get(&conf->main, "onboot"), "1");
    assert_null(qm_conf_get(&conf->main, "sockets"));
    assert_null(conf->pending);
    assert_int_equal(conf->nsnapshots, 0);
    qm_conf_free(conf);
}

static void parse_digest_of_raw_file(void **state)
{
    /* sha1("cores: 1\n") */
    struct qm_conf *conf = parse_ok("cores: 1\n", true);
    char digest[41];

    qm_conf_digest("cores: 1\n", 9, digest);
    assert_string_equal(conf->digest, digest);
    qm_conf_digest("abc", 3, digest);
    assert_string_equal(digest, "a9993e364706816aba3e25717850c26c9cd0d89d");
    qm_conf_free(conf);
}

static void parse_normalizes_values(void **state)
{
    struct qm_conf *conf = parse_ok("cores: 007\nacpi: off\ncdrom: none,media=cdrom\n"
                                    "searchdomain: \"example.com\"\n",
                                    true);

    assert_string_equal(qm_conf_get(&conf->main, "cores"), "7");
    assert_string_equal(qm_conf_get(&conf->main, "acpi"), "0");
    assert_null(qm_conf_get(&conf->main, "cdrom"));
    assert_string_equal(qm_conf_get(&conf->main, "ide2"), "none,media=cdrom");
    assert_string_equal(qm_conf_get(&conf->main, "searchdomain"), "example.com");
    qm_conf_free(conf);
}

static void parse_drive_canonical_form(void **state)
{
    struct qm_conf *conf =
        parse_ok("scsi0: size=34359738368,file=local:100/vm-100-disk-0.raw,iothread=on\n"
                 "virtio1: /dev/sdb,bps=1000\n"
                 "ide2: cdrom,media=cdrom\n",
                 true);

    assert_string_equal(qm_conf_get(&conf->main, "scsi0"),
                        "local:100/vm-100-disk-0.raw,iothread=1,size=32G");
    /* The reference converts the defined-flag of legacy bps, not its value. */
    assert_string_equal(qm_conf_get(&conf->main, "virtio1"), "/dev/sdb,mbps=0.000");
    assert_string_equal(qm_conf_get(&conf->main, "ide2"), "cdrom,media=cdrom");
    qm_conf_free(conf);
}

static void parse_description(void **state)
{
    struct qm_conf *conf =
        parse_ok("#first line\n#50%25 done%3A yes\n#\ncores: 1\n#late\n", true);

    assert_string_equal(qm_conf_get(&conf->main, "description"),
                        "first line\n50% done: yes\n\nlate");
    char *out = qm_conf_format(conf);
    assert_string_equal(out, "#first line\n#50%25 done%3A yes\n#\n#late\ncores: 1\n");
    free(out);
    qm_conf_free(conf);
}

static void parse_sections(void **state)
{
    const char *text = "cores: 1\nparent: snap1\n"
                       "\n[PENDING]\nmemory: 2048\ndelete: net1,!scsi1\n"
                       "\n[special:cloudinit]\nname: old\n"
                       "\n[snap1]\ncores: 1\nsnaptime: 1700000000\nsnapstate: prepare\n";
    struct qm_conf *conf = parse_ok(text, true);

    assert_non_null(conf->pending);
    assert_string_equal(qm_conf_get(conf->pending, "memory"), "2048");
    assert_string_equal(qm_conf_get(conf->pending, "delete"), "net1,!scsi1");
    assert_non_null(conf->cloudinit);
    assert_string_equal(qm_conf_get(conf->cloudinit, "name"), "old");
    assert_int_equal(conf->nsnapshots, 1);
    struct qm_conf_section *snap = qm_conf_snapshot(conf, "snap1");
    assert_non_null(snap);
    assert_string_equal(qm_conf_get(snap, "snaptime"), "1700000000");
    assert_string_equal(qm_conf_get(snap, "snapstate"), "prepare");
    qm_conf_free(conf);
}

static void parse_strict_errors(void **state)
{
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        { "numa: maybe\n", "vm 8006 - unable to parse value of 'numa' - type check ('boolean') failed - got 'maybe'" },
        { "cores: -1\n", "vm 8006 - unable to parse value of 'cores' - type check ('integer') failed - got '-1'" },
        { "cpulimit: 1e3\n", "vm 8006 - unable to parse value of 'cpulimit' - type check ('number') failed - got '1e3'" },
        { "foo: bar\n", "vm 8006 - unable to parse value of 'foo' - unknown setting 'foo'" },
        { "net32: virtio\n", "vm 8006 - unable to parse value of 'net32' - unknown setting 'net32'" },
        { "cores 2\n", "vm 8006 - unable to parse config: cores 2" },
        { " cores: 2\n", "vm 8006 - unable to parse config:  cores: 2" },
        { "cores:\n", "vm 8006 - unable to parse config: cores:" },
        { "cores: \n", "vm 8006 - unable to parse value of 'cores' - type check ('integer') failed - got ' '" },
        { "delete: net0\n", "vm 8006 - property 'delete' is only allowed in [PENDING]" },
        { "name: -bad-\n", "vm 8006 - unable to parse value of 'name' - value does not look like a valid DNS name" },
        { "net0: bridge=vmbr0\n", "vm 8006 - unable to parse value of 'net0' - format error\nmodel: property is missing and it is not optional" },
        { "net0: virtio,bridge=vmbr0,bridge=vmbr1\n", "vm 8006 - unable to parse value of 'net0' - duplicate key in comma-separated list property: bridge" },
        { "scsi0: local:vm-1-disk-0,media=cdrom,snapshot=1\n", "vm 8006 - unable to parse value of 'scsi0'" },
        { "virtio0: local:iso/a.iso,media=cdrom\n", "vm 8006 - unable to parse value of 'virtio0'" },
        { "virtio1: disk.raw\n", "vm 8006 - unable to parse value of 'virtio1' - format error\nfile: invalid format - unable to parse volume ID 'disk.raw'" },
        { "scsi1: local:x,mbps=1,mbps_rd=1\n", "vm 8006 - unable to parse value of 'scsi1'" },
        { "scsi1: local:x,iops_max_length=3\n", "vm 8006 - unable to parse value of 'scsi1'" },
        { "[PENDING]\n[pending]\n", "vm 8006 - duplicate section: pending" },
        { "[snap]\n[snap]\n", "vm 8006 - duplicate snapshot section: snap" },
        { "[special:fleecing]\n[special:fleecing]\n", "vm 8006 - duplicate special section: fleecing" },
        { "[a b]\n", "vm 8006 - skipping unknown section: 'a b'" },
        { "[special:fleecing]\ncores: 1\n", "vm 8006 - unable to parse value of 'cores' - unknown setting 'cores'" },
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(cases); i++) {
        struct qm_error err = { 0 };
        parse_fails(cases[i].text, &err);
        assert_string_equal(err.msg, cases[i].message);
    }
}

static void parse_nonstrict_warns(void **state)
{
    const char *text = "cores: x\nfuture-option: 1\nmemory: 512\nbogus line\n";
    struct qm_conf *conf = NULL;
    struct strvec warnings = { 0 };
    struct qm_error err = { 0 };

    assert_int_equal(qm_conf_parse(text, strlen(text), FILENAME, false, &conf, &warnings, &err), 0);
    assert_int_equal(warnings.n, 3);
    assert_null(qm_conf_get(&conf->main, "cores"));
    /* Unknown keys survive a rewrite; invalid values of known keys do not. */
    assert_string_equal(qm_conf_get(&conf->main, "future-option"), "1");
    assert_string_equal(qm_conf_get(&conf->main, "memory"), "512");
    sv_free(&warnings);
    qm_conf_free(conf);
}

static void parse_blank_value_kept(void **state)
{
    struct qm_conf *conf = parse_ok("boot: \nscsi1: /mnt/file.raw\n", true);

    assert_string_equal(qm_conf_get(&conf->main, "boot"), " ");
    assert_string_equal(qm_conf_get(&conf->main, "scsi1"), "/mnt/file.raw");
    char *out = qm_conf_format(conf);
    assert_string_equal(out, "boot:  \nscsi1: /mnt/file.raw\n");
    free(out);
    qm_conf_free(conf);
}

static void parse_duplicate_keys_last_wins(void **state)
{
    struct qm_conf *conf = parse_ok("cores: 1\ncores: 4\n", true);

    assert_string_equal(qm_conf_get(&conf->main, "cores"), "4");
    assert_int_equal(conf->main.n, 1);
    qm_conf_free(conf);
}

static void parse_rejects_strange_filename(void **state)
{
    struct qm_conf *conf = NULL;
    struct qm_error err = { 0 };

    assert_int_equal(qm_conf_parse("", 0, "/tmp/vm.conf", false, &conf, NULL, &err), -1);
    assert_string_equal(err.msg, "got strange filename '/tmp/vm.conf'");
}

static void format_orders_sections(void **state)
{
    const char *text = "sockets: 1\ncores: 2\nide2: lvm:vm-1-cloudinit,media=cdrom\n"
                       "[zz]\ncores: 1\n"
                       "[aa]\ncores: 3\n"
                       "[special:fleecing]\nfleecing-images: zfs:vm-1-fleece-0\n"
                       "[special:cloudinit]\nname: x\n"
                       "[PENDING]\nvga: qxl\n";
    char *out = roundtrip(text);

    assert_string_equal(out, "cores: 2\nide2: lvm:vm-1-cloudinit,media=cdrom\nsockets: 1\n"
                             "\n[PENDING]\nvga: qxl\n"
                             "\n[special:cloudinit]\nname: x\n"
                             "\n[special:fleecing]\nfleecing-images: zfs:vm-1-fleece-0\n"
                             "\n[aa]\ncores: 3\n"
                             "\n[zz]\ncores: 1\n");
    free(out);
}

static void format_drops_cloudinit_without_drive(void **state)
{
    char *out = roundtrip("cores: 2\n[special:cloudinit]\nname: x\n");

    assert_string_equal(out, "cores: 2\n");
    free(out);
}

static void format_rewrites_main(void **state)
{
    char *out = roundtrip("smp: 4\ncores: 2\nscsi0: local:vm-1-disk-0\nunused0: local:vm-1-disk-0\n"
                          "unused1: local:vm-1-disk-1\n");

    assert_string_equal(out, "scsi0: local:vm-1-disk-0\nsockets: 4\nunused1: local:vm-1-disk-1\n");
    free(out);

    out = roundtrip("smp: 4\nsockets: 2\n");
    assert_string_equal(out, "sockets: 2\n");
    free(out);
}

static void format_pending_empty_description(void **state)
{
    struct qm_conf *conf = qm_conf_new(100);

    qm_conf_set(&conf->main, "cores", "1");
    qm_conf_set(qm_conf_pending(conf), "description", "");
    char *out = qm_conf_format(conf);
    assert_string_equal(out, "cores: 1\n\n[PENDING]\n#\n");
    free(out);
    qm_conf_free(conf);
}

static void format_encodes_description(void **state)
{
    struct qm_conf *conf = qm_conf_new(100);

    qm_conf_set(&conf->main, "description", "a:b\tc\xc3\xa4 100%\n\nend\n");
    char *out = qm_conf_format(conf);
    assert_string_equal(out, "#a%3Ab%09c%C3%A4 100%25\n#\n#end\n");
    free(out);
    qm_conf_free(conf);
}

static void section_set_get_unset(void **state)
{
    struct qm_conf *conf = qm_conf_new(100);

    qm_conf_set(&conf->main, "b", "1");
    qm_conf_set(&conf->main, "a", "2");
    qm_conf_set(&conf->main, "b", "3");
    assert_int_equal(conf->main.n, 2);
    assert_string_equal(conf->main.entries[0].key, "b");
    assert_string_equal(qm_conf_get(&conf->main, "b"), "3");
    assert_true(qm_conf_unset(&conf->main, "b"));
    assert_false(qm_conf_unset(&conf->main, "b"));
    assert_null(qm_conf_get(&conf->main, "b"));
    assert_null(qm_conf_get(NULL, "b"));

    qm_conf_snapshot_add(conf, "s1");
    qm_conf_set(qm_conf_snapshot(conf, "s1"), "cores", "1");
    assert_true(qm_conf_snapshot_remove(conf, "s1"));
    assert_null(qm_conf_snapshot(conf, "s1"));
    qm_conf_free(conf);
}

static void pending_delete_list(void **state)
{
    struct qm_conf *conf = parse_ok("cores: 1\n[PENDING]\ndelete: scsi1; !net0 ,tags net0\n", true);
    struct strvec keys = { 0 };
    struct strvec forced = { 0 };
    bool force = false;

    qm_conf_pending_deletes(conf, &keys, &forced);
    assert_int_equal(keys.n, 2);
    assert_string_equal(keys.v[0], "scsi1");
    assert_string_equal(keys.v[1], "tags");
    assert_int_equal(forced.n, 1);
    assert_string_equal(forced.v[0], "net0");
    assert_true(qm_conf_pending_delete_has(conf, "net0", &force));
    assert_true(force);
    assert_false(qm_conf_pending_delete_has(conf, "net1", NULL));

    qm_conf_pending_delete_add(conf, "agent", false);
    assert_string_equal(qm_conf_get(conf->pending, "delete"), "agent,!net0,scsi1,tags");
    assert_true(qm_conf_pending_delete_remove(conf, "net0"));
    assert_false(qm_conf_pending_delete_remove(conf, "net0"));
    assert_string_equal(qm_conf_get(conf->pending, "delete"), "agent,scsi1,tags");
    assert_true(qm_conf_pending_delete_remove(conf, "agent"));
    assert_true(qm_conf_pending_delete_remove(conf, "scsi1"));
    assert_true(qm_conf_pending_delete_remove(conf, "tags"));
    assert_null(qm_conf_get(conf->pending, "delete"));

    sv_free(&keys);
    sv_free(&forced);
    qm_conf_free(conf);
}

static void normalize_value_like_reader(void **state)
{
    struct qm_error err = { 0 };
    char *value = qm_conf_normalize_value(100, "onboot", "true", &err);

    assert_string_equal(value, "1");
    free(value);
    value = qm_conf_normalize_value(100, "scsi0", "local:vm-100-disk-0,size=2048M,cache=none", &err);
    assert_string_equal(value, "local:vm-100-disk-0,cache=none,size=2G");
    free(value);
    assert_null(qm_conf_normalize_value(100, "sockets", "x", &err));
    assert_string_equal(err.msg, "unable to parse value of 'sockets' - type check ('integer') failed - got 'x'");
    assert_null(qm_conf_normalize_value(100, "ide0", "local:iso/x.iso,media=cdrom,format=raw", &err));
    assert_string_equal(err.msg, "unable to parse value of 'ide0'");
}

static void load_and_store(void **state)
{
    char root[] = "/tmp/test-config-XXXXXX";
    assert_non_null(mkdtemp(root));
    struct qm_paths paths;
    struct qm_error err = { 0 };
    qm_paths_init(&paths, root);
    assert_int_equal(qm_mkdir_p(paths.conf_dir, 0755, &err), 0);

    struct qm_conf *conf = NULL;
    assert_int_equal(qm_conf_load(&paths, 100, &conf, &err), -1);
    assert_int_equal(err.code, 404);

    conf = qm_conf_new(100);
    qm_conf_set(&conf->main, "memory", "2048");
    qm_conf_set(&conf->main, "description", "hello");
    assert_int_equal(qm_conf_store(&paths, conf, &err), 0);
    qm_conf_free(conf);

    assert_int_equal(qm_conf_load(&paths, 100, &conf, &err), 0);
    assert_int_equal(conf->vmid, 100);
    assert_string_equal(qm_conf_get(&conf->main, "memory"), "2048");
    assert_string_equal(qm_conf_get(&conf->main, "description"), "hello");
    char digest[41];
    qm_conf_digest("#hello\nmemory: 2048\n", 20, digest);
    assert_string_equal(conf->digest, digest);
    qm_conf_free(conf);

    char *path = qm_conf_path(&paths, 100);
    assert_true(qm_str_ends(path, "/etc/pve/qemu-server/100.conf"));
    unlink(path);
    free(path);
    qm_paths_free(&paths);
}

static void propstr_net_model_alias(void **state)
{
    struct qm_propstr ps;
    struct qm_error err = { 0 };

    assert_int_equal(qm_propstr_parse("net0", "virtio=BC:24:11:2C:69:EC,bridge=vmbr0,firewall=on",
                                      &ps, &err), 0);
    assert_string_equal(qm_propstr_get(&ps, "model"), "virtio");
    assert_string_equal(qm_propstr_get(&ps, "macaddr"), "BC:24:11:2C:69:EC");
    assert_string_equal(qm_propstr_get(&ps, "firewall"), "1");
    assert_null(qm_propstr_get(&ps, "virtio"));
    char *printed = qm_propstr_print("net0", &ps, &err);
    assert_string_equal(printed, "virtio=BC:24:11:2C:69:EC,bridge=vmbr0,firewall=1");
    free(printed);
    qm_propstr_free(&ps);
}

static void propstr_default_key_and_alias(void **state)
{
    struct qm_propstr ps;
    struct qm_error err = { 0 };

    assert_int_equal(qm_propstr_parse("scsi1", "volume=local:vm-1-disk-0,size=1024M", &ps, &err), 0);
    assert_string_equal(qm_propstr_get(&ps, "file"), "local:vm-1-disk-0");
    char *printed = qm_propstr_print("scsi1", &ps, &err);
    assert_string_equal(printed, "local:vm-1-disk-0,size=1G");
    free(printed);
    qm_propstr_free(&ps);

    assert_int_equal(qm_propstr_parse("memory", "4096", &ps, &err), 0);
    assert_string_equal(qm_propstr_get(&ps, "current"), "4096");
    qm_propstr_free(&ps);

    assert_int_equal(qm_propstr_parse("agent", "yes,fstrim_cloned_disks=1", &ps, &err), 0);
    assert_string_equal(qm_propstr_get(&ps, "enabled"), "1");
    qm_propstr_free(&ps);
}

static void propstr_rejects_bad_input(void **state)
{
    static const struct {
        const char *key;
        const char *value;
        const char *message;
    } cases[] = {
        { "net0", "virtio,e1000=BC:24:11:2C:69:EC", "key alias 'model' is already defined" },
        { "net0", "virtio,foo=1", "invalid key in comma-separated list property: foo" },
        { "net0", "virtio,e1000", "duplicate key in comma-separated list property: model" },
        { "net0", "virtio,=x", "missing key in comma-separated list property" },
        { "net0", "virtio,tag=5000", "format error\ntag: value must have a maximum value of 4094" },
        { "net0", "rtl9999", "format error\nmodel: value 'rtl9999' does not have a value in the enumeration 'e1000, e1000-82540em, e1000-82544gc, e1000-82545em, e1000e, i82551, i82557b, i82559er, ne2k_isa, ne2k_pci, pcnet, rtl8139, virtio, vmxnet3'" },
        { "net0", "virtio=01:00:00:00:00:00", "format error\nmacaddr: invalid format - value does not look like a valid unicast MAC address" },
        { "scsi0", "local:vm-1-disk-0,file=local:vm-1-disk-1", "duplicate key in comma-separated list property: file" },
        { "scsi0", "file=a:b,volume=a:c", "key 'file' is already defined (via alias)" },
        { "scsi0", "local:x,iothread=maybe", "format error\niothread: type check ('boolean') failed - got 'maybe'" },
        { "scsi0", "local:x,size=12Q", "format error\nsize: invalid format - value does not look like a valid disk size: 12Q" },
        { "smbios1", "uuid=nope", "format error\nuuid: value does not match the regex pattern" },
        { "smbios1", "nope", "value without key, but schema does not define a default key" },
        { "vga", "qxl,memory=2", "format error\nmemory: value must have a minimum value of 4" },
        { "cpu", "kvm64,reported-model=kvm64", "Property 'reported-model' not allowed in VM-specific CPU config." },
        { "cpu", "nosuchcpu", "Built-in cputype 'nosuchcpu' is not defined (missing 'custom-' prefix?)" },
        { "cpu", "host,flags=+avx", "VM-specific CPU flags must be a subset of: aes, amd-no-ssb, amd-ssbd, hv-evmcs, hv-tlbflush, ibpb, md-clear, nested-virt, pcid, pdpe1gb, spec-ctrl, ssbd, virt-ssbd" },
        { "bios", "seabios,code=/a.fd,vars=/b.fd", "code and vars are only allowed with ovmf" },
        { "cores", "1", "property 'cores' is not a property string" },
        { "nope", "1", "unknown setting 'nope'" },
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(cases); i++) {
        struct qm_propstr ps;
        struct qm_error err = { 0 };
        int rc = qm_propstr_parse(cases[i].key, cases[i].value, &ps, &err);
        if (rc != -1)
            fail_msg("%s: '%s' was accepted", cases[i].key, cases[i].value);
        assert_string_equal(err.msg, cases[i].message);
        assert_int_equal(ps.n, 0);
    }
}

static void propstr_extensions(void **state)
{
    struct qm_propstr ps;
    struct qm_error err = { 0 };

    assert_int_equal(qm_propstr_parse("bios", "ovmf,code=local:iso/c.fd,vars=/var/v.fd", &ps, &err), 0);
    assert_string_equal(qm_propstr_get(&ps, "type"), "ovmf");
    qm_propstr_free(&ps);
    assert_int_equal(qm_propstr_parse("bios", "seabios", &ps, &err), 0);
    qm_propstr_free(&ps);
    assert_int_equal(qm_propstr_parse("qemu_binary_x86_64", "/usr/bin/qemu-system-x86_64,validate=no", &ps, &err), 0);
    assert_string_equal(qm_propstr_get(&ps, "file"), "/usr/bin/qemu-system-x86_64");
    assert_string_equal(qm_propstr_get(&ps, "validate"), "0");
    qm_propstr_free(&ps);
    assert_int_equal(qm_propstr_parse("qemu_binary_aarch64", "validate=1", &ps, &err), -1);
    assert_string_equal(err.msg, "format error\nfile: property is missing and it is not optional");
}

static void check_property_accepts(void **state)
{
    static const char *const good[][2] = {
        { "name", "web-01.example" }, { "memory", "4096" }, { "cores", "4" },
        { "sockets", "2" }, { "cpu", "x86-64-v2-AES,flags=+aes;-pcid" }, { "ostype", "l26" },
        { "bios", "ovmf" }, { "vga", "serial0" }, { "serial0", "socket" },
        { "serial3", "/dev/ttyS0" }, { "agent", "1,type=isa" },
        { "net31", "e1000=BC:24:11:00:00:01,bridge=vmbr0,tag=10" },
        { "scsi30", "local-lvm:vm-100-disk-0,iothread=1,size=32G" },
        { "virtio15", "/dev/sdb" }, { "ide3", "none,media=cdrom" }, { "sata5", "cdrom,media=cdrom" },
        { "boot", "order=scsi0;ide2;net0" }, { "boot", "cdn" }, { "args", "-no-reboot" },
        { "description", "line 1\nline 2" }, { "kvm", "0" }, { "onboot", "1" },
        { "tags", "foo;bar baz" }, { "lock", "backup" },
        { "smbios1", "uuid=ddf91b3f-a597-42be-9a7e-fb6421dcd5cd,base64=1" },
        { "vmgenid", "0" }, { "vmgenid", "713da648-38a6-489e-b0b2-dd9cef419f33" },
        { "meta", "creation-qemu=9.0.2,ctime=1725975013" }, { "hotplug", "disk,network,usb" },
        { "startup", "order=1,up=30" }, { "affinity", "0-3,8" }, { "parallel0", "/dev/parport0" },
        { "machine", "pc-q35-9.0+pve1" }, { "hostpci0", "0000:01:00.0;0000:01:00.1,pcie=1" },
        { "usb0", "host=1234:5678" }, { "ipconfig0", "ip=10.0.0.2/24,gw=10.0.0.1" },
        { "efidisk0", "local:vm-1-disk-1,efitype=4m,size=528K" }, { "numa0", "cpus=0-3;8,memory=1024" },
        { "unused255", "local:vm-1-disk-9" }, { "qemu_binary_x86_64", "local:iso/qemu" },
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(good); i++) {
        struct qm_error err = { 0 };
        if (qm_conf_check_property(good[i][0], good[i][1], &err) != 0)
            fail_msg("%s: '%s' rejected: %s", good[i][0], good[i][1], err.msg);
    }
}

static void check_property_rejects(void **state)
{
    static const struct {
        const char *key;
        const char *value;
        const char *message;
    } cases[] = {
        { "cores", "0", "cores: value must have a minimum value of 1" },
        { "cores", "two", "cores: type check ('integer') failed - got 'two'" },
        { "ostype", "win95", "ostype: value 'win95' does not have a value in the enumeration 'other, wxp, w2k, w2k3, w2k8, wvista, win7, win8, win10, win11, l24, l26, solaris'" },
        { "kvm", "yes", "kvm: type check ('boolean') failed - got 'yes'" },
        { "serial0", "tcp:1", "serial0: value does not match the regex pattern" },
        { "serial4", "socket", "serial4: property is not defined in schema and the schema does not allow additional properties" },
        { "net32", "virtio", "net32: property is not defined in schema and the schema does not allow additional properties" },
        { "scsi31", "local:x", "scsi31: property is not defined in schema and the schema does not allow additional properties" },
        { "net01", "virtio", "net01: property is not defined in schema and the schema does not allow additional properties" },
        { "memory", "8", "memory: invalid format - format error\ncurrent: value must have a minimum value of 16" },
        { "name", "a_b", "name: invalid format - value does not look like a valid DNS name" },
        { "lock", "frozen", "lock: value 'frozen' does not have a value in the enumeration 'backup, clone, create, migrate, rollback, snapshot, snapshot-delete, suspending, suspended'" },
        { "cpulimit", "129", "cpulimit: value must have a maximum value of 128" },
        { "bios", "ovmf,code=/a.fd", "bios: Custom OVMF requires both 'code' and 'vars' to be specified" },
        { "bios", "ovmf,vars=/b.fd", "bios: Custom OVMF requires both 'code' and 'vars' to be specified" },
        { "boot", "order=floppy0", "boot: invalid format - format error\norder: invalid format - invalid boot device 'floppy0'" },
        { "tags", "a,b$", "tags: invalid format - invalid characters in tag" },
        { "vmgenid", "2", "vmgenid: value does not match the regex pattern" },
        { "name", "x\ny", "name: property contains a line feed" },
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(cases); i++) {
        struct qm_error err = { 0 };
        int rc = qm_conf_check_property(cases[i].key, cases[i].value, &err);
        if (rc != -1)
            fail_msg("%s: '%s' was accepted", cases[i].key, cases[i].value);
        assert_int_equal(err.code, 400);
        assert_string_equal(err.msg, cases[i].message);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_main_section),
        cmocka_unit_test(parse_digest_of_raw_file),
        cmocka_unit_test(parse_normalizes_values),
        cmocka_unit_test(parse_drive_canonical_form),
        cmocka_unit_test(parse_description),
        cmocka_unit_test(parse_sections),
        cmocka_unit_test(parse_strict_errors),
        cmocka_unit_test(parse_nonstrict_warns),
        cmocka_unit_test(parse_blank_value_kept),
        cmocka_unit_test(parse_duplicate_keys_last_wins),
        cmocka_unit_test(parse_rejects_strange_filename),
        cmocka_unit_test(format_orders_sections),
        cmocka_unit_test(format_drops_cloudinit_without_drive),
        cmocka_unit_test(format_rewrites_main),
        cmocka_unit_test(format_pending_empty_description),
        cmocka_unit_test(format_encodes_description),
        cmocka_unit_test(section_set_get_unset),
        cmocka_unit_test(pending_delete_list),
        cmocka_unit_test(normalize_value_like_reader),
        cmocka_unit_test(load_and_store),
        cmocka_unit_test(propstr_net_model_alias),
        cmocka_unit_test(propstr_default_key_and_alias),
        cmocka_unit_test(propstr_rejects_bad_input),
        cmocka_unit_test(propstr_extensions),
        cmocka_unit_test(check_property_accepts),
        cmocka_unit_test(check_property_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

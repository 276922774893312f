#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qm/config.h"
#include "qm/qemu.h"
#include "qm/storage.h"

static const char test_storage_cfg[] =
    "dir: local\n\tpath /var/lib/vz\n\tcontent images,iso\n\n"
    "dir: noimages\n\tpath /var/lib/vz\n\tcontent iso\n\n"
    "lvmthin: local-lvm\n\tvgname pve\n\tthinpool data\n\tcontent images\n";

/* Generates the command line of conf_text for VM 8006 on the Proxmox VE system paths. */
static int generate(const char *conf_text, const char *qemu_version, bool pve_build,
                    struct strvec *argv, struct strvec *warnings, struct qm_error *err)
{
    struct qm_conf *conf = NULL;
    struct qm_storage_cfg storage;
    struct qm_host host;
    struct qm_qemu_caps caps;
    struct qm_paths paths;

    assert_int_equal(qm_conf_parse(conf_text, strlen(conf_text), "8006.conf", false, &conf,
                                   NULL, err), 0);
    assert_int_equal(qm_storage_cfg_parse(test_storage_cfg, &storage, err), 0);
    qm_host_default(&host);
    assert_int_equal(qm_qemu_caps_from_version("/usr/bin/kvm", qemu_version, pve_build, &caps,
                                               err), 0);
    qm_paths_init(&paths, NULL);

    struct qm_cmdline_input in = {
        .vmid = 8006, .conf = conf, .storage = &storage, .host = &host, .caps = &caps,
        .paths = &paths,
    };
    int rc = qm_qemu_cmdline(&in, argv, warnings, err);

    qm_paths_free(&paths);
    qm_qemu_caps_free(&caps);
    qm_host_free(&host);
    qm_storage_cfg_free(&storage);
    qm_conf_free(conf);
    return rc;
}

static char *generate_pretty(const char *conf_text, const char *qemu_version, bool pve_build)
{
    struct strvec argv = {0};
    struct qm_error err = {0};

    if (generate(conf_text, qemu_version, pve_build, &argv, NULL, &err) < 0)
        fail_msg("generation failed: %s", err.msg);
    char *pretty = qm_qemu_cmdline_pretty(&argv);
    sv_free(&argv);
    return pretty;
}

static void cmdline_minimal_defaults(void **state)
{
    char *cmd = generate_pretty("smbios1: uuid=6cf17dc3-8341-4ecc-aebd-7503f2583fb3\n",
                                "11.0.0", true);
    const char *expected =
        "/usr/bin/kvm \\\n"
        "  -id 8006 \\\n"
        "  -name vm8006 \\\n"
        "  -no-shutdown \\\n"
        "  -chardev 'socket,id=qmp,path=/var/run/qemu-server/8006.qmp,server=on,wait=off' \\\n"
        "  -mon 'chardev=qmp,mode=control' \\\n"
        "  -chardev 'socket,id=qmp-event,path=/var/run/qmeventd.sock,reconnect-ms=5000' \\\n"
        "  -mon 'chardev=qmp-event,mode=control' \\\n"
        "  -pidfile /var/run/qemu-server/8006.pid \\\n"
        "  -daemonize \\\n"
        "  -smbios 'type=1,uuid=6cf17dc3-8341-4ecc-aebd-7503f2583fb3' \\\n"
        "  -smp '1,sockets=1,cores=1,maxcpus=1' \\\n"
        "  -nodefaults \\\n"
        "  -boot 'menu=on,strict=on,reboot-timeout=1000,splash=/usr/share/qemu-server/bootsplash.jpg' \\\n"
        "  -vnc 'unix:/var/run/qemu-server/8006.vnc,password=on' \\\n"
        "  -cpu kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep \\\n"
        "  -m 512 \\\n"
        "  -global 'PIIX4_PM.disable_s3=1' \\\n"
        "  -global 'PIIX4_PM.disable_s4=1' \\\n"
        "  -device 'pci-bridge,id=pci.1,chassis_nr=1,bus=pci.0,addr=0x1e' \\\n"
        "  -device 'pci-bridge,id=pci.2,chassis_nr=2,bus=pci.0,addr=0x1f' \\\n"
        "  -device 'piix3-usb-uhci,id=uhci,bus=pci.0,addr=0x1.0x2' \\\n"
        "  -device 'usb-tablet,id=tablet,bus=uhci.0,port=1' \\\n"
        "  -device 'VGA,id=vga,bus=pci.0,addr=0x2' \\\n"
        "  -device 'virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x3,free-page-reporting=on' \\\n"
        "  -machine 'type=pc+pve0'";

    assert_string_equal(cmd, expected);
    free(cmd);
}

static void cmdline_pinned_drive_form(void **state)
{
    char *cmd = generate_pretty("bootdisk: scsi0\n"
                                "cores: 3\n"
                                "ide2: none,media=cdrom\n"
                                "machine: pc-q35-3.1\n"
                                "memory: 1024\n"
                                "name: pinned\n"
                                "net0: virtio=A2:C0:43:77:08:A1,bridge=vmbr0\n"
                                "ostype: l26\n"
                                "scsi0: local:8006/vm-8006-disk-0.raw,discard=on,size=104858K\n"
                                "scsihw: virtio-scsi-pci\n",
                                "11.0.0", true);

    assert_non_null(strstr(cmd, "  -readconfig /usr/share/qemu-server/pve-q35.cfg \\\n"));
    assert_non_null(strstr(cmd, "  -drive 'if=none,id=drive-ide2,media=cdrom,aio=io_uring' \\\n"));
    assert_non_null(strstr(cmd, "  -drive 'file=/var/lib/vz/images/8006/vm-8006-disk-0.raw,"
                                "if=none,id=drive-scsi0,discard=on,format=raw,cache=none,"
                                "aio=io_uring,detect-zeroes=unmap' \\\n"));
    assert_non_null(strstr(cmd, "  -device 'scsi-hd,bus=scsihw0.0,channel=0,scsi-id=0,lun=0,"
                                "drive=drive-scsi0,id=scsi0,bootindex=100' \\\n"));
    assert_non_null(strstr(cmd, "  -netdev 'type=tap,id=net0,ifname=tap8006i0,"
                                "script=/usr/libexec/qemu-server/pve-bridge,"
                                "downscript=/usr/libexec/qemu-server/pve-bridgedown,vhost=on'"));
    assert_true(qm_str_ends(cmd, "  -machine 'type=pc-q35-3.1+pve0'"));
    free(cmd);
}

static void cmdline_blockdev_node_names(void **state)
{
    char *cmd = generate_pretty("scsi0: local:8006/vm-8006-disk-0.qcow2,discard=on\n"
                                "scsihw: virtio-scsi-pci\n",
                                "11.0.0", true);

    /* The node names are SHA-256 digests of "drive=scsi0,volid=local:8006/...". */
    assert_non_null(strstr(cmd, "\"node-name\":\"ecd04be4259153b8293415fefa2a84c\""));
    assert_non_null(strstr(cmd, "\"node-name\":\"fcd04be4259153b8293415fefa2a84c\""));
    assert_non_null(strstr(cmd, "-object '{\"id\":\"throttle-drive-scsi0\",\"limits\":{},"
                                "\"qom-type\":\"throttle-group\"}'"));
    free(cmd);
}

static void cmdline_upstream_qemu(void **state)
{
    char *cmd = generate_pretty("name: up\nmachine: q35\nostype: l26\nagent: 1\n"
                                "net0: e1000=BC:24:11:00:00:01\nkvm: 0\n",
                                "7.2.0", false);

    assert_null(strstr(cmd, "+pve"));
    assert_null(strstr(cmd, "bootsplash"));
    assert_null(strstr(cmd, "-readconfig"));
    assert_non_null(strstr(cmd, "-name 'up,debug-threads=on'"));
    assert_non_null(strstr(cmd, "reconnect=5'"));
    assert_non_null(strstr(cmd, "-cpu qemu64 \\"));
    assert_non_null(strstr(cmd, "-netdev 'type=user,id=net0,hostname=up'"));
    assert_non_null(strstr(cmd, "-device 'e1000,mac=BC:24:11:00:00:01,netdev=net0,"
                                "bus=pci.0,addr=0x12,id=net0,bootindex=300'"));
    assert_non_null(strstr(cmd, "socket,path=/var/run/qemu-server/8006.qga,server=on,"
                                "wait=off,id=qga0"));
    assert_true(qm_str_ends(cmd, "-machine 'accel=tcg,type=q35'"));
    free(cmd);
}

static void cmdline_errors(void **state)
{
    static const struct {
        const char *conf;
        const char *version;
        const char *message;
    } cases[] = {
        {"scsi0: noimages:8006/vm-8006-disk-0.qcow2\n", "11.0.0",
         "storage 'noimages' does not support content-type 'images'"},
        {"ide3: local:iso/x.iso\n", "11.0.0",
         "ide3: explicit media parameter is required for iso images"},
        {"scsi0: nowhere:8006/vm-8006-disk-0.qcow2\n", "11.0.0",
         "storage 'nowhere' does not exist"},
        {"name: old\n", "5.0.1", "Detected old QEMU binary ('5.0.1', at least 6.0 is required)"},
        {"machine: pc-i440fx-9.0\n", "8.1.0", "Installed QEMU version '8.1.0' is too old"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strvec argv = {0};
        struct qm_error err = {0};
        assert_int_equal(generate(cases[i].conf, cases[i].version, true, &argv, NULL, &err), -1);
        assert_non_null(strstr(err.msg, cases[i].message));
        sv_free(&argv);
    }
}

static void custom_ovmf_files(void **state)
{
    struct strvec argv = {0};
    struct qm_error err = {0};

    /* The default host profile reports firmware files by their names. */
    char *pretty = generate_pretty("bios: ovmf,code=/srv/fw/OVMF_CODE_4M.fd,"
                                   "vars=local:firmware/OVMF_VARS_4M.fd\n"
                                   "efidisk0: local:8006/vm-8006-disk-0.raw,efitype=4m\n",
                                   "7.2.0", false);
    assert_non_null(strstr(pretty, "file=/srv/fw/OVMF_CODE_4M.fd"));
    free(pretty);

    static const struct {
        const char *bios;
        const char *message;
    } cases[] = {
        {"ovmf,code=/srv/fw/OVMF_CODE_4M.fd",
         "Custom OVMF requires both 'code' and 'vars' to be specified"},
        {"ovmf,vars=/srv/fw/OVMF_VARS_4M.fd",
         "Custom OVMF requires both 'code' and 'vars' to be specified"},
        {"ovmf,code=/srv/missing.fd,vars=/srv/fw/OVMF_VARS_4M.fd",
         "OVMF_code file does not exist at '/srv/missing.fd'"},
        {"ovmf,code=/srv/fw/OVMF_CODE_4M.fd,vars=/srv/missing.fd",
         "OVMF_vars file does not exist at '/srv/missing.fd'"},
        {"ovmf,code=/srv/fw/OVMF_CODE_4M.fd,vars=nostore:fw/OVMF_VARS_4M.fd",
         "Invalid OVMF_vars storage path 'nostore:fw/OVMF_VARS_4M.fd'"},
        {"ovmf,code=local:../../etc/OVMF_CODE_4M.fd,vars=/srv/fw/OVMF_VARS_4M.fd",
         "Invalid OVMF_code storage path 'local:../../etc/OVMF_CODE_4M.fd'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *conf = qm_sprintf("bios: %s\n", cases[i].bios);
        assert_int_equal(generate(conf, "7.2.0", false, &argv, NULL, &err), -1);
        assert_string_equal(err.msg, cases[i].message);
        sv_free(&argv);
        free(conf);
    }
}

static void custom_qemu_binary(void **state)
{
    struct strvec argv = {0};
    struct qm_error err = {0};

    if (generate("qemu_binary_x86_64: /bin/true\n", "7.2.0", false, &argv, NULL, &err) < 0)
        fail_msg("generation failed: %s", err.msg);
    assert_string_equal(argv.v[0], "/bin/true");
    sv_free(&argv);

    /* Without validation the file need not exist here, as for a binary on another node. */
    assert_int_equal(generate("qemu_binary_x86_64: /opt/missing/qemu,validate=0\n", "7.2.0",
                              false, &argv, NULL, &err), 0);
    assert_string_equal(argv.v[0], "/opt/missing/qemu");
    sv_free(&argv);

    /* The aarch64 binary does not replace the x86_64 one. */
    assert_int_equal(generate("qemu_binary_aarch64: /opt/missing/qemu\n", "7.2.0", false, &argv,
                              NULL, &err), 0);
    assert_string_equal(argv.v[0], "/usr/bin/kvm");
    sv_free(&argv);

    assert_int_equal(generate("qemu_binary_x86_64: /opt/missing/qemu\n", "7.2.0", false, &argv,
                              NULL, &err), -1);
    assert_string_equal(err.msg, "QEMU binary does not exist at '/opt/missing/qemu'");
    sv_free(&argv);

    char plain[] = "/tmp/qm-test-binary-XXXXXX";
    int fd = mkstemp(plain);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(plain, 0644), 0);
    char *conf = qm_sprintf("qemu_binary_x86_64: %s\n", plain);
    char *message = qm_sprintf("QEMU binary is not executable at '%s'", plain);
    assert_int_equal(generate(conf, "7.2.0", false, &argv, NULL, &err), -1);
    assert_string_equal(err.msg, message);
    sv_free(&argv);
    unlink(plain);
    free(message);
    free(conf);
}

static void cmdline_kvm_missing(void **state)
{
    struct qm_conf *conf = NULL;
    struct qm_storage_cfg storage = {0};
    struct qm_host host;
    struct qm_qemu_caps caps;
    struct qm_paths paths;
    struct qm_error err = {0};
    struct strvec argv = {0};

    assert_int_equal(qm_conf_parse("memory: 256\n", 12, "1.conf", false, &conf, NULL, &err), 0);
    qm_host_default(&host);
    host.kvm = false;
    assert_int_equal(qm_qemu_caps_from_version(NULL, "7.2.0", false, &caps, &err), 0);
    qm_paths_init(&paths, NULL);
    struct qm_cmdline_input in = {.vmid = 1, .conf = conf, .storage = &storage, .host = &host,
                                  .caps = &caps, .paths = &paths};
    assert_int_equal(qm_qemu_cmdline(&in, &argv, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "KVM virtualisation configured, but not available"));
    qm_paths_free(&paths);
    qm_qemu_caps_free(&caps);
    qm_host_free(&host);
    qm_conf_free(conf);
}

static void shell_quote_matches_pve(void **state)
{
    char *q;

    q = qm_shell_quote("kvm64,+sep");
    assert_string_equal(q, "kvm64,+sep");
    free(q);
    q = qm_shell_quote("type=pc");
    assert_string_equal(q, "'type=pc'");
    free(q);
    q = qm_shell_quote("it's");
    assert_string_equal(q, "'it'\\''s'");
    free(q);
    q = qm_shell_quote("");
    assert_string_equal(q, "''");
    free(q);
}

static void caps_parse_machine_help(void **state)
{
    struct qm_qemu_caps caps;
    struct qm_error err = {0};
    const char *help = "Supported machines are:\n"
                       "pc                   Standard PC (alias of pc-i440fx-7.2)\n"
                       "pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)\n"
                       "q35                  Standard PC (Q35 + ICH9, 2009)\n";

    assert_int_equal(qm_qemu_caps_parse("qemu-system-x86_64",
                                        "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\n",
                                        help, &caps, &err), 0);
    assert_int_equal(caps.major, 7);
    assert_int_equal(caps.minor, 2);
    assert_int_equal(caps.micro, 22);
    assert_false(caps.pve_build);
    assert_int_equal(caps.machines.n, 3);
    assert_string_equal(caps.default_machine, "pc-i440fx-7.2");
    assert_true(qm_qemu_caps_has_machine(&caps, "q35"));
    qm_qemu_caps_free(&caps);

    assert_int_equal(qm_qemu_caps_parse("kvm",
                                        "QEMU emulator version 9.0.2 (pve-qemu-kvm_9.0.2-3)\n",
                                        NULL, &caps, &err), 0);
    assert_true(caps.pve_build);
    qm_qemu_caps_free(&caps);
}

/* Real QEMU: start a VM from a generated line, ask QMP for its status, stop it. */

static int run_wait(char *const argv[])
{
    pid_t pid = fork();

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads one line from fd into buf (up to len - 1 bytes). */
static int read_line(int fd, char *buf, size_t len)
{
    size_t n = 0;

    while (n + 1 < len) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0)
            return -1;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return 0;
}

/* Returns the status that QMP query-status reports, or NULL. */
static char *qmp_query_status(const char *socket_path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char line[4096];

    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return NULL;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char *status = NULL;
    const char *caps_cmd = "{\"execute\":\"qmp_capabilities\"}\n";
    const char *status_cmd = "{\"execute\":\"query-status\"}\n";
    if (read_line(fd, line, sizeof(line)) == 0 && strstr(line, "\"QMP\"") &&
        write(fd, caps_cmd, strlen(caps_cmd)) > 0 && read_line(fd, line, sizeof(line)) == 0 &&
        write(fd, status_cmd, strlen(status_cmd)) > 0) {
        while (read_line(fd, line, sizeof(line)) == 0) {
            if (strstr(line, "\"event\""))
                continue;
            char *s = strstr(line, "\"status\": \"");
            if (s) {
                s += strlen("\"status\": \"");
                status = strndup(s, strcspn(s, "\""));
            }
            break;
        }
    }
    close(fd);
    return status;
}

static void start_real_qemu(const char *bios, const char *extra_conf)
{
    char root[] = "/tmp/qm-cmdline-XXXXXX";
    struct qm_paths paths;
    struct qm_error err = {0};
    struct qm_qemu_caps caps;
    struct qm_host host;
    struct qm_storage_cfg storage;
    struct qm_conf *conf = NULL;

    assert_non_null(mkdtemp(root));
    if (qm_qemu_caps_probe("qemu-system-x86_64", &caps, &err) < 0) {
        skip();
        return;
    }
    qm_paths_init(&paths, root);
    assert_int_equal(qm_mkdir_p(paths.run_dir, 0755, &err), 0);
    qm_host_probe(&host);

    /* A dir storage with one qcow2 disk, one raw disk and an ISO file. */
    char *store = qm_sprintf("%s/store", root);
    char *images = qm_sprintf("%s/images/100", store);
    char *isodir = qm_sprintf("%s/template/iso", store);
    assert_int_equal(qm_mkdir_p(images, 0755, &err), 0);
    assert_int_equal(qm_mkdir_p(isodir, 0755, &err), 0);
    char *qcow2 = qm_sprintf("%s/vm-100-disk-0.qcow2", images);
    char *raw = qm_sprintf("%s/vm-100-disk-1.raw", images);
    char *const mk_qcow2[] = {"qemu-img", "create", "-q", "-f", "qcow2", qcow2, "64M", NULL};
    char *const mk_raw[] = {"qemu-img", "create", "-q", "-f", "raw", raw, "16M", NULL};
    assert_int_equal(run_wait(mk_qcow2), 0);
    assert_int_equal(run_wait(mk_raw), 0);
    char *iso = qm_sprintf("%s/test.iso", isodir);
    FILE *f = fopen(iso, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 1 << 20), 0);
    fclose(f);
    char *storage_text = qm_sprintf("dir: local\n\tpath %s\n\tcontent images,iso\n", store);
    assert_int_equal(qm_storage_cfg_parse(storage_text, &storage, &err), 0);

    if (strcmp(bios, "ovmf") == 0) {
        /* The caller provides the temporary EFI vars file named in the command line. */
        char *vars = qm_qemu_efivars_temp_path(&paths, 100);
        char *vars_dir = qm_strndup(vars, (size_t)(strrchr(vars, '/') - vars));
        assert_int_equal(qm_mkdir_p(vars_dir, 0755, &err), 0);
        char *const cp[] = {"cp", "/usr/share/OVMF/OVMF_VARS.fd", vars, NULL};
        assert_int_equal(run_wait(cp), 0);
        free(vars_dir);
        free(vars);
    }

    char *text = qm_sprintf("name: realtest\n"
                            "memory: 256\n"
                            "cores: 2\n"
                            "sockets: 1\n"
                            "ostype: l26\n"
                            "bios: %s\n"
                            "vga: std\n"
                            "serial0: socket\n"
                            "agent: 1\n"
                            "net0: virtio=BC:24:11:00:00:01\n"
                            "net1: e1000=BC:24:11:00:00:02\n"
                            "scsihw: virtio-scsi-pci\n"
                            "scsi0: local:100/vm-100-disk-0.qcow2,discard=on\n"
                            "virtio0: local:100/vm-100-disk-1.raw\n"
                            "ide2: local:iso/test.iso,media=cdrom\n"
                            "boot: order=ide2;scsi0\n"
                            "kvm: 0\n"
                            "args: -msg timestamp=on\n"
                            "%s",
                            bios, extra_conf);
    assert_int_equal(qm_conf_parse(text, strlen(text), "100.conf", false, &conf, NULL, &err), 0);

    struct strvec argv = {0};
    struct qm_cmdline_input in = {.vmid = 100, .conf = conf, .storage = &storage, .host = &host,
                                  .caps = &caps, .paths = &paths};
    if (qm_qemu_cmdline(&in, &argv, NULL, &err) < 0)
        fail_msg("generation failed: %s", err.msg);
    char *line = qm_qemu_cmdline_string(&argv);
    print_message("%s\n", line);

    /* -daemonize: the first process exits once the VM is set up. */
    int rc = run_wait(argv.v);
    if (rc != 0)
        fail_msg("QEMU exited with %d for: %s", rc, line);

    char *pidfile = qm_sprintf("%s/100.pid", paths.run_dir);
    char *pidtext = NULL;
    assert_int_equal(qm_read_file(pidfile, &pidtext, NULL, &err), 0);
    pid_t pid = (pid_t)atoi(pidtext);
    assert_true(pid > 1);

    char *qmp = qm_sprintf("%s/100.qmp", paths.run_dir);
    char *status = qmp_query_status(qmp);
    kill(pid, SIGKILL);
    for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
        struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_non_null(status);
    assert_string_equal(status, "running");

    free(status);
    free(qmp);
    free(pidtext);
    free(pidfile);
    free(line);
    sv_free(&argv);
    qm_conf_free(conf);
    free(text);
    free(storage_text);
    free(iso);
    free(qcow2);
    free(raw);
    free(images);
    free(isodir);
    free(store);
    qm_storage_cfg_free(&storage);
    qm_host_free(&host);
    qm_qemu_caps_free(&caps);
    char *const rm[] = {"rm", "-rf", root, NULL};
    run_wait(rm);
    qm_paths_free(&paths);
}

static void real_qemu_seabios_starts(void **state)
{
    start_real_qemu("seabios", "");
}

static void real_qemu_ovmf_q35_starts(void **state)
{
    start_real_qemu("ovmf", "machine: q35\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cmdline_minimal_defaults),
        cmocka_unit_test(cmdline_pinned_drive_form),
        cmocka_unit_test(cmdline_blockdev_node_names),
        cmocka_unit_test(cmdline_upstream_qemu),
        cmocka_unit_test(cmdline_errors),
        cmocka_unit_test(cmdline_kvm_missing),
        cmocka_unit_test(custom_ovmf_files),
        cmocka_unit_test(custom_qemu_binary),
        cmocka_unit_test(shell_quote_matches_pve),
        cmocka_unit_test(caps_parse_machine_help),
        cmocka_unit_test(real_qemu_seabios_starts),
        cmocka_unit_test(real_qemu_ovmf_q35_starts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

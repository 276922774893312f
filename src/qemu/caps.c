/* Capabilities of the installed QEMU binary and the host profile. */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gen.h"

static int parse_version(const char *s, struct qm_qemu_caps *caps)
{
    int major = 0, minor = 0, micro = 0;

    if (sscanf(s, "%d.%d.%d", &major, &minor, &micro) < 2)
        return -1;
    caps->major = major;
    caps->minor = minor;
    caps->micro = micro;
    return 0;
}

int qm_qemu_caps_parse(const char *binary, const char *version_output,
                       const char *machine_help, struct qm_qemu_caps *caps,
                       struct qm_error *err)
{
    const char *marker = "version ";
    const char *v = version_output ? strstr(version_output, marker) : NULL;

    memset(caps, 0, sizeof(*caps));
    if (!v || parse_version(v + strlen(marker), caps) < 0)
        return qm_fail(err, 500, "unable to parse the QEMU version from '%.80s'",
                       version_output ? version_output : "");
    /* Proxmox builds name their package in the version line: "(pve-qemu-kvm_9.0.2-3)". */
    caps->pve_build = strstr(version_output, "pve-qemu-kvm") != NULL;
    caps->binary = qm_strdup(binary);

    if (!machine_help)
        return 0;
    char *copy = qm_strdup(machine_help);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (qm_str_starts(line, "Supported machines"))
            continue;
        char *end = line;
        while (*end && !isspace((unsigned char)*end))
            end++;
        if (end == line)
            continue;
        char *name = qm_strndup(line, (size_t)(end - line));
        sv_push(&caps->machines, name);
        if (strstr(end, "(default)") && !caps->default_machine)
            caps->default_machine = qm_strdup(name);
        free(name);
    }
    free(copy);
    return 0;
}

int qm_qemu_caps_from_version(const char *binary, const char *version, bool pve_build,
                              struct qm_qemu_caps *caps, struct qm_error *err)
{
    memset(caps, 0, sizeof(*caps));
    if (parse_version(version, caps) < 0)
        return qm_fail(err, 400, "invalid QEMU version '%s'", version);
    caps->pve_build = pve_build;
    caps->binary = qm_strdup(binary ? binary : "/usr/bin/kvm");
    return 0;
}

/* Runs binary with one argument and returns its standard output, or NULL. */
static char *run_capture(const char *binary, const char *arg1, const char *arg2)
{
    int fds[2];
    struct strbuf out = {0};

    if (pipe2(fds, O_CLOEXEC) < 0)
        return NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(fds[1], 1);
        dup2(devnull, 2);
        execlp(binary, binary, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fds[0], chunk, sizeof(chunk))) > 0)
        sb_addn(&out, chunk, (size_t)n);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        sb_free(&out);
        return NULL;
    }
    return sb_detach(&out);
}

int qm_qemu_caps_probe(const char *binary, struct qm_qemu_caps *caps, struct qm_error *err)
{
    struct stat st;

    if (!binary)
        binary = stat("/usr/bin/kvm", &st) == 0 ? "/usr/bin/kvm" : "qemu-system-x86_64";

    char *version = run_capture(binary, "--version", NULL);
    if (!version)
        return qm_fail(err, 500, "unable to run '%s --version'", binary);
    char *machines = run_capture(binary, "-machine", "help");
    int rc = qm_qemu_caps_parse(binary, version, machines, caps, err);
    free(version);
    free(machines);
    return rc;
}

void qm_qemu_caps_free(struct qm_qemu_caps *caps)
{
    free(caps->binary);
    free(caps->default_machine);
    sv_free(&caps->machines);
    memset(caps, 0, sizeof(*caps));
}

bool qm_qemu_caps_has_machine(const struct qm_qemu_caps *caps, const char *name)
{
    for (size_t i = 0; i < caps->machines.n; i++)
        if (strcmp(caps->machines.v[i], name) == 0)
            return true;
    return false;
}

/* Returns the value after "key\t: " of the first matching /proc/cpuinfo line. */
static char *cpuinfo_value(const char *cpuinfo, const char *key)
{
    size_t klen = strlen(key);
    const char *line = cpuinfo;

    while (line && *line) {
        if (strncmp(line, key, klen) == 0 && (line[klen] == '\t' || line[klen] == ' ' ||
                                              line[klen] == ':')) {
            const char *colon = strchr(line, ':');
            const char *nl = strchr(line, '\n');
            if (colon && (!nl || colon < nl)) {
                colon++;
                while (*colon == ' ')
                    colon++;
                return qm_strndup(colon, nl ? (size_t)(nl - colon) : strlen(colon));
            }
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

static bool has_word(const char *list, const char *word)
{
    size_t wlen = strlen(word);

    for (const char *p = list; p && (p = strstr(p, word)); p += wlen) {
        bool start = p == list || p[-1] == ' ';
        bool end = p[wlen] == '\0' || p[wlen] == ' ';
        if (start && end)
            return true;
    }
    return false;
}

void qm_host_default(struct qm_host *host)
{
    memset(host, 0, sizeof(*host));
    host->arch = qm_strdup("x86_64");
    host->cpu_vendor = qm_strdup("GenuineIntel");
    host->cpus = 64;
    host->phys_bits = 46;
    host->kvm = true;
    host->vhost_net = true;
    host->hugepages_2m = true;
    host->hugepages_1g = true;
    host->numa_nodes = 1;
    host->file_size = qm_host_pve_firmware_size;
}

void qm_host_probe(struct qm_host *host)
{
    struct stat st;
    char *cpuinfo = NULL;

    memset(host, 0, sizeof(*host));
#if defined(__x86_64__)
    host->arch = qm_strdup("x86_64");
#elif defined(__aarch64__)
    host->arch = qm_strdup("aarch64");
#else
    host->arch = qm_strdup("unknown");
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    host->cpus = n > 0 ? (int)n : 1;

    if (qm_read_file("/proc/cpuinfo", &cpuinfo, NULL, NULL) == 0) {
        char *vendor = cpuinfo_value(cpuinfo, "vendor_id");
        char *flags = cpuinfo_value(cpuinfo, "flags");
        char *sizes = cpuinfo_value(cpuinfo, "address sizes");
        host->cpu_vendor = vendor ? vendor : qm_strdup("unknown");
        if (sizes)
            host->phys_bits = atoi(sizes);
        bool virt_flag = flags && (has_word(flags, "vmx") || has_word(flags, "svm"));
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        bool kvm_dev = fd >= 0;
        if (fd >= 0)
            close(fd);
        bool kvm_module = stat("/sys/module/kvm_intel", &st) == 0 ||
                          stat("/sys/module/kvm_amd", &st) == 0;
        host->kvm = kvm_dev && virt_flag && kvm_module;
        free(flags);
        free(sizes);
        free(cpuinfo);
    } else {
        host->cpu_vendor = qm_strdup("unknown");
    }
    host->vhost_net = stat("/dev/vhost-net", &st) == 0;

    char *initiator = NULL;
    if (qm_read_file("/etc/iscsi/initiatorname.iscsi", &initiator, NULL, NULL) == 0) {
        for (char *line = strtok(initiator, "\n"); line; line = strtok(NULL, "\n")) {
            char *t = qm_str_trim(line);
            if (qm_str_starts(t, "InitiatorName=")) {
                host->iscsi_initiator = qm_strdup(qm_str_trim(t + strlen("InitiatorName=")));
                break;
            }
        }
        free(initiator);
    }
    if (lstat("/dev/cdrom", &st) == 0)
        host->cdrom = qm_strdup("/dev/cdrom");
    gen_host_probe_sysfs(host);
}

void qm_host_free(struct qm_host *host)
{
    free(host->arch);
    free(host->cpu_vendor);
    free(host->iscsi_initiator);
    free(host->cdrom);
    gen_host_free_lists(host);
    memset(host, 0, sizeof(*host));
}

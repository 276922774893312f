/* qmd: the node daemon. One libuv loop serves the API and supervises every VM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "qm/api.h"
#include "qm/http.h"
#include "qm/node.h"
#include "qm/vm.h"
#include "daemon.h"

struct options {
    const char *root;
    const char *listen;
    int port;
    const char *node_name;
    const char *password_file;
    const char *port_file;
    bool seccomp;
};

static void usage(FILE *out)
{
    fputs("Usage: qmd [OPTION]...\n"
          "Runs the node daemon: the REST API on HTTPS and a local socket, and the VMs.\n\n"
          "  --root DIR           keep every file of the node under DIR (default: $QM_ROOT,\n"
          "                       else the Proxmox VE paths /etc/pve and /var/run)\n"
          "  --listen ADDR        address of the HTTPS listener (default: :: for all)\n"
          "  --port N             HTTPS port (default: 8006; 0 picks a free port)\n"
          "  --port-file FILE     write the HTTPS port to FILE once listening\n"
          "  --node NAME          node name in API paths (default: the host name)\n"
          "  --password-file FILE set the root@pam password from FILE when none is set\n"
          "  --no-seccomp         do not install the system call filter\n"
          "  --debug              log debug messages\n"
          "  --help               show this help\n",
          out);
}

static int parse_options(int argc, char **argv, struct options *opts)
{
    enum { OPT_ROOT = 256, OPT_LISTEN, OPT_PORT, OPT_NODE, OPT_PASSWORD_FILE, OPT_PORT_FILE,
           OPT_NO_SECCOMP, OPT_DEBUG, OPT_HELP };
    static const struct option long_options[] = {
        {"root", required_argument, NULL, OPT_ROOT},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"port", required_argument, NULL, OPT_PORT},
        {"node", required_argument, NULL, OPT_NODE},
        {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
        {"debug", no_argument, NULL, OPT_DEBUG},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    long long port;

    opts->root = qm_paths_env_root();
    opts->port = 8006;
    opts->seccomp = true;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_ROOT:
            opts->root = optarg;
            break;
        case OPT_LISTEN:
            opts->listen = optarg;
            break;
        case OPT_PORT:
            if (!qm_parse_int(optarg, &port) || port < 0 || port > 65535) {
                fprintf(stderr, "qmd: invalid port '%s': expected 0 to 65535\n", optarg);
                return -1;
            }
            opts->port = (int)port;
            break;
        case OPT_NODE:
            opts->node_name = optarg;
            break;
        case OPT_PASSWORD_FILE:
            opts->password_file = optarg;
            break;
        case OPT_PORT_FILE:
            opts->port_file = optarg;
            break;
        case OPT_NO_SECCOMP:
            opts->seccomp = false;
            break;
        case OPT_DEBUG:
            qm_log_max_level = QM_LOG_DEBUG;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qmd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int set_initial_password(struct qm_node *node, const char *file, struct qm_error *err)
{
    char *data = NULL;

    if (!file || qm_access_has_password(&node->access, "root@pam"))
        return 0;
    if (qm_read_file(file, &data, NULL, err) < 0)
        return -1;
    char *password = data;
    size_t n = strlen(password);
    while (n > 0 && (password[n - 1] == '\n' || password[n - 1] == '\r'))
        password[--n] = '\0';
    if (n == 0) {
        free(data);
        return qm_fail(err, 400, "password file '%s' is empty", file);
    }
    int r = qm_access_set_password(&node->access, "root@pam", password, err);
    free(data);
    if (r == 0)
        qm_log(QM_LOG_INFO, 0, "set the root@pam password from %s", file);
    return r;
}

static int setup_tls(struct qm_node *node, struct qm_error *err)
{
    char *cert = qm_sprintf("%s/pve-ssl.pem", node->paths.local_dir);
    char *key = qm_sprintf("%s/pve-ssl.key", node->paths.local_dir);
    int r = qm_mkdir_p(node->paths.local_dir, 0755, err);

    if (r == 0)
        r = http_tls_ensure_self_signed(cert, key, node->name, err);
    if (r == 0)
        r = http_tls_load(&node->tls, cert, key, err);
    free(cert);
    free(key);
    return r;
}

/* Rebuilds the state machine of every VM, reconnecting to those still running. */
static void recover_vms(struct qm_node *n)
{
    size_t count;
    int *ids = qm_node_list_vmids(n, &count);

    for (size_t i = 0; i < count; i++)
        qm_vm_recover(qm_node_get_vm(n, ids[i]));
    free(ids);
}

static int write_port_file(const char *path, int port, struct qm_error *err)
{
    char text[16];
    int n = snprintf(text, sizeof(text), "%d\n", port);

    return qm_write_file_atomic(path, text, (size_t)n, 0644, err);
}

static struct qm_node node;
static uv_signal_t sigterm, sigint, sighup;

static void close_leftover_cb(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static void shutdown_node(void)
{
    if (node.stopping)
        return;
    node.stopping = true;
    qm_log(QM_LOG_INFO, 0, "stopping; running VMs keep running");
    qm_notify("STOPPING=1");
    http_server_close(node.http, NULL, NULL);
    node.http = NULL;
    event_server_close();
    struct qm_vm *next;
    for (struct qm_vm *vm = node.vms; vm; vm = next) {
        next = vm->next;
        qm_vm_release(vm);
    }
    node.vms = NULL;
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    /* What is left (event socket clients) ends with the process. */
    uv_walk(node.loop, close_leftover_cb, NULL);
}

static void signal_cb(uv_signal_t *handle, int signum)
{
    if (signum == SIGHUP) {
        qm_log(QM_LOG_INFO, 0, "reloading on SIGHUP");
        qm_notify("RELOADING=1");
        recover_vms(&node);
        qm_notify("READY=1");
        return;
    }
    shutdown_node();
}

int main(int argc, char **argv)
{
    struct options opts = {0};
    struct qm_error err;
    char hostname[256];

    if (parse_options(argc, argv, &opts) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    /* Daemonized QEMUs become children of qmd, which reaps them when they exit. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    node.loop = uv_default_loop();
    qm_paths_init(&node.paths, opts.root);
    /* QEMU passes the environment on to pve-bridge, which reads the node's files. */
    if (opts.root)
        setenv("QM_ROOT", opts.root, 1);
    if (opts.node_name) {
        node.name = qm_strdup(opts.node_name);
    } else {
        if (gethostname(hostname, sizeof(hostname)) < 0)
            snprintf(hostname, sizeof(hostname), "localhost");
        hostname[sizeof(hostname) - 1] = '\0';
        char *dot = strchr(hostname, '.');
        if (dot)
            *dot = '\0';
        node.name = qm_strdup(hostname);
    }

    const char *dirs[] = {node.paths.conf_dir, node.paths.run_dir, node.paths.lock_dir};
    for (size_t i = 0; i < QM_ARRAY_SIZE(dirs); i++) {
        if (qm_mkdir_p(dirs[i], 0755, &err) < 0)
            goto fail;
    }
    if (qm_access_init(&node.access, node.paths.etc, node.paths.priv_dir, &err) < 0 ||
        set_initial_password(&node, opts.password_file, &err) < 0 ||
        qm_tasks_init(&node.tasks, node.paths.task_dir, node.name, &err) < 0 ||
        setup_tls(&node, &err) < 0)
        goto fail;
    if (qm_qemu_caps_probe(NULL, &node.caps, &err) < 0)
        goto fail;
    qm_host_probe(&node.host);
    qm_log(QM_LOG_INFO, 0, "QEMU %d.%d.%d at %s; KVM %s", node.caps.major, node.caps.minor,
           node.caps.micro, node.caps.binary, node.host.kvm ? "usable" : "not usable");

    node.http = http_server_new(node.loop, qm_api_handle, &node);
    if (http_server_listen_tcp(node.http, opts.listen, opts.port, node.tls, &err) < 0 ||
        http_server_listen_unix(node.http, node.paths.api_socket, 0600, &err) < 0)
        goto fail;
    if (event_server_listen(node.loop, node.paths.event_socket, &err) < 0)
        goto fail;
    int port = http_server_port(node.http);
    if (opts.port_file && write_port_file(opts.port_file, port, &err) < 0)
        goto fail;

    recover_vms(&node);
    if (opts.seccomp && qm_seccomp_install(&err) < 0)
        goto fail;

    uv_signal_init(node.loop, &sigterm);
    uv_signal_start(&sigterm, signal_cb, SIGTERM);
    uv_signal_init(node.loop, &sigint);
    uv_signal_start(&sigint, signal_cb, SIGINT);
    uv_signal_init(node.loop, &sighup);
    uv_signal_start(&sighup, signal_cb, SIGHUP);

    qm_log(QM_LOG_INFO, 0, "node %s listening on https://%s:%d and %s", node.name,
           opts.listen ? opts.listen : "[::]", port, node.paths.api_socket);
    qm_notify("READY=1");
    uv_run(node.loop, UV_RUN_DEFAULT);
    qm_log(QM_LOG_INFO, 0, "stopped");
    return 0;

fail:
    qm_log(QM_LOG_ERR, 0, "%s", err.msg);
    return 1;
}

/*
 * qm: the command-line tool. It talks to qmd over its local socket, and reads
 * configuration files directly for the commands that need no daemon
 * (config, showcmd).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qm/config.h"
#include "qm/json.h"
#include "qm/qemu.h"
#include "qm/storage.h"
#include "qm/util.h"
#include "qm/vm.h"

/* Exit status of a failed command, as the Proxmox VE tools use. */
#define EXIT_FAILED 255

static struct qm_paths paths;
static const char *output_format = "text";

struct response {
    int status;
    char *reason;
    yajl_val json;     /* the whole body, or NULL */
};

static void response_free(struct response *res)
{
    free(res->reason);
    if (res->json)
        yajl_tree_free(res->json);
    memset(res, 0, sizeof(*res));
}

static void url_encode(struct strbuf *sb, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            sb_addc(sb, (char)c);
        } else {
            sb_addc(sb, '%');
            sb_addc(sb, hex[c >> 4]);
            sb_addc(sb, hex[c & 15]);
        }
    }
}

static void form_add(struct strbuf *form, const char *key, const char *value)
{
    if (form->len)
        sb_addc(form, '&');
    url_encode(form, key);
    sb_addc(form, '=');
    url_encode(form, value);
}

/* Sends one request to qmd and reads the whole response. */
static int request(const char *method, const char *path, const char *form, struct response *res)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct strbuf sb = {0};
    char chunk[8192];

    memset(res, 0, sizeof(*res));
    if (strlen(paths.api_socket) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "qm: socket path '%s' is too long\n", paths.api_socket);
        return -1;
    }
    strcpy(addr.sun_path, paths.api_socket);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        fprintf(stderr, "qm: unable to connect to qmd at %s: %s (is qmd running?)\n",
                paths.api_socket, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t body_len = form ? strlen(form) : 0;
    sb_addf(&sb, "%s /api2/json%s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method,
            path);
    if (body_len)
        sb_add(&sb, "Content-Type: application/x-www-form-urlencoded\r\n");
    sb_addf(&sb, "Content-Length: %zu\r\n\r\n", body_len);
    if (body_len)
        sb_add(&sb, form);
    if (qm_write_all(fd, sb.buf, sb.len) < 0) {
        fprintf(stderr, "qm: unable to send the request to qmd: %s\n", strerror(errno));
        close(fd);
        sb_free(&sb);
        return -1;
    }
    sb_reset(&sb);
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        sb_addn(&sb, chunk, (size_t)n);
    }
    close(fd);

    char *body = sb.buf ? strstr(sb.buf, "\r\n\r\n") : NULL;
    int consumed = 0;
    if (!body || sscanf(sb.buf, "HTTP/1.%*d %d %n", &res->status, &consumed) < 1) {
        fprintf(stderr, "qm: invalid response from qmd\n");
        sb_free(&sb);
        return -1;
    }
    char *eol = strstr(sb.buf, "\r\n");
    res->reason = qm_strndup(sb.buf + consumed, (size_t)(eol - sb.buf - consumed));
    body += 4;
    if (*body)
        res->json = qm_json_parse(body, strlen(body), NULL);
    sb_free(&sb);
    return 0;
}

static yajl_val response_data(const struct response *res)
{
    return res->json ? qm_json_get(res->json, "data") : NULL;
}

/* Prints the error of a failed response the way Proxmox VE's tools do; returns EXIT_FAILED. */
static int report_error(const struct response *res)
{
    yajl_val errors = res->json ? qm_json_get(res->json, "errors") : NULL;

    if (errors && YAJL_IS_OBJECT(errors)) {
        for (size_t i = 0; i < errors->u.object.len; i++) {
            yajl_val v = errors->u.object.values[i];
            fprintf(stderr, "%s: %s\n", errors->u.object.keys[i],
                    YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "invalid");
        }
    }
    fprintf(stderr, "%s\n", res->reason && *res->reason ? res->reason : "request failed");
    return EXIT_FAILED;
}

/*
 * Sends a request like request() and treats any status but 200 as a failure:
 * it prints the error, frees res and returns -1.
 */
static int call_api(const char *method, const char *path, const char *form,
                    struct response *res)
{
    if (request(method, path, form, res) < 0)
        return -1;
    if (res->status != 200) {
        report_error(res);
        response_free(res);
        return -1;
    }
    return 0;
}

/* Waits for a task, printing its log as it grows; returns 0 when it ended OK. */
static int follow_task(const char *upid)
{
    struct strbuf path = {0};
    long long printed = 0;
    char *exitstatus = NULL;

    for (;;) {
        struct response res;
        bool done = false;

        /* The node name in the path must be the daemon's: take it from the UPID. */
        char node[64] = "";
        sscanf(upid, "UPID:%63[^:]", node);
        sb_reset(&path);
        sb_addf(&path, "/nodes/%s/tasks/", node);
        url_encode(&path, upid);
        size_t base = path.len;
        sb_add(&path, "/status");
        if (call_api("GET", path.buf, NULL, &res) < 0) {
            sb_free(&path);
            return EXIT_FAILED;
        }
        const char *status = qm_json_get_string(response_data(&res), "status");
        if (status && strcmp(status, "stopped") == 0) {
            done = true;
            const char *e = qm_json_get_string(response_data(&res), "exitstatus");
            exitstatus = qm_strdup(e ? e : "unexpected status");
        }
        response_free(&res);

        path.len = base;
        path.buf[base] = '\0';
        sb_addf(&path, "/log?start=%lld&limit=100000", printed);
        if (request("GET", path.buf, NULL, &res) == 0 && res.status == 200) {
            yajl_val lines = response_data(&res);
            for (size_t i = 0; lines && YAJL_IS_ARRAY(lines) && i < lines->u.array.len; i++) {
                const char *t = qm_json_get_string(lines->u.array.values[i], "t");
                long long n = 0;
                qm_json_get_int(lines->u.array.values[i], "n", &n);
                if (!t || n <= printed)
                    continue;
                printed = n;
                if (strcmp(t, "no content") == 0 || qm_str_starts(t, "TASK "))
                    continue;
                printf("%s\n", t);
            }
        }
        response_free(&res);
        if (done)
            break;
        struct timespec pause = {.tv_nsec = 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    sb_free(&path);
    fflush(stdout);
    int r = 0;
    if (strcmp(exitstatus, "OK") != 0 && !qm_str_starts(exitstatus, "WARNINGS")) {
        fprintf(stderr, "%s\n", exitstatus);
        r = EXIT_FAILED;
    }
    free(exitstatus);
    return r;
}

/* Returns the node name of the daemon, from GET /nodes. */
static char *daemon_node(void)
{
    struct response res;
    char *name = NULL;

    if (request("GET", "/nodes", NULL, &res) < 0)
        return NULL;
    yajl_val data = response_data(&res);
    if (res.status == 200 && data && YAJL_IS_ARRAY(data) && data->u.array.len > 0) {
        const char *n = qm_json_get_string(data->u.array.values[0], "node");
        if (n)
            name = qm_strdup(n);
    } else {
        report_error(&res);
    }
    response_free(&res);
    return name;
}

/*
 * GETs /nodes/NODE/qemu/VMID/SUFFIX into res. On failure it prints the
 * error and returns -1 with res freed.
 */
static int get_vm(int vmid, const char *suffix, struct response *res)
{
    char *node = daemon_node();

    if (!node)
        return -1;
    char *path = qm_sprintf("/nodes/%s/qemu/%d%s", node, vmid, suffix);
    free(node);
    int r = call_api("GET", path, NULL, res);
    free(path);
    return r;
}

/*
 * Collects "--key value" options into a form body. A flag followed by
 * another option or by nothing gets the value 1.
 */
static int collect_options(int argc, char **argv, struct strbuf *form)
{
    for (int i = 0; i < argc; i++) {
        if (!qm_str_starts(argv[i], "--") || argv[i][2] == '\0') {
            fprintf(stderr, "qm: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
        const char *key = argv[i] + 2;
        const char *value = "1";
        if (i + 1 < argc && !qm_str_starts(argv[i + 1], "--"))
            value = argv[++i];
        if (strcmp(key, "output-format") == 0) {
            output_format = value;
            continue;
        }
        form_add(form, key, value);
    }
    return 0;
}

static int parse_vmid(const char *s, int *vmid)
{
    long long v;

    if (!s || !qm_parse_int(s, &v) || v < 100 || v > 999999999) {
        fprintf(stderr, "qm: invalid VM id '%s': expected 100 to 999999999\n", s ? s : "");
        return -1;
    }
    *vmid = (int)v;
    return 0;
}

static void print_json(yajl_val v)
{
    char *text = qm_json_dump(v);

    printf("%s\n", text);
    free(text);
}

static void print_value(yajl_val v)
{
    if (YAJL_IS_STRING(v))
        printf("%s", YAJL_GET_STRING(v));
    else if (YAJL_IS_NUMBER(v))
        fputs(YAJL_GET_NUMBER(v), stdout);
    else if (YAJL_IS_TRUE(v))
        fputs("1", stdout);
    else if (YAJL_IS_FALSE(v))
        fputs("0", stdout);
    else {
        char *text = qm_json_dump(v);
        fputs(text, stdout);
        free(text);
    }
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prints "key: value" lines of an object, sorted by key. */
static void print_object_sorted(yajl_val obj, const char *skip)
{
    size_t n = obj->u.object.len;
    const char **keys = qm_calloc(n, sizeof(*keys));

    for (size_t i = 0; i < n; i++)
        keys[i] = obj->u.object.keys[i];
    qsort(keys, n, sizeof(*keys), compare_keys);
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(keys[i], skip) == 0)
            continue;
        yajl_val v = qm_json_get(obj, keys[i]);
        printf("%s: ", keys[i]);
        print_value(v);
        putchar('\n');
    }
    free(keys);
}

static int cmd_list(int argc, char **argv)
{
    struct strbuf form = {0};
    struct response res;

    if (collect_options(argc, argv, &form) < 0)
        return EXIT_FAILED;
    sb_free(&form);
    char *node = daemon_node();
    if (!node)
        return EXIT_FAILED;
    char *path = qm_sprintf("/nodes/%s/qemu", node);
    free(node);
    int r = call_api("GET", path, NULL, &res);
    free(path);
    if (r < 0)
        return EXIT_FAILED;
    yajl_val list = response_data(&res);
    if (strcmp(output_format, "text") != 0) {
        print_json(list);
        response_free(&res);
        return 0;
    }
    if (list && YAJL_IS_ARRAY(list) && list->u.array.len > 0) {
        printf("%10s %-20s %-10s %-10s %12s %-10s\n", "VMID", "NAME", "STATUS", "MEM(MB)",
               "BOOTDISK(GB)", "PID");
        for (size_t i = 0; i < list->u.array.len; i++) {
            yajl_val vm = list->u.array.values[i];
            long long vmid = 0, maxmem = 0, pid = 0, maxdisk = 0;
            qm_json_get_int(vm, "vmid", &vmid);
            qm_json_get_int(vm, "maxmem", &maxmem);
            qm_json_get_int(vm, "pid", &pid);
            qm_json_get_int(vm, "maxdisk", &maxdisk);
            const char *name = qm_json_get_string(vm, "name");
            const char *status = qm_json_get_string(vm, "status");
            printf("%10lld %-20s %-10s %-10lld %12.2f %-10lld\n", vmid, name ? name : "",
                   status ? status : "", maxmem / (1024 * 1024),
                   (double)maxdisk / (1024.0 * 1024 * 1024), pid);
        }
    }
    response_free(&res);
    return 0;
}

/* Runs a call that returns a UPID and follows the task, or one that returns nothing. */
static int call_and_follow(const char *method, const char *path, const char *form)
{
    struct response res;

    if (call_api(method, path, form, &res) < 0)
        return EXIT_FAILED;
    yajl_val data = response_data(&res);
    char *upid = data && YAJL_IS_STRING(data) ? qm_strdup(YAJL_GET_STRING(data)) : NULL;
    response_free(&res);
    if (!upid)
        return 0;
    int r = follow_task(upid);
    free(upid);
    return r;
}

static int cmd_vm_call(int argc, char **argv, const char *method, const char *suffix,
                       const char *const *positional);

/* Commands of the form "qm CMD VMID [--options]" that post to a VM path. */
static int cmd_vm_post(int argc, char **argv, const char *method, const char *suffix)
{
    return cmd_vm_call(argc, argv, method, suffix, NULL);
}

/*
 * Like cmd_vm_post, with arguments after VMID that name parameters by
 * position ("qm disk resize VMID DISK SIZE"); positional lists the names.
 */
static int cmd_vm_call(int argc, char **argv, const char *method, const char *suffix,
                       const char *const *positional)
{
    struct strbuf form = {0};
    int vmid;
    int first_option = 1;

    if (argc < 1 || parse_vmid(argv[0], &vmid) < 0)
        return EXIT_FAILED;
    for (size_t i = 0; positional && positional[i]; i++) {
        if (first_option >= argc || qm_str_starts(argv[first_option], "--")) {
            fprintf(stderr, "qm: missing argument '%s'\n", positional[i]);
            sb_free(&form);
            return EXIT_FAILED;
        }
        form_add(&form, positional[i], argv[first_option++]);
    }
    if (collect_options(argc - first_option, argv + first_option, &form) < 0) {
        sb_free(&form);
        return EXIT_FAILED;
    }
    char *node = daemon_node();
    if (!node) {
        sb_free(&form);
        return EXIT_FAILED;
    }
    char *path = qm_sprintf("/nodes/%s/qemu/%d%s", node, vmid, suffix);
    int r = call_and_follow(method, path, form.buf);
    free(path);
    free(node);
    sb_free(&form);
    return r;
}

static int cmd_create(int argc, char **argv)
{
    struct strbuf form = {0};
    int vmid;

    if (argc < 1 || parse_vmid(argv[0], &vmid) < 0)
        return EXIT_FAILED;
    form_add(&form, "vmid", argv[0]);
    if (collect_options(argc - 1, argv + 1, &form) < 0) {
        sb_free(&form);
        return EXIT_FAILED;
    }
    char *node = daemon_node();
    if (!node) {
        sb_free(&form);
        return EXIT_FAILED;
    }
    char *path = qm_sprintf("/nodes/%s/qemu", node);
    int r = call_and_follow("POST", path, form.buf);
    free(path);
    free(node);
    sb_free(&form);
    return r;
}

static int cmd_status(int argc, char **argv)
{
    struct response res;
    int vmid;
    bool verbose = false;

    if (argc < 1 || parse_vmid(argv[0], &vmid) < 0)
        return EXIT_FAILED;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verbose") == 0) {
            verbose = i + 1 >= argc || strcmp(argv[i + 1], "0") != 0;
            if (i + 1 < argc && !qm_str_starts(argv[i + 1], "--"))
                i++;
        } else if (strcmp(argv[i], "--output-format") == 0 && i + 1 < argc) {
            output_format = argv[++i];
        } else {
            fprintf(stderr, "qm: unexpected argument '%s'\n", argv[i]);
            return EXIT_FAILED;
        }
    }
    if (get_vm(vmid, "/status/current", &res) < 0)
        return EXIT_FAILED;
    yajl_val data = response_data(&res);
    if (strcmp(output_format, "text") != 0)
        print_json(data);
    else if (verbose)
        print_object_sorted(data, NULL);
    else
        printf("status: %s\n", qm_json_get_string(data, "status"));
    response_free(&res);
    return 0;
}

/* Prints a configuration read straight from its file: no daemon needed. */
static int cmd_config(int argc, char **argv)
{
    struct qm_conf *conf = NULL;
    struct qm_error err;
    const char *snapshot = NULL;
    bool current = false;
    int vmid;

    if (argc < 1 || parse_vmid(argv[0], &vmid) < 0)
        return EXIT_FAILED;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--current") == 0) {
            current = !(i + 1 < argc && strcmp(argv[i + 1], "0") == 0);
            if (i + 1 < argc && !qm_str_starts(argv[i + 1], "--"))
                i++;
        } else if (strcmp(argv[i], "--snapshot") == 0 && i + 1 < argc) {
            snapshot = argv[++i];
        } else {
            fprintf(stderr, "qm: unexpected argument '%s'\n", argv[i]);
            return EXIT_FAILED;
        }
    }
    if (qm_conf_load(&paths, vmid, &conf, &err) < 0) {
        if (err.code == 404)
            fprintf(stderr, "Configuration file 'nodes/localhost/qemu-server/%d.conf' does not "
                            "exist\n", vmid);
        else
            fprintf(stderr, "%s\n", err.msg);
        return EXIT_FAILED;
    }
    struct qm_conf_section merged = {0};
    const struct qm_conf_section *section = &conf->main;
    if (snapshot) {
        section = NULL;
        for (size_t i = 0; i < conf->nsnapshots; i++) {
            if (strcmp(conf->snapshots[i].name, snapshot) == 0)
                section = &conf->snapshots[i];
        }
        if (!section) {
            fprintf(stderr, "snapshot '%s' does not exist\n", snapshot);
            qm_conf_free(conf);
            return EXIT_FAILED;
        }
    } else if (!current && conf->pending) {
        /* Pending values replace current ones; pending deletions hide them. */
        const char *deleted = qm_conf_get(conf->pending, "delete");
        for (size_t i = 0; i < conf->main.n; i++)
            qm_conf_set(&merged, conf->main.entries[i].key, conf->main.entries[i].value);
        for (size_t i = 0; i < conf->pending->n; i++) {
            if (strcmp(conf->pending->entries[i].key, "delete") != 0)
                qm_conf_set(&merged, conf->pending->entries[i].key,
                            conf->pending->entries[i].value);
        }
        if (deleted) {
            char *copy = qm_strdup(deleted);
            char *save = NULL;
            for (char *k = strtok_r(copy, ",; ", &save); k; k = strtok_r(NULL, ",; ", &save))
                qm_conf_unset(&merged, k[0] == '!' ? k + 1 : k);
            free(copy);
        }
        section = &merged;
    }
    const char **keys = qm_calloc(section->n, sizeof(*keys));
    for (size_t i = 0; i < section->n; i++)
        keys[i] = section->entries[i].key;
    qsort(keys, section->n, sizeof(*keys), compare_keys);
    for (size_t i = 0; i < section->n; i++) {
        const char *value = qm_conf_get(section, keys[i]);
        if (strcmp(keys[i], "description") == 0) {
            /* One line: line breaks are shown as in the file encoding of Proxmox VE. */
            printf("%s: ", keys[i]);
            for (const char *p = value; *p; p++) {
                if (*p == '\n')
                    fputs("%0A", stdout);
                else
                    putchar(*p);
            }
            putchar('\n');
        } else {
            printf("%s: %s\n", keys[i], value);
        }
    }
    free(keys);
    for (size_t i = 0; i < merged.n; i++) {
        free(merged.entries[i].key);
        free(merged.entries[i].value);
    }
    free(merged.entries);
    qm_conf_free(conf);
    return 0;
}

static int compare_items_by_key(const void *a, const void *b)
{
    const char *x = qm_json_get_string(*(const yajl_val *)a, "key");
    const char *y = qm_json_get_string(*(const yajl_val *)b, "key");

    return strcmp(x ? x : "", y ? y : "");
}

static int cmd_pending(int argc, char **argv)
{
    struct response res;
    int vmid;

    if (argc < 1 || parse_vmid(argv[0], &vmid) < 0)
        return EXIT_FAILED;
    if (get_vm(vmid, "/pending", &res) < 0)
        return EXIT_FAILED;
    yajl_val list = response_data(&res);
    size_t n = list && YAJL_IS_ARRAY(list) ? list->u.array.len : 0;
    yajl_val *items = qm_calloc(n, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = list->u.array.values[i];
    qsort(items, n, sizeof(*items), compare_items_by_key);
    for (size_t i = 0; i < n; i++) {
        yajl_val item = items[i];
        const char *key = qm_json_get_string(item, "key");
        yajl_val value = qm_json_get(item, "value");
        yajl_val pending = qm_json_get(item, "pending");
        long long del = 0;
        qm_json_get_int(item, "delete", &del);
        /* A changed key shows its current value, then the new one. */
        if (del) {
            printf("del %s: ", key);
            print_value(value);
        } else if (pending) {
            if (value) {
                printf("cur %s: ", key);
                print_value(value);
                putchar('\n');
            }
            printf("new %s: ", key);
            print_value(pending);
        } else {
            printf("cur %s: ", key);
            print_value(value);
        }
        putchar('\n');
    }
    free(items);
    response_free(&res);
    return 0;
}

/* Generates the command line locally from the files: no daemon needed. */
static int cmd_showcmd(int argc, char **argv)
{
    struct qm_conf *conf = NULL;
    struct qm_qemu_caps caps = {0};
    struct qm_host host = {0};
    struct strvec cmd = {0};
    struct qm_error err;
    bool pretty = false;
    int vmid, r = EXIT_FAILED;

    if (argc < 1 || parse_vmid(argv[0], &vmid) < 0)
        return EXIT_FAILED;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pretty") == 0) {
            pretty = !(i + 1 < argc && strcmp(argv[i + 1], "0") == 0);
            if (i + 1 < argc && !qm_str_starts(argv[i + 1], "--"))
                i++;
        } else {
            fprintf(stderr, "qm: unexpected argument '%s'\n", argv[i]);
            return EXIT_FAILED;
        }
    }
    if (qm_conf_load(&paths, vmid, &conf, &err) < 0 ||
        qm_qemu_caps_probe(NULL, &caps, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    qm_host_probe(&host);
    if (qm_vm_build_cmdline(&paths, &host, &caps, conf, &cmd, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    char *text = pretty ? qm_qemu_cmdline_pretty(&cmd) : qm_qemu_cmdline_string(&cmd);
    printf("%s\n", text);
    free(text);
    r = 0;
out:
    sv_free(&cmd);
    qm_host_free(&host);
    qm_qemu_caps_free(&caps);
    qm_conf_free(conf);
    return r;
}

/* Reads HMP commands from standard input and prints QEMU's output. */
static int cmd_monitor(int argc, char **argv)
{
    char line[4096];
    int vmid;

    if (argc < 1 || parse_vmid(argv[0], &vmid) < 0)
        return EXIT_FAILED;
    char *node = daemon_node();
    if (!node)
        return EXIT_FAILED;
    char *path = qm_sprintf("/nodes/%s/qemu/%d/monitor", node, vmid);
    free(node);
    bool tty = isatty(STDIN_FILENO);
    if (tty)
        printf("Entering QEMU Monitor for VM %d - type 'help' for help\n", vmid);
    for (;;) {
        if (tty) {
            printf("qm> ");
            fflush(stdout);
        }
        if (!fgets(line, sizeof(line), stdin))
            break;
        char *command = qm_str_trim(line);
        if (!*command)
            continue;
        if (strcmp(command, "quit") == 0 || strcmp(command, "q") == 0)
            break;
        struct strbuf form = {0};
        struct response res;
        form_add(&form, "command", command);
        int r = request("POST", path, form.buf, &res);
        sb_free(&form);
        if (r < 0)
            break;
        if (res.status == 200) {
            yajl_val data = response_data(&res);
            if (data && YAJL_IS_STRING(data))
                printf("%s", YAJL_GET_STRING(data));
        } else {
            report_error(&res);
        }
        response_free(&res);
    }
    free(path);
    return 0;
}

/* Polls guest-exec-status until the program has exited, then prints the status. */
static int wait_exec(int vmid, long long pid)
{
    char *node = daemon_node();

    if (!node)
        return EXIT_FAILED;
    char *path = qm_sprintf("/nodes/%s/qemu/%d/agent/exec-status?pid=%lld", node, vmid, pid);
    free(node);
    for (;;) {
        struct response res;
        if (call_api("GET", path, NULL, &res) < 0) {
            free(path);
            return EXIT_FAILED;
        }
        yajl_val result = qm_json_get(response_data(&res), "result");
        bool exited = false;
        if (result && qm_json_get_bool(result, "exited", &exited) && exited) {
            print_json(result);
            response_free(&res);
            free(path);
            return 0;
        }
        response_free(&res);
        struct timespec pause = {.tv_nsec = 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/*
 * qm guest cmd VMID COMMAND, qm guest exec VMID [--] ARGS..., and
 * qm guest exec-status VMID PID: guest-agent commands, printed as JSON.
 */
static int cmd_guest(int argc, char **argv)
{
    struct strbuf form = {0};
    struct response res;
    const char *method = "POST";
    char *suffix = NULL;
    int vmid;

    if (argc < 2 || parse_vmid(argv[1], &vmid) < 0) {
        fprintf(stderr, "usage: qm guest cmd VMID COMMAND | exec VMID [--] ARGS... | "
                        "exec-status VMID PID\n");
        return EXIT_FAILED;
    }
    if (strcmp(argv[0], "cmd") == 0 && argc == 3) {
        const char *command = argv[2];
        bool get = qm_str_starts(command, "get-") || strcmp(command, "info") == 0 ||
                   strcmp(command, "network-get-interfaces") == 0;
        method = get ? "GET" : "POST";
        suffix = qm_sprintf("/agent/%s", command);
    } else if (strcmp(argv[0], "exec") == 0 && argc >= 3) {
        int first = strcmp(argv[2], "--") == 0 ? 3 : 2;
        for (int i = first; i < argc; i++)
            form_add(&form, "command", argv[i]);
        suffix = qm_strdup("/agent/exec");
    } else if (strcmp(argv[0], "exec-status") == 0 && argc == 3) {
        suffix = qm_sprintf("/agent/exec-status?pid=%s", argv[2]);
        method = "GET";
    } else {
        fprintf(stderr, "qm: unknown or incomplete guest command\n");
        return EXIT_FAILED;
    }
    char *node = daemon_node();
    if (!node) {
        free(suffix);
        sb_free(&form);
        return EXIT_FAILED;
    }
    char *path = qm_sprintf("/nodes/%s/qemu/%d%s", node, vmid, suffix);
    int r = call_api(method, path, form.len ? form.buf : NULL, &res);
    free(path);
    free(node);
    free(suffix);
    sb_free(&form);
    if (r < 0)
        return EXIT_FAILED;
    yajl_val data = response_data(&res);
    yajl_val result = data ? qm_json_get(data, "result") : NULL;
    long long pid = -1;
    if (strcmp(argv[0], "exec") == 0 && result && qm_json_get_int(result, "pid", &pid)) {
        /* Like Proxmox VE's qm, wait for the program and print its status. */
        response_free(&res);
        return wait_exec(vmid, pid);
    }
    if (result)
        print_json(result);
    response_free(&res);
    return 0;
}

/* Rescans every VM of the node. */
static int rescan_all(void)
{
    struct response res;
    char *node = daemon_node();
    int r = 0;

    if (!node)
        return EXIT_FAILED;
    char *path = qm_sprintf("/nodes/%s/qemu", node);
    if (request("GET", path, NULL, &res) < 0) {
        free(path);
        free(node);
        return EXIT_FAILED;
    }
    free(path);
    yajl_val list = response_data(&res);
    for (size_t i = 0; list && YAJL_IS_ARRAY(list) && i < list->u.array.len; i++) {
        long long vmid = 0;
        if (!qm_json_get_int(list->u.array.values[i], "vmid", &vmid))
            continue;
        char *vm_path = qm_sprintf("/nodes/%s/qemu/%lld/rescan", node, vmid);
        if (call_and_follow("POST", vm_path, NULL) != 0)
            r = EXIT_FAILED;
        free(vm_path);
    }
    response_free(&res);
    free(node);
    return r;
}

/* qm disk resize|move|unlink|rescan, and their older names resize, move-disk, unlink, rescan. */
static int cmd_disk(const char *sub, int argc, char **argv)
{
    static const char *const resize_args[] = {"disk", "size", NULL};
    static const char *const move_args[] = {"disk", "storage", NULL};

    if (strcmp(sub, "resize") == 0)
        return cmd_vm_call(argc, argv, "PUT", "/resize", resize_args);
    if (strcmp(sub, "move") == 0 || strcmp(sub, "move-disk") == 0 ||
        strcmp(sub, "move_disk") == 0)
        return cmd_vm_call(argc, argv, "POST", "/move_disk", move_args);
    if (strcmp(sub, "unlink") == 0)
        return cmd_vm_call(argc, argv, "PUT", "/unlink", NULL);
    if (strcmp(sub, "rescan") == 0) {
        /* "qm disk rescan [--vmid N]" rescans one VM or every VM of the node. */
        if (argc >= 2 && strcmp(argv[0], "--vmid") == 0)
            return cmd_vm_call(argc - 1, argv + 1, "POST", "/rescan", NULL);
        if (argc > 0) {
            fprintf(stderr, "qm: unexpected argument '%s'\n", argv[0]);
            return EXIT_FAILED;
        }
        return rescan_all();
    }
    fprintf(stderr, "qm: unknown disk command '%s'\n", sub);
    return EXIT_FAILED;
}

static void usage(FILE *out)
{
    fputs("Usage: qm COMMAND [ARGS] [OPTIONS]\n\n"
          "  qm list                          list the VMs of this node\n"
          "  qm create VMID [--KEY VALUE]...  create a VM (--start 1 starts it)\n"
          "  qm set VMID [--KEY VALUE]... [--delete KEYS] [--revert KEYS] [--digest D]\n"
          "  qm config VMID [--current] [--snapshot NAME]\n"
          "  qm pending VMID\n"
          "  qm start|stop|shutdown|reboot|reset|suspend|resume VMID [OPTIONS]\n"
          "                                   options: --timeout S, --forceStop 1, --skiplock 1\n"
          "  qm status VMID [--verbose]\n"
          "  qm destroy VMID [--skiplock 1]\n"
          "  qm showcmd VMID [--pretty]\n"
          "  qm monitor VMID                  enter HMP commands, 'quit' to leave\n"
          "  qm unlock VMID\n"
          "  qm guest cmd VMID COMMAND        run a guest-agent command (ping, get-osinfo, ...)\n"
          "  qm guest exec VMID [--] ARGS...  run a program in the guest\n"
          "  qm guest exec-status VMID PID\n"
          "  qm disk resize VMID DISK SIZE    grow a disk to SIZE, or by +SIZE (e.g. +1G)\n"
          "  qm disk move VMID DISK STORAGE [--delete 1] [--format raw|qcow2|vmdk]\n"
          "  qm disk unlink VMID --idlist KEYS [--force 1]\n"
          "  qm disk rescan [--vmid VMID]     add volumes no key names as unusedN\n\n"
          "--output-format json|json-pretty applies to list and status.\n"
          "The node lives under $QM_ROOT when set, else in the Proxmox VE paths.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_FAILED;
    }
    qm_paths_init(&paths, qm_paths_env_root());
    const char *cmd = argv[1];
    int n = argc - 2;
    char **args = argv + 2;
    int r;

    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        r = 0;
    } else if (strcmp(cmd, "list") == 0) {
        r = cmd_list(n, args);
    } else if (strcmp(cmd, "create") == 0) {
        r = cmd_create(n, args);
    } else if (strcmp(cmd, "set") == 0) {
        r = cmd_vm_post(n, args, "PUT", "/config");
    } else if (strcmp(cmd, "config") == 0) {
        r = cmd_config(n, args);
    } else if (strcmp(cmd, "pending") == 0) {
        r = cmd_pending(n, args);
    } else if (strcmp(cmd, "status") == 0) {
        r = cmd_status(n, args);
    } else if (strcmp(cmd, "showcmd") == 0) {
        r = cmd_showcmd(n, args);
    } else if (strcmp(cmd, "destroy") == 0) {
        r = cmd_vm_post(n, args, "DELETE", "");
    } else if (strcmp(cmd, "unlock") == 0) {
        r = cmd_vm_post(n, args, "POST", "/unlock");
    } else if (strcmp(cmd, "disk") == 0 && n >= 1) {
        r = cmd_disk(args[0], n - 1, args + 1);
    } else if (strcmp(cmd, "resize") == 0 || strcmp(cmd, "move-disk") == 0 ||
               strcmp(cmd, "move_disk") == 0 || strcmp(cmd, "unlink") == 0 ||
               strcmp(cmd, "rescan") == 0) {
        r = cmd_disk(cmd, n, args);
    } else if (strcmp(cmd, "guest") == 0) {
        r = cmd_guest(n, args);
    } else if (strcmp(cmd, "monitor") == 0) {
        r = cmd_monitor(n, args);
    } else if (strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 ||
               strcmp(cmd, "shutdown") == 0 || strcmp(cmd, "reboot") == 0 ||
               strcmp(cmd, "reset") == 0 || strcmp(cmd, "suspend") == 0 ||
               strcmp(cmd, "resume") == 0) {
        char *suffix = qm_sprintf("/status/%s", cmd);
        r = cmd_vm_post(n, args, "POST", suffix);
        free(suffix);
    } else {
        fprintf(stderr, "qm: unknown command '%s'\n", cmd);
        usage(stderr);
        r = EXIT_FAILED;
    }
    qm_paths_free(&paths);
    return r;
}

/*
 * API handlers under /nodes/{node}/qemu/{vmid}/agent: guest-agent commands.
 *
 * QEMU serves one client at a time on the agent socket, so the exchanges
 * with one VM run one after another: each VM has a queue of calls.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qm/agent.h"
#include "qm/config.h"
#include "qm/json.h"
#include "qm/vm.h"
#include "api.h"

#define AGENT_TIMEOUT_MS 10000
/* The maximum that file-read returns, as in Proxmox VE; more is cut and reported as truncated. */
#define FILE_READ_MAX (16 * 1024 * 1024)
#define FILE_READ_CHUNK (1024 * 1024)

/* An agent command of the API: its name, HTTP method and guest-agent command. */
struct agent_route {
    const char *name;
    const char *method;
    const char *command;
    bool no_reply;          /* the agent sends no reply when the command succeeds */
};

static const struct agent_route agent_routes[] = {
    {"fsfreeze-freeze", "POST", "guest-fsfreeze-freeze", false},
    {"fsfreeze-status", "POST", "guest-fsfreeze-status", false},
    {"fsfreeze-thaw", "POST", "guest-fsfreeze-thaw", false},
    {"fstrim", "POST", "guest-fstrim", false},
    {"get-fsinfo", "GET", "guest-get-fsinfo", false},
    {"get-host-name", "GET", "guest-get-host-name", false},
    {"get-memory-block-info", "GET", "guest-get-memory-block-info", false},
    {"get-memory-blocks", "GET", "guest-get-memory-blocks", false},
    {"get-osinfo", "GET", "guest-get-osinfo", false},
    {"get-time", "GET", "guest-get-time", false},
    {"get-timezone", "GET", "guest-get-timezone", false},
    {"get-users", "GET", "guest-get-users", false},
    {"get-vcpus", "GET", "guest-get-vcpus", false},
    {"info", "GET", "guest-info", false},
    {"network-get-interfaces", "GET", "guest-network-get-interfaces", false},
    {"ping", "POST", "guest-ping", false},
    {"shutdown", "POST", "guest-shutdown", true},
    {"suspend-disk", "POST", "guest-suspend-disk", true},
    {"suspend-hybrid", "POST", "guest-suspend-hybrid", true},
    {"suspend-ram", "POST", "guest-suspend-ram", true},
    {"exec", "POST", "guest-exec", false},
    {"exec-status", "GET", "guest-exec-status", false},
    {"set-user-password", "POST", "guest-set-user-password", false},
    {"file-read", "GET", "guest-file-open", false},
    {"file-write", "POST", "guest-file-open", false},
};

struct agent_call {
    struct api_call *call;
    const struct agent_route *route;
    char *args_json;
    /* file-read and file-write: open, then read or write, then close. */
    int step;
    long long handle;
    struct strbuf content;      /* what was read so far */
    bool truncated;
    long long max_read;         /* file-read: the count parameter */
    char *error;                /* the failure to report once the file is closed */
    struct agent_call *next;
};

/* The calls waiting for one VM's agent; the first one is running. */
struct agent_queue {
    int vmid;
    struct agent_call *head;
    struct agent_queue *next;
};

static struct agent_queue *queues;

static const struct agent_route *find_route(const char *name)
{
    for (size_t i = 0; i < QM_ARRAY_SIZE(agent_routes); i++) {
        if (strcmp(agent_routes[i].name, name) == 0)
            return &agent_routes[i];
    }
    return NULL;
}

static struct agent_queue *queue_of(int vmid)
{
    for (struct agent_queue *q = queues; q; q = q->next) {
        if (q->vmid == vmid)
            return q;
    }
    struct agent_queue *q = qm_calloc(1, sizeof(*q));
    q->vmid = vmid;
    q->next = queues;
    queues = q;
    return q;
}

static void run_next(struct agent_queue *queue);

static void finish(struct agent_queue *queue)
{
    struct agent_call *done = queue->head;

    queue->head = done->next;
    free(done->args_json);
    sb_free(&done->content);
    free(done->error);
    free(done);
    run_next(queue);
}

/*
 * Appends the status of guest-exec with its output decoded: the agent sends
 * out-data and err-data base64-encoded, the API returns them as text.
 */
static void add_exec_status(struct strbuf *sb, yajl_val status)
{
    if (!YAJL_IS_OBJECT(status)) {
        qm_json_add_value(sb, status);
        return;
    }
    sb_addc(sb, '{');
    for (size_t i = 0; i < status->u.object.len; i++) {
        const char *key = status->u.object.keys[i];
        yajl_val value = status->u.object.values[i];
        if (i)
            sb_addc(sb, ',');
        qm_json_add_string(sb, key);
        sb_addc(sb, ':');
        if ((strcmp(key, "out-data") == 0 || strcmp(key, "err-data") == 0) &&
            YAJL_IS_STRING(value)) {
            size_t len = 0;
            char *text = qm_base64_decode(YAJL_GET_STRING(value), &len);
            qm_json_add_string(sb, text ? text : "");
            free(text);
        } else {
            qm_json_add_value(sb, value);
        }
    }
    sb_addc(sb, '}');
}

static void reply_cb(const struct qmp_reply *reply, void *opaque)
{
    struct agent_queue *queue = opaque;
    struct agent_call *ac = queue->head;
    struct strbuf sb = {0};

    if (reply->result == QMP_OK) {
        sb_add(&sb, "{\"result\":");
        if (reply->ret && strcmp(ac->route->name, "exec-status") == 0)
            add_exec_status(&sb, reply->ret);
        else if (reply->ret)
            qm_json_add_value(&sb, reply->ret);
        else
            sb_add(&sb, "{}");
        sb_addc(&sb, '}');
        api_reply(ac->call, sb.buf);
    } else if (ac->route->no_reply &&
               (reply->result == QMP_TIMEOUT || reply->result == QMP_CLOSED)) {
        /* The guest acted on the command, which sends no reply on success. */
        api_reply(ac->call, "{}");
    } else if (reply->result == QMP_ERROR) {
        api_fail(ac->call, 500, "Agent error: %s", reply->error_desc);
    } else {
        api_fail(ac->call, 500, "QEMU guest agent is not running");
    }
    sb_free(&sb);
    finish(queue);
}

/* Sends one agent command for the queue's first call; reply gets the outcome. */
static void send_command(struct agent_queue *queue, const char *command, const char *args,
                         unsigned timeout, agent_reply_cb reply)
{
    struct api_call *call = queue->head->call;
    struct qm_error err;
    char *socket_path = qm_sprintf("%s/%d.qga", call->node->paths.run_dir, call->vmid);
    int r = agent_command(call->node->loop, socket_path, command, args, timeout, reply, queue,
                          NULL, &err);

    free(socket_path);
    if (r < 0) {
        api_fail(call, 500, "QEMU guest agent is not running: %s", err.msg);
        finish(queue);
    }
}


static void file_reply_cb(const struct qmp_reply *reply, void *opaque);

static void file_close(struct agent_queue *queue)
{
    struct agent_call *ac = queue->head;
    char *args = qm_sprintf("{\"handle\":%lld}", ac->handle);

    ac->step = 2;
    send_command(queue, "guest-file-close", args, AGENT_TIMEOUT_MS, file_reply_cb);
    free(args);
}

static void file_read_more(struct agent_queue *queue)
{
    struct agent_call *ac = queue->head;
    char *args = qm_sprintf("{\"handle\":%lld,\"count\":%d}", ac->handle, FILE_READ_CHUNK);

    send_command(queue, "guest-file-read", args, AGENT_TIMEOUT_MS, file_reply_cb);
    free(args);
}

/*
 * Steps of file-read and file-write: the reply of guest-file-open gives the
 * handle, then the file is read in chunks or written at once, and closed
 * whatever happened, before the API call gets its reply.
 */
static void file_reply_cb(const struct qmp_reply *reply, void *opaque)
{
    struct agent_queue *queue = opaque;
    struct agent_call *ac = queue->head;
    bool reading = strcmp(ac->route->name, "file-read") == 0;

    if (reply->result != QMP_OK && ac->step < 2) {
        ac->error = reply->result == QMP_ERROR
                        ? qm_sprintf("Agent error: %s", reply->error_desc)
                        : qm_sprintf("QEMU guest agent is not running: %s", reply->error_desc);
        if (ac->step == 1) {
            file_close(queue);
            return;
        }
        api_fail(ac->call, 500, "%s", ac->error);
        finish(queue);
        return;
    }
    if (ac->step == 0) {
        long long handle = -1;
        if (!reply->ret || !YAJL_IS_INTEGER(reply->ret)) {
            api_fail(ac->call, 500, "Agent error: guest-file-open returned no handle");
            finish(queue);
            return;
        }
        handle = YAJL_GET_INTEGER(reply->ret);
        ac->handle = handle;
        ac->step = 1;
        if (reading) {
            file_read_more(queue);
        } else {
            char *args = qm_sprintf("{\"handle\":%lld,\"buf-b64\":%s}", handle, ac->args_json);
            send_command(queue, "guest-file-write", args, AGENT_TIMEOUT_MS, file_reply_cb);
            free(args);
        }
        return;
    }
    if (ac->step == 1) {
        if (reading) {
            const char *data = qm_json_get_string(reply->ret, "buf-b64");
            bool eof = true;
            size_t len = 0;
            qm_json_get_bool(reply->ret, "eof", &eof);
            char *bytes = data ? qm_base64_decode(data, &len) : NULL;
            if (bytes)
                sb_addn(&ac->content, bytes, len);
            free(bytes);
            if ((long long)ac->content.len > ac->max_read) {
                ac->content.len = (size_t)ac->max_read;
                ac->content.buf[ac->content.len] = '\0';
                ac->truncated = true;
            } else if (!eof && len > 0) {
                file_read_more(queue);
                return;
            }
        }
        file_close(queue);
        return;
    }
    /* Closed: the reply of the API call. */
    if (ac->error) {
        api_fail(ac->call, 500, "%s", ac->error);
    } else if (reading) {
        struct strbuf sb = {0};
        sb_add(&sb, "{\"content\":");
        if (api_param_bool(ac->call, "decode", true)) {
            qm_json_add_string(&sb, ac->content.buf ? ac->content.buf : "");
        } else {
            char *encoded = qm_base64_encode((const unsigned char *)ac->content.buf,
                                             ac->content.len);
            qm_json_add_string(&sb, encoded);
            free(encoded);
        }
        if (ac->truncated)
            sb_add(&sb, ",\"truncated\":true");
        sb_addc(&sb, '}');
        api_reply(ac->call, sb.buf);
        sb_free(&sb);
    } else {
        api_reply(ac->call, NULL);
    }
    finish(queue);
}

static void run_next(struct agent_queue *queue)
{
    struct agent_call *ac = queue->head;

    if (!ac)
        return;
    if (qm_str_starts(ac->route->name, "file-")) {
        bool reading = strcmp(ac->route->name, "file-read") == 0;
        const char *path = api_param(ac->call, "file");
        struct strbuf args = {0};
        sb_add(&args, "{\"path\":");
        qm_json_add_string(&args, path);
        sb_addf(&args, ",\"mode\":\"%s\"}", reading ? "r" : "w");
        send_command(queue, "guest-file-open", args.buf, AGENT_TIMEOUT_MS, file_reply_cb);
        sb_free(&args);
        return;
    }
    send_command(queue, ac->route->command, ac->args_json,
                 ac->route->no_reply ? 3000 : AGENT_TIMEOUT_MS, reply_cb);
}

/* Appends word number index of a command: the program as "path", the rest into "arg". */
static void add_exec_word(struct strbuf *sb, const char *word, size_t index)
{
    if (index == 1)
        sb_add(sb, ",\"arg\":[");
    else if (index > 1)
        sb_addc(sb, ',');
    qm_json_add_string(sb, word);
}

/* Builds the agent arguments of exec from the repeated "command" parameters or a JSON array. */
static char *exec_args(struct api_call *call)
{
    struct strbuf sb = {0};
    size_t count = 0;
    const char *type = http_request_header(call->req, "Content-Type");

    sb_add(&sb, "{\"path\":");
    if (type && strncasecmp(type, "application/json", 16) == 0) {
        yajl_val root = qm_json_parse(call->req->body, call->req->body_len, NULL);
        yajl_val command = root ? qm_json_get(root, "command") : NULL;
        if (command && YAJL_IS_ARRAY(command)) {
            for (size_t i = 0; i < command->u.array.len; i++) {
                yajl_val item = command->u.array.values[i];
                if (!YAJL_IS_STRING(item))
                    continue;
                add_exec_word(&sb, YAJL_GET_STRING(item), count++);
            }
        }
        if (root)
            yajl_tree_free(root);
    }
    /* Form bodies and queries repeat the parameter once per argument. */
    for (size_t i = 0; count == 0 && i < call->keys.n; i++) {
        if (strcmp(call->keys.v[i], "command") != 0)
            continue;
        for (size_t j = i; j < call->keys.n; j++) {
            if (strcmp(call->keys.v[j], "command") != 0)
                continue;
            add_exec_word(&sb, call->values.v[j], count++);
        }
    }
    if (count == 0) {
        sb_free(&sb);
        return NULL;
    }
    if (count > 1)
        sb_addc(&sb, ']');
    const char *input = api_param(call, "input-data");
    if (input) {
        /* The agent takes the standard input base64-encoded. */
        char *encoded = qm_base64_encode((const unsigned char *)input, strlen(input));
        sb_add(&sb, ",\"input-data\":");
        qm_json_add_string(&sb, encoded);
        free(encoded);
    }
    sb_add(&sb, ",\"capture-output\":true}");
    return sb_detach(&sb);
}

/*
 * Checks the parameters of file-read and file-write. For a write it returns
 * the content as a quoted base64 JSON string (encode=0: the content is
 * base64 already); for a read an empty object. NULL with parameter errors
 * recorded when one is missing.
 */
static char *file_args(struct api_call *call, bool write)
{
    const char *file = api_param(call, "file");
    const char *content = api_param(call, "content");
    bool encode = api_param_bool(call, "encode", true);

    if (!file)
        api_param_error(call, "file", "property is missing and it is not optional");
    if (write && !content)
        api_param_error(call, "content", "property is missing and it is not optional");
    else if (write && strlen(content) > 61440)
        api_param_error(call, "content", "value may only be 61440 characters long");
    if (!write) {
        api_param_int(call, "count", 1, FILE_READ_MAX, FILE_READ_MAX);
        if (api_param_int(call, "offset", 0, 1LL << 62, 0) > 0)
            api_param_error(call, "offset", "reading from an offset is not supported yet");
        api_param_bool(call, "decode", true);
    }
    if (api_has_param_errors(call))
        return NULL;
    if (!write)
        return qm_strdup("{}");
    struct strbuf sb = {0};
    char *encoded = encode ? qm_base64_encode((const unsigned char *)content, strlen(content))
                           : qm_strdup(content);
    qm_json_add_string(&sb, encoded);
    free(encoded);
    return sb_detach(&sb);
}

/*
 * Builds the arguments of guest-set-user-password: the agent takes the
 * password base64-encoded. Records parameter errors and returns NULL when
 * a parameter is missing or invalid.
 */
static char *password_args(struct api_call *call)
{
    const char *username = api_param(call, "username");
    const char *password = api_param(call, "password");
    bool crypted = api_param_bool(call, "crypted", false);

    if (!username)
        api_param_error(call, "username", "property is missing and it is not optional");
    if (!password)
        api_param_error(call, "password", "property is missing and it is not optional");
    else if (strlen(password) < 5 || strlen(password) > 1024)
        api_param_error(call, "password", "value must be 5 to 1024 characters long");
    if (api_has_param_errors(call))
        return NULL;
    struct strbuf sb = {0};
    char *encoded = qm_base64_encode((const unsigned char *)password, strlen(password));
    sb_add(&sb, "{\"username\":");
    qm_json_add_string(&sb, username);
    sb_add(&sb, ",\"password\":");
    qm_json_add_string(&sb, encoded);
    sb_addf(&sb, ",\"crypted\":%s}", crypted ? "true" : "false");
    free(encoded);
    return sb_detach(&sb);
}

/* Checks that the VM runs with an agent configured; ends the call with an error otherwise. */
static bool check_agent(struct api_call *call)
{
    struct qm_conf *conf = NULL;
    struct qm_error err;

    if (qm_conf_load(&call->node->paths, call->vmid, &conf, &err) < 0) {
        api_fail(call, 500, "Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist",
                 call->node->name, call->vmid);
        return false;
    }
    const char *agent = qm_conf_get(&conf->main, "agent");
    struct qm_propstr ps = {0};
    bool enabled = false;
    if (agent && qm_propstr_parse("agent", agent, &ps, NULL) == 0) {
        const char *value = qm_propstr_get(&ps, "enabled");
        enabled = value && strcmp(value, "1") == 0;
        qm_propstr_free(&ps);
    }
    qm_conf_free(conf);
    if (!enabled) {
        api_fail(call, 500, "No QEMU guest agent configured");
        return false;
    }
    struct qm_vm *vm = qm_node_find_vm(call->node, call->vmid);
    if (!vm || vm->state != QM_VM_RUNNING) {
        api_fail(call, 500, "VM %d is not running", call->vmid);
        return false;
    }
    return true;
}

static void queue_call(struct api_call *call, const struct agent_route *route, char *args_json)
{
    struct agent_queue *queue = queue_of(call->vmid);
    struct agent_call *ac = qm_calloc(1, sizeof(*ac));
    struct agent_call **tail = &queue->head;

    ac->max_read = api_param_int(call, "count", 1, FILE_READ_MAX, FILE_READ_MAX);

    ac->call = call;
    ac->route = route;
    ac->args_json = args_json;
    while (*tail)
        tail = &(*tail)->next;
    *tail = ac;
    if (queue->head == ac)
        run_next(queue);
}

void api_vm_agent_index(struct api_call *call)
{
    struct strbuf sb = {0};

    sb_addc(&sb, '[');
    for (size_t i = 0; i < QM_ARRAY_SIZE(agent_routes); i++) {
        sb_add(&sb, i ? ",{\"name\":" : "{\"name\":");
        qm_json_add_string(&sb, agent_routes[i].name);
        sb_addc(&sb, '}');
    }
    sb_addc(&sb, ']');
    api_reply(call, sb.buf);
    sb_free(&sb);
}

/* POST .../agent with command=NAME, and GET or POST .../agent/NAME. */
void api_vm_agent(struct api_call *call)
{
    const char *name = call->name ? call->name : api_param(call, "command");
    const struct agent_route *route = name ? find_route(name) : NULL;
    char *args = NULL;

    if (!call->name && !name) {
        api_param_error(call, "command", "property is missing and it is not optional");
        api_param_errors_reply(call);
        return;
    }
    if (!route || (!call->name && strcmp(route->name, "exec") == 0) ||
        (!call->name && strcmp(route->name, "exec-status") == 0)) {
        if (call->name)
            api_fail(call, 404, "no such agent command '%s'", name);
        else {
            api_param_error(call, "command", "value '%s' does not have a value in the enumeration",
                            name);
            api_param_errors_reply(call);
        }
        return;
    }
    if (call->name && strcmp(route->method, call->req->method) != 0) {
        api_fail(call, 501, "Method '%s' not implemented for agent command '%s'",
                 call->req->method, name);
        return;
    }
    if (strcmp(route->name, "exec") == 0) {
        args = exec_args(call);
        if (!args) {
            api_param_error(call, "command", "property is missing and it is not optional");
            api_param_errors_reply(call);
            return;
        }
    } else if (strcmp(route->name, "exec-status") == 0) {
        long long pid = api_param_int(call, "pid", 0, 2147483647, -1);
        if (pid < 0 && !api_has_param_errors(call))
            api_param_error(call, "pid", "property is missing and it is not optional");
        if (api_has_param_errors(call)) {
            api_param_errors_reply(call);
            return;
        }
        args = qm_sprintf("{\"pid\":%lld}", pid);
    } else if (qm_str_starts(route->name, "file-")) {
        args = file_args(call, strcmp(route->name, "file-write") == 0);
        if (!args) {
            api_param_errors_reply(call);
            return;
        }
    } else if (strcmp(route->name, "set-user-password") == 0) {
        args = password_args(call);
        if (!args) {
            api_param_errors_reply(call);
            return;
        }
    }
    if (!check_agent(call)) {
        free(args);
        return;
    }
    queue_call(call, route, args);
}

/*
 * The REST API: authentication, routing and parameters, with the paths and
 * JSON envelope of Proxmox VE (/api2/json/..., {"data": ...}).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qm/api.h"
#include "qm/json.h"
#include "api.h"

#define API_PREFIX "/api2/json"

typedef void (*api_handler_fn)(struct api_call *call);

enum route_auth {
    AUTH_REQUIRED,
    AUTH_NONE,
};

struct route {
    const char *method;
    const char *pattern;    /* "{node}", "{vmid}", "{upid}" and "{name}" match one path segment */
    api_handler_fn handler;
    enum route_auth auth;
};

static void handle_login(struct api_call *call);
static void handle_version(struct api_call *call);
static void handle_nodes(struct api_call *call);
static void handle_noop(struct api_call *call);

static const struct route routes[] = {
    {"GET", "/access/ticket", handle_noop, AUTH_NONE},
    {"POST", "/access/ticket", handle_login, AUTH_NONE},
    {"GET", "/version", handle_version, AUTH_REQUIRED},
    {"GET", "/nodes", handle_nodes, AUTH_REQUIRED},
    {"GET", "/cluster/resources", api_cluster_resources, AUTH_REQUIRED},
    {"GET", "/cluster/nextid", api_cluster_nextid, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu", api_vm_list, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu", api_vm_create, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}", api_vm_index, AUTH_REQUIRED},
    {"DELETE", "/nodes/{node}/qemu/{vmid}", api_vm_destroy, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}/config", api_vm_config_get, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/config", api_vm_config_set, AUTH_REQUIRED},
    {"PUT", "/nodes/{node}/qemu/{vmid}/config", api_vm_config_set, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}/pending", api_vm_pending_get, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}/showcmd", api_vm_showcmd, AUTH_REQUIRED},
    {"PUT", "/nodes/{node}/qemu/{vmid}/resize", api_vm_resize, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/move_disk", api_vm_move_disk, AUTH_REQUIRED},
    {"PUT", "/nodes/{node}/qemu/{vmid}/unlink", api_vm_unlink, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/rescan", api_vm_rescan, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/unlock", api_vm_unlock, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/monitor", api_vm_monitor, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}/status", api_vm_status_index, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}/status/current", api_vm_status_current, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/status/start", api_vm_status_action, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/status/stop", api_vm_status_action, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/status/shutdown", api_vm_status_action, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/status/reboot", api_vm_status_action, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/status/reset", api_vm_status_action, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/status/suspend", api_vm_status_action, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/status/resume", api_vm_status_action, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}/agent", api_vm_agent_index, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/agent", api_vm_agent, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/qemu/{vmid}/agent/{name}", api_vm_agent, AUTH_REQUIRED},
    {"POST", "/nodes/{node}/qemu/{vmid}/agent/{name}", api_vm_agent, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/tasks", api_tasks_list, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/tasks/{upid}", api_task_index, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/tasks/{upid}/status", api_task_status, AUTH_REQUIRED},
    {"GET", "/nodes/{node}/tasks/{upid}/log", api_task_log, AUTH_REQUIRED},
};

static void call_free(struct api_call *call)
{
    free(call->user);
    free(call->upid);
    free(call->name);
    sv_free(&call->keys);
    sv_free(&call->values);
    sb_free(&call->param_errors);
    free(call);
}

static void send_json(struct api_call *call, int status, const char *body)
{
    http_request_add_response_header(call->req, "Cache-Control", "max-age=0");
    http_respond(call->req, status, "application/json;charset=UTF-8", body, strlen(body));
    call_free(call);
}

void api_reply(struct api_call *call, const char *json)
{
    struct strbuf sb = {0};

    sb_add(&sb, "{\"data\":");
    sb_add(&sb, json ? json : "null");
    sb_addc(&sb, '}');
    send_json(call, 200, sb.buf);
    sb_free(&sb);
}

void api_reply_total(struct api_call *call, const char *json, long long total)
{
    struct strbuf sb = {0};

    sb_addf(&sb, "{\"total\":%lld,\"data\":", total);
    sb_add(&sb, json ? json : "null");
    sb_addc(&sb, '}');
    send_json(call, 200, sb.buf);
    sb_free(&sb);
}

static void reply_error(struct api_call *call, int status, const char *message,
                        const char *errors_json)
{
    struct strbuf sb = {0};

    if (status < 400 || status > 599)
        status = 500;
    qm_log(status >= 500 ? QM_LOG_ERR : QM_LOG_INFO, call->vmid, "%s %s: %d %s",
           call->req->method, call->req->path, status, message);
    sb_add(&sb, "{\"data\":null,\"message\":");
    qm_json_add_string(&sb, message);
    if (errors_json) {
        sb_add(&sb, ",\"errors\":");
        sb_add(&sb, errors_json);
    }
    sb_addc(&sb, '}');
    http_request_set_reason(call->req, message);
    send_json(call, status, sb.buf);
    sb_free(&sb);
}

void api_fail(struct api_call *call, int status, const char *fmt, ...)
{
    struct strbuf sb = {0};
    va_list ap;

    va_start(ap, fmt);
    sb_vaddf(&sb, fmt, ap);
    va_end(ap);
    reply_error(call, status, sb.buf, NULL);
    sb_free(&sb);
}

void api_fail_error(struct api_call *call, const struct qm_error *err)
{
    reply_error(call, err->code ? err->code : 500, err->msg, NULL);
}

void api_reply_done(struct api_call *call, const char *error)
{
    if (error)
        api_fail(call, 500, "%s", error);
    else
        api_reply(call, NULL);
}

void api_param_error(struct api_call *call, const char *name, const char *fmt, ...)
{
    struct strbuf msg = {0};
    va_list ap;

    va_start(ap, fmt);
    sb_vaddf(&msg, fmt, ap);
    va_end(ap);
    sb_addc(&call->param_errors, call->param_errors.len ? ',' : '{');
    qm_json_add_string(&call->param_errors, name);
    sb_addc(&call->param_errors, ':');
    qm_json_add_string(&call->param_errors, msg.buf);
    sb_free(&msg);
}

bool api_has_param_errors(const struct api_call *call)
{
    return call->param_errors.len > 0;
}

void api_param_errors_reply(struct api_call *call)
{
    sb_addc(&call->param_errors, '}');
    reply_error(call, 400, "Parameter verification failed.", call->param_errors.buf);
}

const char *api_param(const struct api_call *call, const char *name)
{
    /* The last occurrence wins, so query parameters added last override the body. */
    for (size_t i = call->keys.n; i-- > 0;) {
        if (strcmp(call->keys.v[i], name) == 0)
            return call->values.v[i];
    }
    return NULL;
}

bool api_param_bool(struct api_call *call, const char *name, bool fallback)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    const char *v = api_param(call, name);

    if (!v)
        return fallback;
    for (size_t i = 0; i < QM_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return true;
        if (strcasecmp(v, no[i]) == 0)
            return false;
    }
    api_param_error(call, name, "type check ('boolean') failed - got '%s'", v);
    return fallback;
}

long long api_param_int(struct api_call *call, const char *name, long long min, long long max,
                        long long fallback)
{
    const char *v = api_param(call, name);
    long long n;

    if (!v)
        return fallback;
    if (!qm_parse_int(v[0] == '+' ? v + 1 : v, &n)) {
        api_param_error(call, name, "type check ('integer') failed - got '%s'", v);
        return fallback;
    }
    if (n < min) {
        api_param_error(call, name, "value must have a minimum value of %lld", min);
        return fallback;
    }
    if (n > max) {
        api_param_error(call, name, "value must have a maximum value of %lld", max);
        return fallback;
    }
    return n;
}

/* Adds the members of a JSON object body as parameters; arrays are joined with ','. */
static int add_json_params(struct api_call *call, const char *body, size_t len,
                           struct qm_error *err)
{
    yajl_val root = qm_json_parse(body, len, err);

    if (!root)
        return -1;
    if (!YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return qm_fail(err, 400, "invalid JSON body: expected an object");
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        yajl_val v = root->u.object.values[i];
        struct strbuf sb = {0};
        if (YAJL_IS_STRING(v)) {
            sb_add(&sb, YAJL_GET_STRING(v));
        } else if (YAJL_IS_TRUE(v)) {
            sb_add(&sb, "1");
        } else if (YAJL_IS_FALSE(v)) {
            sb_add(&sb, "0");
        } else if (YAJL_IS_NUMBER(v)) {
            sb_add(&sb, YAJL_GET_NUMBER(v));
        } else if (YAJL_IS_ARRAY(v)) {
            for (size_t j = 0; j < v->u.array.len; j++) {
                yajl_val item = v->u.array.values[j];
                if (j)
                    sb_addc(&sb, ',');
                if (YAJL_IS_STRING(item))
                    sb_add(&sb, YAJL_GET_STRING(item));
                else if (YAJL_IS_NUMBER(item))
                    sb_add(&sb, YAJL_GET_NUMBER(item));
            }
        } else if (YAJL_IS_NULL(v)) {
            sb_free(&sb);
            continue;
        } else {
            sb_free(&sb);
            qm_fail(err, 400, "invalid JSON body: parameter '%s' is an object",
                    root->u.object.keys[i]);
            yajl_tree_free(root);
            return -1;
        }
        sv_push(&call->keys, root->u.object.keys[i]);
        sv_push(&call->values, sb.buf ? sb.buf : "");
        sb_free(&sb);
    }
    yajl_tree_free(root);
    return 0;
}

static int collect_params(struct api_call *call, struct qm_error *err)
{
    struct http_request *req = call->req;

    if (req->body_len > 0) {
        const char *type = http_request_header(req, "Content-Type");
        if (type && strncasecmp(type, "application/json", 16) == 0) {
            if (add_json_params(call, req->body, req->body_len, err) < 0)
                return -1;
        } else if (http_parse_form(req->body, req->body_len, &call->keys, &call->values,
                                   err) < 0) {
            return -1;
        }
    }
    /* Query parameters come last so that they win over the body. */
    return http_parse_form(req->query, strlen(req->query), &call->keys, &call->values, err);
}

/* Returns the value of cookie name from a Cookie header (caller frees), or NULL. */
static char *find_cookie(const char *header, const char *name, struct qm_error *err)
{
    size_t n = strlen(name);

    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            struct strbuf sb = {0};
            if (http_url_decode(p + n + 1, len - n - 1, false, &sb, err) < 0) {
                sb_free(&sb);
                return NULL;
            }
            return sb_detach(&sb);
        }
        p = end;
    }
    return NULL;
}

/*
 * Tickets verified recently, so that a client polling with one ticket costs
 * one HMAC per ticket instead of one per request. An entry is used only
 * while its ticket is still valid by time.
 */
#define TICKET_CACHE_SIZE 16

struct ticket_cache_entry {
    char *ticket;
    char *user;
    time_t verified;
    time_t expires;     /* from the ticket's own time stamp */
};

static struct ticket_cache_entry ticket_cache[TICKET_CACHE_SIZE];
static size_t ticket_cache_next;

static int verify_ticket_cached(struct qm_access *access, const char *ticket, char **user,
                                struct qm_error *err)
{
    time_t now = time(NULL);

    for (size_t i = 0; i < TICKET_CACHE_SIZE; i++) {
        struct ticket_cache_entry *e = &ticket_cache[i];
        if (e->ticket && strcmp(e->ticket, ticket) == 0 && now < e->expires &&
            now >= e->verified) {
            *user = qm_strdup(e->user);
            return 0;
        }
    }
    if (qm_access_verify_ticket(access, ticket, now, user, err) < 0)
        return -1;
    struct ticket_cache_entry *e = &ticket_cache[ticket_cache_next];
    ticket_cache_next = (ticket_cache_next + 1) % TICKET_CACHE_SIZE;
    free(e->ticket);
    free(e->user);
    e->ticket = qm_strdup(ticket);
    e->user = qm_strdup(*user);
    e->verified = now;
    /* A verified ticket is "PVE:USER:XXXXXXXX::SIGNATURE" with a hex time stamp. */
    const char *sep = strstr(ticket, "::");
    char stamp[9] = "";
    if (sep && sep - ticket >= 8)
        memcpy(stamp, sep - 8, 8);
    e->expires = (time_t)strtoul(stamp, NULL, 16) + QM_TICKET_LIFETIME;
    return 0;
}

/*
 * Authenticates a request. A peer on the unix socket with qmd's own uid or
 * root is root@pam. Other requests need a ticket (cookie or header) or an
 * API token.
 */
static int authenticate(struct api_call *call, struct qm_error *err)
{
    struct http_request *req = call->req;
    struct qm_access *access = &call->node->access;
    const char *cookie = http_request_header(req, "Cookie");
    const char *authz = http_request_header(req, "Authorization");
    char *ticket = NULL;

    if (req->is_unix && (req->peer_uid == 0 || req->peer_uid == getuid())) {
        call->user = qm_strdup("root@pam");
        return 0;
    }
    if (cookie)
        ticket = find_cookie(cookie, "PVEAuthCookie", NULL);
    if (!ticket && authz && qm_str_starts(authz, "PVEAuthCookie="))
        ticket = find_cookie(authz, "PVEAuthCookie", NULL);
    if (ticket) {
        int r = verify_ticket_cached(access, ticket, &call->user, err);
        free(ticket);
        if (r < 0)
            return -1;
        bool write = strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
        if (write && !qm_access_verify_csrf(access,
                                            http_request_header(req, "CSRFPreventionToken"),
                                            call->user, time(NULL)))
            return qm_fail(err, 401, "Permission check failed (invalid csrf token)");
        return 0;
    }
    if (authz && qm_str_starts(authz, "PVEAPIToken=")) {
        const char *value = authz + strlen("PVEAPIToken=");
        return qm_access_verify_token(access, value, &call->user, err);
    }
    return qm_fail(err, 401, "No ticket");
}

/*
 * Matches path against a route pattern and takes {vmid} and {upid} from it.
 * Returns false without a match; a {node} other than this node's name is an
 * error reported through err.
 */
static bool match_route(struct api_call *call, const char *pattern, const char *path,
                        struct qm_error *err)
{
    const char *p = pattern, *s = path;

    while (*p && *s) {
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            const char *send = strchr(s, '/');
            size_t len = send ? (size_t)(send - s) : strlen(s);
            size_t name_len = (size_t)(pend - p - 1);
            if (len == 0)
                return false;
            char *segment = qm_strndup(s, len);
            if (strncmp(p + 1, "vmid", name_len) == 0) {
                long long vmid;
                if (!qm_parse_int(segment, &vmid) || vmid < 100 || vmid > 999999999) {
                    qm_fail(err, 400, "invalid VM id '%s': expected 100 to 999999999", segment);
                    free(segment);
                    return true;
                }
                call->vmid = (int)vmid;
            } else if (strncmp(p + 1, "upid", name_len) == 0 ||
                       strncmp(p + 1, "name", name_len) == 0) {
                struct strbuf decoded = {0};
                if (http_url_decode(segment, len, false, &decoded, err) < 0) {
                    free(segment);
                    sb_free(&decoded);
                    return true;
                }
                char **slot = p[1] == 'u' ? &call->upid : &call->name;
                free(*slot);
                *slot = sb_detach(&decoded);
            } else if (strcmp(segment, call->node->name) != 0) {
                qm_fail(err, 400, "no such node '%s'", segment);
                free(segment);
                return true;
            }
            free(segment);
            p = pend + 1;
            s += len;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    /* A trailing slash is accepted, as Proxmox VE does. */
    if (*s == '/' && s[1] == '\0')
        s++;
    return *p == '\0' && *s == '\0';
}

void qm_api_handle(struct http_request *req, void *data)
{
    struct qm_node *node = data;
    struct api_call *call = qm_calloc(1, sizeof(*call));
    struct qm_error err;
    const struct route *route = NULL;
    bool path_known = false;

    call->node = node;
    call->req = req;
    qm_error_clear(&err);
    if (!qm_str_starts(req->path, API_PREFIX "/")) {
        api_fail(call, 404, "path '%s' not found", req->path);
        return;
    }
    const char *path = req->path + strlen(API_PREFIX);
    for (size_t i = 0; i < QM_ARRAY_SIZE(routes); i++) {
        call->vmid = 0;
        if (!match_route(call, routes[i].pattern, path, &err))
            continue;
        if (err.code) {
            api_fail_error(call, &err);
            return;
        }
        path_known = true;
        if (strcmp(routes[i].method, req->method) == 0) {
            route = &routes[i];
            break;
        }
    }
    if (!route) {
        if (path_known)
            api_fail(call, 501, "Method '%s %s' not implemented", req->method, path);
        else
            api_fail(call, 404, "no such path '%s'", path);
        return;
    }
    if (route->auth == AUTH_REQUIRED) {
        if (authenticate(call, &err) < 0) {
            api_fail_error(call, &err);
            return;
        }
        /* Finer permissions do not exist yet: administrators may do everything. */
        if (!qm_access_is_admin(&node->access, call->user)) {
            api_fail(call, 403, "Permission check failed (%s)", call->user);
            return;
        }
    }
    if (collect_params(call, &err) < 0) {
        api_fail_error(call, &err);
        return;
    }
    route->handler(call);
}

static void handle_noop(struct api_call *call)
{
    api_reply(call, NULL);
}

/*
 * Clients such as Ansible's proxmox modules choose features by the version,
 * so it names the Proxmox VE release whose API this implements; the
 * project's own version is in qm-version.
 */
static void handle_version(struct api_call *call)
{
    api_reply(call, "{\"version\":\"" QM_PVE_API_VERSION "\",\"release\":\""
                    QM_PVE_API_RELEASE "\",\"repoid\":\"qemu-server-c\",\"qm-version\":\""
                    QM_VERSION "\"}");
}

static void handle_nodes(struct api_call *call)
{
    struct strbuf sb = {0};

    sb_add(&sb, "[{\"node\":");
    qm_json_add_string(&sb, call->node->name);
    sb_add(&sb, ",\"status\":\"online\",\"type\":\"node\",\"id\":");
    char *id = qm_sprintf("node/%s", call->node->name);
    qm_json_add_string(&sb, id);
    free(id);
    sb_addf(&sb, ",\"maxcpu\":%ld}]", sysconf(_SC_NPROCESSORS_ONLN));
    api_reply(call, sb.buf);
    sb_free(&sb);
}

/* Delay before the reply to a failed login, which slows down password guessing. */
#define LOGIN_FAILURE_DELAY_MS 3000

static void login_delay_close_cb(uv_handle_t *handle)
{
    free(handle);
}

static void login_delay_cb(uv_timer_t *timer)
{
    api_fail(timer->data, 401, "authentication failure");
    uv_close((uv_handle_t *)timer, login_delay_close_cb);
}

static void fail_login_later(struct api_call *call)
{
    uv_timer_t *timer = qm_malloc(sizeof(*timer));

    uv_timer_init(call->node->loop, timer);
    timer->data = call;
    uv_timer_start(timer, login_delay_cb, LOGIN_FAILURE_DELAY_MS, 0);
}

static void handle_login(struct api_call *call)
{
    struct qm_access *access = &call->node->access;
    const char *username = api_param(call, "username");
    const char *password = api_param(call, "password");
    const char *realm = api_param(call, "realm");
    struct qm_error err;
    char *userid = NULL, *ticket = NULL, *csrf = NULL;

    if (!username)
        api_param_error(call, "username", "property is missing and it is not optional");
    if (!password)
        api_param_error(call, "password", "property is missing and it is not optional");
    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    if (strchr(username, '@'))
        userid = qm_strdup(username);
    else
        userid = qm_sprintf("%s@%s", username, realm ? realm : "pam");

    /* A valid ticket as password renews it. */
    char *ticket_user = NULL;
    bool ok = qm_access_verify_ticket(access, password, time(NULL), &ticket_user, NULL) == 0 &&
              strcmp(ticket_user, userid) == 0;
    free(ticket_user);
    if (!ok && qm_access_check_password(access, userid, password, &err) < 0) {
        qm_log(QM_LOG_WARNING, 0, "authentication failure; user=%s peer=%s", userid,
               call->req->peer_addr);
        free(userid);
        fail_login_later(call);
        return;
    }
    qm_access_issue_ticket(access, userid, time(NULL), &ticket, &csrf);

    struct strbuf sb = {0};
    sb_add(&sb, "{\"username\":");
    qm_json_add_string(&sb, userid);
    sb_add(&sb, ",\"ticket\":");
    qm_json_add_string(&sb, ticket);
    sb_add(&sb, ",\"CSRFPreventionToken\":");
    qm_json_add_string(&sb, csrf);
    sb_add(&sb, ",\"cap\":{}}");
    api_reply(call, sb.buf);
    sb_free(&sb);
    free(userid);
    free(ticket);
    free(csrf);
}

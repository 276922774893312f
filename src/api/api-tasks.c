/* API handlers under /nodes/{node}/tasks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qm/json.h"
#include "qm/task.h"
#include "api.h"

static void add_task_fields(struct strbuf *sb, const char *upid, const struct qm_upid *u)
{
    sb_add(sb, "\"upid\":");
    qm_json_add_string(sb, upid);
    sb_add(sb, ",\"node\":");
    qm_json_add_string(sb, u->node);
    sb_addf(sb, ",\"pid\":%u,\"pstart\":%llu,\"starttime\":%lld", u->pid, u->pstart,
            (long long)u->starttime);
    sb_add(sb, ",\"type\":");
    qm_json_add_string(sb, u->type);
    sb_add(sb, ",\"id\":");
    qm_json_add_string(sb, u->id);
    sb_add(sb, ",\"user\":");
    qm_json_add_string(sb, u->user);
}

void api_tasks_list(struct api_call *call)
{
    long long limit = api_param_int(call, "limit", 0, 1000000, 50);
    long long start = api_param_int(call, "start", 0, 1000000, 0);
    long long vmid = api_param_int(call, "vmid", 100, 999999999, 0);
    bool errors = api_param_bool(call, "errors", false);
    const char *typefilter = api_param(call, "typefilter");
    const char *source = api_param(call, "source");
    struct strbuf sb = {0};
    long long total = 0, shown = 0;

    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    bool active_only = source && strcmp(source, "active") == 0;
    sb_addc(&sb, '[');
    for (struct qm_task *t = call->node->tasks.head; t; t = t->next) {
        struct qm_upid u;
        if (qm_upid_parse(t->upid, &u) < 0)
            continue;
        if (vmid && atoll(t->id) != vmid)
            continue;
        if (typefilter && strcmp(typefilter, t->type) != 0)
            continue;
        if (errors && (!t->exitstatus || strcmp(t->exitstatus, "OK") == 0))
            continue;
        if (active_only && t->exitstatus)
            continue;
        total++;
        if (total <= start || shown >= limit)
            continue;
        shown++;
        if (sb.len > 1)
            sb_addc(&sb, ',');
        sb_addc(&sb, '{');
        add_task_fields(&sb, t->upid, &u);
        if (t->exitstatus) {
            sb_addf(&sb, ",\"endtime\":%lld,\"status\":", (long long)t->endtime);
            qm_json_add_string(&sb, t->exitstatus);
        }
        sb_addc(&sb, '}');
    }
    sb_addc(&sb, ']');
    api_reply_total(call, sb.buf, total);
    sb_free(&sb);
}

void api_task_index(struct api_call *call)
{
    api_reply(call, "[{\"name\":\"log\"},{\"name\":\"status\"}]");
}

/* Checks the UPID of the call; ends the call with an error and returns false when bad. */
static bool check_upid(struct api_call *call, struct qm_upid *u)
{
    if (!call->upid || qm_upid_parse(call->upid, u) < 0) {
        api_param_error(call, "upid", "unable to parse worker upid '%s'",
                        call->upid ? call->upid : "");
        api_param_errors_reply(call);
        return false;
    }
    return true;
}

void api_task_status(struct api_call *call)
{
    struct qm_upid u;
    struct strbuf sb = {0};
    struct qm_error err;

    if (!check_upid(call, &u))
        return;
    struct qm_task *task = qm_task_find(&call->node->tasks, call->upid);
    char *exitstatus = NULL;
    time_t endtime = 0;
    if (task) {
        exitstatus = task->exitstatus ? qm_strdup(task->exitstatus) : NULL;
        endtime = task->endtime;
    } else if (qm_task_read_exitstatus(call->node->tasks.dir, call->upid, &exitstatus, &endtime,
                                       &err) < 0) {
        api_fail(call, 500, "no such task '%s'", call->upid);
        return;
    }
    sb_addc(&sb, '{');
    add_task_fields(&sb, call->upid, &u);
    if (exitstatus) {
        sb_add(&sb, ",\"status\":\"stopped\",\"exitstatus\":");
        qm_json_add_string(&sb, exitstatus);
        sb_addf(&sb, ",\"endtime\":%lld", (long long)endtime);
    } else {
        sb_add(&sb, ",\"status\":\"running\"");
    }
    sb_addc(&sb, '}');
    free(exitstatus);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

void api_task_log(struct api_call *call)
{
    long long start = api_param_int(call, "start", 0, 100000000, 0);
    long long limit = api_param_int(call, "limit", 0, 100000000, 50);
    struct qm_upid u;
    struct strbuf sb = {0};
    char *data = NULL;
    size_t len = 0;

    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    if (!check_upid(call, &u))
        return;
    char *path = qm_task_log_path(call->node->tasks.dir, call->upid);
    int r = qm_read_file(path, &data, &len, NULL);
    free(path);
    if (r < 0) {
        api_fail(call, 500, "no such task '%s'", call->upid);
        return;
    }
    long long n = 0, shown = 0;
    sb_addc(&sb, '[');
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        n++;
        if (n <= start || shown >= limit)
            continue;
        shown++;
        if (sb.len > 1)
            sb_addc(&sb, ',');
        sb_addf(&sb, "{\"n\":%lld,\"t\":", n);
        qm_json_add_string(&sb, line);
        sb_addc(&sb, '}');
    }
    if (n == 0) {
        sb_add(&sb, "{\"n\":1,\"t\":\"no content\"}");
        n = 1;
    }
    sb_addc(&sb, ']');
    free(data);
    api_reply_total(call, sb.buf, n);
    sb_free(&sb);
}

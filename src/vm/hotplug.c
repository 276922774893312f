/*
 * Disk hotplug through QMP. The QEMU arguments of a drive are taken from the
 * command line that a cold start of the configuration would run. So a
 * hot-plugged drive gets the same -drive options, device properties, bus
 * and address. The SCSI controller, iothread or PCI bridge that the cold
 * line has for it are added first when the VM lacks them.
 *
 * Each operation is a list of steps (QMP commands, HMP commands, device
 * removals that wait for DEVICE_DELETED) run one after the other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qm/hotplug.h"
#include "qm/json.h"

/* Parents (bridge, controller) followed from a device up its buses. */
#define MAX_PARENTS 4

enum step_kind {
    STEP_QMP,       /* a QMP command */
    STEP_HMP,       /* a human monitor command line */
    STEP_UNPLUG,    /* device_del, then the DEVICE_DELETED event */
};

struct step {
    enum step_kind kind;
    char *command;      /* STEP_QMP: the command name */
    char *args;         /* STEP_QMP: JSON arguments; STEP_HMP: the command line */
    char *device_id;    /* STEP_UNPLUG: the device to remove */
    char *label;        /* the step as the task log shows it */
    bool essential;     /* a failure fails the operation; otherwise it is a warning */
    bool missing_ok;    /* "not found" counts as done (the object is already gone) */
};

struct hotplug_op {
    struct qm_node *node;
    int vmid;
    char *key;
    struct qm_task *task;
    qm_hotplug_done_fn done;
    void *opaque;
    struct strvec argv;         /* the cold command line */
    struct strvec peripherals;  /* device ids under /machine/peripheral */
    struct strvec objects;      /* object ids under /objects */
    struct step *steps;
    size_t nsteps;
    size_t next;
    bool drive_added;           /* drive_add succeeded: a failure deletes the drive again */
    bool finished;              /* done was called; free once no reply is outstanding */
    unsigned inflight;          /* QMP commands whose reply has not arrived */
    /* The running STEP_UNPLUG. */
    uv_timer_t *timer;
    bool watching;
    bool del_replied;
    bool del_event;
};

static void run_next(struct hotplug_op *op);

bool qm_hotplug_disk_supported(const struct qm_conf_section *main, const char *key,
                               const char **reason)
{
    const char *hotplug = qm_conf_get(main, "hotplug");

    if (!qm_str_starts(key, "scsi") && !qm_str_starts(key, "virtio")) {
        *reason = "only scsiN and virtioN drives can be hot-plugged";
        return false;
    }
    if (!hotplug || strcmp(hotplug, "1") == 0)
        hotplug = "network,disk,usb";
    if (strcmp(hotplug, "0") == 0) {
        *reason = "hotplug is disabled for this VM";
        return false;
    }
    size_t len = strlen("disk");
    for (const char *p = hotplug; *p;) {
        size_t n = strcspn(p, ",; ");
        if (n == len && strncmp(p, "disk", len) == 0)
            return true;
        p += n + (p[n] != '\0');
    }
    *reason = "the hotplug option of this VM does not include 'disk'";
    return false;
}

/* ---- Options of -device, -drive and -object values ---- */

/* The items of "first,key=value,..." in order; ",," is a literal comma. */
struct opts {
    struct strvec keys;
    struct strvec values;
};

static void opts_free(struct opts *o)
{
    sv_free(&o->keys);
    sv_free(&o->values);
}

/* Parses text; a first item without '=' is stored under first_key (the driver or type). */
static void opts_parse(const char *text, const char *first_key, struct opts *o)
{
    struct strbuf item = {0};
    const char *p = text;

    memset(o, 0, sizeof(*o));
    for (;;) {
        if (*p == ',' && p[1] == ',') {
            sb_addc(&item, ',');
            p += 2;
            continue;
        }
        if (*p != ',' && *p != '\0') {
            sb_addc(&item, *p++);
            continue;
        }
        const char *s = item.buf ? item.buf : "";
        const char *eq = strchr(s, '=');
        if (eq) {
            char *k = qm_strndup(s, (size_t)(eq - s));
            sv_push(&o->keys, k);
            sv_push(&o->values, eq + 1);
            free(k);
        } else if (o->keys.n == 0) {
            sv_push(&o->keys, first_key);
            sv_push(&o->values, s);
        } else if (s[0]) {
            sv_push(&o->keys, s);
            sv_push(&o->values, "on");
        }
        sb_free(&item);
        if (*p == '\0')
            break;
        p++;
    }
}

static const char *opts_get(const struct opts *o, const char *key)
{
    for (size_t i = 0; i < o->keys.n; i++)
        if (strcmp(o->keys.v[i], key) == 0)
            return o->values.v[i];
    return NULL;
}

/* The value of the first argv option (such as "-device") whose key (such as "id") is value. */
static const char *find_option(const struct strvec *argv, const char *option, const char *key,
                               const char *value, const char *first_key)
{
    for (size_t i = 0; i + 1 < argv->n; i++) {
        if (strcmp(argv->v[i], option) != 0)
            continue;
        struct opts o;
        opts_parse(argv->v[i + 1], first_key, &o);
        const char *v = opts_get(&o, key);
        bool match = v && strcmp(v, value) == 0;
        opts_free(&o);
        if (match)
            return argv->v[i + 1];
    }
    return NULL;
}

static const char *find_device(const struct strvec *argv, const char *id)
{
    return find_option(argv, "-device", "id", id, "driver");
}

/*
 * The -device that provides bus. A PCI bridge "pci.N" provides the bus of
 * its own id, and a SCSI controller "ID" provides "ID.0", for which
 * *child_bus is set.
 */
static const char *find_bus_owner(const struct strvec *argv, const char *bus, bool *child_bus)
{
    const char *dev = find_device(argv, bus);

    *child_bus = false;
    if (dev)
        return dev;
    const char *dot = strrchr(bus, '.');
    if (!dot || dot == bus || dot[1] == '\0' || strspn(dot + 1, "0123456789") != strlen(dot + 1))
        return NULL;
    char *id = qm_strndup(bus, (size_t)(dot - bus));
    dev = find_device(argv, id);
    free(id);
    *child_bus = dev != NULL;
    return dev;
}

/* Whether a -device other than except_id sits on a bus of parent_id ("ID" or "ID.N"). */
static bool bus_has_other_device(const struct strvec *argv, const char *parent_id,
                                 const char *except_id)
{
    size_t len = strlen(parent_id);

    for (size_t i = 0; i + 1 < argv->n; i++) {
        if (strcmp(argv->v[i], "-device") != 0)
            continue;
        struct opts o;
        opts_parse(argv->v[i + 1], "driver", &o);
        const char *bus = opts_get(&o, "bus");
        const char *id = opts_get(&o, "id");
        bool other = bus && strncmp(bus, parent_id, len) == 0 &&
                     (bus[len] == '\0' || bus[len] == '.') &&
                     !(id && strcmp(id, except_id) == 0);
        opts_free(&o);
        if (other)
            return true;
    }
    return false;
}

/* device_add arguments: every property as a JSON string, which QEMU converts as for -device. */
static char *device_add_args(const struct opts *o)
{
    struct strbuf sb = {0};

    sb_addc(&sb, '{');
    for (size_t i = 0; i < o->keys.n; i++) {
        if (i)
            sb_add(&sb, ", ");
        qm_json_add_string(&sb, o->keys.v[i]);
        sb_add(&sb, ": ");
        qm_json_add_string(&sb, o->values.v[i]);
    }
    sb_addc(&sb, '}');
    return sb_detach(&sb);
}

/* An HMP argument in double quotes, with quotes and backslashes escaped. */
static void add_hmp_quoted(struct strbuf *sb, const char *s)
{
    sb_addc(sb, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_addc(sb, '\\');
        sb_addc(sb, *s);
    }
    sb_addc(sb, '"');
}

static bool list_has(const struct strvec *list, const char *s)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->v[i], s) == 0)
            return true;
    return false;
}

/* ---- Operations and steps ---- */

static struct step *add_step(struct hotplug_op *op, enum step_kind kind, bool essential)
{
    op->steps = qm_realloc(op->steps, (op->nsteps + 1) * sizeof(*op->steps));
    struct step *s = &op->steps[op->nsteps++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->essential = essential;
    return s;
}

static void add_qmp_step(struct hotplug_op *op, const char *command, char *args, char *label,
                         bool essential)
{
    struct step *s = add_step(op, STEP_QMP, essential);
    s->command = qm_strdup(command);
    s->args = args;
    s->label = label;
}

static void add_hmp_step(struct hotplug_op *op, char *line, char *label, bool essential,
                         bool missing_ok)
{
    struct step *s = add_step(op, STEP_HMP, essential);
    s->args = line;
    s->label = label;
    s->missing_ok = missing_ok;
}

static void add_unplug_step(struct hotplug_op *op, const char *id, bool essential)
{
    struct step *s = add_step(op, STEP_UNPLUG, essential);
    s->device_id = qm_strdup(id);
    s->label = qm_sprintf("device_del %s", id);
    s->missing_ok = true;
}

static struct hotplug_op *op_new(struct qm_vm *vm, const char *key, struct qm_task *task,
                                 qm_hotplug_done_fn done, void *opaque)
{
    struct hotplug_op *op = qm_calloc(1, sizeof(*op));

    op->node = vm->node;
    op->vmid = vm->vmid;
    op->key = qm_strdup(key);
    op->task = task;
    op->done = done;
    op->opaque = opaque;
    return op;
}

static void op_free(struct hotplug_op *op)
{
    for (size_t i = 0; i < op->nsteps; i++) {
        free(op->steps[i].command);
        free(op->steps[i].args);
        free(op->steps[i].device_id);
        free(op->steps[i].label);
    }
    free(op->steps);
    sv_free(&op->argv);
    sv_free(&op->peripherals);
    sv_free(&op->objects);
    free(op->key);
    free(op);
}

/* Frees op once it has finished and every reply it waits for has arrived. */
static void op_release_if_idle(struct hotplug_op *op)
{
    if (op->finished && op->inflight == 0)
        op_free(op);
}

static void ignore_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
}

static void timer_close_cb(uv_handle_t *handle)
{
    free(handle);
}

static void stop_timer(struct hotplug_op *op)
{
    if (op->timer) {
        uv_close((uv_handle_t *)op->timer, timer_close_cb);
        op->timer = NULL;
    }
}

static void device_event_cb(struct qm_vm *vm, const struct qmp_event *event, void *opaque);

static void stop_watching(struct hotplug_op *op)
{
    struct qm_vm *vm = qm_node_find_vm(op->node, op->vmid);

    if (op->watching && vm)
        qm_vm_unwatch_events(vm, device_event_cb, op);
    op->watching = false;
}

static void finish(struct hotplug_op *op, const char *error)
{
    stop_timer(op);
    stop_watching(op);
    if (error && op->drive_added) {
        /* The device was not added: delete the drive that was added for it. */
        struct qm_vm *vm = qm_node_find_vm(op->node, op->vmid);
        char *line = qm_sprintf("drive_del drive-%s", op->key);
        char *args = qm_json_build("{\"command-line\": %s}", line);
        struct qm_error ignored;
        if (vm && qm_vm_qmp_command(vm, "human-monitor-command", args, ignore_reply_cb, NULL,
                                    &ignored) == 0)
            qm_task_log(op->task, "%s: %s", op->key, line);
        free(args);
        free(line);
    }
    op->finished = true;
    op->done(error, op->opaque);
    op_release_if_idle(op);
}

static void step_done(struct hotplug_op *op)
{
    op->next++;
    run_next(op);
}

static void step_failed(struct hotplug_op *op, const char *error)
{
    struct step *s = &op->steps[op->next];
    char *msg = qm_sprintf("%s failed: %s", s->label, error);

    if (s->essential) {
        finish(op, msg);
    } else {
        qm_task_warn(op->task, "%s: %s", op->key, msg);
        step_done(op);
    }
    free(msg);
}

/* Takes op's reference for a reply; false when op finished meanwhile and is now freed. */
static bool reply_arrived(struct hotplug_op *op)
{
    op->inflight--;
    if (op->finished) {
        op_release_if_idle(op);
        return false;
    }
    return true;
}

static void qmp_step_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct hotplug_op *op = opaque;

    if (!reply_arrived(op))
        return;
    struct step *s = &op->steps[op->next];
    if (reply->result == QMP_OK) {
        step_done(op);
    } else if (s->missing_ok && reply->error_class &&
               strcmp(reply->error_class, "DeviceNotFound") == 0) {
        step_done(op);
    } else {
        step_failed(op, reply->error_desc);
    }
}

static void hmp_step_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct hotplug_op *op = opaque;

    if (!reply_arrived(op))
        return;
    struct step *s = &op->steps[op->next];
    if (reply->result != QMP_OK) {
        step_failed(op, reply->error_desc);
        return;
    }
    /* HMP reports errors as text: drive_add prints "OK", drive_del nothing. */
    const char *out = YAJL_IS_STRING(reply->ret) ? YAJL_GET_STRING(reply->ret) : "";
    char *text = qm_strdup(out);
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    bool ok = len == 0 || strcmp(text, "OK") == 0 || (s->missing_ok && strstr(text, "not found"));
    if (ok) {
        if (qm_str_starts(s->args, "drive_add "))
            op->drive_added = true;
        step_done(op);
    } else {
        step_failed(op, text);
    }
    free(text);
}

static void unplug_complete(struct hotplug_op *op)
{
    stop_timer(op);
    stop_watching(op);
    step_done(op);
}

static void device_event_cb(struct qm_vm *vm, const struct qmp_event *event, void *opaque)
{
    struct hotplug_op *op = opaque;
    struct step *s = &op->steps[op->next];

    if (strcmp(event->name, "DEVICE_DELETED") != 0)
        return;
    const char *device = qm_json_get_string(event->data, "device");
    if (!device || strcmp(device, s->device_id) != 0)
        return;
    op->del_event = true;
    /* For SCSI devices QEMU may send the event before the reply to device_del. */
    if (op->del_replied)
        unplug_complete(op);
}

static void unplug_reply_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct hotplug_op *op = opaque;

    if (!reply_arrived(op))
        return;
    if (reply->result != QMP_OK) {
        stop_timer(op);
        stop_watching(op);
        if (reply->error_class && strcmp(reply->error_class, "DeviceNotFound") == 0)
            step_done(op);
        else
            step_failed(op, reply->error_desc);
        return;
    }
    op->del_replied = true;
    if (op->del_event)
        unplug_complete(op);
}

static void unplug_timeout_cb(uv_timer_t *timer)
{
    struct hotplug_op *op = timer->data;
    struct step *s = &op->steps[op->next];
    struct qm_vm *vm = qm_node_find_vm(op->node, op->vmid);
    char *msg = vm && qm_vm_is_running(vm)
                    ? qm_sprintf("device %s was not removed within %d s: the guest did not "
                                 "release it", s->device_id, QM_HOTPLUG_UNPLUG_TIMEOUT_MS / 1000)
                    : qm_sprintf("the VM stopped before device %s was removed", s->device_id);

    stop_timer(op);
    stop_watching(op);
    /* The next step waits for the reply to device_del, which it would take for its own. */
    if (s->essential || !op->del_replied) {
        finish(op, msg);
    } else {
        qm_task_warn(op->task, "%s: %s", op->key, msg);
        step_done(op);
    }
    free(msg);
}

static void run_unplug(struct hotplug_op *op, struct qm_vm *vm, struct step *s)
{
    struct qm_error err;
    char *args = qm_json_build("{\"id\": %s}", s->device_id);

    op->del_replied = false;
    op->del_event = false;
    /* Watch first: the event may arrive before the reply to device_del. */
    qm_vm_watch_events(vm, device_event_cb, op);
    op->watching = true;
    op->timer = qm_malloc(sizeof(*op->timer));
    uv_timer_init(op->node->loop, op->timer);
    op->timer->data = op;
    uv_timer_start(op->timer, unplug_timeout_cb, QM_HOTPLUG_UNPLUG_TIMEOUT_MS, 0);
    int r = qm_vm_qmp_command(vm, "device_del", args, unplug_reply_cb, op, &err);
    free(args);
    if (r < 0) {
        stop_timer(op);
        stop_watching(op);
        step_failed(op, err.msg);
        return;
    }
    op->inflight++;
}

static void run_next(struct hotplug_op *op)
{
    struct qm_error err;

    if (op->next >= op->nsteps) {
        finish(op, NULL);
        return;
    }
    struct qm_vm *vm = qm_node_find_vm(op->node, op->vmid);
    if (!vm || !qm_vm_is_running(vm)) {
        finish(op, "the VM is no longer running");
        return;
    }
    struct step *s = &op->steps[op->next];
    qm_task_log(op->task, "%s: %s", op->key, s->label);
    int r = 0;
    if (s->kind == STEP_UNPLUG) {
        run_unplug(op, vm, s);
        return;
    } else if (s->kind == STEP_QMP) {
        r = qm_vm_qmp_command(vm, s->command, s->args, qmp_step_cb, op, &err);
    } else {
        char *args = qm_json_build("{\"command-line\": %s}", s->args);
        r = qm_vm_qmp_command(vm, "human-monitor-command", args, hmp_step_cb, op, &err);
        free(args);
    }
    if (r < 0) {
        step_failed(op, err.msg);
        return;
    }
    op->inflight++;
}

/* ---- Planning ---- */

/* Generates the cold command line of main with key set to value (or as it is when NULL). */
static int build_cold_argv(struct hotplug_op *op, struct qm_vm *vm,
                           const struct qm_conf_section *main, const char *value,
                           struct qm_error *err)
{
    struct qm_conf *conf = qm_conf_new(vm->vmid);
    struct strvec warnings = {0};

    for (size_t i = 0; i < main->n; i++)
        qm_conf_set(&conf->main, main->entries[i].key, main->entries[i].value);
    if (value)
        qm_conf_set(&conf->main, op->key, value);
    /*
     * NOTE: the line follows the configured machine type; a VM started with
     * an older default machine version gets the options of the current one.
     */
    int r = qm_vm_build_cmdline(&vm->node->paths, &vm->node->host, &vm->node->caps, conf,
                                &op->argv, &warnings, err);
    sv_free(&warnings);
    qm_conf_free(conf);
    return r;
}

/* The -drive value of the drive, or NULL with err when the line has none. */
static const char *cold_drive(const struct hotplug_op *op, struct qm_error *err)
{
    char *id = qm_sprintf("drive-%s", op->key);
    const char *drive = find_option(&op->argv, "-drive", "id", id, "file");
    bool blockdev = false;

    for (size_t i = 0; !drive && i + 1 < op->argv.n; i++) {
        if (strcmp(op->argv.v[i], "-blockdev") == 0 && strstr(op->argv.v[i + 1], id))
            blockdev = true;
    }
    free(id);
    if (drive)
        return drive;
    if (blockdev)
        qm_fail(err, 501, "hotplug of drives that QEMU opens with -blockdev (machine version "
                          "10.0 or later) is not implemented");
    else
        qm_fail(err, 500, "the command line has no drive for %s", op->key);
    return NULL;
}

/* Adds an object-add step for iothread id unless the VM has it already. */
static void plan_iothread(struct hotplug_op *op, const char *id)
{
    if (!id || list_has(&op->objects, id))
        return;
    add_qmp_step(op, "object-add", qm_json_build("{\"qom-type\": \"iothread\", \"id\": %s}", id),
                 qm_sprintf("object-add %s (iothread)", id), true);
    sv_push(&op->objects, id);
}

/* Adds the steps for a -device value: its iothread, then device_add. */
static void plan_device_add(struct hotplug_op *op, const char *text)
{
    struct opts o;

    opts_parse(text, "driver", &o);
    plan_iothread(op, opts_get(&o, "iothread"));
    add_qmp_step(op, "device_add", device_add_args(&o),
                 qm_sprintf("device_add %s (%s)", opts_get(&o, "id"), opts_get(&o, "driver")),
                 true);
    opts_free(&o);
}

/* Plans the addition once the VM's devices and objects are known. */
static int plan_add(struct hotplug_op *op, struct qm_error *err)
{
    const char *device = find_device(&op->argv, op->key);
    const char *parents[MAX_PARENTS];
    size_t nparents = 0;

    if (!device)
        return qm_fail(err, 500, "the command line has no device %s", op->key);
    if (list_has(&op->peripherals, op->key))
        return qm_fail(err, 409, "the VM already has a device %s", op->key);
    const char *drive = cold_drive(op, err);
    if (!drive)
        return -1;
    /* The bridge and controller that device sits on, nearest first. */
    const char *child = device;
    while (nparents < MAX_PARENTS) {
        struct opts o;
        bool child_bus;
        opts_parse(child, "driver", &o);
        const char *bus = opts_get(&o, "bus");
        const char *parent = bus ? find_bus_owner(&op->argv, bus, &child_bus) : NULL;
        opts_free(&o);
        if (!parent)
            break;
        parents[nparents++] = parent;
        child = parent;
    }
    for (size_t i = nparents; i-- > 0;) {
        struct opts o;
        opts_parse(parents[i], "driver", &o);
        const char *id = opts_get(&o, "id");
        bool present = id && list_has(&op->peripherals, id);
        opts_free(&o);
        if (!present)
            plan_device_add(op, parents[i]);
    }
    struct strbuf line = {0};
    sb_add(&line, "drive_add auto ");
    add_hmp_quoted(&line, drive);
    add_hmp_step(op, sb_detach(&line), qm_sprintf("drive_add drive-%s", op->key), true, false);
    plan_device_add(op, device);
    return 0;
}

/* Collects the child names of a qom-list reply into list. */
static void collect_children(const struct qmp_reply *reply, struct strvec *list)
{
    for (size_t i = 0; YAJL_IS_ARRAY(reply->ret) && i < reply->ret->u.array.len; i++) {
        yajl_val item = reply->ret->u.array.values[i];
        const char *name = qm_json_get_string(item, "name");
        const char *type = qm_json_get_string(item, "type");
        if (name && type && qm_str_starts(type, "child<"))
            sv_push(list, name);
    }
}

static void objects_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct hotplug_op *op = opaque;
    struct qm_error err;

    if (!reply_arrived(op))
        return;
    if (reply->result != QMP_OK) {
        char *msg = qm_sprintf("qom-list /objects failed: %s", reply->error_desc);
        finish(op, msg);
        free(msg);
        return;
    }
    collect_children(reply, &op->objects);
    if (plan_add(op, &err) < 0) {
        finish(op, err.msg);
        return;
    }
    run_next(op);
}

static void peripherals_cb(struct qmp *qmp, const struct qmp_reply *reply, void *opaque)
{
    struct hotplug_op *op = opaque;
    struct qm_error err;

    if (!reply_arrived(op))
        return;
    if (reply->result != QMP_OK) {
        char *msg = qm_sprintf("qom-list /machine/peripheral failed: %s", reply->error_desc);
        finish(op, msg);
        free(msg);
        return;
    }
    collect_children(reply, &op->peripherals);
    struct qm_vm *vm = qm_node_find_vm(op->node, op->vmid);
    int r = vm ? qm_vm_qmp_command(vm, "qom-list", "{\"path\": \"/objects\"}", objects_cb, op,
                                   &err)
               : qm_fail(&err, 409, "VM %d is not running", op->vmid);
    if (r < 0) {
        finish(op, err.msg);
        return;
    }
    op->inflight++;
}

void qm_hotplug_disk_add(struct qm_vm *vm, const struct qm_conf_section *main, const char *key,
                         const char *value, struct qm_task *task, qm_hotplug_done_fn done,
                         void *opaque)
{
    struct hotplug_op *op = op_new(vm, key, task, done, opaque);
    struct qm_error err;
    const char *reason;

    if (!qm_hotplug_disk_supported(main, key, &reason)) {
        finish(op, reason);
        return;
    }
    if (build_cold_argv(op, vm, main, value, &err) < 0 ||
        qm_vm_qmp_command(vm, "qom-list", "{\"path\": \"/machine/peripheral\"}",
                          peripherals_cb, op, &err) < 0) {
        finish(op, err.msg);
        return;
    }
    op->inflight++;
}

/* Plans the removal of the device, its drive, and a controller and iothread only it uses. */
static int plan_remove(struct hotplug_op *op, struct qm_error *err)
{
    const char *device = find_device(&op->argv, op->key);
    struct opts dev = {0};

    if (!device)
        return qm_fail(err, 500, "the command line has no device %s", op->key);
    const char *drive = cold_drive(op, err);
    if (!drive)
        return -1;
    add_unplug_step(op, op->key, true);
    add_hmp_step(op, qm_sprintf("drive_del drive-%s", op->key),
                 qm_sprintf("drive_del drive-%s", op->key), true, true);
    opts_parse(device, "driver", &dev);
    const char *iothread = opts_get(&dev, "iothread");
    if (iothread)
        add_qmp_step(op, "object-del", qm_json_build("{\"id\": %s}", iothread),
                     qm_sprintf("object-del %s", iothread), false);
    /* A SCSI controller (a bus "ID.0", not a bridge) that serves no other drive goes too. */
    const char *bus = opts_get(&dev, "bus");
    bool child_bus = false;
    const char *parent = bus ? find_bus_owner(&op->argv, bus, &child_bus) : NULL;
    if (parent && child_bus) {
        struct opts ctl;
        opts_parse(parent, "driver", &ctl);
        const char *id = opts_get(&ctl, "id");
        if (id && !bus_has_other_device(&op->argv, id, op->key)) {
            add_unplug_step(op, id, false);
            const char *ctl_iothread = opts_get(&ctl, "iothread");
            if (ctl_iothread)
                add_qmp_step(op, "object-del", qm_json_build("{\"id\": %s}", ctl_iothread),
                             qm_sprintf("object-del %s", ctl_iothread), false);
        }
        opts_free(&ctl);
    }
    opts_free(&dev);
    return 0;
}

void qm_hotplug_disk_remove(struct qm_vm *vm, const struct qm_conf_section *main,
                            const char *key, struct qm_task *task, qm_hotplug_done_fn done,
                            void *opaque)
{
    struct hotplug_op *op = op_new(vm, key, task, done, opaque);
    struct qm_error err;
    const char *reason;

    if (!qm_hotplug_disk_supported(main, key, &reason)) {
        finish(op, reason);
        return;
    }
    if (!qm_conf_get(main, key)) {
        finish(op, "the drive is not in the current configuration");
        return;
    }
    if (build_cold_argv(op, vm, main, NULL, &err) < 0 || plan_remove(op, &err) < 0) {
        finish(op, err.msg);
        return;
    }
    run_next(op);
}

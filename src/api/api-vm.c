/* API handlers under /nodes/{node}/qemu: list, create, config, status, power. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qm/config.h"
#include "qm/json.h"
#include "qm/qemu.h"
#include "qm/qmp.h"
#include "qm/storage.h"
#include "qm/vm.h"
#include "api.h"
#include "api-disk.h"

/* Parameters of create and config calls that are not configuration properties. */
static const char *const non_config_params[] = {
    "node", "vmid", "start", "pool", "storage", "digest", "delete", "revert", "skiplock",
    "force", "background_delay", "unique", "archive", "bwlimit", "live-restore",
    "ha-managed", "import-working-storage",
};

/* Keys whose values the API returns as JSON numbers, as Proxmox VE does. */
static const char *const numeric_keys[] = {
    "acpi", "autostart", "balloon", "cores", "cpulimit", "cpuunits", "freeze", "keephugepages",
    "kvm", "localtime", "migrate_downtime", "migrate_speed", "numa", "onboot", "protection",
    "reboot", "shares", "smp", "sockets", "tablet", "template", "vcpus",
};

static bool in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0)
            return true;
    }
    return false;
}

static bool is_number(const char *s)
{
    long long v;

    if (*s == '-')
        s++;
    return qm_parse_int(s, &v);
}

static void add_value(struct strbuf *sb, const char *key, const char *value)
{
    if (in_list(numeric_keys, QM_ARRAY_SIZE(numeric_keys), key) && is_number(value))
        sb_add(sb, value);
    else
        qm_json_add_string(sb, value);
}

static bool vm_exists(struct api_call *call, int vmid)
{
    char *path = qm_conf_path(&call->node->paths, vmid);
    bool exists = access(path, F_OK) == 0;

    free(path);
    return exists;
}

/* Loads the VM's configuration or ends the call with a 404 or 500. */
static struct qm_conf *load_conf(struct api_call *call)
{
    struct qm_conf *conf = NULL;
    struct qm_error err;

    if (qm_conf_load(&call->node->paths, call->vmid, &conf, &err) < 0) {
        if (err.code == 404)
            api_fail(call, 500, "Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist",
                     call->node->name, call->vmid);
        else
            api_fail_error(call, &err);
        return NULL;
    }
    return conf;
}

/* The memory of a configuration in MiB ("memory" may be "current=N"). */
static long long conf_memory_mib(const struct qm_conf *conf)
{
    const char *value = qm_conf_get(&conf->main, "memory");

    if (!value)
        return 512;
    const char *eq = strchr(value, '=');
    return strtoll(eq ? eq + 1 : value, NULL, 10);
}

static long long conf_int(const struct qm_conf *conf, const char *key, long long fallback)
{
    const char *value = qm_conf_get(&conf->main, key);
    long long n;

    return value && qm_parse_int(value, &n) ? n : fallback;
}

static long long conf_cpus(const struct qm_conf *conf)
{
    long long vcpus = conf_int(conf, "vcpus", 0);

    if (vcpus > 0)
        return vcpus;
    return conf_int(conf, "sockets", 1) * conf_int(conf, "cores", 1);
}

/* The size= of a drive value in bytes, or 0 for a CD-ROM or a drive without one. */
static unsigned long long drive_size(const char *key, const char *value)
{
    struct qm_propstr ps = {0};
    unsigned long long bytes = 0;

    if (!value || qm_propstr_parse(key, value, &ps, NULL) < 0)
        return 0;
    const char *media = qm_propstr_get(&ps, "media");
    const char *size = qm_propstr_get(&ps, "size");
    if (size && !(media && strcmp(media, "cdrom") == 0) && !qm_conf_parse_size(size, &bytes))
        bytes = 0;
    qm_propstr_free(&ps);
    return bytes;
}

/*
 * The size of the boot disk, as Proxmox VE reports it as maxdisk: the first
 * disk of "boot: order=..." (or the legacy bootdisk) that has a size.
 */
static unsigned long long boot_disk_size(const struct qm_conf *conf)
{
    const char *boot = qm_conf_get(&conf->main, "boot");
    const char *legacy = qm_conf_get(&conf->main, "bootdisk");
    const char *order = boot ? strstr(boot, "order=") : NULL;
    unsigned long long bytes = 0;

    if (order) {
        char *list = qm_strdup(order + strlen("order="));
        char *save = NULL;
        list[strcspn(list, ",")] = '\0';
        for (char *dev = strtok_r(list, ";", &save); dev && !bytes;
             dev = strtok_r(NULL, ";", &save)) {
            if (qm_conf_is_drive_key(dev))
                bytes = drive_size(dev, qm_conf_get(&conf->main, dev));
        }
        free(list);
    } else if (legacy && qm_conf_is_drive_key(legacy)) {
        bytes = drive_size(legacy, qm_conf_get(&conf->main, legacy));
    }
    return bytes;
}

/* Appends the runtime figures shared by the list and status calls. */
static void add_vm_status(struct strbuf *sb, struct api_call *call, const struct qm_conf *conf,
                          int vmid)
{
    struct qm_vm *vm = qm_node_find_vm(call->node, vmid);
    /* As in Proxmox VE, a VM is running once its QEMU process exists. */
    bool running = vm && vm->pid > 0;
    const char *name = qm_conf_get(&conf->main, "name");
    const char *lock = qm_conf_get(&conf->main, "lock");
    const char *tags = qm_conf_get(&conf->main, "tags");

    sb_addf(sb, "\"vmid\":%d,\"status\":\"%s\"", vmid, running ? "running" : "stopped");
    sb_add(sb, ",\"name\":");
    if (name) {
        qm_json_add_string(sb, name);
    } else {
        char *fallback = qm_sprintf("VM %d", vmid);
        qm_json_add_string(sb, fallback);
        free(fallback);
    }
    sb_addf(sb, ",\"cpus\":%lld,\"maxmem\":%lld", conf_cpus(conf),
            conf_memory_mib(conf) * 1024 * 1024);
    sb_addf(sb, ",\"maxdisk\":%llu,\"disk\":0,\"netin\":0,\"netout\":0,\"diskread\":0,"
                "\"diskwrite\":0", boot_disk_size(conf));
    if (running) {
        sb_addf(sb, ",\"pid\":%d,\"uptime\":%lld,\"mem\":%llu,\"cpu\":%.4f", (int)vm->pid,
                vm->start_time ? (long long)(time(NULL) - vm->start_time) : 0LL,
                qm_vm_rss(vm), qm_vm_cpu_usage(vm, conf_cpus(conf)));
        sb_add(sb, ",\"qmpstatus\":");
        qm_json_add_string(sb, vm->qmpstatus);
        if (vm->running_qemu) {
            sb_add(sb, ",\"running-qemu\":");
            qm_json_add_string(sb, vm->running_qemu);
        }
    } else {
        sb_add(sb, ",\"uptime\":0,\"mem\":0,\"cpu\":0,\"qmpstatus\":\"stopped\"");
    }
    if (lock) {
        sb_add(sb, ",\"lock\":");
        qm_json_add_string(sb, lock);
    }
    if (tags) {
        sb_add(sb, ",\"tags\":");
        qm_json_add_string(sb, tags);
    }
    if (conf_int(conf, "template", 0))
        sb_add(sb, ",\"template\":1");
}

void api_vm_list(struct api_call *call)
{
    struct strbuf sb = {0};
    size_t n;
    int *ids = qm_node_list_vmids(call->node, &n);

    sb_addc(&sb, '[');
    for (size_t i = 0; i < n; i++) {
        const struct qm_conf *conf = api_conf_cached(call->node, ids[i], NULL);
        if (!conf)
            continue;
        if (sb.len > 1)
            sb_addc(&sb, ',');
        sb_addc(&sb, '{');
        add_vm_status(&sb, call, conf, ids[i]);
        sb_addc(&sb, '}');
    }
    sb_addc(&sb, ']');
    free(ids);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

void api_cluster_resources(struct api_call *call)
{
    const char *type = api_param(call, "type");
    struct strbuf sb = {0};
    size_t n;

    if (type && strcmp(type, "vm") != 0 && strcmp(type, "node") != 0 &&
        strcmp(type, "storage") != 0 && strcmp(type, "sdn") != 0) {
        api_param_error(call, "type", "value '%s' does not have a value in the enumeration "
                                      "'vm, storage, node, sdn'", type);
        api_param_errors_reply(call);
        return;
    }
    sb_addc(&sb, '[');
    if (!type || strcmp(type, "vm") == 0) {
        int *ids = qm_node_list_vmids(call->node, &n);
        for (size_t i = 0; i < n; i++) {
            const struct qm_conf *conf = api_conf_cached(call->node, ids[i], NULL);
            if (!conf)
                continue;
            if (sb.len > 1)
                sb_addc(&sb, ',');
            sb_addf(&sb, "{\"id\":\"qemu/%d\",\"type\":\"qemu\",\"node\":", ids[i]);
            qm_json_add_string(&sb, call->node->name);
            sb_addf(&sb, ",\"maxcpu\":%lld,", conf_cpus(conf));
            add_vm_status(&sb, call, conf, ids[i]);
            sb_addc(&sb, '}');
        }
        free(ids);
    }
    if (!type || strcmp(type, "node") == 0) {
        if (sb.len > 1)
            sb_addc(&sb, ',');
        sb_add(&sb, "{\"id\":");
        char *id = qm_sprintf("node/%s", call->node->name);
        qm_json_add_string(&sb, id);
        free(id);
        sb_add(&sb, ",\"type\":\"node\",\"status\":\"online\",\"node\":");
        qm_json_add_string(&sb, call->node->name);
        sb_addf(&sb, ",\"maxcpu\":%ld}", sysconf(_SC_NPROCESSORS_ONLN));
    }
    sb_addc(&sb, ']');
    api_reply(call, sb.buf);
    sb_free(&sb);
}

/* The lowest free VM id from 100 on, or whether the vmid parameter is free. */
void api_cluster_nextid(struct api_call *call)
{
    long long requested = api_param_int(call, "vmid", 100, 999999999, 0);
    char text[32];
    size_t n;

    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    if (requested) {
        if (vm_exists(call, (int)requested)) {
            api_fail(call, 400, "VM %lld already exists", requested);
            return;
        }
        snprintf(text, sizeof(text), "\"%lld\"", requested);
        api_reply(call, text);
        return;
    }
    int *ids = qm_node_list_vmids(call->node, &n);
    int next = 100;
    for (size_t i = 0; i < n && ids[i] <= next; i++) {
        if (ids[i] == next)
            next++;
    }
    free(ids);
    snprintf(text, sizeof(text), "\"%d\"", next);
    api_reply(call, text);
}

void api_vm_index(struct api_call *call)
{
    if (!vm_exists(call, call->vmid)) {
        api_fail(call, 500, "Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist",
                 call->node->name, call->vmid);
        return;
    }
    api_reply(call, "[{\"subdir\":\"config\"},{\"subdir\":\"pending\"},{\"subdir\":\"status\"},"
                    "{\"subdir\":\"unlink\"},{\"subdir\":\"monitor\"},{\"subdir\":\"showcmd\"}]");
}

void api_vm_status_index(struct api_call *call)
{
    api_reply(call, "[{\"subdir\":\"current\"},{\"subdir\":\"start\"},{\"subdir\":\"stop\"},"
                    "{\"subdir\":\"reset\"},{\"subdir\":\"shutdown\"},{\"subdir\":\"suspend\"},"
                    "{\"subdir\":\"reboot\"},{\"subdir\":\"resume\"}]");
}

void api_vm_status_current(struct api_call *call)
{
    struct qm_error err;
    const struct qm_conf *conf = api_conf_cached(call->node, call->vmid, &err);
    struct strbuf sb = {0};

    if (!conf) {
        if (err.code == 404)
            api_fail(call, 500, "Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist",
                     call->node->name, call->vmid);
        else
            api_fail_error(call, &err);
        return;
    }
    sb_addc(&sb, '{');
    add_vm_status(&sb, call, conf, call->vmid);
    const char *agent = qm_conf_get(&conf->main, "agent");
    bool agent_on = agent && (agent[0] == '1' || strstr(agent, "enabled=1"));
    sb_addf(&sb, ",\"agent\":%d,\"ha\":{\"managed\":0}", agent_on ? 1 : 0);
    sb_addc(&sb, '}');
    api_reply(call, sb.buf);
    sb_free(&sb);
}

/*
 * Validates every configuration parameter of the call, recording a
 * parameter error for each bad one. Returns whether all are valid.
 */
static bool check_config_params(struct api_call *call)
{
    struct qm_error err;
    bool ok = true;

    for (size_t i = 0; i < call->keys.n; i++) {
        const char *key = call->keys.v[i];
        if (in_list(non_config_params, QM_ARRAY_SIZE(non_config_params), key))
            continue;
        /* import-from= is accepted by create and config calls only, so the schema lacks it. */
        char *import = NULL;
        char *value = disk_split_import_from(call->values.v[i], &import);
        if (qm_conf_check_property(key, import ? value : call->values.v[i], &err) < 0) {
            api_param_error(call, key, "%s", err.msg);
            ok = false;
        }
        free(value);
        free(import);
    }
    return ok;
}

/*
 * Gives a network device without a MAC address a random one with the
 * prefix Proxmox VE uses (BC:24:11), as "MODEL=MAC,...". Returns a new value
 * or NULL when value already has an address.
 */
static char *add_mac_address(const char *key, const char *value)
{
    static const char *const models[] = {
        "e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551",
        "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio",
        "vmxnet3",
    };
    long long index;

    if (!qm_str_starts(key, "net") || !qm_parse_int(key + 3, &index))
        return NULL;
    size_t len = strcspn(value, ",");
    char *first = qm_strndup(value, len);
    bool bare_model = in_list(models, QM_ARRAY_SIZE(models), first);
    bool model_key = qm_str_starts(first, "model=");
    if (!bare_model && !model_key) {
        free(first);
        return NULL;
    }
    if (model_key && strstr(value, "macaddr=")) {
        free(first);
        return NULL;
    }
    unsigned char raw[3] = {0};
    FILE *f = fopen("/dev/urandom", "re");
    if (f) {
        if (fread(raw, 1, sizeof(raw), f) != sizeof(raw))
            memset(raw, 0, sizeof(raw));
        fclose(f);
    }
    const char *model = bare_model ? first : first + strlen("model=");
    char *result = qm_sprintf("%s=BC:24:11:%02X:%02X:%02X%s", model, raw[0], raw[1], raw[2],
                              value + len);
    free(first);
    return result;
}

static void reply_upid(struct api_call *call, const struct qm_task *task)
{
    struct strbuf sb = {0};

    qm_json_add_string(&sb, task->upid);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

/* The state of a create task, kept until its disks exist. */
struct create_job {
    struct qm_node *node;
    int vmid;
    bool start;
    char *user;
    struct strvec disk_keys;    /* keys left out of the placeholder until their volumes exist */
};

/* Writes the final configuration: the new volumes in place and no "lock: create". */
static int create_commit(struct disk_update *update, void *opaque, struct qm_error *err)
{
    struct create_job *job = opaque;
    struct qm_conf *conf = NULL;

    if (qm_conf_load(&job->node->paths, job->vmid, &conf, err) < 0)
        return -1;
    for (size_t i = 0; i < job->disk_keys.n; i++)
        qm_conf_set(&conf->main, job->disk_keys.v[i],
                    disk_update_value(update, job->disk_keys.v[i]));
    qm_conf_unset(&conf->main, "lock");
    int r = qm_conf_store(&job->node->paths, conf, err);
    qm_conf_free(conf);
    return r;
}

static void create_finish(struct disk_update *update, void *opaque, const char *error)
{
    struct create_job *job = opaque;
    struct qm_error err;

    if (error) {
        /* The VM never came to be: drop its placeholder configuration. */
        char *path = qm_conf_path(&job->node->paths, job->vmid);
        unlink(path);
        free(path);
        qm_node_forget_vm(job->node, job->vmid);
    } else {
        qm_log(QM_LOG_INFO, job->vmid, "created by %s", job->user);
        if (job->start) {
            struct qm_vm_op_params params = {.timeout = -1};
            struct qm_vm *vm = qm_node_get_vm(job->node, job->vmid);
            if (!qm_vm_queue(vm, QM_OP_START, &params, job->user, &err))
                qm_log(QM_LOG_ERR, job->vmid, "unable to start after create: %s", err.msg);
        }
    }
    free(job->user);
    sv_free(&job->disk_keys);
    free(job);
}

void api_vm_create(struct api_call *call)
{
    struct qm_error err;
    long long vmid = api_param_int(call, "vmid", 100, 999999999, 0);
    bool start = api_param_bool(call, "start", false);

    if (!api_param(call, "vmid"))
        api_param_error(call, "vmid", "property is missing and it is not optional");
    check_config_params(call);
    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    call->vmid = (int)vmid;
    if (vm_exists(call, call->vmid)) {
        api_fail(call, 500, "unable to create VM %d: config file already exists", call->vmid);
        return;
    }
    const char *busy = qm_storage_vm_busy(call->vmid);
    if (busy) {
        api_fail(call, 409, "unable to create VM %d: its disks are still being freed (%s)",
                 call->vmid, busy);
        return;
    }

    struct qm_conf *conf = qm_conf_new(call->vmid);
    for (size_t i = 0; i < call->keys.n; i++) {
        const char *key = call->keys.v[i];
        if (in_list(non_config_params, QM_ARRAY_SIZE(non_config_params), key))
            continue;
        char *with_mac = add_mac_address(key, call->values.v[i]);
        qm_conf_set(&conf->main, key, with_mac ? with_mac : call->values.v[i]);
        free(with_mac);
    }
    struct disk_update *update = disk_update_new(call->node, call->vmid, &err);
    if (!update) {
        qm_conf_free(conf);
        api_fail_error(call, &err);
        return;
    }
    struct strvec disk_keys = {0};
    for (size_t i = 0; i < conf->main.n; i++) {
        const struct qm_conf_entry *e = &conf->main.entries[i];
        int planned = disk_update_plan(update, conf, e->key, e->value,
                                       api_param(call, "storage"), &err);
        if (planned < 0)
            api_param_error(call, e->key, "%s", err.msg);
        else if (planned > 0)
            sv_push(&disk_keys, e->key);
    }
    for (size_t i = 0; i < disk_keys.n; i++)
        qm_conf_unset(&conf->main, disk_keys.v[i]);
    if (api_has_param_errors(call)) {
        sv_free(&disk_keys);
        disk_update_free(update);
        qm_conf_free(conf);
        api_param_errors_reply(call);
        return;
    }
    if (!qm_conf_get(&conf->main, "smbios1")) {
        /* Proxmox VE gives every new VM a unique SMBIOS UUID. */
        unsigned char raw[16];
        FILE *f = fopen("/dev/urandom", "re");
        if (f && fread(raw, 1, sizeof(raw), f) == sizeof(raw)) {
            raw[6] = (unsigned char)((raw[6] & 0x0f) | 0x40);
            raw[8] = (unsigned char)((raw[8] & 0x3f) | 0x80);
            char *uuid = qm_sprintf("uuid=%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                                    "%02x%02x%02x%02x%02x%02x",
                                    raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6],
                                    raw[7], raw[8], raw[9], raw[10], raw[11], raw[12], raw[13],
                                    raw[14], raw[15]);
            qm_conf_set(&conf->main, "smbios1", uuid);
            free(uuid);
        }
        if (f)
            fclose(f);
    }
    char id[16];
    snprintf(id, sizeof(id), "%d", call->vmid);
    struct qm_task *task = qm_task_start(&call->node->tasks, "qmcreate", id, call->user, &err);
    if (!task) {
        sv_free(&disk_keys);
        disk_update_free(update);
        qm_conf_free(conf);
        api_fail_error(call, &err);
        return;
    }
    /* The placeholder reserves the id while the disks are made, as Proxmox VE does. */
    if (disk_update_has_work(update))
        qm_conf_set(&conf->main, "lock", "create");
    int r = qm_mkdir_p(call->node->paths.conf_dir, 0755, &err);
    if (r == 0)
        r = qm_conf_store(&call->node->paths, conf, &err);
    qm_conf_free(conf);
    if (r < 0) {
        sv_free(&disk_keys);
        disk_update_free(update);
        qm_task_finish(task, err.msg);
        api_fail_error(call, &err);
        return;
    }
    struct create_job *job = qm_calloc(1, sizeof(*job));
    job->disk_keys = disk_keys;
    job->node = call->node;
    job->vmid = call->vmid;
    job->start = start;
    job->user = qm_strdup(call->user);
    reply_upid(call, task);
    disk_update_run(update, task, create_commit, create_finish, job);
}

/* Appends "key":value members of a section, skipping keys in skip (may be NULL). */
static void add_section(struct strbuf *sb, const struct qm_conf_section *section,
                        const struct qm_conf_section *overlay, const char *deleted)
{
    for (size_t i = 0; i < section->n; i++) {
        const char *key = section->entries[i].key;
        if (overlay && qm_conf_get(overlay, key))
            continue;
        if (deleted) {
            struct strvec list = {0};
            bool gone = false;
            char *copy = qm_strdup(deleted);
            char *save = NULL;
            for (char *k = strtok_r(copy, ",; ", &save); k; k = strtok_r(NULL, ",; ", &save)) {
                if (strcmp(k[0] == '!' ? k + 1 : k, key) == 0)
                    gone = true;
            }
            free(copy);
            sv_free(&list);
            if (gone)
                continue;
        }
        if (sb->len > 1)
            sb_addc(sb, ',');
        qm_json_add_string(sb, key);
        sb_addc(sb, ':');
        add_value(sb, key, section->entries[i].value);
    }
}

void api_vm_config_get(struct api_call *call)
{
    bool current = api_param_bool(call, "current", false);
    const char *snapshot = api_param(call, "snapshot");
    struct strbuf sb = {0};

    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    struct qm_conf *conf = load_conf(call);
    if (!conf)
        return;
    const struct qm_conf_section *section = &conf->main;
    if (snapshot) {
        if (current) {
            qm_conf_free(conf);
            api_fail(call, 400, "'current' and 'snapshot' cannot be used together");
            return;
        }
        section = NULL;
        for (size_t i = 0; i < conf->nsnapshots; i++) {
            if (strcmp(conf->snapshots[i].name, snapshot) == 0)
                section = &conf->snapshots[i];
        }
        if (!section) {
            qm_conf_free(conf);
            api_fail(call, 500, "snapshot '%s' does not exist", snapshot);
            return;
        }
    }
    sb_addc(&sb, '{');
    if (!current && !snapshot && conf->pending) {
        const char *deleted = qm_conf_get(conf->pending, "delete");
        add_section(&sb, &conf->main, conf->pending, deleted);
        for (size_t i = 0; i < conf->pending->n; i++) {
            const char *key = conf->pending->entries[i].key;
            if (strcmp(key, "delete") == 0)
                continue;
            if (sb.len > 1)
                sb_addc(&sb, ',');
            qm_json_add_string(&sb, key);
            sb_addc(&sb, ':');
            add_value(&sb, key, conf->pending->entries[i].value);
        }
    } else {
        add_section(&sb, section, NULL, NULL);
    }
    if (sb.len > 1)
        sb_addc(&sb, ',');
    sb_add(&sb, "\"digest\":");
    qm_json_add_string(&sb, conf->digest);
    sb_addc(&sb, '}');
    qm_conf_free(conf);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

void api_vm_pending_get(struct api_call *call)
{
    struct qm_conf *conf = load_conf(call);
    struct strbuf sb = {0};

    if (!conf)
        return;
    const struct qm_conf_section *pending = conf->pending;
    const char *deleted = pending ? qm_conf_get(pending, "delete") : NULL;
    sb_addc(&sb, '[');
    for (size_t i = 0; i < conf->main.n; i++) {
        const char *key = conf->main.entries[i].key;
        if (sb.len > 1)
            sb_addc(&sb, ',');
        sb_add(&sb, "{\"key\":");
        qm_json_add_string(&sb, key);
        sb_add(&sb, ",\"value\":");
        add_value(&sb, key, conf->main.entries[i].value);
        const char *change = pending ? qm_conf_get(pending, key) : NULL;
        if (change) {
            sb_add(&sb, ",\"pending\":");
            add_value(&sb, key, change);
        }
        if (deleted) {
            /* "!key" in the delete list means a forced delete. */
            char *copy = qm_strdup(deleted);
            char *save = NULL;
            for (char *k = strtok_r(copy, ",; ", &save); k; k = strtok_r(NULL, ",; ", &save)) {
                bool force = k[0] == '!';
                if (strcmp(force ? k + 1 : k, key) == 0)
                    sb_addf(&sb, ",\"delete\":%d", force ? 2 : 1);
            }
            free(copy);
        }
        sb_addc(&sb, '}');
    }
    for (size_t i = 0; pending && i < pending->n; i++) {
        const char *key = pending->entries[i].key;
        if (strcmp(key, "delete") == 0 || qm_conf_get(&conf->main, key))
            continue;
        if (sb.len > 1)
            sb_addc(&sb, ',');
        sb_add(&sb, "{\"key\":");
        qm_json_add_string(&sb, key);
        sb_add(&sb, ",\"pending\":");
        add_value(&sb, key, pending->entries[i].value);
        sb_addc(&sb, '}');
    }
    sb_addc(&sb, ']');
    qm_conf_free(conf);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

/* Options that take effect at once even on a running VM, as in Proxmox VE. */
static const char *const direct_keys[] = {
    "name", "description", "onboot", "tags", "protection", "startup", "lock", "template",
    "hookscript", "boot",
};

/* Adds key to the pending delete list (or removes it when remove is set). */
static void pending_delete_list(struct qm_conf *conf, const char *key, bool add)
{
    struct strbuf sb = {0};
    const char *old = conf->pending ? qm_conf_get(conf->pending, "delete") : NULL;

    if (old) {
        char *copy = qm_strdup(old);
        char *save = NULL;
        for (char *k = strtok_r(copy, ",; ", &save); k; k = strtok_r(NULL, ",; ", &save)) {
            if (strcmp(k[0] == '!' ? k + 1 : k, key) == 0)
                continue;
            if (sb.len)
                sb_addc(&sb, ',');
            sb_add(&sb, k);
        }
        free(copy);
    }
    if (add) {
        if (sb.len)
            sb_addc(&sb, ',');
        sb_add(&sb, key);
    }
    if (!conf->pending) {
        conf->pending = qm_calloc(1, sizeof(*conf->pending));
        conf->pending->name = qm_strdup("PENDING");
    }
    if (sb.len)
        qm_conf_set(conf->pending, "delete", sb.buf);
    else
        qm_conf_unset(conf->pending, "delete");
    sb_free(&sb);
}

static void set_pending(struct qm_conf *conf, const char *key, const char *value)
{
    if (!conf->pending) {
        conf->pending = qm_calloc(1, sizeof(*conf->pending));
        conf->pending->name = qm_strdup("PENDING");
    }
    qm_conf_set(conf->pending, key, value);
}

static void drop_empty_pending(struct qm_conf *conf)
{
    if (conf->pending && conf->pending->n == 0) {
        free(conf->pending->entries);
        free(conf->pending->name);
        free(conf->pending);
        conf->pending = NULL;
    }
}

/* Splits a configid list ("a,b;c d") into items. */
static void split_list(const char *list, struct strvec *out)
{
    char *copy = qm_strdup(list);
    char *save = NULL;

    for (char *k = strtok_r(copy, ",; \t", &save); k; k = strtok_r(NULL, ",; \t", &save))
        sv_push(out, k);
    free(copy);
}

/* A configuration change, kept beyond the call for the asynchronous part. */
struct config_change {
    struct api_call *call;      /* PUT: replied to when the change is done; POST: NULL */
    struct qm_node *node;
    int vmid;
    bool force;
    struct strvec keys;         /* configuration parameters, the last of each key */
    struct strvec values;
    struct strvec deletes;
    struct strvec reverts;
};

static void config_change_free(struct config_change *change)
{
    sv_free(&change->keys);
    sv_free(&change->values);
    sv_free(&change->deletes);
    sv_free(&change->reverts);
    free(change);
}

/* Applies the change to the current configuration and stores it. */
static int config_commit(struct disk_update *update, void *opaque, struct qm_error *err)
{
    struct config_change *change = opaque;
    struct qm_conf *conf = NULL;

    if (qm_conf_load(&change->node->paths, change->vmid, &conf, err) < 0)
        return -1;
    struct qm_vm *vm = qm_node_find_vm(change->node, change->vmid);
    bool running = vm && qm_vm_is_running(vm);
    struct qm_task *log = disk_update_task(update);

    for (size_t i = 0; i < change->reverts.n; i++) {
        if (conf->pending)
            qm_conf_unset(conf->pending, change->reverts.v[i]);
        pending_delete_list(conf, change->reverts.v[i], false);
    }
    for (size_t i = 0; i < change->deletes.n; i++) {
        const char *key = change->deletes.v[i];
        bool direct = in_list(direct_keys, QM_ARRAY_SIZE(direct_keys), key);
        if (conf->pending)
            qm_conf_unset(conf->pending, key);
        if (running && !direct && !qm_str_starts(key, "unused")) {
            /* force is kept ("!key") for a drive that stays until the next start. */
            qm_conf_pending_delete_add(conf, key, change->force);
            disk_update_hotplug(update, conf, key, true, change->force, log);
        } else {
            disk_update_detach(update, conf, key, change->force, log);
            qm_conf_unset(&conf->main, key);
            pending_delete_list(conf, key, false);
        }
        qm_task_log(log, "delete %s", key);
    }
    for (size_t i = 0; i < change->keys.n; i++) {
        const char *key = change->keys.v[i];
        const char *value = disk_update_value(update, key);
        if (!value)
            value = change->values.v[i];
        bool direct = in_list(direct_keys, QM_ARRAY_SIZE(direct_keys), key);
        char *with_mac = add_mac_address(key, value);
        if (with_mac)
            value = with_mac;
        if (running && !direct) {
            set_pending(conf, key, value);
            disk_update_hotplug(update, conf, key, false, false, log);
        } else {
            /* A drive replaced by another volume keeps the old one as unusedN. */
            const char *old = qm_conf_get(&conf->main, key);
            if (old && strcmp(old, value) != 0)
                disk_update_detach(update, conf, key, false, log);
            qm_conf_set(&conf->main, key, value);
            if (conf->pending)
                qm_conf_unset(conf->pending, key);
        }
        pending_delete_list(conf, key, false);
        qm_task_log(log, "update %s: %s", key, value);
        free(with_mac);
    }
    drop_empty_pending(conf);
    int r = qm_conf_store(&change->node->paths, conf, err);
    qm_conf_free(conf);
    return r;
}

static void config_finish(struct disk_update *update, void *opaque, const char *error)
{
    struct config_change *change = opaque;

    if (change->call)
        api_reply_done(change->call, error);
    config_change_free(change);
}

void api_vm_config_set(struct api_call *call)
{
    const char *digest = api_param(call, "digest");
    const char *delete_list = api_param(call, "delete");
    const char *revert_list = api_param(call, "revert");
    bool skiplock = api_param_bool(call, "skiplock", false);
    bool force = api_param_bool(call, "force", false);
    bool sync = strcmp(call->req->method, "PUT") == 0;
    struct strvec deletes = {0}, reverts = {0};
    struct qm_error err;

    check_config_params(call);
    if (force && !delete_list)
        api_param_error(call, "force", "missing property - 'delete' is required");
    if (delete_list)
        split_list(delete_list, &deletes);
    if (revert_list)
        split_list(revert_list, &reverts);
    for (size_t i = 0; i < deletes.n; i++) {
        if (api_param(call, deletes.v[i]))
            api_param_error(call, deletes.v[i], "unable to delete and set the same option");
    }
    if (api_has_param_errors(call)) {
        sv_free(&deletes);
        sv_free(&reverts);
        api_param_errors_reply(call);
        return;
    }
    struct qm_conf *conf = load_conf(call);
    if (!conf) {
        sv_free(&deletes);
        sv_free(&reverts);
        return;
    }
    if (digest && strcmp(digest, conf->digest) != 0) {
        qm_conf_free(conf);
        sv_free(&deletes);
        sv_free(&reverts);
        api_fail(call, 409, "detected modified configuration - file changed by other user? "
                            "Try again.");
        return;
    }
    const char *lock = qm_conf_get(&conf->main, "lock");
    if (lock && !skiplock && !api_param(call, "lock")) {
        char *msg = qm_sprintf("VM is locked (%s)", lock);
        qm_conf_free(conf);
        sv_free(&deletes);
        sv_free(&reverts);
        api_fail(call, 500, "%s", msg);
        free(msg);
        return;
    }

    struct config_change *change = qm_calloc(1, sizeof(*change));
    change->node = call->node;
    change->vmid = call->vmid;
    change->force = force;
    change->deletes = deletes;
    change->reverts = reverts;
    struct disk_update *update = disk_update_new(call->node, call->vmid, &err);
    if (!update) {
        qm_conf_free(conf);
        config_change_free(change);
        api_fail_error(call, &err);
        return;
    }
    for (size_t i = 0; i < call->keys.n; i++) {
        const char *key = call->keys.v[i];
        const char *value = call->values.v[i];
        if (in_list(non_config_params, QM_ARRAY_SIZE(non_config_params), key))
            continue;
        if (api_param(call, key) != value)
            continue;   /* a later occurrence of the same key wins */
        sv_push(&change->keys, key);
        sv_push(&change->values, value);
        if (disk_update_plan(update, conf, key, value, api_param(call, "storage"), &err) < 0)
            api_param_error(call, key, "%s", err.msg);
    }
    qm_conf_free(conf);
    if (api_has_param_errors(call)) {
        disk_update_free(update);
        config_change_free(change);
        api_param_errors_reply(call);
        return;
    }
    const char *busy = qm_storage_vm_busy(call->vmid);
    if (busy && disk_update_has_work(update)) {
        disk_update_free(update);
        config_change_free(change);
        api_fail(call, 409, "VM %d is busy with another disk operation (%s); try again when it "
                            "has finished", call->vmid, busy);
        return;
    }
    char id[16];
    snprintf(id, sizeof(id), "%d", call->vmid);
    struct qm_task *task = qm_task_start(&call->node->tasks, "qmconfig", id, call->user, &err);
    if (!task) {
        disk_update_free(update);
        config_change_free(change);
        api_fail_error(call, &err);
        return;
    }
    if (sync)
        change->call = call;
    else
        reply_upid(call, task);
    disk_update_run(update, task, config_commit, config_finish, change);
}

/* Removes the configuration; the owned volumes are freed after it (see disk_update_run). */
static int destroy_commit(struct disk_update *update, void *opaque, struct qm_error *err)
{
    struct qm_node *node = opaque;
    int vmid = disk_update_vmid(update);
    char *path = qm_conf_path(&node->paths, vmid);

    if (unlink(path) < 0) {
        qm_fail(err, 500, "unable to remove '%s': %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    qm_node_forget_vm(node, vmid);
    return 0;
}

static void destroy_finish(struct disk_update *update, void *opaque, const char *error)
{
    if (!error)
        qm_log(QM_LOG_INFO, disk_update_vmid(update), "destroyed");
}

void api_vm_destroy(struct api_call *call)
{
    struct qm_error err;
    bool skiplock = api_param_bool(call, "skiplock", false);
    bool unreferenced = api_param_bool(call, "destroy-unreferenced-disks", false);

    /* purge also removes the VM from backup jobs and HA, which this node does not have. */
    api_param_bool(call, "purge", false);
    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    struct qm_conf *conf = load_conf(call);
    if (!conf)
        return;
    struct qm_vm *vm = qm_node_find_vm(call->node, call->vmid);
    const char *lock = qm_conf_get(&conf->main, "lock");
    const char *protection = qm_conf_get(&conf->main, "protection");
    const char *busy = qm_storage_vm_busy(call->vmid);
    int status = 0;
    char *msg = NULL;

    if (vm && qm_vm_is_running(vm)) {
        status = 500;
        msg = qm_sprintf("VM %d is running - destroy failed", call->vmid);
    } else if (protection && strcmp(protection, "1") == 0) {
        status = 500;
        msg = qm_strdup("VM is protected - destroy failed");
    } else if (lock && !skiplock) {
        status = 500;
        msg = qm_sprintf("VM is locked (%s)", lock);
    } else if (busy) {
        status = 409;
        msg = qm_sprintf("VM %d is busy with a disk operation (%s) - destroy failed",
                         call->vmid, busy);
    }
    if (msg) {
        qm_conf_free(conf);
        api_fail(call, status, "%s", msg);
        free(msg);
        return;
    }
    struct disk_update *update = disk_update_new(call->node, call->vmid, &err);
    if (!update) {
        qm_conf_free(conf);
        api_fail_error(call, &err);
        return;
    }
    disk_update_free_all(update, conf, unreferenced);
    qm_conf_free(conf);
    char id[16];
    snprintf(id, sizeof(id), "%d", call->vmid);
    struct qm_task *task = qm_task_start(&call->node->tasks, "qmdestroy", id, call->user, &err);
    if (!task) {
        disk_update_free(update);
        api_fail_error(call, &err);
        return;
    }
    struct qm_node *node = call->node;
    qm_log(QM_LOG_INFO, call->vmid, "destroy requested by %s", call->user);
    reply_upid(call, task);
    disk_update_run(update, task, destroy_commit, destroy_finish, node);
}

void api_vm_status_action(struct api_call *call)
{
    static const struct {
        const char *name;
        enum qm_vm_op_kind kind;
    } actions[] = {
        {"start", QM_OP_START},   {"stop", QM_OP_STOP},       {"shutdown", QM_OP_SHUTDOWN},
        {"reboot", QM_OP_REBOOT}, {"reset", QM_OP_RESET},     {"suspend", QM_OP_SUSPEND},
        {"resume", QM_OP_RESUME},
    };
    const char *action = strrchr(call->req->path, '/') + 1;
    struct qm_vm_op_params params = {.timeout = -1};
    struct qm_error err;
    enum qm_vm_op_kind kind = QM_OP_START;

    for (size_t i = 0; i < QM_ARRAY_SIZE(actions); i++) {
        if (strcmp(actions[i].name, action) == 0)
            kind = actions[i].kind;
    }
    params.timeout = (int)api_param_int(call, "timeout", 0, 86400, -1);
    params.force_stop = api_param_bool(call, "forceStop", false);
    params.skiplock = api_param_bool(call, "skiplock", false);
    params.todisk = api_param_bool(call, "todisk", false);
    api_param_bool(call, "keepActive", false);
    if (api_has_param_errors(call)) {
        api_param_errors_reply(call);
        return;
    }
    if (!vm_exists(call, call->vmid)) {
        api_fail(call, 500, "Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist",
                 call->node->name, call->vmid);
        return;
    }
    struct qm_vm *vm = qm_node_get_vm(call->node, call->vmid);
    struct qm_task *task = qm_vm_queue(vm, kind, &params, call->user, &err);
    if (!task) {
        api_fail_error(call, &err);
        return;
    }
    reply_upid(call, task);
}

void api_vm_unlock(struct api_call *call)
{
    struct qm_error err;
    struct qm_conf *conf = load_conf(call);

    if (!conf)
        return;
    qm_conf_unset(&conf->main, "lock");
    int r = qm_conf_store(&call->node->paths, conf, &err);
    qm_conf_free(conf);
    if (r < 0) {
        api_fail_error(call, &err);
        return;
    }
    api_reply(call, NULL);
}

void api_vm_showcmd(struct api_call *call)
{
    struct strvec argv = {0};
    struct qm_error err;
    bool pretty = api_param_bool(call, "pretty", false);

    struct qm_conf *conf = load_conf(call);
    if (!conf)
        return;
    int r = qm_vm_build_cmdline(&call->node->paths, &call->node->host, &call->node->caps, conf,
                                &argv, NULL, &err);
    qm_conf_free(conf);
    if (r < 0) {
        api_fail_error(call, &err);
        return;
    }
    char *text = pretty ? qm_qemu_cmdline_pretty(&argv) : qm_qemu_cmdline_string(&argv);
    struct strbuf sb = {0};
    qm_json_add_string(&sb, text);
    free(text);
    sv_free(&argv);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

static void monitor_reply_cb(struct qmp *qmp, const char *output, const struct qmp_reply *reply,
                             void *opaque)
{
    struct api_call *call = opaque;

    if (!output) {
        api_fail(call, 500, "monitor command failed: %s", reply->error_desc);
        return;
    }
    struct strbuf sb = {0};
    qm_json_add_string(&sb, output);
    api_reply(call, sb.buf);
    sb_free(&sb);
}

void api_vm_monitor(struct api_call *call)
{
    const char *command = api_param(call, "command");
    struct qm_error err;

    if (!command) {
        api_param_error(call, "command", "property is missing and it is not optional");
        api_param_errors_reply(call);
        return;
    }
    struct qm_vm *vm = qm_node_find_vm(call->node, call->vmid);
    if (!vm || vm->state != QM_VM_RUNNING || !vm->qmp) {
        api_fail(call, 500, "VM %d not running", call->vmid);
        return;
    }
    if (qmp_hmp_command(vm->qmp, command, monitor_reply_cb, call, &err) < 0)
        api_fail_error(call, &err);
}

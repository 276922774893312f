/* Writing {vmid}.conf in the order and form Proxmox VE qemu-server 9.2.6 writes it. */
#include <stdlib.h>
#include <string.h>

#include "conf-internal.h"

/* Percent-encodes control characters, '%', ':' and bytes >= 0x7f; the rest stays literal. */
static void add_encoded(struct strbuf *sb, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == '%' || c == ':' || c >= 0x7f)
            sb_addf(sb, "%%%02X", c);
        else
            sb_addc(sb, (char)c);
    }
}

static void add_description(struct strbuf *sb, const char *description, bool pending)
{
    if (!description)
        return;
    if (!*description) {
        if (pending)
            sb_add(sb, "#\n");
        return;
    }

    /* Like Perl's split(/\n/): inner empty lines stay, trailing ones go. */
    size_t len = strlen(description);
    while (len > 0 && description[len - 1] == '\n')
        len--;
    const char *line = description;
    const char *end = description + len;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
        sb_addc(sb, '#');
        add_encoded(sb, line, n);
        sb_addc(sb, '\n');
        line = nl ? nl + 1 : end;
    }
}

static int compare_entries(const void *a, const void *b)
{
    const struct qm_conf_entry *x = *(const struct qm_conf_entry *const *)a;
    const struct qm_conf_entry *y = *(const struct qm_conf_entry *const *)b;
    return strcmp(x->key, y->key);
}

/* Whether key is left out of the written section. */
typedef bool (*skip_fn)(const struct qm_conf_entry *entry, const void *ctx);

static void add_entries(struct strbuf *sb, const struct qm_conf_section *section, bool pending,
                        skip_fn skip, const void *ctx)
{
    add_description(sb, qm_conf_get(section, "description"), pending);

    const struct qm_conf_entry **sorted = qm_calloc(section->n + 1, sizeof(*sorted));
    size_t count = 0;
    for (size_t i = 0; i < section->n; i++) {
        const struct qm_conf_entry *entry = &section->entries[i];
        if (strcmp(entry->key, "description") == 0 || strcmp(entry->key, "digest") == 0)
            continue;
        if (skip && skip(entry, ctx))
            continue;
        sorted[count++] = entry;
    }
    qsort(sorted, count, sizeof(*sorted), compare_entries);
    for (size_t i = 0; i < count; i++)
        sb_addf(sb, "%s: %s\n", sorted[i]->key, sorted[i]->value);
    free(sorted);
}

/* The rewrites that the reference applies to the main section before writing. */
struct main_rewrite {
    const struct qm_conf_section *main;
    struct strvec used_volumes;
    const char *smp_as_sockets;
};

static bool skip_main(const struct qm_conf_entry *entry, const void *ctx)
{
    const struct main_rewrite *rw = ctx;

    if (strcmp(entry->key, "snapstate") == 0)
        return true;
    if (strcmp(entry->key, "cdrom") == 0)
        return true;
    if (strcmp(entry->key, "smp") == 0)
        return true;
    if (rw->smp_as_sockets && strcmp(entry->key, "cores") == 0)
        return true;
    if (qm_str_starts(entry->key, "unused")) {
        for (size_t i = 0; i < rw->used_volumes.n; i++) {
            if (strcmp(rw->used_volumes.v[i], entry->value) == 0)
                return true;
        }
    }
    return false;
}

static void collect_used_volumes(const struct qm_conf_section *main, struct strvec *volumes)
{
    for (size_t i = 0; i < main->n; i++) {
        const char *key = main->entries[i].key;
        if (strcmp(key, "cdrom") == 0)
            key = "ide2";
        if (!qm_is_drive_key(key))
            continue;
        struct qm_propstr drive;
        if (qm_propstr_parse(key, main->entries[i].value, &drive, NULL) < 0)
            continue;
        const char *file = qm_propstr_get(&drive, "file");
        if (file && *file)
            sv_push(volumes, file);
        qm_propstr_free(&drive);
    }
}

/*
 * Builds the main section as written: cdrom becomes ide2 (ide2 wins if both
 * are set), smp is dropped when sockets is set and otherwise turns into
 * sockets (dropping cores), and unusedN entries of volumes that are attached
 * again are dropped.
 */
static void add_main(struct strbuf *sb, const struct qm_conf_section *main)
{
    struct main_rewrite rw = { .main = main };
    collect_used_volumes(main, &rw.used_volumes);

    const char *smp = qm_conf_get(main, "smp");
    if (smp && !qm_conf_get(main, "sockets"))
        rw.smp_as_sockets = smp;

    struct qm_conf_section extra = { 0 };
    const char *cdrom = qm_conf_get(main, "cdrom");
    if (cdrom && !qm_conf_get(main, "ide2"))
        qm_conf_set(&extra, "ide2", cdrom);
    if (rw.smp_as_sockets)
        qm_conf_set(&extra, "sockets", rw.smp_as_sockets);

    if (extra.n == 0) {
        add_entries(sb, main, false, skip_main, &rw);
    } else {
        struct qm_conf_section merged = { 0 };
        for (size_t i = 0; i < main->n; i++) {
            if (!skip_main(&main->entries[i], &rw))
                qm_conf_set(&merged, main->entries[i].key, main->entries[i].value);
        }
        for (size_t i = 0; i < extra.n; i++)
            qm_conf_set(&merged, extra.entries[i].key, extra.entries[i].value);
        add_entries(sb, &merged, false, NULL, NULL);
        qm_conf_section_clear(&merged);
    }
    qm_conf_section_clear(&extra);
    sv_free(&rw.used_volumes);
}

static int compare_sections(const void *a, const void *b)
{
    const struct qm_conf_section *x = *(const struct qm_conf_section *const *)a;
    const struct qm_conf_section *y = *(const struct qm_conf_section *const *)b;
    return strcmp(x->name, y->name);
}

char *qm_conf_format(const struct qm_conf *conf)
{
    struct strbuf sb = { 0 };

    add_main(&sb, &conf->main);

    if (conf->pending && conf->pending->n > 0) {
        sb_add(&sb, "\n[PENDING]\n");
        add_entries(&sb, conf->pending, true, NULL, NULL);
    }

    /* Special sections in name order: cloudinit, then fleecing. */
    if (conf->cloudinit && qm_conf_has_cloudinit(&conf->main)) {
        sb_add(&sb, "\n[special:cloudinit]\n");
        add_entries(&sb, conf->cloudinit, false, NULL, NULL);
    }
    if (conf->fleecing) {
        sb_add(&sb, "\n[special:fleecing]\n");
        add_entries(&sb, conf->fleecing, false, NULL, NULL);
    }

    const struct qm_conf_section **snapshots =
        qm_calloc(conf->nsnapshots + 1, sizeof(*snapshots));
    for (size_t i = 0; i < conf->nsnapshots; i++)
        snapshots[i] = &conf->snapshots[i];
    qsort(snapshots, conf->nsnapshots, sizeof(*snapshots), compare_sections);
    for (size_t i = 0; i < conf->nsnapshots; i++) {
        sb_addf(&sb, "\n[%s]\n", snapshots[i]->name);
        add_entries(&sb, snapshots[i], false, NULL, NULL);
    }
    free(snapshots);

    return sb_detach(&sb);
}

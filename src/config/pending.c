/*
 * The "delete" entry of [PENDING]: keys scheduled for removal, a leading '!'
 * marking a forced removal (a drive's volume is freed instead of becoming
 * unusedN). Read split on ',', ';' and whitespace; written sorted by key and
 * joined with ','.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conf-internal.h"

struct pending_delete {
    char *key;
    bool force;
};

static size_t read_deletes(const struct qm_conf *conf, struct pending_delete **out)
{
    const char *value = conf->pending ? qm_conf_get(conf->pending, "delete") : NULL;
    struct pending_delete *list = NULL;
    size_t n = 0;

    for (const char *p = value; p && *p;) {
        while (*p && (isspace((unsigned char)*p) || *p == ',' || *p == ';'))
            p++;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p) && *p != ',' && *p != ';')
            p++;
        if (p == start)
            continue;

        bool force = *start == '!';
        if (force)
            start++;
        if (p == start)
            continue;
        char *key = qm_strndup(start, (size_t)(p - start));

        /* A key named twice keeps one entry, forced if any mention was. */
        size_t i;
        for (i = 0; i < n && strcmp(list[i].key, key) != 0; i++)
            ;
        if (i < n) {
            list[i].force = list[i].force || force;
            free(key);
            continue;
        }
        list = qm_realloc(list, (n + 1) * sizeof(*list));
        list[n].key = key;
        list[n].force = force;
        n++;
    }
    *out = list;
    return n;
}

static int compare_deletes(const void *a, const void *b)
{
    return strcmp(((const struct pending_delete *)a)->key, ((const struct pending_delete *)b)->key);
}

static void write_deletes(struct qm_conf *conf, struct pending_delete *list, size_t n)
{
    if (n == 0) {
        if (conf->pending)
            qm_conf_unset(conf->pending, "delete");
        return;
    }
    qsort(list, n, sizeof(*list), compare_deletes);
    struct strbuf sb = { 0 };
    for (size_t i = 0; i < n; i++)
        sb_addf(&sb, "%s%s%s", i ? "," : "", list[i].force ? "!" : "", list[i].key);
    qm_conf_set(qm_conf_pending(conf), "delete", sb.buf);
    sb_free(&sb);
}

static void free_deletes(struct pending_delete *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i].key);
    free(list);
}

void qm_conf_pending_deletes(const struct qm_conf *conf, struct strvec *keys,
                             struct strvec *forced)
{
    struct pending_delete *list;
    size_t n = read_deletes(conf, &list);

    for (size_t i = 0; i < n; i++)
        sv_push(list[i].force && forced ? forced : keys, list[i].key);
    free_deletes(list, n);
}

bool qm_conf_pending_delete_has(const struct qm_conf *conf, const char *key, bool *force)
{
    struct pending_delete *list;
    size_t n = read_deletes(conf, &list);
    bool found = false;

    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(list[i].key, key) == 0) {
            found = true;
            if (force)
                *force = list[i].force;
        }
    }
    free_deletes(list, n);
    return found;
}

void qm_conf_pending_delete_add(struct qm_conf *conf, const char *key, bool force)
{
    struct pending_delete *list;
    size_t n = read_deletes(conf, &list);
    size_t i;

    for (i = 0; i < n && strcmp(list[i].key, key) != 0; i++)
        ;
    if (i < n) {
        list[i].force = force;
    } else {
        list = qm_realloc(list, (n + 1) * sizeof(*list));
        list[n].key = qm_strdup(key);
        list[n].force = force;
        n++;
    }
    write_deletes(conf, list, n);
    free_deletes(list, n);
}

bool qm_conf_pending_delete_remove(struct qm_conf *conf, const char *key)
{
    struct pending_delete *list;
    size_t n = read_deletes(conf, &list);
    bool found = false;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].key, key) == 0) {
            free(list[i].key);
            memmove(&list[i], &list[i + 1], (n - i - 1) * sizeof(*list));
            n--;
            found = true;
            break;
        }
    }
    if (found)
        write_deletes(conf, list, n);
    free_deletes(list, n);
    return found;
}

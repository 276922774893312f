/* Property strings: "key=value,key=value" with a default key, aliases and typed sub-keys. */
#include <stdlib.h>
#include <string.h>

#include "schema.h"

const struct qm_schema_key *qm_propstr_format_key(const struct qm_propstr_format *fmt,
                                                  const char *name)
{
    for (size_t i = 0; i < fmt->n; i++) {
        if (strcmp(fmt->keys[i].name, name) == 0)
            return &fmt->keys[i];
    }
    return NULL;
}

static const struct qm_schema_key *default_key_of(const struct qm_propstr_format *fmt)
{
    for (size_t i = 0; i < fmt->n; i++) {
        if (fmt->keys[i].default_key)
            return &fmt->keys[i];
    }
    return NULL;
}

const char *qm_propstr_get(const struct qm_propstr *ps, const char *subkey)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->items[i].key, subkey) == 0)
            return ps->items[i].value;
    }
    return NULL;
}

void qm_propstr_set(struct qm_propstr *ps, const char *subkey, const char *value)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->items[i].key, subkey) == 0) {
            free(ps->items[i].value);
            ps->items[i].value = qm_strdup(value);
            return;
        }
    }
    ps->items = qm_realloc(ps->items, (ps->n + 1) * sizeof(*ps->items));
    ps->items[ps->n].key = qm_strdup(subkey);
    ps->items[ps->n].value = qm_strdup(value);
    ps->n++;
}

bool qm_propstr_unset(struct qm_propstr *ps, const char *subkey)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->items[i].key, subkey) == 0) {
            free(ps->items[i].key);
            free(ps->items[i].value);
            memmove(&ps->items[i], &ps->items[i + 1], (ps->n - i - 1) * sizeof(*ps->items));
            ps->n--;
            return true;
        }
    }
    return false;
}

void qm_propstr_free(struct qm_propstr *ps)
{
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->items[i].key);
        free(ps->items[i].value);
    }
    free(ps->items);
    ps->items = NULL;
    ps->n = 0;
}

static bool is_blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\f' && *s != '\v')
            return false;
    }
    return true;
}

/* Stores one "k=v" part; returns -1 with err filled on duplicates and unknown keys. */
static int add_keyed_part(const struct qm_propstr_format *fmt, struct qm_propstr *ps,
                          const char *name, const char *value, struct qm_error *err)
{
    if (qm_propstr_get(ps, name))
        return qm_fail(err, 400, "duplicate key in comma-separated list property: %s", name);

    const struct qm_schema_key *key = qm_propstr_format_key(fmt, name);
    const char *target = name;
    if (key && key->alias_of) {
        if (key->key_alias) {
            const struct qm_schema_key *def = default_key_of(fmt);
            if (def && qm_propstr_get(ps, def->name))
                return qm_fail(err, 400, "key alias '%s' is already defined", def->name);
            if (def)
                qm_propstr_set(ps, def->name, name);
        }
        target = key->alias_of;
        key = qm_propstr_format_key(fmt, target);
        if (qm_propstr_get(ps, target))
            return qm_fail(err, 400, "key '%s' is already defined (via alias)", target);
    }
    if (!key)
        return qm_fail(err, 400, "invalid key in comma-separated list property: %s", target);

    int flag;
    if (key->type == QM_TYPE_BOOLEAN && qm_parse_boolean(value, &flag))
        value = flag ? "1" : "0";
    qm_propstr_set(ps, target, value);
    return 0;
}

static int split_parts(const struct qm_propstr_format *fmt, const char *value,
                       struct qm_propstr *ps, struct qm_error *err)
{
    char *copy = qm_strdup(value);
    bool default_used = false;
    int rc = 0;
    char *part = copy;

    while (part && rc == 0) {
        char *comma = strchr(part, ',');
        if (comma)
            *comma = '\0';

        char *eq = strchr(part, '=');
        if (is_blank(part)) {
            /* skipped, like empty list items */
        } else if (eq && eq != part && eq[1] != '\0') {
            *eq = '\0';
            rc = add_keyed_part(fmt, ps, part, eq + 1, err);
        } else if (!eq) {
            const struct qm_schema_key *def = default_key_of(fmt);
            if (!def) {
                rc = qm_fail(err, 400,
                             "value without key, but schema does not define a default key");
            } else if (default_used || qm_propstr_get(ps, def->name)) {
                rc = qm_fail(err, 400, "duplicate key in comma-separated list property: %s",
                             def->name);
            } else {
                int flag;
                const char *v = part;
                if (def->type == QM_TYPE_BOOLEAN && qm_parse_boolean(part, &flag))
                    v = flag ? "1" : "0";
                qm_propstr_set(ps, def->name, v);
                default_used = true;
            }
        } else {
            rc = qm_fail(err, 400, "missing key in comma-separated list property");
        }
        part = comma ? comma + 1 : NULL;
    }
    free(copy);
    return rc;
}

/* Checks every sub-key like the JSON schema validator; collects "key: reason" lines. */
static int validate_keys(const struct qm_propstr_format *fmt, const struct qm_propstr *ps,
                         struct qm_error *err)
{
    struct strbuf errors = { 0 };

    for (size_t i = 0; i < fmt->n; i++) {
        const struct qm_schema_key *key = &fmt->keys[i];
        if (key->alias_of)
            continue;
        const char *value = qm_propstr_get(ps, key->name);
        struct strbuf reason = { 0 };
        if (!value) {
            if (key->required)
                sb_add(&reason, "property is missing and it is not optional");
        } else {
            qm_schema_check_value(key, value, &reason);
            if (reason.len == 0 && key->requires && !qm_propstr_get(ps, key->requires))
                sb_addf(&errors, "\n%s: missing property required by '%s'", key->requires,
                        key->name);
        }
        if (reason.len > 0)
            sb_addf(&errors, "\n%s: %s", key->name, reason.buf);
        sb_free(&reason);
    }

    if (errors.len > 0) {
        qm_fail(err, 400, "format error%s", errors.buf);
        sb_free(&errors);
        return -1;
    }
    return 0;
}

int qm_propstr_parse_format(const struct qm_propstr_format *fmt, const char *value,
                            struct qm_propstr *out, struct qm_error *err)
{
    out->items = NULL;
    out->n = 0;

    if (split_parts(fmt, value, out, err) < 0 || validate_keys(fmt, out, err) < 0 ||
        (fmt->validate && fmt->validate(out, err) < 0)) {
        qm_propstr_free(out);
        return -1;
    }
    return 0;
}

static const struct qm_propstr_format *format_of(const char *key, struct qm_error *err)
{
    const struct qm_schema_key *prop = qm_schema_lookup(key);
    if (!prop) {
        qm_fail(err, 400, "unknown setting '%s'", key);
        return NULL;
    }
    if (!prop->propstr) {
        qm_fail(err, 400, "property '%s' is not a property string", key);
        return NULL;
    }
    return prop->propstr;
}

int qm_propstr_parse(const char *key, const char *value, struct qm_propstr *out,
                     struct qm_error *err)
{
    out->items = NULL;
    out->n = 0;
    const struct qm_propstr_format *fmt = format_of(key, err);
    if (!fmt)
        return -1;
    return qm_propstr_parse_format(fmt, value, out, err);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int append_value(struct strbuf *out, const struct qm_schema_key *key, const char *name,
                        const char *value, struct qm_error *err)
{
    unsigned long long bytes;
    if (key && key->format && strcmp(key->format, "disk-size") == 0 &&
        qm_parse_size(value, &bytes)) {
        char *size = qm_format_size(bytes);
        sb_add(out, size);
        free(size);
        return 0;
    }
    if (strchr(value, ','))
        return qm_fail(err, 400, "illegal value with commas for %s", name);
    sb_add(out, value);
    return 0;
}

char *qm_propstr_print_format(const struct qm_propstr_format *fmt, const struct qm_propstr *ps,
                              struct qm_error *err)
{
    struct strbuf out = { 0 };
    bool *done = qm_calloc(ps->n + 1, sizeof(*done));
    const struct qm_schema_key *def = default_key_of(fmt);
    int rc = 0;

    /* The default key comes first; for "model" with a MAC it is the combined "virtio=MAC". */
    for (size_t i = 0; def && i < ps->n && rc == 0; i++) {
        if (strcmp(ps->items[i].key, def->name) != 0)
            continue;
        done[i] = true;
        const struct qm_schema_key *alias = qm_propstr_format_key(fmt, ps->items[i].value);
        if (alias && alias->key_alias && alias->alias_of) {
            for (size_t j = 0; j < ps->n; j++) {
                if (strcmp(ps->items[j].key, alias->alias_of) == 0) {
                    sb_addf(&out, "%s=", ps->items[i].value);
                    rc = append_value(&out, qm_propstr_format_key(fmt, alias->alias_of),
                                      alias->alias_of, ps->items[j].value, err);
                    done[j] = true;
                    goto default_done;
                }
            }
        }
        /* A default value with '=' would read back as a key, so it keeps its key then. */
        if (strchr(ps->items[i].value, '='))
            sb_addf(&out, "%s=", def->name);
        rc = append_value(&out, def, def->name, ps->items[i].value, err);
    }
default_done:;

    /* Then required keys, then the rest, each group sorted by name. */
    const char **names = qm_calloc(ps->n + 1, sizeof(*names));
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        size_t count = 0;
        for (size_t i = 0; i < ps->n; i++) {
            if (done[i])
                continue;
            const struct qm_schema_key *key = qm_propstr_format_key(fmt, ps->items[i].key);
            if (pass == 0 && !(key && key->required))
                continue;
            names[count++] = ps->items[i].key;
        }
        qsort(names, count, sizeof(*names), compare_strings);
        for (size_t k = 0; k < count && rc == 0; k++) {
            for (size_t i = 0; i < ps->n; i++) {
                if (done[i] || ps->items[i].key != names[k])
                    continue;
                done[i] = true;
                const struct qm_schema_key *key = qm_propstr_format_key(fmt, names[k]);
                if (!key) {
                    rc = qm_fail(err, 400, "invalid key '%s'", names[k]);
                    break;
                }
                if (out.len > 0)
                    sb_addc(&out, ',');
                sb_addf(&out, "%s=", names[k]);
                rc = append_value(&out, key, names[k], ps->items[i].value, err);
            }
        }
    }
    free(names);
    free(done);
    if (rc < 0) {
        sb_free(&out);
        return NULL;
    }
    return sb_detach(&out);
}

char *qm_propstr_print(const char *key, const struct qm_propstr *ps, struct qm_error *err)
{
    const struct qm_propstr_format *fmt = format_of(key, err);
    if (!fmt)
        return NULL;
    return qm_propstr_print_format(fmt, ps, err);
}

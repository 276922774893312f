/*
 * Reading {vmid}.conf the way Proxmox VE qemu-server 9.2.6 reads it:
 * "key: value" lines, '#' description lines, [PENDING], [special:cloudinit],
 * [special:fleecing] and [snapshot] sections.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conf-internal.h"

enum section_kind { SECTION_MAIN, SECTION_PENDING, SECTION_CLOUDINIT, SECTION_FLEECING,
                    SECTION_SNAPSHOT, SECTION_SKIPPED };

struct parser {
    struct qm_conf *conf;
    bool strict;
    struct strvec *warnings;
    struct qm_error *err;
    struct qm_conf_section *section;
    enum section_kind kind;
    struct strbuf description;
    bool has_description;
    bool failed;
};

/* Reports a problem: fatal in strict mode, a warning otherwise. Returns -1 when fatal. */
static int report(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int report(struct parser *p, const char *fmt, ...)
{
    struct strbuf msg = { 0 };
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&msg, fmt, ap);
    va_end(ap);

    int rc = 0;
    if (p->strict) {
        qm_fail(p->err, 400, "%s", msg.buf);
        p->failed = true;
        rc = -1;
    } else if (p->warnings) {
        sv_push(p->warnings, msg.buf);
    }
    sb_free(&msg);
    return rc;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Appends the percent-decoded text; a '%' without two hex digits stays literal. */
static void add_decoded(struct strbuf *sb, const char *text)
{
    for (const char *s = text; *s; s++) {
        if (s[0] == '%' && hex_value(s[1]) >= 0 && hex_value(s[2]) >= 0) {
            sb_addc(sb, (char)(hex_value(s[1]) * 16 + hex_value(s[2])));
            s += 2;
        } else {
            sb_addc(sb, *s);
        }
    }
}

/* Stores the collected description in the current section, trailing whitespace trimmed. */
static void finish_description(struct parser *p)
{
    if (p->has_description && p->section) {
        while (p->description.len > 0 &&
               isspace((unsigned char)p->description.buf[p->description.len - 1]))
            p->description.buf[--p->description.len] = '\0';
        qm_conf_set(p->section, "description", p->description.buf ? p->description.buf : "");
    }
    sb_reset(&p->description);
    p->has_description = false;
}

static bool is_blank(const char *s)
{
    for (; *s; s++) {
        if (!isspace((unsigned char)*s))
            return false;
    }
    return true;
}

/* Matches "[NAME]" followed by optional whitespace; returns NAME (caller frees) or NULL. */
static char *section_header(const char *line)
{
    if (line[0] != '[')
        return NULL;
    const char *close = strchr(line + 1, ']');
    if (!close || !is_blank(close + 1))
        return NULL;
    return qm_strndup(line + 1, (size_t)(close - line - 1));
}

static bool is_snapshot_name(const char *name)
{
    return qm_regex_match("^[a-zA-Z][a-zA-Z0-9_-]+$", name);
}

static struct qm_conf_section *new_special(struct qm_conf_section **slot, const char *name)
{
    if (*slot) {
        qm_conf_section_clear(*slot);
        return *slot;
    }
    *slot = qm_calloc(1, sizeof(**slot));
    (*slot)->name = qm_strdup(name);
    return *slot;
}

static int start_section(struct parser *p, const char *name)
{
    struct qm_conf *conf = p->conf;

    finish_description(p);
    if (strcasecmp(name, "PENDING") == 0) {
        p->kind = SECTION_PENDING;
        if (conf->pending && report(p, "vm %d - duplicate section: pending", conf->vmid) < 0)
            return -1;
        if (conf->pending)
            qm_conf_section_clear(conf->pending);
        p->section = qm_conf_pending(conf);
        return 0;
    }
    if (strncasecmp(name, "special:", 8) == 0 &&
        (strcasecmp(name + 8, "cloudinit") == 0 || strcasecmp(name + 8, "fleecing") == 0)) {
        bool cloudinit = strcasecmp(name + 8, "cloudinit") == 0;
        struct qm_conf_section **slot = cloudinit ? &conf->cloudinit : &conf->fleecing;
        p->kind = cloudinit ? SECTION_CLOUDINIT : SECTION_FLEECING;
        if (*slot && report(p, "vm %d - duplicate special section: %s", conf->vmid,
                            cloudinit ? "cloudinit" : "fleecing") < 0)
            return -1;
        p->section = new_special(slot, cloudinit ? "special:cloudinit" : "special:fleecing");
        return 0;
    }
    if (is_snapshot_name(name)) {
        p->kind = SECTION_SNAPSHOT;
        if (qm_conf_snapshot(conf, name) &&
            report(p, "vm %d - duplicate snapshot section: %s", conf->vmid, name) < 0)
            return -1;
        p->section = qm_conf_snapshot_add(conf, name);
        return 0;
    }

    p->kind = SECTION_SKIPPED;
    p->section = NULL;
    return report(p, "vm %d - skipping unknown section: '%s'", conf->vmid, name);
}

/* Matches "KEY:" followed by whitespace and a value; returns the trimmed value or NULL. */
static const char *match_key(const char *line, const char *key)
{
    size_t len = strlen(key);
    if (strncmp(line, key, len) != 0 || line[len] != ':')
        return NULL;
    const char *value = line + len + 1;
    while (isspace((unsigned char)*value))
        value++;
    return *value ? value : NULL;
}

static char *trim_end_copy(const char *value)
{
    size_t len = strlen(value);
    while (len > 0 && isspace((unsigned char)value[len - 1]))
        len--;
    return qm_strndup(value, len);
}

/* The keys that Proxmox VE's key pattern does not cover, since they contain an architecture. */
static const char *const arch_keys[] = {"qemu_binary_x86_64", "qemu_binary_aarch64"};

/*
 * Splits "key: value" with key matching [a-z][a-z_-]*[0-9]*, or one of
 * arch_keys. Like the reference's /:\s*(.+?)\s*$/, a value of only
 * whitespace keeps its last character, so "boot: " gives the value " ".
 */
static bool split_key_value(const char *line, char **key, char **value)
{
    const char *p = line;
    if (!(*p >= 'a' && *p <= 'z'))
        return false;
    for (size_t i = 0; i < QM_ARRAY_SIZE(arch_keys); i++) {
        size_t n = strlen(arch_keys[i]);
        if (strncmp(line, arch_keys[i], n) == 0 && line[n] == ':') {
            p = line + n;
            break;
        }
    }
    while ((*p >= 'a' && *p <= 'z') || *p == '_' || *p == '-')
        p++;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p != ':' || p[1] == '\0')
        return false;
    const char *rest = p + 1;
    const char *v = rest;
    while (isspace((unsigned char)*v))
        v++;
    if (*v) {
        *value = trim_end_copy(v);
    } else {
        *value = qm_strdup(rest + strlen(rest) - 1);
    }
    *key = qm_strndup(line, (size_t)(p - line));
    return true;
}

/* The unanchored "snapstate:\s*(prepare|delete)\s*$" of the reference. */
static const char *match_snapstate(const char *line)
{
    for (const char *s = strstr(line, "snapstate:"); s; s = strstr(s + 1, "snapstate:")) {
        const char *v = s + strlen("snapstate:");
        while (isspace((unsigned char)*v))
            v++;
        const char *state = NULL;
        if (strncmp(v, "prepare", 7) == 0)
            state = "prepare";
        else if (strncmp(v, "delete", 6) == 0)
            state = "delete";
        if (state && is_blank(v + strlen(state)))
            return state;
    }
    return NULL;
}

static int parse_line(struct parser *p, const char *line)
{
    struct qm_conf *conf = p->conf;
    const char *value;

    if (line[0] == '#') {
        p->has_description = true;
        add_decoded(&p->description, line + 1);
        sb_addc(&p->description, '\n');
        return 0;
    }
    if ((value = match_key(line, "description"))) {
        char *trimmed = trim_end_copy(value);
        p->has_description = true;
        add_decoded(&p->description, trimmed);
        free(trimmed);
        return 0;
    }
    const char *snapstate = match_snapstate(line);
    if (snapstate) {
        qm_conf_set(p->section, "snapstate", snapstate);
        return 0;
    }
    if ((value = match_key(line, "args"))) {
        char *trimmed = trim_end_copy(value);
        qm_conf_set(p->section, "args", trimmed);
        free(trimmed);
        return 0;
    }
    if ((value = match_key(line, "delete"))) {
        if (p->kind != SECTION_PENDING)
            return report(p, "vm %d - property 'delete' is only allowed in [PENDING]", conf->vmid);
        char *trimmed = trim_end_copy(value);
        qm_conf_set(p->section, "delete", trimmed);
        free(trimmed);
        return 0;
    }

    char *key, *raw;
    if (!split_key_value(line, &key, &raw))
        return report(p, "vm %d - unable to parse config: %s", conf->vmid, line);

    int rc = 0;
    if (p->kind == SECTION_CLOUDINIT) {
        /* Informational copies of earlier values: stored without validation. */
        qm_conf_set(p->section, key, raw);
    } else {
        char *normalized = NULL;
        struct qm_error why;
        bool known = true;
        int read = qm_conf_read_value(p->kind == SECTION_FLEECING, conf->vmid, key, raw,
                                      &normalized, &known, &why);
        if (read == -2) {
            rc = report(p, "vm %d - unable to parse value of '%s'", conf->vmid, key);
        } else if (read < 0) {
            rc = report(p, "vm %d - unable to parse value of '%s' - %s", conf->vmid, key, why.msg);
            if (!known && !p->strict) {
                /* Kept so that settings of newer versions survive a rewrite. */
                qm_conf_set(p->section, key, raw);
            }
        } else {
            qm_conf_set(p->section, strcmp(key, "cdrom") == 0 ? "ide2" : key, normalized);
        }
        free(normalized);
    }
    free(key);
    free(raw);
    return rc;
}

static int parse_vmid(const char *filename, int *vmid, struct qm_error *err)
{
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    long long id;
    const char *dot = strstr(base, ".conf");
    if (dot && strcmp(dot, ".conf") == 0 && dot > base) {
        char *digits = qm_strndup(base, (size_t)(dot - base));
        bool ok = isdigit((unsigned char)digits[0]) && qm_parse_int(digits, &id) && id >= 0 &&
                  id <= 0x7fffffff;
        free(digits);
        if (ok) {
            *vmid = (int)id;
            return 0;
        }
    }
    return qm_fail(err, 400, "got strange filename '%s'", filename);
}

int qm_conf_parse(const char *text, size_t len, const char *filename, bool strict,
                  struct qm_conf **out, struct strvec *warnings, struct qm_error *err)
{
    int vmid = 0;
    *out = NULL;
    if (parse_vmid(filename, &vmid, err) < 0)
        return -1;

    struct parser p = {
        .conf = qm_conf_new(vmid),
        .strict = strict,
        .warnings = warnings,
        .err = err,
        .kind = SECTION_MAIN,
    };
    p.section = &p.conf->main;
    qm_conf_digest(text, len, p.conf->digest);

    const char *end = text + len;
    for (const char *line = text; line < end && !p.failed;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t line_len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        char *copy = qm_strndup(line, line_len);
        line = nl ? nl + 1 : end;

        if (is_blank(copy)) {
            free(copy);
            continue;
        }
        char *header = section_header(copy);
        if (header) {
            start_section(&p, header);
            free(header);
        } else if (p.section) {
            parse_line(&p, copy);
        }
        free(copy);
    }

    if (p.failed) {
        sb_free(&p.description);
        qm_conf_free(p.conf);
        return -1;
    }
    finish_description(&p);
    sb_free(&p.description);
    qm_conf_unset(&p.conf->main, "snapstate");
    *out = p.conf;
    return 0;
}

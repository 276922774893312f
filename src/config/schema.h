/*
 * The configuration schema: every property a {vmid}.conf may hold, and the
 * sub-keys of every property string. Private to src/config.
 */
#ifndef QM_CONFIG_SCHEMA_H
#define QM_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "qm/config.h"
#include "qm/util.h"

enum qm_schema_type {
    QM_TYPE_STRING,
    QM_TYPE_BOOLEAN,
    QM_TYPE_INTEGER,
    QM_TYPE_NUMBER,
};

struct qm_propstr_format;

/* One property, or one sub-key of a property string. */
struct qm_schema_key {
    const char *name;
    enum qm_schema_type type;
    /* Sub-keys only: the key must be present, even when it has a default. */
    bool required;
    /* Sub-keys only: the key that a part without "=" is assigned to. */
    bool default_key;
    /* Sub-keys only: the key this name is stored under. */
    const char *alias_of;
    /* With alias_of: the alias name itself is stored in the default key ("virtio=MAC"). */
    bool key_alias;
    /* Named value format checked by qm_format_check ("pve-volume-id", "disk-size", ...). */
    const char *format;
    /* Property string format of a top-level property. */
    const struct qm_propstr_format *propstr;
    /* POSIX extended regular expression, with its own anchors. */
    const char *pattern;
    /* NULL-terminated list of allowed values. */
    const char *const *enum_values;
    bool has_min;
    bool has_max;
    double min;
    double max;
    /* Maximum length in bytes; 0 for none. */
    int max_length;
    /* Top-level families ("net" for net0..net31): the highest index; -1 for a plain key. */
    int max_index;
    /* Sub-key that must be set when this one is ("gw" needs "ip"). */
    const char *requires;
    const char *default_value;
};

/* A property string format: its sub-keys and an optional check of the whole. */
struct qm_propstr_format {
    const char *name;
    const struct qm_schema_key *keys;
    size_t n;
    /* Runs after every sub-key passed; fills err and returns -1 to reject. */
    int (*validate)(const struct qm_propstr *ps, struct qm_error *err);
};

/*
 * Finds the schema entry of a top-level key, including indexed family
 * members ("net3"). Returns NULL for unknown keys and out-of-range indexes.
 */
const struct qm_schema_key *qm_schema_lookup(const char *key);
/* The schema of the [special:fleecing] section. */
const struct qm_schema_key *qm_schema_lookup_fleecing(const char *key);
/* Every top-level schema entry, for listing and tests. */
const struct qm_schema_key *qm_schema_all(size_t *count);

/* Parses value as a property string of format fmt; see qm_propstr_parse. */
int qm_propstr_parse_format(const struct qm_propstr_format *fmt, const char *value,
                            struct qm_propstr *out, struct qm_error *err);

/* Prints ps in the form of qm_propstr_print. */
char *qm_propstr_print_format(const struct qm_propstr_format *fmt, const struct qm_propstr *ps,
                              struct qm_error *err);

/* Finds a sub-key (or alias) of a property string format by name. */
const struct qm_schema_key *qm_propstr_format_key(const struct qm_propstr_format *fmt,
                                                  const char *name);

/*
 * Checks value against a named format. On failure fills reason (without a
 * trailing newline) and returns false.
 */
bool qm_format_check(const char *format, const char *value, struct strbuf *reason);

/*
 * Checks a value the way the JSON schema validator does: type, format,
 * pattern, max length, range, enum (in that order). On failure appends the
 * reason to reason and returns false.
 */
bool qm_schema_check_value(const struct qm_schema_key *key, const char *value,
                           struct strbuf *reason);

/* Matches value against a POSIX extended regular expression (compiled once). */
bool qm_regex_match(const char *pattern, const char *value);

/* Perl-compatible scalar checks used by the schema. */
bool qm_parse_boolean(const char *value, int *out);
bool qm_is_integer(const char *value);
bool qm_is_number(const char *value);

/* Disk sizes: "32G" to bytes and back in the largest exact unit. */
bool qm_parse_size(const char *value, unsigned long long *bytes);
char *qm_format_size(unsigned long long bytes);

/* Drive keys: ideN, sataN, scsiN, virtioN, efidisk0, tpmstate0. */
bool qm_is_drive_key(const char *key);

#endif

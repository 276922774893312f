/*
 * The {vmid}.conf format: sections of key/value pairs, property strings and
 * the schema that validates them.
 */
#ifndef QM_CONFIG_H
#define QM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "qm/util.h"

struct qm_conf_entry {
    char *key;
    char *value;
};

/*
 * One section of a configuration file. The description (the leading '#'
 * lines of a section) is kept as the entry "description", decoded, so that
 * the API reads and writes it like any other property.
 */
struct qm_conf_section {
    char *name;                     /* NULL for the current configuration */
    struct qm_conf_entry *entries;  /* in file order */
    size_t n;
    size_t cap;
};

struct qm_conf {
    int vmid;
    struct qm_conf_section main;
    struct qm_conf_section *pending;    /* [PENDING], with its "delete" entry; or NULL */
    struct qm_conf_section *cloudinit;  /* [special:cloudinit], or NULL */
    struct qm_conf_section *fleecing;   /* [special:fleecing], or NULL */
    struct qm_conf_section *snapshots;  /* [name] sections in file order */
    size_t nsnapshots;
    char digest[41];                    /* SHA-1 of the raw file, hex */
};

/*
 * Parses a configuration file. filename is used in messages and gives the
 * VM id (".../8006.conf"). In strict mode the first invalid line or value is
 * an error. Otherwise it is skipped and a warning is appended to warnings
 * (which may be NULL), except that keys unknown to the schema are kept.
 */
int qm_conf_parse(const char *text, size_t len, const char *filename, bool strict,
                  struct qm_conf **out, struct strvec *warnings, struct qm_error *err);
/* Formats a configuration the way Proxmox VE writes it. The caller frees it. */
char *qm_conf_format(const struct qm_conf *conf);
struct qm_conf *qm_conf_new(int vmid);
void qm_conf_free(struct qm_conf *conf);

const char *qm_conf_get(const struct qm_conf_section *section, const char *key);
/* Sets key to a copy of value, replacing an existing entry in place. */
void qm_conf_set(struct qm_conf_section *section, const char *key, const char *value);
/* Removes key; returns whether it was there. */
bool qm_conf_unset(struct qm_conf_section *section, const char *key);

/* Returns the [PENDING] section, creating an empty one when there is none. */
struct qm_conf_section *qm_conf_pending(struct qm_conf *conf);
/*
 * The pending deletions (the "delete" entry of [PENDING]). A forced deletion
 * ("!key") frees a drive's volume instead of keeping it as unusedN. The
 * entry is rewritten sorted by key, and removed when it becomes empty.
 */
/* Appends the keys to keys, or the forced ones to forced when it is not NULL. */
void qm_conf_pending_deletes(const struct qm_conf *conf, struct strvec *keys,
                             struct strvec *forced);
bool qm_conf_pending_delete_has(const struct qm_conf *conf, const char *key, bool *force);
/* Adds key, or updates its force flag. */
void qm_conf_pending_delete_add(struct qm_conf *conf, const char *key, bool force);
bool qm_conf_pending_delete_remove(struct qm_conf *conf, const char *key);

/*
 * Checks and normalizes a value the way the file reader does (booleans
 * become 1/0, drives take their canonical form); enums and ranges are not
 * checked here. Returns the value (caller frees) or NULL with err filled in.
 */
char *qm_conf_normalize_value(int vmid, const char *key, const char *value, struct qm_error *err);

/* Finds the snapshot section name, or NULL. */
struct qm_conf_section *qm_conf_snapshot(const struct qm_conf *conf, const char *name);
/* Adds an empty snapshot section, or empties an existing one of that name. */
struct qm_conf_section *qm_conf_snapshot_add(struct qm_conf *conf, const char *name);
bool qm_conf_snapshot_remove(struct qm_conf *conf, const char *name);
/* Whether a section has a drive whose volume is a cloud-init image. */
bool qm_conf_has_cloudinit(const struct qm_conf_section *section);
/* Writes the SHA-1 of data as 40 hex digits and a NUL into out. */
void qm_conf_digest(const char *data, size_t len, char out[41]);

/*
 * {conf_dir}/{vmid}.conf: load (404 when missing; read in non-strict mode
 * with warnings logged) and atomic store. The caller holds the VM's lock.
 */
int qm_conf_load(const struct qm_paths *paths, int vmid, struct qm_conf **out,
                 struct qm_error *err);
int qm_conf_store(const struct qm_paths *paths, const struct qm_conf *conf,
                  struct qm_error *err);
char *qm_conf_path(const struct qm_paths *paths, int vmid);

/*
 * Validates one property against the schema: the key must be known (or an
 * indexed family member within range) and the value well formed. On error
 * the message names the property and the reason; err->code is 400.
 */
int qm_conf_check_property(const char *key, const char *value, struct qm_error *err);

/* Parses a size with an optional K, M, G or T suffix (binary units) into bytes. */
bool qm_conf_parse_size(const char *value, unsigned long long *bytes);

/* Whether key names a drive: ideN, sataN, scsiN, virtioN, efidisk0, tpmstate0. */
bool qm_conf_is_drive_key(const char *key);

/* A parsed property string such as "virtio=BC:24:11:00:00:01,bridge=vmbr0". */
struct qm_propstr {
    struct qm_conf_entry *items;   /* canonical sub-key names, in input order */
    size_t n;
};

/*
 * Parses value as the property string format of property key ("net0",
 * "scsi1", "bios", ...): default keys, aliases, types, ranges and enums.
 */
int qm_propstr_parse(const char *key, const char *value, struct qm_propstr *out,
                     struct qm_error *err);
const char *qm_propstr_get(const struct qm_propstr *ps, const char *subkey);
/* Sets subkey (a canonical name) to a copy of value, replacing it in place. */
void qm_propstr_set(struct qm_propstr *ps, const char *subkey, const char *value);
bool qm_propstr_unset(struct qm_propstr *ps, const char *subkey);
void qm_propstr_free(struct qm_propstr *ps);
/*
 * Prints a property string of property key in Proxmox VE's form: the default
 * key first without "key=" (for net, the combined MODEL=MAC), then required
 * sub-keys, then the rest, each group sorted; disk sizes in the largest exact
 * unit. Returns NULL with err filled in when a value contains ','.
 */
char *qm_propstr_print(const char *key, const struct qm_propstr *ps, struct qm_error *err);

#endif

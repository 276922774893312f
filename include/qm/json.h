/* Small JSON helpers on top of yajl: parsing, lookups by path, building text. */
#ifndef QM_JSON_H
#define QM_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "qm/util.h"

/*
 * Parses len bytes of JSON text (no NUL needed). Returns the tree, which the
 * caller frees with yajl_tree_free(), or NULL with err filled in (code 400).
 */
yajl_val qm_json_parse(const char *text, size_t len, struct qm_error *err);

/*
 * Looks up a member by a path of object keys separated by '/', such as
 * "QMP/version/qemu/major". An empty path returns v itself. Returns NULL when
 * a key is missing or a step is not an object.
 */
yajl_val qm_json_get(yajl_val v, const char *path);

/* Typed lookups: NULL or false when the member is missing or of another type. */
const char *qm_json_get_string(yajl_val v, const char *path);
bool qm_json_get_int(yajl_val v, const char *path, long long *out);
bool qm_json_get_bool(yajl_val v, const char *path, bool *out);

/* Appends s as a quoted JSON string, escaping quotes, backslashes and control bytes. */
void qm_json_add_string(struct strbuf *sb, const char *s);

/*
 * Builds JSON text from a template in which these conversions are replaced:
 *   %s  a C string, quoted and escaped (NULL gives null)
 *   %d  an int, %lld a long long, %u an unsigned
 *   %b  an int as true or false
 *   %j  JSON text inserted as it is (NULL gives null)
 *   %%  a percent sign
 * Example: qm_json_build("{\"command-line\": %s}", line). The caller frees the
 * result. An unknown conversion aborts, because it is a programming error.
 */
char *qm_json_build(const char *fmt, ...);

/* Appends v serialized as compact JSON. */
void qm_json_add_value(struct strbuf *sb, yajl_val v);
/* Returns v serialized as compact JSON ("null" for NULL); the caller frees it. */
char *qm_json_dump(yajl_val v);

#endif

/* Helpers shared by the parser and the writer of {vmid}.conf. Private to src/config. */
#ifndef QM_CONFIG_CONF_INTERNAL_H
#define QM_CONFIG_CONF_INTERNAL_H

#include "qm/config.h"
#include "schema.h"

/* Removes every entry of a section but keeps its name. */
void qm_conf_section_clear(struct qm_conf_section *section);

/*
 * Checks and normalizes one value read from a file, as the reference's
 * check_type does: the key must be known, the type must match (booleans become
 * 1/0, integers lose leading zeros) and a named or property string format must
 * hold; enums, patterns and ranges are not enforced here. Drives are
 * re-printed in canonical form. fleecing selects the [special:fleecing]
 * schema. On failure known tells whether the key was in the schema. Returns
 * 0, -1 with err filled in, or -2 when a drive fails the checks beyond its
 * format (the reference reports that without a reason).
 */
int qm_conf_read_value(bool fleecing, int vmid, const char *key, const char *value,
                       char **normalized, bool *known, struct qm_error *err);

/* Whether a drive's volume is a cloud-init image. */
bool qm_conf_drive_is_cloudinit(const char *file);

#endif

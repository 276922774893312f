/*
 * Users, passwords, API tokens and tickets in the files and formats of
 * Proxmox VE: user.cfg for users, tokens and ACLs, priv/shadow.cfg for
 * password hashes (crypt(3) SHA-512) and priv/token.cfg for token secrets.
 */
#ifndef QM_ACCESS_H
#define QM_ACCESS_H

#include <stdbool.h>
#include <time.h>

#include "qm/util.h"

#define QM_TICKET_LIFETIME 7200

struct qm_access {
    char *etc_dir;
    char *priv_dir;
    unsigned char auth_key[32];   /* signs tickets */
    unsigned char csrf_key[32];   /* signs CSRF tokens */
};

/* Loads or creates the signing keys under priv/. */
int qm_access_init(struct qm_access *access, const char *etc_dir, const char *priv_dir,
                   struct qm_error *err);
void qm_access_free(struct qm_access *access);

/* Sets a user's password hash, creating the user entry when missing. */
int qm_access_set_password(struct qm_access *access, const char *userid, const char *password,
                           struct qm_error *err);
bool qm_access_has_password(struct qm_access *access, const char *userid);
/* Checks a user's password; fails with 401 and a generic message. */
int qm_access_check_password(struct qm_access *access, const char *userid, const char *password,
                             struct qm_error *err);

/* Creates a ticket and CSRF token for userid; the caller frees both. */
void qm_access_issue_ticket(struct qm_access *access, const char *userid, time_t now,
                            char **ticket, char **csrf);
/* Verifies a ticket and returns its user in *userid (caller frees). */
int qm_access_verify_ticket(struct qm_access *access, const char *ticket, time_t now,
                            char **userid, struct qm_error *err);
bool qm_access_verify_csrf(struct qm_access *access, const char *token, const char *userid,
                           time_t now);
/* Verifies "user@realm!tokenid=secret" against token.cfg; *userid gets "user@realm!tokenid". */
int qm_access_verify_token(struct qm_access *access, const char *value, char **userid,
                           struct qm_error *err);
/* Adds an API token with a fresh secret, returned in *secret (caller frees). */
int qm_access_add_token(struct qm_access *access, const char *userid, const char *tokenid,
                        char **secret, struct qm_error *err);

/* Whether the user (or the user owning a token) may do everything: root@pam or Administrator on /. */
bool qm_access_is_admin(struct qm_access *access, const char *userid);

#endif

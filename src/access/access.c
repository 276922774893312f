/* Users, passwords, tokens and tickets. */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#include "qm/access.h"

static void random_bytes(unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            abort();
        buf += n;
        len -= (size_t)n;
    }
}

static void hex_encode(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

static bool hex_decode(const char *in, unsigned char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        if (sscanf(in + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (unsigned char)v;
    }
    return true;
}

/* Reads a 32-byte hex key from path, creating it when missing. */
static int load_key(const char *path, unsigned char key[32], struct qm_error *err)
{
    char *data = NULL;
    char hex[65];

    if (qm_read_file(path, &data, NULL, NULL) == 0) {
        bool ok = strlen(data) >= 64 && hex_decode(data, key, 32);
        free(data);
        if (ok)
            return 0;
        return qm_fail(err, 500, "invalid key file '%s': expected 64 hex digits", path);
    }
    random_bytes(key, 32);
    hex_encode(key, 32, hex);
    hex[64] = '\n';
    return qm_write_file_atomic(path, hex, 65, 0600, err);
}

int qm_access_init(struct qm_access *access, const char *etc_dir, const char *priv_dir,
                   struct qm_error *err)
{
    memset(access, 0, sizeof(*access));
    access->etc_dir = qm_strdup(etc_dir);
    access->priv_dir = qm_strdup(priv_dir);
    if (qm_mkdir_p(priv_dir, 0700, err) < 0)
        return -1;

    char *path = qm_sprintf("%s/authkey.key", priv_dir);
    int r = load_key(path, access->auth_key, err);
    free(path);
    if (r < 0)
        return -1;
    path = qm_sprintf("%s/csrf.key", priv_dir);
    r = load_key(path, access->csrf_key, err);
    free(path);
    return r;
}

void qm_access_free(struct qm_access *access)
{
    free(access->etc_dir);
    free(access->priv_dir);
    memset(access, 0, sizeof(*access));
}

/* Returns the lines of a file (none when it is missing). */
static int read_lines(const char *path, struct strvec *lines, struct qm_error *err)
{
    char *data = NULL;
    struct qm_error local;

    if (qm_read_file(path, &data, NULL, &local) < 0) {
        if (local.code == 404)
            return 0;
        if (err)
            *err = local;
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        sv_push(lines, line);
    free(data);
    return 0;
}

static int write_lines(const char *path, const struct strvec *lines, int mode,
                       struct qm_error *err)
{
    struct strbuf sb = {0};

    for (size_t i = 0; i < lines->n; i++) {
        sb_add(&sb, lines->v[i]);
        sb_addc(&sb, '\n');
    }
    int r = qm_write_file_atomic(path, sb.buf ? sb.buf : "", sb.len, mode, err);
    sb_free(&sb);
    return r;
}

/* Index of the line that starts with prefix, or -1. */
static long find_line(const struct strvec *lines, const char *prefix)
{
    for (size_t i = 0; i < lines->n; i++) {
        if (qm_str_starts(lines->v[i], prefix))
            return (long)i;
    }
    return -1;
}

static int replace_or_add_line(const char *path, const char *prefix, const char *line, int mode,
                               struct qm_error *err)
{
    struct strvec lines = {0};

    if (read_lines(path, &lines, err) < 0)
        return -1;
    long i = find_line(&lines, prefix);
    if (i >= 0) {
        free(lines.v[i]);
        lines.v[i] = qm_strdup(line);
    } else {
        sv_push(&lines, line);
    }
    int r = write_lines(path, &lines, mode, err);
    sv_free(&lines);
    return r;
}

static int ensure_user(struct qm_access *access, const char *userid, struct qm_error *err)
{
    char *path = qm_sprintf("%s/user.cfg", access->etc_dir);
    char *prefix = qm_sprintf("user:%s:", userid);
    struct strvec lines = {0};
    int r = read_lines(path, &lines, err);

    if (r == 0 && find_line(&lines, prefix) < 0) {
        sv_pushf(&lines, "user:%s:1:0::::::", userid);
        if (strcmp(userid, "root@pam") == 0 && find_line(&lines, "acl:1:/:root@pam:") < 0)
            sv_push(&lines, "acl:1:/:root@pam:Administrator:");
        r = write_lines(path, &lines, 0640, err);
    }
    sv_free(&lines);
    free(prefix);
    free(path);
    return r;
}

int qm_access_set_password(struct qm_access *access, const char *userid, const char *password,
                           struct qm_error *err)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data data;

    if (strchr(userid, ':') || strchr(userid, '\n') || !strchr(userid, '@'))
        return qm_fail(err, 400, "invalid user id '%s': expected user@realm", userid);
    if (!crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)))
        return qm_fail(err, 500, "unable to generate a password salt: %s", strerror(errno));
    memset(&data, 0, sizeof(data));
    const char *hash = crypt_r(password, salt, &data);
    if (!hash || hash[0] == '*')
        return qm_fail(err, 500, "unable to hash the password");
    if (ensure_user(access, userid, err) < 0)
        return -1;

    char *path = qm_sprintf("%s/shadow.cfg", access->priv_dir);
    char *prefix = qm_sprintf("%s:", userid);
    char *line = qm_sprintf("%s:%s:", userid, hash);
    int r = replace_or_add_line(path, prefix, line, 0600, err);
    free(line);
    free(prefix);
    free(path);
    return r;
}

/* Returns the stored hash of userid (caller frees), or NULL. */
static char *lookup_hash(struct qm_access *access, const char *userid)
{
    char *path = qm_sprintf("%s/shadow.cfg", access->priv_dir);
    char *prefix = qm_sprintf("%s:", userid);
    struct strvec lines = {0};
    char *hash = NULL;

    if (read_lines(path, &lines, NULL) == 0) {
        long i = find_line(&lines, prefix);
        if (i >= 0) {
            const char *start = lines.v[i] + strlen(prefix);
            const char *end = strchr(start, ':');
            hash = end ? qm_strndup(start, (size_t)(end - start)) : qm_strdup(start);
        }
    }
    sv_free(&lines);
    free(prefix);
    free(path);
    return hash;
}

bool qm_access_has_password(struct qm_access *access, const char *userid)
{
    char *hash = lookup_hash(access, userid);
    bool found = hash && *hash;

    free(hash);
    return found;
}

/* Constant-time comparison, so that the time taken leaks nothing about a secret. */
static bool equal_secret(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    unsigned char diff = n != m;

    for (size_t i = 0; i < n && i < m; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int qm_access_check_password(struct qm_access *access, const char *userid, const char *password,
                             struct qm_error *err)
{
    char *hash = lookup_hash(access, userid);
    struct crypt_data data;
    bool ok = false;

    if (hash && *hash) {
        memset(&data, 0, sizeof(data));
        const char *out = crypt_r(password, hash, &data);
        ok = out && out[0] != '*' && equal_secret(out, hash);
    }
    free(hash);
    if (!ok)
        return qm_fail(err, 401, "authentication failure");
    return 0;
}

static char *sign(const unsigned char key[32], const char *data)
{
    unsigned char mac[32];
    unsigned char out[64];
    size_t olen = 0;

    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, 32,
                    (const unsigned char *)data, strlen(data), mac);
    mbedtls_base64_encode(out, sizeof(out), &olen, mac, sizeof(mac));
    /* The base64 padding is dropped: tickets travel in cookies and headers. */
    while (olen > 0 && out[olen - 1] == '=')
        olen--;
    return qm_strndup((const char *)out, olen);
}

void qm_access_issue_ticket(struct qm_access *access, const char *userid, time_t now,
                            char **ticket, char **csrf)
{
    char *data = qm_sprintf("PVE:%s:%08X", userid, (unsigned)now);
    char *sig = sign(access->auth_key, data);

    *ticket = qm_sprintf("%s::%s", data, sig);
    free(sig);
    free(data);

    data = qm_sprintf("%08X:%s", (unsigned)now, userid);
    sig = sign(access->csrf_key, data);
    *csrf = qm_sprintf("%08X:%s", (unsigned)now, sig);
    free(sig);
    free(data);
}

/* A ticket may come from a clock up to 5 minutes ahead, as in Proxmox VE. */
static bool time_valid(unsigned long stamp, time_t now)
{
    long age = (long)now - (long)stamp;

    return age >= -300 && age < QM_TICKET_LIFETIME;
}

int qm_access_verify_ticket(struct qm_access *access, const char *ticket, time_t now,
                            char **userid, struct qm_error *err)
{
    const char *sep = strstr(ticket, "::");
    unsigned long stamp;
    char user[128];
    int used = 0;

    if (!sep || !qm_str_starts(ticket, "PVE:"))
        return qm_fail(err, 401, "invalid ticket");
    char *data = qm_strndup(ticket, (size_t)(sep - ticket));
    const char *colon = strrchr(data, ':');
    if (!colon || colon - data - 4 <= 0 || (size_t)(colon - data - 4) >= sizeof(user) ||
        sscanf(colon + 1, "%8lx%n", &stamp, &used) != 1 || used != 8 || colon[9]) {
        free(data);
        return qm_fail(err, 401, "invalid ticket");
    }
    memcpy(user, data + 4, (size_t)(colon - data - 4));
    user[colon - data - 4] = '\0';

    char *expected = sign(access->auth_key, data);
    bool ok = equal_secret(expected, sep + 2);
    free(expected);
    free(data);
    if (!ok)
        return qm_fail(err, 401, "invalid ticket");
    if (!time_valid(stamp, now))
        return qm_fail(err, 401, "ticket expired");
    *userid = qm_strdup(user);
    return 0;
}

bool qm_access_verify_csrf(struct qm_access *access, const char *token, const char *userid,
                           time_t now)
{
    unsigned long stamp;
    int used = 0;

    if (!token || sscanf(token, "%8lx%n", &stamp, &used) != 1 || used != 8 || token[8] != ':')
        return false;
    if (!time_valid(stamp, now))
        return false;
    char *data = qm_sprintf("%08lX:%s", stamp, userid);
    char *expected = sign(access->csrf_key, data);
    bool ok = equal_secret(expected, token + 9);
    free(expected);
    free(data);
    return ok;
}

int qm_access_verify_token(struct qm_access *access, const char *value, char **userid,
                           struct qm_error *err)
{
    const char *eq = strchr(value, '=');
    const char *bang = strchr(value, '!');

    if (!eq || !bang || bang > eq || !strchr(value, '@'))
        return qm_fail(err, 401, "invalid API token");
    char *tokenid = qm_strndup(value, (size_t)(eq - value));
    char *path = qm_sprintf("%s/token.cfg", access->priv_dir);
    char *prefix = qm_sprintf("%s ", tokenid);
    struct strvec lines = {0};
    bool ok = false;

    if (read_lines(path, &lines, NULL) == 0) {
        long i = find_line(&lines, prefix);
        if (i >= 0)
            ok = equal_secret(lines.v[i] + strlen(prefix), eq + 1);
    }
    sv_free(&lines);
    free(prefix);
    free(path);
    if (!ok) {
        free(tokenid);
        return qm_fail(err, 401, "invalid API token");
    }
    *userid = tokenid;
    return 0;
}

int qm_access_add_token(struct qm_access *access, const char *userid, const char *tokenid,
                        char **secret, struct qm_error *err)
{
    unsigned char raw[16];
    char uuid[37];

    if (strchr(tokenid, '!') || strchr(tokenid, ' ') || strchr(tokenid, ':') || !*tokenid)
        return qm_fail(err, 400, "invalid token id '%s'", tokenid);
    if (ensure_user(access, userid, err) < 0)
        return -1;
    random_bytes(raw, sizeof(raw));
    raw[6] = (unsigned char)((raw[6] & 0x0f) | 0x40);
    raw[8] = (unsigned char)((raw[8] & 0x3f) | 0x80);
    snprintf(uuid, sizeof(uuid),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", raw[0],
             raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10],
             raw[11], raw[12], raw[13], raw[14], raw[15]);

    char *path = qm_sprintf("%s/user.cfg", access->etc_dir);
    char *prefix = qm_sprintf("token:%s!%s:", userid, tokenid);
    /* privsep 0: the token has the permissions of its user. */
    char *line = qm_sprintf("token:%s!%s:0:0::", userid, tokenid);
    int r = replace_or_add_line(path, prefix, line, 0640, err);
    free(line);
    free(prefix);
    free(path);
    if (r < 0)
        return -1;

    path = qm_sprintf("%s/token.cfg", access->priv_dir);
    prefix = qm_sprintf("%s!%s ", userid, tokenid);
    line = qm_sprintf("%s!%s %s", userid, tokenid, uuid);
    r = replace_or_add_line(path, prefix, line, 0600, err);
    free(line);
    free(prefix);
    free(path);
    if (r < 0)
        return -1;
    *secret = qm_strdup(uuid);
    return 0;
}

/* Whether the comma-separated list contains item. */
static bool list_contains(const char *list, const char *item)
{
    size_t n = strlen(item);

    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, item, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

bool qm_access_is_admin(struct qm_access *access, const char *userid)
{
    char *user = qm_strdup(userid);
    char *bang = strchr(user, '!');
    bool admin = false;

    if (bang)
        *bang = '\0';
    if (strcmp(user, "root@pam") == 0) {
        free(user);
        return true;
    }

    char *path = qm_sprintf("%s/user.cfg", access->etc_dir);
    struct strvec lines = {0};
    if (read_lines(path, &lines, NULL) == 0) {
        /* acl:PROPAGATE:PATH:UGIDS:ROLES: */
        for (size_t i = 0; i < lines.n && !admin; i++) {
            char *copy = qm_strdup(lines.v[i]);
            char *fields[6] = {0};
            char *save = NULL;
            int nf = 0;
            for (char *f = strtok_r(copy, ":", &save); f && nf < 6; f = strtok_r(NULL, ":", &save))
                fields[nf++] = f;
            if (nf >= 5 && strcmp(fields[0], "acl") == 0 && strcmp(fields[2], "/") == 0 &&
                (list_contains(fields[3], userid) || list_contains(fields[3], user)) &&
                list_contains(fields[4], "Administrator"))
                admin = true;
            free(copy);
        }
    }
    sv_free(&lines);
    free(path);
    free(user);
    return admin;
}

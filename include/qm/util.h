/* Small shared helpers: errors, growable strings, logging, files, paths. */
#ifndef QM_UTIL_H
#define QM_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * An error report filled in where a failure starts. code is the HTTP status
 * of the API response (400 for bad input, 404 for a missing object,
 * 409 for a conflict, 500 for everything else); callers above only return -1.
 */
struct qm_error {
    int code;
    char msg[1024];
};

/* Fills err (if not NULL) and returns -1, so that `return qm_fail(...)` reads well. */
int qm_fail(struct qm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void qm_error_clear(struct qm_error *err);

/* Allocation that aborts on exhaustion: no caller handles ENOMEM. */
void *qm_malloc(size_t size);
void *qm_calloc(size_t n, size_t size);
void *qm_realloc(void *ptr, size_t size);
char *qm_strdup(const char *s);
char *qm_strndup(const char *s, size_t n);
char *qm_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable, always NUL-terminated string. Zero-initialised is empty. */
struct strbuf {
    char *buf;
    size_t len;
    size_t cap;
};

void sb_add(struct strbuf *sb, const char *s);
void sb_addn(struct strbuf *sb, const char *s, size_t n);
void sb_addc(struct strbuf *sb, char c);
void sb_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
void sb_reset(struct strbuf *sb);
/* Returns the string (never NULL) and leaves sb empty; the caller frees it. */
char *sb_detach(struct strbuf *sb);
void sb_free(struct strbuf *sb);

/* A NULL-terminated vector of owned strings, used for argv and lists. */
struct strvec {
    char **v;
    size_t n;
    size_t cap;
};

void sv_push(struct strvec *sv, const char *s);
void sv_pushf(struct strvec *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sv_free(struct strvec *sv);

/*
 * Logging to standard error, one line per event, with the syslog level as a
 * "<N>" prefix that journald reads. vmid 0 means the line is about no VM.
 */
enum qm_log_level { QM_LOG_ERR = 3, QM_LOG_WARNING = 4, QM_LOG_INFO = 6, QM_LOG_DEBUG = 7 };

extern int qm_log_max_level;
void qm_log(enum qm_log_level level, int vmid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Files. Each returns 0 or -1 with err filled in. */
int qm_read_file(const char *path, char **data, size_t *len, struct qm_error *err);
/* Writes through a temporary file in the same folder, fsync and rename. */
int qm_write_file_atomic(const char *path, const char *data, size_t len, int mode,
                         struct qm_error *err);
int qm_mkdir_p(const char *path, int mode, struct qm_error *err);
/* Writes all len bytes, retrying short writes and EINTR; -1 with errno set. */
int qm_write_all(int fd, const char *data, size_t len);

/* String helpers. */
bool qm_str_starts(const char *s, const char *prefix);
bool qm_str_ends(const char *s, const char *suffix);
/* Parses a whole decimal integer; false on junk, overflow or an empty string. */
bool qm_parse_int(const char *s, long long *out);
char *qm_str_trim(char *s);
/* Encodes len bytes as base64 with padding; the caller frees the result. */
char *qm_base64_encode(const unsigned char *data, size_t len);
/* Decodes base64 text into a NUL-terminated buffer of *len bytes, or NULL when invalid. */
char *qm_base64_decode(const char *text, size_t *len);

/*
 * Where a node keeps its files. With a root folder every path lives under it
 * (root/etc/pve, root/run/qemu-server, ...), so that a node runs without root
 * privileges; without one the Proxmox VE paths are used.
 */
struct qm_paths {
    char *root;          /* "" for the system paths */
    char *etc;           /* /etc/pve */
    char *conf_dir;      /* /etc/pve/qemu-server: {vmid}.conf */
    char *storage_cfg;   /* /etc/pve/storage.cfg */
    char *run_dir;       /* /var/run/qemu-server: pidfiles, QMP sockets */
    char *lock_dir;      /* /var/lock/qemu-server */
    char *task_dir;      /* /var/log/pve/tasks */
    char *priv_dir;      /* /etc/pve/priv: users' password hashes, tokens */
    char *local_dir;     /* /etc/pve/local: the node's certificate and key */
    char *api_socket;    /* /var/run/qemu-server/qmd.sock */
    char *event_socket;  /* /var/run/qmeventd.sock: every QEMU connects back here */
    char *helper_dir;    /* /usr/libexec/qemu-server: pve-bridge, or $QM_HELPER_DIR */
};

/* Fills paths from root (NULL or "" for the system paths). */
void qm_paths_init(struct qm_paths *paths, const char *root);
void qm_paths_free(struct qm_paths *paths);
/* Returns the root named by $QM_ROOT, or NULL. */
const char *qm_paths_env_root(void);

#endif

/* Reading and atomically replacing files; node paths. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qm/util.h"

int qm_read_file(const char *path, char **data, size_t *len, struct qm_error *err)
{
    struct strbuf sb = {0};
    char chunk[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return qm_fail(err, errno == ENOENT ? 404 : 500, "unable to open '%s': %s",
                       path, strerror(errno));
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            close(fd);
            sb_free(&sb);
            return qm_fail(err, 500, "unable to read '%s': %s", path, strerror(saved));
        }
        if (n == 0)
            break;
        sb_addn(&sb, chunk, (size_t)n);
    }
    close(fd);
    if (len)
        *len = sb.len;
    *data = sb_detach(&sb);
    return 0;
}

int qm_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int qm_write_file_atomic(const char *path, const char *data, size_t len, int mode,
                         struct qm_error *err)
{
    char *tmp = qm_sprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    if (fd < 0) {
        qm_fail(err, 500, "unable to create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (qm_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        qm_fail(err, 500, "unable to write '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        qm_fail(err, 500, "unable to rename '%s' to '%s': %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int qm_mkdir_p(const char *path, int mode, struct qm_error *err)
{
    char *copy = qm_strdup(path);

    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST) {
            qm_fail(err, 500, "unable to create folder '%s': %s", copy, strerror(errno));
            free(copy);
            return -1;
        }
        *p = '/';
    }
    if (mkdir(copy, mode) < 0 && errno != EEXIST) {
        qm_fail(err, 500, "unable to create folder '%s': %s", copy, strerror(errno));
        free(copy);
        return -1;
    }
    free(copy);
    return 0;
}

const char *qm_paths_env_root(void)
{
    const char *root = getenv("QM_ROOT");

    return root && *root ? root : NULL;
}

void qm_paths_init(struct qm_paths *paths, const char *root)
{
    const char *r = root ? root : "";

    paths->root = qm_strdup(r);
    paths->etc = qm_sprintf("%s/etc/pve", r);
    paths->conf_dir = qm_sprintf("%s/etc/pve/qemu-server", r);
    paths->storage_cfg = qm_sprintf("%s/etc/pve/storage.cfg", r);
    paths->priv_dir = qm_sprintf("%s/etc/pve/priv", r);
    paths->local_dir = qm_sprintf("%s/etc/pve/local", r);
    paths->run_dir = qm_sprintf("%s%s/qemu-server", r, *r ? "/run" : "/var/run");
    paths->lock_dir = qm_sprintf("%s%s/qemu-server", r, *r ? "/lock" : "/var/lock");
    paths->task_dir = qm_sprintf("%s%s/tasks", r, *r ? "/log" : "/var/log/pve");
    paths->api_socket = qm_sprintf("%s/qmd.sock", paths->run_dir);
    paths->event_socket = qm_sprintf("%s%s/qmeventd.sock", r, *r ? "/run" : "/var/run");
    /* The helpers belong to the installation, not to the node's folder. */
    const char *helpers = getenv("QM_HELPER_DIR");
    paths->helper_dir = qm_strdup(helpers && *helpers ? helpers : "/usr/libexec/qemu-server");
}

void qm_paths_free(struct qm_paths *paths)
{
    free(paths->root);
    free(paths->etc);
    free(paths->conf_dir);
    free(paths->storage_cfg);
    free(paths->priv_dir);
    free(paths->local_dir);
    free(paths->run_dir);
    free(paths->lock_dir);
    free(paths->task_dir);
    free(paths->api_socket);
    free(paths->event_socket);
    free(paths->helper_dir);
    memset(paths, 0, sizeof(*paths));
}

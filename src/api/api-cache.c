/*
 * Parsed configurations of the read-only API calls (status, list), reused
 * while the file is unchanged. Every write replaces a configuration file by
 * rename, which gives it a new inode, so (inode, size, mtime) identifies a
 * version of the file.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qm/config.h"
#include "api.h"

#define CONF_CACHE_SIZE 1024

struct conf_cache_entry {
    int vmid;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct qm_conf *conf;
};

static struct conf_cache_entry conf_cache[CONF_CACHE_SIZE];

static bool same_file(const struct conf_cache_entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

const struct qm_conf *api_conf_cached(struct qm_node *node, int vmid, struct qm_error *err)
{
    char *path = qm_conf_path(&node->paths, vmid);
    struct stat st;
    struct conf_cache_entry *e = &conf_cache[(unsigned)vmid % CONF_CACHE_SIZE];
    struct qm_conf *conf = NULL;

    if (stat(path, &st) < 0) {
        free(path);
        return qm_fail(err, 404, "configuration of VM %d not found", vmid), NULL;
    }
    free(path);
    if (e->conf && e->vmid == vmid && same_file(e, &st))
        return e->conf;
    if (qm_conf_load(&node->paths, vmid, &conf, err) < 0)
        return NULL;
    qm_conf_free(e->conf);
    e->vmid = vmid;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->size = st.st_size;
    e->mtime = st.st_mtim;
    e->conf = conf;
    return conf;
}

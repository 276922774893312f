/*
 * Running storage tools (qemu-img, btrfs) to completion. These functions
 * block, so the daemon calls them on the libuv thread pool only.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qm/storage.h"

extern char **environ;

/* The tool's output kept for an error message; the rest is dropped. */
#define OUTPUT_MAX 4096

/*
 * Calls line_cb for each line or carriage-return-terminated piece of text
 * in buf (qemu-img -p redraws its progress with '\r'), keeping a partial
 * last piece in buf.
 */
static void split_lines(struct strbuf *buf, qm_command_line_fn line_cb, void *opaque)
{
    size_t start = 0;

    for (size_t i = 0; i < buf->len; i++) {
        if (buf->buf[i] != '\n' && buf->buf[i] != '\r')
            continue;
        buf->buf[i] = '\0';
        if (i > start && line_cb)
            line_cb(buf->buf + start, opaque);
        start = i + 1;
    }
    if (start > 0) {
        memmove(buf->buf, buf->buf + start, buf->len - start);
        buf->len -= start;
        buf->buf[buf->len] = '\0';
    }
}

int qm_command_run(const char *const *argv, struct strbuf *output, qm_command_line_fn line_cb,
                   void *opaque, struct qm_error *err)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t mask;
    int pipefd[2];
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return qm_fail(err, 500, "unable to run '%s': pipe failed: %s", argv[0],
                       strerror(errno));
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
    /* The loop thread may block signals; the tool starts with none blocked. */
    posix_spawnattr_init(&attr);
    sigemptyset(&mask);
    posix_spawnattr_setsigmask(&attr, &mask);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    int r = posix_spawnp(&pid, argv[0], &actions, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (r != 0) {
        close(pipefd[0]);
        return qm_fail(err, 500, "unable to run '%s': %s; is it installed?", argv[0],
                       strerror(r));
    }

    struct strbuf pending = {0};
    struct strbuf kept = {0};
    char chunk[4096];
    for (;;) {
        ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        sb_addn(&pending, chunk, (size_t)n);
        if (kept.len < OUTPUT_MAX)
            sb_addn(&kept, chunk, (size_t)n);
        split_lines(&pending, line_cb, opaque);
    }
    close(pipefd[0]);
    if (pending.len > 0 && line_cb)
        line_cb(pending.buf, opaque);
    sb_free(&pending);

    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = -1;
            break;
        }
    }
    if (!kept.buf)
        sb_add(&kept, "");
    char *text = qm_str_trim(kept.buf);
    int rc = 0;
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* Only the last line: qemu-img puts the reason there. */
        char *last = strrchr(text, '\n');
        const char *reason = last ? last + 1 : text;
        if (status != -1 && WIFSIGNALED(status))
            rc = qm_fail(err, 500, "'%s' was killed by signal %d", argv[0], WTERMSIG(status));
        else
            rc = qm_fail(err, 500, "'%s' failed (exit code %d)%s%s", argv[0],
                         status == -1 ? -1 : WEXITSTATUS(status), *reason ? ": " : "", reason);
    }
    if (output)
        sb_add(output, text);
    sb_free(&kept);
    return rc;
}

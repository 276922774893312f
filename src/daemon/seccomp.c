/* The system call filter of qmd. */
#include <errno.h>
#include <string.h>

#include <seccomp.h>

#include "daemon.h"

static const char *const denied[] = {
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "mount", "umount2", "pivot_root", "chroot",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "ptrace",
    "process_vm_writev", "acct", "open_by_handle_at", "lookup_dcookie", "quotactl",
    "iopl", "ioperm", "syslog", "uselib", "personality",
};

int qm_seccomp_install(struct qm_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int r;

    if (!ctx)
        return qm_fail(err, 500, "unable to create the seccomp filter");
    for (size_t i = 0; i < QM_ARRAY_SIZE(denied); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;   /* not on this architecture */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0) {
            seccomp_release(ctx);
            return qm_fail(err, 500, "unable to add %s to the seccomp filter: %s", denied[i],
                           strerror(-r));
        }
    }
    r = seccomp_load(ctx);
    seccomp_release(ctx);
    if (r < 0)
        return qm_fail(err, 500, "unable to load the seccomp filter: %s", strerror(-r));
    qm_log(QM_LOG_INFO, 0, "seccomp filter installed (%zu calls denied)", QM_ARRAY_SIZE(denied));
    return 0;
}

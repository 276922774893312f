/* Logging to standard error in the form journald keeps. */
#include <stdio.h>

#include "qm/util.h"

int qm_log_max_level = QM_LOG_INFO;

void qm_log(enum qm_log_level level, int vmid, const char *fmt, ...)
{
    struct strbuf sb = {0};
    va_list ap;

    if ((int)level > qm_log_max_level)
        return;
    sb_addf(&sb, "<%d>", (int)level);
    if (vmid > 0)
        sb_addf(&sb, "VM %d: ", vmid);
    va_start(ap, fmt);
    sb_vaddf(&sb, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from child processes do not interleave. */
    sb_addc(&sb, '\n');
    fwrite(sb.buf, 1, sb.len, stderr);
    fflush(stderr);
    sb_free(&sb);
}

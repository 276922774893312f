/* Shell quoting and the "qm showcmd" layouts of a command line. */
#include <stdlib.h>
#include <string.h>

#include "qm/qemu.h"

/* Characters that stay unquoted, as in Perl's String::ShellQuote (used by qemu-server). */
static bool safe_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_!%+,-./:@^", c) != NULL;
}

char *qm_shell_quote(const char *arg)
{
    struct strbuf sb = {0};
    bool plain = arg[0] != '\0';

    for (const char *p = arg; *p && plain; p++)
        plain = safe_char(*p);
    if (plain)
        return qm_strdup(arg);
    sb_addc(&sb, '\'');
    for (const char *p = arg; *p; p++) {
        if (*p == '\'')
            sb_add(&sb, "'\\''");
        else
            sb_addc(&sb, *p);
    }
    sb_addc(&sb, '\'');
    return sb_detach(&sb);
}

char *qm_qemu_cmdline_string(const struct strvec *argv)
{
    struct strbuf sb = {0};

    sb_add(&sb, "");
    for (size_t i = 0; i < argv->n; i++) {
        char *q = qm_shell_quote(argv->v[i]);
        if (i)
            sb_addc(&sb, ' ');
        sb_add(&sb, q);
        free(q);
    }
    return sb_detach(&sb);
}

char *qm_qemu_cmdline_pretty(const struct strvec *argv)
{
    char *line = qm_qemu_cmdline_string(argv);
    struct strbuf sb = {0};

    sb_add(&sb, "");
    for (const char *p = line; *p; p++) {
        if (p[0] == ' ' && p[1] == '-')
            sb_add(&sb, " \\\n  ");
        else
            sb_addc(&sb, *p);
    }
    free(line);
    return sb_detach(&sb);
}

/* Percent-decoding and application/x-www-form-urlencoded parameters. */
#include <string.h>

#include "qm/http.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int http_url_decode(const char *s, size_t len, bool form, struct strbuf *out,
                    struct qm_error *err)
{
    size_t i = 0;

    while (i < len) {
        /* Copy the run up to the next escape in one step. */
        size_t run = i;
        while (run < len && s[run] != '%' && !(form && s[run] == '+'))
            run++;
        if (run > i)
            sb_addn(out, s + i, run - i);
        i = run;
        if (i >= len)
            break;
        if (s[i] == '+') {
            sb_addc(out, ' ');
            i++;
            continue;
        }
        int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return qm_fail(err, 400, "invalid percent-encoding at offset %zu: "
                           "expected '%%' and two hex digits", i);
        if (hi == 0 && lo == 0)
            return qm_fail(err, 400, "invalid percent-encoding at offset %zu: "
                           "NUL bytes (%%00) are not allowed", i);
        sb_addc(out, (char)(hi << 4 | lo));
        i += 3;
    }
    return 0;
}

int http_parse_form(const char *s, size_t len, struct strvec *keys, struct strvec *values,
                    struct qm_error *err)
{
    struct strbuf key = {0}, value = {0};
    const char *end = s + len;
    int rc = 0;

    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(pair_end - s));
        const char *key_end = eq ? eq : pair_end;

        if (pair_end > s) {
            sb_reset(&key);
            sb_reset(&value);
            if (http_url_decode(s, (size_t)(key_end - s), true, &key, err) < 0 ||
                (eq && http_url_decode(eq + 1, (size_t)(pair_end - eq - 1), true, &value,
                                       err) < 0)) {
                rc = -1;
                break;
            }
            sv_push(keys, key.buf ? key.buf : "");
            sv_push(values, value.buf ? value.buf : "");
        }
        s = amp ? amp + 1 : end;
    }
    sb_free(&key);
    sb_free(&value);
    return rc;
}

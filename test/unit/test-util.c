#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qm/util.h"

static void strbuf_grows(void **state)
{
    struct strbuf sb = {0};

    for (int i = 0; i < 1000; i++)
        sb_addf(&sb, "%d,", i);
    assert_int_equal(sb.len, strlen(sb.buf));
    assert_true(qm_str_starts(sb.buf, "0,1,2,"));
    assert_true(qm_str_ends(sb.buf, "998,999,"));
    sb_free(&sb);
}

static void parse_int_rejects_junk(void **state)
{
    long long v;

    assert_true(qm_parse_int("42", &v));
    assert_int_equal(v, 42);
    assert_false(qm_parse_int("", &v));
    assert_false(qm_parse_int("4x", &v));
    assert_false(qm_parse_int(" 4", &v));
    assert_false(qm_parse_int("99999999999999999999", &v));
}

static void paths_follow_root(void **state)
{
    struct qm_paths p;

    qm_paths_init(&p, "/tmp/node");
    assert_string_equal(p.conf_dir, "/tmp/node/etc/pve/qemu-server");
    assert_string_equal(p.run_dir, "/tmp/node/run/qemu-server");
    qm_paths_free(&p);
    qm_paths_init(&p, NULL);
    assert_string_equal(p.conf_dir, "/etc/pve/qemu-server");
    assert_string_equal(p.run_dir, "/var/run/qemu-server");
    qm_paths_free(&p);
}

static void base64_round_trip(void **state)
{
    static const char *texts[] = {"", "h", "hi", "hi\n", "any carnal pleasure."};
    size_t len;

    for (size_t i = 0; i < QM_ARRAY_SIZE(texts); i++) {
        char *encoded = qm_base64_encode((const unsigned char *)texts[i], strlen(texts[i]));
        char *decoded = qm_base64_decode(encoded, &len);
        assert_non_null(decoded);
        assert_int_equal(len, strlen(texts[i]));
        assert_string_equal(decoded, texts[i]);
        free(decoded);
        free(encoded);
    }
    char *encoded = qm_base64_encode((const unsigned char *)"hi\n", 3);
    assert_string_equal(encoded, "aGkK");
    free(encoded);
    assert_null(qm_base64_decode("a*b", &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strbuf_grows),
        cmocka_unit_test(parse_int_rejects_junk),
        cmocka_unit_test(paths_follow_root),
        cmocka_unit_test(base64_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strbuf_grows),
        cmocka_unit_test(parse_int_rejects_junk),
        cmocka_unit_test(paths_follow_root),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

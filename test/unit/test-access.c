#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qm/access.h"

struct fixture {
    char *dir;
    char *priv;
    struct qm_access access;
};

static int setup(void **state)
{
    char template[] = "/tmp/qm-test-access-XXXXXX";
    struct fixture *f = qm_calloc(1, sizeof(*f));
    struct qm_error err;

    f->dir = qm_strdup(mkdtemp(template));
    f->priv = qm_sprintf("%s/priv", f->dir);
    if (qm_access_init(&f->access, f->dir, f->priv, &err) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *cmd = qm_sprintf("rm -rf '%s'", f->dir);

    qm_access_free(&f->access);
    if (system(cmd) != 0)
        return -1;
    free(cmd);
    free(f->priv);
    free(f->dir);
    free(f);
    return 0;
}

static void password_check(void **state)
{
    struct fixture *f = *state;
    struct qm_error err;

    assert_false(qm_access_has_password(&f->access, "root@pam"));
    assert_int_equal(qm_access_set_password(&f->access, "root@pam", "s3cret", &err), 0);
    assert_true(qm_access_has_password(&f->access, "root@pam"));
    assert_int_equal(qm_access_check_password(&f->access, "root@pam", "s3cret", &err), 0);
    assert_int_equal(qm_access_check_password(&f->access, "root@pam", "wrong", &err), -1);
    assert_int_equal(err.code, 401);
    assert_int_equal(qm_access_check_password(&f->access, "nobody@pve", "s3cret", &err), -1);
    assert_int_equal(qm_access_set_password(&f->access, "bad:user@pam", "x", &err), -1);
    assert_int_equal(err.code, 400);
}

static void ticket_round_trip(void **state)
{
    struct fixture *f = *state;
    struct qm_error err;
    char *ticket, *csrf, *user = NULL;
    time_t now = 1800000000;

    qm_access_issue_ticket(&f->access, "root@pam", now, &ticket, &csrf);
    assert_true(qm_str_starts(ticket, "PVE:root@pam:"));
    assert_int_equal(qm_access_verify_ticket(&f->access, ticket, now + 60, &user, &err), 0);
    assert_string_equal(user, "root@pam");
    free(user);
    assert_true(qm_access_verify_csrf(&f->access, csrf, "root@pam", now + 60));
    assert_false(qm_access_verify_csrf(&f->access, csrf, "other@pam", now + 60));

    /* Expired, and tampered with. */
    assert_int_equal(qm_access_verify_ticket(&f->access, ticket, now + QM_TICKET_LIFETIME, &user,
                                             &err), -1);
    ticket[5] = 'X';
    assert_int_equal(qm_access_verify_ticket(&f->access, ticket, now + 60, &user, &err), -1);
    assert_int_equal(err.code, 401);
    free(ticket);
    free(csrf);
}

static void token_and_admin(void **state)
{
    struct fixture *f = *state;
    struct qm_error err;
    char *secret = NULL, *user = NULL;

    assert_int_equal(qm_access_add_token(&f->access, "root@pam", "ci", &secret, &err), 0);
    char *value = qm_sprintf("root@pam!ci=%s", secret);
    assert_int_equal(qm_access_verify_token(&f->access, value, &user, &err), 0);
    assert_string_equal(user, "root@pam!ci");
    assert_true(qm_access_is_admin(&f->access, user));
    free(user);
    free(value);
    assert_int_equal(qm_access_verify_token(&f->access, "root@pam!ci=wrong", &user, &err), -1);
    assert_int_equal(qm_access_verify_token(&f->access, "garbage", &user, &err), -1);
    free(secret);

    assert_int_equal(qm_access_set_password(&f->access, "alice@pve", "pw", &err), 0);
    assert_false(qm_access_is_admin(&f->access, "alice@pve"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(password_check, setup, teardown),
        cmocka_unit_test_setup_teardown(ticket_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(token_and_admin, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

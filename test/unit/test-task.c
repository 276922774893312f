#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qm/task.h"

static char *make_temp_dir(void)
{
    char template[] = "/tmp/qm-test-task-XXXXXX";
    char *dir = mkdtemp(template);

    assert_non_null(dir);
    return qm_strdup(dir);
}

static void upid_round_trip(void **state)
{
    struct qm_upid u;

    assert_int_equal(qm_upid_parse("UPID:node1:0000ABCD:0001E240:6B12F58C:qmstart:100:root@pam:",
                                   &u), 0);
    assert_string_equal(u.node, "node1");
    assert_int_equal(u.pid, 0xABCD);
    assert_int_equal(u.pstart, 0x1E240);
    assert_int_equal(u.starttime, 0x6B12F58C);
    assert_string_equal(u.type, "qmstart");
    assert_string_equal(u.id, "100");
    assert_string_equal(u.user, "root@pam");
}

static void upid_rejects_malformed(void **state)
{
    static const char *bad[] = {
        "",
        "UPID:",
        "UPID:node:ABCD:0001E240:6B12F58C:qmstart:100:root@pam:",
        "UPID:node:0000ABCD:0001E240:6B12F58C:qmstart:100:root@pam",
        "UPID:node:0000ABCD:0001E240:6B12F58C:qm/start:100:root@pam:",
        "UPID:node:0000ABCD:0001E240:6B12F58C::100:root@pam:",
        "XPID:node:0000ABCD:0001E240:6B12F58C:qmstart:100:root@pam:",
    };
    struct qm_upid u;

    for (size_t i = 0; i < QM_ARRAY_SIZE(bad); i++)
        assert_int_equal(qm_upid_parse(bad[i], &u), -1);
}

static void task_log_and_status(void **state)
{
    char *dir = make_temp_dir();
    struct qm_tasks tasks;
    struct qm_error err;
    char *exitstatus = NULL;
    time_t endtime;

    assert_int_equal(qm_tasks_init(&tasks, dir, "node1", &err), 0);
    struct qm_task *ok = qm_task_start(&tasks, "qmstart", "100", "root@pam", &err);
    assert_non_null(ok);
    qm_task_log(ok, "starting");
    qm_task_finish(ok, NULL);
    assert_string_equal(ok->exitstatus, "OK");

    struct qm_task *bad = qm_task_start(&tasks, "qmstart", "100", "root@pam", &err);
    assert_non_null(bad);
    assert_string_not_equal(bad->upid, ok->upid);
    qm_task_finish(bad, "start failed:\nQEMU exited");
    assert_string_equal(bad->exitstatus, "start failed: QEMU exited");

    assert_int_equal(qm_task_read_exitstatus(dir, bad->upid, &exitstatus, &endtime, &err), 0);
    assert_string_equal(exitstatus, "start failed: QEMU exited");
    free(exitstatus);

    char *ok_upid = qm_strdup(ok->upid);
    qm_tasks_free(&tasks);

    /* A new daemon finds the finished tasks of the earlier one. */
    assert_int_equal(qm_tasks_init(&tasks, dir, "node1", &err), 0);
    struct qm_task *found = qm_task_find(&tasks, ok_upid);
    assert_non_null(found);
    assert_string_equal(found->exitstatus, "OK");
    assert_int_equal(tasks.count, 2);
    qm_tasks_free(&tasks);
    free(ok_upid);

    char *cmd = qm_sprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(upid_round_trip),
        cmocka_unit_test(upid_rejects_malformed),
        cmocka_unit_test(task_log_and_status),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Long-running operations reported as Proxmox VE tasks: a UPID, a log file
 * under the task folder and a final status line.
 */
#ifndef QM_TASK_H
#define QM_TASK_H

#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "qm/util.h"

struct qm_task {
    char *upid;
    char *type;          /* qmstart, qmstop, ... */
    char *id;            /* the VM id for VM tasks */
    char *user;          /* user@realm or user@realm!token */
    unsigned pid;
    unsigned long long pstart;
    time_t starttime;
    time_t endtime;      /* 0 while running */
    char *exitstatus;    /* NULL while running: "OK", "WARNINGS: N" or the error */
    int warnings;
    FILE *log;
    char *log_path;
    struct qm_task *next;
};

/* The tasks of one daemon: the running ones and the recently finished ones. */
struct qm_tasks {
    char *dir;
    char *node;
    unsigned pid;
    unsigned long long pstart;
    struct qm_task *head;   /* newest first */
    size_t count;
};

int qm_tasks_init(struct qm_tasks *tasks, const char *dir, const char *node, struct qm_error *err);
void qm_tasks_free(struct qm_tasks *tasks);

/* Starts a task and opens its log; the task stays in the table after it finishes. */
struct qm_task *qm_task_start(struct qm_tasks *tasks, const char *type, const char *id,
                              const char *user, struct qm_error *err);
void qm_task_log(struct qm_task *task, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qm_task_warn(struct qm_task *task, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends a task: error NULL means success. Writes the final line and the index entry. */
void qm_task_finish(struct qm_task *task, const char *error);

/* Finds a task by UPID in the table, or NULL. */
struct qm_task *qm_task_find(struct qm_tasks *tasks, const char *upid);

/* The fields of a UPID string; returns -1 when it is malformed. */
struct qm_upid {
    char node[64];
    unsigned pid;
    unsigned long long pstart;
    time_t starttime;
    char type[64];
    char id[64];
    char user[128];
};
int qm_upid_parse(const char *upid, struct qm_upid *out);
/* The log file of a UPID: DIR/<last hex digit of starttime>/<UPID>. */
char *qm_task_log_path(const char *dir, const char *upid);
/*
 * Reads the status of a finished task from its log's last line into
 * *exitstatus ("OK", "WARNINGS: N", the error, or "unexpected status").
 */
int qm_task_read_exitstatus(const char *dir, const char *upid, char **exitstatus,
                            time_t *endtime, struct qm_error *err);

#endif

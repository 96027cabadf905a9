/* Integration-test harness: runs a real tlpbridged (and hlsim-run
 * simulators) as child processes in a per-test temporary directory, captures
 * their stderr to files, talks to the bridge's control interface, and
 * records check failures.
 *
 * Every wait is bounded by a deadline and driven by an event (a pipe, a
 * socket, a child's exit): nothing sleeps to synchronise. Children are always
 * reaped and the temporary directory is always removed, also when a check
 * fails fatally. */
#ifndef TLPB_IT_HARNESS_H
#define TLPB_IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tlpb/wire.h"

/* Upper bound on any single wait in the tests (a hang is a failure, not a
 * timing threshold: correct runs finish far below it). TLPB_IT_DEADLINE_MS
 * in the environment overrides it (for debugging a hang). */
#define IT_DEADLINE_DEFAULT_MS 30000
int it_deadline_ms(void);
#define IT_DEADLINE_MS it_deadline_ms()

/* Paths of the executables under test, from the command line. */
struct it_paths {
    const char *bridge;     /* --tlpbridged */
    const char *sim;        /* --hlsim-run */
    const char *model;      /* --model (libdmacopy.so) */
    const char *ctl;        /* --tlpbctl */
    const char *tracetool;  /* --tlpbtrace */
    const char *configs;    /* --configs (examples/configs) */
    const char *mode;       /* --mode, test specific */
};
extern struct it_paths it_paths;

#define IT_MAX_CHILDREN 16
#define IT_MAX_ARGS 40

struct it_child {
    bool used;
    bool running;
    bool expect_exit;       /* killed or stopped on purpose */
    pid_t pid;
    char name[48];
    char log_path[256];
    int status;             /* waitpid status once reaped */
};

struct it_harness {
    char dir[128];          /* temporary directory */
    char socket_path[192];  /* the bridge's unix socket */
    struct it_child children[IT_MAX_CHILDREN];
    struct it_child *bridge;
};

extern struct it_harness it;

/* ---- Checks --------------------------------------------------------------- */

extern volatile int it_failures;

void it_fail_at(const char *file, int line, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A failed CHECK is counted and the test goes on; a failed REQUIRE ends the
 * test (after cleanup). Both print where and why. */
#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (!(cond))                                                                             \
            it_fail_at(__FILE__, __LINE__, false, "check failed: " #cond ": " __VA_ARGS__);      \
    } while (0)
#define REQUIRE(cond, ...)                                                                       \
    do {                                                                                         \
        if (!(cond))                                                                             \
            it_fail_at(__FILE__, __LINE__, true, "requirement failed: " #cond ": " __VA_ARGS__); \
    } while (0)
#define CHECK_EQ_U64(actual, expected, what)                                                     \
    do {                                                                                         \
        uint64_t a_ = (uint64_t)(actual), e_ = (uint64_t)(expected);                            \
        if (a_ != e_)                                                                            \
            it_fail_at(__FILE__, __LINE__, false, "%s: got 0x%llx, expected 0x%llx", what,       \
                       (unsigned long long)a_, (unsigned long long)e_);                          \
    } while (0)

/* Run one named case: prints PASS/FAIL with the failures it added. */
#define IT_RUN(name, call)                                                                       \
    do {                                                                                         \
        int before_ = it_failures;                                                               \
        printf("---- %s\n", name);                                                               \
        fflush(stdout);                                                                          \
        call;                                                                                    \
        printf("%s %s\n", it_failures == before_ ? "PASS" : "FAIL", name);                       \
        fflush(stdout);                                                                          \
    } while (0)

/* ---- Lifecycle ------------------------------------------------------------ */

/* Parse the common options, create the temporary directory, install the
 * cleanup. Unknown options are an error. */
void it_init(int argc, char **argv, const char *test_name);
/* Stop every child (SIGTERM to the bridge: it must exit 0), reap them, check
 * their logs for sanitizer reports, print the logs' tails on a failure (or
 * always with TLPB_IT_VERBOSE set), remove the directory, and return the
 * exit status for main (0 only when nothing failed). */
int it_finish(void);

/* The test breaks PCIe rules on purpose: it_finish does not fail it for
 * the violations the bridge's checker counted. Without this, it_finish
 * queries the status of the running bridge before stopping it and fails
 * the test when any device's checker counted a violation. */
void it_expect_violations(void);
/* Narrower: the test breaks rule on device on purpose, count times (call
 * once per rule). it_finish then fails the test unless each rule so named
 * was counted exactly as declared and no other violation on any device. */
void it_expect_violation(const char *device, const char *rule, unsigned count);
/* Total checker violations over every device of a status reply (-1: the
 * reply has no checker object). */
long long it_json_violations(const char *json);

/* A path inside the test directory (valid until it_finish). */
const char *it_path(const char *name);
/* Write a text file (config) into the test directory; returns its path. */
const char *it_write_file(const char *name, const char *text);
/* Whether the file at path holds exactly text. */
bool it_file_holds(const char *path, const char *text);

/* ---- Child processes ------------------------------------------------------ */

/* The one child starter of the tests and benchmarks: fork and exec argv
 * (argv[0] is the executable's path, NULL-terminated) with stdin from
 * /dev/null and stdout and stderr appended to out_path and err_path (NULL:
 * inherited; the same path: one file). keep_fd (or -1) stays open across
 * exec. The child is killed when the calling process dies, so nothing is
 * left running after a crashed test. Returns the pid, or -1 (errno set)
 * when fork failed; an exec failure is the child's exit status 127. */
pid_t it_spawn(const char *const *argv, const char *out_path, const char *err_path, int keep_fd);
/* it_spawn for a program that reports readiness as tlpbridged does: argv
 * gets "--ready-fd N" appended, and this waits up to timeout_ms for the
 * program to write "ready\n". *ready says whether it did (false also when
 * it exited first). Returns the pid, or -1 when fork or pipe failed. */
pid_t it_spawn_ready(const char *const *argv, const char *out_path, const char *err_path,
                     int timeout_ms, bool *ready);
/* Wait up to the deadline for pid to exit, SIGKILL it if it does not, and
 * reap it. Returns its waitpid status; *killed says whether it had to be
 * killed. */
int it_reap(pid_t pid, bool *killed);
/* pidfd_open(2), or -1 where the kernel has none: readable once pid exits. */
int it_pidfd_open(pid_t pid);

/* Start argv as a child of the harness named name (stdout and stderr to its
 * log; stopped with SIGTERM by it_finish, which it must survive with exit
 * status 0; its log checked for sanitizer reports). Fatal on failure. */
struct it_child *it_start_child(const char *name, const char *const *argv);
/* Start tlpbridged with --listen it.socket_path, --ready-fd and the given
 * extra arguments (NULL-terminated); waits for "ready". Fatal on failure. */
struct it_child *it_start_bridge(const char *const *extra_args);
/* Start `hlsim-run` for device with the model (fast: --fast-dma). Returns
 * once the process runs; attachment is observed by the caller (host side or
 * control status). */
struct it_child *it_start_sim(const char *device, bool fast_dma);

/* Send a signal to a child. SIGKILL/SIGTERM mark the exit as expected. */
void it_signal(struct it_child *c, int sig);
/* Wait (bounded) for the child to exit; returns its waitpid status. */
int it_wait_exit(struct it_child *c);
/* Fatal if any running child has exited without being told to. */
void it_check_children(void);

/* Does the child's log contain needle? (Reads the whole file.) The bridge
 * logs to unbuffered stderr before it sends the reply a test waits for, so
 * once the reply is in, the line is in the file. */
bool it_log_contains(const struct it_child *c, const char *needle);
/* The whole log (malloc'd), or NULL. */
char *it_read_log(const struct it_child *c);
/* Print the tail of a child's log to stdout (on failures). */
void it_dump_log(const struct it_child *c);

/* ---- Control interface ---------------------------------------------------- */

/* Send one control command over the bridge's socket (role control) and
 * return the reply text (malloc'd) with *ok set. NULL (and a failure
 * recorded) when there was no reply. args is NULL-terminated. */
char *it_control(const char *command, const char *const *args, bool *ok);

/* The same in steps, for a test that must have a request in the bridge's
 * socket at a chosen moment: a control connection (handshake done), a
 * request sent without waiting, its reply. Failures are recorded. */
struct it_control_conn {
    int fd;
    struct tlpb_frame_reader rd;
};
bool it_control_open(struct it_control_conn *cc);
bool it_control_send(struct it_control_conn *cc, const char *command, const char *const *args);
char *it_control_reply(struct it_control_conn *cc, const char *command, bool *ok);
void it_control_close(struct it_control_conn *cc);

/* Run a program to completion with stdout captured (malloc'd, NUL
 * terminated) and stderr to a log file; returns its exit code, or -1. */
int it_run_capture(const char *const *argv, char **out, char **err_out);
/* Run tlpbtrace (--tlpbtrace) with args (NULL-terminated, at most 14) as
 * it_run_capture does. */
int it_trace_tool(const char *const *args, char **out, char **err);
/* `tlpbtrace args... --count`: the number of records it counts, or -1 after
 * a failed check (it did not exit 0 or printed no number). */
long it_trace_count(const char *const *args);

/* ---- Minimal JSON field access for the status reply ---------------------- */

/* The JSON object of device `name` inside a status reply (a pointer into
 * json, to its "name" member), or NULL. */
const char *it_json_device(const char *json, const char *name);
/* Integer member `key` of the object starting at obj (searches forward to
 * the end of that object). Returns false if absent. */
bool it_json_uint(const char *obj, const char *key, unsigned long long *value);
/* Boolean member (true/false) into *value. Returns false if absent. */
bool it_json_bool(const char *obj, const char *key, bool *value);
/* String member: copies into out. "null" gives an empty string and false. */
bool it_json_str(const char *obj, const char *key, char *out, size_t out_size);
/* Integer / boolean member key of device's object in the bridge's status
 * (device NULL: of the status reply itself), asked for now; 0 / false and a
 * failed check when the member is absent. */
unsigned long long it_status_uint(const char *device, const char *key);
bool it_status_bool(const char *device, const char *key);

uint64_t it_now_ms(void);

#endif

/* Integration-test harness: child processes, logs, control client, checks.
 * See harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tlpb/wire.h"

struct it_paths it_paths;
struct it_harness it;
volatile int it_failures;

static const char *test_name = "test";
static bool finishing;
static unsigned capture_seq;

uint64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int it_deadline_ms(void)
{
    static int value;
    if (!value) {
        const char *env = getenv("TLPB_IT_DEADLINE_MS");
        value = env && atoi(env) > 0 ? atoi(env) : IT_DEADLINE_DEFAULT_MS;
    }
    return value;
}

void it_fail_at(const char *file, int line, bool fatal, const char *fmt, ...)
{
    __atomic_add_fetch(&it_failures, 1, __ATOMIC_SEQ_CST);
    const char *base = strrchr(file, '/');
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    printf("FAILED %s:%d: %s\n", base ? base + 1 : file, line, msg);
    fflush(stdout);
    if (fatal) {
        if (!finishing)
            it_finish();
        exit(1);
    }
}

/* ---- Files ---------------------------------------------------------------- */

/* Paths handed out stay valid until it_finish. */
static char **paths_given;
static size_t paths_count;

const char *it_path(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", it.dir, name) < 0)
        it_fail_at(__FILE__, __LINE__, true, "out of memory");
    char **grown = realloc(paths_given, (paths_count + 1) * sizeof(*grown));
    REQUIRE(grown != NULL, "out of memory");
    paths_given = grown;
    paths_given[paths_count++] = p;
    return p;
}

static void free_paths(void)
{
    for (size_t i = 0; i < paths_count; i++)
        free(paths_given[i]);
    free(paths_given);
    paths_given = NULL;
    paths_count = 0;
}

const char *it_write_file(const char *name, const char *text)
{
    const char *path = it_path(name);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL, "cannot create %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    return path;
}

static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

bool it_file_holds(const char *path, const char *text)
{
    char *contents = read_file(path, NULL);
    bool same = contents && strcmp(contents, text) == 0;
    free(contents);
    return same;
}

char *it_read_log(const struct it_child *c)
{
    return read_file(c->log_path, NULL);
}

bool it_log_contains(const struct it_child *c, const char *needle)
{
    char *text = read_file(c->log_path, NULL);
    bool found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

void it_dump_log(const struct it_child *c)
{
    size_t len = 0;
    char *text = read_file(c->log_path, &len);
    if (!text)
        return;
    /* the last 60 lines */
    const char *start = text + len;
    unsigned lines = 0;
    while (start > text && lines <= 60) {
        start--;
        if (*start == '\n')
            lines++;
    }
    printf("==== last lines of %s (%s) ====\n%s\n==== end of %s ====\n", c->name, c->log_path,
           start, c->name);
    fflush(stdout);
    free(text);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

/* ---- Children --------------------------------------------------------------- */

int it_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static const char *describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "status 0x%x", status);
    return buf;
}

static void reaped(struct it_child *c, int status)
{
    c->running = false;
    c->status = status;
}

int it_reap(pid_t pid, bool *killed)
{
    int status = 0;
    *killed = false;
    int pfd = it_pidfd_open(pid);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int rc;
        do
            rc = poll(&p, 1, IT_DEADLINE_MS);
        while (rc < 0 && errno == EINTR);
        close(pfd);
        if (rc == 0) {
            kill(pid, SIGKILL);
            *killed = true;
        }
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int it_wait_exit(struct it_child *c)
{
    if (!c->running)
        return c->status;
    bool killed;
    int status = it_reap(c->pid, &killed);
    if (killed) {
        printf("FAILED: %s (pid %d) did not exit within %d ms; killed it\n", c->name,
               (int)c->pid, IT_DEADLINE_MS);
        __atomic_add_fetch(&it_failures, 1, __ATOMIC_SEQ_CST);
    }
    reaped(c, status);
    return status;
}

void it_signal(struct it_child *c, int sig)
{
    if (!c || !c->running)
        return;
    if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT)
        c->expect_exit = true;
    kill(c->pid, sig);
    if (sig == SIGSTOP) {
        /* Return only once it has really stopped. */
        int status = 0;
        pid_t r;
        do
            r = waitpid(c->pid, &status, WUNTRACED);
        while (r < 0 && errno == EINTR);
        if (r == c->pid && !WIFSTOPPED(status)) {
            reaped(c, status);
            it_fail_at(__FILE__, __LINE__, true, "%s exited instead of stopping (status 0x%x)",
                       c->name, status);
        }
    }
}

void it_check_children(void)
{
    for (unsigned i = 0; i < IT_MAX_CHILDREN; i++) {
        struct it_child *c = &it.children[i];
        if (!c->used || !c->running)
            continue;
        int status;
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r != c->pid)
            continue;
        reaped(c, status);
        if (!c->expect_exit) {
            char why[96];
            it_dump_log(c);
            it_fail_at(__FILE__, __LINE__, true, "%s (pid %d) died unexpectedly: %s", c->name,
                       (int)c->pid, describe_status(status, why, sizeof(why)));
        }
    }
}

static struct it_child *new_child(const char *name)
{
    for (unsigned i = 0; i < IT_MAX_CHILDREN; i++) {
        struct it_child *c = &it.children[i];
        if (!c->used) { /* never reused: the logs of exited children are checked at the end */
            memset(c, 0, sizeof(*c));
            c->used = true;
            snprintf(c->name, sizeof(c->name), "%s", name);
            static unsigned seq;
            char file[96];
            snprintf(file, sizeof(file), "%s.%u.log", name, seq++);
            snprintf(c->log_path, sizeof(c->log_path), "%s", it_path(file));
            return c;
        }
    }
    it_fail_at(__FILE__, __LINE__, true, "too many child processes");
    return NULL;
}

static int open_output(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
}

pid_t it_spawn(const char *const *argv, const char *out_path, const char *err_path, int keep_fd)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Never outlive the parent, even when it is killed. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(125);
    int in = open("/dev/null", O_RDONLY);
    int out = out_path ? open_output(out_path) : 1;
    int err = !err_path ? 2 : err_path == out_path ? out : open_output(err_path);
    if (in < 0 || out < 0 || err < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (keep_fd >= 0) {
        int flags = fcntl(keep_fd, F_GETFD);
        fcntl(keep_fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

pid_t it_spawn_ready(const char *const *argv, const char *out_path, const char *err_path,
                     int timeout_ms, bool *ready)
{
    *ready = false;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", pipefd[1]);
    const char *args[IT_MAX_ARGS + 3];
    unsigned n = 0;
    for (; argv[n] && n < IT_MAX_ARGS; n++)
        args[n] = argv[n];
    args[n++] = "--ready-fd";
    args[n++] = fdarg;
    args[n] = NULL;
    pid_t pid = it_spawn(args, out_path, err_path, pipefd[1]);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        return -1;
    }
    /* Wait for "ready\n" (or EOF: the program failed to start). */
    char buf[16] = "";
    size_t got = 0;
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    while (got < 6) {
        uint64_t now = it_now_ms();
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        ssize_t r = read(pipefd[0], buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(pipefd[0]);
    *ready = got >= 6 && strncmp(buf, "ready\n", 6) == 0;
    return pid;
}

static void print_command(const char *const *argv)
{
    printf("starting:");
    for (unsigned i = 0; argv[i]; i++)
        printf(" %s", argv[i]);
    printf("\n");
}

struct it_child *it_start_child(const char *name, const char *const *argv)
{
    struct it_child *c = new_child(name);
    print_command(argv);
    c->pid = it_spawn(argv, c->log_path, c->log_path, -1);
    REQUIRE(c->pid > 0, "fork: %s", strerror(errno));
    c->running = true;
    return c;
}

struct it_child *it_start_bridge(const char *const *extra_args)
{
    REQUIRE(it_paths.bridge != NULL, "--tlpbridged not given");
    struct it_child *c = new_child("tlpbridged");
    const char *argv[IT_MAX_ARGS];
    unsigned n = 0;
    argv[n++] = it_paths.bridge;
    argv[n++] = "--listen";
    argv[n++] = it.socket_path;
    for (unsigned i = 0; extra_args && extra_args[i]; i++) {
        REQUIRE(n + 1 < IT_MAX_ARGS, "too many bridge arguments");
        argv[n++] = extra_args[i];
    }
    argv[n] = NULL;
    print_command(argv);
    bool ready;
    c->pid = it_spawn_ready(argv, c->log_path, c->log_path, IT_DEADLINE_MS, &ready);
    REQUIRE(c->pid > 0, "fork: %s", strerror(errno));
    c->running = true;
    it.bridge = c;
    if (!ready) {
        it_check_children();
        it_dump_log(c);
        it_fail_at(__FILE__, __LINE__, true, "tlpbridged did not report ready");
    }
    return c;
}

struct it_child *it_start_sim(const char *device, bool fast_dma)
{
    REQUIRE(it_paths.sim != NULL && it_paths.model != NULL, "--hlsim-run/--model not given");
    const char *argv[] = {it_paths.sim, "--socket", it.socket_path, "--device", device,
                          "--model", it_paths.model, fast_dma ? "--fast-dma" : NULL, NULL};
    return it_start_child("hlsim-run", argv);
}

int it_run_capture(const char *const *argv, char **out, char **err_out)
{
    char out_name[64], err_name[64];
    snprintf(out_name, sizeof(out_name), "capture.%u.out", capture_seq);
    snprintf(err_name, sizeof(err_name), "capture.%u.err", capture_seq++);
    char out_path[320], err_path[320];
    snprintf(out_path, sizeof(out_path), "%s", it_path(out_name));
    snprintf(err_path, sizeof(err_path), "%s", it_path(err_name));
    struct it_child tmp = {.used = true, .running = true};
    snprintf(tmp.name, sizeof(tmp.name), "%s", argv[0]);
    tmp.pid = it_spawn(argv, out_path, err_path, -1);
    if (tmp.pid < 0)
        return -1;
    int status = it_wait_exit(&tmp);
    char *o = read_file(out_path, NULL);
    char *e = read_file(err_path, NULL);
    if (out)
        *out = o ? o : strdup("");
    else
        free(o);
    if (err_out)
        *err_out = e ? e : strdup("");
    else
        free(e);
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int it_trace_tool(const char *const *args, char **out, char **err)
{
    const char *argv[16];
    unsigned n = 0;
    argv[n++] = it_paths.tracetool;
    for (unsigned i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return it_run_capture(argv, out, err);
}

long it_trace_count(const char *const *args)
{
    const char *argv[16];
    unsigned n = 0;
    for (unsigned i = 0; args[i] && n < 14; i++)
        argv[n++] = args[i];
    argv[n++] = "--count";
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = it_trace_tool(argv, &out, &err);
    long count = -1;
    if (rc == 0 && out) {
        char *end;
        count = strtol(out, &end, 10);
        if (end == out || (*end != '\n' && *end != '\0'))
            count = -1;
    }
    CHECK(rc == 0 && count >= 0, "tlpbtrace %s --count: exit %d, output '%s', errors '%s'",
          args[0] ? args[0] : "", rc, out ? out : "", err ? err : "");
    free(out);
    free(err);
    return count;
}

/* ---- Lifecycle ------------------------------------------------------------- */

/* The whole test's deadline, below the ctest TIMEOUT so that a hang still
 * ends with the children killed and the directory removed. */
static void watchdog(int sig)
{
    static const char msg[] = "FAILED: the test's overall deadline (--watchdog) expired; stopping\n";
    ssize_t ignored = write(1, msg, sizeof(msg) - 1);
    (void)ignored;
    for (unsigned i = 0; i < IT_MAX_CHILDREN; i++)
        if (it.children[i].used && it.children[i].running)
            kill(it.children[i].pid, SIGKILL);
    if (it.dir[0])
        nftw(it.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    _exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: %s --tlpbridged PATH [--hlsim-run PATH] [--model PATH] [--tlpbctl PATH]"
                    " [--tlpbtrace PATH] [--configs DIR] [--mode MODE] [--watchdog SECONDS]\n", test_name);
}

void it_init(int argc, char **argv, const char *name)
{
    test_name = name;
    unsigned watchdog_s = 100;
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const struct option opts[] = {
        {"tlpbridged", required_argument, NULL, 'b'}, {"hlsim-run", required_argument, NULL, 's'},
        {"model", required_argument, NULL, 'm'},      {"tlpbctl", required_argument, NULL, 'c'},
        {"tlpbtrace", required_argument, NULL, 't'},  {"configs", required_argument, NULL, 'C'},
        {"mode", required_argument, NULL, 'M'},       {"watchdog", required_argument, NULL, 'W'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'b': it_paths.bridge = optarg; break;
        case 's': it_paths.sim = optarg; break;
        case 'm': it_paths.model = optarg; break;
        case 'c': it_paths.ctl = optarg; break;
        case 't': it_paths.tracetool = optarg; break;
        case 'C': it_paths.configs = optarg; break;
        case 'M': it_paths.mode = optarg; break;
        case 'W': watchdog_s = (unsigned)atoi(optarg); break;
        default: usage(); exit(2);
        }
    }
    if (optind != argc || !it_paths.bridge) {
        usage();
        exit(2);
    }
    signal(SIGPIPE, SIG_IGN); /* raw-socket tests write to connections the bridge drops */
    signal(SIGALRM, watchdog);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(it.dir, sizeof(it.dir), "%s/tlpbit-XXXXXX", tmp);
    if (!mkdtemp(it.dir)) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", name, it.dir, strerror(errno));
        exit(2);
    }
    snprintf(it.socket_path, sizeof(it.socket_path), "%s/bridge.sock", it.dir);
    printf("%s: working in %s\n", name, it.dir);
    alarm(watchdog_s);
}

static bool log_has_sanitizer_report(const struct it_child *c)
{
    static const char *markers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                    "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer",
                                    "WARNING: AddressSanitizer"};
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
        if (it_log_contains(c, markers[i]))
            return true;
    return false;
}

static bool violations_expected;

void it_expect_violations(void)
{
    violations_expected = true;
}

#define IT_EXPECTED_RULES_MAX 8
static struct {
    char device[48];
    char rule[48];
    unsigned count;
} expected_rules[IT_EXPECTED_RULES_MAX];
static unsigned expected_rule_count;

void it_expect_violation(const char *device, const char *rule, unsigned count)
{
    REQUIRE(expected_rule_count < IT_EXPECTED_RULES_MAX, "more than %u expected rules",
            IT_EXPECTED_RULES_MAX);
    snprintf(expected_rules[expected_rule_count].device, sizeof(expected_rules[0].device), "%s",
             device);
    snprintf(expected_rules[expected_rule_count].rule, sizeof(expected_rules[0].rule), "%s", rule);
    expected_rules[expected_rule_count].count = count;
    expected_rule_count++;
}

static const char *member(const char *obj, const char *key);

/* How often device's checker counted rule in a status reply (0 when the
 * rule is not listed; -1 when the device or its checker is missing). */
static long long json_rule_count(const char *json, const char *device, const char *rule)
{
    const char *dev = it_json_device(json, device);
    const char *checker = dev ? member(dev, "checker") : NULL;
    const char *rules = checker && *checker == '{' ? member(checker + 1, "rules") : NULL;
    if (!rules || *rules != '{')
        return -1;
    unsigned long long n = 0;
    return it_json_uint(rules + 1, rule, &n) ? (long long)n : 0;
}

long long it_json_violations(const char *json)
{
    long long total = -1;
    for (const char *p = json; (p = strstr(p, "\"checker\": {")) != NULL; p++) {
        unsigned long long n;
        if (!it_json_uint(p, "violations", &n))
            return -1;
        total = (total < 0 ? 0 : total) + (long long)n;
    }
    return total;
}

/* Zero violations is a property of every test that does not break a rule
 * on purpose: asked of the bridge before it is stopped. */
static void check_no_violations(void)
{
    static bool asked;
    struct it_child *b = it.bridge;
    if (asked)
        return;
    asked = true;
    if (violations_expected || !b || !b->running || b->expect_exit || it_failures)
        return;
    bool ok = false;
    char *json = it_control("status", NULL, &ok);
    if (!json)
        return; /* it_control recorded the failure */
    long long n = it_json_violations(json);
    long long expected = 0;
    bool as_declared = ok;
    for (unsigned i = 0; i < expected_rule_count; i++) {
        expected += expected_rules[i].count;
        long long c = json_rule_count(json, expected_rules[i].device, expected_rules[i].rule);
        if (c != (long long)expected_rules[i].count) {
            printf("FAILED: device %s: the bridge's PCIe checker counted %s %lld times, the test"
                   " breaks it %u times\n", expected_rules[i].device, expected_rules[i].rule, c,
                   expected_rules[i].count);
            as_declared = false;
        }
    }
    if (!as_declared || n != expected) {
        printf("FAILED: the bridge's PCIe checker counted %lld violation%s, expected %lld"
               " (docs/checker.md; the log names them); status: %s\n", n, n == 1 ? "" : "s",
               expected, json);
        __atomic_add_fetch(&it_failures, 1, __ATOMIC_SEQ_CST);
    }
    free(json);
}

int it_finish(void)
{
    if (finishing)
        return 1;
    check_no_violations();
    finishing = true;
    /* Simulators first, then the bridge, each must exit cleanly. */
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < IT_MAX_CHILDREN; i++) {
            struct it_child *c = &it.children[i];
            if (!c->used || !c->running || (c == it.bridge) != (pass == 1))
                continue;
            bool expected = c->expect_exit;
            kill(c->pid, SIGCONT); /* in case a test stopped it */
            kill(c->pid, SIGTERM);
            int status = it_wait_exit(c);
            char why[96];
            if (!expected && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                printf("FAILED: %s did not exit cleanly on SIGTERM: %s\n", c->name,
                       describe_status(status, why, sizeof(why)));
                __atomic_add_fetch(&it_failures, 1, __ATOMIC_SEQ_CST);
            }
        }
    }
    for (unsigned i = 0; i < IT_MAX_CHILDREN; i++) {
        struct it_child *c = &it.children[i];
        if (c->used && log_has_sanitizer_report(c)) {
            printf("FAILED: sanitizer report in the log of %s\n", c->name);
            __atomic_add_fetch(&it_failures, 1, __ATOMIC_SEQ_CST);
        }
    }
    if (it_failures || getenv("TLPB_IT_VERBOSE")) {
        for (unsigned i = 0; i < IT_MAX_CHILDREN; i++)
            if (it.children[i].used)
                it_dump_log(&it.children[i]);
    }
    if (it.dir[0])
        nftw(it.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free_paths();
    printf("%s: %s (%d failed check%s)\n", test_name, it_failures ? "FAIL" : "PASS", it_failures,
           it_failures == 1 ? "" : "s");
    fflush(stdout);
    return it_failures ? 1 : 0;
}

/* ---- Control client ------------------------------------------------------- */

bool it_control_open(struct it_control_conn *cc)
{
    char err[512];
    cc->fd = tlpb_connect(it.socket_path, err, sizeof(err));
    if (cc->fd < 0) {
        it_fail_at(__FILE__, __LINE__, false, "control: %s", err);
        return false;
    }
    tlpb_reader_init(&cc->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_CONTROL, NULL, "integration-test");
    Tlpb__Envelope *reply = tlpb_handshake(cc->fd, &cc->rd, &hello, IT_DEADLINE_MS, err, sizeof(err));
    if (!reply) {
        it_fail_at(__FILE__, __LINE__, false, "control: handshake: %s", err);
        it_control_close(cc);
        return false;
    }
    tlpb_envelope_free(reply);
    return true;
}

bool it_control_send(struct it_control_conn *cc, const char *command, const char *const *args)
{
    size_t nargs = 0;
    while (args && args[nargs])
        nargs++;
    Tlpb__ControlRequest req = TLPB__CONTROL_REQUEST__INIT;
    req.command = (char *)command;
    req.n_args = nargs;
    req.args = (char **)args;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REQUEST;
    env.control_request = &req;
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_DEFAULT_MAX_FRAME_BYTES, TLPB_DEFAULT_MAX_FRAME_BYTES);
    int rc = tlpb_obuf_append(&ob, &env, true);
    if (rc == 0)
        rc = tlpb_obuf_write_all(&ob, cc->fd);
    tlpb_obuf_free(&ob);
    if (rc != 0)
        it_fail_at(__FILE__, __LINE__, false, "control %s: send: %s", command, strerror(-rc));
    return rc == 0;
}

char *it_control_reply(struct it_control_conn *cc, const char *command, bool *ok)
{
    *ok = false;
    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        int rc = tlpb_reader_read_frame(&cc->rd, cc->fd, IT_DEADLINE_MS, &frame, &len, &reason);
        if (rc <= 0) {
            it_fail_at(__FILE__, __LINE__, false, "control %s: no reply: %s", command, reason);
            return NULL;
        }
        Tlpb__Envelope *msg = tlpb_envelope_decode(frame, len, &reason);
        if (!msg) {
            it_fail_at(__FILE__, __LINE__, false, "control %s: bad reply: %s", command, reason);
            return NULL;
        }
        if (msg->body_case == TLPB__ENVELOPE__BODY_CONTROL_REPLY) {
            *ok = msg->control_reply->ok;
            char *text = strdup(msg->control_reply->text ? msg->control_reply->text : "");
            tlpb_envelope_free(msg);
            return text;
        }
        tlpb_envelope_free(msg);
    }
}

void it_control_close(struct it_control_conn *cc)
{
    if (cc->fd < 0)
        return;
    tlpb_reader_free(&cc->rd);
    close(cc->fd);
    cc->fd = -1;
}

char *it_control(const char *command, const char *const *args, bool *ok)
{
    struct it_control_conn cc;
    char *text = NULL;

    *ok = false;
    if (!it_control_open(&cc))
        return NULL;
    if (it_control_send(&cc, command, args))
        text = it_control_reply(&cc, command, ok);
    it_control_close(&cc);
    return text;
}

/* ---- JSON ------------------------------------------------------------------ */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

/* End of the object that contains p (one past its closing brace). */
static const char *object_end(const char *p)
{
    int depth = 0;
    bool in_string = false;
    for (; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = false;
            continue;
        }
        if (*p == '"')
            in_string = true;
        else if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']') {
            if (depth == 0)
                return p;
            depth--;
        }
    }
    return p;
}

/* Value of member key within [obj, end), or NULL. */
static const char *member(const char *obj, const char *key)
{
    const char *end = object_end(obj);
    char quoted[128];
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    for (const char *p = strstr(obj, quoted); p && p < end; p = strstr(p + 1, quoted)) {
        const char *q = skip_ws(p + strlen(quoted));
        if (*q == ':')
            return skip_ws(q + 1);
    }
    return NULL;
}

/* The object it_status_* read key from (device NULL: the whole reply), in
 * a reply malloc'd into *json; NULL after a failed check. */
static const char *status_object(const char *device, const char *key, char **json)
{
    bool ok = false;
    *json = it_control("status", NULL, &ok);
    const char *obj = *json && ok ? (device ? it_json_device(*json, device) : *json) : NULL;
    CHECK(obj != NULL, "no status%s%s to read %s from: %s", device ? " of " : "",
          device ? device : "", key, *json ? *json : "(no reply)");
    return obj;
}

unsigned long long it_status_uint(const char *device, const char *key)
{
    char *json;
    const char *obj = status_object(device, key, &json);
    unsigned long long v = 0;
    CHECK(!obj || it_json_uint(obj, key, &v), "status of %s has no %s",
          device ? device : "the bridge", key);
    free(json);
    return v;
}

bool it_status_bool(const char *device, const char *key)
{
    char *json;
    const char *obj = status_object(device, key, &json);
    bool v = false;
    CHECK(!obj || it_json_bool(obj, key, &v), "status of %s has no %s",
          device ? device : "the bridge", key);
    free(json);
    return v;
}

const char *it_json_device(const char *json, const char *name)
{
    if (!json)
        return NULL;
    for (const char *p = strstr(json, "\"name\""); p; p = strstr(p + 1, "\"name\"")) {
        const char *q = skip_ws(p + 6);
        if (*q != ':')
            continue;
        q = skip_ws(q + 1);
        size_t n = strlen(name);
        if (*q == '"' && strncmp(q + 1, name, n) == 0 && q[1 + n] == '"')
            return p;
    }
    return NULL;
}

bool it_json_uint(const char *obj, const char *key, unsigned long long *value)
{
    const char *v = obj ? member(obj, key) : NULL;
    if (!v || *v < '0' || *v > '9')
        return false;
    *value = strtoull(v, NULL, 10);
    return true;
}

bool it_json_bool(const char *obj, const char *key, bool *value)
{
    const char *v = obj ? member(obj, key) : NULL;
    if (v && strncmp(v, "true", 4) == 0)
        *value = true;
    else if (v && strncmp(v, "false", 5) == 0)
        *value = false;
    else
        return false;
    return true;
}

bool it_json_str(const char *obj, const char *key, char *out, size_t out_size)
{
    out[0] = '\0';
    const char *v = obj ? member(obj, key) : NULL;
    if (!v || *v != '"')
        return false;
    size_t n = 0;
    for (v++; *v && *v != '"' && n + 1 < out_size; v++) {
        if (*v == '\\' && v[1])
            v++;
        out[n++] = *v;
    }
    out[n] = '\0';
    return true;
}

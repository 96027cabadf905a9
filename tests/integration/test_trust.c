/* Who may talk to the bridge and what a peer can do to it:
 *  - control over TCP needs the token; models load only from allowed
 *    locations, checked before anything is opened; `trace on` never
 *    overwrites a file;
 *  - the host library, hlsim-run and tlpbctl present the token (option,
 *    environment, file) and are refused clearly without it;
 *  - peer text in the log is escaped;
 *  - a connection that never says Hello is closed; at the fd limit the
 *    bridge logs once, counts, and keeps serving the attached host;
 *  - a flood of one message is summarised with a count.
 * --mode names the shared object outside the allowed model directories. */
#define _GNU_SOURCE /* prlimit */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "tlpb/wire.h"

#define TOKEN "tlpb-test-token-7f3a"
#define DMACOPY_ID 0x7A111234u /* device ID << 16 | vendor ID */

static struct dmacopy_fixture fx;
static char tcp_address[96];
static const char *token_file;

/* The TCP port the bridge bound ("--tcp 127.0.0.1:0"), from its log. */
static void find_tcp_address(void)
{
    char *log = it_read_log(it.bridge);
    const char *at = log ? strstr(log, "listening on tcp:127.0.0.1:") : NULL;
    REQUIRE(at != NULL, "the bridge did not log its TCP port");
    int port = atoi(at + strlen("listening on tcp:127.0.0.1:"));
    free(log);
    snprintf(tcp_address, sizeof(tcp_address), "tcp:127.0.0.1:%d", port);
    printf("bridge TCP address %s\n", tcp_address);
}

/* Number of lines of the bridge's log holding needle (and not skip). */
static unsigned log_lines_with(const struct it_child *c, const char *needle, const char *skip)
{
    char *log = it_read_log(c);
    unsigned n = 0;
    for (char *line = log; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (strstr(line, needle) && !(skip && strstr(line, skip)))
            n++;
        line = end ? end + 1 : line + strlen(line);
    }
    free(log);
    return n;
}

static int ctl(char **out, char **err, const char *socket, const char *a0, const char *a1,
               const char *a2)
{
    const char *argv[] = {it_paths.ctl, "--socket", socket, a0, a1, a2, NULL};
    int rc = it_run_capture(argv, out, err);
    printf("  tlpbctl --socket %s %s %s %s -> %d\n", socket, a0, a1 ? a1 : "", a2 ? a2 : "", rc);
    return rc;
}

/* ---- A raw peer ------------------------------------------------------------ */

struct raw_peer {
    int fd;
    struct tlpb_frame_reader rd;
};

static bool raw_open(struct raw_peer *p, const char *address, Tlpb__Role role,
                     const char *device, const char *peer_name)
{
    char err[512];
    p->fd = tlpb_connect(address, err, sizeof(err));
    REQUIRE(p->fd >= 0, "connect %s: %s", address, err);
    tlpb_reader_init(&p->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, role, (device ? device : ""), peer_name);
    Tlpb__Envelope *reply = tlpb_handshake(p->fd, &p->rd, &hello, IT_DEADLINE_MS, err, sizeof(err));
    CHECK(reply != NULL, "handshake as %s: %s", peer_name, err);
    if (reply)
        tlpb_envelope_free(reply);
    return reply != NULL;
}

static void raw_close(struct raw_peer *p)
{
    tlpb_reader_free(&p->rd);
    close(p->fd);
}

static void raw_send(struct raw_peer *p, const Tlpb__Envelope *env)
{
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_DEFAULT_MAX_FRAME_BYTES);
    int rc = tlpb_obuf_append(&ob, env, true);
    if (rc == 0)
        rc = tlpb_obuf_write_all(&ob, p->fd);
    tlpb_obuf_free(&ob);
    REQUIRE(rc == 0, "send: %s", strerror(-rc));
}

static void raw_send_error(struct raw_peer *p, const char *reason)
{
    Tlpb__Error e = TLPB__ERROR__INIT;
    e.reason = (char *)reason;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_ERROR;
    env.error = &e;
    raw_send(p, &env);
}

/* Wait for the next envelope of kind body (others are skipped). */
static Tlpb__Envelope *raw_wait(struct raw_peer *p, Tlpb__Envelope__BodyCase body)
{
    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        int rc = tlpb_reader_read_frame(&p->rd, p->fd, IT_DEADLINE_MS, &frame, &len, &reason);
        if (rc <= 0) {
            it_fail_at(__FILE__, __LINE__, false, "waiting for message %d: %s", (int)body, reason);
            return NULL;
        }
        Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
        if (env && env->body_case == body)
            return env;
        if (env)
            tlpb_envelope_free(env);
    }
}

/* A host's config read and its completion: everything the host sent before
 * has been handled by the bridge once this returns. */
static void raw_host_round_trip(struct raw_peer *p)
{
    struct tlpb_tlp req = {.kind = TLPB_TLP_CFGRD0, .tag = 7, .length_dw = 1, .first_be = 0xF,
                           .completer_id = 0x0100, .bar_hint = TLPB_NO_BAR};
    Tlpb__Tlp pb;
    tlpb_tlp_to_pb(&pb, &req);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = &pb;
    raw_send(p, &env);
    Tlpb__Envelope *cpl = raw_wait(p, TLPB__ENVELOPE__BODY_TLP);
    CHECK(cpl && cpl->tlp->tag == 7, "no completion for the config read");
    if (cpl)
        tlpb_envelope_free(cpl);
}

/* The bridge closes the connection: the next read sees EOF (bounded). */
static bool wait_closed(int fd)
{
    struct tlpb_frame_reader rd;
    tlpb_reader_init(&rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    const uint8_t *frame;
    size_t len;
    const char *reason = "";
    int rc;
    do
        rc = tlpb_reader_read_frame(&rd, fd, IT_DEADLINE_MS, &frame, &len, &reason);
    while (rc > 0); /* a refusal may come first */
    tlpb_reader_free(&rd);
    CHECK(rc == 0, "the connection was not closed by the bridge: %s", reason);
    return rc == 0;
}

/* ---- A host through libtlpbhost with a given token ------------------------ */

static char host_log_text[4096];

static int no_dma_read(void *o, uint64_t a, void *b, uint32_t l)
{
    (void)o, (void)a, (void)b, (void)l;
    return 1;
}
static int no_dma_write(void *o, uint64_t a, const void *b, uint32_t l)
{
    (void)o, (void)a, (void)b, (void)l;
    return 1;
}
static void no_irq(void *o, enum tlpb_host_irq_kind k, unsigned v)
{
    (void)o, (void)k, (void)v;
}
static void keep_log(void *o, enum tlpb_host_log_level level, const char *message)
{
    (void)o, (void)level;
    size_t used = strlen(host_log_text);
    snprintf(host_log_text + used, sizeof(host_log_text) - used, "%s\n", message);
}

/* Open a host of device at address with token (NULL: the environment's);
 * returns whether it connected, and checks a config read through it. */
static bool host_with_token(const char *address, const char *device, const char *token)
{
    static const struct tlpb_host_ops ops = {.dma_read = no_dma_read, .dma_write = no_dma_write,
                                             .interrupt = no_irq, .log = keep_log};
    struct tlpb_host_config cfg = {.address = address, .device_name = device, .token = token,
                                   .read_timeout_ms = (uint32_t)IT_DEADLINE_MS,
                                   .reconnect_interval_ms = 3600000};
    struct tlpb_host *h = NULL;
    char err[256];
    host_log_text[0] = '\0';
    REQUIRE(tlpb_host_open(&h, &cfg, &ops, NULL, err, sizeof(err)) == 0, "host open: %s", err);
    bool connected = tlpb_host_connected(h);
    if (connected) {
        uint32_t id = 0;
        int rc = tlpb_host_config_read(h, 0, &id);
        CHECK(rc == 0 && id == DMACOPY_ID, "config read through the host: rc %d id 0x%08x", rc, id);
    }
    tlpb_host_close(h);
    return connected;
}

/* ---- Item: control authorisation ----------------------------------------- */

static void case_tcp_control_needs_token(void)
{
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, tcp_address, "status", NULL, NULL);
    CHECK(rc == 1 && strstr(err, "control over TCP needs the bridge's token"),
          "control over loopback TCP without a configured token: exit %d '%s' '%s'", rc, out, err);
    free(out);
    free(err);
    /* Hosts over loopback TCP are still served without a token. */
    CHECK(host_with_token(tcp_address, "spare0", NULL),
          "a host over loopback TCP (no token configured) was refused: %s", host_log_text);
    /* The unix socket (mode 0600) stays the way to control the bridge. */
    rc = ctl(&out, &err, it.socket_path, "status", NULL, NULL);
    CHECK(rc == 0, "control over the unix socket: %d '%s'", rc, err);
    free(out);
    free(err);
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    REQUIRE(in >= 0 && out >= 0, "copy %s to %s: %s", from, to, strerror(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        REQUIRE(write(out, buf, (size_t)n) == n, "write %s: %s", to, strerror(errno));
    close(in);
    close(out);
}

static void case_reload_from_allowed_locations(const char *outside_model)
{
    char *out = NULL, *err = NULL;
    bool ok;
    const char *args_outside[] = {"dmacopy0", outside_model, NULL};
    char *reply = it_control("reload", args_outside, &ok);
    CHECK(!ok && reply && strstr(reply, "not in an allowed model directory"),
          "reload of a model outside the allowed directories: ok %d '%s'", ok, reply);
    free(reply);
    /* A symlink inside an allowed directory to a file outside it. */
    const char *escape = it_path("models/escape.so");
    REQUIRE(symlink(outside_model, escape) == 0, "symlink: %s", strerror(errno));
    const char *args_escape[] = {"dmacopy0", escape, NULL};
    reply = it_control("reload", args_escape, &ok);
    CHECK(!ok && reply && strstr(reply, "not in an allowed model directory"),
          "reload through a symlink out of the model directory: ok %d '%s'", ok, reply);
    free(reply);
    CHECK(!it_log_contains(it.bridge, "OUTSIDE-MODEL-CONSTRUCTOR-RAN"),
          "the bridge opened a model from outside the allowed locations (its constructor ran)");
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID after the refused reloads");

    /* Allowed: a model inside --model-dir, and the configured model itself
     * (through a symlink elsewhere: the real path counts). */
    const char *copy = it_path("models/dmacopy-copy.so");
    copy_file(it_paths.model, copy);
    const char *args_copy[] = {"dmacopy0", copy, NULL};
    reply = it_control("reload", args_copy, &ok);
    CHECK(ok, "reload from the model directory: '%s'", reply);
    free(reply);
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID after a reload from the model directory");
    const char *link = it_path("configured-model.so");
    REQUIRE(symlink(it_paths.model, link) == 0, "symlink: %s", strerror(errno));
    int rc = ctl(&out, &err, it.socket_path, "reload", "dmacopy0", link);
    CHECK(rc == 0, "reload of the configured model: %d '%s'", rc, err);
    free(out);
    free(err);
    rc = ctl(&out, &err, it.socket_path, "reload", "dmacopy0", outside_model);
    CHECK(rc == 1 && strstr(err, "not in an allowed model directory"),
          "tlpbctl reload from outside: %d '%s'", rc, err);
    free(out);
    free(err);
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID at the end");
}

static void case_trace_only_new_files(void)
{
    const char *existing = it_write_file("existing.trace", "precious contents\n");
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, it.socket_path, "trace", "on", existing);
    CHECK(rc == 1 && strstr(err, "exists"), "trace on an existing file: %d '%s' '%s'", rc, out, err);
    free(out);
    free(err);
    CHECK(it_file_holds(existing, "precious contents\n"), "the existing file was changed");
    const char *fresh = it_path("fresh.trace");
    rc = ctl(&out, &err, it.socket_path, "trace", "on", fresh);
    CHECK(rc == 0 && strstr(out, fresh), "trace on a new file: %d '%s' '%s'", rc, out, err);
    free(out);
    free(err);
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID while tracing");
    rc = ctl(&out, &err, it.socket_path, "trace", "off", NULL);
    CHECK(rc == 0, "trace off: %d '%s'", rc, err);
    free(out);
    free(err);
    struct stat st;
    CHECK(stat(fresh, &st) == 0 && st.st_size > 8, "the new trace holds nothing");
    /* Once written, the trace is not overwritten by the next `trace on`. */
    rc = ctl(&out, &err, it.socket_path, "trace", "on", fresh);
    CHECK(rc == 1 && strstr(err, "exists"), "trace on the previous trace: %d '%s'", rc, err);
    free(out);
    free(err);
}

/* ---- Item: peer text in the log ------------------------------------------- */

static void case_peer_text_escaped(void)
{
    struct raw_peer p;
    const char *forged = "evil\n00:00:00.000 tlpbridged error: FORGED-LINE \x1b[31mred";
    if (raw_open(&p, it.socket_path, TLPB__ROLE__ROLE_CONTROL, NULL, forged)) {
        Tlpb__ControlRequest req = TLPB__CONTROL_REQUEST__INIT;
        req.command = (char *)"status\nFORGED-COMMAND";
        Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
        env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REQUEST;
        env.control_request = &req;
        raw_send(&p, &env);
        Tlpb__Envelope *reply = raw_wait(&p, TLPB__ENVELOPE__BODY_CONTROL_REPLY);
        CHECK(reply && !reply->control_reply->ok, "no refusal of the bogus command");
        if (reply)
            tlpb_envelope_free(reply);
        raw_close(&p);
    }
    if (raw_open(&p, it.socket_path, TLPB__ROLE__ROLE_HOST, "spare0", "host")) {
        raw_send_error(&p, "bad\nFORGED-ERROR\x1b]0;title\x07");
        raw_host_round_trip(&p);
        raw_close(&p);
    }
    char *log = it_read_log(it.bridge);
    REQUIRE(log, "no bridge log");
    CHECK(!strstr(log, "\nFORGED") && !strstr(log, "\n00:00:00.000 tlpbridged error: FORGED"),
          "a peer forged a log line");
    CHECK(!strchr(log, '\x1b') && !strchr(log, '\x07'), "terminal escapes reached the log");
    CHECK(strstr(log, "evil\\x0a00:00:00.000") != NULL, "the peer name is not in the log, escaped");
    CHECK(strstr(log, "status\\x0aFORGED-COMMAND") != NULL, "the command is not in the log, escaped");
    CHECK(strstr(log, "bad\\x0aFORGED-ERROR\\x1b]0;title\\x07") != NULL,
          "the peer's error text is not in the log, escaped");
    free(log);
}

/* ---- Item: connections that never complete the handshake ------------------ */

static void case_handshake_timeout(void)
{
    char err[256];
    /* A silent unix connection, and half a length prefix over TCP: both
     * open at once, both closed by the bridge. */
    int silent = tlpb_connect(it.socket_path, err, sizeof(err));
    REQUIRE(silent >= 0, "connect: %s", err);
    int partial = tlpb_connect(tcp_address, err, sizeof(err));
    REQUIRE(partial >= 0, "connect: %s", err);
    CHECK(write(partial, "\x10\x00", 2) == 2, "write");
    CHECK(wait_closed(silent), "a silent unix connection stayed open");
    CHECK(wait_closed(partial), "a TCP connection with half a frame stayed open");
    close(silent);
    close(partial);
    CHECK(log_lines_with(it.bridge, "no Hello within 2000 ms", NULL) == 2,
          "the bridge did not log the two handshake timeouts");
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID after the handshake timeouts");
}

/* ---- Item: fd exhaustion -------------------------------------------------- */

/* The lowest fd number the process does not use: with RLIMIT_NOFILE at it,
 * the next accept fails with EMFILE. */
static int lowest_free_fd(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    static bool used[65536];
    memset(used, 0, sizeof(used));
    DIR *d = opendir(dir);
    REQUIRE(d, "opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int n = atoi(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && n >= 0 && n < 65536)
            used[n] = true;
    }
    closedir(d);
    int fd = 0;
    while (fd < 65536 && used[fd])
        fd++;
    return fd;
}

static void case_fd_exhaustion(void)
{
    pid_t pid = it.bridge->pid;
    struct rlimit old;
    REQUIRE(prlimit(pid, RLIMIT_NOFILE, NULL, &old) == 0, "prlimit: %s", strerror(errno));
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)lowest_free_fd(pid);
    REQUIRE(prlimit(pid, RLIMIT_NOFILE, &low, NULL) == 0, "prlimit: %s", strerror(errno));
    printf("  bridge RLIMIT_NOFILE lowered to %llu\n", (unsigned long long)low.rlim_cur);
    for (int i = 0; i < 3; i++) {
        char err[256];
        int fd = tlpb_connect(it.socket_path, err, sizeof(err));
        REQUIRE(fd >= 0, "connect: %s", err);
        CHECK(wait_closed(fd), "connection %d at the fd limit", i);
        close(fd);
        /* The attached host is still served. */
        CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID while out of fds");
    }
    unsigned lines = log_lines_with(it.bridge, "out of file descriptors, new connections", NULL);
    CHECK(lines == 1, "the fd exhaustion was logged %u times (want once)", lines);
    REQUIRE(prlimit(pid, RLIMIT_NOFILE, &old, NULL) == 0, "prlimit: %s", strerror(errno));
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, it.socket_path, "status", NULL, NULL);
    CHECK(rc == 0, "control after the fd limit was raised again: %d '%s'", rc, err);
    free(out);
    free(err);
    CHECK(it_log_contains(it.bridge, "3 connection(s) were refused while out of file descriptors"),
          "the bridge did not report the count of refused connections");
}

/* The lowest fd above 2 the process has open on /dev/null: the bridge's
 * spare descriptor for shedding connections (or one below it). */
static int lowest_devnull_fd(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    REQUIRE(d, "opendir %s: %s", dir, strerror(errno));
    int lowest = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int n = atoi(e->d_name);
        char link[320], target[64];
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (n > 2 && strcmp(target, "/dev/null") == 0 && (lowest < 0 || n < lowest))
            lowest = n;
    }
    closedir(d);
    return lowest;
}

/* Out of descriptors with not even the spare one usable: RLIMIT_NOFILE at
 * or below the spare descriptor, so closing it frees nothing accept could
 * use. The pending connection cannot be shed; the bridge must say so (once)
 * and serve it when descriptors are free again. */
static void case_fd_exhaustion_no_spare(void)
{
    pid_t pid = it.bridge->pid;
    struct rlimit old;
    REQUIRE(prlimit(pid, RLIMIT_NOFILE, NULL, &old) == 0, "prlimit: %s", strerror(errno));
    int spare = lowest_devnull_fd(pid), free_fd = lowest_free_fd(pid);
    REQUIRE(spare > 2, "the bridge holds no spare descriptor on /dev/null");
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)(spare < free_fd ? spare : free_fd);
    REQUIRE(prlimit(pid, RLIMIT_NOFILE, &low, NULL) == 0, "prlimit: %s", strerror(errno));
    printf("  spare fd %d, bridge RLIMIT_NOFILE lowered to %llu\n", spare,
           (unsigned long long)low.rlim_cur);
    char err[256];
    int fd = tlpb_connect(it.socket_path, err, sizeof(err));
    REQUIRE(fd >= 0, "connect: %s", err);
    /* Two round trips with the attached host: the bridge has looked at the
     * listener (readable since before the first) in between. */
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID while out of fds, no spare");
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID while out of fds, no spare");
    unsigned lines = log_lines_with(it.bridge, "no spare descriptor left to close them with", NULL);
    CHECK(lines == 1, "fd exhaustion without a spare descriptor logged %u times (want once)",
          lines);
    REQUIRE(prlimit(pid, RLIMIT_NOFILE, &old, NULL) == 0, "prlimit: %s", strerror(errno));
    /* The connection that waited is served now. */
    struct tlpb_frame_reader rd;
    tlpb_reader_init(&rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_CONTROL, NULL, "waited-for-a-descriptor");
    Tlpb__Envelope *reply = tlpb_handshake(fd, &rd, &hello, IT_DEADLINE_MS, err, sizeof(err));
    CHECK(reply != NULL, "the connection that waited was not served: %s", err);
    if (reply)
        tlpb_envelope_free(reply);
    tlpb_reader_free(&rd);
    close(fd);
    CHECK(it_log_contains(it.bridge, "accepting connections again: 0 connection(s) were refused"),
          "the bridge did not say it accepts again");
}

/* ---- Item: log flood ------------------------------------------------------ */

#define FLOOD_COUNT 300u

static void case_log_flood(void)
{
    struct raw_peer p;
    REQUIRE(raw_open(&p, it.socket_path, TLPB__ROLE__ROLE_HOST, "spare0", "flooder"),
            "flooding host refused");
    for (unsigned i = 0; i < FLOOD_COUNT; i++) {
        char reason[64];
        snprintf(reason, sizeof(reason), "flood-marker %u", i);
        raw_send_error(&p, reason);
    }
    raw_host_round_trip(&p);
    raw_close(&p);
    unsigned logged = log_lines_with(it.bridge, "flood-marker", "more like it");
    printf("  %u of %u repeated messages logged before the summary\n", logged, FLOOD_COUNT);
    CHECK(logged < FLOOD_COUNT, "every one of %u repeated messages was logged", logged);
    /* The summary is owed; a stopping bridge logs what it still owes. */
    it_signal(it.bridge, SIGTERM);
    int status = it_wait_exit(it.bridge);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bridge exit status 0x%x", status);
    char *log = it_read_log(it.bridge);
    unsigned long long summarised = 0;
    unsigned summaries = 0;
    for (const char *at = log; at && (at = strstr(at, "flood-marker")) != NULL; at++) {
        const char *eol = strchr(at, '\n');
        const char *more = strstr(at, "[and ");
        if (more && (!eol || more < eol) && strstr(more, "more like it")) {
            summarised += strtoull(more + 5, NULL, 10);
            summaries++;
        }
    }
    free(log);
    CHECK(summaries > 0, "no summary of the repeated message");
    logged = log_lines_with(it.bridge, "flood-marker", "more like it");
    CHECK(logged + summarised == FLOOD_COUNT,
          "%u logged + %llu summarised != %u sent", logged, summarised, FLOOD_COUNT);
}

/* ---- Item: every client presents the token --------------------------------- */

static struct it_child *sim_over_tcp(const char *device)
{
    char saved[sizeof(it.socket_path)];
    snprintf(saved, sizeof(saved), "%s", it.socket_path);
    snprintf(it.socket_path, sizeof(it.socket_path), "%s", tcp_address);
    struct it_child *c = it_start_sim(device, false);
    snprintf(it.socket_path, sizeof(it.socket_path), "%s", saved);
    return c;
}

static void case_token_clients(void)
{
    char *out = NULL, *err = NULL;
    unsetenv("TLPB_TOKEN");
    unsetenv("TLPB_TOKEN_FILE");

    /* tlpbctl: --token-file, TLPB_TOKEN, TLPB_TOKEN_FILE; refused without. */
    const char *with_file[] = {it_paths.ctl, "--socket", tcp_address, "--token-file", token_file,
                               "status", NULL};
    int rc = it_run_capture(with_file, &out, &err);
    CHECK(rc == 0 && strstr(out, "dmacopy0"), "tlpbctl --token-file over TCP: %d '%s'", rc, err);
    free(out);
    free(err);
    rc = ctl(&out, &err, tcp_address, "status", NULL, NULL);
    CHECK(rc == 1 && strstr(err, "bad or missing token"), "tlpbctl without a token: %d '%s'", rc, err);
    free(out);
    free(err);
    setenv("TLPB_TOKEN", "wrong-token", 1);
    rc = ctl(&out, &err, tcp_address, "status", NULL, NULL);
    CHECK(rc == 1 && strstr(err, "bad or missing token"), "tlpbctl with a wrong token: %d '%s'", rc, err);
    free(out);
    free(err);
    setenv("TLPB_TOKEN", TOKEN, 1);
    rc = ctl(&out, &err, tcp_address, "status", NULL, NULL);
    CHECK(rc == 0, "tlpbctl with TLPB_TOKEN: %d '%s'", rc, err);
    free(out);
    free(err);
    unsetenv("TLPB_TOKEN");
    setenv("TLPB_TOKEN_FILE", token_file, 1);
    rc = ctl(&out, &err, tcp_address, "status", NULL, NULL);
    CHECK(rc == 0, "tlpbctl with TLPB_TOKEN_FILE: %d '%s'", rc, err);
    free(out);
    free(err);
    unsetenv("TLPB_TOKEN_FILE");
    const char *missing_file[] = {it_paths.ctl, "--socket", tcp_address, "--token-file",
                                  it_path("no-such-token"), "status", NULL};
    rc = it_run_capture(missing_file, &out, &err);
    CHECK(rc == 2 && strstr(err, "no-such-token"), "tlpbctl with a missing token file: %d '%s'", rc, err);
    free(out);
    free(err);

    /* The host library: the config's token, the environment; refused without. */
    CHECK(host_with_token(tcp_address, "dmacopy0", TOKEN), "host with the token: %s", host_log_text);
    CHECK(!host_with_token(tcp_address, "dmacopy0", NULL), "a host without a token was accepted");
    CHECK(strstr(host_log_text, "bad or missing token") != NULL,
          "the host's refusal does not say why: %s", host_log_text);
    CHECK(!host_with_token(tcp_address, "dmacopy0", "wrong-token"), "a host with a wrong token was accepted");
    setenv("TLPB_TOKEN", TOKEN, 1);
    CHECK(host_with_token(tcp_address, "dmacopy0", NULL), "host with TLPB_TOKEN: %s", host_log_text);
    unsetenv("TLPB_TOKEN");

    /* hlsim-run: refused without a token (and says so), attaches with it. */
    struct it_child *refused = sim_over_tcp("ext0");
    refused->expect_exit = true;
    int status = it_wait_exit(refused);
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "hlsim-run without a token exited 0");
    CHECK(it_log_contains(refused, "bad or missing token"), "hlsim-run does not say why it was refused");
    setenv("TLPB_TOKEN_FILE", token_file, 1);
    sim_over_tcp("ext0");
    unsetenv("TLPB_TOKEN_FILE");
    struct dmacopy_fixture ext;
    fx_bridge_address = NULL;
    fx_open(&ext, "ext0", false);
    REQUIRE(fx_wait_attached(&ext, true), "hlsim-run with TLPB_TOKEN_FILE never attached");
    CHECK_EQ_U64(fx_config_read(&ext, 0), DMACOPY_ID, "ID through the simulator");
    fx_close(&ext);
}

/* tlpbridged exits 2 with msg on stderr for the given arguments. */
static void expect_start_refused(const char *const *args, const char *msg)
{
    const char *argv[24] = {it_paths.bridge, "--listen", it_path("refused.sock")};
    unsigned n = 3;
    for (unsigned i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = it_run_capture(argv, &out, &err);
    CHECK(rc == 2 && err && strstr(err, msg), "expected exit 2 with '%s': %d '%s'", msg, rc, err);
    free(out);
    free(err);
}

static void case_bad_settings(const char *device_spec)
{
    const char *both = it_write_file("both.cfg", "token = \"a\";\ntoken_file = \"bridge.token\";\n");
    const char *a1[] = {"--config", both, "--device", device_spec, NULL};
    expect_start_refused(a1, "give 'token' or 'token_file', not both");
    const char *a2[] = {"--token-file", it_path("no-such-token"), "--device", device_spec, NULL};
    expect_start_refused(a2, "no-such-token");
    const char *empty = it_write_file("empty.token", "\n");
    const char *a3[] = {"--token-file", empty, "--device", device_spec, NULL};
    expect_start_refused(a3, "holds no token");
    const char *a4[] = {"--model-dir", it_path("no-such-dir"), "--device", device_spec, NULL};
    expect_start_refused(a4, "model directory");
    const char *a5[] = {"--handshake-timeout-ms", "0", "--device", device_spec, NULL};
    expect_start_refused(a5, "--handshake-timeout-ms wants");
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "trust");
    REQUIRE(it_paths.mode, "--mode OUTSIDE_MODEL.so is required");
    REQUIRE(mkdir(it_path("models"), 0700) == 0, "mkdir: %s", strerror(errno));
    token_file = it_write_file("bridge.token", TOKEN "\n");

    /* A bridge without a token, TCP on loopback. */
    char dmacopy_spec[1200], spare_spec[1200];
    snprintf(dmacopy_spec, sizeof(dmacopy_spec), "dmacopy0:hlsim=%s", it_paths.model);
    snprintf(spare_spec, sizeof(spare_spec), "spare0:fallback=%s", it_paths.model);
    const char *args[] = {"--device", dmacopy_spec, "--device", spare_spec, "--tcp", "127.0.0.1:0",
                          "--model-dir", it_path("models"), "--handshake-timeout-ms", "2000",
                          NULL};
    it_start_bridge(args);
    find_tcp_address();
    fx_open(&fx, "dmacopy0", false);
    CHECK_EQ_U64(fx_config_read(&fx, 0), DMACOPY_ID, "ID");
    IT_RUN("control over TCP needs the token", case_tcp_control_needs_token());
    IT_RUN("models load only from allowed locations", case_reload_from_allowed_locations(it_paths.mode));
    IT_RUN("trace on only creates new files", case_trace_only_new_files());
    IT_RUN("peer text is escaped in the log", case_peer_text_escaped());
    IT_RUN("connections without Hello are closed", case_handshake_timeout());
    IT_RUN("fd exhaustion: logged once, attached host served", case_fd_exhaustion());
    IT_RUN("fd exhaustion without a spare descriptor: logged, then served",
           case_fd_exhaustion_no_spare());
    fx_close(&fx);
    IT_RUN("a flood of one message is summarised", case_log_flood());

    IT_RUN("bad trust settings are refused at start", case_bad_settings(dmacopy_spec));

    /* A bridge that requires a token over TCP, from its configuration file
     * (paths relative to the file). */
    char ext_spec[1200];
    snprintf(ext_spec, sizeof(ext_spec), "ext0:external=%s", it_paths.model);
    const char *cfg = it_write_file("trust.cfg", "token_file = \"bridge.token\";\n"
                                                 "model_dirs = [ \"models\" ];\n"
                                                 "handshake_timeout_ms = 2000;\n");
    const char *token_args[] = {"--config", cfg, "--device", dmacopy_spec, "--device", ext_spec,
                                "--tcp", "127.0.0.1:0", NULL};
    it_start_bridge(token_args);
    find_tcp_address();
    IT_RUN("every client presents the token", case_token_clients());
    return it_finish();
}

/* qtest (and minimal QMP) client: see qtest_client.h. */
#define _GNU_SOURCE
#include "qtest_client.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* QMP events seen while waiting for command replies, for qt_qmp_wait_event. */
static char qmp_events[1 << 16];
static size_t qmp_events_len;

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    REQUIRE(strlen(path) < sizeof(sa.sun_path), "socket path too long: %s", path);
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0, "socket: %s", strerror(errno));
    REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", path,
            strerror(errno));
    REQUIRE(listen(fd, 1) == 0, "listen: %s", strerror(errno));
    return fd;
}


/* Accept QEMU's connection, or fail if QEMU exits or the deadline passes. */
static int accept_from_qemu(struct qt_qemu *q, int listen_fd, const char *what)
{
    int pidfd = it_pidfd_open(q->pid);
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    for (;;) {
        uint64_t now = it_now_ms();
        if (now >= deadline)
            break;
        struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        int rc = poll(p, pidfd >= 0 ? 2 : 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        if (p[0].revents & POLLIN) {
            int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (pidfd >= 0)
                close(pidfd);
            REQUIRE(fd >= 0, "accept %s: %s", what, strerror(errno));
            return fd;
        }
        if (pidfd >= 0 && (p[1].revents & POLLIN)) {
            close(pidfd);
            qt_alive(q);
            qt_dump_log(q);
            it_fail_at(__FILE__, __LINE__, true, "QEMU exited before connecting its %s socket",
                       what);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    qt_dump_log(q);
    it_fail_at(__FILE__, __LINE__, true, "QEMU did not connect its %s socket within %d ms", what,
               IT_DEADLINE_MS);
    return -1;
}

void qt_start(struct qt_qemu *q, const char *qemu_binary, const char *const *extra_args, bool qmp)
{
    static unsigned seq;
    char name[64];
    memset(q, 0, sizeof(*q));
    q->qmp_fd = -1;
    qmp_events_len = 0;

    snprintf(name, sizeof(name), "qemu.%u.log", seq);
    snprintf(q->log_path, sizeof(q->log_path), "%s", it_path(name));
    snprintf(name, sizeof(name), "qtest.%u.sock", seq);
    const char *qtest_path = it_path(name);
    snprintf(name, sizeof(name), "qmp.%u.sock", seq++);
    const char *qmp_path = it_path(name);
    int qtest_listen = listen_unix(qtest_path);
    int qmp_listen = qmp ? listen_unix(qmp_path) : -1;

    char qtest_arg[300], qmp_arg[300];
    snprintf(qtest_arg, sizeof(qtest_arg), "unix:%s", qtest_path);
    snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s", qmp_path);
    const char *argv[IT_MAX_ARGS + 20];
    unsigned n = 0;
    argv[n++] = qemu_binary;
    argv[n++] = "-machine";
    argv[n++] = "q35";
    argv[n++] = "-accel";
    argv[n++] = "qtest";
    argv[n++] = "-qtest";
    argv[n++] = qtest_arg;
    argv[n++] = "-qtest-log";
    argv[n++] = "/dev/null";
    argv[n++] = "-display";
    argv[n++] = "none";
    argv[n++] = "-nodefaults";
    if (qmp) {
        argv[n++] = "-qmp";
        argv[n++] = qmp_arg;
    }
    for (unsigned i = 0; extra_args && extra_args[i]; i++) {
        REQUIRE(n + 1 < sizeof(argv) / sizeof(argv[0]), "too many QEMU arguments");
        argv[n++] = extra_args[i];
    }
    argv[n] = NULL;
    printf("starting:");
    for (unsigned i = 0; i < n; i++)
        printf(" %s", argv[i]);
    printf("\n");

    pid_t pid = it_spawn(argv, q->log_path, q->log_path, -1);
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    q->pid = pid;
    q->running = true;
    q->qtest_fd = accept_from_qemu(q, qtest_listen, "qtest");
    close(qtest_listen);
    unlink(qtest_path);
    if (qmp) {
        q->qmp_fd = accept_from_qemu(q, qmp_listen, "QMP");
        close(qmp_listen);
        unlink(qmp_path);
        REQUIRE(qt_qmp(q, "{\"execute\": \"qmp_capabilities\"}", NULL, 0),
                "QMP capabilities negotiation failed");
    }
}

bool qt_alive(struct qt_qemu *q)
{
    if (!q->running)
        return false;
    int status;
    if (waitpid(q->pid, &status, WNOHANG) == q->pid) {
        q->running = false;
        q->status = status;
        return false;
    }
    return true;
}

bool qt_stop(struct qt_qemu *q)
{
    if (q->qtest_fd >= 0)
        close(q->qtest_fd);
    if (q->qmp_fd >= 0)
        close(q->qmp_fd);
    q->qtest_fd = q->qmp_fd = -1;
    if (!qt_alive(q))
        goto done;
    kill(q->pid, SIGTERM);
    bool killed;
    q->status = it_reap(q->pid, &killed);
    if (killed)
        printf("FAILED: QEMU did not exit within %d ms of SIGTERM; killed it\n", IT_DEADLINE_MS);
    q->running = false;
done:
    if (WIFEXITED(q->status) && WEXITSTATUS(q->status) == 0)
        return true;
    if (WIFSIGNALED(q->status))
        printf("QEMU was killed by signal %d (%s)\n", WTERMSIG(q->status),
               strsignal(WTERMSIG(q->status)));
    else
        printf("QEMU exited with status %d\n", WEXITSTATUS(q->status));
    return false;
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap * 2);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

bool qt_log_contains(const struct qt_qemu *q, const char *needle)
{
    char *text = read_whole(q->log_path);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

void qt_dump_log(const struct qt_qemu *q)
{
    char *text = read_whole(q->log_path);
    printf("==== QEMU log (%s) ====\n%s\n==== end of QEMU log ====\n", q->log_path,
           text ? text : "(none)");
    fflush(stdout);
    free(text);
}

/* Read one line from fd into the buffer, waiting until the deadline. The
 * returned line is NUL-terminated in place; *consumed is what to drop after
 * use. */
static char *read_line(struct qt_qemu *q, int fd, char *buf, size_t cap, size_t *len,
                       size_t *consumed, const char *what)
{
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    for (;;) {
        char *nl = memchr(buf, '\n', *len);
        if (nl) {
            *nl = '\0';
            if (nl > buf && nl[-1] == '\r')
                nl[-1] = '\0';
            *consumed = (size_t)(nl - buf) + 1;
            return buf;
        }
        REQUIRE(*len + 1 < cap, "%s: line longer than %zu bytes", what, cap);
        uint64_t now = it_now_ms();
        if (now >= deadline) {
            qt_dump_log(q);
            it_fail_at(__FILE__, __LINE__, true, "%s: no answer from QEMU within %d ms", what,
                       IT_DEADLINE_MS);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        ssize_t r = recv(fd, buf + *len, cap - 1 - *len, 0);
        if (r <= 0) {
            qt_alive(q);
            qt_dump_log(q);
            it_fail_at(__FILE__, __LINE__, true, "%s: QEMU closed the connection (%s)", what,
                       q->running ? "still running" : "it exited");
        }
        *len += (size_t)r;
    }
}

static void drop(char *buf, size_t *len, size_t n)
{
    memmove(buf, buf + n, *len - n);
    *len -= n;
}

static void send_all(struct qt_qemu *q, int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, text, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            qt_alive(q);
            qt_dump_log(q);
            it_fail_at(__FILE__, __LINE__, true, "send to QEMU: %s",
                       w < 0 ? strerror(errno) : "closed");
        }
        text += w;
        len -= (size_t)w;
    }
}

static char answer[1 << 16];

const char *qt_request(struct qt_qemu *q, const char *fmt, ...)
{
    char line[1 << 14];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    REQUIRE(n > 0 && (size_t)n < sizeof(line) - 1, "qtest request too long");
    line[n++] = '\n';
    send_all(q, q->qtest_fd, line, (size_t)n);
    for (;;) {
        size_t consumed;
        char *l = read_line(q, q->qtest_fd, q->rx, sizeof(q->rx), &q->rx_len, &consumed, "qtest");
        if (strncmp(l, "IRQ ", 4) == 0) { /* asynchronous: not an answer */
            drop(q->rx, &q->rx_len, consumed);
            continue;
        }
        snprintf(answer, sizeof(answer), "%s", l);
        drop(q->rx, &q->rx_len, consumed);
        if (strncmp(answer, "OK", 2) != 0) {
            line[n - 1] = '\0';
            it_fail_at(__FILE__, __LINE__, true, "qtest '%s' answered '%s'", line, answer);
        }
        return answer;
    }
}

static uint64_t answer_value(const char *a)
{
    const char *v = a + 2;
    while (*v == ' ')
        v++;
    return strtoull(v, NULL, 0);
}

uint64_t qt_read(struct qt_qemu *q, uint64_t addr, unsigned size)
{
    const char *op = size == 1 ? "readb" : size == 2 ? "readw" : size == 4 ? "readl" : "readq";
    return answer_value(qt_request(q, "%s 0x%" PRIx64, op, addr));
}

void qt_write(struct qt_qemu *q, uint64_t addr, unsigned size, uint64_t value)
{
    const char *op = size == 1 ? "writeb" : size == 2 ? "writew" : size == 4 ? "writel" : "writeq";
    qt_request(q, "%s 0x%" PRIx64 " 0x%" PRIx64, op, addr, value);
}

#define QT_CHUNK 4096

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void qt_memread(struct qt_qemu *q, uint64_t addr, void *buf, size_t len)
{
    uint8_t *out = buf;
    while (len > 0) {
        size_t n = len < QT_CHUNK ? len : QT_CHUNK;
        const char *a = qt_request(q, "read 0x%" PRIx64 " 0x%zx", addr, n);
        const char *hex = strstr(a, "0x");
        REQUIRE(hex && strlen(hex + 2) >= 2 * n, "short read answer: %.60s", a);
        hex += 2;
        for (size_t i = 0; i < n; i++) {
            int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
            REQUIRE(hi >= 0 && lo >= 0, "bad hex in read answer");
            out[i] = (uint8_t)(hi << 4 | lo);
        }
        out += n;
        addr += n;
        len -= n;
    }
}

void qt_memwrite(struct qt_qemu *q, uint64_t addr, const void *buf, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *in = buf;
    char hex[2 * QT_CHUNK + 1];
    while (len > 0) {
        size_t n = len < QT_CHUNK ? len : QT_CHUNK;
        for (size_t i = 0; i < n; i++) {
            hex[2 * i] = digits[in[i] >> 4];
            hex[2 * i + 1] = digits[in[i] & 0xF];
        }
        hex[2 * n] = '\0';
        qt_request(q, "write 0x%" PRIx64 " 0x%zx 0x%s", addr, n, hex);
        in += n;
        addr += n;
        len -= n;
    }
}

static void cfg_select(struct qt_qemu *q, unsigned bus, unsigned dev, unsigned reg)
{
    uint32_t a = 0x80000000u | (bus << 16) | (dev << 11) | (reg & 0xFCu);
    qt_request(q, "outl 0xcf8 0x%x", a);
}

uint32_t qt_cfg_read(struct qt_qemu *q, unsigned bus, unsigned dev, unsigned reg, unsigned size)
{
    cfg_select(q, bus, dev, reg);
    const char *op = size == 1 ? "inb" : size == 2 ? "inw" : "inl";
    return (uint32_t)answer_value(qt_request(q, "%s 0x%x", op, 0xcfc + (reg & 3u)));
}

void qt_cfg_write(struct qt_qemu *q, unsigned bus, unsigned dev, unsigned reg, unsigned size,
                  uint32_t value)
{
    cfg_select(q, bus, dev, reg);
    const char *op = size == 1 ? "outb" : size == 2 ? "outw" : "outl";
    qt_request(q, "%s 0x%x 0x%x", op, 0xcfc + (reg & 3u), value);
}

unsigned qt_cfg_find_cap(struct qt_qemu *q, unsigned bus, unsigned dev, uint8_t cap_id)
{
    unsigned ptr = qt_cfg_read(q, bus, dev, 0x34, 1) & 0xFCu;
    for (unsigned hops = 0; ptr && hops < 48; hops++) {
        uint32_t header = qt_cfg_read(q, bus, dev, ptr, 2);
        if ((header & 0xFF) == cap_id)
            return ptr;
        ptr = (header >> 8) & 0xFCu;
    }
    return 0;
}

/* ---- QMP -------------------------------------------------------------------- */

static void remember_event(const char *line)
{
    size_t n = strlen(line);
    if (qmp_events_len + n + 2 > sizeof(qmp_events))
        qmp_events_len = 0; /* old events are not waited for */
    memcpy(qmp_events + qmp_events_len, line, n);
    qmp_events_len += n;
    qmp_events[qmp_events_len++] = '\n';
    qmp_events[qmp_events_len] = '\0';
}

bool qt_qmp(struct qt_qemu *q, const char *command_json, char *reply, size_t reply_size)
{
    REQUIRE(q->qmp_fd >= 0, "QMP not enabled for this QEMU");
    send_all(q, q->qmp_fd, command_json, strlen(command_json));
    send_all(q, q->qmp_fd, "\n", 1);
    for (;;) {
        size_t consumed;
        char *l = read_line(q, q->qmp_fd, q->qmp_rx, sizeof(q->qmp_rx), &q->qmp_rx_len, &consumed,
                            "QMP");
        bool is_return = strstr(l, "\"return\"") != NULL;
        bool is_error = strstr(l, "\"error\"") != NULL && strstr(l, "\"event\"") == NULL;
        if (!is_return && !is_error) { /* greeting or event */
            if (strstr(l, "\"event\""))
                remember_event(l);
            drop(q->qmp_rx, &q->qmp_rx_len, consumed);
            continue;
        }
        if (reply)
            snprintf(reply, reply_size, "%s", l);
        if (is_error)
            printf("QMP %s -> %s\n", command_json, l);
        drop(q->qmp_rx, &q->qmp_rx_len, consumed);
        return is_return;
    }
}

bool qt_qmp_wait_event(struct qt_qemu *q, const char *needle)
{
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    for (;;) {
        char *hit = strstr(qmp_events, needle);
        if (hit) {
            /* consume through the end of that event */
            char *end = strchr(hit, '\n');
            size_t upto = end ? (size_t)(end + 1 - qmp_events) : qmp_events_len;
            memmove(qmp_events, qmp_events + upto, qmp_events_len - upto + 1);
            qmp_events_len -= upto;
            return true;
        }
        if (it_now_ms() >= deadline)
            return false;
        /* Any line that arrives now is an event (no command is pending). */
        if (!memchr(q->qmp_rx, '\n', q->qmp_rx_len)) {
            struct pollfd p = {.fd = q->qmp_fd, .events = POLLIN};
            uint64_t now = it_now_ms();
            int rc = poll(&p, 1, now < deadline ? (int)(deadline - now) : 0);
            if (rc <= 0)
                continue;
        }
        size_t consumed;
        char *l = read_line(q, q->qmp_fd, q->qmp_rx, sizeof(q->qmp_rx), &q->qmp_rx_len, &consumed,
                            "QMP event");
        remember_event(l);
        drop(q->qmp_rx, &q->qmp_rx_len, consumed);
    }
}

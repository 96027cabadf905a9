/* Client-side transport: connecting to a bridge address and the blocking
 * handshake used by the host library, hlsim-run, the RTL adapter and
 * tlpbctl. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

uint64_t tlpb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Room for several large DMA frames in flight each way, so a burst of
 * completions does not make either side sleep and wake per frame. */
static void size_buffers(int fd)
{
    int bytes = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

static int connect_unix(const char *path, char *err, size_t err_size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, err_size, "unix socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "socket: %s", strerror(e));
        return -e;
    }
    size_buffers(fd);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        snprintf(err, err_size, "connect %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

/* A host that drops packets would hold a blocking connect() for minutes,
 * and the host library retries from QEMU's main loop: bound it. */
#define TCP_CONNECT_TIMEOUT_MS 1000

static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return connect(fd, sa, len);
    int rc = connect(fd, sa, len);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int prc;
        do
            prc = poll(&pfd, 1, TCP_CONNECT_TIMEOUT_MS);
        while (prc < 0 && errno == EINTR);
        int soerr = 0;
        socklen_t soerr_len = sizeof(soerr);
        if (prc == 0) {
            errno = ETIMEDOUT;
        } else if (prc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) == 0) {
            rc = soerr ? -1 : 0;
            errno = soerr;
        }
    }
    int saved = errno;
    fcntl(fd, F_SETFL, flags);
    errno = saved;
    return rc;
}

static int connect_tcp(const char *hostport, char *err, size_t err_size)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host) || !colon[1]) {
        snprintf(err, err_size, "TCP address must be tcp:HOST:PORT, got tcp:%s", hostport);
        return -EINVAL;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai) {
        snprintf(err, err_size, "resolve %s: %s", hostport, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int last = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = -errno;
            continue;
        }
        size_buffers(fd);
        if (connect_bounded(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            freeaddrinfo(res);
            return fd;
        }
        last = -errno;
        close(fd);
    }
    freeaddrinfo(res);
    snprintf(err, err_size, "connect tcp:%s: %s", hostport, strerror(-last));
    return last;
}

int tlpb_connect(const char *address, char *err, size_t err_size)
{
    if (!address || !*address) {
        snprintf(err, err_size, "no bridge address given");
        return -EINVAL;
    }
    if (strncmp(address, "tcp:", 4) == 0)
        return connect_tcp(address + 4, err, err_size);
    if (strncmp(address, "unix:", 5) == 0)
        address += 5;
    return connect_unix(address, err, err_size);
}

/* exact: never read past the frame being completed. A simulator's
 * handshake reads so when descriptors may follow: those the bridge sends
 * right behind its HelloReply (GuestMemory) arrive on a later byte, and a
 * plain read() that took that byte would have the kernel discard them. */
static int read_frame(struct tlpb_frame_reader *rd, int fd, int timeout_ms, bool exact,
                      const uint8_t **frame, size_t *len, const char **reason)
{
    uint64_t deadline = timeout_ms >= 0 ? tlpb_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        int rc = tlpb_reader_next(rd, frame, len, reason);
        if (rc != 0)
            return rc;
        if (timeout_ms >= 0) {
            /* Poll even when the deadline has passed (timeout 0 means "only
             * what is already there"), and give up only when nothing came. */
            uint64_t now = tlpb_now_ns();
            int wait_ms = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int prc = poll(&pfd, 1, wait_ms);
            if (prc < 0 && errno != EINTR) {
                *reason = "poll failed";
                return -errno;
            }
            if (prc == 0 && tlpb_now_ns() >= deadline) {
                *reason = "timed out waiting for a frame";
                return -ETIMEDOUT;
            }
            if (prc <= 0)
                continue;
        }
        size_t space;
        uint8_t *dst = tlpb_reader_space(rd, 4096, &space);
        if (!dst) {
            *reason = "out of memory";
            return -ENOMEM;
        }
        if (exact) {
            size_t have = rd->end - rd->start;
            size_t frame_end = have < TLPB_FRAME_PREFIX_BYTES
                                   ? TLPB_FRAME_PREFIX_BYTES
                                   : TLPB_FRAME_PREFIX_BYTES + tlpb_get_le32(rd->data + rd->start);
            size_t want = frame_end - have;
            if (want < space)
                space = want;
        }
        ssize_t n = read(fd, dst, space);
        if (n == 0) {
            *reason = "connection closed by peer";
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            *reason = "read failed";
            return -errno;
        }
        tlpb_reader_commit(rd, (size_t)n);
    }
}

int tlpb_reader_read_frame(struct tlpb_frame_reader *rd, int fd, int timeout_ms,
                           const uint8_t **frame, size_t *len, const char **reason)
{
    return read_frame(rd, fd, timeout_ms, false, frame, len, reason);
}

int tlpb_token_read_file(const char *path, char *token, size_t token_size, char *err,
                         size_t err_size)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char line[TLPB_TOKEN_MAX_BYTES + 3];
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    size_t n = got ? strlen(line) : 0;
    bool whole = n > 0 && line[n - 1] == '\n';
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0) {
        snprintf(err, err_size, "%s holds no token (its first line is empty)", path);
        return -1;
    }
    if (n > TLPB_TOKEN_MAX_BYTES || n >= token_size ||
        (!whole && n == sizeof(line) - 1)) {
        snprintf(err, err_size, "the token in %s is longer than %u bytes", path,
                 TLPB_TOKEN_MAX_BYTES);
        return -1;
    }
    memcpy(token, line, n + 1);
    return 0;
}

int tlpb_token_from_env(char *token, size_t token_size, char *err, size_t err_size)
{
    token[0] = '\0';
    const char *value = getenv("TLPB_TOKEN");
    if (value && value[0]) {
        if (strlen(value) > TLPB_TOKEN_MAX_BYTES || strlen(value) >= token_size) {
            snprintf(err, err_size, "TLPB_TOKEN is longer than %u bytes", TLPB_TOKEN_MAX_BYTES);
            return -1;
        }
        strcpy(token, value);
        return 0;
    }
    const char *file = getenv("TLPB_TOKEN_FILE");
    if (file && file[0]) {
        char file_err[400];
        if (tlpb_token_read_file(file, token, token_size, file_err, sizeof(file_err)) != 0) {
            snprintf(err, err_size, "TLPB_TOKEN_FILE: %s", file_err);
            return -1;
        }
    }
    return 0;
}

void tlpb_hello_init(Tlpb__Hello *hello, Tlpb__Role role, const char *device_name,
                     const char *peer_name)
{
    *hello = (Tlpb__Hello)TLPB__HELLO__INIT;
    hello->version_major = TLPB_PROTOCOL_MAJOR;
    hello->version_minor = TLPB_PROTOCOL_MINOR;
    hello->role = role;
    if (device_name)
        hello->device_name = (char *)device_name;
    hello->max_frame_bytes = TLPB_DEFAULT_MAX_FRAME_BYTES;
    if (peer_name)
        hello->peer_name = (char *)peer_name;
}

Tlpb__Envelope *tlpb_handshake(int fd, struct tlpb_frame_reader *rd, const Tlpb__Hello *hello,
                               int timeout_ms, char *err, size_t err_size)
{
    Tlpb__Hello with_token = *hello;
    char token[TLPB_TOKEN_MAX_BYTES + 1];
    if (!hello->token || !hello->token[0]) {
        if (tlpb_token_from_env(token, sizeof(token), err, err_size) != 0)
            return NULL;
        with_token.token = token;
    } else {
        /* A token is one line, as in a token file: a caller's copy of a
         * file (a QEMU secret object read with echo's newline) ends there. */
        size_t n = strcspn(hello->token, "\r\n");
        if (n > TLPB_TOKEN_MAX_BYTES) {
            snprintf(err, err_size, "the token is longer than %u bytes", TLPB_TOKEN_MAX_BYTES);
            return NULL;
        }
        memcpy(token, hello->token, n);
        token[n] = '\0';
        with_token.token = token;
    }
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_HARD_MAX_FRAME_BYTES);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &with_token;
    int rc = tlpb_obuf_append(&ob, &env, true);
    if (rc == 0)
        rc = tlpb_obuf_write_all(&ob, fd);
    tlpb_obuf_free(&ob);
    if (rc) {
        snprintf(err, err_size, "sending Hello: %s", strerror(-rc));
        return NULL;
    }
    const uint8_t *frame;
    size_t len;
    const char *reason = "";
    /* Only a simulator that offered CAP_GUEST_MEMORY may be sent
     * descriptors; everyone else takes what came with the reply at once. */
    bool exact = hello->role == TLPB__ROLE__ROLE_SIMULATOR &&
                 (hello->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY);
    rc = read_frame(rd, fd, timeout_ms, exact, &frame, &len, &reason);
    if (rc <= 0) {
        snprintf(err, err_size, "waiting for HelloReply: %s", reason);
        return NULL;
    }
    Tlpb__Envelope *reply = tlpb_envelope_decode(frame, len, &reason);
    if (!reply) {
        snprintf(err, err_size, "bad HelloReply: %s", reason);
        return NULL;
    }
    if (reply->body_case == TLPB__ENVELOPE__BODY_ERROR) {
        snprintf(err, err_size, "bridge refused: %s", reply->error->reason);
        tlpb_envelope_free(reply);
        return NULL;
    }
    if (reply->body_case != TLPB__ENVELOPE__BODY_HELLO_REPLY) {
        snprintf(err, err_size, "expected HelloReply, got message %d", (int)reply->body_case);
        tlpb_envelope_free(reply);
        return NULL;
    }
    if (!reply->hello_reply->accepted) {
        snprintf(err, err_size, "bridge refused: %s", reply->hello_reply->error);
        tlpb_envelope_free(reply);
        return NULL;
    }
    if (reply->hello_reply->max_frame_bytes >= TLPB_MIN_MAX_FRAME_BYTES &&
        reply->hello_reply->max_frame_bytes <= TLPB_HARD_MAX_FRAME_BYTES)
        rd->max_frame_bytes = reply->hello_reply->max_frame_bytes;
    return reply;
}

int tlpb_send_with_fds(int sock, const uint8_t *frame, size_t len, const int *fds, unsigned n)
{
    if (n > TLPB_MAX_SEND_FDS || len == 0)
        return -EINVAL;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * TLPB_MAX_SEND_FDS)];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = {.iov_base = (void *)frame, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    }
    ssize_t sent;
    do
        sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0)
        return -errno;
    size_t done = (size_t)sent;
    while (done < len) {
        ssize_t w = send(sock, frame + done, len - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        done += (size_t)w;
    }
    return 0;
}

ssize_t tlpb_recv_with_fds(int sock, uint8_t *buf, size_t len, int flags, int *fds,
                           unsigned max_fds, unsigned *nfds, bool *truncated)
{
    /* Room for as many as tlpb_send_with_fds sends: a peer sending more is
     * cut by the kernel (MSG_CTRUNC), which closes what did not fit. */
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * TLPB_MAX_SEND_FDS)];
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    *nfds = 0;
    *truncated = false;
    ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (*nfds < max_fds) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
                *truncated = true;
            }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC)
        *truncated = true;
    return n;
}

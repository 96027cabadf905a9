/* libtlpbsim's shared guest memory (docs/simulator-api.md, docs/protocol.md
 * "Shared guest memory") against a fake bridge on a socketpair: CAP_GUEST_
 * MEMORY offered only with fast DMA; a map sent right behind the HelloReply
 * arrives with its descriptor (the handshake reads no further than its
 * reply); a good map reaches guest memory, an empty one withdraws it; a bad
 * map (not a sealed memfd, overlapping regions, descriptors missing, no
 * capability) is refused with an Error that names GuestMemory, leaves no map
 * and the connection up; no descriptor is kept or leaked. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../guest_memory_map.h"
#include "../sim_test_description.h"
#include "fake_bridge.h"
#include "tlpb_sim.h"

#define RAM_BUS 0x40000000ull
#define RAM_BYTES (64u * 1024u)

static void on_tlp(void *arg, const struct tlpb_tlp *tlp)
{
    (void)arg;
    (void)tlp;
}

static void on_reset(void *arg, Tlpb__ResetKind kind)
{
    (void)arg;
    (void)kind;
}

static const struct tlpb_sim_callbacks callbacks = {.tlp = on_tlp, .reset = on_reset};

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    while (readdir(dir))
        n++;
    closedir(dir);
    return n;
}

/* Guest RAM of RAM_BYTES (seal false: left shrinkable, which a receiver
 * must refuse). */
static int ram_memfd(bool seal)
{
    const char *failed;
    int fd = guest_ram_memfd(RAM_BYTES, seal, &failed);
    assert_true(fd >= 0);
    return fd;
}

/* GuestMemory with the n_regions regions naming fd_count descriptors, sent
 * with the n descriptors fds (SCM_RIGHTS). */
static void send_guest_memory(struct fake_bridge *fb, const struct test_guest_region *regions,
                              unsigned n_regions, unsigned fd_count, const int *fds, unsigned n)
{
    struct test_guest_memory m;
    const Tlpb__Envelope *env = test_guest_memory_envelope(&m, regions, n_regions, fd_count);
    assert_non_null(env);
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, 1u << 20, TLPB_DEFAULT_MAX_FRAME_BYTES);
    assert_int_equal(tlpb_obuf_append(&ob, env, true), 0);
    int rc = tlpb_send_with_fds(fb->fd, tlpb_obuf_head(&ob), tlpb_obuf_pending(&ob), fds, n);
    assert_int_equal(rc, 0);
    tlpb_obuf_free(&ob);
}

struct rig {
    tlpb_sim *sim;
    struct fake_bridge fb;
    unsigned fds_before;
    int ram_fd;
    uint8_t *ram;                 /* the test's own view of guest RAM */
};

/* A fast simulator that offers guest memory (offer) to a bridge that grants
 * caps; with first_map, a good map is queued right behind the HelloReply. */
static struct rig *rig_open(bool offer, uint32_t caps, bool first_map)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->fds_before = open_fds();
    r->ram_fd = ram_memfd(true);
    r->ram = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, r->ram_fd, 0);
    assert_true(r->ram != MAP_FAILED);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fb_init(&r->fb, sv[1]);
    assert_int_equal(fb_send_hello_reply_caps(&r->fb, caps), 0);
    if (first_map) {
        const struct test_guest_region regions[1] = {{RAM_BUS, RAM_BYTES, 0, 0}};
        send_guest_memory(&r->fb, regions, 1, 1, &r->ram_fd, 1);
    }
    const struct tlpb_sim_options opts = {
        .device_name = "sim0",
        .description = &test_description,
        .unsplit_dma = true,
        .guest_memory = offer,
        .log_level = 3,
    };
    char err[256] = "";
    if (tlpb_sim_attach_fd(&r->sim, sv[0], &opts, &callbacks, r, err, sizeof(err)) != 0)
        fail_msg("attach: %s", err);
    Tlpb__Envelope *hello = fb_recv(&r->fb, 2000);
    assert_non_null(hello);
    assert_int_equal(hello->body_case, TLPB__ENVELOPE__BODY_HELLO);
    assert_int_equal(!!(hello->hello->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY), offer);
    tlpb_envelope_free(hello);
    return r;
}

/* Close everything: no descriptor may remain (the library's copies of the
 * map's descriptors included). */
static void rig_close(struct rig *r)
{
    tlpb_sim_close(r->sim);
    fb_fini(&r->fb);
    munmap(r->ram, RAM_BYTES);
    close(r->ram_fd);
    assert_int_equal(open_fds(), r->fds_before);
    free(r);
}

static void read_input(struct rig *r)
{
    assert_int_equal(tlpb_sim_flush(r->sim), 0);
    assert_int_equal(tlpb_sim_read_input(r->sim, 1u << 20), 0);
    assert_int_equal(tlpb_sim_flush(r->sim), 0);
}

/* The Error the library sent about the map: its reason starts with
 * "GuestMemory" and holds want. */
static void expect_refusal(struct rig *r, const char *want)
{
    Tlpb__Envelope *env = fb_recv(&r->fb, 2000);
    assert_non_null(env);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_ERROR);
    assert_int_equal(strncmp(env->error->reason, "GuestMemory", 11), 0);
    if (!strstr(env->error->reason, want))
        fail_msg("Error '%s' does not say '%s'", env->error->reason, want);
    tlpb_envelope_free(env);
    assert_true(tlpb_sim_connected(r->sim));
    assert_null(tlpb_sim_guest_memory(r->sim, RAM_BUS, 4));
}

static void test_offered_only_with_fast_dma(void **state)
{
    (void)state;
    int sv[2];
    struct fake_bridge fb;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fb_init(&fb, sv[1]);
    assert_int_equal(fb_send_hello_reply(&fb), 0);
    const struct tlpb_sim_options opts = {
        .device_name = "sim0", .description = &test_description, .guest_memory = true,
    };
    tlpb_sim *sim;
    char err[256];
    assert_int_equal(tlpb_sim_attach_fd(&sim, sv[0], &opts, &callbacks, NULL, err, sizeof(err)), 0);
    Tlpb__Envelope *hello = fb_recv(&fb, 2000);
    assert_non_null(hello);
    assert_int_equal(hello->hello->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY, 0);
    tlpb_envelope_free(hello);
    tlpb_sim_close(sim);
    fb_fini(&fb);
}

static void test_map_behind_reply_then_withdrawn(void **state)
{
    (void)state;
    struct rig *r = rig_open(true, TLPB__CAPABILITY__CAP_UNSPLIT_DMA |
                                       TLPB__CAPABILITY__CAP_GUEST_MEMORY, true);
    assert_true(tlpb_sim_guest_memory_negotiated(r->sim));
    read_input(r);
    uint8_t *p = tlpb_sim_guest_memory(r->sim, RAM_BUS + 0x100, 64);
    assert_non_null(p);
    /* The same memory: what one side writes, the other reads. */
    memset(p, 0xa5, 64);
    assert_int_equal(r->ram[0x100], 0xa5);
    assert_int_equal(r->ram[0x13f], 0xa5);
    r->ram[RAM_BYTES - 1] = 0x5a;
    uint8_t *last = tlpb_sim_guest_memory(r->sim, RAM_BUS + RAM_BYTES - 1, 1);
    assert_non_null(last);
    assert_int_equal(*last, 0x5a);
    /* A range not wholly inside: messages. */
    assert_null(tlpb_sim_guest_memory(r->sim, RAM_BUS + RAM_BYTES - 2, 4));
    assert_null(tlpb_sim_guest_memory(r->sim, RAM_BUS - 1, 2));
    /* Withdrawn: no regions, no descriptors. */
    send_guest_memory(&r->fb, NULL, 0, 0, NULL, 0);
    read_input(r);
    assert_null(tlpb_sim_guest_memory(r->sim, RAM_BUS + 0x100, 64));
    assert_null(fb_recv(&r->fb, 0)); /* accepted silently */
    rig_close(r);
}

static void test_not_sealed_refused(void **state)
{
    (void)state;
    struct rig *r = rig_open(true, TLPB__CAPABILITY__CAP_UNSPLIT_DMA |
                                       TLPB__CAPABILITY__CAP_GUEST_MEMORY, true);
    read_input(r);
    assert_non_null(tlpb_sim_guest_memory(r->sim, RAM_BUS, 4));
    /* A shrinkable memfd, then a pipe: neither is memory to map. A refused
     * map also ends the one before it. */
    int loose = ram_memfd(false);
    const struct test_guest_region regions[1] = {{RAM_BUS, RAM_BYTES, 0, 0}};
    send_guest_memory(&r->fb, regions, 1, 1, &loose, 1);
    close(loose);
    read_input(r);
    expect_refusal(r, "F_SEAL_SHRINK");
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    send_guest_memory(&r->fb, regions, 1, 1, &pipefd[0], 1);
    close(pipefd[0]);
    close(pipefd[1]);
    read_input(r);
    expect_refusal(r, "F_SEAL_SHRINK");
    rig_close(r);
}

static void test_overlap_refused(void **state)
{
    (void)state;
    struct rig *r = rig_open(true, TLPB__CAPABILITY__CAP_UNSPLIT_DMA |
                                       TLPB__CAPABILITY__CAP_GUEST_MEMORY, false);
    const struct test_guest_region regions[2] = {{RAM_BUS, 0x8000, 0, 0}, {RAM_BUS + 0x7000, 0x8000, 0, 0x8000}};
    send_guest_memory(&r->fb, regions, 2, 1, &r->ram_fd, 1);
    read_input(r);
    expect_refusal(r, "overlap");
    /* Past the end of its file. */
    const struct test_guest_region past[1] = {{RAM_BUS, RAM_BYTES, 0, 4096}};
    send_guest_memory(&r->fb, past, 1, 1, &r->ram_fd, 1);
    read_input(r);
    expect_refusal(r, "past the end");
    rig_close(r);
}

static void test_missing_descriptors_refused(void **state)
{
    (void)state;
    struct rig *r = rig_open(true, TLPB__CAPABILITY__CAP_UNSPLIT_DMA |
                                       TLPB__CAPABILITY__CAP_GUEST_MEMORY, false);
    const struct test_guest_region regions[2] = {{RAM_BUS, 0x8000, 0, 0}, {RAM_BUS + 0x8000, 0x8000, 1, 0x8000}};
    send_guest_memory(&r->fb, regions, 2, 2, &r->ram_fd, 1);
    read_input(r);
    expect_refusal(r, "names 2 descriptors but 1 arrived");
    /* None at all, and an index past fd_count. */
    send_guest_memory(&r->fb, regions, 1, 1, NULL, 0);
    read_input(r);
    expect_refusal(r, "names 1 descriptors but 0 arrived");
    const struct test_guest_region bad_index[1] = {{RAM_BUS, 0x8000, 3, 0}};
    send_guest_memory(&r->fb, bad_index, 1, 1, &r->ram_fd, 1);
    read_input(r);
    expect_refusal(r, "fd_index 3 out of range");
    /* Still good for a proper map afterwards. */
    const struct test_guest_region good[1] = {{RAM_BUS, RAM_BYTES, 0, 0}};
    send_guest_memory(&r->fb, good, 1, 1, &r->ram_fd, 1);
    read_input(r);
    assert_non_null(tlpb_sim_guest_memory(r->sim, RAM_BUS, RAM_BYTES));
    rig_close(r);
}

static void test_without_capability_refused(void **state)
{
    (void)state;
    /* Offered, not granted: a map anyway is refused and its descriptor
     * closed. */
    struct rig *r = rig_open(true, TLPB__CAPABILITY__CAP_UNSPLIT_DMA, false);
    assert_false(tlpb_sim_guest_memory_negotiated(r->sim));
    const struct test_guest_region regions[1] = {{RAM_BUS, RAM_BYTES, 0, 0}};
    send_guest_memory(&r->fb, regions, 1, 1, &r->ram_fd, 1);
    read_input(r);
    expect_refusal(r, "CAP_GUEST_MEMORY not negotiated");
    expect_refusal(r, "CAP_GUEST_MEMORY not negotiated");
    rig_close(r);
}

/* tlpb_recv_with_fds (proto/connect.c), under receive_with_fds of the
 * library: the bytes and, in order, the descriptors sent on them, up to
 * max_fds; any beyond are closed (no leak) and said in *truncated. */
static void test_recv_with_fds_keeps_at_most_max(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    enum { SENT = 5, KEPT = 2 };
    int sent[SENT];
    for (unsigned i = 0; i < SENT; i++)
        sent[i] = ram_memfd(i == 0);
    unsigned fds_before = open_fds();
    const uint8_t frame[3] = {7, 8, 9};

    /* Room for all: every one kept, nothing truncated. */
    assert_int_equal(tlpb_send_with_fds(sv[0], frame, sizeof(frame), sent, SENT), 0);
    int got[SENT] = {-1, -1, -1, -1, -1};
    unsigned nfds = 99;
    bool truncated = true;
    uint8_t buf[8] = {0};
    assert_int_equal(tlpb_recv_with_fds(sv[1], buf, sizeof(buf), 0, got, SENT, &nfds, &truncated),
                     sizeof(frame));
    assert_memory_equal(buf, frame, sizeof(frame));
    assert_int_equal(nfds, SENT);
    assert_false(truncated);
    assert_int_equal(open_fds(), fds_before + SENT);
    /* In order: only the first one is sealed. */
    assert_int_equal(fcntl(got[0], F_GET_SEALS) & F_SEAL_SHRINK, F_SEAL_SHRINK);
    assert_int_equal(fcntl(got[1], F_GET_SEALS) & F_SEAL_SHRINK, 0);
    assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
    for (unsigned i = 0; i < nfds; i++)
        close(got[i]);

    /* Room for KEPT: the first KEPT kept, the rest closed. */
    assert_int_equal(tlpb_send_with_fds(sv[0], frame, sizeof(frame), sent, SENT), 0);
    assert_int_equal(tlpb_recv_with_fds(sv[1], buf, sizeof(buf), 0, got, KEPT, &nfds, &truncated),
                     sizeof(frame));
    assert_int_equal(nfds, KEPT);
    assert_true(truncated);
    assert_int_equal(fcntl(got[0], F_GET_SEALS) & F_SEAL_SHRINK, F_SEAL_SHRINK);
    assert_int_equal(open_fds(), fds_before + KEPT);
    for (unsigned i = 0; i < nfds; i++)
        close(got[i]);

    /* Room for none (a receiver that takes no descriptors): all closed. */
    assert_int_equal(tlpb_send_with_fds(sv[0], frame, sizeof(frame), sent, SENT), 0);
    assert_int_equal(tlpb_recv_with_fds(sv[1], buf, sizeof(buf), 0, NULL, 0, &nfds, &truncated),
                     sizeof(frame));
    assert_int_equal(nfds, 0);
    assert_true(truncated);
    assert_int_equal(open_fds(), fds_before);

    /* Nothing to read: recvmsg's -1 and errno, nothing kept. */
    assert_int_equal(tlpb_recv_with_fds(sv[1], buf, sizeof(buf), MSG_DONTWAIT, got, SENT, &nfds,
                                        &truncated),
                     -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(nfds, 0);

    for (unsigned i = 0; i < SENT; i++)
        close(sent[i]);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offered_only_with_fast_dma),
        cmocka_unit_test(test_map_behind_reply_then_withdrawn),
        cmocka_unit_test(test_not_sealed_refused),
        cmocka_unit_test(test_overlap_refused),
        cmocka_unit_test(test_missing_descriptors_refused),
        cmocka_unit_test(test_without_capability_refused),
        cmocka_unit_test(test_recv_with_fds_keeps_at_most_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

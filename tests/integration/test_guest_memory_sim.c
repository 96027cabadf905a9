/* Shared guest memory passed on to a simulator process (docs/protocol.md
 * "Shared guest memory", "To a simulator process") against a running
 * tlpbridged, with raw peers as host and simulator on a device configured
 * for fast DMA:
 * - a simulator offering CAP_UNSPLIT_DMA and CAP_GUEST_MEMORY is sent the
 *   host's map with its descriptor, which maps the host's memory, and
 *   status says so; a simulator not offering it gets nothing and status says
 *   false;
 * - a map sent while the simulator's socket is full (it reads nothing while
 *   the host's posted writes pile up) arrives after every message queued
 *   before it, with its descriptor on its own frame;
 * - a simulator's Error refusing the map clears the status;
 * - when the host leaves, the simulator gets an empty GuestMemory;
 * - on a device whose checker policy is stop, a simulator that breaks a
 *   rule is switched away and its map withdrawn;
 * - a simulator coupled in simulated time gets no map (its DMA is stamped
 *   and ordered by its messages). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../guest_memory_map.h"
#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

#define BDF 0x0100u
#define RAM_BASE 0x80000000ull
#define RAM_BYTES (1u << 20)
#define DEVICE "fast0"
#define STOP_DEVICE "stop0"          /* check = "stop" */
/* Posted writes the host sends while the simulator reads nothing: well
 * over what a unix socket buffers, so the bridge's write is in flight. */
#define FLOOD_WRITES 20000u

/* Sealed guest RAM of bytes; fatal on failure. */
static int sealed_memfd(size_t bytes)
{
    const char *failed;
    int fd = guest_ram_memfd(bytes, true, &failed);
    REQUIRE(fd >= 0, "%s: %s", failed, strerror(-fd));
    return fd;
}

/* The host h shares bytes of fd at RAM_BASE. */
static void send_map(struct raw *h, int fd, uint64_t bytes)
{
    const struct test_guest_region region = {RAM_BASE, bytes, 0, 0};
    struct test_guest_memory m;
    raw_send_env_fds(h, test_guest_memory_envelope(&m, &region, 1, 1), &fd, 1);
}

/* Descriptors received by the simulator and not yet claimed by a
 * GuestMemory, in order. A read that brings a frame's first byte brings the
 * descriptors sent on it, but may bring bytes of earlier frames too: a
 * GuestMemory claims its fd_count from here, as libtlpbsim does. */
#define MAX_PENDING_FDS 16u
static int pending_fds[MAX_PENDING_FDS];
static unsigned pending_fd_count;

/* The next message on the simulator r, read with recvmsg so descriptors
 * are kept (pending_fds). NULL on EOF or after IT_DEADLINE_MS (a failure).
 * A GuestMemory gets the descriptors it names in fds (*nfds of them, closed
 * by the caller), as far as they arrived. */
static Tlpb__Envelope *sim_next(struct raw *r, int *fds, unsigned max_fds, unsigned *nfds)
{
    *nfds = 0;
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        int rc = tlpb_reader_next(&r->rd, &frame, &len, &reason);
        REQUIRE(rc >= 0, "bad frame from the bridge: %s", reason);
        if (rc == 1) {
            Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
            REQUIRE(env != NULL, "undecodable message from the bridge: %s", reason);
            if (env->body_case == TLPB__ENVELOPE__BODY_GUEST_MEMORY) {
                while (*nfds < env->guest_memory->fd_count && *nfds < max_fds &&
                       *nfds < pending_fd_count) {
                    fds[*nfds] = pending_fds[*nfds];
                    (*nfds)++;
                }
                pending_fd_count -= *nfds;
                memmove(pending_fds, pending_fds + *nfds, pending_fd_count * sizeof(int));
            }
            return env;
        }
        uint64_t now = it_now_ms();
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            it_fail_at(__FILE__, __LINE__, false, "simulator: no message from the bridge");
            return NULL;
        }
        size_t space;
        uint8_t *dst = tlpb_reader_space(&r->rd, 65536, &space);
        REQUIRE(dst != NULL, "out of memory");
        unsigned got;
        bool piled_up;
        ssize_t n = tlpb_recv_with_fds(r->fd, dst, space, 0, pending_fds + pending_fd_count,
                                       MAX_PENDING_FDS - pending_fd_count, &got, &piled_up);
        if (n <= 0)
            return NULL;
        pending_fd_count += got;
        CHECK(!piled_up, "descriptors pile up at the simulator");
        tlpb_reader_commit(&r->rd, (size_t)n);
    }
}

/* The next GuestMemory to the simulator, its descriptors in fds; every other
 * message before it is counted in *others (config requests answered). */
static Tlpb__Envelope *sim_next_guest_memory(struct raw *s, int *fds, unsigned *nfds,
                                             unsigned *others)
{
    for (;;) {
        Tlpb__Envelope *env = sim_next(s, fds, 4, nfds);
        if (!env)
            return NULL;
        if (env->body_case == TLPB__ENVELOPE__BODY_GUEST_MEMORY)
            return env;
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP) {
            struct tlpb_tlp req;
            const char *reason = NULL;
            if (env->tlp->kind == TLPB__TLP_KIND__TLP_CFGWR0 &&
                tlpb_tlp_from_pb(&req, env->tlp, &reason) == 0)
                raw_complete_config(s, BDF, &req);
            if (env->tlp->kind == TLPB__TLP_KIND__TLP_MWR && others)
                (*others)++;
        }
        tlpb_envelope_free(env);
    }
}

/* The descriptor fd maps the same memory as ram (a marker written through
 * ram is read through fd). */
static bool same_memory(int fd, uint8_t *ram, uint64_t bytes, uint8_t marker)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != bytes)
        return false;
    uint8_t *other = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (other == MAP_FAILED)
        return false;
    ram[bytes - 1] = marker;
    bool same = other[bytes - 1] == marker;
    munmap(other, bytes);
    return same;
}

static void scratch_write(struct raw *h, uint32_t value)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .length_dw = 1, .first_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR + REG_SCRATCH, .bar_hint = 0,
                          .payload_bytes = 4, .payload = payload};
    raw_send_tlp(h, &wr);
}

/* A simulator in fast mode that can take guest memory, and a host that
 * shares it and accepts unsplit DMA. */
#define FAST_SIM_CAPS (TLPB__CAPABILITY__CAP_UNSPLIT_DMA | TLPB__CAPABILITY__CAP_GUEST_MEMORY)
#define FAST_HOST_CAPS (TLPB__CAPABILITY__CAP_GUEST_MEMORY | TLPB__CAPABILITY__CAP_UNSPLIT_DMA)

/* A simulator s offering sim_caps and a host h offering host_caps on
 * device, the device enumerated by the host. */
static void open_pair(struct raw *h, struct raw *s, const char *device, uint64_t sim_caps,
                      uint64_t host_caps)
{
    raw_simulator_caps(s, device, sim_caps);
    tlpb_envelope_free(raw_host_caps(h, device, host_caps));
    raw_host_enumerate(h, BDF, s);
}

/* The simulator s refuses its map (as libtlpbsim does when it cannot map
 * it); returns once status no longer shows it. */
static void sim_refuses_map(struct raw *s)
{
    Tlpb__Error err = TLPB__ERROR__INIT;
    err.reason = (char *)"GuestMemory region 0: cannot map it: test";
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_ERROR;
    env.error = &err;
    raw_send_env(s, &env);
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    while (it_status_bool(DEVICE, "simulator_guest_memory") && it_now_ms() < deadline)
        ;
}

static void case_map_to_fast_simulator(void)
{
    struct raw h, s;
    open_pair(&h, &s, DEVICE, FAST_SIM_CAPS, FAST_HOST_CAPS);
    CHECK(!it_status_bool(DEVICE, "simulator_guest_memory"),
          "simulator_guest_memory before the host shared any");

    int fd = sealed_memfd(RAM_BYTES);
    uint8_t *ram = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(ram != MAP_FAILED, "mmap: %s", strerror(errno));
    send_map(&h, fd, RAM_BYTES);
    int fds[4];
    unsigned nfds = 0;
    Tlpb__Envelope *gm = sim_next_guest_memory(&s, fds, &nfds, NULL);
    REQUIRE(gm != NULL, "the simulator was not sent the host's map");
    CHECK(gm->guest_memory->n_regions == 1 && gm->guest_memory->fd_count == 1 &&
              gm->guest_memory->regions[0]->bus_address == RAM_BASE &&
              gm->guest_memory->regions[0]->size_bytes == RAM_BYTES,
          "the simulator's map is not the host's");
    CHECK(nfds == 1, "%u descriptors came with the map, 1 expected", nfds);
    CHECK(nfds == 1 && same_memory(fds[0], ram, RAM_BYTES, 0x3c),
          "the descriptor is not the host's guest memory");
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    tlpb_envelope_free(gm);
    CHECK(it_status_bool(DEVICE, "simulator_guest_memory"),
          "status does not say the simulator has guest memory");

    /* A new map while the simulator's socket is full: it comes after every
     * write the host sent before it, with its own descriptor. */
    for (unsigned i = 0; i < FLOOD_WRITES; i++)
        scratch_write(&h, i);
    int fd2 = sealed_memfd(RAM_BYTES / 2);
    uint8_t *ram2 = mmap(NULL, RAM_BYTES / 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
    REQUIRE(ram2 != MAP_FAILED, "mmap: %s", strerror(errno));
    send_map(&h, fd2, RAM_BYTES / 2);
    unsigned writes = 0;
    gm = sim_next_guest_memory(&s, fds, &nfds, &writes);
    REQUIRE(gm != NULL, "the simulator was not sent the host's new map");
    CHECK(writes == FLOOD_WRITES, "%u of the %u writes queued before the map came before it",
          writes, FLOOD_WRITES);
    CHECK(nfds == 1 && same_memory(fds[0], ram2, RAM_BYTES / 2, 0x7e),
          "the new map's descriptor is not the host's new memory (%u descriptors)", nfds);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    tlpb_envelope_free(gm);

    /* A simulator that cannot use the map says so: the bridge believes it. */
    sim_refuses_map(&s);
    CHECK(!it_status_bool(DEVICE, "simulator_guest_memory"), "a refused map still shows in status");

    /* The host leaves: the simulator's map is withdrawn, with nothing. The
     * map is shared again first, then refused once more: a refusal may be
     * for an older map than the simulator holds, so the withdrawal still
     * comes. */
    send_map(&h, fd, RAM_BYTES);
    gm = sim_next_guest_memory(&s, fds, &nfds, NULL);
    REQUIRE(gm != NULL, "the map was not shared again");
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    tlpb_envelope_free(gm);
    CHECK(it_status_bool(DEVICE, "simulator_guest_memory"),
          "status: the map shared again does not show");
    sim_refuses_map(&s);
    raw_close(&h);
    gm = sim_next_guest_memory(&s, fds, &nfds, NULL);
    REQUIRE(gm != NULL, "the map was not withdrawn when the host left");
    CHECK(gm->guest_memory->n_regions == 0 && gm->guest_memory->fd_count == 0 && nfds == 0,
          "the withdrawal carries %zu regions, %u descriptors", gm->guest_memory->n_regions,
          nfds);
    tlpb_envelope_free(gm);
    CHECK(!it_status_bool(DEVICE, "simulator_guest_memory"),
          "status still says the simulator has guest memory");
    CHECK(pending_fd_count == 0, "%u descriptors came that no GuestMemory named",
          pending_fd_count);
    raw_close(&s);
    munmap(ram, RAM_BYTES);
    munmap(ram2, RAM_BYTES / 2);
    close(fd);
    close(fd2);
}

static void case_not_offered(void)
{
    struct raw h, s;
    open_pair(&h, &s, DEVICE, TLPB__CAPABILITY__CAP_UNSPLIT_DMA,
              TLPB__CAPABILITY__CAP_GUEST_MEMORY);
    int fd = sealed_memfd(RAM_BYTES);
    send_map(&h, fd, RAM_BYTES);
    /* Behind the map, a write: what reaches the simulator before it is all
     * there is, and no GuestMemory may be among it. */
    scratch_write(&h, 0x1234);
    int fds[4];
    unsigned nfds = 0;
    for (;;) {
        Tlpb__Envelope *env = sim_next(&s, fds, 4, &nfds);
        REQUIRE(env != NULL, "the host's write did not reach the simulator");
        CHECK(env->body_case != TLPB__ENVELOPE__BODY_GUEST_MEMORY && nfds == 0,
              "a simulator that did not offer CAP_GUEST_MEMORY was sent the map");
        bool done = env->body_case == TLPB__ENVELOPE__BODY_TLP &&
                    env->tlp->kind == TLPB__TLP_KIND__TLP_MWR;
        tlpb_envelope_free(env);
        if (done)
            break;
    }
    CHECK(!it_status_bool(DEVICE, "simulator_guest_memory"),
          "status says the simulator has guest memory");
    CHECK(pending_fd_count == 0, "a simulator that did not offer CAP_GUEST_MEMORY got %u"
          " descriptors", pending_fd_count);
    raw_close(&h);
    raw_close(&s);
    close(fd);
}

static void case_stop_policy_withdraws(void)
{
    struct raw h, s;
    open_pair(&h, &s, STOP_DEVICE, FAST_SIM_CAPS, FAST_HOST_CAPS);
    int fd = sealed_memfd(RAM_BYTES);
    send_map(&h, fd, RAM_BYTES);
    int fds[4];
    unsigned nfds = 0;
    Tlpb__Envelope *gm = sim_next_guest_memory(&s, fds, &nfds, NULL);
    REQUIRE(gm != NULL && gm->guest_memory->n_regions == 1, "the simulator was not sent the map");
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    tlpb_envelope_free(gm);
    CHECK(it_status_bool(STOP_DEVICE, "simulator_guest_memory"),
          "status: the simulator has no map");
    /* A DMA write under another function's requester ID: rule
     * requester_id, policy stop. */
    uint8_t payload[4] = {1, 2, 3, 4};
    struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .requester_id = BDF + 0x100,
                          .bar_hint = TLPB_NO_BAR, .payload = payload, .payload_bytes = 4};
    REQUIRE(tlpb_tlp_set_mem_range(&wr, RAM_BASE, 4) == 0, "MWr range");
    raw_send_tlp(&s, &wr);
    gm = sim_next_guest_memory(&s, fds, &nfds, NULL);
    REQUIRE(gm != NULL, "the stopped simulator's map was not withdrawn");
    CHECK(gm->guest_memory->n_regions == 0 && nfds == 0, "the withdrawal carries a map");
    tlpb_envelope_free(gm);
    CHECK(!it_status_bool(STOP_DEVICE, "simulator_guest_memory"),
          "status: the stopped simulator still has the map");
    it_expect_violation(STOP_DEVICE, "requester_id", 1);
    raw_close(&h);
    raw_close(&s);
    close(fd);
}

static void case_coupled_gets_none(void)
{
    struct raw h, s;
    raw_simulator_caps(&s, DEVICE, TLPB__CAPABILITY__CAP_UNSPLIT_DMA |
                                       TLPB__CAPABILITY__CAP_GUEST_MEMORY |
                                       TLPB__CAPABILITY__CAP_TIME_SYNC);
    Tlpb__Envelope *reply = raw_host_caps(&h, DEVICE, TLPB__CAPABILITY__CAP_GUEST_MEMORY |
                                                          TLPB__CAPABILITY__CAP_TIME_SYNC);
    tlpb_envelope_free(reply);
    int fd = sealed_memfd(RAM_BYTES);
    send_map(&h, fd, RAM_BYTES);
    raw_host_fence(&h, NULL, 0, NULL);
    /* The bridge has written whatever it had for the simulator by now:
     * COUPLED, and no map. */
    bool coupled = false;
    for (;;) {
        struct pollfd pfd = {.fd = s.fd, .events = POLLIN};
        size_t buffered = s.rd.end - s.rd.start;
        if (buffered == 0 && poll(&pfd, 1, 0) <= 0)
            break;
        int fds[4];
        unsigned nfds = 0;
        Tlpb__Envelope *env = sim_next(&s, fds, 4, &nfds);
        if (!env)
            break;
        CHECK(env->body_case != TLPB__ENVELOPE__BODY_GUEST_MEMORY,
              "a coupled simulator was sent guest memory");
        if (env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
            env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED)
            coupled = true;
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        tlpb_envelope_free(env);
    }
    CHECK(coupled, "the simulator was not coupled to the host's time");
    CHECK(pending_fd_count == 0, "a coupled simulator got %u descriptors", pending_fd_count);
    CHECK(!it_status_bool(DEVICE, "simulator_guest_memory"),
          "status says the coupled simulator has the map");
    raw_close(&h);
    raw_close(&s);
    close(fd);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_guest_memory_sim");
    REQUIRE(it_paths.model != NULL, "--model is required");
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "devices = (\n  { name = \"" DEVICE "\"; backend = \"external\"; model = \"%s\";"
             " dma = \"fast\"; },\n  { name = \"" STOP_DEVICE "\"; backend = \"external\";"
             " model = \"%s\"; dma = \"fast\"; check = \"stop\"; }\n);\n",
             it_paths.model, it_paths.model);
    const char *args[] = {"--config", it_write_file("guestmem_sim.cfg", cfg), NULL};
    it_start_bridge(args);
    IT_RUN("a fast simulator gets the host's map, in order, and loses it",
           case_map_to_fast_simulator());
    IT_RUN("a simulator that did not offer it gets no map", case_not_offered());
    IT_RUN("policy stop withdraws the map", case_stop_policy_withdraws());
    IT_RUN("a coupled simulator gets no map", case_coupled_gets_none());
    return it_finish();
}

/* Shared guest memory (docs/protocol.md "Shared guest memory") against a
 * running tlpbridged, with raw peers as host and simulator:
 * - a host on the unix socket is granted CAP_GUEST_MEMORY and shares a
 *   sealed memfd as guest RAM; the device's DMA inside it is served from
 *   the memfd (writes land in it, reads complete with its data, split as
 *   the host would), nothing of it reaches the host, and status counts it;
 *   DMA outside the map still goes to the host (whose UR reaches the
 *   device);
 * - every bad map is refused with an Error naming its problem, drops the
 *   map, and leaves no descriptor open in the bridge;
 * - GuestMemory without the capability is refused;
 * - the map is dropped when the host disconnects. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../guest_memory_map.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/wire.h"

#define BDF 0x0100u
#define RAM_BASE 0x80000000ull
#define RAM_BYTES (1u << 20)
#define DEVICE "ext0"

/* Guest RAM of bytes, sealed (or not, seal false); fatal on failure. */
static int sealed_memfd(size_t bytes, bool seal)
{
    const char *failed;
    int fd = guest_ram_memfd(bytes, seal, &failed);
    REQUIRE(fd >= 0, "%s: %s", failed, strerror(-fd));
    return fd;
}

static void send_map(struct raw *h, const struct test_guest_region *regions, unsigned n,
                     uint32_t fd_count, const int *fds, unsigned fds_sent)
{
    struct test_guest_memory m;
    const Tlpb__Envelope *env = test_guest_memory_envelope(&m, regions, n, fd_count);
    REQUIRE(env != NULL, "at most %u regions here", TEST_GUEST_MAX_REGIONS);
    raw_send_env_fds(h, env, fds, fds_sent);
}

/* raw_host_fence, the host getting no TLP meanwhile. */
static void host_fence(struct raw *h, char *errors, size_t size)
{
    unsigned tlps;
    raw_host_fence(h, errors, size, &tlps);
    CHECK(tlps == 0, "host: %u unexpected TLPs", tlps);
}

static unsigned bridge_open_fds(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)it.bridge->pid);
    DIR *dir = opendir(path);
    REQUIRE(dir != NULL, "%s: %s", path, strerror(errno));
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* A host granted CAP_GUEST_MEMORY. */
static void shm_host(struct raw *h)
{
    uint64_t granted = 0;
    Tlpb__Envelope *reply = raw_host_caps(h, DEVICE, TLPB__CAPABILITY__CAP_GUEST_MEMORY);
    granted = reply->hello_reply->capabilities;
    tlpb_envelope_free(reply);
    REQUIRE(granted & TLPB__CAPABILITY__CAP_GUEST_MEMORY,
            "a host on the unix socket was not granted CAP_GUEST_MEMORY");
}

/* The next TLP on r (fatal if none). */
static Tlpb__Envelope *next_tlp(struct raw *r, const char *who)
{
    Tlpb__Envelope *m = raw_next_tlp(r);
    REQUIRE(m != NULL, "%s: no TLP", who);
    return m;
}

/* The next completion for the simulator s, as raw_sim_recv_tlp (fatal if
 * none): the bridge's config replay (writes the host made before, none here
 * but possible) is answered, other requests skipped. */
static void next_sim_completion(struct raw *s, struct tlpb_tlp *cpl, uint8_t *data,
                                size_t data_size)
{
    do
        REQUIRE(raw_sim_recv_tlp(s, BDF, cpl, data, data_size), "simulator: no TLP");
    while (!tlpb_tlp_is_completion(cpl->kind));
}

static void send_mwr(struct raw *s, uint64_t addr, const uint8_t *data, uint32_t bytes)
{
    struct tlpb_tlp w = {.kind = TLPB_TLP_MWR, .requester_id = BDF, .bar_hint = TLPB_NO_BAR};
    REQUIRE(tlpb_tlp_set_mem_range(&w, addr, bytes) == 0, "MWr range");
    uint8_t buf[4096 + 8] = {0};
    memcpy(buf + (addr & 3u), data, bytes);
    w.payload = buf;
    w.payload_bytes = w.length_dw * 4u;
    raw_send_tlp(s, &w);
}

static void send_mrd(struct raw *s, uint8_t tag, uint64_t addr, uint32_t bytes)
{
    struct tlpb_tlp r = {.kind = TLPB_TLP_MRD, .requester_id = BDF, .tag = tag,
                         .bar_hint = TLPB_NO_BAR};
    REQUIRE(tlpb_tlp_set_mem_range(&r, addr, bytes) == 0, "MRd range");
    raw_send_tlp(s, &r);
}

static void case_dma_from_shared_memory(void)
{
    struct raw h, s;
    raw_simulator(&s, DEVICE);
    shm_host(&h);
    raw_host_enumerate(&h, BDF, &s);
    int fd = sealed_memfd(RAM_BYTES, true);
    uint8_t *ram = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(ram != MAP_FAILED, "mmap: %s", strerror(errno));
    for (unsigned i = 0; i < RAM_BYTES; i++)
        ram[i] = (uint8_t)(i * 13u + 5u);
    /* Two regions of one file: the second at an offset in it. */
    struct test_guest_region map[2] = {{RAM_BASE, RAM_BYTES / 2, 0, 0},
                            {RAM_BASE + 0x10000000ull, RAM_BYTES / 2, 0, RAM_BYTES / 2}};
    char errors[256];
    send_map(&h, map, 2, 1, &fd, 1);
    host_fence(&h, errors, sizeof(errors));
    CHECK(errors[0] == '\0', "a good map was refused: %s", errors);
    CHECK_EQ_U64(it_status_uint(DEVICE, "guest_memory_regions"), 2, "guest_memory_regions");
    CHECK_EQ_U64(it_status_uint(DEVICE, "guest_memory_bytes"), RAM_BYTES, "guest_memory_bytes");
    CHECK(it_log_contains(it.bridge, "device " DEVICE ": guest memory shared: 2 regions, 1 MiB"),
          "the new map was not logged");

    /* A write inside the map lands in the memfd; a write outside it goes to
     * the host, which sees it first: the one inside never reached it. The
     * first one's 31 DW are within the Max_Payload_Size (128 bytes). */
    uint8_t data[120];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(0xA0u ^ i);
    send_mwr(&s, RAM_BASE + 0x1002, data, sizeof(data));
    send_mwr(&s, RAM_BASE + 0x10000000ull + 0x20, data, 8); /* second region: at offset 512 KiB + 0x20 */
    send_mwr(&s, 0xF0000000ull, data, 4);                   /* outside the map */
    Tlpb__Envelope *m = next_tlp(&h, "host");
    CHECK(m->tlp->kind == TLPB__TLP_KIND__TLP_MWR && m->tlp->address == 0xF0000000ull,
          "the host's first TLP is kind %d at 0x%llx, expected the MWr outside the map",
          (int)m->tlp->kind, (unsigned long long)m->tlp->address);
    tlpb_envelope_free(m);
    CHECK(memcmp(ram + 0x1002, data, sizeof(data)) == 0, "the DMA write is not in the memfd");
    CHECK(ram[0x1001] == (uint8_t)(0x1001u * 13u + 5u) &&
              ram[0x1002 + sizeof(data)] == (uint8_t)((0x1002u + sizeof(data)) * 13u + 5u),
          "the DMA write touched bytes around it");
    CHECK(memcmp(ram + RAM_BYTES / 2 + 0x20, data, 8) == 0,
          "the write to the second region is not at its file offset");

    /* A read inside the map completes with the memfd's data, split at the
     * max payload size (128 until the host programs more) and the RCB. */
    send_mrd(&s, 5, RAM_BASE + 0x2010, 256);
    send_mrd(&s, 6, 0xF0001000ull, 4); /* outside: to the host */
    m = next_tlp(&h, "host");
    CHECK(m->tlp->kind == TLPB__TLP_KIND__TLP_MRD && m->tlp->tag == 6,
          "the host's next TLP is kind %d tag %u, expected the MRd outside the map",
          (int)m->tlp->kind, m->tlp->tag);
    struct tlpb_tlp req;
    const char *reason = NULL;
    REQUIRE(tlpb_tlp_from_pb(&req, m->tlp, &reason) == 0, "MRd: %s", reason);
    struct tlpb_tlp ur;
    tlpb_completion_error_for(&ur, &req, 0, TLPB_CPL_UR);
    raw_send_tlp(&h, &ur);
    tlpb_envelope_free(m);
    uint32_t got = 0, completions = 0;
    bool data_ok = true, ur_seen = false;
    while (got < 256 || !ur_seen) {
        struct tlpb_tlp c;
        uint8_t cpl_data[4096 + 8];
        next_sim_completion(&s, &c, cpl_data, sizeof(cpl_data));
        if (c.tag == 6) {
            ur_seen = c.kind == TLPB_TLP_CPL && c.status == TLPB_CPL_UR;
            CHECK(ur_seen, "the host's UR for the read outside the map did not reach the device");
            ur_seen = true;
        } else {
            REQUIRE(c.tag == 5 && c.kind == TLPB_TLP_CPLD,
                    "simulator: kind %d tag %u, expected CplD tag 5", (int)c.kind, c.tag);
            CHECK_EQ_U64(c.byte_count, 256 - got, "byte count");
            uint32_t lead = (c.lower_address & 3u);
            uint32_t n = c.payload_bytes - lead;
            if (n > 256 - got)
                n = 256 - got;
            for (uint32_t i = 0; i < n; i++)
                if (c.payload[lead + i] != ram[0x2010 + got + i])
                    data_ok = false;
            got += n;
            completions++;
        }
    }
    CHECK(data_ok, "the DMA read's data is not the memfd's");
    /* 0x2010 + 256: 0x2010..0x2080 (112 bytes to the 128-byte MPS from the
     * DW start), then 0x2080..0x2100 (128), then 16. */
    CHECK_EQ_U64(completions, 3, "completions for a 256-byte read at 0x..10 with MPS 128");
    CHECK_EQ_U64(it_status_uint(DEVICE, "dma_shm_requests"), 3, "dma_shm_requests");
    CHECK_EQ_U64(it_status_uint(DEVICE, "dma_shm_bytes"), sizeof(data) + 8 + 256, "dma_shm_bytes");

    /* Withdrawn: DMA goes to the host again. */
    send_map(&h, NULL, 0, 0, NULL, 0);
    host_fence(&h, errors, sizeof(errors));
    CHECK(errors[0] == '\0', "an empty map was refused: %s", errors);
    CHECK_EQ_U64(it_status_uint(DEVICE, "guest_memory_regions"), 0, "regions after withdrawing");
    send_mwr(&s, RAM_BASE + 0x3000, data, 4);
    m = next_tlp(&h, "host");
    CHECK(m->tlp->kind == TLPB__TLP_KIND__TLP_MWR && m->tlp->address == RAM_BASE + 0x3000,
          "after withdrawing, a write in RAM did not go to the host");
    tlpb_envelope_free(m);
    munmap(ram, RAM_BYTES);
    close(fd);
    raw_close(&h);
    raw_close(&s);
}

struct bad_map {
    const char *what;
    const char *reason;        /* expected in the Error */
};

static void case_bad_maps(void)
{
    struct raw h, s;
    raw_simulator(&s, DEVICE);
    shm_host(&h);
    raw_host_enumerate(&h, BDF, &s);
    int good = sealed_memfd(RAM_BYTES, true);
    int unsealed = sealed_memfd(RAM_BYTES, false);
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0, "pipe");
    int many[33];
    for (unsigned i = 0; i < 33; i++)
        many[i] = good;
    char errors[256];
    struct test_guest_region one = {RAM_BASE, RAM_BYTES, 0, 0};
    unsigned fds_before = bridge_open_fds();
    for (unsigned k = 0; k < 9; k++) {
        /* A good map first: each bad one must drop it. */
        send_map(&h, &one, 1, 1, &good, 1);
        host_fence(&h, errors, sizeof(errors));
        CHECK(errors[0] == '\0', "a good map was refused: %s", errors);
        const char *expect = NULL;
        switch (k) {
        case 0: {
            send_map(&h, &one, 1, 33, many, 33);
            expect = "33 descriptors: at most 32";
            break;
        }
        case 1: {
            struct test_guest_region r = {RAM_BASE, RAM_BYTES, 1, 0};
            send_map(&h, &r, 1, 1, &good, 1);
            expect = "fd_index 1 out of range";
            break;
        }
        case 2: {
            struct test_guest_region r = {RAM_BASE, 0, 0, 0};
            send_map(&h, &r, 1, 1, &good, 1);
            expect = "size 0";
            break;
        }
        case 3: {
            struct test_guest_region r = {UINT64_MAX - 0xfff, 0x2000, 0, 0};
            send_map(&h, &r, 1, 1, &good, 1);
            expect = "overflows";
            break;
        }
        case 4: {
            struct test_guest_region r[2] = {{RAM_BASE, 0x2000, 0, 0}, {RAM_BASE + 0x1000, 0x2000, 0, 0x4000}};
            send_map(&h, r, 2, 1, &good, 1);
            expect = "regions 0 and 1 overlap";
            break;
        }
        case 5:
            send_map(&h, &one, 1, 1, &unsealed, 1);
            expect = "not a memfd sealed against shrinking";
            break;
        case 6:
            send_map(&h, &one, 1, 1, &pipe_fds[0], 1);
            expect = "not a memfd sealed against shrinking";
            break;
        case 7: {
            struct test_guest_region r = {RAM_BASE, RAM_BYTES, 0, 0x1000};
            send_map(&h, &r, 1, 1, &good, 1);
            expect = "ends past the end of its file";
            break;
        }
        case 8:
            send_map(&h, &one, 1, 1, NULL, 0);
            expect = "names 1 descriptors but 0 arrived";
            break;
        }
        host_fence(&h, errors, sizeof(errors));
        CHECK(strstr(errors, expect), "bad map %u: Error '%s', expected '%s'", k, errors, expect);
    }
    CHECK_EQ_U64(bridge_open_fds(), fds_before, "descriptors open in the bridge");
    CHECK_EQ_U64(it_status_uint(DEVICE, "guest_memory_regions"), 0, "regions after a refused map");
    CHECK(it_log_contains(it.bridge, "guest memory no longer shared (the host's new map was refused)"),
          "dropping the map was not logged");

    /* DMA in RAM now goes to the host. */
    uint8_t word[4] = {1, 2, 3, 4};
    send_mwr(&s, RAM_BASE, word, 4);
    Tlpb__Envelope *m = next_tlp(&h, "host");
    CHECK(m->tlp->kind == TLPB__TLP_KIND__TLP_MWR && m->tlp->address == RAM_BASE,
          "after a refused map, a write in RAM did not go to the host");
    tlpb_envelope_free(m);
    close(good);
    close(unsealed);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    raw_close(&h);
    raw_close(&s);
}

static void case_not_granted(void)
{
    struct raw h;
    Tlpb__Envelope *reply = raw_host_caps(&h, DEVICE, 0);
    CHECK_EQ_U64(reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY, 0,
                 "CAP_GUEST_MEMORY granted although not offered");
    tlpb_envelope_free(reply);
    int fd = sealed_memfd(RAM_BYTES, true);
    struct test_guest_region one = {RAM_BASE, RAM_BYTES, 0, 0};
    send_map(&h, &one, 1, 1, &fd, 1);
    char errors[256];
    host_fence(&h, errors, sizeof(errors));
    CHECK(strstr(errors, "GuestMemory from a host is not accepted"),
          "GuestMemory without CAP_GUEST_MEMORY: Error '%s'", errors);
    CHECK_EQ_U64(it_status_uint(DEVICE, "guest_memory_regions"), 0,
                 "regions without the capability");
    close(fd);
    raw_close(&h);
}

static void case_host_disconnect_drops_map(void)
{
    struct raw h;
    shm_host(&h);
    int fd = sealed_memfd(RAM_BYTES, true);
    struct test_guest_region one = {RAM_BASE, RAM_BYTES, 0, 0};
    send_map(&h, &one, 1, 1, &fd, 1);
    char errors[256];
    host_fence(&h, errors, sizeof(errors));
    CHECK(errors[0] == '\0', "a good map was refused: %s", errors);
    CHECK_EQ_U64(it_status_uint(DEVICE, "guest_memory_regions"), 1,
                 "regions while the host is connected");
    raw_close(&h);
    /* The next host is accepted only once the bridge has seen the first one
     * go (else "already has a host"): then the map must be gone. */
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    bool attached = false;
    while (!attached && it_now_ms() < deadline) {
        raw_open(&h);
        Tlpb__Envelope *reply =
            raw_hello(&h, TLPB__ROLE__ROLE_HOST, DEVICE, TLPB_PROTOCOL_MAJOR, NULL);
        attached = reply && reply->hello_reply->accepted;
        tlpb_envelope_free(reply);
        if (!attached)
            raw_close(&h);
    }
    REQUIRE(attached, "no new host accepted after the first disconnected");
    CHECK_EQ_U64(it_status_uint(DEVICE, "guest_memory_regions"), 0,
                 "regions after the host disconnected");
    CHECK(it_log_contains(it.bridge, "guest memory no longer shared (host disconnected)"),
          "dropping the map was not logged");
    close(fd);
    raw_close(&h);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_guest_memory");
    REQUIRE(it_paths.model != NULL, "--model is required");
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "devices = (\n  { name = \"" DEVICE "\"; backend = \"external\"; model = \"%s\"; }\n);\n",
             it_paths.model);
    const char *args[] = {"--config", it_write_file("guestmem.cfg", cfg), NULL};
    it_start_bridge(args);
    IT_RUN("DMA inside the shared map is served from it", case_dma_from_shared_memory());
    IT_RUN("bad maps are refused with their reason, no descriptor leaks", case_bad_maps());
    IT_RUN("GuestMemory without CAP_GUEST_MEMORY is refused", case_not_granted());
    IT_RUN("the map is dropped when the host disconnects", case_host_disconnect_drops_map());
    return it_finish();
}

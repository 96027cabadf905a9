/* The bridge's side of the shared-memory ring (docs/protocol.md,
 * "Shared-memory ring"), driven by a raw host that creates the ring itself
 * (tlpb/ring.h) and can write anything into it: requests to the in-process
 * dmacopy model and their completions and interrupt over the ring, a host
 * that never consumes what the bridge sends, and garbage in the ring and in
 * RingSetup — each refused with its reason, the host dropped, another
 * device still served, no sanitizer report.
 *
 * --mode adaptive|busy-poll|off: the bridge's --ring policy (off, from its
 * configuration file: only that the ring is not granted). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/ring.h"

#define RING_BYTES TLPB_RING_MIN_BYTES
#define BDF 0x0100u

struct ring_host {
    struct raw r;
    struct tlpb_ring *ring;
    int fds[TLPB_RING_FD_COUNT];  /* owned by ring */
    uint8_t *mem;                 /* our own view, to write garbage into */
    uint8_t next_tag;
};

/* The host -> bridge direction's control page and data, as the bridge reads
 * them (tlpb/ring.h layout). */
static uint8_t *h2b_ctl(struct ring_host *h)
{
    return h->mem + tlpb_ring_control_offset(RING_BYTES, 0);
}
static uint8_t *h2b_data(struct ring_host *h)
{
    return h->mem + tlpb_ring_data_offset(RING_BYTES, 0);
}
static uint64_t h2b_producer(struct ring_host *h)
{
    return tlpb_get_le64(h2b_ctl(h) + TLPB_RING_CTL_PRODUCER);
}
/* Publish a producer index (after the record bytes are written). */
static void h2b_set_producer(struct ring_host *h, uint64_t index)
{
    __atomic_store_n((uint64_t *)(void *)(h2b_ctl(h) + TLPB_RING_CTL_PRODUCER), index,
                     __ATOMIC_RELEASE);
}

static void send_ring_setup(struct ring_host *h, uint64_t ring_bytes, const int *fds, unsigned n)
{
    Tlpb__RingSetup rs = TLPB__RING_SETUP__INIT;
    rs.ring_bytes = ring_bytes;
    rs.host_policy = (char *)"adaptive";
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RING_SETUP;
    env.ring_setup = &rs;
    raw_send_env_fds(&h->r, &env, fds, n);
}

/* A host of device that offered CAP_SHM_RING, was granted it, created a
 * ring and sent RingSetup with its descriptors. */
static void ring_host_open(struct ring_host *h, const char *device)
{
    memset(h, 0, sizeof(*h));
    Tlpb__Envelope *reply = raw_host_caps(&h->r, device, TLPB__CAPABILITY__CAP_SHM_RING);
    CHECK(reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_SHM_RING,
          "CAP_SHM_RING offered on the unix socket, not granted");
    tlpb_envelope_free(reply);
    char err[256];
    REQUIRE(tlpb_ring_create(&h->ring, RING_BYTES, h->fds, err, sizeof(err)) == 0,
            "tlpb_ring_create: %s", err);
    h->mem = mmap(NULL, tlpb_ring_memory_bytes(RING_BYTES), PROT_READ | PROT_WRITE, MAP_SHARED,
                  h->fds[TLPB_RING_FD_MEMORY], 0);
    REQUIRE(h->mem != MAP_FAILED, "mmap of the ring: %s", strerror(errno));
    send_ring_setup(h, RING_BYTES, h->fds, TLPB_RING_FD_COUNT);
    h->next_tag = 1;
}

static void ring_host_close(struct ring_host *h)
{
    raw_close(&h->r);
    if (h->mem)
        munmap(h->mem, tlpb_ring_memory_bytes(RING_BYTES));
    if (h->ring)
        tlpb_ring_destroy(h->ring);
    memset(h, 0, sizeof(*h));
}

/* The next record from the bridge: 1 with *m, 0 when the socket closed or
 * nothing came within the deadline (a failure unless expected). Sleeps as
 * a host does: asleep flag armed, then poll on the wake-host eventfd and
 * the socket. */
static int ring_next(struct ring_host *h, struct tlpb_ring_msg *m)
{
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    for (;;) {
        int rc = tlpb_ring_get(h->ring, m);
        REQUIRE(rc >= 0, "the bridge's records are garbage: %s", tlpb_ring_error(h->ring));
        if (rc == 1) {
            tlpb_ring_notify(h->ring); /* the bridge may wait for this room */
            return 1;
        }
        if (it_now_ms() >= deadline)
            return 0;
        if (!tlpb_ring_prepare_sleep(h->ring)) {
            tlpb_ring_woken(h->ring);
            continue;
        }
        struct pollfd p[2] = {{.fd = tlpb_ring_wake_fd(h->ring), .events = POLLIN},
                              {.fd = h->r.fd, .events = POLLIN}};
        int n = poll(p, 2, (int)(deadline - it_now_ms()));
        tlpb_ring_woken(h->ring);
        if (n > 0 && (p[1].revents & (POLLIN | POLLHUP)) && !(p[0].revents & POLLIN) &&
            !tlpb_ring_pending(h->ring)) {
            /* Socket readable: only its end is expected there. */
            char byte;
            if (recv(h->r.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
                return 0;
            it_fail_at(__FILE__, __LINE__, false, "the bridge wrote to the socket after RingSetup");
            return 0;
        }
    }
}

static void ring_put(struct ring_host *h, const struct tlpb_tlp *tlp)
{
    REQUIRE(tlpb_ring_put_tlp(h->ring, tlp) == 0, "put TLP into the ring");
    tlpb_ring_notify(h->ring);
}

/* The next TLP from the bridge (Errors and events skipped and counted). */
static bool ring_next_tlp(struct ring_host *h, struct tlpb_tlp *tlp, uint8_t *payload,
                          unsigned *errors)
{
    struct tlpb_ring_msg m;
    while (ring_next(h, &m) == 1) {
        if (m.type == TLPB_RING_MSG_TLP) {
            *tlp = m.tlp;
            if (payload && m.tlp.payload_bytes)
                memcpy(payload, m.tlp.payload, m.tlp.payload_bytes);
            tlp->payload = payload;
            return true;
        }
        if (m.type == TLPB_RING_MSG_ENVELOPE) {
            if (m.env->body_case == TLPB__ENVELOPE__BODY_ERROR && errors)
                (*errors)++;
            tlpb_envelope_free(m.env);
        }
    }
    return false;
}

static void cfg_write(struct ring_host *h, uint16_t reg, uint32_t value, uint8_t be)
{
    uint8_t data[4];
    tlpb_put_le32(data, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .tag = h->next_tag++, .length_dw = 1,
                          .first_be = be, .completer_id = BDF, .cfg_register = reg,
                          .bar_hint = TLPB_NO_BAR, .payload_bytes = 4, .payload = data};
    ring_put(h, &wr);
    struct tlpb_tlp cpl;
    REQUIRE(ring_next_tlp(h, &cpl, NULL, NULL), "no completion on the ring for CfgWr0 0x%x", reg);
    CHECK(cpl.kind == TLPB_TLP_CPL && cpl.status == TLPB_CPL_SC && cpl.tag == wr.tag,
          "CfgWr0 0x%x: not completed SC with its tag", reg);
}

static void mem_write(struct ring_host *h, uint32_t reg, uint32_t value)
{
    uint8_t data[4];
    tlpb_put_le32(data, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .length_dw = 1, .first_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR + reg, .bar_hint = 0, .payload_bytes = 4,
                          .payload = data};
    ring_put(h, &wr);
}

/* MRd of one register over the ring; its CplD's data. */
static uint32_t mem_read(struct ring_host *h, uint32_t reg)
{
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = h->next_tag++, .length_dw = 1,
                          .first_be = 0xF, .address = DMACOPY_BAR0_ADDR + reg, .bar_hint = 0};
    ring_put(h, &rd);
    struct tlpb_tlp cpl;
    uint8_t data[4] = {0};
    REQUIRE(ring_next_tlp(h, &cpl, data, NULL), "no completion on the ring for MRd 0x%x", reg);
    CHECK(cpl.kind == TLPB_TLP_CPLD && cpl.tag == rd.tag && cpl.payload_bytes == 4,
          "MRd 0x%x: completion is not a 1-DW CplD with its tag", reg);
    return tlpb_get_le32(data);
}

/* BAR0 and memory space + bus master, through the ring. */
static void enumerate(struct ring_host *h)
{
    cfg_write(h, 0x10, DMACOPY_BAR0_ADDR, 0xF);
    cfg_write(h, 0x04, 0x06, 0x3);
}

/* Another device's host works over its ring: the bridge still serves. */
static struct ring_host other;
static void check_other_served(const char *after)
{
    uint32_t v = 0x5A000000u | (uint32_t)it_now_ms() % 0x10000u;
    mem_write(&other, REG_SCRATCH, v);
    CHECK(mem_read(&other, REG_SCRATCH) == v, "after %s: dmacopy1 scratch not read back", after);
}

static void case_round_trip(void)
{
    struct ring_host h;
    ring_host_open(&h, "dmacopy0");
    enumerate(&h);
    CHECK(mem_read(&h, REG_ID) != 0 && mem_read(&h, REG_ID) != 0xFFFFFFFFu,
          "dmacopy ID reads as nothing over the ring");
    mem_write(&h, REG_SCRATCH, 0x12345678u);
    CHECK_EQ_U64(mem_read(&h, REG_SCRATCH), 0x12345678u, "scratch read back over the ring");

    /* A request that breaks a PCIe rule gets the same treatment as on the
     * socket: an Error and a UR completion, the host stays. */
    struct tlpb_tlp bad = {.kind = TLPB_TLP_MRD, .tag = 200, .length_dw = 2, .first_be = 0xF,
                           .last_be = 0xF, .address = DMACOPY_BAR0_ADDR + 0xFFC, .bar_hint = 0};
    ring_put(&h, &bad);
    struct tlpb_tlp cpl;
    unsigned errors = 0;
    REQUIRE(ring_next_tlp(&h, &cpl, NULL, &errors), "no completion for the 4 KiB-crossing MRd");
    CHECK(cpl.tag == 200 && cpl.status == TLPB_CPL_UR, "4 KiB-crossing MRd not completed UR");
    CHECK(errors == 1, "4 KiB-crossing MRd: %u Error records before its UR, expected 1", errors);
    CHECK(it_log_contains(it.bridge, "rejected MRd tag 200: memory request crosses a 4 KiB"),
          "the rejection is not logged");
    /* And counted as the checker's rule, as from the socket. */
    CHECK_EQ_U64(it_status_uint("dmacopy0", "crosses_4k"), 1,
                 "crosses_4k counted for the 4 KiB-crossing MRd from the ring");

    /* An interrupt from the device arrives on the ring: a bad descriptor
     * ring halts the engine with IRQ_ERROR, INTx asserted. */
    mem_write(&h, REG_RING_SIZE, 3); /* not a power of two */
    mem_write(&h, REG_TAIL, 1);
    mem_write(&h, REG_CTRL, CTRL_ENABLE);
    struct tlpb_ring_msg m;
    bool irq = false;
    while (!irq && ring_next(&h, &m) == 1) {
        if (m.type == TLPB_RING_MSG_INTERRUPT)
            irq = m.irq_kind == TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT;
        else if (m.type == TLPB_RING_MSG_ENVELOPE)
            tlpb_envelope_free(m.env);
    }
    CHECK(irq, "no INTx assert on the ring after the engine halted");
    CHECK(mem_read(&h, REG_IRQ_STATUS) & IRQ_ERROR, "IRQ_ERROR not set");

    /* Status reports the ring and its traffic. */
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    const char *dev = status ? it_json_device(status, "dmacopy0") : NULL;
    char policy[32] = "";
    unsigned long long in = 0, out = 0;
    CHECK(dev && it_json_str(dev, "ring", policy, sizeof(policy)) &&
              strcmp(policy, it_paths.mode) == 0,
          "status ring is \"%s\", expected \"%s\"", policy, it_paths.mode);
    CHECK(dev && it_json_uint(dev, "ring_records_in", &in) && in >= 10,
          "ring_records_in %llu", in);
    CHECK(dev && it_json_uint(dev, "ring_records_out", &out) && out >= 8,
          "ring_records_out %llu", out);
    free(status);

    if (strcmp(it_paths.mode, "adaptive") == 0) {
        /* Quiet now: the bridge stops polling and sleeps on the eventfd;
         * a request then wakes it. */
        uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
        while (it_status_uint("dmacopy0", "ring_sleeps") == 0 && it_now_ms() < deadline)
            ;
        CHECK(it_status_uint("dmacopy0", "ring_sleeps") > 0, "adaptive: the bridge never slept");
        CHECK_EQ_U64(mem_read(&h, REG_SCRATCH), 0x12345678u, "scratch read after a sleep");
    } else {
        CHECK_EQ_U64(it_status_uint("dmacopy0", "ring_sleeps"), 0, "busy-poll: ring_sleeps");
    }
    ring_host_close(&h);
}

/* A host that makes the bridge fill the bridge -> host ring and never reads
 * it: the bridge stops reading that host (backpressure), serves the other
 * device, and once the host reads, every completion arrives, in order. */
static void case_host_does_not_consume(void)
{
    struct ring_host h;
    ring_host_open(&h, "dmacopy0");
    enumerate(&h);
    /* 4 KiB reads: each answered by several CplDs. */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .length_dw = 1024, .first_be = 0xF,
                          .last_be = 0xF, .address = DMACOPY_BAR0_ADDR, .bar_hint = 0};
    unsigned sent = 0;
    bool paused = false;
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    while (!paused && it_now_ms() < deadline) {
        rd.tag = (uint8_t)(sent % 256);
        int rc = tlpb_ring_put_tlp(h.ring, &rd);
        if (rc == 0) {
            sent++;
            tlpb_ring_notify(h.ring);
            if (sent % 64)
                continue;
        } else {
            REQUIRE(rc == -EAGAIN, "put: %d", rc);
            tlpb_ring_notify(h.ring);
        }
        bool ok = false;
        char *status = it_control("status", NULL, &ok);
        paused = status && strstr(status, "\"name\": \"host[dmacopy0]\"") &&
                 strstr(strstr(status, "\"name\": \"host[dmacopy0]\""), "\"reading_paused\": true");
        free(status);
    }
    REQUIRE(paused, "the bridge never stopped reading a host that does not consume (%u sent)",
            sent);
    /* Paused means it takes no more records: fill the host's ring too, and
     * what the bridge queued for the host stays within the documented bound
     * (8 MiB, docs/bridge.md "Limits", plus the one request's completions
     * that crossed it). */
    while (it_now_ms() < deadline) {
        rd.tag = (uint8_t)(sent % 256);
        int rc = tlpb_ring_put_tlp(h.ring, &rd);
        if (rc == -EAGAIN)
            break;
        REQUIRE(rc == 0, "put: %d", rc);
        sent++;
    }
    tlpb_ring_notify(h.ring);
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    const char *conn = status ? strstr(status, "\"name\": \"host[dmacopy0]\"") : NULL;
    unsigned long long queued = 0;
    CHECK(conn && it_json_uint(conn, "queued_bytes", &queued) &&
              queued <= 8ull * 1024 * 1024 + 64 * 1024,
          "%llu bytes queued for a host whose ring is full", queued);
    free(status);
    check_other_served("a host stopped consuming");
    /* Now read everything: the completions come in request order. */
    unsigned got_requests = 0;
    uint32_t remaining = 0;
    uint8_t expect_tag = 0;
    uint8_t payload[4096];
    struct tlpb_tlp cpl;
    while (got_requests < sent && ring_next_tlp(&h, &cpl, payload, NULL)) {
        if (remaining == 0)
            remaining = 4096;
        if (cpl.kind != TLPB_TLP_CPLD || cpl.tag != expect_tag || cpl.payload_bytes > remaining) {
            it_fail_at(__FILE__, __LINE__, false,
                       "completion kind %d tag %u of %u bytes, expected CplD tag %u (order)",
                       (int)cpl.kind, cpl.tag, cpl.payload_bytes, expect_tag);
            break;
        }
        remaining -= cpl.payload_bytes;
        if (remaining == 0) {
            got_requests++;
            expect_tag++;
        }
    }
    CHECK(got_requests == sent, "%u of %u reads completed", got_requests, sent);
    ring_host_close(&h);
}

/* The host is dropped with reason in the bridge's log; then the other
 * device is still served. */
static void expect_dropped_ex(struct ring_host *h, const char *reason, const char *what,
                              bool tell)
{
    CHECK(raw_expect_dropped(&h->r), "%s: the bridge kept the host", what);
    /* The reason reaches the host (on the ring once it is attached, else on
     * the socket) unless the ring itself is corrupt: then only the log. */
    bool told = !tell || (h->r.errors_seen && strstr(h->r.last_error, reason));
    struct tlpb_ring_msg m;
    while (!told && h->ring && tlpb_ring_get(h->ring, &m) == 1) {
        if (m.type != TLPB_RING_MSG_ENVELOPE)
            continue;
        told = m.env->body_case == TLPB__ENVELOPE__BODY_ERROR &&
               strstr(m.env->error->reason, reason);
        tlpb_envelope_free(m.env);
    }
    CHECK(told, "%s: no Error with \"%s\" (last on the socket: \"%s\")", what, reason,
          h->r.last_error);
    CHECK(it_log_contains(it.bridge, reason), "%s: \"%s\" not in the bridge's log", what, reason);
    ring_host_close(h);
    if (other.ring) /* --mode off has no other ring host */
        check_other_served(what);
}

static void expect_dropped(struct ring_host *h, const char *reason, const char *what)
{
    expect_dropped_ex(h, reason, what, true);
}
static void expect_ring_garbage(struct ring_host *h, const char *reason, const char *what)
{
    expect_dropped_ex(h, reason, what, false);
}

/* A working ring whose first request completed (the bridge consumed it). */
static void open_working(struct ring_host *h)
{
    ring_host_open(h, "dmacopy0");
    enumerate(h);
}

/* Write one raw record header (and zero body) at the producer's position
 * and publish producer + advance. */
static void put_raw_record(struct ring_host *h, uint32_t len, uint16_t type, uint64_t advance)
{
    uint64_t p = h2b_producer(h);
    uint8_t *rec = h2b_data(h) + (p & (RING_BYTES - 1));
    memset(rec, 0, 64);
    tlpb_put_le32(rec, len);
    tlpb_put_le16(rec + 4, type);
    h2b_set_producer(h, p + advance);
    tlpb_ring_notify(h->ring);
    /* the bridge may sleep: wake it as a host would */
    uint64_t one = 1;
    CHECK(write(h->fds[TLPB_RING_FD_WAKE_BRIDGE], &one, 8) == 8, "wake the bridge");
}

static void case_garbage_indices(void)
{
    struct ring_host h;
    open_working(&h);
    h2b_set_producer(&h, h2b_producer(&h) - 8);
    uint64_t one = 1;
    CHECK(write(h.fds[TLPB_RING_FD_WAKE_BRIDGE], &one, 8) == 8, "wake the bridge");
    expect_ring_garbage(&h, "protocol error in the shared-memory ring: ring: producer index",
                        "producer index moved back");

    open_working(&h);
    h2b_set_producer(&h, h2b_producer(&h) + RING_BYTES + 64);
    CHECK(write(h.fds[TLPB_RING_FD_WAKE_BRIDGE], &one, 8) == 8, "wake the bridge");
    expect_ring_garbage(&h, "is more than ring_bytes ahead", "producer index too far ahead");
}

static void case_garbage_records(void)
{
    struct ring_host h;
    open_working(&h);
    put_raw_record(&h, 0, TLPB_RING_MSG_TLP, 8);
    expect_ring_garbage(&h, "ring: record length 0 is shorter than its header", "record length 0");

    open_working(&h);
    put_raw_record(&h, 12, TLPB_RING_MSG_TLP, 16);
    expect_ring_garbage(&h, "ring: record length 12 is not a multiple of 8",
                        "unaligned record length");

    open_working(&h);
    put_raw_record(&h, 64, TLPB_RING_MSG_TLP, 16);
    expect_ring_garbage(&h, "ring: record length 64 exceeds the 16 bytes available",
                        "record longer than what is available");

    open_working(&h);
    put_raw_record(&h, 16, 9, 16);
    expect_ring_garbage(&h, "ring: unknown record type 9", "unknown record type");

    /* A TLP record whose field does not fit its PCIe width. */
    open_working(&h);
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = 9, .length_dw = 1, .first_be = 0xF,
                          .traffic_class = 9, .address = DMACOPY_BAR0_ADDR, .bar_hint = 0};
    ring_put(&h, &rd);
    expect_ring_garbage(&h, "in the shared-memory ring: ring: TLP record: traffic_class",
                        "TLP record with a bad field");
}

static void put_envelope_in_ring(struct ring_host *h, Tlpb__Envelope *env)
{
    REQUIRE(tlpb_ring_put_envelope(h->ring, env) == 0, "put envelope");
    tlpb_ring_notify(h->ring);
}

static void case_wrong_messages(void)
{
    struct ring_host h;
    open_working(&h);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_HOST, "dmacopy0", "again");
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    put_envelope_in_ring(&h, &env);
    expect_dropped(&h, "Hello inside the shared-memory ring", "Hello inside the ring");

    open_working(&h);
    Tlpb__RingSetup rs = TLPB__RING_SETUP__INIT;
    rs.ring_bytes = RING_BYTES;
    env.body_case = TLPB__ENVELOPE__BODY_RING_SETUP;
    env.ring_setup = &rs;
    put_envelope_in_ring(&h, &env);
    expect_dropped(&h, "RingSetup inside the shared-memory ring", "RingSetup inside the ring");

    /* RingSetup twice, the second with good descriptors of its own. */
    open_working(&h);
    struct tlpb_ring *second;
    int fds[TLPB_RING_FD_COUNT];
    char err[256];
    REQUIRE(tlpb_ring_create(&second, RING_BYTES, fds, err, sizeof(err)) == 0, "%s", err);
    send_ring_setup(&h, RING_BYTES, fds, TLPB_RING_FD_COUNT);
    expect_dropped(&h, "second RingSetup", "RingSetup twice");
    tlpb_ring_destroy(second);
}

static void case_bad_ring_setup(void)
{
    struct ring_host h;
    char err[256];
    /* Without descriptors. */
    memset(&h, 0, sizeof(h));
    tlpb_envelope_free(raw_host_caps(&h.r, "dmacopy0", TLPB__CAPABILITY__CAP_SHM_RING));
    send_ring_setup(&h, RING_BYTES, NULL, 0);
    expect_dropped(&h, "RingSetup came with 0 file descriptors, it needs 3",
                   "RingSetup without fds");

    /* Not offered, so not granted. */
    memset(&h, 0, sizeof(h));
    tlpb_envelope_free(raw_host_caps(&h.r, "dmacopy0", 0));
    struct tlpb_ring *ring;
    int fds[TLPB_RING_FD_COUNT];
    REQUIRE(tlpb_ring_create(&ring, RING_BYTES, fds, err, sizeof(err)) == 0, "%s", err);
    send_ring_setup(&h, RING_BYTES, fds, TLPB_RING_FD_COUNT);
    expect_dropped(&h, "RingSetup without CAP_SHM_RING granted", "RingSetup not granted");

    /* Descriptors of the wrong kinds: a pipe for the memory, then the
     * memory where an eventfd belongs. */
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0, "pipe");
    int wrong[TLPB_RING_FD_COUNT] = {pipefd[0], fds[TLPB_RING_FD_WAKE_BRIDGE],
                                     fds[TLPB_RING_FD_WAKE_HOST]};
    memset(&h, 0, sizeof(h));
    tlpb_envelope_free(raw_host_caps(&h.r, "dmacopy0", TLPB__CAPABILITY__CAP_SHM_RING));
    send_ring_setup(&h, RING_BYTES, wrong, TLPB_RING_FD_COUNT);
    expect_dropped(&h, "RingSetup refused: ring: the memory descriptor is not a memfd",
                   "pipe as ring memory");
    int wrong2[TLPB_RING_FD_COUNT] = {fds[TLPB_RING_FD_MEMORY], fds[TLPB_RING_FD_MEMORY],
                                      fds[TLPB_RING_FD_WAKE_HOST]};
    memset(&h, 0, sizeof(h));
    tlpb_envelope_free(raw_host_caps(&h.r, "dmacopy0", TLPB__CAPABILITY__CAP_SHM_RING));
    send_ring_setup(&h, RING_BYTES, wrong2, TLPB_RING_FD_COUNT);
    expect_dropped(&h, "RingSetup refused: ring: the wake-bridge descriptor is not an eventfd",
                   "memfd as wake-bridge eventfd");
    close(pipefd[0]);
    close(pipefd[1]);
    tlpb_ring_destroy(ring);
}

/* --ring off: the capability is not granted and a RingSetup is refused. */
static void case_ring_off(void)
{
    struct ring_host h;
    memset(&h, 0, sizeof(h));
    Tlpb__Envelope *reply = raw_host_caps(&h.r, "dmacopy0", TLPB__CAPABILITY__CAP_SHM_RING);
    CHECK(!(reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_SHM_RING),
          "--ring off: CAP_SHM_RING granted");
    tlpb_envelope_free(reply);
    struct tlpb_ring *ring;
    int fds[TLPB_RING_FD_COUNT];
    char err[256];
    REQUIRE(tlpb_ring_create(&ring, RING_BYTES, fds, err, sizeof(err)) == 0, "%s", err);
    send_ring_setup(&h, RING_BYTES, fds, TLPB_RING_FD_COUNT);
    expect_dropped(&h, "RingSetup without CAP_SHM_RING granted", "--ring off: RingSetup");
    tlpb_ring_destroy(ring);
    char policy[32] = "";
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    const char *dev = status ? it_json_device(status, "dmacopy1") : NULL;
    CHECK(dev && it_json_str(dev, "ring", policy, sizeof(policy)) && strcmp(policy, "off") == 0,
          "--ring off: status ring \"%s\"", policy);
    free(status);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_ring_bridge");
    REQUIRE(it_paths.mode && (strcmp(it_paths.mode, "adaptive") == 0 ||
                              strcmp(it_paths.mode, "busy-poll") == 0 ||
                              strcmp(it_paths.mode, "off") == 0),
            "--mode adaptive|busy-poll|off");
    char dev0[512], dev1[512];
    snprintf(dev0, sizeof(dev0), "dmacopy0:hlsim=%s", it_paths.model);
    snprintf(dev1, sizeof(dev1), "dmacopy1:hlsim=%s", it_paths.model);
    const char *args[] = {"--device", dev0, "--device", dev1, "--ring", it_paths.mode, NULL};
    /* off comes from the configuration file: that path is tested too. */
    const char *off_args[] = {"--device", dev0, "--device", dev1, "-c",
                              it_write_file("ring-off.cfg", "ring = \"off\";\n"), NULL};
    it_start_bridge(strcmp(it_paths.mode, "off") == 0 ? off_args : args);
    if (strcmp(it_paths.mode, "off") == 0) {
        IT_RUN("--ring off", case_ring_off());
        return it_finish();
    }
    ring_host_open(&other, "dmacopy1");
    enumerate(&other);

    IT_RUN("round trip over the ring", case_round_trip());
    IT_RUN("a host that does not consume", case_host_does_not_consume());
    IT_RUN("bad indices", case_garbage_indices());
    IT_RUN("bad records", case_garbage_records());
    IT_RUN("messages that do not belong in the ring", case_wrong_messages());
    IT_RUN("bad RingSetup", case_bad_ring_setup());

    ring_host_close(&other);
    /* The checker counted the one rule case_round_trip broke, nothing else. */
    it_expect_violations();
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    long long violations = status && ok ? it_json_violations(status) : -1;
    CHECK(violations == 1, "the checker counted %lld violations, expected the crosses_4k one: %s",
          violations, status ? status : "");
    free(status);
    return it_finish();
}

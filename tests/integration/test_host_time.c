/* libtlpbhost's coupled simulated time (docs/protocol.md, "Simulated time")
 * against a scripted bridge: a thread that speaks the protocol by hand, so
 * each case can check exactly what the host sent and answer on cue.
 *
 * - GRANT carries an incrementing id, the host's time and the grant; the
 *   REACHED with that id (not another) ends the wait; idle and next event;
 *   busy/idle tracking; sync statistics;
 * - the device's DMA reads, DMA writes and interrupts are served during a
 *   grant, in order, and the DMA read's completion is stamped;
 * - stamps on memory reads, config requests, posted writes (the time they
 *   were queued, not sent) and resets; last_completion_ps;
 * - a bridge that grants no CAP_TIME_SYNC, or that answers a TimeSync with
 *   an Error: free-running, one log line;
 * - a bridge that goes away during a grant, or stays silent: an error and
 *   an idle device, never a hang; a late REACHED is not taken for the next
 *   grant's. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"
#include "tlpb_host.h"

#define QUANTUM_PS 10000000u /* 10 us */
#define MEM_BASE 0x10000u     /* "guest memory" served to the device's DMA */
#define MEM_SIZE 0x1000u
#define BAR0_ADDR 0xfe000000u
#define DEVICE_BDF 0x0100u

/* ---- The scripted bridge ----------------------------------------------------- */

struct fake_bridge;
typedef void script_fn(struct fake_bridge *fb);

struct fake_bridge {
    int listen_fd;
    int fd;
    struct tlpb_frame_reader rd;
    struct tlpb_obuf ob;
    script_fn *script;
    bool grant_time_sync;   /* HelloReply grants CAP_TIME_SYNC */
    const char *time_mode;  /* HelloReply.time_mode */
    /* what the host's Hello said */
    bool hello_offered_time;
    uint64_t hello_quantum_ps;
};

static Tlpb__Envelope *fb_next(struct fake_bridge *fb)
{
    return raw_read_envelope(fb->fd, &fb->rd);
}

static void fb_send(struct fake_bridge *fb, const Tlpb__Envelope *env)
{
    if (tlpb_obuf_append(&fb->ob, env, true) != 0 || tlpb_obuf_write_all(&fb->ob, fb->fd) != 0)
        CHECK(false, "fake bridge: cannot send");
}

static void fb_send_tlp(struct fake_bridge *fb, const struct tlpb_tlp *tlp)
{
    if (tlpb_obuf_append_tlp(&fb->ob, tlp, true) != 0 || tlpb_obuf_write_all(&fb->ob, fb->fd) != 0)
        CHECK(false, "fake bridge: cannot send a TLP");
}

static void fb_send_reached(struct fake_bridge *fb, uint64_t sync_id, uint64_t sim_time_ps,
                            bool idle, uint64_t next_event_ps)
{
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
    ts.sync_id = sync_id;
    ts.sim_time_ps = sim_time_ps;
    ts.idle = idle;
    ts.next_event_ps = next_event_ps;
    Tlpb__Envelope env;
    tlpb_time_sync_envelope(&env, &ts);
    fb_send(fb, &env);
}

/* The next message must be a TLP of kind; it is decoded into *tlp (payload
 * copied to payload_buf). Returns false (and records a failure) otherwise. */
static bool fb_expect_tlp(struct fake_bridge *fb, enum tlpb_tlp_kind kind, struct tlpb_tlp *tlp,
                          uint8_t *payload_buf, size_t payload_size)
{
    Tlpb__Envelope *env = fb_next(fb);
    const char *reason = "";
    bool ok = env && env->body_case == TLPB__ENVELOPE__BODY_TLP &&
              tlpb_tlp_from_pb(tlp, env->tlp, &reason) == 0 && tlp->kind == kind && tlp->payload_bytes <= payload_size;
    CHECK(ok, "fake bridge expected a %s, got message %d", tlpb_tlp_kind_name(kind),
          env ? (int)env->body_case : -1);
    if (ok) {
        if (tlp->payload_bytes)
            memcpy(payload_buf, tlp->payload, tlp->payload_bytes);
        tlp->payload = payload_buf;
    }
    tlpb_envelope_free(env);
    return ok;
}

/* The next message must be a GRANT: returns its fields in *out. */
static bool fb_expect_grant(struct fake_bridge *fb, Tlpb__TimeSync *out)
{
    Tlpb__Envelope *env = fb_next(fb);
    bool ok = env && env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
              env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT;
    CHECK(ok, "fake bridge expected a GRANT, got message %d", env ? (int)env->body_case : -1);
    if (ok)
        *out = *env->time_sync;
    tlpb_envelope_free(env);
    return ok;
}

/* Read until the host hangs up. */
static void fb_drain(struct fake_bridge *fb)
{
    Tlpb__Envelope *more;
    while ((more = fb_next(fb)) != NULL)
        tlpb_envelope_free(more);
}

static void *fake_bridge_run(void *arg)
{
    struct fake_bridge *fb = arg;
    fb->fd = accept(fb->listen_fd, NULL, NULL);
    if (fb->fd < 0)
        return NULL;
    tlpb_reader_init(&fb->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    tlpb_obuf_init(&fb->ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_HARD_MAX_FRAME_BYTES);
    Tlpb__Envelope *hello = fb_next(fb);
    if (hello && hello->body_case == TLPB__ENVELOPE__BODY_HELLO) {
        fb->hello_offered_time = (hello->hello->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC) != 0;
        fb->hello_quantum_ps = hello->hello->quantum_ps;
    }
    tlpb_envelope_free(hello);

    struct tlpb_devdesc_pb desc_pb;
    Tlpb__HelloReply hr;
    raw_hello_reply_init(&hr, &desc_pb, dmacopy_description());
    hr.backend = (char *)"external";
    hr.simulator_attached = true;
    hr.capabilities = fb->grant_time_sync ? TLPB__CAPABILITY__CAP_TIME_SYNC : 0;
    hr.time_mode = (char *)(fb->time_mode ? fb->time_mode : "");
    Tlpb__Envelope reply = TLPB__ENVELOPE__INIT;
    reply.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    reply.hello_reply = &hr;
    fb_send(fb, &reply);

    fb->script(fb);
    if (fb->fd >= 0) {
        fb_drain(fb);
        close(fb->fd);
    }
    tlpb_obuf_free(&fb->ob);
    tlpb_reader_free(&fb->rd);
    return NULL;
}

/* ---- The host side ------------------------------------------------------------ */

struct host_side {
    struct tlpb_host *host;
    uint8_t mem[MEM_SIZE];
    unsigned dma_writes;
    unsigned interrupts;
    unsigned last_vector;
    unsigned dma_writes_before_irq;
    unsigned free_running_lines;
};

static int hs_dma_read(void *opaque, uint64_t addr, void *buf, uint32_t len)
{
    struct host_side *hs = opaque;
    if (addr < MEM_BASE || addr + len > MEM_BASE + MEM_SIZE)
        return 1;
    memcpy(buf, hs->mem + (addr - MEM_BASE), len);
    return 0;
}

static int hs_dma_write(void *opaque, uint64_t addr, const void *buf, uint32_t len)
{
    struct host_side *hs = opaque;
    if (addr < MEM_BASE || addr + len > MEM_BASE + MEM_SIZE)
        return 1;
    memcpy(hs->mem + (addr - MEM_BASE), buf, len);
    hs->dma_writes++;
    return 0;
}

static void hs_interrupt(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector)
{
    struct host_side *hs = opaque;
    (void)kind;
    hs->interrupts++;
    hs->last_vector = vector;
    hs->dma_writes_before_irq = hs->dma_writes;
}

static void hs_log(void *opaque, enum tlpb_host_log_level level, const char *message)
{
    struct host_side *hs = opaque;
    if (strstr(message, "running free"))
        hs->free_running_lines++;
    if (level <= TLPB_HOST_LOG_WARN || getenv("TLPB_IT_VERBOSE"))
        printf("host: %s\n", message);
}

static struct fake_bridge fb;
static pthread_t fb_thread;
static struct host_side hs;

static void start_case(script_fn *script, bool grant_time_sync, const char *time_mode,
                       uint32_t read_timeout_ms)
{
    fb.script = script;
    fb.grant_time_sync = grant_time_sync;
    fb.time_mode = time_mode;
    fb.hello_offered_time = false;
    fb.hello_quantum_ps = 0;
    REQUIRE(pthread_create(&fb_thread, NULL, fake_bridge_run, &fb) == 0, "pthread_create");

    memset(&hs, 0, sizeof(hs));
    struct tlpb_host_config cfg = {.address = it.socket_path, .device_name = "dmacopy0",
                                   .device_bdf = DEVICE_BDF, .read_timeout_ms = read_timeout_ms,
                                   .reconnect_interval_ms = 600000, .msix_table_external = true,
                                   .time_sync = true, .quantum_ps = QUANTUM_PS};
    static const struct tlpb_host_ops ops = {.dma_read = hs_dma_read, .dma_write = hs_dma_write,
                                             .interrupt = hs_interrupt, .log = hs_log};
    char err[256];
    REQUIRE(tlpb_host_open(&hs.host, &cfg, &ops, &hs, err, sizeof(err)) == 0, "open: %s", err);
    REQUIRE(tlpb_host_connected(hs.host), "not connected to the scripted bridge");
}

static void end_case(void)
{
    tlpb_host_close(hs.host);
    hs.host = NULL;
    pthread_join(fb_thread, NULL);
}

static void write32(uint64_t addr, uint32_t value)
{
    uint8_t b[4];
    tlpb_put_le32(b, value);
    CHECK_EQ_U64(tlpb_host_mem_write(hs.host, 0, addr, b, 4), 0, "posted write queued");
}

/* ---- Cases ----------------------------------------------------------------------- */

static void script_grants(struct fake_bridge *f)
{
    struct tlpb_tlp tlp;
    uint8_t payload[64];
    Tlpb__TimeSync g;
    /* The write goes out with the grant's batch but keeps its own time. */
    if (fb_expect_tlp(f, TLPB_TLP_MWR, &tlp, payload, sizeof(payload)))
        CHECK_EQ_U64(tlp.sim_time_ps, 1000, "posted write stamped when queued");
    if (fb_expect_grant(f, &g)) {
        CHECK_EQ_U64(g.sync_id, 1, "first grant's id");
        CHECK_EQ_U64(g.sim_time_ps, 2000, "first grant's host time");
        CHECK_EQ_U64(g.grant_until_ps, 5000, "first grant's until");
        fb_send_reached(f, 99, 777, true, 0); /* answers no grant: ignored */
        fb_send_reached(f, g.sync_id, 5000, false, 0);
    }
    if (fb_expect_grant(f, &g)) {
        CHECK_EQ_U64(g.sync_id, 2, "second grant's id");
        CHECK_EQ_U64(g.sim_time_ps, 6000, "second grant's host time");
        CHECK_EQ_U64(g.grant_until_ps, 6000, "second grant's until");
        fb_send_reached(f, g.sync_id, 6500, true, 9000);
    }
}

static void case_grants(void)
{
    start_case(script_grants, true, "coupled", 0);
    CHECK(tlpb_host_time_coupled(hs.host), "coupled after CAP_TIME_SYNC was granted");
    CHECK(strcmp(tlpb_host_time_mode(hs.host), "coupled") == 0, "time mode '%s'",
          tlpb_host_time_mode(hs.host));
    CHECK(!tlpb_host_device_busy(hs.host), "busy before anything was sent");

    tlpb_host_set_time_ps(hs.host, 1000);
    write32(BAR0_ADDR + 0x10, 0x55);
    CHECK(tlpb_host_device_busy(hs.host), "not busy after a queued posted write");
    tlpb_host_set_time_ps(hs.host, 2000);
    struct tlpb_host_reached r = {0};
    int rc = tlpb_host_time_grant(hs.host, 5000, &r);
    CHECK_EQ_U64(rc, 0, "first grant");
    CHECK_EQ_U64(r.sim_time_ps, 5000, "REACHED sim time (not the stray one's)");
    CHECK(!r.idle, "REACHED said busy");
    CHECK(tlpb_host_device_busy(hs.host), "busy after a busy REACHED");

    tlpb_host_set_time_ps(hs.host, 6000);
    rc = tlpb_host_time_grant(hs.host, 6000, &r);
    CHECK_EQ_U64(rc, 0, "second grant");
    CHECK_EQ_U64(r.sim_time_ps, 6500, "second REACHED sim time");
    CHECK(r.idle, "second REACHED said idle");
    CHECK_EQ_U64(r.next_event_ps, 9000, "next event");
    CHECK(!tlpb_host_device_busy(hs.host), "busy after an idle REACHED");

    struct tlpb_host_stats st;
    tlpb_host_get_stats(hs.host, &st);
    CHECK_EQ_U64(st.syncs, 2, "syncs");
    CHECK(st.sync_wall_ns >= st.sync_wall_ns_max && st.sync_wall_ns_max > 0,
          "sync wall time: total %llu max %llu", (unsigned long long)st.sync_wall_ns,
          (unsigned long long)st.sync_wall_ns_max);
    CHECK_EQ_U64(hs.free_running_lines, 0, "no 'running free' line when coupled");
    end_case();
    CHECK(fb.hello_offered_time, "Hello did not offer CAP_TIME_SYNC");
    CHECK_EQ_U64(fb.hello_quantum_ps, QUANTUM_PS, "Hello.quantum_ps");
}

static void script_dma(struct fake_bridge *f)
{
    Tlpb__TimeSync g;
    if (!fb_expect_grant(f, &g))
        return;
    /* The device reads 8 bytes of guest memory... */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = DEVICE_BDF, .tag = 5,
                          .bar_hint = TLPB_NO_BAR, .sim_time_ps = 4000};
    tlpb_tlp_set_mem_range(&rd, MEM_BASE + 0x100, 8);
    fb_send_tlp(f, &rd);
    struct tlpb_tlp cpl;
    uint8_t data[64];
    if (fb_expect_tlp(f, TLPB_TLP_CPLD, &cpl, data, sizeof(data))) {
        CHECK_EQ_U64(cpl.tag, 5, "DMA read completion tag");
        CHECK_EQ_U64(cpl.sim_time_ps, 3000, "DMA read completion stamped with the host's time");
        CHECK_EQ_U64(tlpb_get_le32(data), 0x11223344u, "DMA read data");
    }
    /* ...writes 4 bytes, raises vector 1, and reaches the grant. */
    uint8_t wdata[4];
    tlpb_put_le32(wdata, 0xcafef00du);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .requester_id = DEVICE_BDF,
                          .bar_hint = TLPB_NO_BAR, .payload = wdata, .payload_bytes = 4,
                          .sim_time_ps = 4500};
    tlpb_tlp_set_mem_range(&wr, MEM_BASE + 0x200, 4);
    fb_send_tlp(f, &wr);
    CHECK(tlpb_obuf_append_interrupt_at(&f->ob, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1, 4500) == 0 &&
              tlpb_obuf_write_all(&f->ob, f->fd) == 0,
          "fake bridge: interrupt");
    fb_send_reached(f, g.sync_id, g.grant_until_ps, true, 0);
}

static void case_dma(void)
{
    start_case(script_dma, true, "coupled", 0);
    tlpb_put_le32(hs.mem + 0x100, 0x11223344u);
    tlpb_host_set_time_ps(hs.host, 3000);
    struct tlpb_host_reached r;
    CHECK_EQ_U64(tlpb_host_time_grant(hs.host, 5000, &r), 0, "grant with DMA");
    CHECK_EQ_U64(tlpb_get_le32(hs.mem + 0x200), 0xcafef00du, "DMA write landed during the grant");
    CHECK_EQ_U64(hs.interrupts, 1, "interrupts during the grant");
    CHECK_EQ_U64(hs.last_vector, 1, "interrupt vector");
    CHECK_EQ_U64(hs.dma_writes_before_irq, 1, "the DMA write came before its interrupt");
    CHECK(r.idle && !tlpb_host_device_busy(hs.host), "idle after the grant");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(hs.host, &st);
    CHECK_EQ_U64(st.dma_reads, 1, "DMA reads served");
    end_case();
}

static void script_stamps(struct fake_bridge *f)
{
    struct tlpb_tlp req, cpl;
    uint8_t payload[64], data[4];
    if (fb_expect_tlp(f, TLPB_TLP_MRD, &req, payload, sizeof(payload))) {
        CHECK_EQ_U64(req.sim_time_ps, 3000, "memory read stamp");
        tlpb_completion_for(&cpl, &req, DEVICE_BDF, req.address, 4, 4);
        tlpb_put_le32(data, 0xabcd1234u);
        cpl.payload = data;
        cpl.sim_time_ps = 7000;
        fb_send_tlp(f, &cpl);
    }
    if (fb_expect_tlp(f, TLPB_TLP_CFGRD0, &req, payload, sizeof(payload))) {
        CHECK_EQ_U64(req.sim_time_ps, 3500, "config read stamp");
        tlpb_completion_for(&cpl, &req, DEVICE_BDF, 0, 4, 4);
        tlpb_put_le32(data, 0x7a111234u);
        cpl.payload = data;
        cpl.sim_time_ps = 0; /* unstamped */
        fb_send_tlp(f, &cpl);
    }
    if (fb_expect_tlp(f, TLPB_TLP_CFGWR0, &req, payload, sizeof(payload))) {
        CHECK_EQ_U64(req.sim_time_ps, 3500, "config write stamp (the clock never goes back)");
        tlpb_completion_for(&cpl, &req, DEVICE_BDF, 0, 4, 4);
        cpl.sim_time_ps = 8000;
        fb_send_tlp(f, &cpl);
    }
    Tlpb__Envelope *env = fb_next(f);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_RESET, "fake bridge expected a Reset");
    if (env && env->body_case == TLPB__ENVELOPE__BODY_RESET) {
        CHECK_EQ_U64(env->reset->sim_time_ps, 9000, "reset stamp");
        CHECK_EQ_U64(env->reset->kind, TLPB__RESET_KIND__RESET_HOT, "reset kind");
    }
    tlpb_envelope_free(env);
}

static void case_stamps(void)
{
    start_case(script_stamps, true, "coupled", 0);
    tlpb_host_set_time_ps(hs.host, 3000);
    uint32_t v = 0;
    CHECK_EQ_U64(tlpb_host_mem_read(hs.host, 0, BAR0_ADDR, &v, 4), 0, "memory read");
    CHECK_EQ_U64(v, 0xabcd1234u, "memory read data");
    CHECK_EQ_U64(tlpb_host_last_completion_ps(hs.host), 7000, "last completion after the read");
    CHECK(tlpb_host_device_busy(hs.host), "busy after a read");

    tlpb_host_set_time_ps(hs.host, 3500);
    CHECK_EQ_U64(tlpb_host_config_read(hs.host, 0, &v), 0, "config read");
    CHECK_EQ_U64(v, 0x7a111234u, "config read data");
    CHECK_EQ_U64(tlpb_host_last_completion_ps(hs.host), 0, "an unstamped completion");

    tlpb_host_set_time_ps(hs.host, 3400); /* backwards: ignored */
    CHECK_EQ_U64(tlpb_host_config_write(hs.host, 0x04, 0x6, 0x3), 0, "config write");
    CHECK_EQ_U64(tlpb_host_last_completion_ps(hs.host), 8000, "last completion after the write");

    tlpb_host_set_time_ps(hs.host, 9000);
    CHECK_EQ_U64(tlpb_host_reset(hs.host, TLPB_HOST_RESET_HOT), 0, "reset");
    end_case();
}

/* A bridge that grants the capability but refuses TimeSync from a host, as
 * a bridge without coupled time support answers an unknown message. */
static void script_timesync_refused(struct fake_bridge *f)
{
    struct tlpb_tlp tlp;
    uint8_t payload[64];
    Tlpb__TimeSync g;
    if (fb_expect_tlp(f, TLPB_TLP_MWR, &tlp, payload, sizeof(payload)))
        CHECK_EQ_U64(tlp.sim_time_ps, 1000, "coupled write stamped");
    if (fb_expect_grant(f, &g)) {
        CHECK(tlpb_obuf_append_error(&f->ob, "TimeSync from a host is not accepted (see the "
                                              "protocol's message table)") == 0 &&
                  tlpb_obuf_write_all(&f->ob, f->fd) == 0,
              "fake bridge: error");
    }
    if (fb_expect_tlp(f, TLPB_TLP_MWR, &tlp, payload, sizeof(payload)))
        CHECK_EQ_U64(tlp.sim_time_ps, 0, "write after falling back is unstamped");
    struct tlpb_tlp req, cpl;
    uint8_t data[4];
    if (fb_expect_tlp(f, TLPB_TLP_MRD, &req, payload, sizeof(payload))) {
        CHECK_EQ_U64(req.sim_time_ps, 0, "read after falling back is unstamped");
        tlpb_completion_for(&cpl, &req, DEVICE_BDF, req.address, 4, 4);
        tlpb_put_le32(data, 1);
        cpl.payload = data;
        fb_send_tlp(f, &cpl);
    }
}

static void case_timesync_refused(void)
{
    start_case(script_timesync_refused, true, "coupled", 0);
    tlpb_host_set_time_ps(hs.host, 1000);
    write32(BAR0_ADDR + 0x10, 1);
    tlpb_host_set_time_ps(hs.host, 2000);
    struct tlpb_host_reached r = {0};
    int rc = tlpb_host_time_grant(hs.host, 2000, &r);
    CHECK_EQ_U64(rc, (uint64_t)-EPROTONOSUPPORT, "grant refused by the bridge");
    CHECK(r.idle && r.sim_time_ps == 2000, "a refused grant reports idle at the grant");
    CHECK(!tlpb_host_time_coupled(hs.host), "still coupled after the refusal");
    CHECK(!tlpb_host_device_busy(hs.host), "busy after the refusal");
    CHECK_EQ_U64(hs.free_running_lines, 1, "'running free' lines");

    tlpb_host_set_time_ps(hs.host, 3000);
    write32(BAR0_ADDR + 0x10, 2);
    CHECK(!tlpb_host_device_busy(hs.host), "busy while running free");
    CHECK_EQ_U64(tlpb_host_time_grant(hs.host, 3000, &r), (uint64_t)-EINVAL,
                 "a grant while running free");
    uint32_t v = 0;
    CHECK_EQ_U64(tlpb_host_mem_read(hs.host, 0, BAR0_ADDR, &v, 4), 0, "read while running free");
    CHECK_EQ_U64(hs.free_running_lines, 1, "'running free' logged once");
    end_case();
}

static void script_no_cap(struct fake_bridge *f)
{
    struct tlpb_tlp tlp;
    uint8_t payload[64];
    if (fb_expect_tlp(f, TLPB_TLP_MWR, &tlp, payload, sizeof(payload)))
        CHECK_EQ_U64(tlp.sim_time_ps, 0, "write unstamped without CAP_TIME_SYNC");
    Tlpb__Envelope *env = fb_next(f);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_RESET && env->reset->sim_time_ps == 0,
          "reset unstamped without CAP_TIME_SYNC");
    tlpb_envelope_free(env);
}

static void case_no_cap(void)
{
    start_case(script_no_cap, false, "", 0);
    CHECK(!tlpb_host_time_coupled(hs.host), "coupled without CAP_TIME_SYNC");
    CHECK_EQ_U64(hs.free_running_lines, 1, "'running free' lines");
    tlpb_host_set_time_ps(hs.host, 1000);
    write32(BAR0_ADDR + 0x10, 1);
    CHECK(!tlpb_host_device_busy(hs.host), "busy without coupled time");
    struct tlpb_host_reached r;
    CHECK_EQ_U64(tlpb_host_time_grant(hs.host, 1000, &r), (uint64_t)-EINVAL, "grant");
    CHECK(r.idle, "a grant that cannot be sent reports idle");
    CHECK_EQ_U64(tlpb_host_reset(hs.host, TLPB_HOST_RESET_HOT), 0, "reset");
    end_case();
    CHECK(fb.hello_offered_time, "Hello did not offer CAP_TIME_SYNC");
}

static void script_vanish(struct fake_bridge *f)
{
    Tlpb__TimeSync g;
    fb_expect_grant(f, &g);
    close(f->fd); /* gone, with the grant unanswered */
    f->fd = -1;
}

static void case_vanish(void)
{
    start_case(script_vanish, true, "coupled", 0);
    tlpb_host_set_time_ps(hs.host, 1000);
    struct tlpb_host_reached r;
    int rc = tlpb_host_time_grant(hs.host, 4000, &r);
    CHECK_EQ_U64(rc, (uint64_t)-ENOTCONN, "grant with the bridge gone");
    CHECK(r.idle && r.sim_time_ps == 4000, "the device is taken as idle");
    CHECK(!tlpb_host_device_busy(hs.host), "busy with the bridge gone");
    CHECK(!tlpb_host_connected(hs.host), "still connected");
    CHECK_EQ_U64(tlpb_host_time_grant(hs.host, 5000, &r), (uint64_t)-ENOTCONN,
                 "grant while disconnected");
    end_case();
}

static void script_silent(struct fake_bridge *f)
{
    Tlpb__TimeSync g1, g2;
    if (!fb_expect_grant(f, &g1))
        return;
    /* Silent until the host, having given up, sends something else. */
    struct tlpb_tlp tlp;
    uint8_t payload[64];
    if (!fb_expect_tlp(f, TLPB_TLP_MWR, &tlp, payload, sizeof(payload)))
        return;
    fb_send_reached(f, g1.sync_id, 111000, true, 0); /* too late */
    if (fb_expect_grant(f, &g2)) {
        CHECK(g2.sync_id != g1.sync_id, "a new grant reuses id %llu",
              (unsigned long long)g1.sync_id);
        fb_send_reached(f, g2.sync_id, 222000, false, 0);
    }
}

static void case_silent(void)
{
    start_case(script_silent, true, "coupled", 300);
    tlpb_host_set_time_ps(hs.host, 100000);
    struct tlpb_host_reached r;
    int rc = tlpb_host_time_grant(hs.host, 110000, &r);
    CHECK_EQ_U64(rc, (uint64_t)-ETIMEDOUT, "grant to a silent bridge");
    CHECK(r.idle && !tlpb_host_device_busy(hs.host), "a silent device is taken as idle");
    CHECK(tlpb_host_connected(hs.host), "silence alone does not drop the link");

    write32(BAR0_ADDR + 0x10, 1);
    CHECK_EQ_U64(tlpb_host_flush(hs.host), 0, "flush");
    tlpb_host_set_time_ps(hs.host, 200000);
    rc = tlpb_host_time_grant(hs.host, 220000, &r);
    CHECK_EQ_U64(rc, 0, "the next grant");
    CHECK_EQ_U64(r.sim_time_ps, 222000, "the next grant ends on its own REACHED, not the late one");
    CHECK(!r.idle, "busy REACHED");
    end_case();
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_host_time");
    fb.listen_fd = raw_listen(it.socket_path);

    IT_RUN("grants: ids, stamps, REACHED, idle", case_grants());
    IT_RUN("DMA and interrupts served during a grant", case_dma());
    IT_RUN("stamps on requests and resets, last completion", case_stamps());
    IT_RUN("a bridge that refuses TimeSync: free-running", case_timesync_refused());
    IT_RUN("a bridge without CAP_TIME_SYNC: free-running", case_no_cap());
    IT_RUN("the bridge vanishes during a grant", case_vanish());
    IT_RUN("a silent bridge: the grant times out, a late REACHED is ignored", case_silent());
    close(fb.listen_fd);
    return it_finish();
}

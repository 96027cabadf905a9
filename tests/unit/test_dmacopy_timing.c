/* The dmacopy model's timing in coupled simulated time: the model on the
 * hlsim SDK on the real simulated clock (hlsim/simclock.c) and a libuv
 * loop, with a fake host that stamps its requests, grants time, and
 * answers the device's DMA reads at once. A 64 KiB copy's completion
 * interrupt is stamped start + (65536 + 8) / bytes_per_ns (the data, then
 * the descriptor's crc and status words on the paced link), polling
 * during the copy sees BUSY with the register latency, and the result is
 * the same run after run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hlsim.h"
#include "hlsim_env.h"
#include "hlsim_simclock.h"
#include "tlpb/byteorder.h"

#include "../dmacopy_spec.h"
#include "../fake_host_ram.h"

extern const struct hlsim_model_ops hlsim_model;

#define NS 1000ull

struct event_record {
    char what;        /* 'W' MWr, 'R' MRd, 'C' completion to the host, 'I' interrupt */
    uint64_t stamp_ps;
    uint64_t address;
    uint32_t value;   /* a completion's first DW */
};

struct host {
    uv_loop_t loop;
    struct hlsim_uv_defer_queue deferred;
    hlsim_simclock *clock;
    hlsim_device *dev;
    uint8_t *ram;
    uint8_t next_tag;
    struct event_record *log;
    size_t log_len, log_cap;
    struct event_record last_cpl;
    bool cpl_seen;
    struct {
        uint64_t sync_id, t_ps;
        bool idle;
    } reached;
    unsigned reached_count;
};

static struct host h;

static void log_event(char what, uint64_t address, uint32_t value)
{
    if (h.log_len == h.log_cap) {
        h.log_cap = h.log_cap ? 2 * h.log_cap : 1024;
        h.log = realloc(h.log, h.log_cap * sizeof(*h.log));
        assert_non_null(h.log);
    }
    h.log[h.log_len++] = (struct event_record){what, hlsim_simclock_time_ps(h.clock), address, value};
}

/* ---- the host's side of DMA -------------------------------------------------- */

struct dma_read {
    struct tlpb_tlp req;
};

static void send_completion(void *ctx, const struct tlpb_tlp *cpl)
{
    (void)ctx;
    hlsim_simclock_host_tlp(h.clock, cpl);
}

/* Completions of a DMA read, from the loop (the host answers at once;
 * unstamped: a completion is delivered at once). */
static void serve_read(void *arg)
{
    struct dma_read *r = arg;
    assert_true(fake_host_serve_read(&r->req, h.ram, 0, send_completion, NULL));
}

static int env_send_tlp(void *env, const struct tlpb_tlp *tlp)
{
    (void)env;
    switch (tlp->kind) {
    case TLPB_TLP_MWR:
        memcpy(h.ram + (tlp->address - RAM_BASE), tlp->payload, tlp->payload_bytes);
        log_event('W', tlp->address, 0);
        break;
    case TLPB_TLP_MRD: {
        log_event('R', tlp->address, 0);
        void *storage;
        assert_int_equal(hlsim_uv_defer_alloc(&h.deferred, serve_read, sizeof(struct dma_read),
                                              &storage), 0);
        ((struct dma_read *)storage)->req = *tlp;
        break;
    }
    default:
        log_event('C', tlp->tag, tlp->payload_bytes >= 4 ? tlpb_get_le32(tlp->payload) : 0);
        h.last_cpl = h.log[h.log_len - 1];
        h.cpl_seen = true;
        break;
    }
    hlsim_simclock_sent(h.clock, tlp);
    return 0;
}

static void env_send_interrupt(void *env, Tlpb__InterruptKind kind, unsigned vector)
{
    (void)env;
    (void)kind;
    log_event('I', vector, 0);
}

static uint64_t env_now(void *env)
{
    (void)env;
    return hlsim_simclock_env_now_ns(h.clock);
}

static void *env_timer_create(void *env, void (*fire)(void *), void *arg)
{
    (void)env;
    return hlsim_simclock_env_timer_create(h.clock, fire, arg);
}

static void env_defer(void *env, void (*fn)(void *), void *arg)
{
    (void)env;
    hlsim_simclock_env_defer(h.clock, fn, arg);
}

static const struct hlsim_env_ops env_ops = {
    .send_tlp = env_send_tlp,
    .send_interrupt = env_send_interrupt,
    .now_ns = env_now,
    .timer_create = env_timer_create,
    .timer_start = hlsim_simclock_env_timer_start,
    .timer_stop = hlsim_simclock_env_timer_stop,
    .timer_destroy = hlsim_simclock_env_timer_destroy,
    .defer = env_defer,
};

static void on_reached(void *env, uint64_t sync_id, uint64_t t_ps, bool idle, uint64_t next)
{
    (void)env;
    (void)next;
    h.reached.sync_id = sync_id;
    h.reached.t_ps = t_ps;
    h.reached.idle = idle;
    h.reached_count++;
}

static const struct hlsim_simclock_ops clock_ops = {.reached = on_reached};

/* Run the loop until nothing is queued. */
static void settle(void)
{
    for (int i = 0; i < 100000 && hlsim_uv_defer_pending(&h.deferred); i++)
        uv_run(&h.loop, UV_RUN_NOWAIT);
    assert_false(hlsim_uv_defer_pending(&h.deferred));
}

/* ---- host requests --------------------------------------------------------------- */

static void host_request(struct tlpb_tlp *tlp, uint64_t stamp_ps)
{
    tlp->tag = h.next_tag++;
    tlp->sim_time_ps = stamp_ps;
    tlp->bar_hint = TLPB_NO_BAR;
    h.cpl_seen = false;
    hlsim_simclock_host_tlp(h.clock, tlp);
    settle();
}

static void cfg_write(uint16_t reg, uint32_t value, uint8_t be)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp tlp = {.kind = TLPB_TLP_CFGWR0, .length_dw = 1, .first_be = be,
                           .completer_id = DEV_BDF, .cfg_register = reg,
                           .payload = payload, .payload_bytes = 4};
    host_request(&tlp, 0);
    assert_true(h.cpl_seen);
}

static void mmio_write(uint64_t addr, uint32_t value, uint64_t stamp_ps)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp tlp = {.kind = TLPB_TLP_MWR, .address = addr, .length_dw = 1,
                           .first_be = 0xF, .payload = payload, .payload_bytes = 4};
    host_request(&tlp, stamp_ps);
}

/* A register read at stamp_ps: returns the value, the completion's stamp
 * in *cpl_ps. */
static uint32_t reg_read(uint32_t reg, uint64_t stamp_ps, uint64_t *cpl_ps)
{
    struct tlpb_tlp tlp = {.kind = TLPB_TLP_MRD, .address = BAR0_ADDR + reg, .length_dw = 1,
                           .first_be = 0xF};
    host_request(&tlp, stamp_ps);
    assert_true(h.cpl_seen);
    *cpl_ps = h.last_cpl.stamp_ps;
    return h.last_cpl.value;
}

static void grant(uint64_t sync_id, uint64_t until_ps)
{
    unsigned before = h.reached_count;
    hlsim_simclock_grant(h.clock, sync_id, until_ps);
    settle();
    assert_int_equal(h.reached_count, before + 1);
    assert_int_equal(h.reached.sync_id, sync_id);
}

static void start(const char *model_args)
{
    char err[256] = "";
    memset(&h, 0, sizeof(h));
    h.ram = calloc(1, RAM_BYTES);
    assert_non_null(h.ram);
    uv_loop_init(&h.loop);
    hlsim_uv_defer_init(&h.deferred, &h.loop, NULL, NULL);
    h.clock = hlsim_simclock_create(&h.loop, &h.deferred, &clock_ops, NULL);
    assert_non_null(h.clock);
    struct hlsim_device_options opts = {.bus_device_function = DEV_BDF};
    h.dev = hlsim_device_create(&hlsim_model, model_args, &opts, &env_ops, NULL, err, sizeof(err));
    assert_non_null(h.dev);
    hlsim_simclock_set_device(h.clock, h.dev);
}

static void stop(void)
{
    hlsim_uv_defer_drop_all(&h.deferred);
    hlsim_simclock_set_device(h.clock, NULL);
    hlsim_device_destroy(h.dev);
    hlsim_simclock_destroy(h.clock);
    hlsim_uv_defer_close(&h.deferred);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h.loop), 0);
    free(h.ram);
    free(h.log);
}

/* Enumerate free-running, then couple at t0 and copy 64 KiB, polling
 * STATUS at poll_ps: returns the poll's completion stamp. */
static uint64_t copy_64k_coupled(uint64_t t0_ps, uint64_t poll_ps)
{
    cfg_write(0x10, BAR0_ADDR, 0xF);
    cfg_write(0x18, BAR2_ADDR, 0xF);
    cfg_write(0x04, 0x0006, 0x3);
    cfg_write(TLPB_CFG_MSIX_CAP, 0x80000000u, 0xC);
    for (uint32_t i = 0; i < COPY_BYTES; i++)
        h.ram[SRC - RAM_BASE + i] = (uint8_t)(i * 7 + 3);
    uint8_t *d = h.ram + (RING - RAM_BASE);
    tlpb_put_le64(d + 0, SRC);
    tlpb_put_le64(d + 8, DST);
    tlpb_put_le32(d + 16, COPY_BYTES);
    tlpb_put_le32(d + 20, DESC_FLAG_IRQ);

    hlsim_simclock_couple(h.clock, t0_ps);
    hlsim_device_set_time_coupled(h.dev, true);
    mmio_write(BAR0_ADDR + REG_RING_LO, (uint32_t)RING, t0_ps);
    mmio_write(BAR0_ADDR + REG_RING_HI, (uint32_t)(RING >> 32), t0_ps);
    mmio_write(BAR0_ADDR + REG_RING_SIZE, 16, t0_ps);
    mmio_write(BAR0_ADDR + REG_CTRL, CTRL_ENABLE, t0_ps);
    h.log_len = 0;
    mmio_write(BAR0_ADDR + REG_TAIL, 1, t0_ps); /* the doorbell */
    grant(1, poll_ps);
    uint64_t cpl_ps;
    uint32_t status = reg_read(REG_STATUS, poll_ps, &cpl_ps);
    assert_true(status & STATUS_BUSY);
    grant(2, t0_ps + 1000000 * NS);
    return cpl_ps;
}

static const struct event_record *first_of(char what)
{
    for (size_t i = 0; i < h.log_len; i++)
        if (h.log[i].what == what)
            return &h.log[i];
    return NULL;
}

static void test_copy_interrupt_stamp(void **state)
{
    (void)state;
    const uint64_t t0 = 5000 * NS, poll = t0 + 10000 * NS;

    start("bytes_per_ns=2,reg_latency_ns=100");
    uint64_t poll_cpl = copy_64k_coupled(t0, poll);
    /* The answer waits behind the data writes queued before it (PCIe
     * ordering): it leaves with the last one, 511 * 128 bytes in. */
    assert_int_equal(poll_cpl, t0 + (COPY_BYTES - 128) / 2 * NS);
    assert_memory_equal(h.ram + (DST - RAM_BASE), h.ram + (SRC - RAM_BASE), COPY_BYTES);
    assert_int_equal(tlpb_get_le32(h.ram + (RING - RAM_BASE) + 24), DESC_DONE);

    const struct event_record *irq = first_of('I');
    assert_non_null(irq);
    /* 65536 data bytes, then the crc and status words, at 2 bytes per ns */
    assert_int_equal(irq->stamp_ps, t0 + (COPY_BYTES + 8) / 2 * NS);
    const struct event_record *w = first_of('W');
    assert_int_equal(w->stamp_ps, t0); /* the doorbell took effect at its stamp */
    assert_int_equal(h.reached.t_ps, t0 + 1000000 * NS);
    assert_true(h.reached.idle);

    /* after the interrupt the copy is over */
    uint64_t cpl_ps, at = h.reached.t_ps;
    uint32_t status = reg_read(REG_STATUS, at, &cpl_ps);
    assert_false(status & STATUS_BUSY);
    assert_int_equal(cpl_ps, at + 100 * NS); /* reg_latency_ns */
    stop();
}

/* Polling just before the interrupt's stamp still sees BUSY. */
static void test_busy_until_end(void **state)
{
    (void)state;
    const uint64_t t0 = 5000 * NS;
    const uint64_t end = t0 + (COPY_BYTES + 8) / 4 * NS; /* at 4 bytes per ns */

    start("bytes_per_ns=4,reg_latency_ns=100");
    copy_64k_coupled(t0, end - 200 * NS);
    const struct event_record *irq = first_of('I');
    assert_non_null(irq);
    assert_int_equal(irq->stamp_ps, end);
    stop();
}

/* Two runs give the same TLPs with the same stamps. */
static void test_deterministic(void **state)
{
    (void)state;
    const uint64_t t0 = 7000 * NS, poll = t0 + 3000 * NS;

    start("bytes_per_ns=3.4,reg_latency_ns=24");
    copy_64k_coupled(t0, poll);
    size_t n = h.log_len;
    struct event_record *first = malloc(n * sizeof(*first));
    assert_non_null(first);
    memcpy(first, h.log, n * sizeof(*first));
    stop();

    start("bytes_per_ns=3.4,reg_latency_ns=24");
    copy_64k_coupled(t0, poll);
    assert_int_equal(h.log_len, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(h.log[i].what, first[i].what);
        assert_int_equal(h.log[i].stamp_ps, first[i].stamp_ps);
        assert_int_equal(h.log[i].address, first[i].address);
    }
    free(first);
    stop();
}

static void test_bad_args(void **state)
{
    (void)state;
    static const char *const bad[] = {"bytes_per_ns=0", "bytes_per_ns=x", "reg_latency_ns=-1",
                                      "speed=3", "bytes_per_ns", ",", "reg_latency_ns=1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        assert_null(hlsim_model.create(NULL, bad[i], err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_interrupt_stamp),
        cmocka_unit_test(test_busy_until_end),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

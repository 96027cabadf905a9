/* Unit tests for the dmacopy model running on the hlsim SDK, with a fake
 * environment that plays the host: guest RAM served to the device's DMA
 * (reads completed in RCB-sized pieces, writes landing in order, UR outside
 * RAM), interrupts recorded, deferred calls and timers run by the test, and
 * every TLP the device sends checked against the PCIe size rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "hlsim.h"
#include "hlsim_env.h"
#include "tlpb/byteorder.h"
#include "tlpbridge.pb-c.h"

extern const struct hlsim_model_ops hlsim_model;

/* ---- device constants (EXAMPLE_DEVICE) ---------------------------------- */

#include "../dmacopy_spec.h" /* the tests' own register map, on purpose */

#define BAR0_ADDR 0xFEB00000u
#define BAR2_ADDR 0xFEB01000u
#define DEV_BDF 0x0300u

#define RAM_BASE 0x100000000ull /* above 4 GiB: 64-bit addresses on the wire */
#define RAM_BYTES (24u * 1024u * 1024u)

/* ---- the fake host -------------------------------------------------------- */

struct queued_tlp {
    struct tlpb_tlp tlp;
    uint8_t *payload;
    bool is_interrupt;
    Tlpb__InterruptKind irq_kind;
    unsigned irq_vector;
};

struct deferred_call {
    void (*fn)(void *);
    void *arg;
};

struct fake_timer {
    void (*fire)(void *);
    void *arg;
    bool armed;
    uint64_t deadline;
    bool destroyed;
};

struct host_cpl {
    bool seen;
    enum tlpb_tlp_kind kind;
    enum tlpb_cpl_status status;
    uint16_t completer_id;
    uint32_t byte_count_first;
    uint32_t bytes;
    uint32_t watched; /* RAM word at watch_addr when the host saw it */
    uint8_t data[4096];
};

struct irq_record {
    int kind;
    unsigned vector;
    uint32_t watched; /* RAM word at watch_addr when the host saw it */
};

struct fake_host {
    hlsim_device *dev;
    uint8_t *ram;
    uint64_t now_ns;

    /* host-bound traffic, processed in arrival order */
    struct queued_tlp *inbox;
    size_t inbox_len, inbox_cap, inbox_head;
    unsigned inbox_limit;      /* -EAGAIN above this many queued DMA TLPs */
    bool host_step_scheduled;
    bool output_was_refused;
    unsigned refused_count;    /* times send_tlp said -EAGAIN */
    unsigned batch;            /* TLPs the host handles per step */
    uint32_t cpl_max_bytes;    /* completions split at RCB up to this size */
    bool drop_reads;           /* never answer MRd (timeout tests) */
    bool hold_reads;           /* keep MRd in the inbox until released */

    struct deferred_call *calls;
    size_t calls_len, calls_cap, calls_head;

    struct fake_timer *timers[16];
    unsigned timer_count;

    struct host_cpl cpls[256]; /* completions to the test's requests, by tag */
    uint8_t next_tag;

    struct irq_record irqs[4096];
    unsigned irq_count;
    uint64_t watch_addr;
    uint64_t ring_addr;        /* for the DONE-ordering check */
    uint32_t ring_entries;
    unsigned done_checks;
    bool intx_line;

    /* rule checking */
    bool strict;
    uint32_t mps, mrrs;
    unsigned mrd_count, mwr_count, ur_count;
    uint32_t largest_mrd, largest_mwr;
    unsigned mrd_total_dw;
    bool unsplit_seen;
};

static struct fake_host host;

static bool in_ram(uint64_t addr, uint64_t len)
{
    return addr >= RAM_BASE && len <= RAM_BYTES && addr - RAM_BASE <= RAM_BYTES - len;
}

static uint8_t *ram_at(uint64_t addr)
{
    return host.ram + (addr - RAM_BASE);
}

static void push_call(void (*fn)(void *), void *arg)
{
    if (host.calls_len == host.calls_cap) {
        host.calls_cap = host.calls_cap ? 2 * host.calls_cap : 256;
        host.calls = realloc(host.calls, host.calls_cap * sizeof(*host.calls));
        assert_non_null(host.calls);
    }
    host.calls[host.calls_len++] = (struct deferred_call){fn, arg};
}

static void host_step(void *arg);

static void schedule_host(void)
{
    if (!host.host_step_scheduled) {
        host.host_step_scheduled = true;
        push_call(host_step, NULL);
    }
}

static size_t inbox_pending(void)
{
    return host.inbox_len - host.inbox_head;
}

/* Queued DMA requests (what the output limit counts). */
static size_t dma_pending(void)
{
    size_t n = 0;
    for (size_t i = host.inbox_head; i < host.inbox_len; i++)
        if (!host.inbox[i].is_interrupt && !tlpb_tlp_is_completion(host.inbox[i].tlp.kind))
            n++;
    return n;
}

static void inbox_push(const struct queued_tlp *q)
{
    if (host.inbox_len == host.inbox_cap && host.inbox) {
        /* compact, then grow */
        memmove(host.inbox, host.inbox + host.inbox_head, inbox_pending() * sizeof(*host.inbox));
        host.inbox_len -= host.inbox_head;
        host.inbox_head = 0;
    }
    if (host.inbox_len == host.inbox_cap) {
        host.inbox_cap = host.inbox_cap ? 2 * host.inbox_cap : 256;
        host.inbox = realloc(host.inbox, host.inbox_cap * sizeof(*host.inbox));
        assert_non_null(host.inbox);
    }
    host.inbox[host.inbox_len++] = *q;
    schedule_host();
}

/* Every request TLP the device emits obeys the PCIe rules in strict mode. */
static void check_request_rules(const struct tlpb_tlp *tlp)
{
    uint64_t span = (uint64_t)tlp->length_dw * 4;
    assert_int_equal(tlp->requester_id, DEV_BDF);
    assert_int_equal(tlp->traffic_class, 0);
    assert_int_equal(tlp->attributes, 0);
    assert_int_equal(tlp->address & 3, 0);
    if (!host.strict) {
        assert_true(span <= TLPB_UNSPLIT_MAX_BYTES);
        if (span > 4096 || (tlp->address & 4095) + span > 4096)
            host.unsplit_seen = true;
        return;
    }
    assert_true(tlp->length_dw >= 1 && tlp->length_dw <= 1024);
    /* never crosses a 4 KiB boundary */
    assert_true((tlp->address & 4095) + span <= 4096);
    if (tlp->kind == TLPB_TLP_MWR)
        assert_true(span <= host.mps);
    else
        assert_true(span <= host.mrrs);
    if (tlp->length_dw == 1)
        assert_int_equal(tlp->last_be, 0);
    else
        assert_int_not_equal(tlp->last_be, 0);
}

/* A completion for one of the test's own requests reaches the test only
 * when the host gets to it in arrival order (after earlier DMA writes). */
static void record_completion(const struct tlpb_tlp *tlp)
{
    struct host_cpl *c = &host.cpls[tlp->tag];
    assert_int_equal(tlp->requester_id, 0);
    if (!c->seen)
        c->byte_count_first = tlp->byte_count;
    c->seen = true;
    c->watched = host.watch_addr ? tlpb_get_le32(ram_at(host.watch_addr)) : 0;
    c->kind = tlp->kind;
    c->status = tlp->status;
    c->completer_id = tlp->completer_id;
    if (tlp->kind == TLPB_TLP_CPLD) {
        assert_int_equal(tlp->payload_bytes, tlp->length_dw * 4);
        uint32_t skip = tlp->lower_address & 3;
        uint32_t n = tlp->payload_bytes - skip;
        if (n > tlp->byte_count)
            n = tlp->byte_count;
        assert_true(c->bytes + n <= sizeof(c->data));
        memcpy(c->data + c->bytes, tlp->payload + skip, n);
        c->bytes += n;
    }
}

static int env_send_tlp(void *env, const struct tlpb_tlp *tlp)
{
    /* Whatever the device sends passes the wire library's validator. */
    struct tlpb_tlp_limits limits = {.max_payload_bytes = host.mps, .unsplit = !host.strict};
    const char *reason = NULL;
    if (tlpb_tlp_validate(tlp, &limits, &reason) != 0)
        fail_msg("device sent an invalid %s: %s", tlpb_tlp_kind_name(tlp->kind), reason);
    if (tlpb_tlp_is_completion(tlp->kind)) {
        struct queued_tlp q = {.tlp = *tlp};
        if (tlp->payload_bytes) {
            q.payload = malloc(tlp->payload_bytes);
            assert_non_null(q.payload);
            memcpy(q.payload, tlp->payload, tlp->payload_bytes);
        }
        q.tlp.payload = q.payload;
        inbox_push(&q); /* completions are always accepted */
        return 0;
    }
    assert_true(tlp->kind == TLPB_TLP_MRD || tlp->kind == TLPB_TLP_MWR);
    check_request_rules(tlp);
    if (dma_pending() >= host.inbox_limit) {
        host.output_was_refused = true;
        host.refused_count++;
        return -EAGAIN;
    }
    struct queued_tlp q = {.tlp = *tlp};
    if (tlp->kind == TLPB_TLP_MWR) {
        host.mwr_count++;
        if (tlp->payload_bytes > host.largest_mwr)
            host.largest_mwr = tlp->payload_bytes;
        assert_int_equal(tlp->payload_bytes, tlp->length_dw * 4);
        q.payload = malloc(tlp->payload_bytes);
        assert_non_null(q.payload);
        memcpy(q.payload, tlp->payload, tlp->payload_bytes);
        q.tlp.payload = q.payload;
    } else {
        host.mrd_count++;
        host.mrd_total_dw += tlp->length_dw;
        if (tlp->length_dw * 4 > host.largest_mrd)
            host.largest_mrd = tlp->length_dw * 4;
        q.tlp.payload = NULL;
    }
    inbox_push(&q);
    return 0;
}

static void env_send_interrupt(void *env, Tlpb__InterruptKind kind, unsigned vector)
{
    struct queued_tlp q = {.is_interrupt = true, .irq_kind = kind, .irq_vector = vector};
    inbox_push(&q);
}

static uint64_t env_now(void *env)
{
    return host.now_ns;
}

static void *env_timer_create(void *env, void (*fire)(void *), void *arg)
{
    assert_true(host.timer_count < 16);
    struct fake_timer *t = calloc(1, sizeof(*t));
    t->fire = fire;
    t->arg = arg;
    host.timers[host.timer_count++] = t;
    return t;
}

static void env_timer_start(void *timer, uint64_t delay_ns)
{
    struct fake_timer *t = timer;
    t->armed = true;
    t->deadline = host.now_ns + delay_ns;
}

static void env_timer_stop(void *timer)
{
    ((struct fake_timer *)timer)->armed = false;
}

static void env_timer_destroy(void *timer)
{
    struct fake_timer *t = timer;
    t->armed = false;
    t->destroyed = true;
}

static void env_defer(void *env, void (*fn)(void *), void *arg)
{
    push_call(fn, arg);
}

static void env_log(void *env, int level, const char *message)
{
    if (getenv("TEST_VERBOSE"))
        fprintf(stderr, "[%d] %s\n", level, message);
}

static const struct hlsim_env_ops env_ops = {
    .send_tlp = env_send_tlp,
    .send_interrupt = env_send_interrupt,
    .now_ns = env_now,
    .timer_create = env_timer_create,
    .timer_start = env_timer_start,
    .timer_stop = env_timer_stop,
    .timer_destroy = env_timer_destroy,
    .defer = env_defer,
    .log = env_log,
};

/* Serve one MRd from RAM: CplDs split at the RCB (64 bytes) and at
 * cpl_max_bytes, or a UR completion outside RAM. */
static void serve_read(const struct tlpb_tlp *req)
{
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    uint64_t addr = tlpb_tlp_first_byte_address(req);
    bool zero_length = bytes == 0;

    if (!in_ram(req->address, (uint64_t)req->length_dw * 4)) {
        struct tlpb_tlp cpl = {
            .kind = TLPB_TLP_CPL, .requester_id = req->requester_id, .tag = req->tag,
            .status = TLPB_CPL_UR, .byte_count = 4, .bar_hint = TLPB_NO_BAR,
        };
        host.ur_count++;
        hlsim_device_receive_tlp(host.dev, &cpl);
        return;
    }
    uint32_t remaining = zero_length ? 1 : bytes;
    while (remaining > 0) {
        uint32_t chunk = remaining;
        uint32_t to_rcb = 64 - (uint32_t)(addr & 63);
        if (host.cpl_max_bytes <= 4096 && chunk > to_rcb)
            chunk = to_rcb;
        if (chunk > host.cpl_max_bytes)
            chunk = host.cpl_max_bytes;
        uint32_t dws = (uint32_t)(((addr & 3) + chunk + 3) / 4);
        uint8_t *payload = calloc(dws, 4);
        assert_non_null(payload);
        if (!zero_length)
            memcpy(payload + (addr & 3), ram_at(addr), chunk);
        struct tlpb_tlp cpl = {
            .kind = TLPB_TLP_CPLD, .requester_id = req->requester_id, .tag = req->tag,
            .status = TLPB_CPL_SC, .byte_count = remaining,
            .lower_address = (uint8_t)(addr & 0x7F), .length_dw = dws,
            .payload_bytes = dws * 4, .payload = payload, .bar_hint = TLPB_NO_BAR,
        };
        hlsim_device_receive_tlp(host.dev, &cpl);
        free(payload);
        addr += chunk;
        remaining -= chunk;
    }
}

/* When a descriptor's status turns DONE, its data and CRC must be there. */
static void check_done_visible(uint64_t addr, uint32_t bytes)
{
    if (!host.ring_addr)
        return;
    uint64_t ring_end = host.ring_addr + 32ull * host.ring_entries;
    for (uint64_t d = host.ring_addr; d < ring_end; d += 32) {
        uint64_t status_addr = d + 24;
        if (status_addr + 4 <= addr || status_addr >= addr + bytes)
            continue;
        if (tlpb_get_le32(ram_at(status_addr)) != 1)
            continue;
        uint64_t dst = tlpb_get_le64(ram_at(d + 8));
        uint32_t len = tlpb_get_le32(ram_at(d + 16));
        uint32_t crc = tlpb_get_le32(ram_at(d + 28));
        assert_true(in_ram(dst, len));
        assert_int_equal(crc, (uint32_t)crc32(crc32(0L, Z_NULL, 0), ram_at(dst), len));
        host.done_checks++;
    }
}

static void serve_write(const struct tlpb_tlp *req)
{
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    uint64_t addr = tlpb_tlp_first_byte_address(req);

    if (bytes == 0)
        return;
    if (!in_ram(addr, bytes)) {
        host.ur_count++; /* posted: nobody is told */
        return;
    }
    /* honour the byte enables of the first and last DW */
    for (uint32_t dw = 0; dw < req->length_dw; dw++) {
        uint8_t be = dw == 0 ? req->first_be : dw + 1 == req->length_dw ? req->last_be : 0xF;
        for (unsigned i = 0; i < 4; i++)
            if (be & (1u << i))
                *ram_at(req->address + 4ull * dw + i) = req->payload[4 * dw + i];
    }
    check_done_visible(addr, bytes);
}

static void host_step(void *arg)
{
    host.host_step_scheduled = false;
    if (!host.dev)
        return; /* the device is gone */
    for (unsigned n = 0; n < host.batch && inbox_pending() > 0; n++) {
        struct queued_tlp *q = &host.inbox[host.inbox_head];
        if (host.hold_reads && !q->is_interrupt && q->tlp.kind == TLPB_TLP_MRD)
            return; /* the test releases them later */
        struct queued_tlp item = *q;
        host.inbox_head++;
        if (item.is_interrupt) {
            struct irq_record *r = &host.irqs[host.irq_count < 4096 ? host.irq_count++ : 4095];
            r->kind = item.irq_kind;
            r->vector = item.irq_vector;
            r->watched = host.watch_addr ? tlpb_get_le32(ram_at(host.watch_addr)) : 0;
            if (item.irq_kind == TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT)
                host.intx_line = true;
            if (item.irq_kind == TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT)
                host.intx_line = false;
        } else if (tlpb_tlp_is_completion(item.tlp.kind)) {
            record_completion(&item.tlp);
            free(item.payload);
        } else if (item.tlp.kind == TLPB_TLP_MWR) {
            serve_write(&item.tlp);
            free(item.payload);
        } else if (!host.drop_reads) {
            serve_read(&item.tlp);
        }
    }
    if (inbox_pending() > 0)
        schedule_host();
    if (host.output_was_refused && dma_pending() < host.inbox_limit) {
        host.output_was_refused = false;
        hlsim_device_output_ready(host.dev);
    }
}

/* Run deferred calls until none is left (bounded, to catch livelock). */
static void run_until_idle(void)
{
    size_t steps = 0;
    while (host.calls_head < host.calls_len) {
        struct deferred_call c = host.calls[host.calls_head++];
        c.fn(c.arg);
        assert_true(++steps < 50u * 1000u * 1000u);
        if (host.calls_head == host.calls_len)
            host.calls_head = host.calls_len = 0;
    }
}

/* Run at most n deferred calls. */
static void run_steps(unsigned n)
{
    while (n-- > 0 && host.calls_head < host.calls_len) {
        struct deferred_call c = host.calls[host.calls_head++];
        c.fn(c.arg);
    }
}

static void advance_time(uint64_t ns)
{
    host.now_ns += ns;
    for (unsigned i = 0; i < host.timer_count; i++) {
        struct fake_timer *t = host.timers[i];
        if (t->armed && !t->destroyed && t->deadline <= host.now_ns) {
            t->armed = false;
            t->fire(t->arg);
        }
    }
}

/* ---- the test's side of the host: config and MMIO requests ---------------- */

static struct host_cpl *take_cpl(uint8_t tag)
{
    /* the completion may wait behind the device's posted writes */
    for (unsigned i = 0; i < 1000 && !host.cpls[tag].seen; i++) {
        run_steps(1);
    }
    assert_true(host.cpls[tag].seen);
    return &host.cpls[tag];
}

static uint8_t new_tag(void)
{
    uint8_t tag = host.next_tag++;
    memset(&host.cpls[tag], 0, sizeof(host.cpls[tag]));
    return tag;
}

static uint32_t cfg_read(uint16_t reg)
{
    uint8_t tag = new_tag();
    struct tlpb_tlp tlp = {
        .kind = TLPB_TLP_CFGRD0, .tag = tag, .length_dw = 1, .first_be = 0xF,
        .completer_id = DEV_BDF, .cfg_register = reg, .bar_hint = TLPB_NO_BAR,
    };
    hlsim_device_receive_tlp(host.dev, &tlp);
    struct host_cpl *c = take_cpl(tag);
    assert_int_equal(c->kind, TLPB_TLP_CPLD);
    assert_int_equal(c->status, TLPB_CPL_SC);
    assert_int_equal(c->bytes, 4);
    return tlpb_get_le32(c->data);
}

static void cfg_write(uint16_t reg, uint32_t value, uint8_t be)
{
    uint8_t tag = new_tag();
    uint8_t payload[4];
    memcpy(payload, &value, 4);
    struct tlpb_tlp tlp = {
        .kind = TLPB_TLP_CFGWR0, .tag = tag, .length_dw = 1, .first_be = be,
        .completer_id = DEV_BDF, .cfg_register = reg, .bar_hint = TLPB_NO_BAR,
        .payload = payload, .payload_bytes = 4,
    };
    hlsim_device_receive_tlp(host.dev, &tlp);
    struct host_cpl *c = take_cpl(tag);
    assert_int_equal(c->kind, TLPB_TLP_CPL);
    assert_int_equal(c->status, TLPB_CPL_SC);
    assert_int_equal(c->completer_id, DEV_BDF);
}

static uint8_t be_for(uint64_t offset, unsigned size)
{
    return (uint8_t)(((1u << size) - 1) << (offset & 3));
}

/* MMIO with explicit byte enables; hint = BAR index or TLPB_NO_BAR. */
static void mmio_write_be(uint64_t addr, uint32_t dw_value, uint8_t be, int hint)
{
    uint8_t payload[4];
    memcpy(payload, &dw_value, 4);
    struct tlpb_tlp tlp = {
        .kind = TLPB_TLP_MWR, .length_dw = 1, .first_be = be, .address = addr & ~3ull,
        .bar_hint = (int8_t)hint, .payload = payload, .payload_bytes = 4,
    };
    hlsim_device_receive_tlp(host.dev, &tlp);
}

static struct host_cpl *mmio_read_be(uint64_t addr, uint32_t length_dw, uint8_t first_be,
                                     uint8_t last_be, int hint)
{
    uint8_t tag = new_tag();
    struct tlpb_tlp tlp = {
        .kind = TLPB_TLP_MRD, .tag = tag, .length_dw = length_dw, .first_be = first_be,
        .last_be = last_be, .address = addr & ~3ull, .bar_hint = (int8_t)hint,
    };
    hlsim_device_receive_tlp(host.dev, &tlp);
    return take_cpl(tag);
}

static void reg_write(uint64_t offset, uint32_t value)
{
    mmio_write_be(BAR0_ADDR + offset, value, 0xF, 0);
}

static void reg_write_sized(uint64_t offset, uint32_t value, unsigned size)
{
    mmio_write_be(BAR0_ADDR + offset, value << (8 * (offset & 3)), be_for(offset, size), 0);
}

static uint32_t reg_read_sized(uint64_t offset, unsigned size)
{
    struct host_cpl *c = mmio_read_be(BAR0_ADDR + offset, 1, be_for(offset, size), 0, 0);
    assert_int_equal(c->kind, TLPB_TLP_CPLD);
    assert_int_equal(c->status, TLPB_CPL_SC);
    assert_int_equal(c->bytes, size);
    assert_int_equal(c->completer_id, DEV_BDF);
    uint32_t v = 0;
    memcpy(&v, c->data, size);
    return v;
}

static uint32_t reg_read(uint64_t offset)
{
    return reg_read_sized(offset, 4);
}

/* ---- setup ------------------------------------------------------------------ */

static void host_reset_state(bool strict)
{
    free(host.ram);
    free(host.inbox);
    free(host.calls);
    for (unsigned i = 0; i < host.timer_count; i++)
        free(host.timers[i]);
    memset(&host, 0, sizeof(host));
    host.ram = calloc(1, RAM_BYTES);
    assert_non_null(host.ram);
    host.inbox_limit = 48;
    host.batch = 16;
    host.cpl_max_bytes = 64;
    host.strict = strict;
    host.mps = 128;
    host.mrrs = 512;
}

static void create_device(bool unsplit)
{
    char err[256] = "";
    struct hlsim_device_options opts = {.unsplit_dma = unsplit, .bus_device_function = DEV_BDF};
    host.dev = hlsim_device_create(&hlsim_model, "", &opts, &env_ops, NULL, err, sizeof(err));
    assert_non_null(host.dev);
}

/* Enumerate like an OS would: BARs, memory + bus master, MSI-X (optional). */
static void enumerate(bool msix)
{
    cfg_write(0x10, BAR0_ADDR, 0xF);
    cfg_write(0x18, BAR2_ADDR, 0xF);
    cfg_write(0x04, 0x0006, 0x3);
    if (msix) {
        cfg_write(TLPB_CFG_MSIX_CAP, 0x80000000u, 0xC);
        /* unmask both vectors in the table (BAR2) */
        for (unsigned v = 0; v < 2; v++) {
            mmio_write_be(BAR2_ADDR + 16 * v + 0, 0xFEE00000u, 0xF, 2);
            mmio_write_be(BAR2_ADDR + 16 * v + 8, 0x40 + v, 0xF, 2);
            mmio_write_be(BAR2_ADDR + 16 * v + 12, 0, 0xF, 2);
        }
    }
}

static int setup_strict(void **state)
{
    host_reset_state(true);
    create_device(false);
    enumerate(true);
    return 0;
}

static int setup_strict_intx(void **state)
{
    host_reset_state(true);
    create_device(false);
    enumerate(false);
    return 0;
}

static int setup_fast(void **state)
{
    host_reset_state(false);
    create_device(true);
    enumerate(true);
    return 0;
}

static int teardown(void **state)
{
    hlsim_device_destroy(host.dev);
    host.dev = NULL;
    host.calls_head = host.calls_len = 0; /* pending deferred calls are dropped */
    for (size_t i = host.inbox_head; i < host.inbox_len; i++)
        free(host.inbox[i].payload);
    host.inbox_head = host.inbox_len = 0;
    return 0;
}

/* ---- descriptor helpers ------------------------------------------------------- */

#define RING_ADDR (RAM_BASE + 0x1000)
#define SRC_AREA (RAM_BASE + 0x100000)
#define DST_AREA (RAM_BASE + 0x400000)

static void put64(uint64_t addr, uint64_t v)
{
    tlpb_put_le64(ram_at(addr), v);
}

static void put32(uint64_t addr, uint32_t v)
{
    tlpb_put_le32(ram_at(addr), v);
}

static uint32_t get32(uint64_t addr)
{
    return tlpb_get_le32(ram_at(addr));
}

static void set_ring(uint64_t ring, uint32_t size)
{
    if (size >= 1 && size <= 4096 && (size & (size - 1)) == 0 && ring % 64 == 0) {
        host.ring_addr = ring;
        host.ring_entries = size;
    }
    reg_write(REG_RING_LO, (uint32_t)ring);
    reg_write(REG_RING_HI, (uint32_t)(ring >> 32));
    reg_write(REG_RING_SIZE, size);
}

static void write_desc(uint64_t ring, uint32_t index, uint64_t src, uint64_t dst, uint32_t len,
                       uint32_t flags)
{
    uint64_t d = ring + 32ull * index;
    put64(d + 0, src);
    put64(d + 8, dst);
    put32(d + 16, len);
    put32(d + 20, flags);
    put32(d + 24, 0xDEADBEEF); /* the device must overwrite it */
    put32(d + 28, 0xDEADBEEF);
}

static void fill_pattern(uint64_t addr, uint32_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (uint32_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        *ram_at(addr + i) = (uint8_t)(x >> 16);
    }
}

static uint32_t crc_of(uint64_t addr, uint32_t len)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), ram_at(addr), len);
}

static void check_copied(uint64_t ring, uint32_t index, uint64_t src, uint64_t dst, uint32_t len)
{
    uint64_t d = ring + 32ull * index;
    assert_memory_equal(ram_at(dst), ram_at(src), len);
    assert_int_equal(get32(d + 24), 1); /* DONE, no error */
    assert_int_equal(get32(d + 28), crc_of(src, len));
}

static unsigned count_irqs(int kind, unsigned vector)
{
    unsigned n = 0;
    for (unsigned i = 0; i < host.irq_count; i++)
        if (host.irqs[i].kind == kind && host.irqs[i].vector == vector)
            n++;
    return n;
}

/* One descriptor at ring index 0 of a fresh ring of 16, enabled, run to idle. */
static void copy_one(uint64_t src, uint64_t dst, uint32_t len, uint32_t flags)
{
    set_ring(RING_ADDR, 16);
    write_desc(RING_ADDR, 0, src, dst, len, flags);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
}

/* ---- tests: identity and registers --------------------------------------------- */

static void test_ids_and_bars(void **state)
{
    assert_int_equal(cfg_read(0x00), 0x7a111234);
    assert_int_equal(cfg_read(0x08), 0x08800001);
    assert_int_equal(cfg_read(0x3C) >> 8 & 0xFF, 1); /* INTA */

    cfg_write(0x10, 0xFFFFFFFF, 0xF);
    assert_int_equal(cfg_read(0x10), 0xFFFFF000);
    cfg_write(0x14, 0xFFFFFFFF, 0xF);
    assert_int_equal(cfg_read(0x14), 0);
    cfg_write(0x18, 0xFFFFFFFF, 0xF);
    assert_int_equal(cfg_read(0x18), 0xFFFFF000);
    cfg_write(0x10, BAR0_ADDR, 0xF);
    cfg_write(0x18, BAR2_ADDR, 0xF);

    /* MSI-X capability: 2 vectors, table BAR2 @0, PBA BAR2 @0x800 */
    uint8_t ptr = (uint8_t)cfg_read(0x34);
    bool found = false;
    while (ptr) {
        uint32_t hdr = cfg_read(ptr);
        if ((hdr & 0xFF) == 0x11) {
            found = true;
            assert_int_equal((hdr >> 16) & 0x7FF, 1);
            assert_int_equal(cfg_read((uint16_t)(ptr + 4)), 0x2);
            assert_int_equal(cfg_read((uint16_t)(ptr + 8)), 0x802);
        }
        ptr = (uint8_t)(hdr >> 8);
    }
    assert_true(found);

    assert_int_equal(reg_read(REG_ID), 0x7A110001);
    /* the same through address decode, without the BAR hint */
    struct host_cpl *c = mmio_read_be(BAR0_ADDR + REG_ID, 1, 0xF, 0, TLPB_NO_BAR);
    assert_int_equal(c->status, TLPB_CPL_SC);
    assert_int_equal(c->data[3], 0x7A);
    assert_int_equal(reg_read(0x100), 0); /* unassigned offsets read 0 */
}

static void test_scratch_sizes(void **state)
{
    assert_int_equal(reg_read(REG_SCRATCH), 0);
    reg_write(REG_SCRATCH, 0x11223344);
    assert_int_equal(reg_read(REG_SCRATCH), 0x11223344);
    reg_write_sized(REG_SCRATCH + 1, 0xAB, 1);
    assert_int_equal(reg_read(REG_SCRATCH), 0x1122AB44);
    assert_int_equal(reg_read_sized(REG_SCRATCH + 3, 1), 0x11);
    reg_write_sized(REG_SCRATCH + 2, 0xBEEF, 2);
    assert_int_equal(reg_read(REG_SCRATCH), 0xBEEFAB44);
    assert_int_equal(reg_read_sized(REG_SCRATCH, 2), 0xAB44);
    assert_int_equal(reg_read_sized(REG_SCRATCH + 2, 2), 0xBEEF);
    /* non-contiguous byte enables: bytes 0 and 2 only */
    mmio_write_be(BAR0_ADDR + REG_SCRATCH, 0x00CC00DD, 0x5, 0);
    assert_int_equal(reg_read(REG_SCRATCH), 0xBECCABDD);
    struct host_cpl *c = mmio_read_be(BAR0_ADDR + REG_SCRATCH, 1, 0x9, 0, 0);
    assert_int_equal(c->byte_count_first, 4); /* first to last enabled byte */
    assert_int_equal(c->data[0], 0xDD);
    assert_int_equal(c->data[3], 0xBE);
    /* ID is read-only */
    reg_write(REG_ID, 0);
    assert_int_equal(reg_read(REG_ID), 0x7A110001);
}

static void test_multi_dw_and_zero_length_reads(void **state)
{
    reg_write(REG_SCRATCH, 0xCAFEF00D);
    /* 4 DW from 0: ID, SCRATCH, CTRL, STATUS */
    struct host_cpl *c = mmio_read_be(BAR0_ADDR, 4, 0xF, 0xF, 0);
    assert_int_equal(c->bytes, 16);
    uint32_t v[4];
    memcpy(v, c->data, 16);
    assert_int_equal(v[0], 0x7A110001);
    assert_int_equal(v[1], 0xCAFEF00D);
    /* 33 DW with first_be 0x8 and last_be 0x1: 126 bytes fit MPS (128) but
     * span 33 DW; every completion must stay within 32 DW (the validator in
     * env_send_tlp checks each) */
    c = mmio_read_be(BAR0_ADDR, 33, 0x8, 0x1, 0);
    assert_int_equal(c->status, TLPB_CPL_SC);
    assert_int_equal(c->byte_count_first, 126);
    assert_int_equal(c->bytes, 126);
    assert_int_equal(c->data[0], 0x7A); /* byte 3 of ID */
    /* zero-length read: one DW of completion with byte count 1 */
    c = mmio_read_be(BAR0_ADDR + REG_SCRATCH, 1, 0x0, 0, 0);
    assert_int_equal(c->kind, TLPB_TLP_CPLD);
    assert_int_equal(c->status, TLPB_CPL_SC);
    assert_int_equal(c->byte_count_first, 1);
    /* outside every BAR: UR */
    c = mmio_read_be(0xFE000000u, 1, 0xF, 0, TLPB_NO_BAR);
    assert_int_equal(c->kind, TLPB_TLP_CPL);
    assert_int_equal(c->status, TLPB_CPL_UR);
    /* memory space off: decode fails, UR */
    cfg_write(0x04, 0x0004, 0x3);
    c = mmio_read_be(BAR0_ADDR, 1, 0xF, 0, TLPB_NO_BAR);
    assert_int_equal(c->status, TLPB_CPL_UR);
}

/* ---- tests: copies --------------------------------------------------------------- */

static void test_copy_one_byte(void **state)
{
    fill_pattern(SRC_AREA, 16, 1);
    copy_one(SRC_AREA + 5, DST_AREA + 3, 1, 0);
    check_copied(RING_ADDR, 0, SRC_AREA + 5, DST_AREA + 3, 1);
    assert_int_equal(*ram_at(DST_AREA + 2), 0); /* neighbours untouched */
    assert_int_equal(*ram_at(DST_AREA + 4), 0);
    assert_int_equal(reg_read(REG_HEAD), 1);
    assert_int_equal(reg_read(REG_COMPLETED), 1);
    assert_int_equal(reg_read(REG_STATUS), 0);
}

static void test_copy_odd_sizes(void **state)
{
    static const uint32_t lens[] = {3, 7, 33, 127, 129, 1001, 4097, 65537, 70001};
    unsigned n = sizeof(lens) / sizeof(lens[0]);
    uint64_t src = SRC_AREA + 1, dst = DST_AREA + 3;

    set_ring(RING_ADDR, 16);
    reg_write(REG_CTRL, 1);
    for (unsigned i = 0; i < n; i++) {
        fill_pattern(src, lens[i], i + 10);
        write_desc(RING_ADDR, i, src, dst, lens[i], 0);
        reg_write(REG_TAIL, i + 1);
        run_until_idle();
        check_copied(RING_ADDR, i, src, dst, lens[i]);
        assert_int_equal(*ram_at(dst + lens[i]), 0); /* nothing past the end */
        src += lens[i] + 13;
        dst += lens[i] + 17;
    }
    assert_int_equal(reg_read(REG_COMPLETED), n);
}

static void test_copy_crossing_4k(void **state)
{
    uint64_t src = SRC_AREA + 4096 - 100, dst = DST_AREA + 2 * 4096 - 37;
    fill_pattern(src, 8192 + 7, 3);
    copy_one(src, dst, 8192 + 7, 0);
    check_copied(RING_ADDR, 0, src, dst, 8192 + 7);
}

static void test_copy_1mib(void **state)
{
    uint32_t len = 1024 * 1024;
    fill_pattern(SRC_AREA, len, 4);
    copy_one(SRC_AREA, DST_AREA, len, 1);
    check_copied(RING_ADDR, 0, SRC_AREA, DST_AREA, len);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 1);
    assert_int_equal(host.done_checks, 1);
    /* strict mode with power-on MPS/MRRS: many TLPs */
    assert_true(host.mrd_count >= len / 512);
    assert_true(host.mwr_count >= len / 128);
    assert_true(host.refused_count > 0); /* backpressure was exercised */
}

static void test_copy_with_larger_mps_smaller_mrrs(void **state)
{
    /* MPS 256 (supported max), MRRS 128, extended tags */
    uint16_t devctl = (uint16_t)(cfg_read(0x48) & 0xFFFF);
    devctl = (uint16_t)((devctl & ~0x70E0u) | (1u << 5) | (0u << 12) | 0x100u);
    cfg_write(0x48, devctl, 0x3);
    host.mps = 256;
    host.mrrs = 128;
    uint32_t len = 200000;
    fill_pattern(SRC_AREA + 9, len, 5);
    copy_one(SRC_AREA + 9, DST_AREA + 2, len, 0);
    check_copied(RING_ADDR, 0, SRC_AREA + 9, DST_AREA + 2, len);
    assert_int_equal(host.largest_mwr, 256);
    assert_int_equal(host.largest_mrd, 128);
}

static void test_ring_wrap(void **state)
{
    uint32_t len = 300;
    set_ring(RING_ADDR, 4);
    reg_write(REG_CTRL, 1);
    for (unsigned round = 0; round < 3; round++) {
        /* three descriptors per round: 0,1,2 / 3,0,1 / 2,3,0 */
        for (unsigned k = 0; k < 3; k++) {
            unsigned seq = round * 3 + k;
            unsigned index = seq % 4;
            uint64_t src = SRC_AREA + seq * 1024, dst = DST_AREA + seq * 1024;
            fill_pattern(src, len, seq);
            write_desc(RING_ADDR, index, src, dst, len, 0);
        }
        reg_write(REG_TAIL, (round * 3 + 3) % 4);
        run_until_idle();
        for (unsigned k = 0; k < 3; k++) {
            unsigned seq = round * 3 + k;
            check_copied(RING_ADDR, seq % 4, SRC_AREA + seq * 1024, DST_AREA + seq * 1024, len);
        }
        assert_int_equal(reg_read(REG_HEAD), (round * 3 + 3) % 4);
    }
    assert_int_equal(reg_read(REG_COMPLETED), 9);
    assert_int_equal(reg_read(REG_STATUS), 0);
}

static void test_many_descriptors_one_doorbell(void **state)
{
    unsigned n = 50;
    set_ring(RING_ADDR, 64);
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = 100 + 97 * i;
        fill_pattern(SRC_AREA + 8192ull * i, len, 100 + i);
        write_desc(RING_ADDR, i, SRC_AREA + 8192ull * i, DST_AREA + 8192ull * i, len, 1);
    }
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, n);
    assert_true(reg_read(REG_STATUS) & 1); /* busy */
    run_until_idle();
    for (unsigned i = 0; i < n; i++)
        check_copied(RING_ADDR, i, SRC_AREA + 8192ull * i, DST_AREA + 8192ull * i,
                     100 + 97 * i);
    assert_int_equal(reg_read(REG_HEAD), n);
    assert_int_equal(reg_read(REG_COMPLETED), n);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), n);
    assert_int_equal(reg_read(REG_STATUS), 0);
    assert_int_equal(host.done_checks, n);
}

static void test_chained_copies(void **state)
{
    /* B <- A, then C <- B: the second must see the first's data */
    uint32_t len = 150000;
    uint64_t a = SRC_AREA, b = DST_AREA, c = DST_AREA + 0x200000;
    fill_pattern(a, len, 77);
    set_ring(RING_ADDR, 8);
    write_desc(RING_ADDR, 0, a, b, len, 0);
    write_desc(RING_ADDR, 1, b, c, len, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 2);
    run_until_idle();
    check_copied(RING_ADDR, 0, a, b, len);
    check_copied(RING_ADDR, 1, b, c, len);
    assert_memory_equal(ram_at(c), ram_at(a), len);
}

static void test_polling_during_copy(void **state)
{
    uint32_t len = 1024 * 1024;
    fill_pattern(SRC_AREA, len, 8);
    set_ring(RING_ADDR, 16);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, len, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    /* each read completes while the copy is in flight (take_cpl bounds the
     * wait); the host interleaves the device's DMA with it. With a tiny
     * output limit the device's writes wait inside the SDK, and a read's
     * completion must not overtake them. */
    host.inbox_limit = 1;
    unsigned polls = 0;
    while (reg_read(REG_STATUS) & 1) {
        polls++;
        assert_true(polls < 100000);
    }
    assert_true(polls > 3);
    /* DONE and HEAD must be visible once STATUS says idle */
    check_copied(RING_ADDR, 0, SRC_AREA, DST_AREA, len);
    run_until_idle();
}

/* ---- tests: interrupts -------------------------------------------------------- */

static void test_msix_vectors(void **state)
{
    fill_pattern(SRC_AREA, 3000, 9);
    host.watch_addr = RING_ADDR + 24;
    host.inbox_limit = 1; /* writes wait in the SDK: the interrupt must wait too */
    copy_one(SRC_AREA, DST_AREA, 3000, 1);
    assert_true(host.refused_count > 0);
    host.inbox_limit = 48;
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 1);
    /* the interrupt came after DONE landed */
    assert_int_equal(host.irqs[0].watched, 1);
    assert_int_equal(reg_read(REG_IRQ_STATUS), 1);
    reg_write(REG_IRQ_STATUS, 1);
    assert_int_equal(reg_read(REG_IRQ_STATUS), 0);

    /* error on vector 1 */
    write_desc(RING_ADDR, 1, SRC_AREA, DST_AREA, 0, 1);
    reg_write(REG_TAIL, 2);
    run_until_idle();
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 1);
    assert_int_equal(reg_read(REG_IRQ_STATUS), 2);
    assert_int_equal(host.irq_count, 2);
}

static void test_masked_cause(void **state)
{
    fill_pattern(SRC_AREA, 64, 10);
    reg_write(REG_IRQ_MASK, 1);
    copy_one(SRC_AREA, DST_AREA, 64, 1);
    check_copied(RING_ADDR, 0, SRC_AREA, DST_AREA, 64);
    assert_int_equal(host.irq_count, 0);
    assert_int_equal(reg_read(REG_IRQ_STATUS), 0);
    /* an unmasked error still signals */
    write_desc(RING_ADDR, 1, SRC_AREA, DST_AREA, 0, 1);
    reg_write(REG_TAIL, 2);
    run_until_idle();
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 1);
}

static void test_msix_table_owned_by_host(void **state)
{
    /* A vector masked in the device-side copy of the table still goes out:
     * the host owns the table and does the masking. */
    mmio_write_be(BAR2_ADDR + 12, 1, 0xF, 2);
    fill_pattern(SRC_AREA, 64, 11);
    copy_one(SRC_AREA, DST_AREA, 64, 1);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 1);
    /* so does one while the function is masked */
    cfg_write(TLPB_CFG_MSIX_CAP, 0xC0000000u, 0xC);
    write_desc(RING_ADDR, 1, SRC_AREA, DST_AREA, 64, 1);
    reg_write(REG_TAIL, 2);
    run_until_idle();
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 2);
    /* nothing pends on this side; the PBA is read-only */
    struct host_cpl *c = mmio_read_be(BAR2_ADDR + 0x800, 1, 0xF, 0, 2);
    assert_int_equal(c->data[0], 0);
    mmio_write_be(BAR2_ADDR + 0x800, 0xFFFFFFFF, 0xF, 2);
    c = mmio_read_be(BAR2_ADDR + 0x800, 2, 0xF, 0xF, 2);
    assert_int_equal(c->bytes, 8);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(c->data[i], 0);
    /* forwarded table accesses read back (address low bits are zero) and
     * never reach the model */
    mmio_write_be(BAR2_ADDR + 16, 0xFEE01003u, 0xF, 2);
    c = mmio_read_be(BAR2_ADDR + 16, 4, 0xF, 0xF, 2);
    uint32_t entry[4];
    memcpy(entry, c->data, 16);
    assert_int_equal(entry[0], 0xFEE01000u);
    assert_int_equal(entry[2], 0x41);
    assert_int_equal(entry[3], 0);
    /* MSI-X off: no vector, INTx instead */
    cfg_write(TLPB_CFG_MSIX_CAP, 0x00000000u, 0xC);
    run_until_idle();
    assert_true(host.intx_line); /* IRQ_STATUS still holds the completion */
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 2);
}

static void test_intx_when_msix_off(void **state)
{
    fill_pattern(SRC_AREA, 64, 12);
    copy_one(SRC_AREA, DST_AREA, 64, 1);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT, 0), 1); /* INTA */
    assert_true(host.intx_line);
    assert_true(cfg_read(0x04) & (1u << 19)); /* status: interrupt */
    reg_write(REG_IRQ_STATUS, 1);
    run_until_idle();
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT, 0), 1);
    assert_false(host.intx_line);
    assert_false(cfg_read(0x04) & (1u << 19));

    /* INTx disable while asserted: deasserted on the wire, status bit stays */
    write_desc(RING_ADDR, 1, SRC_AREA, DST_AREA, 64, 1);
    reg_write(REG_TAIL, 2);
    run_until_idle();
    assert_true(host.intx_line);
    cfg_write(0x04, 0x0406, 0x3);
    run_until_idle();
    assert_false(host.intx_line);
    assert_true(cfg_read(0x04) & (1u << 19));
    cfg_write(0x04, 0x0006, 0x3);
    run_until_idle();
    assert_true(host.intx_line);
    /* masking the cause lowers the line */
    reg_write(REG_IRQ_MASK, 1);
    run_until_idle();
    assert_false(host.intx_line);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 0);
}

/* ---- tests: errors -------------------------------------------------------------- */

static void check_halted(uint32_t code)
{
    uint32_t status = reg_read(REG_STATUS);
    assert_true(status & 2);
    assert_true(status & 4);
    assert_int_equal(reg_read(REG_ERR_CODE), code);
    assert_true(reg_read(REG_IRQ_STATUS) & 2);
}

static void test_zero_length_error(void **state)
{
    set_ring(RING_ADDR, 8);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, 0, 0);
    write_desc(RING_ADDR, 1, SRC_AREA, DST_AREA + 4096, 16, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 2);
    run_until_idle();
    check_halted(1);
    assert_int_equal(get32(RING_ADDR + 24), 1u << 8);
    assert_int_equal(get32(RING_ADDR + 32 + 24), 0xDEADBEEF); /* never processed */
    assert_int_equal(reg_read(REG_HEAD), 0);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 1);

    /* too long */
    reg_write(REG_CTRL, 2);
    assert_int_equal(reg_read(REG_STATUS), 0);
    set_ring(RING_ADDR, 8);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, 1024 * 1024 + 1, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
    check_halted(1);
}

static void test_dma_read_error(void **state)
{
    set_ring(RING_ADDR, 8);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, 64, 0);
    write_desc(RING_ADDR, 1, 0x1000, DST_AREA, 5000, 0); /* not guest memory */
    write_desc(RING_ADDR, 2, SRC_AREA, DST_AREA + 8192, 64, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 3);
    run_until_idle();
    check_halted(2);
    check_copied(RING_ADDR, 0, SRC_AREA, DST_AREA, 64);
    assert_int_equal(get32(RING_ADDR + 32 + 24), 2u << 8);
    assert_int_equal(get32(RING_ADDR + 64 + 24), 0xDEADBEEF);
    assert_int_equal(reg_read(REG_HEAD), 1);
    assert_int_equal(reg_read(REG_COMPLETED), 1);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 1);
    /* halted: a new doorbell does nothing */
    unsigned mrd = host.mrd_count;
    reg_write(REG_TAIL, 4);
    run_until_idle();
    assert_int_equal(host.mrd_count, mrd);
}

static void test_dma_write_error(void **state)
{
    fill_pattern(SRC_AREA, 3000, 13);
    set_ring(RING_ADDR, 8);
    write_desc(RING_ADDR, 0, SRC_AREA, 0x2000, 3000, 1); /* not guest memory */
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
    check_halted(3);
    assert_int_equal(get32(RING_ADDR + 24), 3u << 8);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 1);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 0);
}

static void test_bad_ring(void **state)
{
    set_ring(RING_ADDR + 32, 8); /* not 64-byte aligned */
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
    check_halted(4);
    reg_write(REG_CTRL, 2);
    set_ring(RING_ADDR, 6); /* not a power of two */
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
    check_halted(4);
    reg_write(REG_CTRL, 2);
    set_ring(RING_ADDR, 8192);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
    check_halted(4);
}

static void test_reset_mid_transfer(void **state)
{
    uint32_t len = 1024 * 1024;
    fill_pattern(SRC_AREA, len, 14);
    set_ring(RING_ADDR, 16);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, len, 1);
    reg_write(REG_SCRATCH, 0x55);
    reg_write(REG_IRQ_MASK, 2);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_steps(400);
    assert_true(reg_read(REG_STATUS) & 1);

    reg_write(REG_CTRL, 2);
    assert_int_equal(reg_read(REG_CTRL), 0);
    assert_int_equal(reg_read(REG_STATUS), 0);
    assert_int_equal(reg_read(REG_HEAD), 0);
    assert_int_equal(reg_read(REG_TAIL), 0);
    assert_int_equal(reg_read(REG_RING_SIZE), 0);
    assert_int_equal(reg_read(REG_RING_LO), 0);
    assert_int_equal(reg_read(REG_COMPLETED), 0);
    assert_int_equal(reg_read(REG_SCRATCH), 0x55); /* not part of the reset */
    assert_int_equal(reg_read(REG_IRQ_MASK), 2);
    /* stale completions of the abandoned reads arrive now: ignored */
    run_until_idle();
    assert_int_equal(get32(RING_ADDR + 24), 0xDEADBEEF);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 0);

    /* and the device works again */
    memset(ram_at(DST_AREA), 0, len);
    fill_pattern(SRC_AREA, 4096, 15);
    copy_one(SRC_AREA, DST_AREA, 4096, 1);
    check_copied(RING_ADDR, 0, SRC_AREA, DST_AREA, 4096);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 1);
}

static void test_reset_with_reads_in_flight_then_reuse(void **state)
{
    /* Reset while reads are held by the host; after the reset the host
     * answers them: their data must not land in the new transfer. */
    uint32_t len = 64 * 1024;
    fill_pattern(SRC_AREA, len, 16);
    set_ring(RING_ADDR, 16);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, len, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle(); /* descriptor only: data reads are now held */
    host.hold_reads = true;
    write_desc(RING_ADDR, 1, SRC_AREA, DST_AREA + 0x100000, len, 0);
    reg_write(REG_TAIL, 2);
    run_until_idle();
    assert_true(inbox_pending() > 0);

    reg_write(REG_CTRL, 2);
    uint64_t other = SRC_AREA + 0x80000;
    fill_pattern(other, 4096, 17);
    set_ring(RING_ADDR, 16);
    write_desc(RING_ADDR, 0, other, DST_AREA + 0x200000, 4096, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    host.hold_reads = false;
    schedule_host();
    run_until_idle();
    check_copied(RING_ADDR, 0, other, DST_AREA + 0x200000, 4096);
}

static void test_bus_master_off_waits(void **state)
{
    cfg_write(0x04, 0x0002, 0x3); /* memory only */
    fill_pattern(SRC_AREA, 5000, 18);
    copy_one(SRC_AREA, DST_AREA, 5000, 1);
    assert_int_equal(host.mrd_count, 0);
    assert_int_equal(host.mwr_count, 0);
    assert_true(reg_read(REG_STATUS) & 1);
    assert_int_equal(reg_read(REG_HEAD), 0);

    cfg_write(0x04, 0x0006, 0x3);
    run_until_idle();
    check_copied(RING_ADDR, 0, SRC_AREA, DST_AREA, 5000);
    assert_int_equal(reg_read(REG_STATUS), 0);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 1);
}

static void test_flr_resets_device(void **state)
{
    reg_write(REG_SCRATCH, 0x1234);
    uint32_t devctl = cfg_read(0x48) & 0xFFFF;
    cfg_write(0x48, devctl | 0x8000u, 0x3);
    /* config space is back to power-on: memory space off */
    assert_int_equal(cfg_read(0x04) & 0x7, 0);
    assert_int_equal(cfg_read(0x10), 0);
    struct host_cpl *c = mmio_read_be(BAR0_ADDR + REG_SCRATCH, 1, 0xF, 0, TLPB_NO_BAR);
    assert_int_equal(c->status, TLPB_CPL_UR);
    enumerate(true);
    assert_int_equal(reg_read(REG_SCRATCH), 0);
}

static void test_completion_timeout(void **state)
{
    host.drop_reads = true;
    set_ring(RING_ADDR, 8);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, 64, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
    assert_int_equal(reg_read(REG_STATUS) & 2, 0);
    advance_time(500000000ull);
    run_until_idle();
    assert_int_equal(reg_read(REG_STATUS) & 2, 0);
    advance_time(600000000ull);
    run_until_idle();
    check_halted(2);
}

static void test_link_down(void **state)
{
    host.drop_reads = true;
    set_ring(RING_ADDR, 8);
    write_desc(RING_ADDR, 0, SRC_AREA, DST_AREA, 64, 0);
    reg_write(REG_CTRL, 1);
    reg_write(REG_TAIL, 1);
    run_until_idle();
    hlsim_device_link_down(host.dev);
    run_until_idle();
    check_halted(2);
}

static void test_late_completion_after_cancel(void **state)
{
    /* a completion for a tag that was never allocated is ignored */
    uint8_t payload[4] = {0};
    struct tlpb_tlp cpl = {
        .kind = TLPB_TLP_CPLD, .requester_id = DEV_BDF, .tag = 200, .status = TLPB_CPL_SC,
        .byte_count = 4, .length_dw = 1, .payload = payload, .payload_bytes = 4,
        .bar_hint = TLPB_NO_BAR,
    };
    hlsim_device_receive_tlp(host.dev, &cpl);
    cpl.tag = 0;
    hlsim_device_receive_tlp(host.dev, &cpl);
    run_until_idle();
    assert_int_equal(reg_read(REG_STATUS), 0);
}

/* ---- tests: SDK DMA behaviour, driven directly on the device ------------------ */

struct dma_result {
    unsigned calls;
    enum hlsim_dma_status status;
};

static void dma_done(void *arg, enum hlsim_dma_status status)
{
    struct dma_result *r = arg;
    r->calls++;
    r->status = status;
}

static void test_sdk_dma_calls(void **state)
{
    struct dma_result r = {0};
    uint8_t buf[64];

    /* callbacks never run inside the call, even for nothing to do */
    assert_int_equal(hlsim_dma_read(host.dev, SRC_AREA, buf, 0, dma_done, &r), 0);
    assert_int_equal(r.calls, 0);
    run_until_idle();
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, HLSIM_DMA_OK);

    fill_pattern(SRC_AREA, 64, 20);
    r.calls = 0;
    assert_int_equal(hlsim_dma_read(host.dev, SRC_AREA, buf, 64, dma_done, &r), 0);
    assert_int_equal(r.calls, 0);
    run_until_idle();
    assert_int_equal(r.calls, 1);
    assert_memory_equal(buf, ram_at(SRC_AREA), 64);

    /* a write with a callback: the flush read reports it */
    r.calls = 0;
    assert_int_equal(hlsim_dma_write(host.dev, DST_AREA + 1, buf, 63, dma_done, &r), 0);
    assert_int_equal(r.calls, 0);
    run_until_idle();
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, HLSIM_DMA_OK);
    assert_memory_equal(ram_at(DST_AREA + 1), buf, 63);

    /* partly outside RAM: one callback, the worst status */
    r.calls = 0;
    uint8_t *big = malloc(8192);
    assert_int_equal(hlsim_dma_read(host.dev, RAM_BASE + RAM_BYTES - 4096, big, 8192, dma_done,
                                    &r), 0);
    run_until_idle();
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, HLSIM_DMA_UR);
    free(big);

    /* limits and bus mastering */
    assert_int_equal(hlsim_dma_read(host.dev, SRC_AREA, buf, 16u * 1024u * 1024u + 1, dma_done,
                                    &r), -EINVAL);
    assert_int_equal(hlsim_dma_read(host.dev, UINT64_MAX - 8, buf, 64, dma_done, &r), -EINVAL);
    cfg_write(0x04, 0x0002, 0x3);
    assert_int_equal(hlsim_dma_read(host.dev, SRC_AREA, buf, 64, dma_done, &r), -EPERM);
    assert_int_equal(hlsim_dma_write(host.dev, SRC_AREA, buf, 64, NULL, NULL), -EPERM);
}

static void test_sdk_completion_after_posted_writes(void **state)
{
    uint32_t value = 0x600DF00D;
    struct dma_result r = {0};
    uint8_t buf[4];

    /* the output refuses everything: the device's write waits in the SDK */
    host.inbox_limit = 0;
    host.watch_addr = DST_AREA;
    assert_int_equal(hlsim_dma_write(host.dev, DST_AREA, &value, 4, NULL, NULL), 0);
    assert_int_equal(hlsim_dma_read(host.dev, SRC_AREA, buf, 4, dma_done, &r), 0);
    uint8_t tag = new_tag();
    struct tlpb_tlp mrd = {
        .kind = TLPB_TLP_MRD, .tag = tag, .length_dw = 1, .first_be = 0xF,
        .address = BAR0_ADDR + REG_ID, .bar_hint = 0,
    };
    hlsim_device_receive_tlp(host.dev, &mrd);
    run_until_idle();
    assert_false(host.cpls[tag].seen); /* must not pass the posted write */
    assert_int_equal(host.mwr_count, 0);
    assert_int_equal(host.mrd_count, 0); /* nor may the read */

    host.inbox_limit = 48;
    hlsim_device_output_ready(host.dev);
    run_until_idle();
    assert_true(host.cpls[tag].seen);
    assert_int_equal(host.cpls[tag].watched, value);
    assert_int_equal(r.calls, 1);
}

static void test_sdk_stale_completions_after_cancel(void **state)
{
    /* Every tag is taken by reads the host holds; the device cancels them
     * and immediately reads the same sizes at the same offsets elsewhere. The
     * old completions must not fill the new reads, whatever tag the
     * allocator hands out. */
    enum { N = 32, LEN = 32 };
    static uint8_t old_bufs[N][LEN], new_bufs[N][LEN];
    struct dma_result old_r[N], new_r[N];
    uint64_t old_src = SRC_AREA, new_src = SRC_AREA + 0x10000;

    memset(old_r, 0, sizeof(old_r));
    memset(new_r, 0, sizeof(new_r));
    fill_pattern(old_src, N * 128, 21);
    fill_pattern(new_src, N * 128, 22);
    host.hold_reads = true;
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(hlsim_dma_read(host.dev, old_src + 128 * i, old_bufs[i], LEN, dma_done,
                                        &old_r[i]), 0);
    run_until_idle();
    hlsim_dma_cancel_all(host.dev);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(hlsim_dma_read(host.dev, new_src + 128 * i, new_bufs[i], LEN, dma_done,
                                        &new_r[i]), 0);
    host.hold_reads = false;
    schedule_host();
    run_until_idle();
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(old_r[i].calls, 0);
        assert_int_equal(new_r[i].calls, 1);
        assert_int_equal(new_r[i].status, HLSIM_DMA_OK);
        assert_memory_equal(new_bufs[i], ram_at(new_src + 128 * i), LEN);
    }
}

static void test_sdk_fast_mode_16mib(void **state)
{
    uint32_t len = 16u * 1024u * 1024u;
    uint8_t *buf = malloc(len);
    struct dma_result r = {0};

    assert_non_null(buf);
    host.cpl_max_bytes = TLPB_UNSPLIT_MAX_BYTES;
    host.inbox_limit = 1000;
    fill_pattern(RAM_BASE + 1, len, 23);
    assert_int_equal(hlsim_dma_read(host.dev, RAM_BASE + 1, buf, len, dma_done, &r), 0);
    run_until_idle();
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, HLSIM_DMA_OK);
    assert_memory_equal(buf, ram_at(RAM_BASE + 1), len);
    assert_int_equal(host.mrd_count, 16);
    assert_int_equal(host.largest_mrd, 1024 * 1024 + 4); /* 1 MiB from an odd address */

    memset(ram_at(RAM_BASE), 0, len + 8);
    assert_int_equal(hlsim_dma_write(host.dev, RAM_BASE + 3, buf, len, dma_done, &r), 0);
    run_until_idle();
    assert_int_equal(r.calls, 2);
    assert_memory_equal(ram_at(RAM_BASE + 3), buf, len);
    assert_int_equal(host.mwr_count, 16);
    free(buf);
}

/* ---- tests: fast mode -------------------------------------------------------------- */

static void test_fast_mode_unsplit(void **state)
{
    uint32_t len = 1024 * 1024;
    host.cpl_max_bytes = TLPB_UNSPLIT_MAX_BYTES;
    host.inbox_limit = 1000;
    fill_pattern(SRC_AREA + 3, len, 19);
    copy_one(SRC_AREA + 3, DST_AREA + 1, len, 1);
    check_copied(RING_ADDR, 0, SRC_AREA + 3, DST_AREA + 1, len);
    assert_true(host.unsplit_seen);
    /* descriptor + 16 chunks of 64 KiB + flush: one MRd each */
    assert_int_equal(host.mrd_count, 1 + 16 + 1);
    /* 16 chunk writes + crc + status */
    assert_int_equal(host.mwr_count, 16 + 2);
    assert_int_equal(count_irqs(TLPB__INTERRUPT_KIND__IRQ_MSIX, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_and_bars, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_scratch_sizes, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_multi_dw_and_zero_length_reads, setup_strict,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_copy_one_byte, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_copy_odd_sizes, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_copy_crossing_4k, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_copy_1mib, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_copy_with_larger_mps_smaller_mrrs, setup_strict,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ring_wrap, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_many_descriptors_one_doorbell, setup_strict,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chained_copies, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_polling_during_copy, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_msix_vectors, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_masked_cause, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_msix_table_owned_by_host, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_intx_when_msix_off, setup_strict_intx, teardown),
        cmocka_unit_test_setup_teardown(test_zero_length_error, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_dma_read_error, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_dma_write_error, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ring, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_reset_mid_transfer, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_reset_with_reads_in_flight_then_reuse,
                                        setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_bus_master_off_waits, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_flr_resets_device, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_completion_timeout, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_link_down, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_late_completion_after_cancel, setup_strict,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sdk_dma_calls, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_sdk_completion_after_posted_writes, setup_strict,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sdk_stale_completions_after_cancel, setup_strict,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fast_mode_unsplit, setup_fast, teardown),
        cmocka_unit_test_setup_teardown(test_sdk_fast_mode_16mib, setup_fast, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

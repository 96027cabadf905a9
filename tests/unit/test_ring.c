/* The shared-memory ring: both sides in one process (two views of the same
 * memory), round trips, wrap-around, flow control, the sleep/wake protocol,
 * and every kind of garbage a peer could leave in the memory. Garbage is
 * written through a third mapping at the offsets docs/protocol.md gives. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "tlpb/byteorder.h"
#include "tlpb/ring.h"
#include "tlpb/wire.h"

#define RING_BYTES TLPB_RING_MIN_BYTES

struct pair {
    struct tlpb_ring *host, *bridge;
    uint8_t *mem; /* a raw view for planting garbage */
    size_t mem_bytes;
};

static int dup_fds(const int fds[TLPB_RING_FD_COUNT], int out[TLPB_RING_FD_COUNT])
{
    for (int i = 0; i < TLPB_RING_FD_COUNT; i++) {
        out[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        assert_true(out[i] >= 0);
    }
    return 0;
}

static int pair_setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    int fds[TLPB_RING_FD_COUNT], copy[TLPB_RING_FD_COUNT];
    char err[200] = "";
    assert_int_equal(tlpb_ring_create(&p->host, RING_BYTES, fds, err, sizeof(err)), 0);
    dup_fds(fds, copy);
    if (tlpb_ring_attach(&p->bridge, copy, RING_BYTES, err, sizeof(err)) != 0)
        fail_msg("attach: %s", err);
    p->mem_bytes = (size_t)tlpb_ring_memory_bytes(RING_BYTES);
    p->mem = mmap(NULL, p->mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                  fds[TLPB_RING_FD_MEMORY], 0);
    assert_true(p->mem != MAP_FAILED);
    *state = p;
    return 0;
}

static int pair_teardown(void **state)
{
    struct pair *p = *state;
    munmap(p->mem, p->mem_bytes);
    tlpb_ring_destroy(p->host);
    tlpb_ring_destroy(p->bridge);
    free(p);
    return 0;
}

static bool readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

static struct tlpb_tlp sample_tlp(enum tlpb_tlp_kind kind, const uint8_t *payload, uint32_t n)
{
    struct tlpb_tlp t;
    memset(&t, 0, sizeof(t));
    t.kind = kind;
    t.requester_id = 0x0100;
    t.tag = 0xa7;
    t.traffic_class = 5;
    t.attributes = TLPB_ATTR_NO_SNOOP | TLPB_ATTR_RELAXED_ORDERING;
    t.poisoned = true;
    t.length_dw = n ? n / 4 : 1;
    t.first_be = 0xf;
    t.last_be = n > 4 ? 0x3 : 0;
    t.address = 0x123456789abcdef0ull;
    t.completer_id = 0x0208;
    t.cfg_register = 0x44;
    t.status = TLPB_CPL_CA;
    t.byte_count = 4096;
    t.lower_address = 0x7c;
    t.bcm = true;
    t.bar_hint = 5;
    t.payload_bytes = n;
    t.payload = payload;
    t.sim_time_ps = 0xfedcba9876543210ull;
    return t;
}

static void assert_tlp_equal(const struct tlpb_tlp *a, const struct tlpb_tlp *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->requester_id, b->requester_id);
    assert_int_equal(a->tag, b->tag);
    assert_int_equal(a->traffic_class, b->traffic_class);
    assert_int_equal(a->attributes, b->attributes);
    assert_int_equal(a->poisoned, b->poisoned);
    assert_int_equal(a->length_dw, b->length_dw);
    assert_int_equal(a->first_be, b->first_be);
    assert_int_equal(a->last_be, b->last_be);
    assert_int_equal(a->address, b->address);
    assert_int_equal(a->completer_id, b->completer_id);
    assert_int_equal(a->cfg_register, b->cfg_register);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->byte_count, b->byte_count);
    assert_int_equal(a->lower_address, b->lower_address);
    assert_int_equal(a->bcm, b->bcm);
    assert_int_equal(a->bar_hint, b->bar_hint);
    assert_int_equal(a->sim_time_ps, b->sim_time_ps);
    assert_int_equal(a->payload_bytes, b->payload_bytes);
    if (a->payload_bytes)
        assert_memory_equal(a->payload, b->payload, a->payload_bytes);
}

static void test_policy_names(void **state)
{
    (void)state;
    enum tlpb_ring_policy p;
    assert_int_equal(tlpb_ring_policy_from_name("busy-poll", &p), 0);
    assert_int_equal(p, TLPB_RING_BUSY_POLL);
    assert_int_equal(tlpb_ring_policy_from_name("adaptive", &p), 0);
    assert_int_equal(p, TLPB_RING_ADAPTIVE);
    assert_int_equal(tlpb_ring_policy_from_name("off", &p), 0);
    assert_int_equal(p, TLPB_RING_OFF);
    assert_int_equal(tlpb_ring_policy_from_name("fast", &p), -EINVAL);
    assert_string_equal(tlpb_ring_policy_name(TLPB_RING_BUSY_POLL), "busy-poll");
}

static void test_round_trip_all_types(void **state)
{
    struct pair *p = *state;
    struct tlpb_ring_msg m;
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 0);
    assert_false(tlpb_ring_pending(p->bridge));

    uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct tlpb_tlp t = sample_tlp(TLPB_TLP_MWR, data, sizeof(data));
    assert_int_equal(tlpb_ring_put_tlp(p->host, &t), 0);
    struct tlpb_tlp t0 = sample_tlp(TLPB_TLP_MRD, NULL, 0);
    t0.bar_hint = TLPB_NO_BAR;
    assert_int_equal(tlpb_ring_put_tlp(p->host, &t0), 0);

    Tlpb__Envelope env;
    Tlpb__Error e;
    tlpb__envelope__init(&env);
    tlpb__error__init(&e);
    e.reason = "odd-length reason!";
    env.body_case = TLPB__ENVELOPE__BODY_ERROR;
    env.error = &e;
    assert_int_equal(tlpb_ring_put_envelope(p->host, &env), 0);
    assert_true(tlpb_ring_pending(p->bridge));

    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    assert_int_equal(m.type, TLPB_RING_MSG_TLP);
    assert_tlp_equal(&m.tlp, &t);
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    assert_tlp_equal(&m.tlp, &t0);
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    assert_int_equal(m.type, TLPB_RING_MSG_ENVELOPE);
    assert_int_equal(m.env->body_case, TLPB__ENVELOPE__BODY_ERROR);
    assert_string_equal(m.env->error->reason, "odd-length reason!");
    tlpb_envelope_free(m.env);
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 0);

    /* The other direction: interrupts go bridge -> host. */
    assert_int_equal(tlpb_ring_put_interrupt(p->bridge, TLPB__INTERRUPT_KIND__IRQ_MSIX, 17, 99), 0);
    assert_int_equal(tlpb_ring_get(p->host, &m), 1);
    assert_int_equal(m.type, TLPB_RING_MSG_INTERRUPT);
    assert_int_equal(m.irq_kind, TLPB__INTERRUPT_KIND__IRQ_MSIX);
    assert_int_equal(m.irq_vector, 17);
    assert_int_equal(m.irq_sim_time_ps, 99);
    assert_int_equal(tlpb_ring_get(p->host, &m), 0);

    struct tlpb_ring_stats st;
    tlpb_ring_get_stats(p->host, &st);
    assert_int_equal(st.records_out, 3);
    assert_int_equal(st.records_in, 1);
}

/* The largest payload that fits tlpb_ring_max_record, then one byte more. */
static void test_max_size_and_emsgsize(void **state)
{
    struct pair *p = *state;
    size_t max = tlpb_ring_max_record(p->host);
    assert_int_equal(max, RING_BYTES / 4);
    uint32_t n = (uint32_t)((max - TLPB_RING_TLP_BODY_BYTES) & ~(size_t)3);
    uint8_t *data = malloc(n + 4);
    assert_non_null(data);
    for (uint32_t i = 0; i < n + 4; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    struct tlpb_tlp t = sample_tlp(TLPB_TLP_CPLD, data, n);
    assert_int_equal(tlpb_ring_put_tlp(p->host, &t), 0);
    struct tlpb_ring_msg m;
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    assert_tlp_equal(&m.tlp, &t);

    struct tlpb_tlp big = sample_tlp(TLPB_TLP_CPLD, data, n + 4);
    assert_int_equal(tlpb_ring_put_tlp(p->host, &big), -EMSGSIZE);
    assert_false(tlpb_ring_pending(p->bridge));
    free(data);
}

static void get_in_order(struct pair *p, uint32_t *got, uint32_t n)
{
    struct tlpb_ring_msg m;
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    assert_int_equal(m.tlp.address, *got);
    assert_int_equal(m.tlp.payload_bytes, n);
    assert_int_equal(m.tlp.payload[0], (uint8_t)*got);
    assert_int_equal(m.tlp.payload[n - 1], (uint8_t)(*got + n - 1));
    (*got)++;
}

/* Records whose size does not divide the ring, the consumer lagging: the
 * producer pads to the end several times round; every record must come out
 * intact and in order. */
static void test_wrap_around_with_pad(void **state)
{
    struct pair *p = *state;
    static uint8_t data[4000];
    uint32_t seq = 0, got = 0, total = 3 * RING_BYTES / sizeof(data);
    while (seq < total) {
        for (size_t i = 0; i < sizeof(data); i++)
            data[i] = (uint8_t)(seq + i);
        struct tlpb_tlp t = sample_tlp(TLPB_TLP_MWR, data, sizeof(data));
        t.address = seq;
        int rc = tlpb_ring_put_tlp(p->host, &t);
        if (rc == -EAGAIN) {
            get_in_order(p, &got, sizeof(data));
            continue;
        }
        assert_int_equal(rc, 0);
        seq++;
        if (seq % 3 == 0)
            get_in_order(p, &got, sizeof(data));
    }
    while (got < seq)
        get_in_order(p, &got, sizeof(data));
    struct tlpb_ring_msg m;
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 0);
    /* The producer index counts the PAD bytes the records do not. */
    struct tlpb_ring_stats st;
    tlpb_ring_get_stats(p->host, &st);
    uint64_t head = tlpb_get_le64(p->mem + tlpb_ring_control_offset(RING_BYTES, 0) +
                                  TLPB_RING_CTL_PRODUCER);
    assert_true(head > st.bytes_out);
    assert_true(head > 2 * RING_BYTES);
}

/* A full ring refuses with -EAGAIN and asks to be woken; the consumer's get
 * and notify wake the producer exactly once, and then there is room. */
static void test_full_then_room(void **state)
{
    struct pair *p = *state;
    static uint8_t data[4096];
    struct tlpb_tlp t = sample_tlp(TLPB_TLP_MWR, data, sizeof(data));
    int n = 0, rc;
    while ((rc = tlpb_ring_put_tlp(p->host, &t)) == 0)
        n++;
    assert_int_equal(rc, -EAGAIN);
    assert_true(n > 0 && (size_t)n * sizeof(data) <= RING_BYTES);
    struct tlpb_ring_stats st;
    tlpb_ring_get_stats(p->host, &st);
    assert_int_equal(st.full, 1);
    assert_false(readable(tlpb_ring_wake_fd(p->host)));

    /* The bridge's own put frees no room: its notify wakes nobody. */
    assert_int_equal(tlpb_ring_put_interrupt(p->bridge, TLPB__INTERRUPT_KIND__IRQ_MSI, 0, 0), 0);
    tlpb_ring_notify(p->bridge);
    assert_false(readable(tlpb_ring_wake_fd(p->host)));

    struct tlpb_ring_msg m;
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    tlpb_ring_notify(p->bridge);
    assert_true(readable(tlpb_ring_wake_fd(p->host)));
    tlpb_ring_woken(p->host);
    assert_false(readable(tlpb_ring_wake_fd(p->host)));
    assert_int_equal(tlpb_ring_put_tlp(p->host, &t), 0);
    /* The flag was consumed by that wakeup: another get wakes nobody. */
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    tlpb_ring_notify(p->bridge);
    assert_false(readable(tlpb_ring_wake_fd(p->host)));
    tlpb_ring_get_stats(p->bridge, &st);
    assert_int_equal(st.wakeups_sent, 1);
}

static void test_sleep_and_notify(void **state)
{
    struct pair *p = *state;
    int bridge_fd = tlpb_ring_wake_fd(p->bridge);
    struct tlpb_ring_msg m;

    /* Nobody sleeps: a put and notify make no wakeup. */
    assert_int_equal(tlpb_ring_put_interrupt(p->host, TLPB__INTERRUPT_KIND__IRQ_MSI, 1, 0), 0);
    tlpb_ring_notify(p->host);
    assert_false(readable(bridge_fd));
    /* A record is waiting: prepare_sleep refuses to sleep. */
    assert_false(tlpb_ring_prepare_sleep(p->bridge));
    tlpb_ring_woken(p->bridge);
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    tlpb_ring_notify(p->bridge); /* the host does not wait for room */
    assert_false(readable(tlpb_ring_wake_fd(p->host)));

    /* Empty: the bridge sleeps; a notify without a put does not wake it. */
    assert_true(tlpb_ring_prepare_sleep(p->bridge));
    tlpb_ring_notify(p->host);
    assert_false(readable(bridge_fd));
    /* Two puts, then notify: one wakeup; a second notify adds nothing. */
    assert_int_equal(tlpb_ring_put_interrupt(p->host, TLPB__INTERRUPT_KIND__IRQ_MSI, 2, 0), 0);
    assert_int_equal(tlpb_ring_put_interrupt(p->host, TLPB__INTERRUPT_KIND__IRQ_MSI, 3, 0), 0);
    assert_false(readable(bridge_fd)); /* put alone never makes a system call */
    tlpb_ring_notify(p->host);
    assert_true(readable(bridge_fd));
    uint64_t count = 0;
    assert_int_equal(read(bridge_fd, &count, sizeof(count)), sizeof(count));
    assert_int_equal(count, 1);
    assert_int_equal(tlpb_ring_put_interrupt(p->host, TLPB__INTERRUPT_KIND__IRQ_MSI, 4, 0), 0);
    tlpb_ring_notify(p->host);
    assert_false(readable(bridge_fd)); /* the flag was taken by the first wakeup */
    tlpb_ring_woken(p->bridge);
    for (uint32_t v = 2; v <= 4; v++) {
        assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
        assert_int_equal(m.irq_vector, v);
    }
    struct tlpb_ring_stats st;
    tlpb_ring_get_stats(p->host, &st);
    assert_int_equal(st.wakeups_sent, 1);
    tlpb_ring_get_stats(p->bridge, &st);
    assert_int_equal(st.sleeps, 1);
}

/* ---- Garbage ---------------------------------------------------------------- */

/* Raw access to the host -> bridge direction (the bridge consumes it). */
static uint8_t *h2b_ctl(struct pair *p)
{
    return p->mem + tlpb_ring_control_offset(RING_BYTES, 0);
}
static uint8_t *h2b_data(struct pair *p)
{
    return p->mem + tlpb_ring_data_offset(RING_BYTES, 0);
}
static void set_head(struct pair *p, uint64_t head)
{
    tlpb_put_le64(h2b_ctl(p) + TLPB_RING_CTL_PRODUCER, head);
}
static void put_record_header(uint8_t *at, uint32_t len, uint16_t type, uint16_t padding)
{
    tlpb_put_le32(at, len);
    tlpb_put_le16(at + 4, type);
    tlpb_put_le16(at + 6, padding);
}

static void expect_proto(struct pair *p, const char *reason_part)
{
    struct tlpb_ring_msg m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(tlpb_ring_get(p->bridge, &m), -EPROTO);
    const char *reason = tlpb_ring_error(p->bridge);
    if (!strstr(reason, reason_part))
        fail_msg("reason \"%s\" does not say \"%s\"", reason, reason_part);
    /* The ring stays unusable. */
    assert_int_equal(tlpb_ring_get(p->bridge, &m), -EPROTO);
    assert_null(m.env);
}

static void test_garbage_head_too_far(void **state)
{
    struct pair *p = *state;
    set_head(p, RING_BYTES + 8);
    expect_proto(p, "more than ring_bytes ahead");
}

static void test_garbage_head_backwards(void **state)
{
    struct pair *p = *state;
    struct tlpb_ring_msg m;
    assert_int_equal(tlpb_ring_put_interrupt(p->host, TLPB__INTERRUPT_KIND__IRQ_MSI, 1, 0), 0);
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    set_head(p, 8); /* behind the consumer's 24 */
    expect_proto(p, "went backwards");
}

static void test_garbage_consumer_index(void **state)
{
    struct pair *p = *state;
    /* The producer reads the consumer's index when it needs room. */
    uint8_t *h2b = p->mem + tlpb_ring_control_offset(RING_BYTES, 0);
    tlpb_put_le64(h2b + TLPB_RING_CTL_CONSUMER, 1ull << 40);
    static uint8_t data[4096];
    struct tlpb_tlp t = sample_tlp(TLPB_TLP_MWR, data, sizeof(data));
    int rc;
    while ((rc = tlpb_ring_put_tlp(p->host, &t)) == 0)
        ;
    assert_int_equal(rc, -EPROTO);
    assert_non_null(strstr(tlpb_ring_error(p->host), "ahead of producer index"));
}

static void test_garbage_consumer_backwards(void **state)
{
    struct pair *p = *state;
    static uint8_t data[4096];
    struct tlpb_tlp t = sample_tlp(TLPB_TLP_MWR, data, sizeof(data));
    struct tlpb_ring_msg m;
    while (tlpb_ring_put_tlp(p->host, &t) == 0)
        ;
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    assert_int_equal(tlpb_ring_put_tlp(p->host, &t), 0); /* saw the new index */
    tlpb_put_le64(p->mem + tlpb_ring_control_offset(RING_BYTES, 0) + TLPB_RING_CTL_CONSUMER, 0);
    /* Bounded: without the check the producer would believe it has room
     * for ever. */
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++)
        rc = tlpb_ring_put_tlp(p->host, &t);
    assert_int_equal(rc, -EPROTO);
    assert_non_null(strstr(tlpb_ring_error(p->host), "consumer index went backwards"));
}

static void test_garbage_record_lengths(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), 0, TLPB_RING_MSG_INTERRUPT, 0);
    set_head(p, 64);
    expect_proto(p, "shorter than its header");
}

static void test_garbage_record_unaligned(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), 28, TLPB_RING_MSG_INTERRUPT, 0);
    set_head(p, 64);
    expect_proto(p, "not a multiple of 8");
}

static void test_garbage_record_beyond_available(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), 72, TLPB_RING_MSG_INTERRUPT, 0);
    set_head(p, 64);
    expect_proto(p, "exceeds the 64 bytes available");
}

static void test_garbage_record_too_large(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), RING_BYTES / 2, TLPB_RING_MSG_ENVELOPE, 0);
    set_head(p, RING_BYTES);
    expect_proto(p, "exceeds the largest record");
}

static void test_garbage_pad_short_of_end(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), RING_BYTES - 64, TLPB_RING_RECORD_PAD, 0);
    set_head(p, RING_BYTES - 64);
    expect_proto(p, "does not end at the ring's end");
}

static void test_garbage_record_crosses_end(void **state)
{
    struct pair *p = *state;
    /* Four real records bring both sides to 64 bytes before the end. */
    static uint8_t data[RING_BYTES / 4 - 72];
    struct tlpb_tlp t = sample_tlp(TLPB_TLP_MWR, data, sizeof(data));
    struct tlpb_ring_msg m;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tlpb_ring_put_tlp(p->host, &t), 0);
        assert_int_equal(tlpb_ring_get(p->bridge, &m), 1);
    }
    put_record_header(h2b_data(p) + RING_BYTES - 64, 128, TLPB_RING_MSG_ENVELOPE, 0);
    set_head(p, RING_BYTES + 64);
    expect_proto(p, "record of 128 bytes crosses the ring's end");
}

static void test_garbage_unknown_type(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), 24, 9, 0);
    set_head(p, 24);
    expect_proto(p, "unknown record type 9");
}

static void test_garbage_bad_padding(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), 24, TLPB_RING_MSG_INTERRUPT, 8);
    set_head(p, 24);
    expect_proto(p, "record padding 8");
}

/* Put a good TLP, then damage one byte of its body in the shared memory. */
static void tlp_then_damage(struct pair *p, size_t body_offset, uint8_t value)
{
    uint8_t data[8] = {0};
    struct tlpb_tlp t = sample_tlp(TLPB_TLP_MWR, data, sizeof(data));
    assert_int_equal(tlpb_ring_put_tlp(p->host, &t), 0);
    h2b_data(p)[TLPB_RING_RECORD_HEADER_BYTES + body_offset] = value;
}

static void test_garbage_tlp_kind(void **state)
{
    struct pair *p = *state;
    tlp_then_damage(p, 0, 7);
    expect_proto(p, "unknown TLP kind");
}

static void test_garbage_tlp_be(void **state)
{
    struct pair *p = *state;
    tlp_then_damage(p, 7, 0x1f);
    expect_proto(p, "first_be wider than 4 bits");
}

static void test_garbage_tlp_length(void **state)
{
    struct pair *p = *state;
    tlp_then_damage(p, 19, 0x40); /* length_dw bits 31:24 */
    expect_proto(p, "length above the largest TLP");
}

static void test_garbage_tlp_payload_size(void **state)
{
    struct pair *p = *state;
    tlp_then_damage(p, 28, 12); /* payload_bytes 12 in a record holding 8 */
    expect_proto(p, "payload_bytes 12 does not match");
}

static void test_garbage_tlp_payload_short(void **state)
{
    struct pair *p = *state;
    tlp_then_damage(p, 28, 4); /* payload_bytes 4 in a record holding 8 */
    expect_proto(p, "payload_bytes 4 does not match");
}

static void test_garbage_tlp_flag(void **state)
{
    struct pair *p = *state;
    tlp_then_damage(p, 6, 2); /* poisoned */
    expect_proto(p, "poisoned or bcm is neither 0 nor 1");
}

static void test_garbage_tlp_short(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), 24, TLPB_RING_MSG_TLP, 0);
    set_head(p, 24);
    expect_proto(p, "shorter than 48");
}

static void test_garbage_interrupt_kind(void **state)
{
    struct pair *p = *state;
    assert_int_equal(tlpb_ring_put_interrupt(p->host, TLPB__INTERRUPT_KIND__IRQ_MSI, 1, 0), 0);
    h2b_data(p)[TLPB_RING_RECORD_HEADER_BYTES] = 0;
    expect_proto(p, "unknown interrupt kind 0");
}

static void test_garbage_envelope(void **state)
{
    struct pair *p = *state;
    put_record_header(h2b_data(p), 16, TLPB_RING_MSG_ENVELOPE, 0);
    memset(h2b_data(p) + 8, 0xff, 8);
    set_head(p, 16);
    expect_proto(p, "Envelope record: frame is not a valid protobuf Envelope");
}

/* ---- Attach refusals -------------------------------------------------------- */

static void expect_attach_fails(const int fds[TLPB_RING_FD_COUNT], uint64_t ring_bytes,
                                const char *reason_part)
{
    struct tlpb_ring *r = (struct tlpb_ring *)1;
    char err[200] = "";
    assert_int_equal(tlpb_ring_attach(&r, fds, ring_bytes, err, sizeof(err)), -EINVAL);
    assert_null(r);
    if (!strstr(err, reason_part))
        fail_msg("error \"%s\" does not say \"%s\"", err, reason_part);
    /* Ownership was taken: the descriptors are closed. */
    for (int i = 0; i < TLPB_RING_FD_COUNT; i++)
        assert_int_equal(fcntl(fds[i], F_GETFD), -1);
}

static void test_attach_wrong_ring_bytes(void **state)
{
    struct pair *p = *state;
    int fds[TLPB_RING_FD_COUNT], copy[TLPB_RING_FD_COUNT];
    char err[200];
    tlpb_ring_destroy(p->bridge);
    p->bridge = NULL;
    tlpb_ring_destroy(p->host);
    assert_int_equal(tlpb_ring_create(&p->host, RING_BYTES, fds, err, sizeof(err)), 0);
    dup_fds(fds, copy);
    expect_attach_fails(copy, 2 * RING_BYTES, "bytes, ring_bytes");
    dup_fds(fds, copy);
    expect_attach_fails(copy, RING_BYTES + 8, "not a power of two");
}

static void test_attach_bad_magic(void **state)
{
    struct pair *p = *state;
    int fds[TLPB_RING_FD_COUNT];
    /* The pair's raw view maps the original memory: find the descriptors by
     * creating a fresh ring whose header we damage. */
    struct tlpb_ring *host;
    char err[200];
    assert_int_equal(tlpb_ring_create(&host, RING_BYTES, fds, err, sizeof(err)), 0);
    uint8_t *mem = mmap(NULL, p->mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                        fds[TLPB_RING_FD_MEMORY], 0);
    assert_true(mem != MAP_FAILED);
    mem[0] ^= 0xff;
    munmap(mem, p->mem_bytes);
    int copy[TLPB_RING_FD_COUNT];
    dup_fds(fds, copy);
    expect_attach_fails(copy, RING_BYTES, "bad header");
    tlpb_ring_destroy(host);
}

static void test_attach_unsealed_and_not_memfd(void **state)
{
    struct pair *p = *state;
    int fds[TLPB_RING_FD_COUNT];
    fds[TLPB_RING_FD_WAKE_BRIDGE] = eventfd(0, EFD_CLOEXEC);
    fds[TLPB_RING_FD_WAKE_HOST] = eventfd(0, EFD_CLOEXEC);
    fds[TLPB_RING_FD_MEMORY] = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_int_equal(ftruncate(fds[TLPB_RING_FD_MEMORY], (off_t)p->mem_bytes), 0);
    expect_attach_fails(fds, RING_BYTES, "not sealed against shrinking");

    fds[TLPB_RING_FD_WAKE_BRIDGE] = eventfd(0, EFD_CLOEXEC);
    fds[TLPB_RING_FD_WAKE_HOST] = eventfd(0, EFD_CLOEXEC);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    close(pipefd[1]);
    fds[TLPB_RING_FD_MEMORY] = pipefd[0];
    expect_attach_fails(fds, RING_BYTES, "not a memfd");
}

static void test_attach_wake_not_eventfd(void **state)
{
    struct pair *p = *state;
    (void)p;
    int fds[TLPB_RING_FD_COUNT], copy[TLPB_RING_FD_COUNT];
    struct tlpb_ring *host;
    char err[200];
    assert_int_equal(tlpb_ring_create(&host, RING_BYTES, fds, err, sizeof(err)), 0);
    dup_fds(fds, copy);
    close(copy[TLPB_RING_FD_WAKE_HOST]);
    copy[TLPB_RING_FD_WAKE_HOST] = memfd_create("fake", MFD_CLOEXEC);
    expect_attach_fails(copy, RING_BYTES, "wake-host descriptor is not an eventfd");
    tlpb_ring_destroy(host);
}

/* Eventfds made blocking by the peer are made non-blocking: the wakeup
 * write and the drain never stall the event loop. */
static void test_attach_makes_eventfds_nonblocking(void **state)
{
    (void)state;
    int fds[TLPB_RING_FD_COUNT], copy[TLPB_RING_FD_COUNT];
    struct tlpb_ring *host, *bridge;
    char err[200];
    assert_int_equal(tlpb_ring_create(&host, RING_BYTES, fds, err, sizeof(err)), 0);
    dup_fds(fds, copy);
    for (int i = TLPB_RING_FD_WAKE_BRIDGE; i <= TLPB_RING_FD_WAKE_HOST; i++) {
        close(copy[i]);
        copy[i] = eventfd(0, EFD_CLOEXEC);
        assert_int_equal(fcntl(copy[i], F_GETFL) & O_NONBLOCK, 0);
    }
    assert_int_equal(tlpb_ring_attach(&bridge, copy, RING_BYTES, err, sizeof(err)), 0);
    for (int i = TLPB_RING_FD_WAKE_BRIDGE; i <= TLPB_RING_FD_WAKE_HOST; i++)
        assert_int_equal(fcntl(copy[i], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    /* Nothing written: woken returns at once. */
    tlpb_ring_woken(bridge);
    tlpb_ring_destroy(bridge);
    tlpb_ring_destroy(host);
}

static void test_create_bad_size(void **state)
{
    (void)state;
    struct tlpb_ring *r;
    int fds[TLPB_RING_FD_COUNT];
    char err[200] = "";
    assert_int_equal(tlpb_ring_create(&r, 3u << 20, fds, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a power of two"));
    assert_int_equal(tlpb_ring_create(&r, TLPB_RING_MAX_BYTES * 2ull, fds, err, sizeof(err)),
                     -EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, pair_setup, pair_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_names),
        cmocka_unit_test(test_create_bad_size),
        T(test_round_trip_all_types),
        T(test_max_size_and_emsgsize),
        T(test_wrap_around_with_pad),
        T(test_full_then_room),
        T(test_sleep_and_notify),
        T(test_garbage_head_too_far),
        T(test_garbage_head_backwards),
        T(test_garbage_consumer_index),
        T(test_garbage_consumer_backwards),
        T(test_garbage_record_lengths),
        T(test_garbage_record_unaligned),
        T(test_garbage_record_beyond_available),
        T(test_garbage_record_too_large),
        T(test_garbage_record_crosses_end),
        T(test_garbage_pad_short_of_end),
        T(test_garbage_unknown_type),
        T(test_garbage_bad_padding),
        T(test_garbage_tlp_kind),
        T(test_garbage_tlp_be),
        T(test_garbage_tlp_length),
        T(test_garbage_tlp_payload_size),
        T(test_garbage_tlp_payload_short),
        T(test_garbage_tlp_flag),
        T(test_garbage_tlp_short),
        T(test_garbage_interrupt_kind),
        T(test_garbage_envelope),
        T(test_attach_wrong_ring_bytes),
        T(test_attach_bad_magic),
        T(test_attach_unsealed_and_not_memfd),
        T(test_attach_wake_not_eventfd),
        cmocka_unit_test(test_attach_makes_eventfds_nonblocking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tag allocation and completion reassembly, driven by sequences of
 * operations rather than raw completions (random completions almost never
 * match an outstanding read, so the reassembly path would go untested).
 * Alongside the table runs a shadow model of what is outstanding; checked:
 * - a well-formed completion sequence (exact byte count, lower address,
 *   RCB-aligned splits) is always accepted and reassembles the data sent;
 * - tags are never handed out twice, the in-use count and the earliest
 *   deadline agree with the shadow, expiry reports exactly the tags due.
 *
 * Input: byte 0 the tag count; then operations, each an opcode byte and
 * its arguments (missing bytes read as zero):
 *   alloc    address(8) length(2) deadline(1) flags(1)
 *   complete which(1) how(1) chunk(1) [perturbation(4) when how says so]
 *   expire   now(1)
 *   release  which(1)
 *   deadline */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tlpb/tlp.h"

struct shadow {
    bool outstanding;
    bool exact;            /* only well-formed completions so far */
    uint64_t address;
    uint32_t length;
    uint32_t received;
    uint64_t deadline;
    uint8_t *buffer;       /* given to the table; may be NULL */
    uint8_t *expect;       /* the data sent for it, when exact */
};

struct run {
    struct tlpb_tag_table tags;
    struct shadow s[TLPB_TAGS_MAX];
    unsigned outstanding;
    const uint8_t *data;
    size_t size;
    uint8_t seq;
};

static uint64_t take(struct run *r, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && r->size; i++, r->data++, r->size--)
        v |= (uint64_t)*r->data << (8 * i);
    return v;
}

static void shadow_free(struct run *r, unsigned tag)
{
    struct shadow *s = &r->s[tag];
    FUZZ_CHECK(s->outstanding);
    free(s->buffer);
    free(s->expect);
    memset(s, 0, sizeof(*s));
    r->outstanding--;
}

/* The nth outstanding tag (which picks), or a raw tag number. */
static unsigned pick_tag(struct run *r, unsigned which)
{
    if ((which & 0x80) || r->outstanding == 0)
        return which & 0xff;
    unsigned n = (which & 0x7f) % r->outstanding;
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++)
        if (r->s[tag].outstanding && n-- == 0)
            return tag;
    FUZZ_CHECK(0);
    return 0;
}

static void op_alloc(struct run *r)
{
    uint64_t address = take(r, 8);
    uint32_t length = (uint32_t)take(r, 2) % (2 * 4096 + 1);
    uint64_t deadline = take(r, 1);
    unsigned flags = (unsigned)take(r, 1);
    if (flags & 1)
        length = 0; /* zero-length reads are their own path */
    if (flags & 2)
        address = UINT64_MAX - (address & 0xfff); /* near the top */
    uint8_t *buffer = (flags & 4) ? NULL : malloc(length ? length : 1);
    int tag = tlpb_tags_alloc(&r->tags, address, length, buffer, deadline, &r->s[0]);
    if (tag == -EAGAIN) {
        FUZZ_CHECK(r->outstanding == r->tags.tag_count);
        free(buffer);
        return;
    }
    if (tag == -EINVAL) {
        FUZZ_CHECK(length > 0 && address > UINT64_MAX - (length - 1u));
        free(buffer);
        return;
    }
    FUZZ_CHECK(tag >= 0 && (unsigned)tag < r->tags.tag_count);
    struct shadow *s = &r->s[tag];
    FUZZ_CHECK(!s->outstanding); /* never handed out twice */
    /* The context identifies the slot, for the checks on completion. */
    r->tags.slots[tag].context = s;
    *s = (struct shadow){.outstanding = true, .exact = true, .address = address,
                         .length = length, .deadline = deadline, .buffer = buffer,
                         .expect = calloc(1, length ? length : 1)};
    FUZZ_CHECK(s->expect != NULL);
    r->outstanding++;
}

static void op_complete(struct run *r)
{
    unsigned tag = pick_tag(r, (unsigned)take(r, 1));
    unsigned how = (unsigned)take(r, 1);
    unsigned chunk_sel = (unsigned)take(r, 1);
    static uint8_t payload[4096 + 8];
    struct shadow *s = &r->s[tag];

    struct tlpb_tlp cpl = {.kind = TLPB_TLP_CPLD, .tag = (uint8_t)tag, .status = TLPB_CPL_SC,
                           .bar_hint = TLPB_NO_BAR, .requester_id = 0x0100,
                           .completer_id = 0x0200};
    uint32_t carried = 0;
    bool last = false;
    if (s->outstanding && s->length == 0) {
        cpl.byte_count = 1;
        cpl.lower_address = (uint8_t)(s->address & 0x7f);
        cpl.length_dw = 1;
        if (how & 1)
            cpl.kind = TLPB_TLP_CPL;
        last = true;
    } else if (s->outstanding) {
        uint32_t owed = s->length - s->received;
        uint64_t next = s->address + s->received;
        uint32_t offset = (uint32_t)(next & 3);
        /* Up to the next 64-byte boundary, plus 0..63 more 64-byte blocks. */
        uint32_t chunk = (uint32_t)(64 - (next & 63)) + 64u * (chunk_sel & 63);
        if (chunk >= owed || (how & 2)) {
            chunk = owed;
            last = true;
        }
        if (chunk > 4096) {
            chunk = (uint32_t)(64 - (next & 63)) + 64u * 63u;
            last = false;
        }
        cpl.byte_count = owed;
        cpl.lower_address = (uint8_t)(next & 0x7f);
        cpl.length_dw = (offset + chunk + 3) / 4;
        carried = chunk;
        for (uint32_t i = 0; i < cpl.length_dw * 4; i++)
            payload[i] = (uint8_t)(r->seq * 31u + i);
        r->seq++;
    } else {
        cpl.byte_count = 4;
        cpl.length_dw = 1;
        memset(payload, 0xAB, 4);
    }
    cpl.payload = payload;
    cpl.payload_bytes = cpl.kind == TLPB_TLP_CPLD ? cpl.length_dw * 4 : 0;

    /* Exact: built from the shadow of a read that has seen only exact
     * completions, so it must be accepted. */
    bool exact = !(how & 0x80) && s->outstanding && s->exact;
    if (how & 0x80) {
        /* Bend one field the way a confused or hostile completer would. */
        uint32_t delta = (uint32_t)take(r, 4);
        switch ((how >> 2) & 7) {
        case 0: cpl.byte_count ^= delta & 0x1fff; break;
        case 1: cpl.lower_address ^= (uint8_t)(delta & 0x7f); break;
        case 2: cpl.length_dw = delta % 1026; break;
        case 3: cpl.status = (enum tlpb_cpl_status)(delta % 5); break;
        case 4: cpl.poisoned = true; break;
        case 5: cpl.kind = (enum tlpb_tlp_kind)(delta % 8); break;
        case 6: cpl.payload_bytes = (delta % 1026) * 4; break;
        default: cpl.tag = (uint8_t)delta; break;
        }
        if (cpl.payload_bytes > sizeof(payload) - 8)
            cpl.payload_bytes = sizeof(payload) - 8;
    }

    struct tlpb_tag_done done = {0};
    const char *reason = NULL;
    int rc = tlpb_tags_complete(&r->tags, &cpl, &done, &reason);
    if (rc < 0) {
        FUZZ_CHECK(rc == -EINVAL && reason != NULL);
        /* A well-formed completion for an outstanding read is accepted. */
        FUZZ_CHECK(!exact);
        return;
    }
    struct shadow *hit = &r->s[cpl.tag];
    FUZZ_CHECK(hit->outstanding);
    if (exact && hit->length) {
        memcpy(hit->expect + hit->received, payload + (cpl.lower_address & 3u), carried);
        hit->received += carried;
    } else {
        hit->exact = false;
    }
    if (rc == 0) {
        FUZZ_CHECK(!(exact && last));
        FUZZ_CHECK(r->tags.slots[cpl.tag].in_use);
        return;
    }
    FUZZ_CHECK(rc == 1);
    FUZZ_CHECK(!(exact && !last));
    FUZZ_CHECK(done.tag == cpl.tag && done.context == hit && done.length_bytes == hit->length);
    FUZZ_CHECK(!r->tags.slots[cpl.tag].in_use);
    if (exact && hit->buffer && hit->length && done.status == TLPB_CPL_SC) {
        FUZZ_CHECK(hit->received == hit->length);
        FUZZ_CHECK(memcmp(hit->buffer, hit->expect, hit->length) == 0);
    }
    shadow_free(r, cpl.tag);
}

static void on_expired(const struct tlpb_tag_done *done, void *arg)
{
    struct run *r = arg;
    struct shadow *s = &r->s[done->tag];
    FUZZ_CHECK(done->context == s && done->status == TLPB_CPL_CA);
    shadow_free(r, done->tag);
}

static void op_expire(struct run *r)
{
    uint64_t now = take(r, 1);
    unsigned due = 0;
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++)
        due += r->s[tag].outstanding && r->s[tag].deadline <= now;
    FUZZ_CHECK(tlpb_tags_expire(&r->tags, now, on_expired, r) == due);
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++)
        FUZZ_CHECK(!(r->s[tag].outstanding && r->s[tag].deadline <= now));
}

static void op_release(struct run *r)
{
    unsigned tag = pick_tag(r, (unsigned)take(r, 1));
    tlpb_tags_release(&r->tags, (uint8_t)tag);
    if (r->s[tag].outstanding)
        shadow_free(r, tag);
}

static void op_deadline(struct run *r)
{
    uint64_t earliest = UINT64_MAX;
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++)
        if (r->s[tag].outstanding && r->s[tag].deadline < earliest)
            earliest = r->s[tag].deadline;
    FUZZ_CHECK(tlpb_tags_next_deadline(&r->tags) == earliest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run r;
    memset(&r, 0, sizeof(r));
    r.data = data;
    r.size = size;
    unsigned count = (unsigned)take(&r, 1);
    tlpb_tags_init(&r.tags, count ? count : 256);
    FUZZ_CHECK(r.tags.tag_count >= 1 && r.tags.tag_count <= TLPB_TAGS_MAX);
    while (r.size) {
        switch (take(&r, 1) % 5) {
        case 0: op_alloc(&r); break;
        case 1: op_complete(&r); break;
        case 2: op_expire(&r); break;
        case 3: op_release(&r); break;
        default: op_deadline(&r); break;
        }
        FUZZ_CHECK(r.tags.in_use == r.outstanding);
    }
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++)
        if (r.s[tag].outstanding)
            shadow_free(&r, tag);
    return 0;
}

/* Length-prefixed framing: a 4-byte little-endian length, then one packed
 * Envelope. Both buffers are bounded: a peer can make us hold at most one
 * maximum-size frame inbound, and outbound queues refuse past their limit. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

#define TLPB_BUF_MIN_CAPACITY (64u * 1024u)

/* Make room for `more` bytes after end, compacting first. */
static int reserve_tail(uint8_t **data, size_t *start, size_t *end, size_t *capacity, size_t more)
{
    size_t used = *end - *start;
    if (*start > 0 && (*capacity - *end < more || *start >= *capacity / 2)) {
        memmove(*data, *data + *start, used);
        *start = 0;
        *end = used;
    }
    if (*capacity - *end >= more)
        return 0;
    size_t want = *capacity ? *capacity : TLPB_BUF_MIN_CAPACITY;
    while (want - *end < more) {
        if (want > SIZE_MAX / 2)
            return -ENOMEM;
        want *= 2;
    }
    uint8_t *grown = realloc(*data, want);
    if (!grown)
        return -ENOMEM;
    *data = grown;
    *capacity = want;
    return 0;
}

void tlpb_obuf_init(struct tlpb_obuf *ob, size_t limit_bytes, uint32_t max_frame_bytes)
{
    memset(ob, 0, sizeof(*ob));
    ob->limit_bytes = limit_bytes;
    ob->max_frame_bytes = max_frame_bytes;
}

void tlpb_obuf_free(struct tlpb_obuf *ob)
{
    free(ob->data);
    memset(ob, 0, sizeof(*ob));
}

void tlpb_obuf_consume(struct tlpb_obuf *ob, size_t bytes)
{
    if (bytes > tlpb_obuf_pending(ob))
        bytes = tlpb_obuf_pending(ob);
    ob->start += bytes;
    if (ob->start == ob->end)
        ob->start = ob->end = 0;
}

int tlpb_obuf_append(struct tlpb_obuf *ob, const Tlpb__Envelope *env, bool force)
{
    size_t body = protobuf_c_message_get_packed_size(&env->base);
    if (body > ob->max_frame_bytes)
        return -EMSGSIZE;
    size_t frame = TLPB_FRAME_PREFIX_BYTES + body;
    if (!force && tlpb_obuf_pending(ob) + frame > ob->limit_bytes)
        return -ENOBUFS;
    int rc = reserve_tail(&ob->data, &ob->start, &ob->end, &ob->capacity, frame);
    if (rc)
        return rc;
    tlpb_put_le32(ob->data + ob->end, (uint32_t)body);
    protobuf_c_message_pack(&env->base, ob->data + ob->end + TLPB_FRAME_PREFIX_BYTES);
    ob->end += frame;
    return 0;
}

int tlpb_obuf_append_tlp(struct tlpb_obuf *ob, const struct tlpb_tlp *tlp, bool force)
{
    Tlpb__Tlp pb;
    tlpb_tlp_to_pb(&pb, tlp);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = &pb;
    return tlpb_obuf_append(ob, &env, force);
}

void tlpb_interrupt_envelope(Tlpb__Envelope *env, Tlpb__Interrupt *irq, Tlpb__InterruptKind kind,
                             uint32_t vector)
{
    *irq = (Tlpb__Interrupt)TLPB__INTERRUPT__INIT;
    irq->kind = kind;
    irq->vector = vector;
    *env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env->body_case = TLPB__ENVELOPE__BODY_INTERRUPT;
    env->interrupt = irq;
}

int tlpb_obuf_append_interrupt(struct tlpb_obuf *ob, Tlpb__InterruptKind kind, uint32_t vector)
{
    return tlpb_obuf_append_interrupt_at(ob, kind, vector, 0);
}

int tlpb_obuf_append_interrupt_at(struct tlpb_obuf *ob, Tlpb__InterruptKind kind, uint32_t vector,
                                  uint64_t sim_time_ps)
{
    Tlpb__Interrupt irq;
    Tlpb__Envelope env;
    tlpb_interrupt_envelope(&env, &irq, kind, vector);
    irq.sim_time_ps = sim_time_ps;
    /* Interrupts follow the DMA writes they announce; refusing one would
     * reorder them, so they are always queued. */
    return tlpb_obuf_append(ob, &env, true);
}

void tlpb_time_sync_envelope(Tlpb__Envelope *env, const Tlpb__TimeSync *ts)
{
    *env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env->body_case = TLPB__ENVELOPE__BODY_TIME_SYNC;
    env->time_sync = (Tlpb__TimeSync *)ts;
}

int tlpb_obuf_append_time_sync(struct tlpb_obuf *ob, const Tlpb__TimeSync *ts)
{
    Tlpb__Envelope env;
    tlpb_time_sync_envelope(&env, ts);
    /* A GRANT must follow the posted writes that take effect before it and
     * a REACHED the DMA that happened before it: refusing one would reorder. */
    return tlpb_obuf_append(ob, &env, true);
}

int tlpb_obuf_append_error(struct tlpb_obuf *ob, const char *reason)
{
    return tlpb_obuf_append_dma_fault(ob, reason, 0, 0);
}

void tlpb_dma_fault_envelope(Tlpb__Envelope *env, Tlpb__Error *err, const char *reason,
                             uint64_t address, uint32_t bytes)
{
    tlpb__error__init(err);
    err->reason = (char *)reason;
    err->dma_fault_address = address;
    err->dma_fault_bytes = bytes;
    tlpb__envelope__init(env);
    env->body_case = TLPB__ENVELOPE__BODY_ERROR;
    env->error = err;
}

void tlpb_dma_context_envelope(Tlpb__Envelope *env, Tlpb__DmaContext *ctx, bool write,
                               uint64_t address, uint32_t length_bytes, const char *text)
{
    tlpb__dma_context__init(ctx);
    ctx->write = write;
    ctx->address = address;
    ctx->length_bytes = length_bytes;
    ctx->text = (char *)text;
    tlpb__envelope__init(env);
    env->body_case = TLPB__ENVELOPE__BODY_DMA_CONTEXT;
    env->dma_context = ctx;
}

int tlpb_obuf_append_dma_fault(struct tlpb_obuf *ob, const char *reason, uint64_t address,
                               uint32_t bytes)
{
    Tlpb__Error err;
    Tlpb__Envelope env;
    tlpb_dma_fault_envelope(&env, &err, reason, address, bytes);
    return tlpb_obuf_append(ob, &env, true);
}

int tlpb_obuf_write_all(struct tlpb_obuf *ob, int fd)
{
    while (tlpb_obuf_pending(ob) > 0) {
        ssize_t n = write(fd, tlpb_obuf_head(ob), tlpb_obuf_pending(ob));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        tlpb_obuf_consume(ob, (size_t)n);
    }
    return 0;
}

void tlpb_reader_init(struct tlpb_frame_reader *rd, uint32_t max_frame_bytes)
{
    memset(rd, 0, sizeof(*rd));
    rd->max_frame_bytes = max_frame_bytes;
}

void tlpb_reader_free(struct tlpb_frame_reader *rd)
{
    free(rd->data);
    memset(rd, 0, sizeof(*rd));
}

uint8_t *tlpb_reader_space(struct tlpb_frame_reader *rd, size_t min_bytes, size_t *space)
{
    size_t need = min_bytes;
    size_t have = rd->end - rd->start;
    /* A partial frame whose length is known: make room for all of it, so a
     * large frame arrives in few reads. The prefix was checked by _next. */
    if (have >= TLPB_FRAME_PREFIX_BYTES) {
        uint32_t body = tlpb_get_le32(rd->data + rd->start);
        if (body <= rd->max_frame_bytes) {
            size_t frame = TLPB_FRAME_PREFIX_BYTES + (size_t)body;
            if (frame > have && frame - have > need)
                need = frame - have;
        }
    }
    if (reserve_tail(&rd->data, &rd->start, &rd->end, &rd->capacity, need))
        return NULL;
    *space = rd->capacity - rd->end;
    return rd->data + rd->end;
}

void tlpb_reader_commit(struct tlpb_frame_reader *rd, size_t bytes)
{
    rd->end += bytes;
}

int tlpb_reader_next(struct tlpb_frame_reader *rd, const uint8_t **frame, size_t *len,
                     const char **reason)
{
    size_t have = rd->end - rd->start;
    if (have < TLPB_FRAME_PREFIX_BYTES)
        return 0;
    uint32_t body = tlpb_get_le32(rd->data + rd->start);
    if (body > rd->max_frame_bytes) {
        *reason = "frame length prefix exceeds the negotiated maximum frame size";
        return -EMSGSIZE;
    }
    if (have - TLPB_FRAME_PREFIX_BYTES < body)
        return 0;
    *frame = rd->data + rd->start + TLPB_FRAME_PREFIX_BYTES;
    *len = body;
    rd->start += TLPB_FRAME_PREFIX_BYTES + body;
    if (rd->start == rd->end)
        rd->start = rd->end = 0; /* the frame stays readable until the next space call */
    return 1;
}

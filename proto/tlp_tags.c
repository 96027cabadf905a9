/* The requester's tag table: tags for outstanding reads, reassembly of
 * their (possibly split) completions, and completion timeouts. */
#include <errno.h>
#include <string.h>

#include "tlpb/tlp.h"

/* Every PCIe read completion boundary (64 or 128 bytes) is a multiple of
 * this, so a completion that is not the last must end aligned to it. */
#define TLPB_MIN_RCB_BYTES 64u

void tlpb_tags_init(struct tlpb_tag_table *tags, unsigned tag_count)
{
    memset(tags, 0, sizeof(*tags));
    if (tag_count == 0)
        tag_count = 1;
    if (tag_count > TLPB_TAGS_MAX)
        tag_count = TLPB_TAGS_MAX;
    tags->tag_count = tag_count;
}

int tlpb_tags_alloc(struct tlpb_tag_table *tags, uint64_t address, uint32_t length_bytes,
                    uint8_t *buffer, uint64_t deadline_ns, void *context)
{
    if (length_bytes > TLPB_UNSPLIT_MAX_BYTES ||
        (length_bytes > 0 && address > UINT64_MAX - (length_bytes - 1u)))
        return -EINVAL;
    if (tags->in_use >= tags->tag_count)
        return -EAGAIN;

    /* Round-robin from the hint, so a tag just freed is not handed out
     * again at once and a late completion for it stays detectable. */
    for (unsigned i = 0; i < tags->tag_count; i++) {
        unsigned tag = (tags->next_hint + i) % tags->tag_count;
        struct tlpb_tag_slot *slot = &tags->slots[tag];
        if (slot->in_use)
            continue;
        *slot = (struct tlpb_tag_slot){
            .in_use = true,
            .address = address,
            .length_bytes = length_bytes,
            .received_bytes = 0,
            .buffer = buffer,
            .deadline_ns = deadline_ns,
            .context = context,
        };
        tags->in_use++;
        tags->next_hint = (tag + 1) % tags->tag_count;
        return (int)tag;
    }
    return -EAGAIN;
}

static void tag_free(struct tlpb_tag_table *tags, uint8_t tag)
{
    memset(&tags->slots[tag], 0, sizeof(tags->slots[tag]));
    tags->in_use--;
}

static int tag_finish(struct tlpb_tag_table *tags, uint8_t tag, enum tlpb_cpl_status status,
                      struct tlpb_tag_done *done)
{
    struct tlpb_tag_slot *slot = &tags->slots[tag];
    done->tag = tag;
    done->status = status;
    done->context = slot->context;
    done->length_bytes = slot->length_bytes;
    tag_free(tags, tag);
    return 1;
}

static int complete_fail(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return -EINVAL;
}

/* The completion for a zero-length read: PCIe's CplD of one DW with Byte
 * Count 1, or a Cpl (some completers send no data when there is none). */
static int complete_zero_length(struct tlpb_tag_table *tags, const struct tlpb_tlp *cpl,
                                struct tlpb_tag_done *done, const char **reason)
{
    const struct tlpb_tag_slot *slot = &tags->slots[cpl->tag];

    if (cpl->kind == TLPB_TLP_CPLD) {
        if (cpl->byte_count != 1)
            return complete_fail(reason, "byte count inconsistent with a zero-length read");
        if (cpl->length_dw != 1)
            return complete_fail(reason, "completion carries more data than requested");
    }
    if ((cpl->lower_address & 0x7cu) != (slot->address & 0x7cu))
        return complete_fail(reason, "lower address does not match the bytes owed");
    return tag_finish(tags, cpl->tag, cpl->poisoned ? TLPB_CPL_CA : TLPB_CPL_SC, done);
}

int tlpb_tags_complete(struct tlpb_tag_table *tags, const struct tlpb_tlp *cpl,
                       struct tlpb_tag_done *done, const char **reason)
{
    if (!tlpb_tlp_is_completion(cpl->kind))
        return complete_fail(reason, "not a completion");
    if (cpl->tag >= tags->tag_count || !tags->slots[cpl->tag].in_use)
        return complete_fail(reason, "completion for an unknown tag");

    struct tlpb_tag_slot *slot = &tags->slots[cpl->tag];

    if (cpl->status != TLPB_CPL_SC) {
        if (cpl->kind == TLPB_TLP_CPLD)
            return complete_fail(reason, "data on a non-SC completion");
        /* A failed completion ends the request whatever else it says. */
        return tag_finish(tags, cpl->tag, cpl->status, done);
    }

    if (slot->length_bytes == 0)
        return complete_zero_length(tags, cpl, done, reason);
    if (cpl->kind == TLPB_TLP_CPL)
        return complete_fail(reason, "successful completion without data for a read");

    uint32_t owed = slot->length_bytes - slot->received_bytes;
    uint64_t next_address = slot->address + slot->received_bytes;
    if (cpl->byte_count != owed)
        return complete_fail(reason, "byte count inconsistent with the bytes owed");
    if (cpl->lower_address != (next_address & 0x7fu))
        return complete_fail(reason, "lower address does not match the bytes owed");
    if (cpl->length_dw == 0)
        return complete_fail(reason, "CplD without data");

    uint64_t span_bytes = (uint64_t)cpl->length_dw * 4u;
    if (cpl->payload_bytes < span_bytes || !cpl->payload)
        return complete_fail(reason, "CplD payload shorter than its length");

    /* The payload starts at the first DW of the data, the first byte at
     * lower_address & 3 in it. */
    uint32_t offset = cpl->lower_address & 3u;
    uint64_t carried = span_bytes - offset;
    bool last = carried >= owed;
    if (last) {
        /* The last completion ends in its last DW. */
        if (carried - owed >= 4u)
            return complete_fail(reason, "completion carries more data than requested");
        carried = owed;
    } else if ((next_address + carried) % TLPB_MIN_RCB_BYTES != 0) {
        return complete_fail(reason, "completion does not end on a read completion boundary");
    }

    /* Poisoned data must not be used as good data: the request fails. */
    if (cpl->poisoned)
        return tag_finish(tags, cpl->tag, TLPB_CPL_CA, done);

    if (slot->buffer)
        memcpy(slot->buffer + slot->received_bytes, cpl->payload + offset, (size_t)carried);
    slot->received_bytes += (uint32_t)carried;
    if (last)
        return tag_finish(tags, cpl->tag, TLPB_CPL_SC, done);
    return 0;
}

unsigned tlpb_tags_expire(struct tlpb_tag_table *tags, uint64_t now_ns,
                          void (*expired)(const struct tlpb_tag_done *done, void *arg),
                          void *arg)
{
    unsigned count = 0;

    for (unsigned tag = 0; tag < tags->tag_count; tag++) {
        struct tlpb_tag_slot *slot = &tags->slots[tag];
        if (!slot->in_use || slot->deadline_ns > now_ns)
            continue;
        struct tlpb_tag_done done;
        /* Free before the callback so it may allocate again. */
        tag_finish(tags, (uint8_t)tag, TLPB_CPL_CA, &done);
        count++;
        if (expired)
            expired(&done, arg);
    }
    return count;
}

void tlpb_tags_release(struct tlpb_tag_table *tags, uint8_t tag)
{
    if (tag < tags->tag_count && tags->slots[tag].in_use)
        tag_free(tags, tag);
}

uint64_t tlpb_tags_next_deadline(const struct tlpb_tag_table *tags)
{
    uint64_t earliest = UINT64_MAX;

    for (unsigned tag = 0; tag < tags->tag_count; tag++) {
        const struct tlpb_tag_slot *slot = &tags->slots[tag];
        if (slot->in_use && slot->deadline_ns < earliest)
            earliest = slot->deadline_ns;
    }
    return earliest;
}

/* hlsim SDK: memory requests from the host. A request is decoded to a BAR,
 * then handled one DW at a time: the MSI-X table and PBA are answered here
 * (tlpb/msix.h), every other DW goes to the model as naturally aligned
 * 1/2/4-byte accesses covering exactly the enabled bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sdk_internal.h"

/* ---- access latency ---------------------------------------------------------- */

static void arm_latency_timer(hlsim_device *dev)
{
    struct hlsim_delayed_cpl *d = TAILQ_FIRST(&dev->delayed_cpls);
    if (!d || !dev->latency_timer)
        return;
    uint64_t now = sdk_now(dev);
    dev->env_ops->timer_start(dev->latency_timer, d->due_ns > now ? d->due_ns - now : 0);
}

static void latency_timer_fire(void *arg)
{
    hlsim_device *dev = arg;
    struct hlsim_delayed_cpl *d;
    uint64_t now = sdk_now(dev);

    while ((d = TAILQ_FIRST(&dev->delayed_cpls)) != NULL && d->due_ns <= now) {
        TAILQ_REMOVE(&dev->delayed_cpls, d, link);
        upstream_send_completion(dev, &d->tlp);
        free(d);
    }
    arm_latency_timer(dev);
}

void mmio_init(hlsim_device *dev)
{
    TAILQ_INIT(&dev->delayed_cpls);
    if (dev->env_ops->timer_create)
        dev->latency_timer = dev->env_ops->timer_create(dev->env, latency_timer_fire, dev);
}

void mmio_fini(hlsim_device *dev)
{
    struct hlsim_delayed_cpl *d;

    while ((d = TAILQ_FIRST(&dev->delayed_cpls)) != NULL) {
        TAILQ_REMOVE(&dev->delayed_cpls, d, link);
        free(d);
    }
    if (dev->latency_timer) {
        dev->env_ops->timer_stop(dev->latency_timer);
        dev->env_ops->timer_destroy(dev->latency_timer);
        dev->latency_timer = NULL;
    }
}

/* A completion to a host memory read: after the model's access latency
 * when the clock is coupled, at once otherwise. Latencies are equal, so the
 * list stays in due order. */
static void read_completion(hlsim_device *dev, const struct tlpb_tlp *cpl)
{
    if (!dev->time_coupled || dev->access_latency_ns == 0 || !dev->latency_timer) {
        upstream_send_completion(dev, cpl);
        return;
    }
    struct hlsim_delayed_cpl *d = malloc(sizeof(*d) + cpl->payload_bytes);
    if (!d) {
        upstream_send_completion(dev, cpl); /* early rather than never */
        return;
    }
    d->due_ns = sdk_now(dev) + dev->access_latency_ns;
    d->tlp = *cpl;
    if (cpl->payload_bytes && cpl->payload)
        memcpy(d->payload, cpl->payload, cpl->payload_bytes);
    d->tlp.payload = cpl->payload_bytes ? d->payload : NULL;
    bool was_empty = TAILQ_EMPTY(&dev->delayed_cpls);
    TAILQ_INSERT_TAIL(&dev->delayed_cpls, d, link);
    if (was_empty)
        arm_latency_timer(dev);
}

void hlsim_set_access_latency_ns(hlsim_device *dev, uint64_t latency_ns)
{
    dev->access_latency_ns = latency_ns;
}

/* ---- requests ---------------------------------------------------------------- */

static uint32_t model_read_dw(hlsim_device *dev, unsigned bar, uint64_t dw_offset, uint8_t be)
{
    uint32_t value = 0;

    for (unsigned i = 0; i < 4;) {
        if (!(be & (1u << i))) {
            i++;
            continue;
        }
        unsigned size = 1;
        if (i == 0 && be == 0xF)
            size = 4;
        else if ((i & 1) == 0 && (be & (1u << (i + 1))))
            size = 2;
        uint32_t part;
        SDK_CALL_MODEL(dev, "mmio_read",
                       part = dev->ops->mmio_read(dev->model, bar, dw_offset + i, size));
        if (size < 4)
            part &= (1u << (8 * size)) - 1;
        value |= part << (8 * i);
        i += size;
    }
    return value;
}

static void model_write_dw(hlsim_device *dev, unsigned bar, uint64_t dw_offset, uint32_t value,
                           uint8_t be)
{
    for (unsigned i = 0; i < 4;) {
        if (!(be & (1u << i))) {
            i++;
            continue;
        }
        unsigned size = 1;
        if (i == 0 && be == 0xF)
            size = 4;
        else if ((i & 1) == 0 && (be & (1u << (i + 1))))
            size = 2;
        uint32_t part = value >> (8 * i);
        if (size < 4)
            part &= (1u << (8 * size)) - 1;
        SDK_CALL_MODEL(dev, "mmio_write",
                       dev->ops->mmio_write(dev->model, bar, dw_offset + i, part, size));
        i += size;
    }
}

static uint32_t read_dw(hlsim_device *dev, unsigned bar, uint64_t dw_offset, uint8_t be)
{
    if (tlpb_msix_hit(&dev->msix, bar, dw_offset))
        return tlpb_msix_read_dw(&dev->msix, bar, dw_offset);
    if (be == 0)
        return 0;
    return model_read_dw(dev, bar, dw_offset, be);
}

static void write_dw(hlsim_device *dev, unsigned bar, uint64_t dw_offset, uint32_t value,
                     uint8_t be)
{
    if (be == 0)
        return;
    if (tlpb_msix_hit(&dev->msix, bar, dw_offset)) {
        tlpb_msix_write_dw(&dev->msix, bar, dw_offset, value, be);
        return;
    }
    model_write_dw(dev, bar, dw_offset, value, be);
}

static void unsupported_request(hlsim_device *dev, const struct tlpb_tlp *tlp, const char *why)
{
    struct tlpb_tlp cpl;

    hlsim_log(dev, HLSIM_LOG_WARN, "MRd of %u DW at %#llx: %s, completing with UR",
              tlp->length_dw, (unsigned long long)tlp->address, why);
    tlpb_completion_error_for(&cpl, tlp, sdk_bdf(dev), TLPB_CPL_UR);
    upstream_send_completion(dev, &cpl);
}

static void memory_read(hlsim_device *dev, const struct tlpb_tlp *tlp)
{
    uint8_t data[TLPB_MAX_PAYLOAD_DW * 4];
    uint64_t offset;

    /* Host reads never exceed 4 KiB, even in fast mode. */
    if (tlp->length_dw == 0 || tlp->length_dw > TLPB_MAX_PAYLOAD_DW) {
        unsupported_request(dev, tlp, "bad length");
        return;
    }
    int bar = tlpb_cfg_decode_request(&dev->cfg, tlp, &offset);
    if (bar < 0) {
        unsupported_request(dev, tlp, "no BAR decodes it");
        return;
    }

    uint32_t request_bytes = tlpb_tlp_request_bytes(tlp);
    if (request_bytes > 0) {
        for (uint32_t i = 0; i < tlp->length_dw; i++) {
            uint32_t value = read_dw(dev, (unsigned)bar, offset + 4ull * i,
                                     tlpb_tlp_dw_byte_enables(tlp, i));
            tlpb_put_le32(&data[4 * i], value);
        }
    } else {
        memset(data, 0, 4); /* zero-length read: the DW's contents are undefined */
    }

    if (request_bytes == 0) {
        /* zero-length read: one DW with byte count 1 */
        struct tlpb_tlp cpl;
        tlpb_completion_for(&cpl, tlp, sdk_bdf(dev), tlp->address, 0, 0);
        cpl.payload = data;
        read_completion(dev, &cpl);
        return;
    }
    /* Completions split at MPS, non-final ones ending on RCB boundaries. */
    uint64_t addr = tlpb_tlp_first_byte_address(tlp);
    uint32_t remaining = request_bytes;
    uint32_t max_payload = tlpb_cfg_max_payload_bytes(&dev->cfg);
    while (remaining > 0) {
        struct tlpb_tlp cpl;
        uint32_t chunk = tlpb_split_completion_bytes(addr, remaining, max_payload,
                                                     HLSIM_RCB_BYTES);
        if (chunk == 0 || chunk > remaining)
            chunk = remaining; /* never loop forever on a helper's bad answer */
        if ((addr & 3) + chunk > max_payload) {
            /* MPS limits the DW length: an unaligned start can push a chunk
             * of max_payload bytes into one DW more; stop at the last RCB
             * boundary within the limit instead (not the last completion). */
            uint64_t end = ((addr & ~3ull) + max_payload) & ~(uint64_t)(HLSIM_RCB_BYTES - 1);
            chunk = (uint32_t)(end - addr);
        }
        tlpb_completion_for(&cpl, tlp, sdk_bdf(dev), addr, chunk, remaining);
        cpl.payload = &data[(addr & ~3ull) - tlp->address];
        read_completion(dev, &cpl);
        addr += chunk;
        remaining -= chunk;
    }
}

static void memory_write(hlsim_device *dev, const struct tlpb_tlp *tlp)
{
    uint64_t offset;

    if (tlp->poisoned) {
        /* PCIe: poisoned write data must not be used */
        hlsim_log(dev, HLSIM_LOG_WARN, "poisoned MWr at %#llx dropped",
                  (unsigned long long)tlp->address);
        return;
    }
    if (tlp->length_dw == 0 || !tlp->payload ||
        tlp->payload_bytes / 4 < tlp->length_dw) {
        hlsim_log(dev, HLSIM_LOG_WARN, "malformed MWr at %#llx dropped",
                  (unsigned long long)tlp->address);
        return;
    }
    int bar = tlpb_cfg_decode_request(&dev->cfg, tlp, &offset);
    if (bar < 0) {
        hlsim_log(dev, HLSIM_LOG_WARN, "MWr of %u DW at %#llx: no BAR decodes it, dropped",
                  tlp->length_dw, (unsigned long long)tlp->address);
        return;
    }
    for (uint32_t i = 0; i < tlp->length_dw; i++)
        write_dw(dev, (unsigned)bar, offset + 4ull * i, tlpb_get_le32(&tlp->payload[4 * i]),
                 tlpb_tlp_dw_byte_enables(tlp, i));
}

void mmio_receive_request(hlsim_device *dev, const struct tlpb_tlp *tlp)
{
    if (tlp->kind == TLPB_TLP_MRD)
        memory_read(dev, tlp);
    else
        memory_write(dev, tlp);
}

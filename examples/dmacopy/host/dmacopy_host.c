#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dmacopy_host.h"
#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"
#include "tlpb/wire.h"

#define BAR0_ADDRESS 0xFE000000u
#define BAR2_ADDRESS 0xFE001000u

static int ram_read(void *opaque, uint64_t addr, void *buf, uint32_t len)
{
    struct dmacopy_host *dc = opaque;
    if (addr < dc->ram_base || addr - dc->ram_base > dc->ram_bytes ||
        len > dc->ram_bytes - (addr - dc->ram_base))
        return 1; /* UR: not guest memory */
    memcpy(buf, dc->ram + (addr - dc->ram_base), len);
    return 0;
}

static int ram_write(void *opaque, uint64_t addr, const void *buf, uint32_t len)
{
    struct dmacopy_host *dc = opaque;
    if (addr < dc->ram_base || addr - dc->ram_base > dc->ram_bytes ||
        len > dc->ram_bytes - (addr - dc->ram_base))
        return 1;
    memcpy(dc->ram + (addr - dc->ram_base), buf, len);
    return 0;
}

static void on_interrupt(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector)
{
    struct dmacopy_host *dc = opaque;
    if (kind == TLPB_HOST_IRQ_MSIX && vector < 2)
        dc->msix_count[vector]++;
    else if (kind == TLPB_HOST_IRQ_INTX_ASSERT) {
        dc->intx_asserted = true;
        dc->intx_assertions++;
    } else if (kind == TLPB_HOST_IRQ_INTX_DEASSERT)
        dc->intx_asserted = false;
}

uint32_t dmacopy_read32(struct dmacopy_host *dc, uint32_t reg)
{
    uint8_t b[4] = {0};
    tlpb_host_mem_read(dc->host, 0, dc->bar0 + reg, b, 4);
    return tlpb_get_le32(b);
}

void dmacopy_write32(struct dmacopy_host *dc, uint32_t reg, uint32_t value)
{
    uint8_t b[4];
    tlpb_put_le32(b, value);
    tlpb_host_mem_write(dc->host, 0, dc->bar0 + reg, b, 4);
}

static int find_capability(struct tlpb_host *h, uint8_t id)
{
    uint32_t v;
    tlpb_host_config_read(h, 0x34, &v);
    unsigned ptr = v & 0xFC;
    for (int hops = 0; ptr && hops < 48; hops++) {
        tlpb_host_config_read(h, (uint16_t)ptr, &v);
        if ((v & 0xFF) == id)
            return (int)ptr;
        ptr = (v >> 8) & 0xFC;
    }
    return -1;
}

static unsigned size_code(uint32_t bytes)
{
    unsigned code = 0;
    while ((128u << code) < bytes && code < 5)
        code++;
    return code;
}

int dmacopy_host_open(struct dmacopy_host *dc, const struct dmacopy_host_options *opts, char *err,
                      size_t err_size)
{
    memset(dc, 0, sizeof(*dc));
    dc->ram_bytes = opts->ram_bytes ? opts->ram_bytes : 64u << 20;
    dc->ram_base = 0x80000000u;
    dc->ram_owned = !opts->ram;
    dc->ram = opts->ram ? opts->ram : calloc(1, dc->ram_bytes);
    dc->ring_size = opts->ring_size ? opts->ring_size : 256;
    if (!dc->ram) {
        snprintf(err, err_size, "out of memory for guest RAM");
        return -1;
    }
    struct tlpb_host_config cfg = {
        .address = opts->socket,
        .device_name = opts->device,
        .offer_unsplit_dma = opts->offer_unsplit_dma,
        .ring_policy = opts->ring_policy,
        .ring_spin_us = opts->ring_spin_us,
    };
    struct tlpb_host_ops ops = {.dma_read = ram_read, .dma_write = ram_write, .interrupt = on_interrupt};
    if (tlpb_host_open(&dc->host, &cfg, &ops, dc, err, err_size) != 0)
        return -1;
    if (!tlpb_host_connected(dc->host)) {
        snprintf(err, err_size, "bridge not reachable at %s", opts->socket);
        return -1;
    }
    struct tlpb_host *h = dc->host;
    uint32_t id = 0;
    tlpb_host_config_read(h, 0x00, &id);
    if (id != 0x7a111234u) {
        snprintf(err, err_size, "config space ID is %08x, expected 7a111234", id);
        return -1;
    }
    dc->bar0 = BAR0_ADDRESS;
    dc->bar2 = BAR2_ADDRESS;
    tlpb_host_config_write(h, 0x10, (uint32_t)dc->bar0, 0xF);
    tlpb_host_config_write(h, 0x18, (uint32_t)dc->bar2, 0xF);
    int pcie = find_capability(h, 0x10);
    if (pcie < 0) {
        snprintf(err, err_size, "no PCI Express capability");
        return -1;
    }
    uint32_t mps = opts->max_payload ? opts->max_payload : 128;
    uint32_t mrrs = opts->max_read_request ? opts->max_read_request : 512;
    uint32_t devctl = size_code(mps) << 5 | size_code(mrrs) << 12 | 1u << 8 /* extended tags */;
    tlpb_host_config_write(h, (uint16_t)(pcie + 8), devctl, 0x3);
    tlpb_host_config_write(h, 0x04, 0x0006 | (opts->use_intx ? 0 : 0x400), 0x3);
    if (!opts->use_intx) {
        int msix = find_capability(h, 0x11);
        if (msix < 0) {
            snprintf(err, err_size, "no MSI-X capability");
            return -1;
        }
        tlpb_host_config_write(h, (uint16_t)msix, 0x8000u << 16, 0xC);
        for (unsigned v = 0; v < 2; v++) {
            uint32_t unmasked = 0;
            tlpb_host_mem_write(h, 2, dc->bar2 + v * 16 + 12, &unmasked, 4);
        }
    }
    if (dmacopy_read32(dc, DMACOPY_REG_ID) != DMACOPY_ID_VALUE) {
        snprintf(err, err_size, "ID register reads %08x", dmacopy_read32(dc, DMACOPY_REG_ID));
        return -1;
    }
    dmacopy_write32(dc, DMACOPY_REG_CTRL, DMACOPY_CTRL_RESET);
    dc->ring_bus = dc->ram_base; /* ring at the start of RAM, 64-byte aligned */
    dmacopy_write32(dc, DMACOPY_REG_RING_LO, (uint32_t)dc->ring_bus);
    dmacopy_write32(dc, DMACOPY_REG_RING_HI, (uint32_t)(dc->ring_bus >> 32));
    dmacopy_write32(dc, DMACOPY_REG_RING_SIZE, dc->ring_size);
    dmacopy_write32(dc, DMACOPY_REG_CTRL, DMACOPY_CTRL_ENABLE);
    dc->tail = 0;
    return 0;
}

void dmacopy_host_close(struct dmacopy_host *dc)
{
    tlpb_host_close(dc->host);
    if (dc->ram_owned)
        free(dc->ram);
    memset(dc, 0, sizeof(*dc));
}

uint32_t dmacopy_post(struct dmacopy_host *dc, uint64_t src, uint64_t dst, uint32_t len, bool irq)
{
    uint32_t index = dc->tail;
    uint8_t *d = dc->ram + (dc->ring_bus - dc->ram_base) + (uint64_t)index * DMACOPY_DESC_BYTES;
    tlpb_put_le64(d + DMACOPY_DESC_SRC, src);
    tlpb_put_le64(d + DMACOPY_DESC_DST, dst);
    tlpb_put_le32(d + DMACOPY_DESC_LEN, len);
    tlpb_put_le32(d + DMACOPY_DESC_FLAGS, irq ? DMACOPY_DESC_FLAG_IRQ : 0u);
    tlpb_put_le32(d + DMACOPY_DESC_STATUS, 0);
    tlpb_put_le32(d + DMACOPY_DESC_CRC, 0);
    dc->tail = (dc->tail + 1) % dc->ring_size;
    return index;
}

void dmacopy_ring_doorbell(struct dmacopy_host *dc)
{
    dmacopy_write32(dc, DMACOPY_REG_TAIL, dc->tail);
    tlpb_host_flush(dc->host);
}

static const uint8_t *desc_at(const struct dmacopy_host *dc, uint32_t index)
{
    return dc->ram + (dc->ring_bus - dc->ram_base) + (uint64_t)index * DMACOPY_DESC_BYTES;
}

uint32_t dmacopy_desc_status(const struct dmacopy_host *dc, uint32_t index)
{
    return tlpb_get_le32(desc_at(dc, index) + DMACOPY_DESC_STATUS);
}

uint32_t dmacopy_desc_crc(const struct dmacopy_host *dc, uint32_t index)
{
    return tlpb_get_le32(desc_at(dc, index) + DMACOPY_DESC_CRC);
}

struct wait_target {
    uint32_t desc_index;  /* for desc_done */
    unsigned msix_vector; /* for msix_reached */
    uint64_t msix_count;
};

static bool desc_done(const struct dmacopy_host *dc, const struct wait_target *t)
{
    return (dmacopy_desc_status(dc, t->desc_index) & DMACOPY_DESC_DONE) != 0;
}

static bool msix_reached(const struct dmacopy_host *dc, const struct wait_target *t)
{
    return dc->msix_count[t->msix_vector] >= t->msix_count;
}

/* Serve the device until reached() holds or timeout_ms passes. */
static int serve_until(struct dmacopy_host *dc,
                       bool (*reached)(const struct dmacopy_host *, const struct wait_target *),
                       const struct wait_target *t, int timeout_ms)
{
    uint64_t deadline = tlpb_now_ns() + (uint64_t)timeout_ms * 1000000u;
    /* With guest memory shared, the device's writes land in memory without
     * a message to this host, as in a guest: poll memory as a CPU would,
     * serving the bridge between looks, instead of sleeping on messages
     * that may never come. */
    struct tlpb_host_stats st;
    tlpb_host_get_stats(dc->host, &st);
    bool shared = st.guest_memory_shared;
    while (!reached(dc, t)) {
        uint64_t now = tlpb_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        int wait_ms = shared ? 0 : (int)((deadline - now) / 1000000u) + 1;
        if (tlpb_host_wait(dc->host, wait_ms) < 0)
            return -ENOTCONN;
    }
    return 0;
}

int dmacopy_wait_done(struct dmacopy_host *dc, uint32_t index, int timeout_ms)
{
    struct wait_target t = {.desc_index = index};
    return serve_until(dc, desc_done, &t, timeout_ms);
}

int dmacopy_wait_msix(struct dmacopy_host *dc, unsigned vector, uint64_t target, int timeout_ms)
{
    struct wait_target t = {.msix_vector = vector, .msix_count = target};
    return serve_until(dc, msix_reached, &t, timeout_ms);
}

int dmacopy_copy_stream(struct dmacopy_host *dc, uint32_t len, unsigned buffers, unsigned depth,
                        uint64_t copies, double *seconds, char *err, size_t err_size)
{
    uint64_t src_base = dc->ram_base + (1u << 20);
    uint64_t dst_base = src_base + (uint64_t)buffers * len;
    if (buffers == 0 || depth == 0 || dst_base + (uint64_t)buffers * len > dc->ram_base + dc->ram_bytes) {
        snprintf(err, err_size, "%u buffers of %u bytes do not fit guest memory", buffers, len);
        return -1;
    }
    uint8_t *src = dc->ram + (src_base - dc->ram_base);
    uint8_t *dst = dc->ram + (dst_base - dc->ram_base);
    uint32_t *expect = calloc(buffers, sizeof(*expect));
    if (!expect) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    for (unsigned b = 0; b < buffers; b++) {
        uint8_t *s = src + (uint64_t)b * len;
        for (uint32_t i = 0; i < len; i++)
            s[i] = (uint8_t)(i * 7u + b * 13u);
        expect[b] = (uint32_t)crc32(0L, s, len);
    }
    int rc = 0;
    uint64_t posted = 0, done = 0;
    uint32_t first_index = dc->tail;
    uint64_t t0 = tlpb_now_ns();
    while (done < copies) {
        unsigned batch = 0;
        while (posted < copies && posted - done < depth) {
            unsigned b = (unsigned)(posted % buffers);
            dmacopy_post(dc, src_base + (uint64_t)b * len, dst_base + (uint64_t)b * len, len, false);
            posted++;
            batch++;
        }
        if (batch)
            dmacopy_ring_doorbell(dc);
        uint32_t idx = (uint32_t)((first_index + done) % dc->ring_size);
        if (dmacopy_wait_done(dc, idx, 60000) != 0) {
            snprintf(err, err_size, "DMA copy %llu did not complete", (unsigned long long)done);
            rc = -1;
            break;
        }
        if (dmacopy_desc_status(dc, idx) != DMACOPY_DESC_DONE ||
            dmacopy_desc_crc(dc, idx) != expect[done % buffers]) {
            snprintf(err, err_size, "DMA copy %llu reported an error or a wrong CRC",
                     (unsigned long long)done);
            rc = -1;
            break;
        }
        done++;
    }
    *seconds = (double)(tlpb_now_ns() - t0) / 1e9;
    for (unsigned b = 0; rc == 0 && b < buffers && b < copies; b++) {
        if (memcmp(src + (uint64_t)b * len, dst + (uint64_t)b * len, len) != 0) {
            snprintf(err, err_size, "DMA copy data mismatch in buffer %u", b);
            rc = -1;
        }
    }
    free(expect);
    return rc;
}

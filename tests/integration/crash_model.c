/* A misbehaving model for the bridge's tests. A register read dereferences
 * a bad pointer (the bridge must name the model and the callback before it
 * dies); a register write starts a 4-byte DMA read from the address written
 * (work the SDK finishes from the event loop). Built without sanitizers so
 * the fault is a plain SIGSEGV. */
#include <stdint.h>
#include <stdlib.h>

#include "hlsim.h"

struct crash_model {
    hlsim_device *dev;
    uint32_t scratch;
    uint8_t dma_buffer[4];
};

static void *crash_create(hlsim_device *dev, const char *args, char *err, size_t err_size)
{
    struct crash_model *m = calloc(1, sizeof(*m));
    if (m)
        m->dev = dev;
    return m;
}

static void crash_destroy(void *model)
{
    free(model);
}

static void crash_reset(void *model, enum hlsim_reset_kind kind)
{
    struct crash_model *m = model;
    m->scratch = 0;
}

static uint32_t crash_mmio_read(void *model, unsigned bar, uint64_t offset, unsigned size)
{
    /* Read through a volatile address: the compiler cannot prove the fault
     * (-Warray-bounds at -O3) nor drop it. */
    static volatile uintptr_t unmapped_address = 0x10;
    volatile uint32_t *unmapped = (volatile uint32_t *)unmapped_address;
    return *unmapped;
}

static void dma_done(void *arg, enum hlsim_dma_status status)
{
    struct crash_model *m = arg;
    m->scratch = status == HLSIM_DMA_OK ? 1 : 2;
}

static void crash_mmio_write(void *model, unsigned bar, uint64_t offset, uint32_t value,
                             unsigned size)
{
    struct crash_model *m = model;
    m->scratch = 0;
    if (hlsim_dma_read(m->dev, value, m->dma_buffer, sizeof(m->dma_buffer), dma_done, m) != 0)
        m->scratch = 3;
}

const struct hlsim_model_ops hlsim_model = {
    .abi_version = HLSIM_ABI_VERSION,
    .name = "crash",
    .description =
        {
            .vendor_id = 0x1234,
            .device_id = 0x0bad,
            .class_code = 0xff0000,
            .bars = {[0] = {.size_bytes = 4096}},
            .intx_pin = 1,
            .max_payload_supported_bytes = 128,
        },
    .create = crash_create,
    .destroy = crash_destroy,
    .reset = crash_reset,
    .mmio_read = crash_mmio_read,
    .mmio_write = crash_mmio_write,
};

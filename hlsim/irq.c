/* hlsim SDK: interrupts. The host owns the MSI-X table and PBA (as QEMU
 * does): it applies vector and function masking and keeps the pending bits,
 * so a vector goes out whenever MSI-X is enabled in config space. Should a
 * host forward table or PBA accesses anyway, they are answered here (entries
 * read back, PBA reads 0) and never reach the model. MSI is minimal, and the
 * INTx line is tracked so the host only hears about level changes it is
 * allowed to see. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sdk_internal.h"

#define IRQ_KIND_MSIX 1
#define IRQ_KIND_MSI 2
#define IRQ_KIND_INTX_ASSERT 3
#define IRQ_KIND_INTX_DEASSERT 4

#define MSIX_ENTRY_BYTES 16u
#define MSIX_CTRL_MASKED 0x1u
#define MSI_FLAGS_QSIZE_SHIFT 4

int irq_init(hlsim_device *dev)
{
    unsigned n = dev->cfg.desc.msix_vectors;

    dev->msix_vectors = n;
    if (n == 0)
        return 0;
    dev->msix_table = calloc(n, sizeof(*dev->msix_table));
    if (!dev->msix_table) {
        irq_fini(dev);
        return -ENOMEM;
    }
    irq_reset(dev);
    return 0;
}

void irq_fini(hlsim_device *dev)
{
    free(dev->msix_table);
    dev->msix_table = NULL;
    dev->msix_vectors = 0;
}

static bool intx_wire_level(const hlsim_device *dev)
{
    /* A function with MSI or MSI-X enabled must not use INTx. */
    return dev->intx_level && !tlpb_cfg_intx_disabled(&dev->cfg) &&
           !tlpb_cfg_msix_enabled(&dev->cfg) && !tlpb_cfg_msi_enabled(&dev->cfg);
}

static void intx_update_wire(hlsim_device *dev)
{
    bool level = intx_wire_level(dev);

    if (level == dev->intx_wire || dev->cfg.desc.intx_pin == 0)
        return;
    dev->intx_wire = level;
    dma_queue_interrupt(dev, level ? IRQ_KIND_INTX_ASSERT : IRQ_KIND_INTX_DEASSERT,
                        dev->cfg.desc.intx_pin - 1u);
}

void irq_reset(hlsim_device *dev)
{
    /* The line goes low with the reset; tell the host if it was high. */
    dev->intx_level = false;
    tlpb_cfg_set_interrupt_status(&dev->cfg, false);
    intx_update_wire(dev);
    for (unsigned v = 0; v < dev->msix_vectors; v++) {
        memset(dev->msix_table[v], 0, sizeof(dev->msix_table[v]));
        dev->msix_table[v][3] = MSIX_CTRL_MASKED; /* vectors come out of reset masked */
    }
}

void irq_config_changed(hlsim_device *dev, unsigned changes)
{
    if (changes & (TLPB_CFG_CHANGED_COMMAND | TLPB_CFG_CHANGED_MSIX | TLPB_CFG_CHANGED_MSI))
        intx_update_wire(dev);
}

/* ---- MSI-X table and PBA in BAR space ----------------------------------- */

bool irq_msix_table_hit(const hlsim_device *dev, unsigned bar, uint64_t offset)
{
    const struct tlpb_devdesc *d = &dev->cfg.desc;

    return dev->msix_vectors > 0 && bar == d->msix_table_bar &&
           offset >= d->msix_table_offset &&
           offset - d->msix_table_offset < (uint64_t)dev->msix_vectors * MSIX_ENTRY_BYTES;
}

bool irq_msix_pba_hit(const hlsim_device *dev, unsigned bar, uint64_t offset)
{
    const struct tlpb_devdesc *d = &dev->cfg.desc;
    uint64_t pba_bytes = (dev->msix_vectors + 63u) / 64u * 8u;

    return dev->msix_vectors > 0 && bar == d->msix_pba_bar && offset >= d->msix_pba_offset &&
           offset - d->msix_pba_offset < pba_bytes;
}

uint32_t irq_msix_read(hlsim_device *dev, unsigned bar, uint64_t dw_offset)
{
    const struct tlpb_devdesc *d = &dev->cfg.desc;

    if (!irq_msix_table_hit(dev, bar, dw_offset))
        return 0; /* PBA: nothing is ever pending on this side */
    uint64_t rel = dw_offset - d->msix_table_offset;
    return dev->msix_table[rel / MSIX_ENTRY_BYTES][(rel % MSIX_ENTRY_BYTES) / 4];
}

void irq_msix_write(hlsim_device *dev, unsigned bar, uint64_t dw_offset, uint32_t value,
                    uint8_t be)
{
    const struct tlpb_devdesc *d = &dev->cfg.desc;

    if (!irq_msix_table_hit(dev, bar, dw_offset))
        return; /* the PBA is read-only */
    uint64_t rel = dw_offset - d->msix_table_offset;
    unsigned v = (unsigned)(rel / MSIX_ENTRY_BYTES);
    unsigned word = (unsigned)(rel % MSIX_ENTRY_BYTES) / 4;
    /* address is DW aligned; only the mask bit of vector control is writable */
    static const uint32_t writable[4] = {0xFFFFFFFCu, 0xFFFFFFFFu, 0xFFFFFFFFu, MSIX_CTRL_MASKED};
    uint32_t lanes = 0;
    for (unsigned i = 0; i < 4; i++)
        if (be & (1u << i))
            lanes |= 0xFFu << (8 * i);
    uint32_t mask = writable[word] & lanes;
    uint32_t *entry = &dev->msix_table[v][word];
    *entry = (*entry & ~mask) | (value & mask);
}

/* ---- calls for models ----------------------------------------------------- */

int hlsim_msix_notify(hlsim_device *dev, unsigned vector)
{
    if (vector >= dev->msix_vectors)
        return -EINVAL;
    if (!tlpb_cfg_msix_enabled(&dev->cfg))
        return -ENODEV;
    /* The host owns the MSI-X table and PBA (hlsim.h, tlpbridge.proto): it
     * applies vector masking, and table writes never reach the device, so
     * the copy here must not hold the vector back. */
    dma_queue_interrupt(dev, IRQ_KIND_MSIX, vector);
    return 0;
}

int hlsim_msi_notify(hlsim_device *dev, unsigned vector)
{
    if (!tlpb_cfg_msi_enabled(&dev->cfg))
        return -ENODEV;
    uint32_t flags = tlpb_cfgspace_read(&dev->cfg, TLPB_CFG_MSI_CAP) >> 16;
    unsigned enabled = 1u << ((flags >> MSI_FLAGS_QSIZE_SHIFT) & 0x7);
    if (vector >= enabled || vector >= dev->cfg.desc.msi_vectors)
        return -EINVAL;
    dma_queue_interrupt(dev, IRQ_KIND_MSI, vector);
    return 0;
}

void hlsim_intx_set(hlsim_device *dev, bool asserted)
{
    dev->intx_level = asserted;
    tlpb_cfg_set_interrupt_status(&dev->cfg, asserted);
    intx_update_wire(dev);
}

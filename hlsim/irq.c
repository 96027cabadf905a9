/* hlsim SDK: interrupts. The host owns the MSI-X table and PBA (as QEMU
 * does): it applies vector and function masking and keeps the pending bits,
 * so a vector goes out whenever MSI-X is enabled in config space. Should a
 * host forward table or PBA accesses anyway, they are answered by the shared
 * emulation (tlpb/msix.h: entries read back, nothing pends on this side) and
 * never reach the model. MSI is minimal, and the INTx line is tracked so the
 * host only hears about level changes it is allowed to see. */
#include <errno.h>

#include "sdk_internal.h"

#define MSI_FLAGS_QSIZE_SHIFT 4

int irq_init(hlsim_device *dev)
{
    return tlpb_msix_init(&dev->msix, &dev->cfg.desc);
}

void irq_fini(hlsim_device *dev)
{
    tlpb_msix_fini(&dev->msix);
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
    upstream_send_interrupt(dev, level ? TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT
                               : TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT,
                        dev->cfg.desc.intx_pin - 1u);
}

void irq_reset(hlsim_device *dev)
{
    /* The line goes low with the reset; tell the host if it was high. */
    dev->intx_level = false;
    tlpb_cfg_set_interrupt_status(&dev->cfg, false);
    intx_update_wire(dev);
    tlpb_msix_reset(&dev->msix);
}

void irq_config_changed(hlsim_device *dev, unsigned changes)
{
    if (changes & (TLPB_CFG_CHANGED_COMMAND | TLPB_CFG_CHANGED_MSIX | TLPB_CFG_CHANGED_MSI))
        intx_update_wire(dev);
}

/* ---- calls for models ----------------------------------------------------- */

int hlsim_msix_notify(hlsim_device *dev, unsigned vector)
{
    if (vector >= dev->msix.vectors)
        return -EINVAL;
    if (!tlpb_cfg_msix_enabled(&dev->cfg))
        return -ENODEV;
    /* The host owns the MSI-X table and PBA (hlsim.h, tlpbridge.proto): it
     * applies vector masking, and table writes never reach the device, so
     * the copy here must not hold the vector back. */
    upstream_send_interrupt(dev, TLPB__INTERRUPT_KIND__IRQ_MSIX, vector);
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
    upstream_send_interrupt(dev, TLPB__INTERRUPT_KIND__IRQ_MSI, vector);
    return 0;
}

void hlsim_intx_set(hlsim_device *dev, bool asserted)
{
    dev->intx_level = asserted;
    tlpb_cfg_set_interrupt_status(&dev->cfg, asserted);
    intx_update_wire(dev);
}

/*
 * tlpbridge-pci: PCIe endpoint whose config, MMIO, DMA and interrupts are
 * carried as PCIe TLPs over a socket to the tlpbridge daemon.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * This is the device skeleton: it realizes a PCIe endpoint with a PCI Express
 * capability, an MMIO BAR and an MSI-X BAR, and validates its properties.
 * Until it is wired to the host protocol library, it behaves like the shim
 * with no bridge reachable: reads return all-ones, writes are dropped and
 * counted, and this is logged once.
 *
 * Written against QEMU 10.0 (hw/misc/edu.c style). Porting notes:
 *  - QEMU >= 10.1: class_init takes (ObjectClass *, const void *data).
 *  - Property arrays are const and have no DEFINE_PROP_END_OF_LIST (>= 9.2).
 *
 * Usage:
 *   -device tlpbridge-pci,socket=/run/tlpbridge.sock,device=dev0
 *   -device tlpbridge-pci,socket=tcp:127.0.0.1:7700,device=dev0
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/units.h"
#include "qemu/host-utils.h"
#include "qemu/module.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "hw/pci/pci.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pcie.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "hw/resettable.h"
#include "qom/object.h"

/*
 * The build script generates tlpbridge-build.h next to this file; it says
 * whether the host protocol library (libtlpbhost) is linked in.
 */
#if defined(__has_include)
#if __has_include("tlpbridge-build.h")
#include "tlpbridge-build.h"
#endif
#endif
#ifndef TLPBRIDGE_HAVE_HOST_LIB
#define TLPBRIDGE_HAVE_HOST_LIB 0
#endif

#define TYPE_TLPBRIDGE_PCI "tlpbridge-pci"
OBJECT_DECLARE_SIMPLE_TYPE(TlpbridgePciState, TLPBRIDGE_PCI)

/* Placeholder identity until the device description comes from the bridge. */
#define TLPBRIDGE_VENDOR_ID       PCI_VENDOR_ID_QEMU
#define TLPBRIDGE_DEVICE_ID       0x7470
#define TLPBRIDGE_REVISION        0x01

#define TLPBRIDGE_MMIO_BAR        0
#define TLPBRIDGE_MSIX_BAR        2
#define TLPBRIDGE_PCIE_CAP_OFFSET 0x80

struct TlpbridgePciState {
    PCIDevice parent_obj;

    /* properties */
    char *socket;          /* unix path, "unix:PATH" or "tcp:HOST:PORT" */
    char *device;          /* device name at the bridge */
    uint64_t mmio_size;    /* BAR0 size */
    uint32_t msix_vectors; /* 0: no MSI-X */

    MemoryRegion mmio;

    /* while no bridge answers */
    uint64_t dropped_writes;
    uint64_t failed_reads;
    bool no_bridge_logged;
};

static bool tlpbridge_socket_valid(const char *s, Error **errp)
{
    const char *hostport, *colon;

    if (!s || !*s) {
        error_setg(errp, "tlpbridge-pci: property 'socket' is required "
                   "(a unix socket path, unix:PATH or tcp:HOST:PORT)");
        return false;
    }
    if (g_str_has_prefix(s, "tcp:")) {
        hostport = s + 4;
        colon = strrchr(hostport, ':');
        if (!colon || colon == hostport || !colon[1] ||
            strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
            error_setg(errp, "tlpbridge-pci: socket '%s' is not tcp:HOST:PORT",
                       s);
            return false;
        }
        return true;
    }
    if (g_str_has_prefix(s, "unix:")) {
        s += 5;
    }
    if (!*s) {
        error_setg(errp, "tlpbridge-pci: empty unix socket path");
        return false;
    }
    if (strlen(s) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
        error_setg(errp, "tlpbridge-pci: unix socket path '%s' is too long", s);
        return false;
    }
    return true;
}

static void tlpbridge_log_no_bridge(TlpbridgePciState *s)
{
    if (!s->no_bridge_logged) {
        s->no_bridge_logged = true;
        warn_report("tlpbridge-pci: no bridge connection for device '%s' "
                    "(socket %s); MMIO reads return all-ones, writes are "
                    "dropped", s->device, s->socket);
    }
}

static uint64_t tlpbridge_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    TlpbridgePciState *s = opaque;

    s->failed_reads++;
    tlpbridge_log_no_bridge(s);
    return MAKE_64BIT_MASK(0, size * 8);
}

static void tlpbridge_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                                 unsigned size)
{
    TlpbridgePciState *s = opaque;

    s->dropped_writes++;
    tlpbridge_log_no_bridge(s);
}

static const MemoryRegionOps tlpbridge_mmio_ops = {
    .read = tlpbridge_mmio_read,
    .write = tlpbridge_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
    },
};

static void tlpbridge_config_write(PCIDevice *pdev, uint32_t addr,
                                   uint32_t val, int len)
{
    /* QEMU owns config space; the bridge will be told about the write. */
    pci_default_write_config(pdev, addr, val, len);
}

static void tlpbridge_realize(PCIDevice *pdev, Error **errp)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(pdev);
    uint8_t *conf = pdev->config;
    int ret;

    if (!tlpbridge_socket_valid(s->socket, errp)) {
        return;
    }
    if (!s->device || !*s->device) {
        error_setg(errp, "tlpbridge-pci: property 'device' (the device name "
                   "at the bridge) is required");
        return;
    }
    if (s->mmio_size < 16 || !is_power_of_2(s->mmio_size)) {
        error_setg(errp, "tlpbridge-pci: mmio-size must be a power of two "
                   ">= 16, got 0x%" PRIx64, s->mmio_size);
        return;
    }
    if (s->msix_vectors > PCI_MSIX_FLAGS_QSIZE + 1) {
        error_setg(errp, "tlpbridge-pci: msix-vectors must be <= %d",
                   PCI_MSIX_FLAGS_QSIZE + 1);
        return;
    }

    pci_config_set_interrupt_pin(conf, 1);

    ret = pcie_endpoint_cap_init(pdev, TLPBRIDGE_PCIE_CAP_OFFSET);
    if (ret < 0) {
        error_setg(errp, "tlpbridge-pci: cannot add the PCI Express "
                   "capability (%d)", ret);
        return;
    }

    memory_region_init_io(&s->mmio, OBJECT(s), &tlpbridge_mmio_ops, s,
                          "tlpbridge-mmio", s->mmio_size);
    pci_register_bar(pdev, TLPBRIDGE_MMIO_BAR,
                     PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->mmio);

    if (s->msix_vectors) {
        if (msix_init_exclusive_bar(pdev, s->msix_vectors,
                                    TLPBRIDGE_MSIX_BAR, errp)) {
            pcie_cap_exit(pdev);
            return;
        }
        for (unsigned v = 0; v < s->msix_vectors; v++) {
            msix_vector_use(pdev, v);
        }
    }
}

static void tlpbridge_exit(PCIDevice *pdev)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(pdev);

    if (s->msix_vectors) {
        msix_unuse_all_vectors(pdev);
        msix_uninit_exclusive_bar(pdev);
    }
    pcie_cap_exit(pdev);
}

static void tlpbridge_reset_hold(Object *obj, ResetType type)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(obj);

    s->dropped_writes = 0;
    s->failed_reads = 0;
}

static const Property tlpbridge_properties[] = {
    DEFINE_PROP_STRING("socket", TlpbridgePciState, socket),
    DEFINE_PROP_STRING("device", TlpbridgePciState, device),
    DEFINE_PROP_UINT64("mmio-size", TlpbridgePciState, mmio_size, 1 * MiB),
    DEFINE_PROP_UINT32("msix-vectors", TlpbridgePciState, msix_vectors, 1),
};

static void tlpbridge_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    k->realize = tlpbridge_realize;
    k->exit = tlpbridge_exit;
    k->config_write = tlpbridge_config_write;
    k->vendor_id = TLPBRIDGE_VENDOR_ID;
    k->device_id = TLPBRIDGE_DEVICE_ID;
    k->revision = TLPBRIDGE_REVISION;
    k->class_id = PCI_CLASS_OTHERS;
    rc->phases.hold = tlpbridge_reset_hold;

    dc->desc = "PCIe endpoint forwarding TLPs to a tlpbridge daemon";
    dc->hotpluggable = true;
    device_class_set_props(dc, tlpbridge_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo tlpbridge_info = {
    .name          = TYPE_TLPBRIDGE_PCI,
    .parent        = TYPE_PCI_DEVICE,
    .instance_size = sizeof(TlpbridgePciState),
    .class_init    = tlpbridge_class_init,
    .interfaces    = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void tlpbridge_register_types(void)
{
    type_register_static(&tlpbridge_info);
}

type_init(tlpbridge_register_types)

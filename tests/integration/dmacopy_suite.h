/* The dmacopy test suite (docs: EXAMPLE_DEVICE.md, "What the tests must
 * cover"), driven through libtlpbhost against whatever backend the bridge
 * has for the device. Guest memory is a plain buffer at GUEST_RAM_BASE; the
 * expectations (data, CRC-32 from zlib, register values) come from the
 * device specification, never from the code under test. */
#ifndef TLPB_IT_DMACOPY_SUITE_H
#define TLPB_IT_DMACOPY_SUITE_H

#include <stdbool.h>
#include <stdint.h>

#include "tlpb_host.h"

#define GUEST_RAM_BASE 0x80000000ull
#define GUEST_RAM_BYTES (8u * 1024u * 1024u)
/* Guest memory layout (offsets from GUEST_RAM_BASE). */
#define RING_OFF 0x000000u   /* up to 4096 descriptors */
#define SRC_OFF 0x100000u    /* 1 MiB source area, plus slack */
#define DST_OFF 0x400000u    /* 1 MiB destination area, plus slack */

#define DMACOPY_BAR0_ADDR 0xFE000000u
#define DMACOPY_BAR2_ADDR 0xFE001000u

#include "../dmacopy_spec.h" /* the tests' own register map, on purpose */

enum fx_dma_expect { FX_DMA_STRICT, FX_DMA_FAST };

struct dmacopy_fixture {
    const char *device;
    struct tlpb_host *host;
    uint8_t *ram;
    int ram_fd;             /* fx_guest_memory: the memfd ram maps, else -1 */
    enum fx_dma_expect dma_mode;

    /* interrupts seen by the host callback */
    unsigned msix[2];
    unsigned msix_other;
    unsigned msi;
    bool intx_level;
    unsigned intx_asserts;
    unsigned intx_deasserts;
    int irq_watch_index;    /* descriptor whose completion interrupt is due, or -1 */
    unsigned irq_before_done; /* completion interrupts seen before its DONE landed */
    unsigned link_events;
    bool link_sim_attached;

    /* DMA requests served (a request is one callback of the host library) */
    uint64_t dma_read_requests;
    uint64_t dma_write_requests;
    uint32_t max_dma_read_bytes;
    uint32_t max_dma_write_bytes;
    uint64_t dma_crossing_4k;
    uint64_t dma_refused;
    /* called after each DMA read request is served (tests that act in the
     * middle of a transfer) */
    void (*dma_read_hook)(struct dmacopy_fixture *fx);

    /* found by enumeration */
    uint8_t pcie_cap;
    uint8_t msix_cap;
    bool msix_on;

    /* the descriptor ring */
    uint64_t ring_bus;
    unsigned ring_size;
    unsigned tail;
    uint32_t completed;     /* descriptors completed since the last reset */
};

/* The hosts' reconnect interval (default 1 ms: a test waiting for a
 * reconnect retries at once). */
extern unsigned fx_reconnect_interval_ms;
/* Where hosts connect (default: the harness's unix socket). */
extern const char *fx_bridge_address;
/* Guest RAM in a sealed memfd shared with the bridge (tlpb_host_set_guest_
 * memory): DMA in RAM is served by the bridge, not the host's callbacks;
 * the cases check the bridge's dma_shm_bytes instead. */
extern bool fx_guest_memory;
/* With fx_guest_memory: the simulator process has the map too (fast DMA,
 * CAP_GUEST_MEMORY) and copies in guest memory itself; the cases check that
 * no DMA byte went through the bridge. */
extern bool fx_sim_direct;
/* Connect a host for device (offer_unsplit: accept fast-mode DMA). Fatal if
 * the bridge does not accept it. */
void fx_open(struct dmacopy_fixture *fx, const char *device, bool offer_unsplit);
/* The same; with require_connected false a missing bridge is accepted. */
void fx_open_ex(struct dmacopy_fixture *fx, const char *device, bool offer_unsplit,
                bool require_connected);
void fx_close(struct dmacopy_fixture *fx);
/* Serve/retry until the host is connected to the bridge. */
bool fx_wait_connected(struct dmacopy_fixture *fx);
/* Serve the device until tlpb_host_simulator_attached() == want. */
bool fx_wait_attached(struct dmacopy_fixture *fx, bool want);

/* Enumeration by config reads: IDs, class, BAR sizes by the all-ones write,
 * capability walk to the PCIe and MSI-X capabilities. Checks everything
 * against the dmacopy specification. Works on the fallback too. */
void fx_enumerate(struct dmacopy_fixture *fx);
/* Program BARs, MPS 128 / MRRS 512, memory + bus master, MSI-X enabled with
 * both vectors unmasked in the table; reset the device and set up a ring. */
void fx_init_device(struct dmacopy_fixture *fx);

uint32_t fx_rd32(struct dmacopy_fixture *fx, uint32_t reg);
void fx_wr32(struct dmacopy_fixture *fx, uint32_t reg, uint32_t value);
void fx_config_write(struct dmacopy_fixture *fx, uint16_t reg, uint32_t value, uint8_t be);
uint32_t fx_config_read(struct dmacopy_fixture *fx, uint16_t reg);

/* Post one descriptor at the ring tail; the doorbell is separate. Returns
 * the descriptor index. */
unsigned fx_post(struct dmacopy_fixture *fx, uint64_t src, uint64_t dst, uint32_t len,
                 uint32_t flags);
void fx_doorbell(struct dmacopy_fixture *fx);
uint32_t fx_desc_status(struct dmacopy_fixture *fx, unsigned index);
/* Serve DMA and interrupts until the descriptor's status is nonzero. */
bool fx_wait_desc(struct dmacopy_fixture *fx, unsigned index);
/* Reset the engine (CTRL.RESET), check it came back clean, program a ring of
 * ring_size descriptors and enable it. */
void fx_reset_engine(struct dmacopy_fixture *fx, unsigned ring_size);

/* One copy of len bytes between the RAM offsets, with a completion
 * interrupt; data, CRC, status, registers and interrupt checked. */
void fx_copy(struct dmacopy_fixture *fx, uint32_t src_off, uint32_t dst_off, uint32_t len,
             const char *what);

/* Every case, in order. */
void dmacopy_suite_run(struct dmacopy_fixture *fx);

#endif

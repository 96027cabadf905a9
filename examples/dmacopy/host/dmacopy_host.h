/* A userspace driver for dmacopy over libtlpbhost: guest memory is a plain
 * buffer, interrupts arrive as callbacks. Used by the demo and the
 * benchmark; the Linux driver in examples/dmacopy/linux does the same in a
 * real guest. */
#ifndef DMACOPY_HOST_H
#define DMACOPY_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "../dmacopy_regs.h"
#include "tlpb_host.h"


struct dmacopy_host {
    struct tlpb_host *host;
    uint8_t *ram;            /* guest memory */
    bool ram_owned;          /* allocated here (else the caller's) */
    uint64_t ram_base;       /* its bus address */
    uint64_t ram_bytes;
    uint64_t bar0;           /* programmed BAR addresses */
    uint64_t bar2;
    uint32_t ring_size;
    uint64_t ring_bus;       /* descriptor ring in guest memory */
    uint32_t tail;
    uint64_t msix_count[2];
    bool intx_asserted;
    uint64_t intx_assertions;
};

struct dmacopy_host_options {
    const char *socket;
    const char *device;
    uint64_t ram_bytes;      /* default 64 MiB */
    uint32_t ring_size;      /* default 256 */
    uint32_t max_payload;    /* programmed into Device Control; default 128 */
    uint32_t max_read_request; /* default 512 */
    bool offer_unsplit_dma;
    bool use_intx;           /* leave MSI-X off */
    uint8_t *ram;            /* the caller's zeroed guest memory of ram_bytes
                              * (e.g. a memfd it shares with the bridge);
                              * NULL: allocated here */
    enum tlpb_host_ring_policy ring_policy;
    uint32_t ring_spin_us;   /* 0: the library's default */
};

/* Connect, enumerate (IDs checked), program BARs, command, MPS/MRRS, MSI-X
 * (or INTx), reset the device and set up the ring. Returns 0 or -1 with err. */
int dmacopy_host_open(struct dmacopy_host *dc, const struct dmacopy_host_options *opts, char *err,
                      size_t err_size);
void dmacopy_host_close(struct dmacopy_host *dc);

uint32_t dmacopy_read32(struct dmacopy_host *dc, uint32_t reg);
void dmacopy_write32(struct dmacopy_host *dc, uint32_t reg, uint32_t value);

/* Post one descriptor (not rung). Returns its ring index. */
uint32_t dmacopy_post(struct dmacopy_host *dc, uint64_t src, uint64_t dst, uint32_t len,
                      bool irq);
void dmacopy_ring_doorbell(struct dmacopy_host *dc);
/* Descriptor status word (DONE, error code) as the device wrote it. */
uint32_t dmacopy_desc_status(const struct dmacopy_host *dc, uint32_t index);
uint32_t dmacopy_desc_crc(const struct dmacopy_host *dc, uint32_t index);
/* Serve the device until descriptor index is DONE or timeout_ms passes. */
int dmacopy_wait_done(struct dmacopy_host *dc, uint32_t index, int timeout_ms);
/* Serve the device until MSI-X vector's count reaches target. */
int dmacopy_wait_msix(struct dmacopy_host *dc, unsigned vector, uint64_t target, int timeout_ms);

/* Throughput run: `copies` descriptors of len bytes from `buffers` source
 * buffers (filled with a pattern here, after the ring) to as many
 * destination buffers, at most `depth` queued at a time. Every descriptor's
 * status and CRC (checked against zlib) and every destination buffer's data
 * are verified. Returns 0 with *seconds (posting to the last DONE), or -1
 * with err filled. */
int dmacopy_copy_stream(struct dmacopy_host *dc, uint32_t len, unsigned buffers, unsigned depth,
                        uint64_t copies, double *seconds, char *err, size_t err_size);

#endif

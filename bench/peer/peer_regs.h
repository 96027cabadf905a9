/* The peer device's BAR0 (4 KiB), shared by the libvfio-user server and
 * client of tlpb-bench's peer measurement. A register file answers reads
 * and writes; one 24-byte write of a copy descriptor at PEER_REG_COPY makes
 * the device copy len bytes from src to dst in the client's memory (DMA),
 * and the write's reply comes once the copy is done. */
#ifndef TLPB_BENCH_PEER_REGS_H
#define TLPB_BENCH_PEER_REGS_H

#include <stdint.h>

#define PEER_BAR0_BYTES 4096u
#define PEER_REG_SCRATCH 0x000u
#define PEER_REG_COPY 0x100u        /* struct peer_copy_desc, written whole */
#define PEER_COPY_MAX (64u * 1024u) /* the device's buffer */

struct peer_copy_desc {
    uint64_t src; /* client IOVA the device reads */
    uint64_t dst; /* client IOVA the device writes */
    uint64_t len;
} __attribute__((packed));

#endif

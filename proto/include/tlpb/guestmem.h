/* Shared guest memory (docs/protocol.md "Shared guest memory"): a map of
 * guest RAM received as GuestMemory with its descriptors (SCM_RIGHTS),
 * checked and mapped read/write. One implementation for whoever receives
 * it: the bridge from its host, a simulator process from the bridge. */
#ifndef TLPB_GUESTMEM_H
#define TLPB_GUESTMEM_H

#include <stddef.h>
#include <stdint.h>

#include "tlpb/tlp.h"
#include "tlpbridge.pb-c.h"

#define TLPB_GUESTMEM_MAX_FDS 32u
#define TLPB_GUESTMEM_MAX_REGIONS 32u

struct tlpb_guestmem_region {
    uint64_t bus_address;
    uint64_t size;
    uint8_t *data;                 /* the byte at bus_address */
    void *map;                     /* what to munmap */
    size_t map_bytes;
};

struct tlpb_guestmem {
    unsigned count;                /* 0: no map */
    uint64_t bytes;                /* of all regions */
    struct tlpb_guestmem_region regions[TLPB_GUESTMEM_MAX_REGIONS];
};

/* Check msg against the received descriptors fds[0..received) and map its
 * regions into out: each descriptor a memfd sealed against shrinking
 * (F_SEAL_SHRINK), at most 32 descriptors and regions, every fd_index
 * present, no region empty, overflowing, overlapping another or ending past
 * its file. The descriptors stay the caller's (open or close them as it
 * needs: the mappings keep the memory). Returns 0, or -1 with why (out then
 * holds no map). */
int tlpb_guestmem_map(struct tlpb_guestmem *out, const Tlpb__GuestMemory *msg, const int *fds,
                      unsigned received, char *why, size_t why_size);
/* Unmap everything in gm (count 0 after). */
void tlpb_guestmem_unmap(struct tlpb_guestmem *gm);
/* The bytes [addr, addr + bytes) (bytes 0 as 1) when they all lie in one
 * region, else NULL. */
uint8_t *tlpb_guestmem_lookup(const struct tlpb_guestmem *gm, uint64_t addr, uint64_t bytes);
/* Apply the memory write tlp to mem, its first enabled byte: a 1-2 DW write
 * writes only its enabled bytes (byte enables may be sparse there). */
void tlpb_guestmem_apply_write(uint8_t *mem, const struct tlpb_tlp *tlp);

#endif

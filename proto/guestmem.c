/* Shared guest memory (tlpb/guestmem.h): a GuestMemory map checked against
 * its descriptors and mapped. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tlpb/guestmem.h"

void tlpb_guestmem_unmap(struct tlpb_guestmem *gm)
{
    for (unsigned i = 0; i < gm->count; i++)
        munmap(gm->regions[i].map, gm->regions[i].map_bytes);
    gm->count = 0;
    gm->bytes = 0;
}

uint8_t *tlpb_guestmem_lookup(const struct tlpb_guestmem *gm, uint64_t addr, uint64_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    for (unsigned i = 0; i < gm->count; i++) {
        const struct tlpb_guestmem_region *r = &gm->regions[i];
        if (addr >= r->bus_address && addr - r->bus_address < r->size &&
            bytes <= r->size - (addr - r->bus_address))
            return r->data + (addr - r->bus_address);
    }
    return NULL;
}

void tlpb_guestmem_apply_write(uint8_t *mem, const struct tlpb_tlp *tlp)
{
    uint64_t addr = tlpb_tlp_first_byte_address(tlp);
    uint32_t bytes = tlpb_tlp_request_bytes(tlp);
    const uint8_t *src = tlp->payload + (addr - tlp->address);
    if (tlp->length_dw <= 2 && bytes) {
        for (uint32_t i = 0; i < bytes; i++) {
            uint32_t k = (uint32_t)(addr - tlp->address) + i;
            uint8_t be = k < 4 ? tlp->first_be : tlp->last_be;
            if (be & (1u << (k & 3u)))
                mem[i] = src[i];
        }
    } else {
        memcpy(mem, src, bytes);
    }
}

/* Whether fd is a memfd its sender can no longer shrink: a file truncated
 * under the mapping would make the next access fault (SIGBUS). */
static bool sealed_against_shrinking(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & F_SEAL_SHRINK);
}

int tlpb_guestmem_map(struct tlpb_guestmem *out, const Tlpb__GuestMemory *msg, const int *fds,
                      unsigned received, char *why, size_t why_size)
{
    out->count = 0;
    out->bytes = 0;
    if (msg->fd_count > TLPB_GUESTMEM_MAX_FDS) {
        snprintf(why, why_size, "GuestMemory with %u descriptors: at most %u", msg->fd_count,
                 TLPB_GUESTMEM_MAX_FDS);
        return -1;
    }
    if (received < msg->fd_count) {
        snprintf(why, why_size,
                 "GuestMemory names %u descriptors but %u arrived with it (SCM_RIGHTS on its"
                 " first byte)", msg->fd_count, received);
        return -1;
    }
    if (msg->n_regions > TLPB_GUESTMEM_MAX_REGIONS) {
        snprintf(why, why_size, "GuestMemory with %zu regions: at most %u", msg->n_regions,
                 TLPB_GUESTMEM_MAX_REGIONS);
        return -1;
    }
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < msg->n_regions; i++) {
        const Tlpb__GuestMemoryRegion *r = msg->regions[i];
        if (r->fd_index >= msg->fd_count) {
            snprintf(why, why_size, "GuestMemory region %zu: fd_index %u out of range (%u descriptors)",
                     i, r->fd_index, msg->fd_count);
            goto fail;
        }
        if (r->size_bytes == 0) {
            snprintf(why, why_size, "GuestMemory region %zu: size 0", i);
            goto fail;
        }
        if (r->bus_address + r->size_bytes < r->bus_address ||
            r->fd_offset + r->size_bytes < r->fd_offset || r->size_bytes > SIZE_MAX / 2) {
            snprintf(why, why_size, "GuestMemory region %zu: address or offset plus size overflows",
                     i);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            const Tlpb__GuestMemoryRegion *o = msg->regions[j];
            if (r->bus_address < o->bus_address + o->size_bytes &&
                o->bus_address < r->bus_address + r->size_bytes) {
                snprintf(why, why_size, "GuestMemory regions %zu and %zu overlap", j, i);
                goto fail;
            }
        }
        int fd = fds[r->fd_index];
        if (!sealed_against_shrinking(fd)) {
            snprintf(why, why_size,
                     "GuestMemory region %zu: descriptor %u is not a memfd sealed against"
                     " shrinking (F_SEAL_SHRINK)", i, r->fd_index);
            goto fail;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < r->fd_offset + r->size_bytes) {
            snprintf(why, why_size, "GuestMemory region %zu: ends past the end of its file", i);
            goto fail;
        }
        /* mmap wants a page-aligned offset: map from the page it starts in. */
        uint64_t lead = r->fd_offset % (uint64_t)page;
        size_t map_bytes = (size_t)(lead + r->size_bytes);
        void *map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                         (off_t)(r->fd_offset - lead));
        if (map == MAP_FAILED) {
            snprintf(why, why_size, "GuestMemory region %zu: cannot map it: %s", i, strerror(errno));
            goto fail;
        }
        struct tlpb_guestmem_region *g = &out->regions[out->count++];
        g->bus_address = r->bus_address;
        g->size = r->size_bytes;
        g->map = map;
        g->map_bytes = map_bytes;
        g->data = (uint8_t *)map + lead;
        out->bytes += r->size_bytes;
    }
    return 0;
fail:
    tlpb_guestmem_unmap(out);
    return -1;
}

/* Shared guest memory (docs/protocol.md "Shared guest memory"): the host's
 * guest RAM mapped into the bridge, so device DMA inside it is served
 * without a message to the host and back. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"

static void unmap_all(struct guestmem *gm)
{
    for (unsigned i = 0; i < gm->count; i++)
        munmap(gm->regions[i].map, gm->regions[i].map_bytes);
    gm->count = 0;
    gm->bytes = 0;
}

void guestmem_drop(struct device *d, const char *why)
{
    if (!d->guest_memory.count)
        return;
    unmap_all(&d->guest_memory);
    bridge_log(TLPB_LOG_INFO, "device %s: guest memory no longer shared (%s)", d->cfg->name, why);
}

uint8_t *guestmem_lookup(const struct device *d, uint64_t addr, uint64_t bytes)
{
    const struct guestmem *gm = &d->guest_memory;
    if (bytes == 0)
        bytes = 1;
    for (unsigned i = 0; i < gm->count; i++) {
        const struct guestmem_region *r = &gm->regions[i];
        if (addr >= r->bus_address && addr - r->bus_address < r->size &&
            bytes <= r->size - (addr - r->bus_address))
            return r->data + (addr - r->bus_address);
    }
    return NULL;
}

/* Whether fd is a memfd its sender can no longer shrink: a file truncated
 * under the mapping would make the bridge's next access fault (SIGBUS). */
static bool sealed_against_shrinking(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & F_SEAL_SHRINK);
}

/* Check the map in msg against the descriptors fds and map it into out.
 * 0, or -1 with why (out holds nothing mapped). */
static int map_regions(const Tlpb__GuestMemory *msg, const int *fds, struct guestmem *out,
                       char *why, size_t why_size)
{
    out->count = 0;
    out->bytes = 0;
    if (msg->n_regions > GUESTMEM_MAX_REGIONS) {
        snprintf(why, why_size, "GuestMemory with %zu regions: at most %u", msg->n_regions,
                 GUESTMEM_MAX_REGIONS);
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
        struct guestmem_region *g = &out->regions[out->count++];
        g->bus_address = r->bus_address;
        g->size = r->size_bytes;
        g->map = map;
        g->map_bytes = map_bytes;
        g->data = (uint8_t *)map + lead;
        out->bytes += r->size_bytes;
    }
    return 0;
fail:
    unmap_all(out);
    return -1;
}

void guestmem_from_host(struct conn *c, const Tlpb__Envelope *env)
{
    struct device *d = c->device;
    const Tlpb__GuestMemory *msg = env->guest_memory;
    char why[200];
    int fds[BRIDGE_MAX_PENDING_FDS];
    /* Whatever arrived for it is taken (and closed below), even when the
     * message is refused: descriptors never pile up. */
    unsigned pending = conn_pending_fds(c);
    unsigned take = msg->fd_count < pending ? msg->fd_count : pending;
    if (take > BRIDGE_MAX_PENDING_FDS)
        take = BRIDGE_MAX_PENDING_FDS;
    int rc = conn_take_fds(c, fds, take);
    if (rc != 0) {
        take = 0;
        snprintf(why, sizeof(why), "GuestMemory: cannot receive its descriptors: %s", strerror(-rc));
    } else if (msg->fd_count > GUESTMEM_MAX_FDS) {
        snprintf(why, sizeof(why), "GuestMemory with %u descriptors: at most %u", msg->fd_count,
                 GUESTMEM_MAX_FDS);
    } else if (take < msg->fd_count) {
        snprintf(why, sizeof(why),
                 "GuestMemory names %u descriptors but %u arrived with it (SCM_RIGHTS on its"
                 " first byte)", msg->fd_count, take);
    } else {
        struct guestmem next;
        if (map_regions(msg, fds, &next, why, sizeof(why)) == 0) {
            unmap_all(&d->guest_memory);
            d->guest_memory = next;
            if (next.count)
                bridge_log(TLPB_LOG_INFO, "device %s: guest memory shared: %u regions, %llu MiB",
                           d->cfg->name, next.count, (unsigned long long)(next.bytes >> 20));
            else
                bridge_log(TLPB_LOG_INFO, "device %s: guest memory withdrawn by the host",
                           d->cfg->name);
            why[0] = '\0';
        }
    }
    /* The mappings keep the memory; the descriptors are not needed. */
    for (unsigned i = 0; i < take; i++)
        close(fds[i]);
    if (why[0]) {
        conn_refuse_message(c, env, why);
        guestmem_drop(d, "the host's new map was refused");
    }
}

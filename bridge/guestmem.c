/* Shared guest memory (docs/protocol.md "Shared guest memory"): the host's
 * guest RAM mapped into the bridge, so device DMA inside it is served
 * without a message to the host and back; and passed on to a simulator
 * process granted CAP_GUEST_MEMORY, whose fast-mode DMA then reads and
 * writes it directly. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"

static void close_host_fds(struct guestmem *gm)
{
    for (unsigned i = 0; i < gm->fd_count; i++)
        close(gm->fds[i]);
    gm->fd_count = 0;
}

void guestmem_drop(struct device *d, const char *why)
{
    struct guestmem *gm = &d->guest_memory;
    if (!gm->map.count && !gm->fd_count)
        return;
    tlpb_guestmem_unmap(&gm->map);
    close_host_fds(gm);
    bridge_log(TLPB_LOG_INFO, "device %s: guest memory no longer shared (%s)", d->cfg->name, why);
    guestmem_update_sim(d, true);
}

uint8_t *guestmem_lookup(const struct device *d, uint64_t addr, uint64_t bytes)
{
    return tlpb_guestmem_lookup(&d->guest_memory.map, addr, bytes);
}

/* Whether d's simulator may have the map now (guestmem_update_sim). */
static bool sim_may_share(const struct device *d)
{
    const struct conn *s = d->sim;
    return s && !s->closing && (s->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY) &&
           (s->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA) &&
           d->backend == BACKEND_EXTERNAL && !d->check_stopped &&
           !(d->time.coupled && conn_time_sync(s));
}

void guestmem_update_sim(struct device *d, bool map_changed)
{
    struct guestmem *gm = &d->guest_memory;
    bool share = sim_may_share(d) && gm->map.count;
    /* A map sent stays sent until withdrawn, refused or not: a refusal may
     * be for an older map than the simulator now holds, so only a
     * withdrawal makes sure it stops. */
    if (share && !map_changed && gm->sim_sent)
        return;
    if (!share && !gm->sim_sent)
        return;
    Tlpb__GuestMemoryRegion *regions[TLPB_GUESTMEM_MAX_REGIONS];
    Tlpb__GuestMemory msg = TLPB__GUEST_MEMORY__INIT;
    if (share) {
        for (unsigned i = 0; i < gm->map.count; i++)
            regions[i] = &gm->regions[i];
        msg.regions = regions;
        msg.n_regions = gm->map.count;
        msg.fd_count = gm->fd_count;
    }
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_GUEST_MEMORY;
    env.guest_memory = &msg;
    int rc = conn_send_with_fds(d->sim, &env, gm->fds, msg.fd_count);
    if (rc < 0) {
        bridge_log(TLPB_LOG_ERROR, "device %s: cannot send guest memory to the simulator: %s",
                   d->cfg->name, strerror(-rc));
        gm->sim_sent = gm->sim_shared = false;
        return;
    }
    gm->sim_sent = gm->sim_shared = share;
    bridge_log(TLPB_LOG_INFO, "device %s: guest memory %s the simulator", d->cfg->name,
               share ? "shared with" : "withdrawn from");
    conn_flush(d->sim);
}

void guestmem_sim_refused(struct device *d, const char *why)
{
    if (!d->guest_memory.sim_shared)
        return;
    d->guest_memory.sim_shared = false;
    bridge_log(TLPB_LOG_WARN, "device %s: the simulator refused guest memory (%s); its DMA goes"
                              " as messages", d->cfg->name, why);
}

void guestmem_sim_detached(struct device *d)
{
    d->guest_memory.sim_sent = d->guest_memory.sim_shared = false;
}

void guestmem_from_host(struct conn *c, const Tlpb__Envelope *env)
{
    struct device *d = c->device;
    struct guestmem *gm = &d->guest_memory;
    const Tlpb__GuestMemory *msg = env->guest_memory;
    char why[200] = "";
    int fds[BRIDGE_MAX_PENDING_FDS];
    /* Whatever arrived for it is taken (and closed unless kept), even when
     * the message is refused: descriptors never pile up. */
    unsigned pending = conn_pending_fds(c);
    unsigned take = msg->fd_count < pending ? msg->fd_count : pending;
    if (take > BRIDGE_MAX_PENDING_FDS)
        take = BRIDGE_MAX_PENDING_FDS;
    int rc = conn_take_fds(c, fds, take);
    struct tlpb_guestmem next;
    if (rc != 0) {
        take = 0;
        snprintf(why, sizeof(why), "GuestMemory: cannot receive its descriptors: %s", strerror(-rc));
    } else if (tlpb_guestmem_map(&next, msg, fds, take, why, sizeof(why)) == 0) {
        tlpb_guestmem_unmap(&gm->map);
        close_host_fds(gm);
        gm->map = next;
        /* Kept for a simulator while the map lives. */
        for (unsigned i = 0; i < next.count; i++) {
            Tlpb__GuestMemoryRegion r = TLPB__GUEST_MEMORY_REGION__INIT;
            r.bus_address = msg->regions[i]->bus_address;
            r.size_bytes = msg->regions[i]->size_bytes;
            r.fd_index = msg->regions[i]->fd_index;
            r.fd_offset = msg->regions[i]->fd_offset;
            gm->regions[i] = r;
        }
        memcpy(gm->fds, fds, take * sizeof(int));
        gm->fd_count = next.count ? take : 0;
        if (!next.count)
            for (unsigned i = 0; i < take; i++)
                close(fds[i]);
        take = 0;
        if (next.count)
            bridge_log(TLPB_LOG_INFO, "device %s: guest memory shared: %u regions, %llu MiB",
                       d->cfg->name, next.count, (unsigned long long)(next.bytes >> 20));
        else
            bridge_log(TLPB_LOG_INFO, "device %s: guest memory withdrawn by the host",
                       d->cfg->name);
        guestmem_update_sim(d, true);
    }
    for (unsigned i = 0; i < take; i++)
        close(fds[i]);
    if (why[0]) {
        conn_refuse_message(c, env, why);
        guestmem_drop(d, "the host's new map was refused");
    }
}

/* Stand-in for the shared-memory ring (proto/ring.c) in a tree that does not
 * have it yet: the policy names work, a RingSetup is refused with a reason.
 * Built only when proto/ring.c is absent (bridge/CMakeLists.txt). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tlpb/ring.h"

const char *tlpb_ring_policy_name(enum tlpb_ring_policy policy)
{
    switch (policy) {
    case TLPB_RING_ADAPTIVE: return "adaptive";
    case TLPB_RING_BUSY_POLL: return "busy-poll";
    case TLPB_RING_OFF: break;
    }
    return "off";
}

int tlpb_ring_policy_from_name(const char *name, enum tlpb_ring_policy *policy)
{
    if (strcmp(name, "adaptive") == 0)
        *policy = TLPB_RING_ADAPTIVE;
    else if (strcmp(name, "busy-poll") == 0)
        *policy = TLPB_RING_BUSY_POLL;
    else if (strcmp(name, "off") == 0)
        *policy = TLPB_RING_OFF;
    else
        return -EINVAL;
    return 0;
}

int tlpb_ring_attach(struct tlpb_ring **out, const int fds[TLPB_RING_FD_COUNT],
                     uint64_t ring_bytes, char *err, size_t err_size)
{
    (void)ring_bytes;
    *out = NULL;
    for (int i = 0; i < TLPB_RING_FD_COUNT; i++)
        close(fds[i]);
    snprintf(err, err_size, "this bridge was built without the shared-memory ring");
    return -ENOSYS;
}

/* Never reached without an attached ring. */
void tlpb_ring_destroy(struct tlpb_ring *r) { (void)r; }
int tlpb_ring_put_tlp(struct tlpb_ring *r, const struct tlpb_tlp *tlp) { (void)r; (void)tlp; return -ENOSYS; }
int tlpb_ring_put_interrupt(struct tlpb_ring *r, Tlpb__InterruptKind kind, uint32_t vector,
                            uint64_t sim_time_ps)
{
    (void)r; (void)kind; (void)vector; (void)sim_time_ps;
    return -ENOSYS;
}
int tlpb_ring_put_envelope(struct tlpb_ring *r, const Tlpb__Envelope *env) { (void)r; (void)env; return -ENOSYS; }
void tlpb_ring_notify(struct tlpb_ring *r) { (void)r; }
int tlpb_ring_get(struct tlpb_ring *r, struct tlpb_ring_msg *m) { (void)r; (void)m; return 0; }
bool tlpb_ring_pending(const struct tlpb_ring *r) { (void)r; return false; }
const char *tlpb_ring_error(const struct tlpb_ring *r) { (void)r; return "no ring"; }
bool tlpb_ring_prepare_sleep(struct tlpb_ring *r) { (void)r; return true; }
void tlpb_ring_woken(struct tlpb_ring *r) { (void)r; }
int tlpb_ring_wake_fd(const struct tlpb_ring *r) { (void)r; return -1; }
void tlpb_ring_get_stats(const struct tlpb_ring *r, struct tlpb_ring_stats *stats)
{
    (void)r;
    memset(stats, 0, sizeof(*stats));
}

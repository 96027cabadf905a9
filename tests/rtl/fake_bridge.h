/* The bridge's side of the simulator protocol, for the RTL adapter tests:
 * send the handshake reply, TLPs and resets, receive frames. */
#ifndef TLPB_RTL_FAKE_BRIDGE_H
#define TLPB_RTL_FAKE_BRIDGE_H

#include <stdbool.h>

#include "tlpb/wire.h"

struct fake_bridge {
    int fd;
    struct tlpb_frame_reader rd;
    struct tlpb_obuf ob;
};

void fb_init(struct fake_bridge *fb, int fd);
void fb_fini(struct fake_bridge *fb);
int fb_send_hello_reply(struct fake_bridge *fb);
/* The reply granting these capabilities (TLPB__CAPABILITY__*). */
int fb_send_hello_reply_caps(struct fake_bridge *fb, uint32_t capabilities);
/* A TLP carries its own stamp (tlp->sim_time_ps). */
int fb_send_tlp(struct fake_bridge *fb, const struct tlpb_tlp *tlp);
int fb_send_reset(struct fake_bridge *fb, Tlpb__ResetKind kind);
int fb_send_reset_at(struct fake_bridge *fb, Tlpb__ResetKind kind, uint64_t sim_time_ps);
/* TimeSync: COUPLED(sim_time_ps), FREE, GRANT(sync_id, sim_time_ps, until). */
int fb_send_time_sync(struct fake_bridge *fb, Tlpb__TimeSyncKind kind, uint64_t sim_time_ps,
                      uint64_t sync_id, uint64_t grant_until_ps);
/* The next frame, waiting at most timeout_ms (0: only what is there). NULL
 * on timeout, EOF or a bad frame. Free with tlpb_envelope_free. */
Tlpb__Envelope *fb_recv(struct fake_bridge *fb, int timeout_ms);

#endif

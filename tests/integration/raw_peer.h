/* A raw protocol peer for integration tests: speaks the wire protocol by
 * hand on a socket to the harness's bridge, so a test can send what no
 * well-behaved client would. Every wait is bounded by IT_DEADLINE_MS. */
#ifndef TLPB_IT_RAW_PEER_H
#define TLPB_IT_RAW_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/wire.h"

struct raw {
    int fd;
    struct tlpb_frame_reader rd;
    unsigned errors_seen;      /* Error messages received */
    char last_error[256];
};

void raw_open(struct raw *r);
void raw_close(struct raw *r);
void raw_send(struct raw *r, const void *bytes, size_t len);
void raw_send_prefix(struct raw *r, uint32_t len);
void raw_send_env(struct raw *r, const Tlpb__Envelope *env);
/* The same with n descriptors sent along (SCM_RIGHTS on the frame's first
 * byte, as GuestMemory and RingSetup carry them). */
#define RAW_MAX_FDS 40
void raw_send_env_fds(struct raw *r, const Tlpb__Envelope *env, const int *fds, unsigned n);
void raw_send_tlp(struct raw *r, const struct tlpb_tlp *tlp);
/* Next message; NULL at EOF (*eof set) or on timeout (a failure). Error
 * messages are counted (errors_seen, last_error) and returned too. */
Tlpb__Envelope *raw_next(struct raw *r, bool *eof);
/* Read until the bridge drops the connection; true if it did (bounded). */
bool raw_expect_dropped(struct raw *r);
/* Wait for a TLP (skipping Errors and events, which are counted). */
Tlpb__Envelope *raw_next_tlp(struct raw *r);
/* The same, converted into *out, its payload copied to data (at most
 * data_size bytes); false on none. */
bool raw_recv_tlp(struct raw *r, struct tlpb_tlp *out, uint8_t *data, size_t data_size);
/* Send hello; returns the reply (checked to be a HelloReply). */
Tlpb__Envelope *raw_send_hello(struct raw *r, Tlpb__Hello *hello);
/* Send Hello (desc for a simulator, else NULL); returns the reply. */
Tlpb__Envelope *raw_hello(struct raw *r, Tlpb__Role role, const char *device, uint32_t major,
                          const struct tlpb_devdesc *desc);
/* Connect and handshake as the simulator of device, announcing the dmacopy
 * description; fatal if refused. */
void raw_simulator(struct raw *r, const char *device);
/* The same, offering capabilities (CAP_TIME_SYNC ...); fatal if refused
 * or if the bridge does not grant CAP_TIME_SYNC when offered. */
void raw_simulator_caps(struct raw *r, const char *device, uint64_t capabilities);
/* Connect and handshake as the host of device; fatal if refused. */
void raw_host(struct raw *r, const char *device);
/* Enumerate the dmacopy device from the host h as a root complex does
 * before using it (the bridge's PCIe checker judges the device's traffic
 * by it, docs/checker.md): config writes that tell the function its
 * number bdf, program BAR0 and BAR2 at DMACOPY_BAR0_ADDR and
 * DMACOPY_BAR2_ADDR, set MSI-X Enable (Function Mask clear), then Memory
 * Space and Bus Master Enable in Command. Max_Payload_Size stays at its
 * default, 128 bytes. Each write is completed SC (fatal if it gets no
 * completion). With sim NULL the device's backend completes them (the
 * fallback, an in-process model; a simulator attaching later gets them
 * replayed); else sim is the simulator serving the device, and every config
 * request reaching it meanwhile (the bridge's replay too) is completed
 * here; other messages to it meanwhile (TimeSync, Events) are dropped, as
 * are the host's messages that are not TLPs. */
void raw_host_enumerate(struct raw *h, uint16_t bdf, struct raw *sim);
/* A config write from the host h to register reg of function bdf, byte
 * enables be; checks that h gets it completed SC (by whatever serves the
 * device: a raw simulator attached must answer it meanwhile). */
void raw_cfg_write(struct raw *h, uint16_t bdf, uint16_t reg, uint32_t value, uint8_t be,
                   uint8_t tag);
/* As the simulator sim of function bdf, complete the config request req SC
 * (a read with zeros): a raw simulator keeps no config space. */
void raw_complete_config(struct raw *sim, uint16_t bdf, const struct tlpb_tlp *req);
/* The next TLP the simulator sim of function bdf gets that is not a config
 * request, as raw_recv_tlp; config requests (the host's, the bridge's
 * replay) are completed on the way (raw_complete_config). */
bool raw_sim_recv_tlp(struct raw *sim, uint16_t bdf, struct tlpb_tlp *out, uint8_t *data,
                      size_t data_size);
/* Everything the host h sent before has been acted on once this returns:
 * an Interrupt (not a host's to send) is answered with an Error, after any
 * Error for earlier messages. errors (size bytes; may be NULL) gets the
 * first of those Errors' reason ('' if none), *tlps (may be NULL) the number
 * of TLPs h got meanwhile. Fatal if the Error does not come. */
void raw_host_fence(struct raw *h, char *errors, size_t size, unsigned *tlps);
/* Expect a UR completion (no data) for tag on r. */
void expect_ur(struct raw *r, uint8_t tag, const char *what);
/* Send a TimeSync of kind (grant_until_ps for a GRANT, idle for a REACHED;
 * 0 and false where they do not apply). */
void raw_send_time_sync(struct raw *r, Tlpb__TimeSyncKind kind, uint64_t sync_id,
                        uint64_t sim_time_ps, uint64_t grant_until_ps, bool idle);

/* ---- The other side: a scripted bridge the code under test connects to -- */

/* Listen on the Unix socket at path (a stale one is removed); fatal on
 * failure. Returns the listening fd. */
int raw_listen(const char *path);
/* Next message on fd, waiting at most IT_DEADLINE_MS; NULL at EOF, on
 * timeout or for an undecodable frame. */
Tlpb__Envelope *raw_read_envelope(int fd, struct tlpb_frame_reader *rd);
/* An accepting HelloReply announcing desc (converted into *desc_pb, which
 * must outlive hr), default max frame; the caller adds backend, caps... */
void raw_hello_reply_init(Tlpb__HelloReply *hr, struct tlpb_devdesc_pb *desc_pb,
                          const struct tlpb_devdesc *desc);
/* The dmacopy device's description, as a simulator announces it (kept here
 * on purpose rather than taken from the model: a wrong field in the model
 * shows up as a refused simulator). */
const struct tlpb_devdesc *dmacopy_description(void);

/* Connect and handshake as the host of device offering capabilities; fatal
 * if refused. Returns the HelloReply (free with tlpb_envelope_free). */
Tlpb__Envelope *raw_host_caps(struct raw *r, const char *device, uint64_t capabilities);

#endif

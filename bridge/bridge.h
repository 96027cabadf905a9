/* tlpbridged internals: connections, devices and their backends. */
#ifndef TLPB_BRIDGE_H
#define TLPB_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "hlsim_env.h"
#include "hlsim_uv.h"
#include "tlpb/cfgspace.h"
#include "tlpb/dma.h"
#include "tlpb/dma_context.h"
#include "tlpb/guestmem.h"
#include "tlpb/log.h"
#include "tlpb/pcie_check.h"
#include "tlpb/ring.h"
#include "tlpb/tlp.h"
#include "tlpb/wire.h"

#define BRIDGE_NAME_MAX 64
#define BRIDGE_MAX_DEVICES 64
#define BRIDGE_MAX_MODEL_DIRS 16
/* A connection that has not completed its Hello by then is closed. */
#define BRIDGE_HANDSHAKE_TIMEOUT_MS_DEFAULT 5000u
/* Above this many queued outbound bytes, the bridge stops reading from the
 * peers that feed the connection until it drains below the low mark. */
#define BRIDGE_QUEUE_HIGH_BYTES (8u * 1024u * 1024u)
#define BRIDGE_QUEUE_LOW_BYTES (2u * 1024u * 1024u)
/* The longest completion timeout a simulator may announce (the RTL adapter's
 * default): a silent simulator never keeps a host read waiting longer. */
#define BRIDGE_MAX_ANNOUNCED_TIMEOUT_MS 60000u

extern int bridge_log_level;
/* One log line to stderr. Every call site is rate limited on its own (see
 * tlpb_log_site_admit): a flood of one message is summarised with a count;
 * any byte that is not printable ASCII is escaped. Debug lines are not
 * limited (they are asked for). */
void bridge_log_at(struct tlpb_log_site *site, enum tlpb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define bridge_log(level, ...)                                                                   \
    do {                                                                                         \
        static struct tlpb_log_site bridge_log_site_ = {.file = __FILE__, .line = __LINE__};    \
        bridge_log_at(&bridge_log_site_, (level), __VA_ARGS__);                                  \
    } while (0)
/* Log the summaries of suppressed messages that are due (all with force). */
void bridge_log_flush(bool force);
/* Peer-supplied text for a log line: escaped and bounded (tlpb_log_escape). */
#define BRIDGE_PEER_TEXT(buf, s) tlpb_log_escape((buf), sizeof(buf), (s), TLPB_LOG_PEER_TEXT_MAX)

enum backend_kind { BACKEND_FALLBACK = 0, BACKEND_HLSIM = 1, BACKEND_EXTERNAL = 2 };
const char *backend_name(enum backend_kind kind);
int backend_from_name(const char *name, enum backend_kind *kind);

enum fallback_read { FALLBACK_READ_ONES = 0, FALLBACK_READ_ZEROS = 1, FALLBACK_READ_UR = 2 };

struct device_config {
    char name[BRIDGE_NAME_MAX];
    enum backend_kind backend;
    char model_path[1024];
    char model_args[512];
    bool fast_dma;                 /* hlsim: unsplit DMA */
    enum fallback_read fallback_read;
    uint32_t timeout_ms;           /* 0: per backend default */
    enum tlpb_check_policy check_policy; /* what a PCIe checker violation does (docs/checker.md) */
    bool has_description;
    struct tlpb_devdesc description;
};

struct bridge_config {
    char listen_path[108];
    char tcp_address[128];         /* HOST:PORT, empty = off */
    char token[128];               /* required from every TCP peer when set */
    char token_file[1024];         /* read into token by bridge_config_check */
    char trace_path[1024];
    uint32_t handshake_timeout_ms; /* 0: BRIDGE_HANDSHAKE_TIMEOUT_MS_DEFAULT */
    enum tlpb_ring_policy ring_policy; /* --ring: how the bridge waits on host rings */
    uint32_t ring_spin_us;         /* --ring-spin-us: adaptive polling after the last activity */
    /* Where `reload` may load models from, resolved (realpath) by
     * bridge_config_check; the models configured at start are allowed too. */
    unsigned model_dir_count;
    char model_dirs[BRIDGE_MAX_MODEL_DIRS][1024];
    char allowed_models[BRIDGE_MAX_DEVICES][1024];
    unsigned device_count;
    struct device_config devices[BRIDGE_MAX_DEVICES];
};

/* Parse a libconfig file into cfg (command-line options applied later
 * override it). Returns 0 or -1 with err filled. */
int bridge_config_load(struct bridge_config *cfg, const char *path, char *err, size_t err_size);
/* "NAME", "NAME:fallback", "NAME:external", "NAME:hlsim=MODEL.so" */
int bridge_config_add_device_arg(struct bridge_config *cfg, const char *arg, char *err,
                                 size_t err_size);
int bridge_config_add_model_dir(struct bridge_config *cfg, const char *dir, char *err,
                                size_t err_size);
/* Checks the whole configuration, reads the token file and resolves the
 * model directories. */
int bridge_config_check(struct bridge_config *cfg, char *err, size_t err_size);
/* Whether the operator allows loading the model at path: its real path
 * (resolved into resolved) is a configured model or lies inside a model
 * directory. 0, or -1 with err. Nothing is opened. */
int bridge_model_allowed(const struct bridge_config *cfg, const char *path, char *resolved,
                         size_t resolved_size, char *err, size_t err_size);

struct bridge;
struct device;

struct conn {
    struct bridge *bridge;
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    struct conn *next;
    bool is_tcp;
    bool is_loopback;
    bool closing;
    unsigned open_handles;         /* the stream and the handshake timer */
    uv_timer_t handshake_timer;    /* closes a connection that never says Hello */
    bool handshake_timer_init;
    bool read_paused;              /* backpressure: a destination is full */
    bool reading;                  /* uv_read_start in effect */
    Tlpb__Role role;               /* UNSPECIFIED until the handshake */
    struct device *device;
    char peer_name[64];
    char label[96];                /* for logs */
    uint64_t capabilities;         /* negotiated */
    uint32_t completion_timeout_ms;
    struct tlpb_frame_reader rd;
    struct tlpb_obuf ob;           /* queued, not yet handed to libuv */
    struct tlpb_obuf inflight;     /* owned by the uv_write in progress */
    uv_write_t write_req;
    bool write_in_flight;
    uint64_t frames_in;
    uint64_t frames_out;
    /* Coupled time (docs/protocol.md "Simulated time"), from the Hello. */
    uint64_t clock_period_ps;      /* simulator: 0 = not cycle based */
    uint64_t quantum_ps;           /* host: its sync quantum */
    bool time_coupled_sent;        /* simulator: TIME_SYNC_COUPLED sent, FREE not since */
    /* Shared-memory ring (docs/protocol.md "Shared-memory ring"): a host
     * that sent RingSetup. From then every message in both directions goes
     * through it; ob holds, as frames, what did not fit yet. */
    struct tlpb_ring *ring;
    uv_poll_t ring_poll;           /* readable: the host woke us (wake-bridge eventfd) */
    bool ring_poll_init;
    bool ring_asleep;              /* prepare_sleep said sleep: wait for ring_poll */
    const char *ring_broken;       /* a put found the ring corrupt: failed at the next flush */
    /* Frames that carry descriptors (GuestMemory to a simulator), in
     * order, each written with sendmsg once the bytes queued before it are
     * written (conn_send_with_fds). */
    struct conn_fd_frame *fd_frames;
    uv_poll_t fd_frame_poll;       /* writable: on a duplicate of the socket */
    int fd_frame_poll_fd;          /* that duplicate; -1: none */
};

/* Whether c negotiated CAP_TIME_SYNC. */
static inline bool conn_time_sync(const struct conn *c)
{
    return c && (c->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC) != 0;
}

enum pending_state { PENDING_FREE = 0, PENDING_ACTIVE, PENDING_INTERNAL, PENDING_QUARANTINE };

/* A non-posted request from the host, forwarded under a bridge tag so a
 * late completion from a timed-out simulator can never be mistaken for the
 * answer to a newer request. */
struct pending_request {
    uint8_t state;
    uint8_t host_tag;
    uint64_t deadline_ns;
    struct tlpb_tlp request;       /* header only */
    uint32_t owed_bytes;           /* MRd: bytes not yet completed */
};

struct device_stats {
    uint64_t host_requests;
    uint64_t host_posted_writes;
    uint64_t device_requests;      /* DMA requests */
    uint64_t device_posted_writes;
    uint64_t dma_bytes;
    uint64_t dma_faults;           /* device DMA the host refused (IOMMU, not memory) */
    uint64_t completions_to_host;
    uint64_t completions_to_device;
    uint64_t interrupts;
    uint64_t fallback_completions;
    uint64_t fallback_absorbed_writes;
    uint64_t timeouts;
    uint64_t late_completions;
    uint64_t rejected_tlps;
    uint64_t dropped_device_writes; /* no host connected */
    /* TLPs and interrupts from an attached simulator that no longer serves
     * the device (switched away): not forwarded; its requests get UR. */
    uint64_t inactive_backend_drops;
    /* DMA requests served from shared guest memory, and their bytes. */
    uint64_t dma_shm_requests;
    uint64_t dma_shm_bytes;
};

/* Shared guest memory (docs/protocol.md "Shared guest memory"): the host's
 * map of guest RAM, each region mapped read/write into the bridge
 * (tlpb/guestmem.h), and what a simulator granted CAP_GUEST_MEMORY is sent
 * of it: the host's regions and its descriptors, kept open while the map
 * lives. */
struct guestmem {
    struct tlpb_guestmem map;      /* count 0: none */
    Tlpb__GuestMemoryRegion regions[TLPB_GUESTMEM_MAX_REGIONS];
    int fds[TLPB_GUESTMEM_MAX_FDS];
    unsigned fd_count;
    bool sim_sent;                 /* the simulator was sent a map not withdrawn since */
    bool sim_shared;               /* ... and has not refused one since (status) */
};

/* Log2 histogram of sync wall times, 4 buckets per octave of ns. */
#define DEVICE_SYNC_HIST_BUCKETS 256

/* A device's coupled simulated time (docs/protocol.md "Simulated time").
 * Times are ps on the host's clock; wall times ns of CLOCK_MONOTONIC. */
/* Coupled: a host request is completed by the fallback when the simulator
 * reports this much device time past it (PCIe completion timeout range A). */
#define DEVICE_COUPLED_CTO_PS 50000000000ull

struct device_time {
    bool coupled;                  /* a host with CAP_TIME_SYNC is attached */
    bool hlsim_coupled;            /* hlsim_backend_time_mode(d, true) in effect */
    char mode[96];                 /* last time mode told to the host */
    uint64_t host_time_ps;         /* last host stamp or GRANT */
    uint64_t device_time_ps;       /* last REACHED, PROGRESS or device stamp */
    bool grant_pending;
    uint64_t grant_id;
    uint64_t grant_until_ps;
    uint64_t grant_started_ns;
    uint64_t abandoned_grant_id;   /* answered by the bridge: a late REACHED is dropped */
    bool idle;                     /* last REACHED said idle */
    uint64_t next_event_ps;
    uint64_t syncs;                /* grants answered since coupling */
    uint64_t sync_wall_ns_total;
    uint32_t sync_wall_hist[DEVICE_SYNC_HIST_BUCKETS];
    uint64_t clocked_cycles;       /* last reported by a cycle-based simulator */
    uint64_t coupled_since_ns;     /* wall time the host coupled */
    uint64_t coupled_since_ps;     /* host time then */
    uint64_t cycles_at_coupling;
    uint64_t last_sim_frame_ns;    /* liveness: the request timeout counts from here */
    uint64_t progress_to_host_ns;  /* last PROGRESS passed on to a waiting host */
};

struct device {
    struct bridge *bridge;
    struct device_config *cfg;
    struct tlpb_devdesc desc;
    struct tlpb_cfgspace shadow;   /* fallback config space; mirrors host writes */
    enum backend_kind backend;
    struct conn *host;
    struct conn *sim;
    /* in-process hlsim */
    void *model_handle;
    const struct hlsim_model_ops *model_ops;
    char *model_file;              /* the file loaded, for crash reports */
    hlsim_device *hlsim;
    bool hlsim_output_blocked;
    struct hlsim_uv_defer_queue deferred; /* the model's deferred work */
    /* request tracking */
    struct pending_request pending[TLPB_TAGS_MAX];
    unsigned pending_active;
    unsigned next_tag;
    bool device_read_active[TLPB_TAGS_MAX]; /* DMA reads outstanding at the host, by device tag */
    uint32_t device_read_owed[TLPB_TAGS_MAX];  /* bytes the host still owes each */
    uint64_t device_read_next[TLPB_TAGS_MAX];  /* address of the next byte owed */
    uint64_t device_read_stamp[TLPB_TAGS_MAX]; /* its sim_time_ps, for a completion the bridge builds */
    /* DMA reads of a backend that was switched away or reset while the host
     * still owed their data: the host's completions are discarded. */
    bool device_read_abandoned[TLPB_TAGS_MAX];
    uv_timer_t timeout_timer;
    uint64_t timer_deadline_ns;
    struct device_stats stats;
    struct {                       /* the last DMA the host refused, for status */
        bool seen;
        bool write;
        uint64_t address;
        uint32_t bytes;
        char context[HLSIM_DMA_CONTEXT_MAX]; /* what the model said it was for, or "" */
    } last_dma_fault;
    /* What a simulator process said its last DMAs were for (DmaContext). */
    struct tlpb_dma_context_history sim_dma_contexts;
    bool logged_no_host;
    struct device_time time;
    struct guestmem guest_memory;  /* from the host; count 0: none */
    struct tlpb_dma_scratch dma_scratch; /* DMA reads served from it */
    /* The PCIe checker (docs/checker.md): every TLP and interrupt of the
     * device, both directions, as the host sees them (host tags). */
    struct tlpb_check check;
    bool check_stopped;            /* policy stop has switched (or will switch) it to the fallback */
};

/* A listening socket, accepted from by the bridge itself (server.c). */
struct listener {
    struct bridge *bridge;
    int fd;
    bool is_tcp;
    bool init;                     /* poll and retry initialised, so stop closes them */
    uv_poll_t poll;
    uv_timer_t retry;              /* polling again after an accept it could not handle */
    char name[160];
};

struct bridge {
    uv_loop_t *loop;
    struct bridge_config *cfg;
    struct listener unix_listener;
    struct listener tcp_listener;
    bool unix_bound;               /* the socket file is ours to remove */
    int reserve_fd;                /* given up to shed a connection at the fd limit */
    uv_signal_t sigint, sigterm;
    bool signals_init;
    bool stopping;
    struct conn *conns;
    unsigned device_count;
    struct device devices[BRIDGE_MAX_DEVICES];
    struct trace *trace;           /* NULL: not tracing */
    char trace_path[1024];
    uint64_t trace_records_dropped; /* records lost to failed trace writes */
    uint64_t started_ns;
    int ready_fd;
    uv_timer_t log_timer;          /* logs the summaries of rate-limited messages */
    bool log_timer_init;
    /* accept() failing at the fd limit: logged once, then counted */
    bool accept_exhausted;
    uint64_t accept_failures;      /* connections closed at once (shed) */
    uint64_t accept_stalls;        /* attempts with no spare descriptor to shed with */
    uint64_t rejected_messages;    /* messages in the wrong direction, all peers */
    /* Polling of the attached rings: while active the loop never blocks. */
    uv_idle_t ring_idle;
    bool ring_idle_init;
    bool ring_idle_active;
    uint64_t ring_activity_ns;     /* last record in or out, any ring */
};

/* server.c */
int bridge_start(struct bridge *b, uv_loop_t *loop, struct bridge_config *cfg, char *err,
                 size_t err_size);
void bridge_stop(struct bridge *b);
/* Serve an already-connected stream socket as a new peer, as if accepted on
 * the unix socket (handshake first). Returns 0 (the connection now owns fd)
 * or a libuv error code (the caller still owns fd). */
int bridge_adopt_fd(struct bridge *b, int fd);
void conn_close(struct conn *c, const char *reason);
/* Descriptors received with SCM_RIGHTS on a unix connection (in arrival
 * order) that no message has claimed yet, at most BRIDGE_MAX_PENDING_FDS
 * at a time (more is a protocol error). conn_take_fds moves the first n to
 * fds[] (the caller owns and closes them): 0, -ENOENT when fewer than n
 * arrived, or -errno. */
#define BRIDGE_MAX_PENDING_FDS 35
unsigned conn_pending_fds(struct conn *c);
int conn_take_fds(struct conn *c, int *fds, unsigned n);
/* Queue env to c with the descriptors fds[0..n) attached to its first byte
 * (SCM_RIGHTS; a unix connection without a ring only). The descriptors are
 * duplicated: the caller keeps its own. The frame keeps its place behind
 * what is queued before it. 0 or -errno. */
int conn_send_with_fds(struct conn *c, const Tlpb__Envelope *env, const int *fds, unsigned n);
/* Queue to c and start writing. force: see tlpb_obuf_append. */
int conn_send_tlp(struct conn *c, const struct tlpb_tlp *tlp, bool force);
int conn_send_envelope(struct conn *c, const Tlpb__Envelope *env);
void conn_send_interrupt(struct conn *c, Tlpb__InterruptKind kind, uint32_t vector,
                         uint64_t sim_time_ps);
void conn_send_time_sync(struct conn *c, const Tlpb__TimeSync *ts);
/* A message from c the bridge does not act on: an Error to c saying why,
 * logged, traced as rejected and counted (rejected_messages). */
void conn_refuse_message(struct conn *c, const Tlpb__Envelope *env, const char *why);
void conn_send_event(struct conn *c, Tlpb__EventKind kind, const char *backend,
                     const char *detail);
void conn_flush(struct conn *c);
bool conn_has_room(const struct conn *c);
void conn_resume_paused(struct bridge *b);
/* A rate-limited message was held back: make sure its summary gets logged. */
void bridge_log_summary_due(void);
/* What TLPs from and to c may be: PCIe limits, or unsplit where granted. */
struct tlpb_tlp_limits conn_limits(const struct conn *c);

/* device.c */
int device_init(struct device *d, struct bridge *b, struct device_config *cfg, char *err,
                size_t err_size);
void device_fini(struct device *d);
struct device *bridge_find_device(struct bridge *b, const char *name);
void device_host_attached(struct device *d, struct conn *c);
void device_host_detached(struct device *d);
/* Whether a simulator describing desc may serve d (0, or -1 with err). */
int device_sim_check(const struct device *d, const struct tlpb_devdesc *desc, char *err,
                     size_t err_size);
int device_sim_attach(struct device *d, struct conn *c, const struct tlpb_devdesc *desc,
                      char *err, size_t err_size);
void device_sim_detached(struct device *d, const char *why);
void device_downstream_from_host(struct device *d, const struct tlpb_tlp *tlp);
void device_upstream_from_sim(struct device *d, const struct tlpb_tlp *tlp); /* external simulator */
void device_upstream_from_model(struct device *d, const struct tlpb_tlp *tlp);  /* in-process hlsim */
void device_upstream_interrupt(struct device *d, Tlpb__InterruptKind kind, uint32_t vector);
/* The same, stamped with the device's clock (coupled time; 0 = unstamped). */
void device_upstream_interrupt_at(struct device *d, Tlpb__InterruptKind kind, uint32_t vector,
                                  uint64_t sim_time_ps);
/* An Interrupt from the simulator connection sim: forwarded only while it
 * serves d (backend external), else counted and dropped. */
void device_upstream_interrupt_from_sim(struct device *d, const struct conn *sim,
                                        Tlpb__InterruptKind kind, uint32_t vector,
                                        uint64_t sim_time_ps);
/* Whether an Interrupt from a simulator names a kind and vector the device
 * has (0, or -1 with err naming the field). */
int device_interrupt_check(const struct device *d, Tlpb__InterruptKind kind, uint32_t vector,
                           char *err, size_t err_size);
/* A TLP or Interrupt from the device's host or simulator, refused before
 * the checker saw it, for one of the checker's rules (a TLP's: refused not
 * TLPB_TLP_RULE_OTHER; an Interrupt's: whatever the checker says of it):
 * counted, logged and traced as that rule's violation. */
void device_check_refused_tlp(struct device *d, const struct conn *from,
                              const struct tlpb_tlp *tlp, enum tlpb_tlp_rule refused);
void device_check_refused_interrupt(struct device *d, const struct conn *from,
                                    Tlpb__InterruptKind kind, uint32_t vector);
/* The capabilities a peer of d (labelled for logs) gets of those it offered:
 * unsplit DMA only on a device configured for fast DMA. */
uint64_t device_grant_capabilities(const struct device *d, const char *label, uint64_t offered);
/* Complete a non-posted request that broke a PCIe rule with UR, back to the
 * connection that sent it. */
void device_reject_request(struct device *d, struct conn *from, const struct tlpb_tlp *req);
/* A device DMA the host refused: counted, logged with its address and what
 * the DMA was for, traced, and handled by the device's check policy (stop:
 * the device goes to the fallback, d->check_stopped). */
void device_dma_fault(struct device *d, bool write, uint64_t address, uint32_t bytes,
                      const char *how);
/* A DmaContext from the device's simulator: kept (escaped, bounded) to name
 * a fault on that DMA. */
void device_dma_context_from_sim(struct device *d, const Tlpb__DmaContext *ctx);
void device_reset_from_host(struct device *d, Tlpb__ResetKind kind, uint64_t sim_time_ps);
/* Coupled time: a TIME_SYNC_GRANT from the host (in env); a REACHED or
 * PROGRESS from the simulator connection sim (0, or -1 with err: refuse it). */
void device_time_grant(struct device *d, const Tlpb__Envelope *env);
int device_time_from_sim(struct device *d, const struct conn *sim, const Tlpb__TimeSync *ts,
                         char *err, size_t err_size);
/* Any frame from the simulator sim: it is alive (request timeouts). */
void device_sim_alive(struct device *d, const struct conn *sim);
/* The time mode a host of d is in now: "coupled" or "free-running (why)". */
const char *device_time_mode(const struct device *d, char *buf, size_t size);
/* Sync wall time (GRANT to REACHED) below which fraction of the syncs
 * since coupling fell, in microseconds (a log2 histogram: within 1/8). */
double device_time_sync_percentile_us(const struct device *d, double fraction);
int device_switch_backend(struct device *d, enum backend_kind kind, char *err, size_t err_size);
/* Load the model again (path NULL) or another one: a path must be allowed by
 * bridge_model_allowed, checked before it is opened. 0, or -1 with err. */
int device_reload_model(struct device *d, const char *path, char *err, size_t err_size);
/* The simulator side can take more (hlsim: resume DMA). */
void device_output_ready(struct device *d);
bool device_accepts_from_host(const struct device *d);
/* How long a host request may wait for the active backend: the configured
 * timeout_ms, else the simulator's (clamped) announcement, else 5 s. */
uint32_t device_timeout_ms(const struct device *d);
bool device_accepts_from_device(const struct device *d);

/* hlsim_backend.c */
int hlsim_backend_load(struct device *d, const char *path, char *err, size_t err_size);
void hlsim_backend_unload(struct device *d);
/* What the in-process model said the DMA at address was for, or NULL
 * (none said, or the device is not served by its model). */
const char *hlsim_backend_dma_context(struct device *d, bool write, uint64_t address);
/* Deliver a TLP to the in-process model from the event loop. */
void hlsim_backend_downstream_later(struct device *d, const struct tlpb_tlp *tlp);
/* A host request or reset for the model: at once when free-running; when
 * coupled behind what is queued for it, then at its stamp. */
void hlsim_backend_downstream(struct device *d, const struct tlpb_tlp *tlp);
void hlsim_backend_reset(struct device *d, enum hlsim_reset_kind kind, uint64_t stamp_ps);
/* Coupled time for the in-process model (docs/protocol.md "Simulated
 * time"): enter (coupled, clock jumps to host_time_ps) or leave coupled
 * mode; a grant runs the model's clock up to until_ps, after the TLPs
 * delivered before it, and ends in device_time_reached(). */
void hlsim_backend_time_mode(struct device *d, bool coupled, uint64_t host_time_ps);
void hlsim_backend_time_grant(struct device *d, uint64_t sync_id, uint64_t until_ps);

/* device.c: the active backend answered grant sync_id (REACHED). */
void device_time_reached(struct device *d, uint64_t sync_id, uint64_t sim_time_ps, bool idle,
                         uint64_t next_event_ps, uint64_t clocked_cycles);

/* trace.c */
/* Start tracing to path (replacing the current trace). The file must not
 * exist yet, not even as a symlink: a trace never overwrites anything. */
int trace_open(struct bridge *b, const char *path, char *err, size_t err_size);
void trace_close(struct bridge *b);
void trace_tlp(struct bridge *b, Tlpb__TraceDirection dir, const struct device *d,
               const struct tlpb_tlp *tlp);
void trace_interrupt(struct bridge *b, const struct device *d, Tlpb__InterruptKind kind,
                     uint32_t vector, uint64_t sim_time_ps);
void trace_time_sync(struct bridge *b, Tlpb__TraceDirection dir, const struct device *d,
                     const Tlpb__TimeSync *ts);
/* A TLP (or other message) the bridge refused, as a TRACE_REJECTED record
 * with why; d may be NULL. The _pb form is for a TLP that does not even
 * convert (malformed). */
/* A PCIe checker violation, as a TRACE_VIOLATION record naming the rule,
 * with the formatted violation (text) as reason and its TLP or interrupt. */
void trace_violation(struct bridge *b, const struct device *d,
                     const struct tlpb_check_violation *v, const char *text);
/* A DMA fault (docs/protocol.md "DMA faults"): a TRACE_VIOLATION record with
 * rule "dma_fault", the fault line as reason, and an Error carrying
 * dma_fault_address and dma_fault_bytes. */
#define TRACE_RULE_DMA_FAULT "dma_fault"
void trace_dma_fault(struct bridge *b, const struct device *d, uint64_t address,
                     uint32_t bytes, const char *text);
void trace_rejected(struct bridge *b, const struct device *d, const struct tlpb_tlp *tlp,
                    const char *reason);
void trace_rejected_pb(struct bridge *b, const struct device *d, const Tlpb__Tlp *pb,
                       const char *reason);
void trace_rejected_message(struct bridge *b, const struct device *d, const Tlpb__Envelope *msg,
                            const char *reason);

/* guestmem.c */
/* A GuestMemory from c, the host of its device (CAP_GUEST_MEMORY granted):
 * takes the descriptors sent with it, validates and maps them, replaces the
 * device's map; a bad one is refused with an Error naming the problem and
 * the map dropped. Every descriptor is closed before it returns. */
void guestmem_from_host(struct conn *c, const Tlpb__Envelope *env);
/* Unmap d's guest memory and close its descriptors (why: for the log;
 * nothing logged with no map); a simulator that had it is told. */
void guestmem_drop(struct device *d, const char *why);
/* Send d's simulator (CAP_GUEST_MEMORY granted) the host's map when it may
 * use it and has not got it (map_changed: the host's map is new), or an empty
 * GuestMemory when it had one and may no longer: it may while it is the
 * device's active backend, not stopped by the checker, and not coupled in
 * simulated time. Called wherever one of these changes. */
void guestmem_update_sim(struct device *d, bool map_changed);
/* d's simulator refused the map (its Error said why), or left. */
void guestmem_sim_refused(struct device *d, const char *why);
void guestmem_sim_detached(struct device *d);
/* The mapping of [addr, addr + bytes) when it lies inside one region of d's
 * map (bytes 0: the byte at addr), else NULL. */
uint8_t *guestmem_lookup(const struct device *d, uint64_t addr, uint64_t bytes);

/* control.c */
void control_handle(struct conn *c, const Tlpb__ControlRequest *req);

#endif

/* The shared-memory ring (tlpb/ring.h; the layout and the rules a consumer
 * checks are in docs/protocol.md, "Ring layout and records"). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tlpb/byteorder.h"
#include "tlpb/ring.h"
#include "tlpb/wire.h"

/* Header page fields. */
#define HDR_MAGIC 0u      /* u64 */
#define HDR_VERSION 8u    /* u32 */
#define HDR_RING_BYTES 16u /* u64 */

#define REASON_BYTES 160

/* One direction as one side sees it. */
struct ring_dir {
    _Atomic uint64_t *producer;       /* head */
    _Atomic uint64_t *consumer;       /* tail */
    _Atomic uint32_t *consumer_asleep;
    _Atomic uint32_t *producer_waiting;
    uint8_t *data;
    uint64_t own_index;  /* the index this side writes (head when producing,
                          * tail when consuming): never read back from memory */
    uint64_t seen_index; /* last value of the other side's index */
    bool active;         /* put (or got) since the last notify */
};

struct tlpb_ring {
    enum tlpb_ring_side side;
    uint8_t *mem;
    size_t mem_bytes;
    uint64_t ring_bytes;
    int fds[TLPB_RING_FD_COUNT];
    struct ring_dir tx, rx;
    uint8_t *record;       /* private copy of the record being decoded */
    size_t record_cap;
    bool broken;
    char reason[REASON_BYTES];
    struct tlpb_ring_stats stats;
};

const char *tlpb_ring_policy_name(enum tlpb_ring_policy policy)
{
    switch (policy) {
    case TLPB_RING_ADAPTIVE:
        return "adaptive";
    case TLPB_RING_BUSY_POLL:
        return "busy-poll";
    case TLPB_RING_OFF:
        return "off";
    }
    return "unknown ring policy";
}

int tlpb_ring_policy_from_name(const char *name, enum tlpb_ring_policy *policy)
{
    static const enum tlpb_ring_policy all[] = {TLPB_RING_OFF, TLPB_RING_ADAPTIVE,
                                                TLPB_RING_BUSY_POLL};
    for (size_t i = 0; name && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(name, tlpb_ring_policy_name(all[i])) == 0) {
            *policy = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* A protocol error: the ring is unusable from now on. */
static int ring_fail(struct tlpb_ring *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ring_fail(struct tlpb_ring *r, const char *fmt, ...)
{
    if (!r->broken) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
        va_end(ap);
        r->broken = true;
    }
    return -EPROTO;
}

static bool valid_ring_bytes(uint64_t ring_bytes)
{
    return ring_bytes >= TLPB_RING_MIN_BYTES && ring_bytes <= TLPB_RING_MAX_BYTES &&
           (ring_bytes & (ring_bytes - 1)) == 0;
}

static void dir_init(struct ring_dir *d, uint8_t *mem, uint64_t ring_bytes, unsigned direction)
{
    uint8_t *ctl = mem + tlpb_ring_control_offset(ring_bytes, direction);
    d->producer = (_Atomic uint64_t *)(void *)(ctl + TLPB_RING_CTL_PRODUCER);
    d->consumer = (_Atomic uint64_t *)(void *)(ctl + TLPB_RING_CTL_CONSUMER);
    d->consumer_asleep = (_Atomic uint32_t *)(void *)(ctl + TLPB_RING_CTL_CONSUMER_ASLEEP);
    d->producer_waiting = (_Atomic uint32_t *)(void *)(ctl + TLPB_RING_CTL_PRODUCER_WAITING);
    d->data = mem + tlpb_ring_data_offset(ring_bytes, direction);
    d->own_index = 0;
    d->seen_index = 0;
    d->active = false;
}

/* Both views start from a fresh memory: all indices 0. */
static int ring_setup(struct tlpb_ring **out, enum tlpb_ring_side side, uint8_t *mem,
                      uint64_t ring_bytes, const int fds[TLPB_RING_FD_COUNT], char *err,
                      size_t err_size)
{
    struct tlpb_ring *r = calloc(1, sizeof(*r));
    size_t cap = TLPB_RING_RECORD_HEADER_BYTES + (size_t)ring_bytes / 4 + 8;
    uint8_t *record = malloc(cap);
    if (!r || !record) {
        free(r);
        free(record);
        set_err(err, err_size, "ring: out of memory");
        return -ENOMEM;
    }
    r->side = side;
    r->mem = mem;
    r->mem_bytes = (size_t)tlpb_ring_memory_bytes(ring_bytes);
    r->ring_bytes = ring_bytes;
    memcpy(r->fds, fds, sizeof(r->fds));
    /* Direction 0 is host -> bridge. */
    dir_init(&r->tx, mem, ring_bytes, side == TLPB_RING_SIDE_HOST ? 0 : 1);
    dir_init(&r->rx, mem, ring_bytes, side == TLPB_RING_SIDE_HOST ? 1 : 0);
    r->record = record;
    r->record_cap = cap;
    *out = r;
    return 0;
}

static void close_fds(const int fds[TLPB_RING_FD_COUNT])
{
    for (int i = 0; i < TLPB_RING_FD_COUNT; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int tlpb_ring_create(struct tlpb_ring **out, uint64_t ring_bytes, int fds[TLPB_RING_FD_COUNT],
                     char *err, size_t err_size)
{
    *out = NULL;
    if (!valid_ring_bytes(ring_bytes)) {
        set_err(err, err_size, "ring: ring_bytes %llu is not a power of two from %u to %u",
                (unsigned long long)ring_bytes, TLPB_RING_MIN_BYTES, TLPB_RING_MAX_BYTES);
        return -EINVAL;
    }
    int own[TLPB_RING_FD_COUNT] = {-1, -1, -1};
    uint64_t bytes = tlpb_ring_memory_bytes(ring_bytes);
    int rc;
    own[TLPB_RING_FD_MEMORY] = memfd_create("tlpb-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (own[TLPB_RING_FD_MEMORY] < 0) {
        rc = -errno;
        set_err(err, err_size, "ring: memfd_create: %s", strerror(errno));
        goto fail;
    }
    if (ftruncate(own[TLPB_RING_FD_MEMORY], (off_t)bytes) != 0 ||
        fcntl(own[TLPB_RING_FD_MEMORY], F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = -errno;
        set_err(err, err_size, "ring: sizing and sealing the memory: %s", strerror(errno));
        goto fail;
    }
    for (int i = TLPB_RING_FD_WAKE_BRIDGE; i <= TLPB_RING_FD_WAKE_HOST; i++) {
        own[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (own[i] < 0) {
            rc = -errno;
            set_err(err, err_size, "ring: eventfd: %s", strerror(errno));
            goto fail;
        }
    }
    uint8_t *mem = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                        own[TLPB_RING_FD_MEMORY], 0);
    if (mem == MAP_FAILED) {
        rc = -errno;
        set_err(err, err_size, "ring: mmap: %s", strerror(errno));
        goto fail;
    }
    tlpb_put_le64(mem + HDR_MAGIC, TLPB_RING_MAGIC);
    tlpb_put_le32(mem + HDR_VERSION, TLPB_RING_VERSION);
    tlpb_put_le64(mem + HDR_RING_BYTES, ring_bytes);
    rc = ring_setup(out, TLPB_RING_SIDE_HOST, mem, ring_bytes, own, err, err_size);
    if (rc != 0) {
        munmap(mem, (size_t)bytes);
        goto fail;
    }
    memcpy(fds, own, sizeof(own));
    return 0;
fail:
    close_fds(own);
    return rc;
}

/* Whether fd is an eventfd: its /proc link names the eventfd anon inode. */
static bool is_eventfd(int fd)
{
    char path[64], target[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

int tlpb_ring_attach(struct tlpb_ring **out, const int fds[TLPB_RING_FD_COUNT],
                     uint64_t ring_bytes, char *err, size_t err_size)
{
    *out = NULL;
    int rc = -EINVAL;
    if (!valid_ring_bytes(ring_bytes)) {
        set_err(err, err_size, "ring: ring_bytes %llu is not a power of two from %u to %u",
                (unsigned long long)ring_bytes, TLPB_RING_MIN_BYTES, TLPB_RING_MAX_BYTES);
        goto fail;
    }
    for (int i = TLPB_RING_FD_WAKE_BRIDGE; i <= TLPB_RING_FD_WAKE_HOST; i++) {
        if (!is_eventfd(fds[i])) {
            set_err(err, err_size, "ring: the %s descriptor is not an eventfd",
                    i == TLPB_RING_FD_WAKE_BRIDGE ? "wake-bridge" : "wake-host");
            goto fail;
        }
        /* A peer could hand us blocking eventfds and fill the counter: our
         * wakeup write must never block the loop. */
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0) {
            rc = -errno;
            set_err(err, err_size, "ring: making the eventfds non-blocking: %s", strerror(errno));
            goto fail;
        }
    }
    /* A peer that could shrink the file under our mapping would make our
     * accesses fault (SIGBUS): it must be a memfd sealed against that. */
    int seals = fcntl(fds[TLPB_RING_FD_MEMORY], F_GET_SEALS);
    if (seals < 0) {
        set_err(err, err_size, "ring: the memory descriptor is not a memfd");
        goto fail;
    }
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
        set_err(err, err_size, "ring: the memory is not sealed against shrinking and growing");
        goto fail;
    }
    uint64_t bytes = tlpb_ring_memory_bytes(ring_bytes);
    struct stat st = {0};
    if (fstat(fds[TLPB_RING_FD_MEMORY], &st) != 0 || (uint64_t)st.st_size != bytes) {
        set_err(err, err_size, "ring: the memory is %lld bytes, ring_bytes %llu needs %llu",
                (long long)st.st_size, (unsigned long long)ring_bytes, (unsigned long long)bytes);
        goto fail;
    }
    uint8_t *mem = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                        fds[TLPB_RING_FD_MEMORY], 0);
    if (mem == MAP_FAILED) {
        rc = -errno;
        set_err(err, err_size, "ring: mmap: %s", strerror(errno));
        goto fail;
    }
    if (tlpb_get_le64(mem + HDR_MAGIC) != TLPB_RING_MAGIC ||
        tlpb_get_le32(mem + HDR_VERSION) != TLPB_RING_VERSION ||
        tlpb_get_le64(mem + HDR_RING_BYTES) != ring_bytes) {
        set_err(err, err_size, "ring: bad header (magic, version %u or ring_bytes %llu)",
                tlpb_get_le32(mem + HDR_VERSION),
                (unsigned long long)tlpb_get_le64(mem + HDR_RING_BYTES));
        munmap(mem, (size_t)bytes);
        goto fail;
    }
    rc = ring_setup(out, TLPB_RING_SIDE_BRIDGE, mem, ring_bytes, fds, err, err_size);
    if (rc != 0) {
        munmap(mem, (size_t)bytes);
        goto fail;
    }
    /* A peer that already wrote must be seen from the start. */
    return 0;
fail:
    close_fds(fds);
    return rc;
}

void tlpb_ring_destroy(struct tlpb_ring *r)
{
    if (!r)
        return;
    munmap(r->mem, r->mem_bytes);
    close_fds(r->fds);
    free(r->record);
    free(r);
}

size_t tlpb_ring_max_record(const struct tlpb_ring *r)
{
    return (size_t)r->ring_bytes / 4;
}

const char *tlpb_ring_error(const struct tlpb_ring *r)
{
    return r->broken ? r->reason : "";
}

int tlpb_ring_wake_fd(const struct tlpb_ring *r)
{
    return r->fds[r->side == TLPB_RING_SIDE_HOST ? TLPB_RING_FD_WAKE_HOST
                                                  : TLPB_RING_FD_WAKE_BRIDGE];
}

static int peer_wake_fd(const struct tlpb_ring *r)
{
    return r->fds[r->side == TLPB_RING_SIDE_HOST ? TLPB_RING_FD_WAKE_BRIDGE
                                                  : TLPB_RING_FD_WAKE_HOST];
}

void tlpb_ring_get_stats(const struct tlpb_ring *r, struct tlpb_ring_stats *stats)
{
    *stats = r->stats;
}

/* ---- Producing ------------------------------------------------------------ */

/* Read the consumer's index of our tx direction and check it. */
static int tx_refresh(struct tlpb_ring *r)
{
    uint64_t tail = atomic_load_explicit(r->tx.consumer, memory_order_acquire);
    if (tail < r->tx.seen_index)
        return ring_fail(r, "ring: consumer index went backwards (%llu after %llu)",
                         (unsigned long long)tail, (unsigned long long)r->tx.seen_index);
    if (tail > r->tx.own_index)
        return ring_fail(r, "ring: consumer index %llu ahead of producer index %llu",
                         (unsigned long long)tail, (unsigned long long)r->tx.own_index);
    r->tx.seen_index = tail;
    return 0;
}

/* Room for a record of rec_bytes (8-aligned) at the producer's position,
 * counting the PAD needed when it would cross the end. */
static bool tx_fits(const struct tlpb_ring *r, uint64_t rec_bytes)
{
    uint64_t free_bytes = r->ring_bytes - (r->tx.own_index - r->tx.seen_index);
    uint64_t to_end = r->ring_bytes - (r->tx.own_index & (r->ring_bytes - 1));
    uint64_t need = rec_bytes <= to_end ? rec_bytes : to_end + rec_bytes;
    return need <= free_bytes;
}

/* Reserve rec_bytes contiguous bytes (writing a PAD record if needed) and
 * return where the record goes, or NULL with rc set. */
static uint8_t *tx_reserve(struct tlpb_ring *r, size_t body_bytes, int *rc)
{
    if (r->broken) {
        *rc = -EPROTO;
        return NULL;
    }
    if (body_bytes > tlpb_ring_max_record(r)) {
        *rc = -EMSGSIZE;
        return NULL;
    }
    uint64_t rec_bytes = (TLPB_RING_RECORD_HEADER_BYTES + body_bytes + 7) & ~(uint64_t)7;
    if (!tx_fits(r, rec_bytes)) {
        if ((*rc = tx_refresh(r)) != 0)
            return NULL;
        if (!tx_fits(r, rec_bytes)) {
            /* Ask to be woken when room appears, then look once more: the
             * consumer either sees the flag or we see its new index. */
            atomic_store_explicit(r->tx.producer_waiting, 1, memory_order_seq_cst);
            atomic_thread_fence(memory_order_seq_cst);
            if ((*rc = tx_refresh(r)) != 0)
                return NULL;
            if (!tx_fits(r, rec_bytes)) {
                r->stats.full++;
                *rc = -EAGAIN;
                return NULL;
            }
        }
    }
    uint64_t pos = r->tx.own_index & (r->ring_bytes - 1);
    uint64_t to_end = r->ring_bytes - pos;
    if (rec_bytes > to_end) {
        tlpb_put_le32(r->tx.data + pos, (uint32_t)to_end);
        tlpb_put_le16(r->tx.data + pos + 4, TLPB_RING_RECORD_PAD);
        tlpb_put_le16(r->tx.data + pos + 6, 0);
        r->tx.own_index += to_end;
        pos = 0;
    }
    uint8_t *rec = r->tx.data + pos;
    tlpb_put_le32(rec, (uint32_t)rec_bytes);
    tlpb_put_le16(rec + 6, (uint16_t)(rec_bytes - TLPB_RING_RECORD_HEADER_BYTES - body_bytes));
    /* The padding after the body is zero, so a record's bytes do not
     * depend on what the ring held before. */
    if (rec_bytes > TLPB_RING_RECORD_HEADER_BYTES + body_bytes)
        memset(rec + TLPB_RING_RECORD_HEADER_BYTES + body_bytes, 0,
               rec_bytes - TLPB_RING_RECORD_HEADER_BYTES - body_bytes);
    *rc = 0;
    return rec;
}

/* Publish the record reserved at rec. */
static void tx_commit(struct tlpb_ring *r, uint8_t *rec, uint16_t type)
{
    uint32_t rec_bytes = tlpb_get_le32(rec);
    tlpb_put_le16(rec + 4, type);
    r->tx.own_index += rec_bytes;
    atomic_store_explicit(r->tx.producer, r->tx.own_index, memory_order_release);
    r->tx.active = true;
    r->stats.records_out++;
    r->stats.bytes_out += rec_bytes;
}

int tlpb_ring_put_tlp(struct tlpb_ring *r, const struct tlpb_tlp *tlp)
{
    int rc;
    uint8_t *rec = tx_reserve(r, TLPB_RING_TLP_BODY_BYTES + tlp->payload_bytes, &rc);
    if (!rec)
        return rc;
    uint8_t *b = rec + TLPB_RING_RECORD_HEADER_BYTES;
    memset(b, 0, TLPB_RING_TLP_BODY_BYTES);
    b[0] = (uint8_t)tlp->kind;
    b[1] = tlp->tag;
    tlpb_put_le16(b + 2, tlp->requester_id);
    b[4] = tlp->traffic_class;
    b[5] = tlp->attributes;
    b[6] = tlp->poisoned;
    b[7] = tlp->first_be;
    b[8] = tlp->last_be;
    b[9] = tlp->lower_address;
    b[10] = tlp->bcm;
    b[11] = tlp->bar_hint >= 0 ? (uint8_t)(tlp->bar_hint + 1) : 0;
    tlpb_put_le16(b + 12, tlp->completer_id);
    tlpb_put_le16(b + 14, tlp->cfg_register);
    tlpb_put_le32(b + 16, tlp->length_dw);
    tlpb_put_le32(b + 20, tlp->byte_count);
    b[24] = (uint8_t)tlp->status;
    tlpb_put_le32(b + 28, tlp->payload_bytes);
    tlpb_put_le64(b + 32, tlp->address);
    tlpb_put_le64(b + 40, tlp->sim_time_ps);
    if (tlp->payload_bytes)
        memcpy(b + TLPB_RING_TLP_BODY_BYTES, tlp->payload, tlp->payload_bytes);
    tx_commit(r, rec, TLPB_RING_MSG_TLP);
    return 0;
}

int tlpb_ring_put_interrupt(struct tlpb_ring *r, Tlpb__InterruptKind kind, uint32_t vector,
                            uint64_t sim_time_ps)
{
    int rc;
    uint8_t *rec = tx_reserve(r, TLPB_RING_INTERRUPT_BODY_BYTES, &rc);
    if (!rec)
        return rc;
    uint8_t *b = rec + TLPB_RING_RECORD_HEADER_BYTES;
    tlpb_put_le32(b, (uint32_t)kind);
    tlpb_put_le32(b + 4, vector);
    tlpb_put_le64(b + 8, sim_time_ps);
    tx_commit(r, rec, TLPB_RING_MSG_INTERRUPT);
    return 0;
}

int tlpb_ring_put_envelope(struct tlpb_ring *r, const Tlpb__Envelope *env)
{
    int rc;
    size_t n = tlpb__envelope__get_packed_size(env);
    uint8_t *rec = tx_reserve(r, n, &rc);
    if (!rec)
        return rc;
    tlpb__envelope__pack(env, rec + TLPB_RING_RECORD_HEADER_BYTES);
    tx_commit(r, rec, TLPB_RING_MSG_ENVELOPE);
    return 0;
}

static void wake_peer(struct tlpb_ring *r)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is saturated, the peer wakes anyway. */
    if (write(peer_wake_fd(r), &one, sizeof(one)) == (ssize_t)sizeof(one))
        r->stats.wakeups_sent++;
}

void tlpb_ring_notify(struct tlpb_ring *r)
{
    if (r->broken || (!r->tx.active && !r->rx.active))
        return;
    /* Our index stores come before the look at the peer's flags; the peer
     * sets its flag before looking at our index (prepare_sleep, tx_reserve). */
    atomic_thread_fence(memory_order_seq_cst);
    bool wake = false;
    if (r->tx.active && atomic_load_explicit(r->tx.consumer_asleep, memory_order_relaxed) &&
        atomic_exchange_explicit(r->tx.consumer_asleep, 0, memory_order_seq_cst))
        wake = true;
    if (r->rx.active && atomic_load_explicit(r->rx.producer_waiting, memory_order_relaxed) &&
        atomic_exchange_explicit(r->rx.producer_waiting, 0, memory_order_seq_cst))
        wake = true;
    r->tx.active = false;
    r->rx.active = false;
    if (wake)
        wake_peer(r);
}

/* ---- Consuming ------------------------------------------------------------ */

/* Read the producer's index of our rx direction and check it. */
static int rx_refresh(struct tlpb_ring *r)
{
    uint64_t head = atomic_load_explicit(r->rx.producer, memory_order_acquire);
    if (head < r->rx.seen_index)
        return ring_fail(r, "ring: producer index went backwards (%llu after %llu)",
                         (unsigned long long)head, (unsigned long long)r->rx.seen_index);
    if (head < r->rx.own_index)
        return ring_fail(r, "ring: producer index %llu behind consumer index %llu",
                         (unsigned long long)head, (unsigned long long)r->rx.own_index);
    if (head - r->rx.own_index > r->ring_bytes)
        return ring_fail(r, "ring: producer index %llu is more than ring_bytes ahead of "
                            "consumer index %llu",
                         (unsigned long long)head, (unsigned long long)r->rx.own_index);
    r->rx.seen_index = head;
    return 0;
}

bool tlpb_ring_pending(const struct tlpb_ring *r)
{
    if (r->broken)
        return false;
    return atomic_load_explicit(r->rx.producer, memory_order_acquire) != r->rx.own_index;
}

/* Decode a TLP body (already in the private copy). The binary fields go
 * through a Tlpb__Tlp so tlpb_tlp_from_pb range-checks them: one set of
 * checks for both encodings. */
static int decode_tlp(struct tlpb_ring *r, const uint8_t *b, size_t n, struct tlpb_tlp *tlp)
{
    if (n < TLPB_RING_TLP_BODY_BYTES)
        return ring_fail(r, "ring: TLP record body of %zu bytes is shorter than %u", n,
                         TLPB_RING_TLP_BODY_BYTES);
    if (b[6] > 1 || b[10] > 1)
        return ring_fail(r, "ring: TLP record: poisoned or bcm is neither 0 nor 1");
    if (b[25] | b[26] | b[27])
        return ring_fail(r, "ring: TLP record: reserved bytes are not zero");
    Tlpb__Tlp pb;
    tlpb__tlp__init(&pb);
    pb.kind = (Tlpb__TlpKind)b[0];
    pb.tag = b[1];
    pb.requester_id = tlpb_get_le16(b + 2);
    pb.traffic_class = b[4];
    pb.attributes = b[5];
    pb.poisoned = b[6];
    pb.first_be = b[7];
    pb.last_be = b[8];
    pb.lower_address = b[9];
    pb.bcm = b[10];
    pb.bar_hint = b[11];
    pb.completer_id = tlpb_get_le16(b + 12);
    pb.cfg_register = tlpb_get_le16(b + 14);
    pb.length_dw = tlpb_get_le32(b + 16);
    pb.byte_count = tlpb_get_le32(b + 20);
    pb.status = (Tlpb__CompletionStatus)b[24];
    uint32_t payload_bytes = tlpb_get_le32(b + 28);
    pb.address = tlpb_get_le64(b + 32);
    pb.sim_time_ps = tlpb_get_le64(b + 40);
    size_t room = n - TLPB_RING_TLP_BODY_BYTES;
    if (payload_bytes != room)
        return ring_fail(r, "ring: TLP record: payload_bytes %u does not match the record's "
                            "%zu bytes of payload",
                         payload_bytes, room);
    pb.payload.len = payload_bytes;
    pb.payload.data = (uint8_t *)(uintptr_t)(b + TLPB_RING_TLP_BODY_BYTES);
    const char *why = NULL;
    if (tlpb_tlp_from_pb(tlp, &pb, &why) != 0)
        return ring_fail(r, "ring: TLP record: %s", why);
    return 0;
}

int tlpb_ring_get(struct tlpb_ring *r, struct tlpb_ring_msg *m)
{
    if (r->broken)
        return -EPROTO;
    for (;;) {
        if (r->rx.own_index == r->rx.seen_index) {
            int rc = rx_refresh(r);
            if (rc != 0)
                return rc;
            if (r->rx.own_index == r->rx.seen_index)
                return 0;
        }
        uint64_t avail = r->rx.seen_index - r->rx.own_index;
        uint64_t pos = r->rx.own_index & (r->ring_bytes - 1);
        uint64_t to_end = r->ring_bytes - pos;
        /* Validate the header from a private copy: the peer may change the
         * shared bytes between our reads. */
        uint8_t hdr[TLPB_RING_RECORD_HEADER_BYTES];
        if (avail < sizeof(hdr))
            return ring_fail(r, "ring: %llu bytes available, less than a record header",
                             (unsigned long long)avail);
        memcpy(hdr, r->rx.data + pos, sizeof(hdr));
        uint32_t len = tlpb_get_le32(hdr);
        uint32_t type = tlpb_get_le16(hdr + 4);
        uint32_t padding = tlpb_get_le16(hdr + 6);
        if (len < TLPB_RING_RECORD_HEADER_BYTES)
            return ring_fail(r, "ring: record length %u is shorter than its header", len);
        if (len % 8 != 0)
            return ring_fail(r, "ring: record length %u is not a multiple of 8", len);
        if (len > avail)
            return ring_fail(r, "ring: record length %u exceeds the %llu bytes available", len,
                             (unsigned long long)avail);
        if (type == TLPB_RING_RECORD_PAD) {
            if (len != to_end)
                return ring_fail(r, "ring: PAD record of %u bytes does not end at the ring's end "
                                    "(%llu bytes left)",
                                 len, (unsigned long long)to_end);
        } else if (len > to_end) {
            return ring_fail(r, "ring: record of %u bytes crosses the ring's end", len);
        } else if (len - TLPB_RING_RECORD_HEADER_BYTES > tlpb_ring_max_record(r)) {
            /* (the largest record is a multiple of 8, so its body fits too) */
            return ring_fail(r, "ring: record length %u exceeds the largest record (%zu)", len,
                             tlpb_ring_max_record(r));
        }
        if (type != TLPB_RING_RECORD_PAD && type != TLPB_RING_MSG_TLP &&
            type != TLPB_RING_MSG_INTERRUPT && type != TLPB_RING_MSG_ENVELOPE)
            return ring_fail(r, "ring: unknown record type %u", type);
        if (padding > 7 || padding > len - TLPB_RING_RECORD_HEADER_BYTES ||
            (type == TLPB_RING_RECORD_PAD && padding != 0))
            return ring_fail(r, "ring: record padding %u is not 0..7 within its record", padding);
        size_t body_bytes = len - TLPB_RING_RECORD_HEADER_BYTES - padding;
        if (type != TLPB_RING_RECORD_PAD)
            memcpy(r->record, r->rx.data + pos + TLPB_RING_RECORD_HEADER_BYTES, body_bytes);
        /* The private copy is taken: the bytes can go back to the producer. */
        r->rx.own_index += len;
        atomic_store_explicit(r->rx.consumer, r->rx.own_index, memory_order_release);
        r->rx.active = true;
        if (type == TLPB_RING_RECORD_PAD)
            continue;
        r->stats.records_in++;
        r->stats.bytes_in += len;
        memset(m, 0, sizeof(*m));
        m->type = (enum tlpb_ring_msg_type)type;
        const uint8_t *b = r->record;
        switch (type) {
        case TLPB_RING_MSG_TLP: {
            int rc = decode_tlp(r, b, body_bytes, &m->tlp);
            if (rc != 0)
                return rc;
            break;
        }
        case TLPB_RING_MSG_INTERRUPT: {
            if (body_bytes != TLPB_RING_INTERRUPT_BODY_BYTES)
                return ring_fail(r, "ring: Interrupt record body of %zu bytes, not %u",
                                 body_bytes, TLPB_RING_INTERRUPT_BODY_BYTES);
            uint32_t kind = tlpb_get_le32(b);
            if (kind < TLPB__INTERRUPT_KIND__IRQ_MSIX || kind > TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT)
                return ring_fail(r, "ring: Interrupt record: unknown interrupt kind %u", kind);
            m->irq_kind = (Tlpb__InterruptKind)kind;
            m->irq_vector = tlpb_get_le32(b + 4);
            m->irq_sim_time_ps = tlpb_get_le64(b + 8);
            break;
        }
        default: {
            const char *why = NULL;
            m->env = tlpb_envelope_decode(b, body_bytes, &why);
            if (!m->env)
                return ring_fail(r, "ring: Envelope record: %s", why);
            break;
        }
        }
        return 1;
    }
}

/* ---- Sleeping ------------------------------------------------------------- */

bool tlpb_ring_prepare_sleep(struct tlpb_ring *r)
{
    atomic_store_explicit(r->rx.consumer_asleep, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
    if (!r->broken &&
        atomic_load_explicit(r->rx.producer, memory_order_acquire) != r->rx.own_index) {
        atomic_store_explicit(r->rx.consumer_asleep, 0, memory_order_relaxed);
        return false;
    }
    r->stats.sleeps++;
    return true;
}

bool tlpb_ring_cancel_sleep(struct tlpb_ring *r)
{
    return atomic_exchange_explicit(r->rx.consumer_asleep, 0, memory_order_seq_cst) == 0;
}

void tlpb_ring_woken(struct tlpb_ring *r)
{
    atomic_store_explicit(r->rx.consumer_asleep, 0, memory_order_relaxed);
    /* One read takes the whole counter. */
    uint64_t count;
    if (read(tlpb_ring_wake_fd(r), &count, sizeof(count)) < 0)
        (void)count; /* EAGAIN: nobody wrote */
}

/* The transaction trace: every TLP and interrupt through the bridge, and
 * every TLP it rejects, and the TimeSync grants and their answers (coupled
 * time), with time, direction, device and backend, as framed
 * TraceRecords after an 8-byte magic. tlpbtrace prints and filters it.
 *
 * Crash safety: each record (length prefix and TraceRecord) goes to the
 * file in one write(2) on an O_APPEND descriptor, with nothing buffered in
 * the process. A record the bridge has written is in the file even if the
 * bridge is killed the next instant, and a reader never sees half a record
 * unless a write came up short; then the file is cut back to the last whole
 * record and tracing stops. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "tlpb/byteorder.h"

#define TRACE_MAGIC "TLPBTRC1"

struct trace {
    int fd;
    off_t whole_bytes;          /* file size up to the last whole record */
    uint8_t *frame;             /* reused frame buffer */
    size_t frame_cap;
    uint64_t records;
};

/* Append len bytes, completing a short write. Returns 0, or an errno
 * value (ENOSPC for a write that made no progress). */
static int append_all(int fd, const uint8_t *bytes, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, bytes + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return ENOSPC;
        done += (size_t)n;
    }
    return 0;
}

static void trace_free(struct trace *t)
{
    close(t->fd);
    free(t->frame);
    free(t);
}

int trace_open(struct bridge *b, const char *path, char *err, size_t err_size)
{
    /* Only ever a new file, whoever names it (a control client, the
     * operator's --trace): a trace can never overwrite (or, through a
     * symlink, redirect to) anything. O_EXCL already refuses a symlink;
     * O_NOFOLLOW says so. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST || errno == ELOOP)
            snprintf(err, err_size,
                     "trace file %s exists: traces are only written to new files (name a new"
                     " one, or move the old one away)", path);
        else
            snprintf(err, err_size, "cannot open trace file %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = append_all(fd, (const uint8_t *)TRACE_MAGIC, 8);
    struct trace *t = rc ? NULL : calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, err_size, "cannot write trace file %s: %s", path,
                 strerror(rc ? rc : ENOMEM));
        close(fd);
        unlink(path); /* ours: O_EXCL made it */
        return -1;
    }
    t->fd = fd;
    t->whole_bytes = 8;
    trace_close(b);
    b->trace = t;
    snprintf(b->trace_path, sizeof(b->trace_path), "%s", path);
    bridge_log(TLPB_LOG_INFO, "tracing to %s", path);
    return 0;
}

void trace_close(struct bridge *b)
{
    if (b->trace) {
        bridge_log(TLPB_LOG_INFO, "trace %s closed (%llu records)", b->trace_path,
                   (unsigned long long)b->trace->records);
        trace_free(b->trace);
        b->trace = NULL;
    }
}

/* A write failed (rc): cut the file back to its last whole record, so a
 * reader never meets a torn one, and stop tracing. */
static void trace_write_failed(struct bridge *b, int rc)
{
    struct trace *t = b->trace;
    b->trace_records_dropped++;
    bool cut = ftruncate(t->fd, t->whole_bytes) == 0;
    bridge_log(TLPB_LOG_ERROR,
               "trace %s: write failed (%s) after %llu records; the record is dropped (%llu"
               " dropped in all), %s, tracing off",
               b->trace_path, strerror(rc), (unsigned long long)t->records,
               (unsigned long long)b->trace_records_dropped,
               cut ? "the file ends with the last whole record"
                   : "the file may end with a partial record (truncate failed)");
    trace_free(t);
    b->trace = NULL;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_record(struct bridge *b, Tlpb__TraceRecord *rec)
{
    struct trace *t = b->trace;
    rec->time_ns = realtime_ns();
    size_t len = tlpb__trace_record__get_packed_size(rec);
    size_t frame_len = 4 + len;
    if (frame_len > t->frame_cap) {
        size_t cap = frame_len < 4096 ? 4096 : frame_len;
        uint8_t *grown = realloc(t->frame, cap);
        if (!grown) {
            trace_write_failed(b, ENOMEM);
            return;
        }
        t->frame = grown;
        t->frame_cap = cap;
    }
    tlpb_put_le32(t->frame, (uint32_t)len);
    tlpb__trace_record__pack(rec, t->frame + 4);
    int rc = append_all(t->fd, t->frame, frame_len);
    if (rc) {
        trace_write_failed(b, rc);
        return;
    }
    t->whole_bytes += (off_t)frame_len;
    t->records++;
}

static void record_init(Tlpb__TraceRecord *rec, Tlpb__TraceDirection dir, const struct device *d,
                        Tlpb__Envelope *msg)
{
    tlpb__trace_record__init(rec);
    rec->direction = dir;
    rec->device = d ? (char *)d->cfg->name : (char *)"";
    rec->backend = d ? (char *)backend_name(d->backend) : (char *)"";
    rec->message = msg;
}

void trace_tlp(struct bridge *b, Tlpb__TraceDirection dir, const struct device *d,
               const struct tlpb_tlp *tlp)
{
    if (!b->trace)
        return;
    Tlpb__Tlp pb;
    tlpb_tlp_to_pb(&pb, tlp);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = &pb;
    Tlpb__TraceRecord rec;
    record_init(&rec, dir, d, &env);
    write_record(b, &rec);
}

void trace_rejected_message(struct bridge *b, const struct device *d, const Tlpb__Envelope *msg,
                            const char *reason)
{
    if (!b->trace)
        return;
    Tlpb__TraceRecord rec;
    record_init(&rec, TLPB__TRACE_DIRECTION__TRACE_REJECTED, d, (Tlpb__Envelope *)msg);
    rec.reason = (char *)reason;
    write_record(b, &rec);
}

void trace_rejected_pb(struct bridge *b, const struct device *d, const Tlpb__Tlp *pb,
                       const char *reason)
{
    if (!b->trace)
        return;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = (Tlpb__Tlp *)pb;
    trace_rejected_message(b, d, &env, reason);
}

void trace_rejected(struct bridge *b, const struct device *d, const struct tlpb_tlp *tlp,
                    const char *reason)
{
    if (!b->trace)
        return;
    Tlpb__Tlp pb;
    tlpb_tlp_to_pb(&pb, tlp);
    trace_rejected_pb(b, d, &pb, reason);
}

void trace_violation(struct bridge *b, const struct device *d,
                     const struct tlpb_check_violation *v, const char *text)
{
    if (!b->trace)
        return;
    static const Tlpb__InterruptKind irq_kinds[] = {
        [TLPB_CHECK_INTX_ASSERT] = TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT,
        [TLPB_CHECK_INTX_DEASSERT] = TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT,
        [TLPB_CHECK_MSI] = TLPB__INTERRUPT_KIND__IRQ_MSI,
        [TLPB_CHECK_MSIX] = TLPB__INTERRUPT_KIND__IRQ_MSIX,
    };
    Tlpb__Tlp pb;
    Tlpb__Interrupt irq;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    if (v->tlp.kind != TLPB_TLP_INVALID) {
        /* The checker keeps the header only: the record has no payload. */
        struct tlpb_tlp header = v->tlp;
        header.payload = NULL;
        header.payload_bytes = 0;
        tlpb_tlp_to_pb(&pb, &header);
        env.body_case = TLPB__ENVELOPE__BODY_TLP;
        env.tlp = &pb;
    } else {
        tlpb_interrupt_envelope(&env, &irq, irq_kinds[v->interrupt], v->vector);
    }
    const struct tlpb_check_rule_info *info = tlpb_check_rule(v->rule);
    Tlpb__TraceRecord rec;
    record_init(&rec, TLPB__TRACE_DIRECTION__TRACE_VIOLATION, d, &env);
    rec.reason = (char *)text;
    rec.rule = (char *)(info ? info->name : "");
    write_record(b, &rec);
}

void trace_dma_fault(struct bridge *b, const struct device *d, uint64_t address,
                     uint32_t bytes, const char *text)
{
    if (!b->trace)
        return;
    /* The fault as the host reports one: an Error with the fault's fields. */
    Tlpb__Error err;
    Tlpb__Envelope env;
    tlpb_dma_fault_envelope(&env, &err, text, address, bytes);
    Tlpb__TraceRecord rec;
    record_init(&rec, TLPB__TRACE_DIRECTION__TRACE_VIOLATION, d, &env);
    rec.reason = (char *)text;
    rec.rule = (char *)TRACE_RULE_DMA_FAULT;
    write_record(b, &rec);
}

void trace_interrupt(struct bridge *b, const struct device *d, Tlpb__InterruptKind kind,
                     uint32_t vector, uint64_t sim_time_ps)
{
    if (!b->trace)
        return;
    Tlpb__Interrupt irq;
    Tlpb__Envelope env;
    tlpb_interrupt_envelope(&env, &irq, kind, vector);
    irq.sim_time_ps = sim_time_ps;
    Tlpb__TraceRecord rec;
    record_init(&rec, TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST, d, &env);
    write_record(b, &rec);
}

/* GRANT and REACHED, so a trace shows where the guest and the device
 * synchronised (PROGRESS, a wall-time keep-alive, is not traced). */
void trace_time_sync(struct bridge *b, Tlpb__TraceDirection dir, const struct device *d,
                     const Tlpb__TimeSync *ts)
{
    if (!b->trace)
        return;
    Tlpb__Envelope env;
    tlpb_time_sync_envelope(&env, ts);
    Tlpb__TraceRecord rec;
    record_init(&rec, dir, d, &env);
    write_record(b, &rec);
}

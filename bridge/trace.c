/* The transaction trace: every TLP and interrupt through the bridge, with
 * time, direction, device and backend, as framed TraceRecords after an
 * 8-byte magic. tlpbtrace prints and filters it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "tlpb/byteorder.h"

#define TRACE_MAGIC "TLPBTRC1"

int trace_open(struct bridge *b, const char *path, char *err, size_t err_size)
{
    /* Only ever a new file, whoever names it (a control client, the
     * operator's --trace): a trace can never overwrite (or, through a
     * symlink, redirect to) anything. O_EXCL already refuses a symlink;
     * O_NOFOLLOW says so. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST || errno == ELOOP)
            snprintf(err, err_size,
                     "trace file %s exists: traces are only written to new files (name a new"
                     " one, or move the old one away)", path);
        else
            snprintf(err, err_size, "cannot open trace file %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        snprintf(err, err_size, "cannot open trace file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    trace_close(b);
    fwrite(TRACE_MAGIC, 1, 8, f);
    b->trace = f;
    snprintf(b->trace_path, sizeof(b->trace_path), "%s", path);
    bridge_log(TLPB_LOG_INFO, "tracing to %s", path);
    return 0;
}

void trace_close(struct bridge *b)
{
    if (b->trace) {
        fclose(b->trace);
        b->trace = NULL;
        bridge_log(TLPB_LOG_INFO, "trace %s closed", b->trace_path);
    }
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_record(struct bridge *b, Tlpb__TraceDirection dir, const struct device *d,
                         Tlpb__Envelope *msg)
{
    Tlpb__TraceRecord rec = TLPB__TRACE_RECORD__INIT;
    rec.time_ns = realtime_ns();
    rec.direction = dir;
    rec.device = (char *)d->cfg->name;
    rec.backend = (char *)backend_name(d->backend);
    rec.message = msg;
    size_t len = tlpb__trace_record__get_packed_size(&rec);
    uint8_t prefix[4];
    tlpb_put_le32(prefix, (uint32_t)len);
    uint8_t small[512];
    uint8_t *buf = len <= sizeof(small) ? small : malloc(len);
    if (!buf)
        return;
    tlpb__trace_record__pack(&rec, buf);
    if (fwrite(prefix, 1, 4, b->trace) != 4 || fwrite(buf, 1, len, b->trace) != len) {
        bridge_log(TLPB_LOG_ERROR, "trace write failed (%s); tracing off", strerror(errno));
        if (buf != small)
            free(buf);
        trace_close(b);
        return;
    }
    if (buf != small)
        free(buf);
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
    write_record(b, dir, d, &env);
}

void trace_interrupt(struct bridge *b, const struct device *d, Tlpb__InterruptKind kind,
                     uint32_t vector)
{
    if (!b->trace)
        return;
    Tlpb__Interrupt irq;
    Tlpb__Envelope env;
    tlpb_interrupt_envelope(&env, &irq, kind, vector);
    write_record(b, TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST, d, &env);
}

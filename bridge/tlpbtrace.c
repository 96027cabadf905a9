/* tlpbtrace: print and filter a tlpbridged trace file. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pcapng.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: tlpbtrace [options] TRACE_FILE\n"
                 "  -d, --device NAME     only this device\n"
                 "  -k, --kind KIND       only this kind: MRd, MWr, CfgRd0, CfgWr0, Cpl, CplD, IRQ,\n"
                 "                        Reset, TimeSync\n"
                 "  -a, --address LO[-HI] only memory TLPs touching [LO, HI] (hex ok)\n"
                 "      --fallback        only completions made by the fallback\n"
                 "      --rejected        only TLPs and messages the bridge rejected\n"
                 "      --sim             simulated time instead of wall time (coupled runs):\n"
                 "                        only records stamped with a simulated time, in\n"
                 "                        simulated-time order, so two runs of the same guest\n"
                 "                        command compare equal with diff\n"
                 "  -c, --count           print only the number of matching records\n"
                 "  -F, --follow          keep reading as the trace grows (as tail -f), until\n"
                 "                        SIGINT or SIGTERM (records already written are read\n"
                 "                        first)\n"
                 "      --follow-timeout-ms N  with --follow: also stop after N ms without growth\n"
                 "      --pcapng OUT      write the matching records to OUT as pcapng for\n"
                 "                        Wireshark (see docs/bridge.md, \"Traces\") instead of\n"
                 "                        printing them; written to OUT.tmp and renamed to\n"
                 "                        OUT once complete (no OUT after an error)\n");
}

static const char *direction_name(Tlpb__TraceDirection d)
{
    switch (d) {
    case TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE: return "h->d";
    case TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST: return "d->h";
    case TLPB__TRACE_DIRECTION__TRACE_FALLBACK: return "fb->h";
    case TLPB__TRACE_DIRECTION__TRACE_REJECTED: return "REJ";
    case TLPB__TRACE_DIRECTION__TRACE_VIOLATION: return "VIOL";
    default: return "?";
    }
}

/* Payload bytes of a TLP put into a pcapng packet; the packet's original
 * length still counts all of them. Keeps every packet far below the
 * 262144-byte packets Wireshark reads. */
#define PCAPNG_PAYLOAD_CAPTURE_MAX 4096u

/* One record as a pcapng packet: our header, then the TLP as on the link,
 * the interrupt, or a text (docs/protocol.md, "Trace export (pcapng)").
 * tlp is NULL unless the record holds a TLP that decoded; text describes
 * anything that cannot be shown in wire format. */
static int export_record(FILE *out, const Tlpb__TraceRecord *rec, const struct tlpb_tlp *tlp,
                         const char *text)
{
    uint8_t wire_header[TLPB_WIRE_HEADER_MAX];
    int header_len = tlp ? tlpb_tlp_encode_header(tlp, wire_header) : -1;
    size_t device_len = strnlen(rec->device ? rec->device : "", UINT8_MAX);
    size_t backend_len = strnlen(rec->backend ? rec->backend : "", UINT8_MAX);
    size_t reason_len = strnlen(rec->reason ? rec->reason : "", UINT16_MAX);
    char unencodable[600];
    if (tlp && header_len < 0) {
        /* e.g. fast-mode DMA beyond 1024 DW: not a TLP the link can carry */
        snprintf(unencodable, sizeof(unencodable), "not encodable as a PCIe TLP: %s", text);
        text = unencodable;
    }
    size_t text_len = strlen(text); /* both sources are NUL-terminated, < 1 KiB */
    uint32_t payload_bytes = tlp ? tlp->payload_bytes : 0;
    uint32_t captured_payload =
        payload_bytes < PCAPNG_PAYLOAD_CAPTURE_MAX ? payload_bytes : PCAPNG_PAYLOAD_CAPTURE_MAX;
    size_t cap = 8 + device_len + backend_len + reason_len + 4 + text_len + TLPB_WIRE_HEADER_MAX +
                 captured_payload;
    uint8_t *pkt = malloc(cap);
    if (!pkt)
        return -1;
    size_t n = 0;
    pkt[n++] = TLPB_PCAPNG_VERSION;
    pkt[n++] = (uint8_t)rec->direction;
    enum tlpb_pcapng_record_kind kind = TLPB_PCAPNG_KIND_OTHER;
    if (tlp && header_len > 0)
        kind = TLPB_PCAPNG_KIND_TLP;
    else if (!tlp && rec->message->body_case == TLPB__ENVELOPE__BODY_INTERRUPT)
        kind = TLPB_PCAPNG_KIND_INTERRUPT;
    pkt[n++] = (uint8_t)kind;
    pkt[n++] = (uint8_t)device_len;
    memcpy(pkt + n, rec->device, device_len);
    n += device_len;
    pkt[n++] = (uint8_t)backend_len;
    memcpy(pkt + n, rec->backend, backend_len);
    n += backend_len;
    tlpb_put_le16(pkt + n, (uint16_t)reason_len);
    n += 2;
    memcpy(pkt + n, rec->reason, reason_len);
    n += reason_len;
    size_t orig_len = n;
    if (kind == TLPB_PCAPNG_KIND_TLP) {
        memcpy(pkt + n, wire_header, (size_t)header_len);
        n += (size_t)header_len;
        if (captured_payload) {
            memcpy(pkt + n, tlp->payload, captured_payload);
            n += captured_payload;
        }
        orig_len = n + (payload_bytes - captured_payload);
    } else if (kind == TLPB_PCAPNG_KIND_INTERRUPT) {
        pkt[n++] = (uint8_t)rec->message->interrupt->kind;
        tlpb_put_le32(pkt + n, rec->message->interrupt->vector);
        n += 4;
    } else {
        tlpb_put_le16(pkt + n, (uint16_t)text_len);
        n += 2;
        memcpy(pkt + n, text, text_len);
        n += text_len;
    }
    if (kind != TLPB_PCAPNG_KIND_TLP)
        orig_len = n;
    int rc = pcapng_write_packet(out, rec->time_ns, pkt, (uint32_t)n, (uint32_t)orig_len);
    free(pkt);
    return rc;
}

/* A record printed with --sim, held until all are read: the trace's order
 * of the host's and the device's streams depends on wall time, their
 * simulated times do not. */
struct sim_line {
    uint64_t sim_time_ps;
    unsigned stream;        /* 0 host to device, 1 to the host, 2 rejected */
    unsigned long long seq; /* order within the trace */
    char *text;
};

static int sim_line_cmp(const void *a, const void *b)
{
    const struct sim_line *x = a, *y = b;
    if (x->sim_time_ps != y->sim_time_ps)
        return x->sim_time_ps < y->sim_time_ps ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static unsigned sim_stream(Tlpb__TraceDirection d)
{
    switch (d) {
    case TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE: return 0;
    case TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST:
    case TLPB__TRACE_DIRECTION__TRACE_FALLBACK: return 1;
    default: return 2;
    }
}

/* Picoseconds as exact nanoseconds. */
static void format_sim_time(char *out, size_t size, uint64_t ps)
{
    snprintf(out, size, "%" PRIu64 ".%03" PRIu64 "ns", ps / 1000u, ps % 1000u);
}

static const char *time_sync_kind_name(Tlpb__TimeSyncKind k)
{
    switch (k) {
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED: return "COUPLED";
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE: return "FREE";
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT: return "GRANT";
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED: return "REACHED";
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS: return "PROGRESS";
    default: return "?";
    }
}

static void format_time_sync(char *line, size_t size, const Tlpb__TimeSync *ts)
{
    char t[40], until[40], next[40];
    format_sim_time(t, sizeof(t), ts->sim_time_ps);
    format_sim_time(until, sizeof(until), ts->grant_until_ps);
    format_sim_time(next, sizeof(next), ts->next_event_ps);
    switch (ts->kind) {
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT:
        snprintf(line, size, "TimeSync GRANT id %" PRIu64 " until %s (host at %s)", ts->sync_id,
                 until, t);
        break;
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED:
        snprintf(line, size, "TimeSync REACHED id %" PRIu64 " at %s%s%s%s cycles %" PRIu64,
                 ts->sync_id, t, ts->idle ? " idle" : "", ts->next_event_ps ? " next event " : "",
                 ts->next_event_ps ? next : "", ts->clocked_cycles);
        break;
    default:
        snprintf(line, size, "TimeSync %s at %s", time_sync_kind_name(ts->kind), t);
        break;
    }
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Reads the trace file; with follow, waits at its end for it to grow. */
struct trace_reader {
    int fd;
    bool follow;
    long timeout_ms;        /* follow: give up after this long without growth; -1 never */
    long idle_ms;
    off_t offset;           /* bytes read so far */
};

enum read_result { READ_OK, READ_END, READ_PARTIAL, READ_ERROR };

/* Poll interval while following: short enough for a live view, long enough
 * to cost nothing. */
#define FOLLOW_POLL_MS 20

/* Read exactly n bytes. READ_END: nothing at all was there (the end of
 * the records); READ_PARTIAL: some but not all. While following, the end
 * of the file is waited at (a record being written is not an error) until a
 * stop signal or the timeout; after a stop signal what is already in the
 * file is still read. */
static enum read_result read_whole(struct trace_reader *rd, void *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(rd->fd, (uint8_t *)dst + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "tlpbtrace: read: %s\n", strerror(errno));
            return READ_ERROR;
        }
        if (r > 0) {
            got += (size_t)r;
            rd->offset += r;
            rd->idle_ms = 0;
            continue;
        }
        /* Stopped by a signal: a record still being written is left for
         * the next reader, not an error. */
        if (rd->follow && stop_requested)
            return READ_END;
        if (!rd->follow || (rd->timeout_ms >= 0 && rd->idle_ms >= rd->timeout_ms))
            return got == 0 ? READ_END : READ_PARTIAL;
        /* A file cut back under the reader (truncated, or replaced in
         * place) would otherwise be waited on for ever. */
        struct stat st;
        if (fstat(rd->fd, &st) != 0) {
            fprintf(stderr, "tlpbtrace: stat: %s\n", strerror(errno));
            return READ_ERROR;
        }
        if (st.st_size < rd->offset) {
            fprintf(stderr, "tlpbtrace: trace cut back to %lld bytes\n", (long long)st.st_size);
            return READ_ERROR;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = FOLLOW_POLL_MS * 1000000L};
        nanosleep(&ts, NULL); /* a stop signal cuts it short */
        rd->idle_ms += FOLLOW_POLL_MS;
    }
    return READ_OK;
}

int main(int argc, char **argv)
{
    const char *device = NULL, *kind = NULL;
    uint64_t lo = 0, hi = UINT64_MAX;
    bool only_fallback = false, only_rejected = false, count_only = false, follow = false;
    bool sim_time = false;
    struct sim_line *sim_lines = NULL;
    size_t sim_count = 0, sim_cap = 0;
    long follow_timeout_ms = -1;
    const char *pcapng_path = NULL;
    static const struct option opts[] = {
        {"device", required_argument, NULL, 'd'}, {"kind", required_argument, NULL, 'k'},
        {"address", required_argument, NULL, 'a'}, {"fallback", no_argument, NULL, 'f'},
        {"count", no_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"rejected", no_argument, NULL, 'r'}, {"follow", no_argument, NULL, 'F'},
        {"follow-timeout-ms", required_argument, NULL, 'T'},
        {"pcapng", required_argument, NULL, 'P'}, {"sim", no_argument, NULL, 'S'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "d:k:a:chF", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': device = optarg; break;
        case 'k': kind = optarg; break;
        case 'a': {
            char *end;
            lo = strtoull(optarg, &end, 0);
            hi = lo;
            if (*end == '-')
                hi = strtoull(end + 1, &end, 0);
            if (*end || hi < lo) {
                fprintf(stderr, "tlpbtrace: bad --address %s\n", optarg);
                return 2;
            }
            break;
        }
        case 'f': only_fallback = true; break;
        case 'c': count_only = true; break;
        case 'r': only_rejected = true; break;
        case 'F': follow = true; break;
        case 'T': {
            char *end;
            errno = 0;
            follow_timeout_ms = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || follow_timeout_ms < 0) {
                fprintf(stderr, "tlpbtrace: bad --follow-timeout-ms %s\n", optarg);
                return 2;
            }
            break;
        }
        case 'P': pcapng_path = optarg; break;
        case 'S': sim_time = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    if (sim_time && (follow || pcapng_path)) {
        /* --sim orders the whole trace by simulated time: it needs its end. */
        fprintf(stderr, "tlpbtrace: --sim does not go with --follow or --pcapng\n");
        return 2;
    }
    int fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tlpbtrace: %s: %s\n", argv[optind], strerror(errno));
        return 1;
    }
    if (follow) {
        /* No SA_RESTART: the signal also ends the wait for more. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    struct trace_reader rd = {.fd = fd, .follow = follow, .timeout_ms = follow_timeout_ms};
    char magic[8];
    if (read_whole(&rd, magic, 8) != READ_OK || memcmp(magic, "TLPBTRC1", 8) != 0) {
        fprintf(stderr, "tlpbtrace: %s is not a tlpbridge trace\n", argv[optind]);
        return 1;
    }
    FILE *pcapng = NULL;
    char *pcapng_tmp = NULL;
    if (pcapng_path) {
        /* Written to OUT.tmp and renamed at the end: a failed export
         * leaves no half file, and never destroys the trace it reads. */
        struct stat in_st, out_st;
        if (fstat(fd, &in_st) == 0 && stat(pcapng_path, &out_st) == 0 &&
            in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
            fprintf(stderr, "tlpbtrace: --pcapng %s is the trace being read\n", pcapng_path);
            close(fd);
            return 2;
        }
        size_t tmp_len = strlen(pcapng_path) + sizeof(".tmp");
        pcapng_tmp = malloc(tmp_len);
        if (pcapng_tmp) {
            snprintf(pcapng_tmp, tmp_len, "%s.tmp", pcapng_path);
            pcapng = fopen(pcapng_tmp, "wbe");
        }
        if (!pcapng || pcapng_write_header(pcapng, TLPB_PCAPNG_LINKTYPE) != 0) {
            fprintf(stderr, "tlpbtrace: cannot write %s: %s\n",
                    pcapng_tmp ? pcapng_tmp : pcapng_path, strerror(errno));
            if (pcapng) {
                fclose(pcapng);
                unlink(pcapng_tmp);
            }
            free(pcapng_tmp);
            close(fd);
            return 1;
        }
    }
    uint8_t *buf = NULL;
    size_t cap = 0;
    unsigned long long matched = 0, records = 0;
    int status = 0;
    for (;;) {
        uint8_t prefix[4];
        enum read_result got = read_whole(&rd, prefix, 4);
        if (got == READ_END)
            break;
        if (got == READ_PARTIAL) {
            fprintf(stderr, "tlpbtrace: truncated record after %llu records\n", records);
            status = 1;
            break;
        }
        if (got == READ_ERROR) {
            status = 1;
            break;
        }
        uint32_t len = tlpb_get_le32(prefix);
        if (len > TLPB_HARD_MAX_FRAME_BYTES) {
            fprintf(stderr, "tlpbtrace: record %llu claims %u bytes; file corrupt\n", records, len);
            status = 1;
            break;
        }
        if (len > cap) {
            uint8_t *grown = realloc(buf, len);
            if (!grown) {
                status = 1;
                break;
            }
            buf = grown;
            cap = len;
        }
        /* A record is whole or not there at all: the prefix counts. */
        got = read_whole(&rd, buf, len);
        if (got != READ_OK) {
            if (got != READ_ERROR)
                fprintf(stderr, "tlpbtrace: truncated record after %llu records\n", records);
            status = 1;
            break;
        }
        records++;
        Tlpb__TraceRecord *rec = tlpb__trace_record__unpack(NULL, len, buf);
        if (!rec || !rec->message) {
            fprintf(stderr, "tlpbtrace: record %llu does not decode\n", records);
            if (rec)
                tlpb__trace_record__free_unpacked(rec, NULL);
            status = 1;
            continue;
        }
        char line[512] = "";
        struct tlpb_tlp tlp;
        bool tlp_decoded = false;
        bool match = !device || strcmp(device, rec->device) == 0;
        if (only_fallback && rec->direction != TLPB__TRACE_DIRECTION__TRACE_FALLBACK)
            match = false;
        bool rejected = rec->direction == TLPB__TRACE_DIRECTION__TRACE_REJECTED;
        if (only_rejected && !rejected)
            match = false;
        if (rec->message->body_case == TLPB__ENVELOPE__BODY_TLP) {
            const char *reason;
            if (tlpb_tlp_from_pb(&tlp, rec->message->tlp, &reason) != 0) {
                snprintf(line, sizeof(line), "malformed TLP: %s", reason);
                /* Neither of a kind nor at an address a filter asks for. */
                if (kind || lo != 0 || hi != UINT64_MAX)
                    match = false;
            } else {
                tlp_decoded = true;
                tlpb_tlp_format(&tlp, line, sizeof(line));
                if (kind && strcasecmp(kind, tlpb_tlp_kind_name(tlp.kind)) != 0)
                    match = false;
                if (lo != 0 || hi != UINT64_MAX) {
                    bool mem = tlp.kind == TLPB_TLP_MRD || tlp.kind == TLPB_TLP_MWR;
                    uint64_t end = tlp.address + (uint64_t)tlp.length_dw * 4u - 1u;
                    if (!mem || end < lo || tlp.address > hi)
                        match = false;
                }
            }
        } else if (rec->message->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC) {
            format_time_sync(line, sizeof(line), rec->message->time_sync);
            if (kind && strcasecmp(kind, "TimeSync") != 0)
                match = false;
            if (lo != 0 || hi != UINT64_MAX)
                match = false;
        } else if (rec->message->body_case == TLPB__ENVELOPE__BODY_RESET) {
            snprintf(line, sizeof(line), "Reset %s",
                     rec->message->reset->kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL
                         ? "function-level" : "hot");
            if (kind && strcasecmp(kind, "Reset") != 0)
                match = false;
            if (lo != 0 || hi != UINT64_MAX)
                match = false;
        } else if (rec->message->body_case == TLPB__ENVELOPE__BODY_INTERRUPT) {
            static const char *names[] = {"?", "MSI-X", "MSI", "INTx assert", "INTx deassert"};
            unsigned k = (unsigned)rec->message->interrupt->kind;
            snprintf(line, sizeof(line), "IRQ %s vector %u", k < 5 ? names[k] : "?",
                     rec->message->interrupt->vector);
            if (kind && strcasecmp(kind, "IRQ") != 0)
                match = false;
            if (lo != 0 || hi != UINT64_MAX)
                match = false;
        } else {
            /* A rejected message of another kind (sent in the wrong direction). */
            snprintf(line, sizeof(line), "%s", tlpb_message_name(rec->message->body_case));
            if (kind || lo != 0 || hi != UINT64_MAX)
                match = false;
        }
        /* The simulated time the record carries (0: none). */
        uint64_t stamp = 0;
        switch (rec->message->body_case) {
        case TLPB__ENVELOPE__BODY_TLP: stamp = rec->message->tlp->sim_time_ps; break;
        case TLPB__ENVELOPE__BODY_INTERRUPT: stamp = rec->message->interrupt->sim_time_ps; break;
        case TLPB__ENVELOPE__BODY_RESET: stamp = rec->message->reset->sim_time_ps; break;
        case TLPB__ENVELOPE__BODY_TIME_SYNC: stamp = rec->message->time_sync->sim_time_ps; break;
        default: break;
        }
        /* Unstamped records (free-running traffic, the bridge's own config
         * replay) depend on wall time: not in a --sim listing. */
        if (sim_time && stamp == 0)
            match = false;
        /* The reason has a field of its own in a pcapng export. */
        char body_text[sizeof(line)];
        snprintf(body_text, sizeof(body_text), "%s", line);
        if (rec->direction == TLPB__TRACE_DIRECTION__TRACE_VIOLATION) {
            /* The reason (the formatted violation) starts with the rule. */
            size_t used = strlen(line);
            snprintf(line + used, sizeof(line) - used, " -- violation of %s: %s",
                     rec->rule && rec->rule[0] ? rec->rule : "(no rule recorded)",
                     rec->reason ? rec->reason : "");
        } else if (rejected) {
            size_t used = strlen(line);
            snprintf(line + used, sizeof(line) - used, " -- reason: %s",
                     rec->reason && rec->reason[0] ? rec->reason : "(no reason recorded)");
        }
        if (match && pcapng) {
            matched++;
            if (export_record(pcapng, rec, tlp_decoded ? &tlp : NULL, body_text) != 0 ||
                (follow && fflush(pcapng) != 0)) {
                fprintf(stderr, "tlpbtrace: cannot write %s: %s\n", pcapng_tmp, strerror(errno));
                tlpb__trace_record__free_unpacked(rec, NULL);
                status = 1;
                break;
            }
        } else if (match && sim_time) {
            matched++;
            if (!count_only) {
                char when[40], text[sizeof(line) + 200];
                format_sim_time(when, sizeof(when), stamp);
                snprintf(text, sizeof(text), "%-16s %-8s %-8s %-5s %s", when, rec->device,
                         rec->backend, direction_name(rec->direction), line);
                if (sim_count == sim_cap) {
                    size_t grown_cap = sim_cap ? sim_cap * 2 : 256;
                    struct sim_line *grown = realloc(sim_lines, grown_cap * sizeof(*grown));
                    if (!grown) {
                        fprintf(stderr, "tlpbtrace: out of memory\n");
                        tlpb__trace_record__free_unpacked(rec, NULL);
                        status = 1;
                        break;
                    }
                    sim_lines = grown;
                    sim_cap = grown_cap;
                }
                struct sim_line *sl = &sim_lines[sim_count];
                sl->sim_time_ps = stamp;
                sl->stream = sim_stream(rec->direction);
                sl->seq = records;
                sl->text = strdup(text);
                if (!sl->text) {
                    fprintf(stderr, "tlpbtrace: out of memory\n");
                    tlpb__trace_record__free_unpacked(rec, NULL);
                    status = 1;
                    break;
                }
                sim_count++;
            }
        } else if (match) {
            matched++;
            if (!count_only) {
                if (stamp) {
                    size_t used = strlen(line);
                    char when[40];
                    format_sim_time(when, sizeof(when), stamp);
                    snprintf(line + used, sizeof(line) - used, " @%s", when);
                }
                time_t sec = (time_t)(rec->time_ns / 1000000000u);
                struct tm tm;
                localtime_r(&sec, &tm);
                printf("%02d:%02d:%02d.%06" PRIu64 " %-8s %-8s %-5s %s\n", tm.tm_hour, tm.tm_min,
                       tm.tm_sec, (rec->time_ns % 1000000000u) / 1000u, rec->device, rec->backend,
                       direction_name(rec->direction), line);
            }
        }
        tlpb__trace_record__free_unpacked(rec, NULL);
    }
    if (sim_lines) {
        qsort(sim_lines, sim_count, sizeof(*sim_lines), sim_line_cmp);
        for (size_t i = 0; i < sim_count; i++) {
            printf("%s\n", sim_lines[i].text);
            free(sim_lines[i].text);
        }
        free(sim_lines);
    }
    if (count_only)
        printf("%llu\n", matched);
    if (pcapng) {
        if (fclose(pcapng) != 0) {
            fprintf(stderr, "tlpbtrace: cannot write %s: %s\n", pcapng_tmp, strerror(errno));
            status = 1;
        }
        if (status == 0 && rename(pcapng_tmp, pcapng_path) != 0) {
            fprintf(stderr, "tlpbtrace: cannot rename %s to %s: %s\n", pcapng_tmp, pcapng_path,
                    strerror(errno));
            status = 1;
        }
        if (status != 0)
            unlink(pcapng_tmp);
        free(pcapng_tmp);
    }
    free(buf);
    close(fd);
    return status;
}

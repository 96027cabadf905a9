/* tlpbtrace: print and filter a tlpbridged trace file. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: tlpbtrace [options] TRACE_FILE\n"
                 "  -d, --device NAME     only this device\n"
                 "  -k, --kind KIND       only this kind: MRd, MWr, CfgRd0, CfgWr0, Cpl, CplD, IRQ\n"
                 "  -a, --address LO[-HI] only memory TLPs touching [LO, HI] (hex ok)\n"
                 "      --fallback        only completions made by the fallback\n"
                 "  -c, --count           print only the number of matching records\n");
}

static const char *direction_name(Tlpb__TraceDirection d)
{
    switch (d) {
    case TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE: return "h->d";
    case TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST: return "d->h";
    case TLPB__TRACE_DIRECTION__TRACE_FALLBACK: return "fb->h";
    default: return "?";
    }
}

int main(int argc, char **argv)
{
    const char *device = NULL, *kind = NULL;
    uint64_t lo = 0, hi = UINT64_MAX;
    bool only_fallback = false, count_only = false;
    static const struct option opts[] = {
        {"device", required_argument, NULL, 'd'}, {"kind", required_argument, NULL, 'k'},
        {"address", required_argument, NULL, 'a'}, {"fallback", no_argument, NULL, 'f'},
        {"count", no_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "d:k:a:ch", opts, NULL)) != -1) {
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
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    FILE *f = fopen(argv[optind], "rb");
    if (!f) {
        fprintf(stderr, "tlpbtrace: %s: %s\n", argv[optind], strerror(errno));
        return 1;
    }
    char magic[8];
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "TLPBTRC1", 8) != 0) {
        fprintf(stderr, "tlpbtrace: %s is not a tlpbridge trace\n", argv[optind]);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t cap = 0;
    unsigned long long matched = 0, records = 0;
    int status = 0;
    for (;;) {
        uint8_t prefix[4];
        size_t got = fread(prefix, 1, 4, f);
        if (got == 0)
            break;
        if (got != 4) {
            fprintf(stderr, "tlpbtrace: truncated record after %llu records\n", records);
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
        if (fread(buf, 1, len, f) != len) {
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
        bool match = !device || strcmp(device, rec->device) == 0;
        if (only_fallback && rec->direction != TLPB__TRACE_DIRECTION__TRACE_FALLBACK)
            match = false;
        if (rec->message->body_case == TLPB__ENVELOPE__BODY_TLP) {
            struct tlpb_tlp tlp;
            const char *reason;
            if (tlpb_tlp_from_pb(&tlp, rec->message->tlp, &reason) != 0) {
                snprintf(line, sizeof(line), "malformed TLP: %s", reason);
            } else {
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
        } else if (rec->message->body_case == TLPB__ENVELOPE__BODY_INTERRUPT) {
            static const char *names[] = {"?", "MSI-X", "MSI", "INTx assert", "INTx deassert"};
            unsigned k = (unsigned)rec->message->interrupt->kind;
            snprintf(line, sizeof(line), "IRQ %s vector %u", k < 5 ? names[k] : "?",
                     rec->message->interrupt->vector);
            if (kind && strcasecmp(kind, "IRQ") != 0)
                match = false;
            if (lo != 0 || hi != UINT64_MAX)
                match = false;
        }
        if (match) {
            matched++;
            if (!count_only) {
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
    if (count_only)
        printf("%llu\n", matched);
    free(buf);
    fclose(f);
    return status;
}

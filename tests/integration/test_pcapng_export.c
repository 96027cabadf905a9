/* A trace exported with `tlpbtrace --pcapng` and read back by tshark with
 * the Wireshark dissector bridge/wireshark/tlpbridge.lua (docs/bridge.md,
 * "Traces"; docs/protocol.md, "Trace export (pcapng)"): a real run of the
 * dmacopy model (config reads, SCRATCH write and read, a small DMA copy
 * with its MSI-X) decodes to the values the host sent and received.
 * Skipped (exit 77) when tshark is not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"

#define SCRATCH_VALUE 0xA5A55A5Au
#define COPY_BYTES 256u

static struct dmacopy_fixture fx;
static char tshark[512];

static bool find_tshark(void)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(tshark, sizeof(tshark), "%s/tshark", dir);
        if (access(tshark, X_OK) == 0)
            return true;
    }
    return false;
}

/* The fields tshark prints per packet, tab-separated, in this order. */
static const char *const fields[] = {
    "tlpbridge.device",       "tlpbridge.direction",    "tlpbridge.kind",
    "tlpbridge.tlp.fmttp",    "tlpbridge.tlp.addr",     "tlpbridge.tlp.length",
    "tlpbridge.tlp.first_be", "tlpbridge.tlp.last_be",  "tlpbridge.tlp.byte_count",
    "tlpbridge.tlp.status",   "tlpbridge.tlp.lower_addr", "tlpbridge.tlp.cfg_offset",
    "tlpbridge.tlp.rq_id",    "tlpbridge.tlp.tag",      "tlpbridge.tlp.payload",
    "tlpbridge.irq.kind",     "tlpbridge.irq.vector",   "tlpbridge.tlp.tc",
    "tlpbridge.tlp.ep",       "tlpbridge.tlp.td",       "tlpbridge.tlp.attr",
    "tlpbridge.reason",
};
enum { F_DEVICE, F_DIR, F_KIND, F_FMTTP, F_ADDR, F_LENGTH, F_FIRST_BE, F_LAST_BE, F_BYTE_COUNT,
       F_STATUS, F_LOWER_ADDR, F_CFG_OFFSET, F_RQ_ID, F_TAG, F_PAYLOAD, F_IRQ_KIND, F_IRQ_VECTOR,
       F_TC, F_EP, F_TD, F_ATTR, F_REASON, F_COUNT };

struct row {
    char *f[F_COUNT];
};

/* Split tshark's output into rows (modifies text). */
static unsigned parse_rows(char *text, struct row *rows, unsigned max)
{
    unsigned n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && n < max;
         line = strtok_r(NULL, "\n", &save)) {
        char *p = line;
        for (unsigned i = 0; i < F_COUNT; i++) {
            rows[n].f[i] = p;
            char *tab = p ? strchr(p, '\t') : NULL;
            if (tab)
                *tab = '\0';
            p = tab ? tab + 1 : NULL;
            if (!rows[n].f[i])
                rows[n].f[i] = (char *)"";
        }
        n++;
    }
    return n;
}

static bool is(const struct row *r, unsigned field, const char *want)
{
    return strcmp(r->f[field], want) == 0;
}

/* The first row after `from` with fmttp and addr as given; -1 if none. */
static int find_tlp(const struct row *rows, unsigned n, unsigned from, const char *fmttp,
                    const char *addr)
{
    for (unsigned i = from; i < n; i++)
        if (is(&rows[i], F_FMTTP, fmttp) && (!addr || is(&rows[i], F_ADDR, addr)))
            return (int)i;
    return -1;
}

/* The completion for request row req: same requester ID and tag, after it. */
static int find_completion(const struct row *rows, unsigned n, int req)
{
    for (unsigned i = (unsigned)req + 1; i < n; i++)
        if ((is(&rows[i], F_FMTTP, "0x4a") || is(&rows[i], F_FMTTP, "0x0a")) &&
            strcmp(rows[i].f[F_RQ_ID], rows[req].f[F_RQ_ID]) == 0 &&
            strcmp(rows[i].f[F_TAG], rows[req].f[F_TAG]) == 0)
            return (int)i;
    return -1;
}

static void dump_rows(const struct row *rows, unsigned n)
{
    for (unsigned i = 0; i < n && i < 60; i++) {
        printf("   ");
        for (unsigned k = 0; k < F_COUNT; k++)
            printf(" %s", rows[i].f[k][0] ? rows[i].f[k] : "-");
        printf("\n");
    }
}

static void case_export(const char *trace)
{
    fx_config_read(&fx, 0x00);
    fx_wr32(&fx, REG_SCRATCH, SCRATCH_VALUE);
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), SCRATCH_VALUE, "SCRATCH while tracing");
    fx_reset_engine(&fx, 16);
    fx_copy(&fx, SRC_OFF, DST_OFF, COPY_BYTES, "small copy while tracing");
    fx_close(&fx);
    /* A TLP the bridge refuses (1 DW with a last_be), from a raw host. */
    struct raw r;
    raw_host(&r, "dmacopy0");
    struct tlpb_tlp bad = {.kind = TLPB_TLP_MRD, .tag = 5, .length_dw = 1, .first_be = 0xF,
                           .last_be = 0xF, .address = DMACOPY_BAR0_ADDR};
    raw_send_tlp(&r, &bad);
    expect_ur(&r, 5, "MRd with last_be on 1 DW");
    raw_close(&r);

    const char *pcap = it_path("trace.pcapng");
    char *out = NULL, *err = NULL;
    const char *conv[] = {"--pcapng", pcap, "--device", "dmacopy0", trace, NULL};
    int rc = it_trace_tool(conv, &out, &err);
    REQUIRE(rc == 0, "tlpbtrace --pcapng: exit %d '%s'", rc, err ? err : "");
    free(out);
    free(err);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", pcap);
    CHECK(access(tmp, F_OK) != 0, "%s is left after a complete export", tmp);
    const char *count_args[] = {"--device", "dmacopy0", trace, NULL};
    long records = it_trace_count(count_args);
    REQUIRE(records > 0, "tlpbtrace --count: %ld records", records);

    const char *argv[8 + 2 * F_COUNT];
    unsigned a = 0;
    argv[a++] = tshark;
    argv[a++] = "-X";
    argv[a++] = "lua_script:" TLPB_DISSECTOR;
    argv[a++] = "-r";
    argv[a++] = pcap;
    argv[a++] = "-T";
    argv[a++] = "fields";
    for (unsigned i = 0; i < F_COUNT; i++) {
        argv[a++] = "-e";
        argv[a++] = fields[i];
    }
    argv[a] = NULL;
    rc = it_run_capture(argv, &out, &err);
    REQUIRE(rc == 0 && out && err, "tshark: exit %d '%s'", rc, err ? err : "");
    CHECK(!strstr(err, "Lua") && !strstr(err, "lua"), "tshark reports a Lua problem: %s", err);

    static struct row rows[4096];
    unsigned n = parse_rows(out, rows, 4096);
    CHECK(n == (unsigned long)records, "tshark read %u packets, the trace has %ld records", n, records);
    bool ok = true;
    for (unsigned i = 0; i < n; i++)
        ok = ok && is(&rows[i], F_DEVICE, "dmacopy0");
    CHECK(ok, "a packet without the device name dmacopy0");

    /* CfgRd0 of register 0, and its CplD: 4 bytes, vendor/device ID. */
    int cfg = find_tlp(rows, n, 0, "0x04", NULL);
    CHECK(cfg >= 0 && is(&rows[cfg], F_CFG_OFFSET, "0x0000") && is(&rows[cfg], F_LENGTH, "1") &&
              is(&rows[cfg], F_DIR, "1") && is(&rows[cfg], F_FIRST_BE, "0x0f"),
          "CfgRd0 of register 0 not decoded as such");
    int cfg_cpl = cfg >= 0 ? find_completion(rows, n, cfg) : -1;
    CHECK(cfg_cpl >= 0 && is(&rows[cfg_cpl], F_FMTTP, "0x4a") &&
              is(&rows[cfg_cpl], F_BYTE_COUNT, "4") && is(&rows[cfg_cpl], F_STATUS, "0") &&
              is(&rows[cfg_cpl], F_DIR, "2") && is(&rows[cfg_cpl], F_PAYLOAD, "3412117a"),
          "the completion of the CfgRd0 of register 0");

    /* The SCRATCH write: MWr, 32-bit address, 1 DW, its value little-endian. */
    int mwr = find_tlp(rows, n, 0, "0x40", "0x00000000fe000004");
    CHECK(mwr >= 0 && is(&rows[mwr], F_LENGTH, "1") && is(&rows[mwr], F_FIRST_BE, "0x0f") &&
              is(&rows[mwr], F_LAST_BE, "0x00") && is(&rows[mwr], F_PAYLOAD, "5a5aa5a5") &&
              is(&rows[mwr], F_TC, "0") && is(&rows[mwr], F_EP, "0") && is(&rows[mwr], F_TD, "0"),
          "the SCRATCH MWr");
    /* The SCRATCH read after it, and its CplD of 4 bytes, status SC. */
    int mrd = find_tlp(rows, n, mwr >= 0 ? (unsigned)mwr : 0, "0x00", "0x00000000fe000004");
    CHECK(mrd >= 0 && is(&rows[mrd], F_LENGTH, "1") && is(&rows[mrd], F_DIR, "1"),
          "the SCRATCH MRd");
    int cpld = mrd >= 0 ? find_completion(rows, n, mrd) : -1;
    CHECK(cpld >= 0 && is(&rows[cpld], F_FMTTP, "0x4a") && is(&rows[cpld], F_BYTE_COUNT, "4") &&
              is(&rows[cpld], F_STATUS, "0") && is(&rows[cpld], F_LOWER_ADDR, "0x04") &&
              is(&rows[cpld], F_LENGTH, "1") && is(&rows[cpld], F_PAYLOAD, "5a5aa5a5"),
          "the CplD of the SCRATCH read");

    /* The copy: the device reads the source from guest memory (a d->h MRd
     * of all 256 bytes at once) and writes it to the destination. */
    char src[32], dst[32], len[16];
    snprintf(src, sizeof(src), "0x%016llx", GUEST_RAM_BASE + SRC_OFF);
    snprintf(dst, sizeof(dst), "0x%016llx", GUEST_RAM_BASE + DST_OFF);
    snprintf(len, sizeof(len), "%u", COPY_BYTES / 4);
    int dma_rd = find_tlp(rows, n, 0, "0x00", src);
    CHECK(dma_rd >= 0 && is(&rows[dma_rd], F_DIR, "2") && is(&rows[dma_rd], F_LENGTH, len) &&
              is(&rows[dma_rd], F_LAST_BE, "0x0f"),
          "the DMA read of the source (%s, %s DW)", src, len);
    int dma_cpl = dma_rd >= 0 ? find_completion(rows, n, dma_rd) : -1;
    char bc[16];
    snprintf(bc, sizeof(bc), "%u", COPY_BYTES);
    CHECK(dma_cpl >= 0 && is(&rows[dma_cpl], F_DIR, "1") && is(&rows[dma_cpl], F_BYTE_COUNT, bc),
          "the completion of the DMA read: byte count %s", bc);
    int dma_wr = find_tlp(rows, n, 0, "0x40", dst);
    CHECK(dma_wr >= 0 && is(&rows[dma_wr], F_DIR, "2"), "the DMA write of the destination (%s)", dst);
    int irq = -1;
    for (unsigned i = 0; i < n && irq < 0; i++)
        if (is(&rows[i], F_KIND, "2"))
            irq = (int)i;
    CHECK(irq >= 0 && is(&rows[irq], F_IRQ_KIND, "1") && is(&rows[irq], F_IRQ_VECTOR, "0") &&
              is(&rows[irq], F_DIR, "2"),
          "the MSI-X vector 0 after the copy");
    /* The MRd the bridge refused: direction 4, the TLP as sent, the reason. */
    int rej = -1;
    for (unsigned i = 0; i < n && rej < 0; i++)
        if (is(&rows[i], F_DIR, "4"))
            rej = (int)i;
    CHECK(rej >= 0 && is(&rows[rej], F_FMTTP, "0x00") && is(&rows[rej], F_TAG, "0x05") &&
              is(&rows[rej], F_LAST_BE, "0x0f") && is(&rows[rej], F_ADDR, "0x00000000fe000000") &&
              strstr(rows[rej].f[F_REASON], "last_be must be 0 for a 1-DW request"),
          "the rejected MRd with its reason");
    if (it_failures)
        dump_rows(rows, n);
    free(out);
    free(err);
}

/* The trace given as its own --pcapng output: refused, the trace intact. */
static void case_same_file(const char *trace)
{
    struct stat before, after;
    REQUIRE(stat(trace, &before) == 0 && before.st_size > 8, "no trace to export");
    const char *args[] = {"--pcapng", trace, trace, NULL};
    char *out = NULL, *err = NULL;
    int rc = it_trace_tool(args, &out, &err);
    CHECK(rc == 2 && err && strstr(err, "is the trace being read"),
          "tlpbtrace --pcapng TRACE TRACE: exit %d '%s'", rc, err ? err : "");
    free(out);
    free(err);
    CHECK(stat(trace, &after) == 0 && after.st_size == before.st_size,
          "the trace was %lld bytes, now %lld", (long long)before.st_size, (long long)after.st_size);
    const char *plain[] = {trace, NULL};
    CHECK(it_trace_count(plain) > 0, "the trace no longer reads");
}

int main(int argc, char **argv)
{
    if (!find_tshark()) {
        printf("SKIP: tshark is not installed (apt-get install tshark); the dissector is untested\n");
        return 77;
    }
    it_init(argc, argv, "test_pcapng_export");
    REQUIRE(it_paths.model && it_paths.tracetool, "--model and --tlpbtrace are required");
    const char *trace = it_path("bridge.trace");
    char dev[1200];
    snprintf(dev, sizeof(dev), "dmacopy0:hlsim=%s", it_paths.model);
    const char *args[] = {"--device", dev, "--trace", trace, NULL};
    it_start_bridge(args);
    fx_open(&fx, "dmacopy0", false);
    fx_enumerate(&fx);
    fx_init_device(&fx);
    IT_RUN("tlpbtrace --pcapng read back by tshark with the dissector", case_export(trace));
    IT_RUN("tlpbtrace --pcapng refuses to overwrite the trace it reads", case_same_file(trace));
    return it_finish();
}

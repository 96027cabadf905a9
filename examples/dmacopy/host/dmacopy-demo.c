/* dmacopy-demo: drive the dmacopy device through a running tlpbridged and
 * print what happened. Exits 0 only if every copy's data and CRC check out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dmacopy_host.h"
#include "tlpb/wire.h"

int main(int argc, char **argv)
{
    struct dmacopy_host_options opts = {.device = "dmacopy0"};
    static const struct option longopts[] = {{"socket", required_argument, NULL, 's'},
                                             {"device", required_argument, NULL, 'd'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "s:d:", longopts, NULL)) != -1) {
        if (ch == 's')
            opts.socket = optarg;
        else if (ch == 'd')
            opts.device = optarg;
        else {
            fprintf(stderr, "usage: dmacopy-demo --socket PATH [--device NAME]\n");
            return 2;
        }
    }
    if (!opts.socket) {
        fprintf(stderr, "usage: dmacopy-demo --socket PATH [--device NAME]\n");
        return 2;
    }
    struct dmacopy_host dc;
    char err[512];
    if (dmacopy_host_open(&dc, &opts, err, sizeof(err)) != 0) {
        fprintf(stderr, "dmacopy-demo: %s\n", err);
        return 1;
    }
    int failures = 0;
    printf("dmacopy at %s: ID %08x\n", opts.device, dmacopy_read32(&dc, DMACOPY_REG_ID));
    dmacopy_write32(&dc, DMACOPY_REG_SCRATCH, 0xC0FFEE11u);
    uint32_t scratch = dmacopy_read32(&dc, DMACOPY_REG_SCRATCH);
    printf("  scratch    wrote c0ffee11, read %08x  %s\n", scratch,
           scratch == 0xC0FFEE11u ? "ok" : "MISMATCH");
    failures += scratch != 0xC0FFEE11u;

    static const uint32_t sizes[] = {1, 4097, 65536, 1u << 20};
    uint64_t src = dc.ram_base + (1u << 20), dst = dc.ram_base + (8u << 20);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t len = sizes[i];
        uint8_t *s = dc.ram + (src - dc.ram_base) + 3; /* odd alignment on purpose */
        uint8_t *d = dc.ram + (dst - dc.ram_base) + 5;
        for (uint32_t b = 0; b < len; b++)
            s[b] = (uint8_t)(b * 131u + i * 7u + 1u);
        memset(d, 0, len);
        uint64_t before = dc.msix_count[0];
        uint64_t t0 = tlpb_now_ns();
        uint32_t idx = dmacopy_post(&dc, src + 3, dst + 5, len, true);
        dmacopy_ring_doorbell(&dc);
        int rc = dmacopy_wait_msix(&dc, 0, before + 1, 30000);
        double us = (double)(tlpb_now_ns() - t0) / 1e3;
        uint32_t expect = (uint32_t)crc32(0L, s, len);
        bool ok = rc == 0 && (dmacopy_desc_status(&dc, idx) & 0xFF01u) == DMACOPY_DESC_DONE &&
                  memcmp(s, d, len) == 0 && dmacopy_desc_crc(&dc, idx) == expect;
        printf("  copy %7u bytes  crc %08x (expected %08x)  %9.1f us  MSI-X vector 0  %s\n", len,
               dmacopy_desc_crc(&dc, idx), expect, us, ok ? "ok" : "FAILED");
        failures += !ok;
    }
    struct tlpb_host_stats st;
    tlpb_host_get_stats(dc.host, &st);
    printf("  host saw %llu DMA reads (%llu bytes), %llu DMA writes (%llu bytes), %llu interrupts\n",
           (unsigned long long)st.dma_reads, (unsigned long long)st.dma_read_bytes,
           (unsigned long long)st.dma_writes, (unsigned long long)st.dma_write_bytes,
           (unsigned long long)st.interrupts);
    printf("%s\n", failures ? "RESULT: FAILED" : "RESULT: all checks passed");
    dmacopy_host_close(&dc);
    return failures ? 1 : 0;
}

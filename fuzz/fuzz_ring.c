/* The consuming side of the shared-memory ring against a hostile producer:
 * the input is what the peer left in our direction (its control block and
 * data); tlpb_ring_get runs until it reports empty or an error. Every record
 * it returns must be one the ring could carry.
 *
 * Input: byte 0 flags (bit 0: both sides first move to 4 KiB before the
 * ring's end, so records wrap; bit 1: the next field is taken modulo twice
 * ring_bytes, so plausible indices are easy to reach), u64 producer index
 * relative to the consumer's, u32 consumer-asleep flag, u32 producer-waiting flag, then the
 * bytes of the data area from the consumer's position on (wrapping). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "tlpb/byteorder.h"
#include "tlpb/ring.h"
#include "tlpb/wire.h"

#define RING_BYTES TLPB_RING_MIN_BYTES
#define INPUT_HEADER 17u

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < INPUT_HEADER)
        return 0;
    struct tlpb_ring *host, *bridge;
    int fds[TLPB_RING_FD_COUNT], copy[TLPB_RING_FD_COUNT];
    char err[200];
    FUZZ_CHECK(tlpb_ring_create(&host, RING_BYTES, fds, err, sizeof(err)) == 0);
    for (int i = 0; i < TLPB_RING_FD_COUNT; i++)
        copy[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
    FUZZ_CHECK(tlpb_ring_attach(&bridge, copy, RING_BYTES, err, sizeof(err)) == 0);
    size_t mem_bytes = (size_t)tlpb_ring_memory_bytes(RING_BYTES);
    uint8_t *mem = mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                        fds[TLPB_RING_FD_MEMORY], 0);
    FUZZ_CHECK(mem != MAP_FAILED);

    struct tlpb_ring_msg m;
    uint64_t start = 0;
    if (data[0] & 1) {
        /* Four real records of a quarter ring less 1 KiB each. */
        static uint8_t filler[RING_BYTES / 4 - 1024 - 8 - TLPB_RING_TLP_BODY_BYTES];
        struct tlpb_tlp t;
        memset(&t, 0, sizeof(t));
        t.kind = TLPB_TLP_MWR;
        t.length_dw = sizeof(filler) / 4;
        t.first_be = t.last_be = 0xf;
        t.bar_hint = TLPB_NO_BAR;
        t.payload = filler;
        t.payload_bytes = sizeof(filler);
        for (int i = 0; i < 4; i++) {
            FUZZ_CHECK(tlpb_ring_put_tlp(host, &t) == 0);
            FUZZ_CHECK(tlpb_ring_get(bridge, &m) == 1);
        }
        start = RING_BYTES - 4096;
    }
    uint8_t *ctl = mem + tlpb_ring_control_offset(RING_BYTES, 0);
    uint8_t *ring = mem + tlpb_ring_data_offset(RING_BYTES, 0);
    uint64_t head = tlpb_get_le64(data + 1);
    if (data[0] & 2)
        head %= 2 * RING_BYTES;
    tlpb_put_le64(ctl + TLPB_RING_CTL_PRODUCER, start + head);
    memcpy(ctl + TLPB_RING_CTL_CONSUMER_ASLEEP, data + 9, 4);
    memcpy(ctl + TLPB_RING_CTL_PRODUCER_WAITING, data + 13, 4);
    size_t n = size - INPUT_HEADER;
    if (n > RING_BYTES)
        n = RING_BYTES;
    for (size_t i = 0; i < n; i++)
        ring[(start + i) & (RING_BYTES - 1)] = data[INPUT_HEADER + i];

    int rc;
    size_t records = 0;
    while ((rc = tlpb_ring_get(bridge, &m)) > 0) {
        records++;
        switch (m.type) {
        case TLPB_RING_MSG_TLP:
            FUZZ_CHECK(m.tlp.kind >= TLPB_TLP_MRD && m.tlp.kind <= TLPB_TLP_CPLD);
            FUZZ_CHECK(m.tlp.payload_bytes <= tlpb_ring_max_record(bridge));
            /* The payload is readable (ASan checks the private copy). */
            if (m.tlp.payload_bytes)
                FUZZ_CHECK(m.tlp.payload[m.tlp.payload_bytes - 1] ==
                           m.tlp.payload[m.tlp.payload_bytes - 1]);
            break;
        case TLPB_RING_MSG_INTERRUPT:
            FUZZ_CHECK(m.irq_kind >= TLPB__INTERRUPT_KIND__IRQ_MSIX &&
                       m.irq_kind <= TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT);
            break;
        case TLPB_RING_MSG_ENVELOPE:
            FUZZ_CHECK(m.env && m.env->body_case != TLPB__ENVELOPE__BODY__NOT_SET);
            tlpb_envelope_free(m.env);
            break;
        default:
            FUZZ_CHECK(!"unknown message type returned");
        }
        /* The consumer cannot take more records than bytes it was given. */
        FUZZ_CHECK(records <= RING_BYTES / TLPB_RING_RECORD_HEADER_BYTES);
    }
    FUZZ_CHECK(rc == 0 || rc == -EPROTO);
    FUZZ_CHECK((rc == -EPROTO) == (tlpb_ring_error(bridge)[0] != '\0'));
    /* The sleep protocol on a damaged ring must not misbehave either. */
    tlpb_ring_notify(bridge);
    if (tlpb_ring_prepare_sleep(bridge))
        tlpb_ring_woken(bridge);

    munmap(mem, mem_bytes);
    tlpb_ring_destroy(bridge);
    tlpb_ring_destroy(host);
    return 0;
}

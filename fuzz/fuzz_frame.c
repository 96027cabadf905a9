/* The frame reader and envelope decoder, as a peer's byte stream reaches
 * them: bytes arrive in pieces of arbitrary size, every complete frame is
 * decoded, and what the receivers do next with a decoded body is done too
 * (TLP and device-description conversion, validation), and the envelope is
 * packed again.
 *
 * Input: byte 0 picks the piece size (1..256) and the max frame; the rest is
 * the stream. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tlpb/wire.h"

static void use_body(const Tlpb__Envelope *env)
{
    const char *reason = NULL;
    switch (env->body_case) {
    case TLPB__ENVELOPE__BODY_TLP: {
        struct tlpb_tlp tlp;
        if (tlpb_tlp_from_pb(&tlp, env->tlp, &reason) == 0) {
            char line[256];
            struct tlpb_tlp_limits lim = {.max_payload_bytes = 4096, .unsplit = true};
            tlpb_tlp_validate(&tlp, &lim, &reason);
            tlpb_tlp_format(&tlp, line, sizeof(line));
        } else {
            FUZZ_CHECK(reason != NULL);
        }
        break;
    }
    case TLPB__ENVELOPE__BODY_HELLO:
        if (env->hello->description) {
            struct tlpb_devdesc desc;
            if (tlpb_devdesc_from_pb(&desc, env->hello->description, &reason) != 0)
                FUZZ_CHECK(reason != NULL);
        }
        tlpb_role_name(env->hello->role);
        break;
    case TLPB__ENVELOPE__BODY_HELLO_REPLY:
        if (env->hello_reply->description) {
            struct tlpb_devdesc desc;
            tlpb_devdesc_from_pb(&desc, env->hello_reply->description, &reason);
        }
        break;
    default:
        break;
    }
}

/* What was decoded packs into a frame again. That frame need not decode:
 * protobuf-c keeps unknown fields and re-emits them as they were parsed,
 * and it parses a field number 0 written as a two-byte varint (0x80 0x00)
 * but refuses the one-byte form it writes back. Nothing forwards a peer's
 * envelope (the bridge rebuilds every message from the structured form), so
 * only memory safety and the kind of message are checked here. */
static void repack(const Tlpb__Envelope *env)
{
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, 1u << 20, TLPB_HARD_MAX_FRAME_BYTES);
    int rc = tlpb_obuf_append(&ob, env, true);
    FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        struct tlpb_frame_reader rd;
        tlpb_reader_init(&rd, TLPB_HARD_MAX_FRAME_BYTES);
        size_t space = 0;
        uint8_t *p = tlpb_reader_space(&rd, tlpb_obuf_pending(&ob), &space);
        FUZZ_CHECK(p && space >= tlpb_obuf_pending(&ob));
        memcpy(p, tlpb_obuf_head(&ob), tlpb_obuf_pending(&ob));
        tlpb_reader_commit(&rd, tlpb_obuf_pending(&ob));
        const uint8_t *frame;
        size_t len;
        const char *reason = NULL;
        FUZZ_CHECK(tlpb_reader_next(&rd, &frame, &len, &reason) == 1);
        Tlpb__Envelope *again = tlpb_envelope_decode(frame, len, &reason);
        if (again) {
            FUZZ_CHECK(again->body_case == env->body_case);
            tlpb_envelope_free(again);
        }
        tlpb_reader_free(&rd);
    }
    tlpb_obuf_free(&ob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)(data[0] & 0xFF) + 1;
    /* Small max frames reach the oversize-prefix path with small inputs. */
    uint32_t max_frame = (data[0] & 0x80) ? TLPB_MIN_MAX_FRAME_BYTES : 1024;
    data++;
    size--;

    struct tlpb_frame_reader rd;
    tlpb_reader_init(&rd, max_frame);
    size_t fed = 0;
    bool failed = false;
    while (fed < size && !failed) {
        size_t n = size - fed < piece ? size - fed : piece;
        size_t space = 0;
        uint8_t *p = tlpb_reader_space(&rd, n, &space);
        FUZZ_CHECK(p != NULL && space >= n);
        memcpy(p, data + fed, n);
        tlpb_reader_commit(&rd, n);
        fed += n;
        for (;;) {
            const uint8_t *frame;
            size_t len;
            const char *reason = NULL;
            int rc = tlpb_reader_next(&rd, &frame, &len, &reason);
            if (rc == 0)
                break;
            if (rc < 0) {
                FUZZ_CHECK(reason != NULL);
                failed = true; /* the stream cannot be resynchronised */
                break;
            }
            FUZZ_CHECK(len <= max_frame);
            Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
            if (!env) {
                FUZZ_CHECK(reason != NULL);
                continue;
            }
            use_body(env);
            repack(env);
            tlpb_envelope_free(env);
        }
    }
    tlpb_reader_free(&rd);
    return 0;
}

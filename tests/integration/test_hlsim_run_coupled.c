/* hlsim-run in coupled simulated time against a raw peer playing the
 * bridge (docs/protocol.md "Simulated time"): it offers CAP_TIME_SYNC,
 * takes COUPLED, answers config requests at the host's time, runs a 64 KiB
 * dmacopy copy from a stamped doorbell within a GRANT, stamps its DMA and
 * the MSI-X message with its clock (the interrupt at the doorbell's stamp
 * plus what bytes_per_ns predicts), answers with REACHED, and answers a
 * huge grant at once as idle. Two runs send the same messages with the
 * same stamps, and so does a run paced by --max-sim-ns-per-s, which keeps
 * the peer informed with PROGRESS. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"

#include "../dmacopy_spec.h"
#include "../fake_host_ram.h"

#define NS 1000ull
#define T0_PS (2000 * NS)
#define BYTES_PER_NS 2u

struct record {
    char what;       /* 'W' MWr, 'R' MRd, 'C' completion, 'I' interrupt, 'T' REACHED */
    uint64_t stamp_ps;
    uint64_t detail; /* address, vector, or sync id */
};

struct run {
    struct raw peer;
    uint8_t *ram;
    struct record rec[4096];
    size_t n;
    uint8_t next_tag;
    uint64_t irq_stamp;
    bool irq_seen;
    unsigned progress_seen;
    Tlpb__TimeSync last_reached;
};

static void add(struct run *run, char what, uint64_t stamp, uint64_t detail)
{
    REQUIRE(run->n < sizeof(run->rec) / sizeof(run->rec[0]), "too many messages");
    run->rec[run->n++] = (struct record){what, stamp, detail};
}

static void send_completion(void *ctx, const struct tlpb_tlp *cpl)
{
    struct run *run = ctx;
    raw_send_tlp(&run->peer, cpl);
}

/* The host answers a DMA read at once, at its time host_ps. */
static void serve_read(struct run *run, const struct tlpb_tlp *req, uint64_t host_ps)
{
    REQUIRE(fake_host_serve_read(req, run->ram, host_ps, send_completion, run),
            "DMA read outside RAM at %#llx", (unsigned long long)tlpb_tlp_first_byte_address(req));
}

/* Handle what the device sends until a completion for tag (want_tag >= 0)
 * or a REACHED (want_tag < 0) arrives; returns that envelope. */
static Tlpb__Envelope *serve_until(struct run *run, int want_tag, uint64_t host_ps)
{
    for (;;) {
        bool eof;
        Tlpb__Envelope *env = raw_next(&run->peer, &eof);
        REQUIRE(env != NULL, "hlsim-run went quiet (eof %d)", eof);
        switch (env->body_case) {
        case TLPB__ENVELOPE__BODY_TLP: {
            struct tlpb_tlp tlp;
            const char *reason = "?";
            REQUIRE(tlpb_tlp_from_pb(&tlp, env->tlp, &reason) == 0, "bad TLP: %s", reason);
            if (tlp.kind == TLPB_TLP_MWR) {
                REQUIRE(tlp.address >= RAM_BASE && tlp.address - RAM_BASE + tlp.payload_bytes <=
                                                        RAM_BYTES,
                        "DMA write outside RAM");
                memcpy(run->ram + (tlp.address - RAM_BASE), tlp.payload, tlp.payload_bytes);
                add(run, 'W', tlp.sim_time_ps, tlp.address);
            } else if (tlp.kind == TLPB_TLP_MRD) {
                add(run, 'R', tlp.sim_time_ps, tlp.address);
                serve_read(run, &tlp, host_ps);
            } else {
                add(run, 'C', tlp.sim_time_ps, tlp.tag);
                if (want_tag >= 0 && tlp.tag == (unsigned)want_tag)
                    return env;
            }
            break;
        }
        case TLPB__ENVELOPE__BODY_INTERRUPT:
            add(run, 'I', env->interrupt->sim_time_ps, env->interrupt->vector);
            if (!run->irq_seen) {
                run->irq_seen = true;
                run->irq_stamp = env->interrupt->sim_time_ps;
            }
            break;
        case TLPB__ENVELOPE__BODY_TIME_SYNC:
            if (env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED) {
                add(run, 'T', env->time_sync->sim_time_ps, env->time_sync->sync_id);
                CHECK(want_tag < 0, "REACHED while a host request waited for its completion");
                run->last_reached = *env->time_sync;
                return env;
            }
            if (env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS)
                run->progress_seen++; /* still simulating */
            break;
        case TLPB__ENVELOPE__BODY_DMA_CONTEXT:
            break; /* what a DMA is for: no part of its timing */
        case TLPB__ENVELOPE__BODY_ERROR:
            CHECK(false, "hlsim-run sent an Error: %s", env->error->reason);
            break;
        default:
            CHECK(false, "unexpected message %d", (int)env->body_case);
            break;
        }
        tlpb_envelope_free(env);
    }
}

static void request(struct run *run, struct tlpb_tlp *tlp, uint64_t host_ps, bool non_posted)
{
    tlp->tag = run->next_tag++;
    tlp->sim_time_ps = host_ps;
    tlp->requester_id = 0;
    tlp->bar_hint = TLPB_NO_BAR;
    raw_send_tlp(&run->peer, tlp);
    if (non_posted)
        tlpb_envelope_free(serve_until(run, tlp->tag, host_ps));
}

static void cfg_write(struct run *run, uint16_t reg, uint32_t value, uint8_t be)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp tlp = {.kind = TLPB_TLP_CFGWR0, .length_dw = 1, .first_be = be,
                           .completer_id = DEV_BDF, .cfg_register = reg,
                           .payload = payload, .payload_bytes = 4};
    request(run, &tlp, T0_PS, true);
}

static void mmio_write(struct run *run, uint32_t reg, uint32_t value)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp tlp = {.kind = TLPB_TLP_MWR, .address = BAR0_ADDR + reg, .length_dw = 1,
                           .first_be = 0xF, .payload = payload, .payload_bytes = 4};
    request(run, &tlp, T0_PS, false);
}

static Tlpb__Envelope *grant(struct run *run, uint64_t sync_id, uint64_t until_ps)
{
    raw_send_time_sync(&run->peer, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, sync_id, until_ps,
                       until_ps, false);
    return serve_until(run, -1, until_ps);
}

static void handshake(struct run *run)
{
    bool eof;
    Tlpb__Envelope *env = raw_next(&run->peer, &eof);
    REQUIRE(env && env->body_case == TLPB__ENVELOPE__BODY_HELLO, "no Hello from hlsim-run");
    CHECK(env->hello->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC,
          "hlsim-run does not offer CAP_TIME_SYNC");
    tlpb_envelope_free(env);

    Tlpb__HelloReply reply = TLPB__HELLO_REPLY__INIT;
    reply.accepted = true;
    reply.version_major = TLPB_PROTOCOL_MAJOR;
    reply.version_minor = TLPB_PROTOCOL_MINOR;
    reply.max_frame_bytes = TLPB_DEFAULT_MAX_FRAME_BYTES;
    reply.capabilities = TLPB__CAPABILITY__CAP_TIME_SYNC;
    reply.backend = (char *)"external";
    Tlpb__Envelope out = TLPB__ENVELOPE__INIT;
    out.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    out.hello_reply = &reply;
    raw_send_env(&run->peer, &out);
}

static void scenario(struct run *run, unsigned index, const char *max_sim_ns_per_s)
{
    char sock_name[32], child_name[32];
    snprintf(sock_name, sizeof(sock_name), "fake-bridge-%u.sock", index);
    snprintf(child_name, sizeof(child_name), "hlsim-run-%u", index);
    const char *path = it_path(sock_name);
    int lfd = raw_listen(path);
    const char *argv[] = {it_paths.sim, "--socket", path, "--device", "dmacopy0",
                          "--model", it_paths.model, "--model-args",
                          "bytes_per_ns=2,reg_latency_ns=100",
                          max_sim_ns_per_s ? "--max-sim-ns-per-s" : NULL, max_sim_ns_per_s, NULL};
    struct it_child *child = it_start_child(child_name, argv);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    REQUIRE(poll(&p, 1, IT_DEADLINE_MS) == 1, "hlsim-run did not connect");
    memset(&run->peer, 0, sizeof(run->peer));
    run->peer.fd = accept(lfd, NULL, NULL);
    REQUIRE(run->peer.fd >= 0, "accept: %s", strerror(errno));
    close(lfd);
    tlpb_reader_init(&run->peer.rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    run->ram = calloc(1, RAM_BYTES);
    REQUIRE(run->ram != NULL, "out of memory");

    handshake(run);
    raw_send_time_sync(&run->peer, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 0, T0_PS, 0, false);

    /* Enumerate at the host's time: each completion comes at once (the
     * implicit grant) and carries that time. */
    cfg_write(run, 0x10, BAR0_ADDR, 0xF);
    cfg_write(run, 0x18, BAR2_ADDR, 0xF);
    cfg_write(run, 0x04, 0x0006, 0x3);
    cfg_write(run, TLPB_CFG_MSIX_CAP, 0x80000000u, 0xC);
    for (size_t i = 0; i < run->n; i++)
        CHECK_EQ_U64(run->rec[i].stamp_ps, T0_PS, "config completion stamp");

    for (uint32_t i = 0; i < COPY_BYTES; i++)
        run->ram[SRC - RAM_BASE + i] = (uint8_t)(i * 13 + 5);
    uint8_t *d = run->ram + (RING - RAM_BASE);
    tlpb_put_le64(d + 0, SRC);
    tlpb_put_le64(d + 8, DST);
    tlpb_put_le32(d + 16, COPY_BYTES);
    tlpb_put_le32(d + 20, DESC_FLAG_IRQ);
    mmio_write(run, REG_RING_LO, (uint32_t)RING);
    mmio_write(run, REG_RING_HI, (uint32_t)(RING >> 32));
    mmio_write(run, REG_RING_SIZE, 16);
    mmio_write(run, REG_CTRL, CTRL_ENABLE);
    mmio_write(run, REG_TAIL, 1); /* the doorbell, at T0 */

    tlpb_envelope_free(grant(run, 1, T0_PS + 1000000 * NS));
    CHECK(run->irq_seen, "no MSI-X message within the grant");
    /* the data, then the crc and status words, at bytes_per_ns */
    CHECK_EQ_U64(run->irq_stamp, T0_PS + (COPY_BYTES + 8) / BYTES_PER_NS * NS, "MSI-X stamp");
    CHECK_EQ_U64(run->last_reached.sim_time_ps, T0_PS + 1000000 * NS, "REACHED time");
    CHECK(run->last_reached.idle, "REACHED not idle after the copy");
    CHECK(memcmp(run->ram + (DST - RAM_BASE), run->ram + (SRC - RAM_BASE), COPY_BYTES) == 0,
          "the copy's data differ");
    CHECK_EQ_U64(tlpb_get_le32(d + 24), DESC_DONE, "descriptor status");
    uint64_t previous = 0;
    for (size_t i = 0; i < run->n; i++) {
        CHECK(run->rec[i].stamp_ps >= previous, "stamps went back at message %zu", i);
        previous = run->rec[i].stamp_ps;
    }

    /* Idle: a grant of a whole second is answered at once, idle. */
    size_t before = run->n;
    const uint64_t huge = T0_PS + 1000000000000ull;
    tlpb_envelope_free(grant(run, 2, huge));
    CHECK_EQ_U64(run->n, before + 1, "messages for an idle grant (the REACHED only)");
    CHECK_EQ_U64(run->last_reached.sync_id, 2, "REACHED sync id");
    CHECK_EQ_U64(run->last_reached.sim_time_ps, huge, "idle REACHED time");
    CHECK(run->last_reached.idle, "idle REACHED");

    it_signal(child, SIGTERM);
    int status = it_wait_exit(child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "hlsim-run exit status %d", status);
    raw_close(&run->peer);
    free(run->ram);
    run->ram = NULL;
}

static struct run runs[3];

static void coupled_copy(void)
{
    scenario(&runs[0], 0, NULL);
}

static void same_as_first(const struct run *other)
{
    CHECK_EQ_U64(other->n, runs[0].n, "messages in another run");
    for (size_t i = 0; i < runs[0].n && i < other->n; i++) {
        const struct record *a = &runs[0].rec[i], *b = &other->rec[i];
        if (a->what != b->what || a->stamp_ps != b->stamp_ps || a->detail != b->detail) {
            CHECK(false, "message %zu differs: %c@%llu (%#llx) then %c@%llu (%#llx)", i, a->what,
                  (unsigned long long)a->stamp_ps, (unsigned long long)a->detail, b->what,
                  (unsigned long long)b->stamp_ps, (unsigned long long)b->detail);
            break;
        }
    }
}

static void deterministic(void)
{
    scenario(&runs[1], 1, NULL);
    same_as_first(&runs[1]);
}

/* At 100 us of busy time per wall second the copy's 32.8 us take at least
 * 0.33 s of wall time: a PROGRESS must come 200 ms after the grant began
 * (libtlpbsim counts the interval from each GRANT); and the device's time
 * is the same as unpaced. */
static void paced(void)
{
    scenario(&runs[2], 2, "100000");
    same_as_first(&runs[2]);
    CHECK(runs[2].progress_seen >= 1, "%u PROGRESS during a paced grant of 0.33 s or more",
          runs[2].progress_seen);
}

static void bad_option(void)
{
    const char *argv[] = {it_paths.sim, "--socket", it_path("none.sock"), "--device", "d",
                          "--model", it_paths.model, "--max-sim-ns-per-s", "fast", NULL};
    char *out = NULL, *err = NULL;
    int code = it_run_capture(argv, &out, &err);
    CHECK(code == 2, "exit code %d", code);
    CHECK(err && strstr(err, "--max-sim-ns-per-s takes a positive integer"), "stderr: %s",
          err ? err : "");
    free(out);
    free(err);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_hlsim_run_coupled");
    REQUIRE(it_paths.sim && it_paths.model, "--hlsim-run and --model are required");
    IT_RUN("hlsim-run coupled: a 64 KiB copy stamped as bytes_per_ns predicts", coupled_copy());
    IT_RUN("hlsim-run coupled: the same messages and stamps twice", deterministic());
    IT_RUN("hlsim-run coupled, paced: the same stamps, PROGRESS meanwhile", paced());
    IT_RUN("hlsim-run: a bad --max-sim-ns-per-s is refused", bad_option());
    return it_finish();
}

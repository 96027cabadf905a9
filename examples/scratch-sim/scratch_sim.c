/* scratch-sim: a whole device simulator on libtlpbsim, the starting point
 * for attaching your own simulator written in C (docs/simulator-api.md).
 *
 *   scratch-sim --socket PATH|tcp:HOST:PORT --device NAME
 *
 * The device: one 4 KiB memory BAR of 1024 scratch registers, and INTx. A
 * write of 1 to register 0x3FC asserts INTx, a write of 0 deasserts it.
 * Config space comes from the description through tlpb/cfgspace.h, as in
 * the RTL adapter and the hlsim SDK. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"
#include "tlpb_sim.h"

#define SCRATCH_REGISTERS 1024u
#define INTX_REGISTER (0x3FCu / 4)
#define READ_BUDGET_BYTES (1u << 20)

static const struct tlpb_devdesc scratch_description = {
    .vendor_id = 0x1234,
    .device_id = 0x5c7a,
    .class_code = 0xff0000,
    .bars = {[0] = {.size_bytes = 4 * SCRATCH_REGISTERS}},
    .intx_pin = 1,
    .max_payload_supported_bytes = 128,
};

struct scratch {
    tlpb_sim *sim;
    struct tlpb_cfgspace cfg;
    uint32_t regs[SCRATCH_REGISTERS];
    bool intx;
};

static volatile sig_atomic_t stop_requested;

static void complete_with(struct scratch *s, const struct tlpb_tlp *req, enum tlpb_cpl_status st)
{
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, req, s->cfg.bus_device_function, st);
    tlpb_sim_send_tlp(s->sim, &cpl);
}

static void update_intx(struct scratch *s, bool level)
{
    s->intx = level;
    tlpb_cfg_set_interrupt_status(&s->cfg, level);
    tlpb_sim_send_interrupt(s->sim,
                            level && !tlpb_cfg_intx_disabled(&s->cfg)
                                ? TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT
                                : TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT,
                            0);
}

static void reset_function(struct scratch *s)
{
    tlpb_cfgspace_reset(&s->cfg);
    memset(s->regs, 0, sizeof(s->regs));
    if (s->intx)
        update_intx(s, false);
}

static void config_request(struct scratch *s, const struct tlpb_tlp *req)
{
    unsigned changes;
    tlpb_sim_complete_config(s->sim, &s->cfg, req, &changes);
    if (changes & TLPB_CFG_FLR_REQUESTED)
        reset_function(s); /* after the write's completion */
}

static void memory_read(struct scratch *s, const struct tlpb_tlp *req)
{
    uint8_t data[4 * SCRATCH_REGISTERS];
    uint64_t offset;
    int bar = tlpb_cfg_decode_request(&s->cfg, req, &offset);
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    uint64_t first = tlpb_tlp_first_byte_address(req);

    /* This device answers a read with one completion: longer reads than the
     * max payload size are refused (a host's register reads are 1-8 bytes). */
    if (bar < 0 || (first & 3) + bytes > tlpb_cfg_max_payload_bytes(&s->cfg)) {
        complete_with(s, req, TLPB_CPL_UR);
        return;
    }
    for (uint32_t i = 0; i < req->length_dw; i++) {
        tlpb_put_le32(&data[4 * i], s->regs[(offset / 4 + i) % SCRATCH_REGISTERS]);
    }
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, req, s->cfg.bus_device_function, first, bytes, bytes);
    cpl.payload = data;
    tlpb_sim_send_tlp(s->sim, &cpl);
}

static void memory_write(struct scratch *s, const struct tlpb_tlp *req)
{
    uint64_t offset;
    int bar = tlpb_cfg_decode_request(&s->cfg, req, &offset);

    if (bar < 0 || req->poisoned)
        return; /* posted: nobody to tell */
    for (uint32_t i = 0; i < req->length_dw; i++) {
        /* The bytes the byte enables leave alone keep their value. */
        uint32_t mask = tlpb_byte_enable_mask(tlpb_tlp_dw_byte_enables(req, i));
        uint32_t reg = (uint32_t)(offset / 4 + i) % SCRATCH_REGISTERS;
        s->regs[reg] = (s->regs[reg] & ~mask) | (tlpb_get_le32(&req->payload[4 * i]) & mask);
        if (reg == INTX_REGISTER && (s->regs[reg] != 0) != s->intx)
            update_intx(s, s->regs[reg] != 0);
    }
}

/* ---- the library's callbacks ----------------------------------------------- */

static void receive_tlp(void *arg, const struct tlpb_tlp *tlp)
{
    struct scratch *s = arg;

    switch (tlp->kind) {
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        config_request(s, tlp);
        break;
    case TLPB_TLP_MRD:
        memory_read(s, tlp);
        break;
    case TLPB_TLP_MWR:
        memory_write(s, tlp);
        break;
    default:
        break; /* completions: this device does no DMA */
    }
}

static void receive_reset(void *arg, Tlpb__ResetKind kind)
{
    reset_function(arg);
}

static uint16_t bus_device_function(void *arg)
{
    const struct scratch *s = arg;
    return s->cfg.bus_device_function;
}

static const struct tlpb_sim_callbacks scratch_callbacks = {
    .tlp = receive_tlp,
    .reset = receive_reset,
    .bus_device_function = bus_device_function,
};

static void on_signal(int sig)
{
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    if (argc != 5 || strcmp(argv[1], "--socket") != 0 || strcmp(argv[3], "--device") != 0) {
        fprintf(stderr, "usage: %s --socket PATH|tcp:HOST:PORT --device NAME\n", argv[0]);
        return 2;
    }
    static struct scratch s;
    tlpb_cfgspace_init(&s.cfg, &scratch_description);

    const struct tlpb_sim_options opts = {
        .device_name = argv[4],
        .peer_name = "scratch-sim",
        .description = &scratch_description,
        .log_name = "scratch-sim",
        .log_level = TLPB_LOG_INFO,
    };
    char err[256] = "";
    signal(SIGPIPE, SIG_IGN);
    int rc = tlpb_sim_connect(&s.sim, argv[2], &opts, &scratch_callbacks, &s, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "scratch-sim: cannot attach to %s: %s\n", argv[2], err);
        return 1;
    }
    /* No SA_RESTART: a signal ends the wait at once. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* What the bridge sent behind its HelloReply, then: sleep until the
     * bridge sends more, handle it, write the answers. */
    rc = tlpb_sim_read_input(s.sim, READ_BUDGET_BYTES);
    while (rc >= 0 && !stop_requested) {
        rc = tlpb_sim_wait(s.sim, 1000);
        if (rc > 0)
            rc = tlpb_sim_read_input(s.sim, READ_BUDGET_BYTES);
        if (rc >= 0)
            rc = tlpb_sim_flush(s.sim);
    }
    int code = rc < 0 ? 1 : 0;
    tlpb_sim_drain(s.sim, 1000);
    tlpb_sim_close(s.sim);
    return code;
}

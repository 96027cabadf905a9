/* The RTL adapter under Verilator: the loopback design (loopback_top.sv)
 * sends every TLP it receives back out. This program plays the bridge on a
 * unix socket, starts the simulator, and checks:
 *   echo    - random memory writes and reads of 1..64 DWs, 32- and 64-bit
 *             addresses, come back intact through RX and TX with
 *             backpressure on both sides (the design's LFSR on rx_tready,
 *             --tx-stall-percent on tx_tready); the design's reads get link
 *             tags and their completions find their way back;
 *   trace   - --trace writes a VCD of the whole run (two time steps a cycle);
 *   window  - --trace-window N keeps the window around the trigger (a TLP
 *             the adapter rejects), bounded whatever the run's length;
 *   coupled - coupled time through the simulator process: the same scripted
 *             exchange twice, the device's DMA read answered at once in one
 *             run and after a pause in wall time in the other, gives the
 *             same messages with the same stamps, and grants end where
 *             they should.
 * Every wait is bounded; a hang is a failure.
 *
 *   test_rtl_loopback --sim PATH --case echo|trace|window|coupled|coupled_dmacopy */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_bridge.h"
#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"
#include "../dmacopy_spec.h"

#define WAIT_MS 30000
#define PERIOD_PS 4000 /* --cycles-per-ns 0.25 */

static const char *sim_path;
static char dir[96];
static char sock_path[108];
static char log_path[256];
static pid_t sim_pid = -1;
static int failures;
static uint32_t hello_caps; /* what the fake bridge grants */
static const char *sim_device = "loop0";
static uint64_t hello_clock_period_ps;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAILED: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
}

static void dump_log(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "tail -n 40 '%s'", log_path);
    printf("==== simulator log ====\n");
    fflush(stdout);
    if (system(cmd) != 0)
        printf("(no log)\n");
}

static void cleanup(void)
{
    if (sim_pid > 0) {
        kill(sim_pid, SIGKILL);
        waitpid(sim_pid, NULL, 0);
        sim_pid = -1;
    }
    if (dir[0]) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            printf("could not remove %s\n", dir);
    }
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAILED: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    dump_log();
    cleanup();
    exit(1);
}

/* Start the simulator and accept its connection; answer its Hello. */
static void start_sim(struct fake_bridge *fb, const char *const *extra)
{
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    unlink(sock_path);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 1) != 0)
        die("listen on %s: %s", sock_path, strerror(errno));
    const char *argv[24];
    unsigned n = 0;
    argv[n++] = sim_path;
    argv[n++] = "--socket";
    argv[n++] = sock_path;
    argv[n++] = "--device";
    argv[n++] = sim_device;
    argv[n++] = "--cycles-per-ns";
    argv[n++] = "0.25";
    for (unsigned i = 0; extra && extra[i] && n < 23; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    fflush(stdout);
    sim_pid = fork();
    if (sim_pid < 0)
        die("fork: %s", strerror(errno));
    if (sim_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log < 0)
            _exit(126);
        dup2(log, 1);
        dup2(log, 2);
        execv(sim_path, (char *const *)argv);
        _exit(127);
    }
    struct pollfd p = {.fd = ls, .events = POLLIN};
    if (poll(&p, 1, WAIT_MS) != 1)
        die("the simulator did not connect");
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    close(ls);
    if (fd < 0)
        die("accept: %s", strerror(errno));
    fb_init(fb, fd);
    Tlpb__Envelope *hello = fb_recv(fb, WAIT_MS);
    if (!hello || hello->body_case != TLPB__ENVELOPE__BODY_HELLO)
        die("no Hello from the simulator");
    bool loopback = strcmp(sim_device, "loop0") == 0;
    if (hello->hello->role != TLPB__ROLE__ROLE_SIMULATOR ||
        strcmp(hello->hello->device_name, sim_device) || !hello->hello->description ||
        (loopback && hello->hello->description->device_id != 0x0001))
        fail("unexpected Hello (role %d, device %s)", (int)hello->hello->role,
             hello->hello->device_name);
    hello_clock_period_ps = hello->hello->clock_period_ps;
    if (!(hello->hello->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC))
        fail("the simulator does not offer coupled time");
    tlpb_envelope_free(hello);
    if (fb_send_hello_reply_caps(fb, hello_caps) != 0)
        die("cannot answer the Hello");
}

/* Wait (bounded) for the simulator to exit; it must exit 0. */
static void wait_sim_exit(void)
{
    int pfd = (int)syscall(SYS_pidfd_open, sim_pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int rc = poll(&p, 1, WAIT_MS);
        close(pfd);
        if (rc != 1)
            die("the simulator did not exit within %d ms", WAIT_MS);
    }
    int status = 0;
    if (waitpid(sim_pid, &status, 0) != sim_pid)
        die("waitpid: %s", strerror(errno));
    sim_pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the simulator exited with status 0x%x", status);
}

/* SIGTERM ends a run cleanly. */
static void stop_sim(void)
{
    kill(sim_pid, SIGTERM);
    wait_sim_exit();
}

static struct tlpb_tlp recv_tlp(struct fake_bridge *fb, Tlpb__Envelope **keep)
{
    for (;;) {
        Tlpb__Envelope *env = fb_recv(fb, WAIT_MS);
        if (!env)
            die("no TLP from the simulator within %d ms", WAIT_MS);
        if (env->body_case != TLPB__ENVELOPE__BODY_TLP) {
            tlpb_envelope_free(env);
            continue;
        }
        struct tlpb_tlp t;
        const char *reason = "?";
        if (tlpb_tlp_from_pb(&t, env->tlp, &reason) != 0)
            die("bad TLP from the simulator: %s", reason);
        *keep = env;
        return t;
    }
}

static void config_write(struct fake_bridge *fb, uint16_t reg, uint32_t value, uint8_t be)
{
    uint8_t data[4];
    tlpb_put_le32(data, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .tag = 200, .length_dw = 1, .first_be = be,
                          .completer_id = 0x0500, .cfg_register = reg, .bar_hint = TLPB_NO_BAR,
                          .payload_bytes = 4, .payload = data};
    if (fb_send_tlp(fb, &wr) != 0)
        die("send config write");
    Tlpb__Envelope *env;
    struct tlpb_tlp cpl = recv_tlp(fb, &env);
    if (cpl.kind != TLPB_TLP_CPL || cpl.status != TLPB_CPL_SC || cpl.tag != 200)
        fail("config write: completion kind %d status %d tag %u", cpl.kind, cpl.status, cpl.tag);
    tlpb_envelope_free(env);
}

/* Memory requests are decoded by address against the programmed BARs
 * (docs/protocol.md, "Address decode"): BAR0 (32-bit) and BAR2 (64-bit) of
 * the loopback device, 2 MiB each, cover the addresses the cases use. */
#define BAR0_ADDR 0x80000000u
#define BAR2_ADDR 0x300000000ull
static void program_bars(struct fake_bridge *fb)
{
    config_write(fb, 0x10, BAR0_ADDR, 0xF);
    config_write(fb, 0x18, (uint32_t)BAR2_ADDR, 0xF);
    config_write(fb, 0x1C, (uint32_t)(BAR2_ADDR >> 32), 0xF);
}

/* ---- echo ------------------------------------------------------------------------------ */

static uint32_t rng = 0xC0FFEEu;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void case_echo(void)
{
    struct fake_bridge fb;
    const char *extra[] = {"--tx-stall-percent", "40", NULL};
    start_sim(&fb, extra);
    program_bars(&fb);
    config_write(&fb, 0x04, 0x0006, 0x3);                       /* memory + bus master */
    config_write(&fb, TLPB_CFG_PCIE_CAP + 8, 1u << 5, 0x3);     /* max payload 256 */

    enum { N = 300 };
    static uint8_t payload[N][256];
    static struct tlpb_tlp sent[N];
    unsigned reads = 0, echoed_writes = 0, read_cpls = 0;
    for (unsigned i = 0; i < N; i++) {
        uint32_t len = 1 + rnd() % 64u;
        uint64_t addr = (rnd() & 1) ? BAR0_ADDR + 0x1000u * i + 4u * (rnd() % 16u)
                                    : BAR2_ADDR + 0x1000u * i;
        uint8_t fbe = len == 1 ? (uint8_t)(1u << (rnd() % 4)) : 0xF;
        uint8_t lbe = len == 1 ? 0 : 0xF;
        if (i % 3 == 2) {
            sent[i] = (struct tlpb_tlp){.kind = TLPB_TLP_MRD, .requester_id = 0, .tag = (uint8_t)(i % 32),
                                        .address = addr, .length_dw = len, .first_be = fbe,
                                        .last_be = lbe, .bar_hint = 0};
            reads++;
        } else {
            for (uint32_t b = 0; b < len * 4; b++)
                payload[i][b] = (uint8_t)(rnd() >> 24);
            sent[i] = (struct tlpb_tlp){.kind = TLPB_TLP_MWR, .address = addr, .length_dw = len,
                                        .first_be = fbe, .last_be = lbe, .bar_hint = 0,
                                        .payload_bytes = len * 4, .payload = payload[i]};
        }
        if (fb_send_tlp(&fb, &sent[i]) != 0)
            die("send TLP %u", i);
    }
    /* Back in order: a write as the device's DMA write, a read as the
     * device's read (link tag), answered here; the answer comes back as the
     * device's completion, in order with the later echoes. */
    static uint8_t data[N][4096];
    static struct tlpb_tlp owed[N];
    static unsigned owed_index[N];
    unsigned next = 0, owed_head = 0, owed_tail = 0;
    while (next < N || owed_head < owed_tail) {
        Tlpb__Envelope *env;
        struct tlpb_tlp got = recv_tlp(&fb, &env);
        if (got.kind == TLPB_TLP_CPLD) {
            if (owed_head == owed_tail) {
                fail("a completion nobody asked for came back");
                tlpb_envelope_free(env);
                break;
            }
            const struct tlpb_tlp *want = &owed[owed_head];
            unsigned i = owed_index[owed_head++];
            if (got.tag != sent[i].tag || got.byte_count != want->byte_count ||
                got.lower_address != want->lower_address ||
                got.payload_bytes != want->payload_bytes ||
                memcmp(got.payload, data[i], want->payload_bytes) != 0)
                fail("read %u: the completion came back with tag %u (want %u), %u bytes", i,
                     got.tag, sent[i].tag, got.payload_bytes);
            else
                read_cpls++;
            tlpb_envelope_free(env);
            continue;
        }
        if (next >= N) {
            fail("an extra TLP came back (kind %d)", got.kind);
            tlpb_envelope_free(env);
            break;
        }
        unsigned i = next++;
        if (got.kind != sent[i].kind || got.address != sent[i].address ||
            got.length_dw != sent[i].length_dw || got.first_be != sent[i].first_be ||
            got.last_be != sent[i].last_be) {
            fail("TLP %u came back as kind %d addr %#llx len %u (sent kind %d addr %#llx len %u)", i,
                 got.kind, (unsigned long long)got.address, got.length_dw, sent[i].kind,
                 (unsigned long long)sent[i].address, sent[i].length_dw);
            tlpb_envelope_free(env);
            break;
        }
        if (got.kind == TLPB_TLP_MWR) {
            if (memcmp(got.payload, sent[i].payload, sent[i].payload_bytes) != 0)
                fail("write %u: payload differs", i);
            else
                echoed_writes++;
        } else {
            /* answer the device's read under its link tag */
            uint32_t bytes = tlpb_tlp_request_bytes(&got);
            for (unsigned b = 0; b < sizeof(data[i]); b++)
                data[i][b] = (uint8_t)(b * 3u + i);
            struct tlpb_tlp *cpl = &owed[owed_tail];
            owed_index[owed_tail++] = i;
            tlpb_completion_for(cpl, &got, 0, tlpb_tlp_first_byte_address(&got), bytes, bytes);
            cpl->payload = data[i];
            if (fb_send_tlp(&fb, cpl) != 0)
                die("send completion");
        }
        tlpb_envelope_free(env);
    }
    printf("echo: %u writes and %u read round trips through RX and TX\n", echoed_writes, read_cpls);
    if (echoed_writes + read_cpls != N || read_cpls != reads)
        fail("%u of %u TLPs came back right", echoed_writes + read_cpls, N);
    stop_sim();
    fb_fini(&fb);
}

static void log_must_contain(const char *needle);

/* ---- coupled ------------------------------------------------------------------------- */

#define C_PERIOD_PS 5000ull                /* --clock-period-ps 5000 */
#define C_DMA_CYCLES 20ull                 /* --dma-read-latency-ns 100 */
#define C_T0 1000000ull /* 1 us: the free-running clock may be ahead or behind it */

struct c_msg {
    int body, kind;
    uint64_t stamp, sync_id, clocked_cycles;
    bool idle;
    uint8_t tag;
};

struct c_run {
    struct c_msg msgs[64];
    unsigned n;
};

/* The next frame from the simulator, logged (errors and PROGRESS, which
 * depend on wall time, are skipped). */
static Tlpb__Envelope *c_recv(struct fake_bridge *fb, struct c_run *run)
{
    for (;;) {
        Tlpb__Envelope *env = fb_recv(fb, WAIT_MS);
        if (!env)
            die("no message from the simulator within %d ms", WAIT_MS);
        if (env->body_case == TLPB__ENVELOPE__BODY_ERROR ||
            (env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
             env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS)) {
            tlpb_envelope_free(env);
            continue;
        }
        if (run->n >= 64)
            die("too many messages");
        struct c_msg *m = &run->msgs[run->n++];
        memset(m, 0, sizeof(*m));
        m->body = env->body_case;
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP) {
            m->kind = env->tlp->kind;
            m->stamp = env->tlp->sim_time_ps;
            m->tag = (uint8_t)env->tlp->tag;
        } else if (env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC) {
            m->kind = env->time_sync->kind;
            m->stamp = env->time_sync->sim_time_ps;
            m->sync_id = env->time_sync->sync_id;
            m->idle = env->time_sync->idle;
            m->clocked_cycles = env->time_sync->clocked_cycles;
        }
        return env;
    }
}

static void c_send_tlp(struct fake_bridge *fb, const struct tlpb_tlp *tlp)
{
    if (fb_send_tlp(fb, tlp) != 0)
        die("send TLP");
}

static void c_config_write(struct fake_bridge *fb, uint16_t reg, uint32_t value, uint8_t be,
                           uint8_t tag, uint64_t stamp)
{
    static uint8_t data[64][4];
    tlpb_put_le32(data[tag % 64], value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .tag = tag, .length_dw = 1, .first_be = be,
                          .completer_id = 0x0500, .cfg_register = reg, .bar_hint = TLPB_NO_BAR,
                          .payload_bytes = 4, .payload = data[tag % 64], .sim_time_ps = stamp};
    c_send_tlp(fb, &wr);
}

/* Until a REACHED for sync_id; returns its stamp. */
static uint64_t c_until_reached(struct fake_bridge *fb, struct c_run *run, uint64_t sync_id)
{
    for (;;) {
        Tlpb__Envelope *env = c_recv(fb, run);
        bool done = env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
                    env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
        uint64_t t = done ? env->time_sync->sim_time_ps : 0;
        if (done && env->time_sync->sync_id != sync_id)
            fail("REACHED %llu, expected %llu", (unsigned long long)env->time_sync->sync_id,
                 (unsigned long long)sync_id);
        tlpb_envelope_free(env);
        if (done)
            return t;
    }
}

static void c_scenario(struct c_run *run, bool answer_late)
{
    struct fake_bridge fb;
    const char *extra[] = {"--clock-period-ps", "5000", "--dma-read-latency-ns", "100", NULL};
    hello_caps = TLPB__CAPABILITY__CAP_TIME_SYNC;
    memset(run, 0, sizeof(*run));
    start_sim(&fb, extra);
    if (hello_clock_period_ps != C_PERIOD_PS)
        fail("Hello announces a clock period of %llu ps", (unsigned long long)hello_clock_period_ps);

    if (answer_late) {
        /* Free-running first, long enough for the clock to pass the host's
         * time (a wall-time pause, not a synchronisation): the clock then
         * goes back to join the host's at COUPLED. */
        struct tlpb_tlp rd = {.kind = TLPB_TLP_CFGRD0, .tag = 9, .length_dw = 1, .first_be = 0xF,
                              .completer_id = 0x0500, .cfg_register = 0, .bar_hint = TLPB_NO_BAR};
        c_send_tlp(&fb, &rd);
        Tlpb__Envelope *env;
        struct tlpb_tlp cpl = recv_tlp(&fb, &env);
        if (cpl.kind != TLPB_TLP_CPLD || cpl.sim_time_ps != 0)
            fail("free-running config read: kind %d, stamp %llu", cpl.kind,
                 (unsigned long long)cpl.sim_time_ps);
        tlpb_envelope_free(env);
        struct pollfd p = {.fd = fb.fd, .events = POLLIN};
        poll(&p, 1, 50);
    }
    /* Coupled from 1 us of host time; a hot reset there makes the design's
     * state (its LFSR) independent of the free-running start; then config
     * space again, each write completed under its implicit grant. */
    if (fb_send_time_sync(&fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, C_T0, 0, 0) != 0 ||
        fb_send_reset_at(&fb, TLPB__RESET_KIND__RESET_HOT, C_T0) != 0)
        die("send COUPLED, reset");
    c_config_write(&fb, 0x10, BAR0_ADDR, 0xF, 1, C_T0 + 1);
    c_config_write(&fb, 0x04, 0x0006, 0x3, 2, C_T0 + 2);
    for (unsigned i = 0; i < 2; i++) {
        Tlpb__Envelope *env = c_recv(&fb, run);
        if (env->body_case != TLPB__ENVELOPE__BODY_TLP || env->tlp->kind != TLPB__TLP_KIND__TLP_CPL)
            fail("config write %u: no completion", i);
        tlpb_envelope_free(env);
    }

    /* A write in the first grant comes back as the device's write. */
    static uint8_t wdata[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct tlpb_tlp w = {.kind = TLPB_TLP_MWR, .address = BAR0_ADDR + 0x40, .length_dw = 4,
                         .first_be = 0xF, .last_be = 0xF, .bar_hint = 0, .payload_bytes = 16,
                         .payload = wdata, .sim_time_ps = C_T0 + 30 * C_PERIOD_PS + 1};
    c_send_tlp(&fb, &w);
    if (fb_send_time_sync(&fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, C_T0 + 100 * C_PERIOD_PS, 1,
                          C_T0 + 100 * C_PERIOD_PS) != 0)
        die("send GRANT");
    uint64_t reached1 = c_until_reached(&fb, run, 1);
    if (reached1 != C_T0 + 100 * C_PERIOD_PS)
        fail("REACHED 1 at %llu ps, the grant ends at %llu", (unsigned long long)reached1,
             (unsigned long long)(C_T0 + 100 * C_PERIOD_PS));

    /* A read beyond the grant: the loopback makes it a DMA read of its own,
     * which the bridge answers; its echo completes the host's read. */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = 0, .tag = 5,
                          .address = BAR0_ADDR + 0x100, .length_dw = 4, .first_be = 0xF,
                          .last_be = 0xF, .bar_hint = 0, .sim_time_ps = C_T0 + 150 * C_PERIOD_PS};
    c_send_tlp(&fb, &rd);
    uint64_t dma_stamp = 0, echo_stamp = 0;
    while (!echo_stamp) {
        Tlpb__Envelope *env = c_recv(&fb, run);
        struct tlpb_tlp got;
        const char *reason = "?";
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP &&
            tlpb_tlp_from_pb(&got, env->tlp, &reason) == 0) {
            if (got.kind == TLPB_TLP_MRD) {
                dma_stamp = got.sim_time_ps;
                if (answer_late) {
                    /* A pause in wall time (not a synchronisation: the
                     * result must not depend on it); the simulator, held at
                     * the completion's cycle, sends nothing meanwhile. */
                    Tlpb__Envelope *early = fb_recv(&fb, 300);
                    if (early) {
                        fail("the simulator sent body %d while its DMA read was outstanding",
                             (int)early->body_case);
                        tlpb_envelope_free(early);
                    }
                }
                static uint8_t data[16];
                struct tlpb_tlp cpl;
                tlpb_completion_for(&cpl, &got, 0, tlpb_tlp_first_byte_address(&got), 16, 16);
                cpl.payload = data;
                cpl.sim_time_ps = answer_late ? C_T0 + 999 * C_PERIOD_PS : 1; /* not what counts */
                c_send_tlp(&fb, &cpl);
            } else if (got.kind == TLPB_TLP_CPLD && got.tag == 5) {
                echo_stamp = got.sim_time_ps;
            }
        }
        tlpb_envelope_free(env);
    }
    if (dma_stamp == 0 || echo_stamp < dma_stamp + C_DMA_CYCLES * C_PERIOD_PS)
        fail("the read's echo at %llu ps, its DMA read at %llu ps: less than the latency",
             (unsigned long long)echo_stamp, (unsigned long long)dma_stamp);

    if (fb_send_time_sync(&fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, C_T0 + 400 * C_PERIOD_PS, 2,
                          C_T0 + 400 * C_PERIOD_PS) != 0)
        die("send GRANT");
    c_until_reached(&fb, run, 2);
    stop_sim();
    fb_fini(&fb);
    if (answer_late)
        log_must_contain("free-running cycles do not count");
}

static void case_coupled(void)
{
    static struct c_run first, second;
    c_scenario(&first, false);
    c_scenario(&second, true);
    if (first.n != second.n)
        fail("%u messages in the first run, %u in the second", first.n, second.n);
    for (unsigned i = 0; i < first.n && i < second.n; i++) {
        const struct c_msg *x = &first.msgs[i], *y = &second.msgs[i];
        if (x->body != y->body || x->kind != y->kind || x->stamp != y->stamp ||
            x->sync_id != y->sync_id || x->idle != y->idle || x->tag != y->tag ||
            x->clocked_cycles != y->clocked_cycles)
            fail("message %u: body %d kind %d at %llu ps, then body %d kind %d at %llu ps", i,
                 x->body, x->kind, (unsigned long long)x->stamp, y->body, y->kind,
                 (unsigned long long)y->stamp);
        if (x->stamp % C_PERIOD_PS != 0 || x->stamp < C_T0)
            fail("message %u stamped %llu ps", i, (unsigned long long)x->stamp);
    }
    printf("coupled: %u messages, the same in both runs\n", first.n);
}

/* ---- coupled_dmacopy ------------------------------------------------------------------- */

/* The dmacopy RTL coupled: a 4 KiB copy in one grant, the bridge playing
 * host memory; then an idle second. Twice, DMA reads answered at once and
 * after a pause: the same messages with the same stamps. */
#define D_PERIOD_PS 4000ull
#define D_T0 1000000ull
#define D_BAR0 0xFE000000u
#define D_MEM_BASE 0x100000u
#define D_MEM_BYTES (64u * 1024u)
#define D_RING (D_MEM_BASE + 0x0000u)
#define D_SRC (D_MEM_BASE + 0x1000u)
#define D_DST (D_MEM_BASE + 0x4000u)
#define D_LEN 4096u

static uint8_t host_mem[D_MEM_BYTES];

static void d_mwr(struct fake_bridge *fb, uint32_t reg, uint32_t value, uint64_t stamp)
{
    static uint8_t data[64][4];
    static unsigned next;
    uint8_t *d = data[next++ % 64];
    tlpb_put_le32(d, value);
    struct tlpb_tlp w = {.kind = TLPB_TLP_MWR, .address = D_BAR0 + reg, .length_dw = 1,
                         .first_be = 0xF, .bar_hint = 0, .payload_bytes = 4, .payload = d,
                         .sim_time_ps = stamp};
    c_send_tlp(fb, &w);
}

static void d_answer_read(struct fake_bridge *fb, const struct tlpb_tlp *rd)
{
    uint64_t addr = tlpb_tlp_first_byte_address(rd);
    uint32_t bytes = tlpb_tlp_request_bytes(rd);
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, rd, 0, addr, bytes, bytes);
    cpl.payload = host_mem + ((addr & ~3ull) - D_MEM_BASE);
    c_send_tlp(fb, &cpl);
}

/* Serve the device's DMA until a REACHED for sync_id; returns it. Late:
 * reads are answered only once the simulator has been quiet for a while
 * (its clock holds at the first completion's cycle), all at once. */
static Tlpb__TimeSync d_serve_until_reached(struct fake_bridge *fb, struct c_run *run,
                                            uint64_t sync_id, bool answer_late)
{
    static struct tlpb_tlp owed[64];
    unsigned owed_n = 0;
    for (;;) {
        if (answer_late && owed_n) {
            struct pollfd p = {.fd = fb->fd, .events = POLLIN};
            if (fb->rd.end == fb->rd.start && poll(&p, 1, 20) == 0) {
                for (unsigned i = 0; i < owed_n; i++)
                    d_answer_read(fb, &owed[i]);
                owed_n = 0;
            }
        }
        Tlpb__Envelope *env = c_recv(fb, run);
        if (env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
            env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED) {
            Tlpb__TimeSync ts = *env->time_sync;
            if (ts.sync_id != sync_id)
                fail("REACHED %llu, expected %llu", (unsigned long long)ts.sync_id,
                     (unsigned long long)sync_id);
            if (owed_n)
                fail("REACHED with %u DMA reads unanswered", owed_n);
            tlpb_envelope_free(env);
            return ts;
        }
        struct tlpb_tlp t;
        const char *reason = "?";
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP && tlpb_tlp_from_pb(&t, env->tlp, &reason) == 0) {
            uint64_t addr = tlpb_tlp_first_byte_address(&t);
            uint32_t bytes = tlpb_tlp_request_bytes(&t);
            if (addr < D_MEM_BASE || addr + bytes > D_MEM_BASE + D_MEM_BYTES) {
                fail("DMA outside host memory at %#llx", (unsigned long long)addr);
            } else if (t.kind == TLPB_TLP_MWR) {
                memcpy(host_mem + (addr - D_MEM_BASE), t.payload + (addr & 3u), bytes);
            } else if (t.kind == TLPB_TLP_MRD) {
                if (!answer_late)
                    d_answer_read(fb, &t);
                else if (owed_n < 64)
                    owed[owed_n++] = t; /* no payload: safe to keep */
                else
                    fail("more than 64 DMA reads outstanding");
            }
        }
        tlpb_envelope_free(env);
    }
}

static void d_scenario(struct c_run *run, bool answer_late, uint64_t *idle_clocked)
{
    struct fake_bridge fb;
    const char *extra[] = {"--clock-period-ps", "4000", NULL};
    hello_caps = TLPB__CAPABILITY__CAP_TIME_SYNC;
    memset(run, 0, sizeof(*run));
    memset(host_mem, 0, sizeof(host_mem));
    for (unsigned i = 0; i < D_LEN; i++)
        host_mem[D_SRC - D_MEM_BASE + i] = (uint8_t)(i * 7u + 3u);
    uint8_t *desc = host_mem + (D_RING - D_MEM_BASE);
    tlpb_put_le32(desc + 0, D_SRC);
    tlpb_put_le32(desc + 8, D_DST);
    tlpb_put_le32(desc + 16, D_LEN);
    start_sim(&fb, extra);

    uint64_t t = D_T0;
    if (fb_send_time_sync(&fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, t, 0, 0) != 0 ||
        fb_send_reset_at(&fb, TLPB__RESET_KIND__RESET_HOT, t) != 0)
        die("send COUPLED, reset");
    c_config_write(&fb, 0x10, D_BAR0, 0xF, 1, t + 1);
    c_config_write(&fb, 0x04, 0x0006, 0x3, 2, t + 2);
    for (unsigned i = 0; i < 2; i++) {
        Tlpb__Envelope *env = c_recv(&fb, run);
        if (env->body_case != TLPB__ENVELOPE__BODY_TLP || env->tlp->kind != TLPB__TLP_KIND__TLP_CPL)
            fail("config write %u: no completion", i);
        tlpb_envelope_free(env);
    }
    t += 1000000; /* 1 us later the driver programs the ring and rings */
    d_mwr(&fb, REG_RING_LO, D_RING, t);
    d_mwr(&fb, REG_RING_HI, 0, t + 1000);
    d_mwr(&fb, REG_RING_SIZE, 2, t + 2000);
    d_mwr(&fb, REG_CTRL, CTRL_ENABLE, t + 3000);
    d_mwr(&fb, REG_TAIL, 1, t + 4000);
    if (fb_send_time_sync(&fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, t + 20000000, 1,
                          t + 20000000) != 0) /* 20 us: plenty for 4 KiB */
        die("send GRANT");
    Tlpb__TimeSync r1 = d_serve_until_reached(&fb, run, 1, answer_late);
    if (r1.sim_time_ps != t + 20000000)
        fail("REACHED 1 at %llu ps", (unsigned long long)r1.sim_time_ps);
    if (memcmp(host_mem + (D_DST - D_MEM_BASE), host_mem + (D_SRC - D_MEM_BASE), D_LEN) != 0)
        fail("the copy is not in host memory after the grant");
    if (!(tlpb_get_le32(desc + 24) & DESC_DONE))
        fail("the descriptor is not done after the grant");

    /* An idle second: the design says idle, nothing is clocked for it. */
    if (fb_send_time_sync(&fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, t + 1000000000000ull, 2,
                          t + 1000000000000ull) != 0)
        die("send GRANT");
    Tlpb__TimeSync r2 = d_serve_until_reached(&fb, run, 2, answer_late);
    if (!r2.idle || r2.sim_time_ps != t + 1000000000000ull)
        fail("REACHED 2: idle %d at %llu ps", r2.idle, (unsigned long long)r2.sim_time_ps);
    *idle_clocked = r2.clocked_cycles - r1.clocked_cycles;
    stop_sim();
    fb_fini(&fb);
}

static void case_coupled_dmacopy(void)
{
    static struct c_run first, second;
    uint64_t idle1, idle2;
    sim_device = "dma0";
    d_scenario(&first, false, &idle1);
    d_scenario(&second, true, &idle2);
    /* the grant before had 8 quiet cycles to spare at most */
    if (idle1 > 16 || idle2 > 16)
        fail("%llu and %llu cycles clocked over an idle second",
             (unsigned long long)idle1, (unsigned long long)idle2);
    if (first.n != second.n)
        fail("%u messages in the first run, %u in the second", first.n, second.n);
    for (unsigned i = 0; i < first.n && i < second.n; i++) {
        const struct c_msg *x = &first.msgs[i], *y = &second.msgs[i];
        if (x->body != y->body || x->kind != y->kind || x->stamp != y->stamp ||
            x->sync_id != y->sync_id || x->idle != y->idle || x->tag != y->tag ||
            x->clocked_cycles != y->clocked_cycles) {
            fail("message %u: body %d kind %d at %llu ps, then body %d kind %d at %llu ps", i,
                 x->body, x->kind, (unsigned long long)x->stamp, y->body, y->kind,
                 (unsigned long long)y->stamp);
            break;
        }
    }
    printf("coupled_dmacopy: %u messages, the same in both runs\n", first.n);
}

/* ---- waveforms --------------------------------------------------------------------------- */

struct vcd_summary {
    long size;
    unsigned enddefinitions;
    unsigned timestamps;
    unsigned long long first_time, last_time;
    bool has_clk, has_rx_tdata;
};

static bool read_vcd(const char *path, struct vcd_summary *s)
{
    memset(s, 0, sizeof(*s));
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool first = true;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "$enddefinitions", 15) == 0)
            s->enddefinitions++;
        if (strstr(line, "$var") && strstr(line, " clk "))
            s->has_clk = true;
        if (strstr(line, "$var") && strstr(line, " rx_tdata "))
            s->has_rx_tdata = true;
        if (line[0] == '#') {
            unsigned long long t = strtoull(line + 1, NULL, 10);
            if (first)
                s->first_time = t;
            first = false;
            s->last_time = t;
            s->timestamps++;
        }
    }
    s->size = ftell(f);
    fclose(f);
    return true;
}

static void log_must_contain(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    if (!strstr(buf, needle))
        fail("the simulator's log does not say \"%s\"", needle);
}

static void case_trace(void)
{
    char vcd[256];
    snprintf(vcd, sizeof(vcd), "%s/whole.vcd", dir);
    struct fake_bridge fb;
    const char *extra[] = {"--trace", vcd, "--max-cycles", "3000", NULL};
    start_sim(&fb, extra);
    wait_sim_exit();
    fb_fini(&fb);
    struct vcd_summary s;
    if (!read_vcd(vcd, &s))
        die("no waveform file %s", vcd);
    printf("trace: %ld bytes, %u time steps, %llu..%llu ps\n", s.size, s.timestamps, s.first_time,
           s.last_time);
    if (s.enddefinitions != 1 || !s.has_clk || !s.has_rx_tdata)
        fail("the VCD lacks its header or signals");
    /* two dumps a cycle, 3000 cycles; edges at device time, the clock
     * period after the cycle they end (edge k at k * period) */
    if (s.timestamps != 6000)
        fail("%u time steps for 3000 cycles, expected 6000", s.timestamps);
    if (s.last_time != 3000ull * PERIOD_PS + PERIOD_PS / 2)
        fail("last time %llu ps", s.last_time);
    log_must_contain("waveforms written to");
}

static void case_window(void)
{
    const unsigned window = 200;
    char vcd[256], win[16];
    snprintf(vcd, sizeof(vcd), "%s/window.vcd", dir);
    snprintf(win, sizeof(win), "%u", window);

    /* No trigger in a long run: the last cycles only, bounded. */
    struct fake_bridge fb;
    const char *extra[] = {"--trace", vcd, "--trace-window", win, "--max-cycles", "20000", NULL};
    start_sim(&fb, extra);
    wait_sim_exit();
    fb_fini(&fb);
    struct vcd_summary s;
    if (!read_vcd(vcd, &s))
        die("no waveform file %s", vcd);
    printf("window without trigger: %ld bytes, %u time steps, %llu..%llu ps\n", s.size,
           s.timestamps, s.first_time, s.last_time);
    unsigned bound = 2 * (2 * window + window / 8 + 2);
    if (s.enddefinitions != 1)
        fail("joined VCD has %u headers", s.enddefinitions);
    if (s.timestamps > bound || s.timestamps < 2 * window)
        fail("%u time steps, expected between %u and %u", s.timestamps, 2 * window, bound);
    if (s.last_time != 20000ull * PERIOD_PS + PERIOD_PS / 2)
        fail("the window does not end at the last cycle (%llu ps)", s.last_time);
    log_must_contain("no waveform trigger");
    remove(vcd);

    /* A trigger: the design echoes a write while bus mastering is off, the
     * adapter rejects it and reports it to the bridge. */
    const char *extra2[] = {"--trace", vcd, "--trace-window", win, NULL};
    start_sim(&fb, extra2);
    program_bars(&fb);
    config_write(&fb, 0x04, 0x0002, 0x3); /* memory only */
    uint8_t data[4] = {1, 2, 3, 4};
    struct tlpb_tlp w = {.kind = TLPB_TLP_MWR, .address = BAR0_ADDR, .length_dw = 1,
                         .first_be = 0xF, .bar_hint = 0, .payload_bytes = 4, .payload = data};
    if (fb_send_tlp(&fb, &w) != 0)
        die("send write");
    Tlpb__Envelope *env = fb_recv(&fb, WAIT_MS);
    if (!env || env->body_case != TLPB__ENVELOPE__BODY_ERROR ||
        !strstr(env->error->reason, "bus mastering"))
        fail("the adapter did not report the rejected write");
    if (env)
        tlpb_envelope_free(env);
    stop_sim();
    fb_fini(&fb);
    if (!read_vcd(vcd, &s))
        die("no waveform file %s", vcd);
    printf("window with trigger: %ld bytes, %u time steps, %llu..%llu ps\n", s.size, s.timestamps,
           s.first_time, s.last_time);
    log_must_contain("waveform window written to");
    log_must_contain("DMA with bus mastering disabled");
    unsigned long long trigger = 0;
    FILE *f = fopen(log_path, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, "waveform trigger at cycle ");
        if (at)
            trigger = strtoull(at + strlen("waveform trigger at cycle "), NULL, 10);
    }
    if (f)
        fclose(f);
    if (trigger == 0)
        fail("no trigger cycle in the log");
    if (s.enddefinitions != 1 || s.timestamps > bound || s.timestamps == 0)
        fail("window with trigger: %u headers, %u time steps (bound %u)", s.enddefinitions,
             s.timestamps, bound);
    /* it covers the trigger (cycle c, 0-based, dumped at (c + 1) * period)
     * and ends at most window/8 + 1 cycles after it */
    if (s.first_time > (trigger + 1) * PERIOD_PS || s.last_time < (trigger + 1) * PERIOD_PS ||
        s.last_time > (trigger + window / 8 + 3) * PERIOD_PS)
        fail("window %llu..%llu ps does not fit the trigger at cycle %llu", s.first_time,
             s.last_time, trigger);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"sim", required_argument, NULL, 's'},
                                         {"case", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    const char *which = NULL;
    int ch;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 's')
            sim_path = optarg;
        else if (ch == 'c')
            which = optarg;
        else
            return 2;
    }
    if (!sim_path || !which) {
        fprintf(stderr, "usage: test_rtl_loopback --sim PATH --case echo|trace|window|coupled|coupled_dmacopy\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/tlpbrtl-XXXXXX", tmp && *tmp && strlen(tmp) < 60 ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(sock_path, sizeof(sock_path), "%.90s/bridge.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/sim.log", dir);
    if (strcmp(which, "echo") == 0)
        case_echo();
    else if (strcmp(which, "trace") == 0)
        case_trace();
    else if (strcmp(which, "window") == 0)
        case_window();
    else if (strcmp(which, "coupled") == 0)
        case_coupled();
    else if (strcmp(which, "coupled_dmacopy") == 0)
        case_coupled_dmacopy();
    else
        die("unknown case %s", which);
    if (failures)
        dump_log();
    cleanup();
    printf("test_rtl_loopback %s: %s\n", which, failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}

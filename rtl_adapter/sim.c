/* rtl_adapter: run control of a simulator executable (the C++ main only
 * clocks the model and writes waveforms). Command line, attach, signals,
 * and the report at the end: cycles simulated and cycles per second. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static struct tlpb_rtl *sim_adapter;
static struct tlpb_rtl_sim_options sim_opts;
static uint64_t sim_start_ns;
static int sim_log_level = TLPB_RTL_LOG_INFO;
static enum tlpb_rtl_waveforms sim_waveforms = TLPB_RTL_WAVEFORMS_NONE;

void tlpb_rtl_sim_set_waveforms(enum tlpb_rtl_waveforms kind)
{
    sim_waveforms = kind;
}

static void on_signal(int sig)
{
    if (sim_adapter)
        tlpb_rtl_request_stop(sim_adapter); /* the loop ends at the next edge */
}

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s --socket PATH|unix:PATH|tcp:HOST:PORT --device NAME\n"
            "          [--trace FILE] [--trace-window N] [--clock-period-ps N | --cycles-per-ns F]\n"
            "          [--dma-read-latency-ns N] [--timeout-ms N] [--max-cycles N]\n"
            "          [--max-cycles-per-s N]\n"
            "          [--log-level 0-3]\n"
            "\n"
            "Runs the %s RTL model (Verilator) attached to tlpbridged as the\n"
            "simulator of device NAME.\n"
            "  --socket ADDR       bridge address\n"
            "  --device NAME       device name in the bridge configuration\n"
            "  --trace FILE        write waveforms (format chosen at build time)\n"
            "  --trace-window N    keep only the N cycles before the first trigger\n"
            "                      (an error TLP from the design, or its trigger input)\n"
            "                      and N/8 after it; without a trigger, the last N\n"
            "  --clock-period-ps N the design's clock period: device time in coupled mode,\n"
            "                      waveform time and reports (default 4000: 250 MHz)\n"
            "  --cycles-per-ns F   the same as a frequency (0.25: a period of 4000 ps)\n"
            "  --dma-read-latency-ns N  coupled mode: device time from a DMA read of the\n"
            "                      design to its completion (default 250)\n"
            "  --timeout-ms N      completion timeout announced to the bridge (default 60000)\n"
            "  --max-cycles N      stop after N cycles\n"
            "  --max-cycles-per-s N  simulate at most N cycles per wall second, as a large\n"
            "                      design would (idle time does not count; default 0: no cap)\n"
            "  --log-level N       0 error, 1 warn, 2 info (default), 3 debug\n"
            "  --tx-stall-percent P  testing: drop tx_tready for random stretches\n",
            prog, tlpb_rtl_device.name);
}

static bool parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    /* strtoull would skip blanks and negate a '-': only digits may start */
    if (!isdigit((unsigned char)*s))
        return false;
    unsigned long long x = strtoull(s, &end, 0);
    if (*end != '\0' || errno)
        return false;
    *v = x;
    return true;
}

int tlpb_rtl_sim_start(int argc, char **argv, struct tlpb_rtl_sim_options *opts)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"device", required_argument, NULL, 'd'},
        {"trace", required_argument, NULL, 't'},
        {"trace-window", required_argument, NULL, 'w'},
        {"cycles-per-ns", required_argument, NULL, 'f'},
        {"clock-period-ps", required_argument, NULL, 'P'},
        {"dma-read-latency-ns", required_argument, NULL, 'L'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"max-cycles", required_argument, NULL, 'm'},
        {"max-cycles-per-s", required_argument, NULL, 'r'},
        {"log-level", required_argument, NULL, 'l'},
        {"tx-stall-percent", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct tlpb_rtl_options ao = {.description = tlpb_rtl_device.description,
                                  .log_level = TLPB_RTL_LOG_INFO};
    const char *prog = argv[0];
    uint64_t v;
    int opt;

    memset(opts, 0, sizeof(*opts));
    opts->cycles_per_ns = 0.25;
    opts->clock_period_ps = 4000;
    opts->dma_read_latency_ns = 250;
    while ((opt = getopt_long(argc, argv, "s:d:t:w:f:P:L:T:m:r:l:S:h", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            ao.socket = optarg;
            break;
        case 'd':
            ao.device_name = optarg;
            break;
        case 't':
            opts->trace_path = optarg;
            break;
        case 'w':
            if (!parse_u64(optarg, &v) || v < 16) {
                fprintf(stderr, "%s: --trace-window takes a cycle count of at least 16\n", prog);
                return 2;
            }
            opts->trace_window_cycles = v;
            break;
        case 'f': {
            char *end;
            double f = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(f > 0.0) || f > 100.0) {
                fprintf(stderr, "%s: --cycles-per-ns takes a number above 0 (e.g. 0.25)\n", prog);
                return 2;
            }
            opts->cycles_per_ns = f;
            /* An integer period in ps is what counts. */
            opts->clock_period_ps = (uint64_t)(1000.0 / f + 0.5);
            if (opts->clock_period_ps == 0)
                opts->clock_period_ps = 1;
            break;
        }
        case 'P':
            if (!parse_u64(optarg, &v) || v < 2 || v > 1000000000ull) {
                fprintf(stderr, "%s: --clock-period-ps takes 2 to 1000000000 (ps), not '%s'\n",
                        prog, optarg);
                return 2;
            }
            opts->clock_period_ps = v;
            opts->cycles_per_ns = 1000.0 / (double)v;
            break;
        case 'L':
            if (!parse_u64(optarg, &v) || v == 0 || v > 1000000000ull) {
                fprintf(stderr, "%s: --dma-read-latency-ns takes 1 to 1000000000 (ns), not '%s'\n",
                        prog, optarg);
                return 2;
            }
            opts->dma_read_latency_ns = (uint32_t)v;
            break;
        case 'T':
            if (!parse_u64(optarg, &v) || v == 0 || v > 3600000) {
                fprintf(stderr, "%s: --timeout-ms takes 1 to 3600000\n", prog);
                return 2;
            }
            ao.completion_timeout_ms = (uint32_t)v;
            break;
        case 'm':
            if (!parse_u64(optarg, &v)) {
                fprintf(stderr, "%s: --max-cycles takes a count\n", prog);
                return 2;
            }
            opts->max_cycles = v;
            break;
        case 'r':
            if (!parse_u64(optarg, &v) || v > RTL_THROTTLE_MAX_CYCLES_PER_S) {
                fprintf(stderr,
                        "%s: --max-cycles-per-s takes a cycle count per wall second, 0 (no cap)"
                        " to %llu, not '%s'\n",
                        prog, RTL_THROTTLE_MAX_CYCLES_PER_S, optarg);
                return 2;
            }
            opts->max_cycles_per_s = v;
            ao.max_cycles_per_s = v;
            break;
        case 'l':
            if (!parse_u64(optarg, &v) || v > 3) {
                fprintf(stderr, "%s: --log-level takes 0 to 3\n", prog);
                return 2;
            }
            ao.log_level = (int)v;
            break;
        case 'S':
            if (!parse_u64(optarg, &v) || v > 90) {
                fprintf(stderr, "%s: --tx-stall-percent takes 0 to 90\n", prog);
                return 2;
            }
            ao.tx_stall_percent = (unsigned)v;
            break;
        case 'h':
            usage(stdout, prog);
            return 0;
        default:
            usage(stderr, prog);
            return 2;
        }
    }
    if (optind != argc || !ao.socket || !ao.device_name) {
        if (optind != argc)
            fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        else
            fprintf(stderr, "%s: --socket and --device are required\n", prog);
        usage(stderr, prog);
        return 2;
    }
    if (opts->trace_window_cycles && !opts->trace_path) {
        fprintf(stderr, "%s: --trace-window needs --trace FILE\n", prog);
        return 2;
    }
    if (opts->trace_path && sim_waveforms == TLPB_RTL_WAVEFORMS_NONE) {
        fprintf(stderr, "%s: built without waveform support (Verilator --trace)\n", prog);
        return 2;
    }
    if (opts->trace_window_cycles && sim_waveforms == TLPB_RTL_WAVEFORMS_FST) {
        fprintf(stderr, "%s: --trace-window needs a VCD build (FST parts cannot be joined)\n",
                prog);
        return 2;
    }
    sim_log_level = ao.log_level;
    ao.clock_period_ps = opts->clock_period_ps;
    ao.dma_read_latency_ns = opts->dma_read_latency_ns;

    char peer[96];
    snprintf(peer, sizeof(peer), "rtl %s (Verilator)", tlpb_rtl_device.name);
    ao.peer_name = peer;
    char err[256] = "";
    signal(SIGPIPE, SIG_IGN);
    int rc = tlpb_rtl_open(&sim_adapter, &ao, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s: cannot attach to %s as device %s: %s\n", prog, ao.socket,
                ao.device_name, err);
        return 1;
    }
    sim_opts = *opts;
    tlpb_rtl_dpi_bind(sim_adapter);
    /* No SA_RESTART: a sleep on the socket ends at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (ao.max_cycles_per_s)
        tlpb_rtl_log(sim_adapter, TLPB_RTL_LOG_INFO,
                     "pacing to at most %llu cycles per wall second (--max-cycles-per-s)",
                     (unsigned long long)ao.max_cycles_per_s);
    sim_start_ns = tlpb_now_ns();
    return -1;
}

bool tlpb_rtl_sim_running(void)
{
    if (!sim_adapter || tlpb_rtl_finished(sim_adapter, NULL))
        return false;
    return !sim_opts.max_cycles || sim_adapter->stats.cycles < sim_opts.max_cycles;
}

bool tlpb_rtl_sim_take_trigger(void)
{
    return sim_adapter && tlpb_rtl_take_trigger(sim_adapter);
}

uint64_t tlpb_rtl_sim_cycles(void)
{
    return sim_adapter ? sim_adapter->stats.cycles : 0;
}

uint64_t tlpb_rtl_sim_edge_time_ps(void)
{
    return sim_adapter ? (sim_adapter->edge_cycle + sim_adapter->wave_offset_cycles) *
                             sim_adapter->period_ps
                       : 0;
}

void tlpb_rtl_sim_log(int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (level > sim_log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tlpb_rtl_log(sim_adapter, level, "%s", msg);
}

int tlpb_rtl_sim_finish(void)
{
    if (!sim_adapter)
        return 1;
    int code = 0;
    if (!tlpb_rtl_finished(sim_adapter, &code))
        code = 0; /* --max-cycles */
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(sim_adapter, &st);
    double wall_s = (double)(tlpb_now_ns() - sim_start_ns) / 1e9;
    double asleep_s = (double)st.idle_wait_ns / 1e9;
    double busy_s = wall_s - asleep_s;
    char cap[160] = "";
    if (sim_adapter->opts.max_cycles_per_s)
        snprintf(cap, sizeof(cap), "; capped at %llu cycles/s (%.2f s in %llu pacing sleeps)",
                 (unsigned long long)sim_adapter->opts.max_cycles_per_s,
                 (double)st.pacing_sleep_ns / 1e9, (unsigned long long)st.pacing_sleeps);
    if (st.skipped_cycles || st.reached)
        tlpb_rtl_log(sim_adapter, TLPB_RTL_LOG_INFO,
                     "coupled time: device clock at cycle %llu (%.3f ms), %llu cycles clocked,"
                     " %llu skipped while idle; %llu grants reached (%llu idle)",
                     (unsigned long long)st.time_cycle,
                     (double)st.time_cycle * (double)sim_adapter->period_ps / 1e9,
                     (unsigned long long)st.cycles, (unsigned long long)st.skipped_cycles,
                     (unsigned long long)st.reached, (unsigned long long)st.reached_idle);
    tlpb_rtl_log(sim_adapter, TLPB_RTL_LOG_INFO,
                 "simulated %llu cycles (%.3f ms at %.3f cycles/ns) in %.2f s: %.0f cycles/s"
                 " overall, %.0f cycles/s while not asleep (%.2f s asleep on the socket, %llu"
                 " sleeps); TLPs: %llu to the design, %llu from it (%llu rejected); %llu MSI-X,"
                 " %llu INTx changes, %llu config requests, %llu resets%s",
                 (unsigned long long)st.cycles, (double)st.cycles / sim_opts.cycles_per_ns / 1e6,
                 sim_opts.cycles_per_ns, wall_s, wall_s > 0 ? (double)st.cycles / wall_s : 0.0,
                 busy_s > 0 ? (double)st.cycles / busy_s : 0.0, asleep_s,
                 (unsigned long long)st.idle_waits, (unsigned long long)st.tlps_to_design,
                 (unsigned long long)st.tlps_from_design,
                 (unsigned long long)st.bad_tlps_from_design, (unsigned long long)st.msix_messages,
                 (unsigned long long)st.intx_changes, (unsigned long long)st.config_requests,
                 (unsigned long long)st.resets, cap);
    tlpb_rtl_dpi_bind(NULL);
    struct tlpb_rtl *a = sim_adapter;
    sim_adapter = NULL;
    tlpb_rtl_close(a);
    return code;
}

/* rtl_adapter: the connection to the bridge, through libtlpbsim. Attach
 * (Hello as a simulator with the device description and a long completion
 * timeout), TLPs and resets from the bridge into the RX queue, output
 * batched and written on the cycle loop's cadence, logging. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define DEFAULT_COMPLETION_TIMEOUT_MS 60000u
#define DEFAULT_RESET_CYCLES 16u
#define DEFAULT_IDLE_WAIT_MS 200u
#define CLOSE_FLUSH_MS 2000

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tlpb_rtl_log(const struct tlpb_rtl *a, int level, const char *fmt, ...)
{
    va_list ap;

    if (a && level > a->opts.log_level)
        return;
    fprintf(stderr, "tlpb-rtl[%s] %s: ", a ? a->device_name : "?",
            level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- output ------------------------------------------------------------------ */

void rtl_send_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp)
{
    /* The cycle loop holds tx_tready low while the output is over half its
     * limit, so a request is not refused here. */
    int rc = tlpb_sim_send_tlp(a->sim, tlp);
    if (rc < 0 && rc != -ENOTCONN)
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "cannot queue %s: %s", tlpb_tlp_kind_name(tlp->kind),
                     strerror(-rc));
}

void rtl_send_interrupt(struct tlpb_rtl *a, Tlpb__InterruptKind kind, uint32_t vector)
{
    tlpb_sim_send_interrupt(a->sim, kind, vector);
}

void rtl_flush_output(struct tlpb_rtl *a)
{
    a->last_flush = a->stats.cycles;
    tlpb_sim_flush(a->sim);
}

/* ---- input ------------------------------------------------------------------- */

static void receive_tlp(void *arg, const struct tlpb_tlp *tlp)
{
    struct tlpb_rtl *a = arg;
    uint64_t due = rtl_due_cycle(a, tlp->sim_time_ps);

    switch (tlp->kind) {
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        a->host_np_outstanding++;
        rtl_rx_push_config(a, tlp, due); /* in order with the memory requests */
        break;
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        rtl_memory_request(a, tlp, due);
        break;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        rtl_rx_push_host_completion(a, tlp); /* due by its read's latency */
        break;
    default:
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "TLP of kind %d from the bridge ignored", (int)tlp->kind);
        break;
    }
}

static void receive_reset(void *arg, Tlpb__ResetKind kind)
{
    struct tlpb_rtl *a = arg;
    rtl_rx_push_reset(a, kind, rtl_due_cycle(a, tlpb_sim_input_time_ps(a->sim)));
}

static void receive_time_sync(void *arg, const struct tlpb_sim_time_sync *ts)
{
    rtl_time_sync(arg, ts);
}

static uint16_t bus_device_function(void *arg)
{
    const struct tlpb_rtl *a = arg;
    return a->cfg.bus_device_function;
}

static const struct tlpb_sim_callbacks rtl_sim_callbacks = {
    .tlp = receive_tlp,
    .reset = receive_reset,
    .bus_device_function = bus_device_function,
    .time_sync = receive_time_sync,
};

void rtl_read_input(struct tlpb_rtl *a)
{
    a->last_read = a->stats.cycles;
    /* Above the limit the bridge waits (its queues are bounded too). While
     * the clock waits for the host, whose grant may be behind what is
     * queued, up to twice the limit. */
    size_t limit = a->waiting_for_host ? 2u * RTL_INPUT_LIMIT_BYTES : RTL_INPUT_LIMIT_BYTES;
    if (a->rx_bytes >= limit)
        return;
    size_t room = limit - a->rx_bytes;
    tlpb_sim_read_input(a->sim, room < RTL_READ_BUDGET_BYTES ? room : RTL_READ_BUDGET_BYTES);
}

void rtl_wait_socket(struct tlpb_rtl *a, int timeout_ms)
{
    uint64_t t0 = tlpb_now_ns();
    int rc = tlpb_sim_wait(a->sim, timeout_ms);
    a->stats.idle_waits++;
    a->stats.idle_wait_ns += tlpb_now_ns() - t0;
    if (rc > 0)
        rtl_read_input(a);
}

/* ---- attach ------------------------------------------------------------------ */

int tlpb_rtl_open_fd(struct tlpb_rtl **out, int fd, const struct tlpb_rtl_options *opts,
                     char *err, size_t err_size)
{
    *out = NULL;
    if (!opts->device_name || strlen(opts->device_name) >= sizeof(((struct tlpb_rtl *)0)->device_name)) {
        snprintf(err, err_size, "a device name of 1 to 63 characters is required");
        close(fd);
        return -EINVAL;
    }
    struct tlpb_rtl *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, err_size, "out of memory");
        close(fd);
        return -ENOMEM;
    }
    a->opts = *opts;
    snprintf(a->device_name, sizeof(a->device_name), "%s", opts->device_name);
    snprintf(a->peer_name, sizeof(a->peer_name), "%s", opts->peer_name ? opts->peer_name : "rtl");
    if (!a->opts.completion_timeout_ms)
        a->opts.completion_timeout_ms = DEFAULT_COMPLETION_TIMEOUT_MS;
    if (!a->opts.reset_cycles)
        a->opts.reset_cycles = DEFAULT_RESET_CYCLES;
    if (!a->opts.idle_wait_ms)
        a->opts.idle_wait_ms = DEFAULT_IDLE_WAIT_MS;
    a->stall_rng = opts->stall_seed ? opts->stall_seed : 0x2545F491u;
    if (!a->opts.clock_period_ps)
        a->opts.clock_period_ps = RTL_DEFAULT_CLOCK_PERIOD_PS;
    if (!a->opts.dma_read_latency_ns)
        a->opts.dma_read_latency_ns = RTL_DEFAULT_DMA_READ_LATENCY_NS;
    a->period_ps = a->opts.clock_period_ps;
    /* at least one cycle: the completion comes after the request */
    a->dma_latency_cycles =
        ((uint64_t)a->opts.dma_read_latency_ns * 1000u + a->period_ps - 1) / a->period_ps;
    if (!a->dma_latency_cycles)
        a->dma_latency_cycles = 1;

    const struct tlpb_sim_options sim_opts = {
        .device_name = a->device_name,
        .peer_name = a->peer_name,
        .description = &a->opts.description,
        .unsplit_dma = false, /* PCIe-exact: never unsplit DMA */
        .completion_timeout_ms = a->opts.completion_timeout_ms,
        .handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS,
        .output_limit_bytes = RTL_OUTPUT_LIMIT_BYTES,
        /* Offered always: without COUPLED from the bridge nothing changes. */
        .time_sync = true,
        .clock_period_ps = a->period_ps,
        .log_name = "tlpb-rtl",
        .log_level = a->opts.log_level,
    };
    /* The library checks the description before anything goes out. */
    int rc = tlpb_sim_attach_fd(&a->sim, fd, &sim_opts, &rtl_sim_callbacks, a, err, err_size);
    if (rc != 0) {
        free(a);
        return rc;
    }
    rtl_config_init(a);
    if (!a->msix_table && opts->description.msix_vectors) {
        snprintf(err, err_size, "out of memory");
        tlpb_rtl_close(a);
        return -ENOMEM;
    }
    tlpb_rtl_log(a, TLPB_RTL_LOG_INFO,
                 "attached as simulator for %s (completion timeout %u ms, max frame %u, clock"
                 " period %llu ps%s)",
                 a->device_name, a->opts.completion_timeout_ms,
                 tlpb_sim_max_frame_bytes(a->sim), (unsigned long long)a->period_ps,
                 tlpb_sim_time_negotiated(a->sim) ? ", coupled time offered" : "");
    /* What the bridge sent right behind its reply waits in the library
     * until the power-on reset is over (the first read on the cycle
     * cadence hands it over). */
    a->reset_left = a->opts.reset_cycles;
    a->power_on_reset = true;
    *out = a;
    return 0;
}

int tlpb_rtl_open(struct tlpb_rtl **out, const struct tlpb_rtl_options *opts, char *err,
                  size_t err_size)
{
    *out = NULL;
    if (!opts->socket) {
        snprintf(err, err_size, "no bridge address");
        return -EINVAL;
    }
    int fd = tlpb_connect(opts->socket, err, err_size);
    if (fd < 0)
        return fd;
    return tlpb_rtl_open_fd(out, fd, opts, err, err_size);
}

void tlpb_rtl_close(struct tlpb_rtl *a)
{
    if (!a)
        return;
    /* Leave with what is queued written, as far as the bridge takes it. */
    if (a->sim)
        tlpb_sim_drain(a->sim, CLOSE_FLUSH_MS);
    tlpb_sim_close(a->sim);
    rtl_rx_free_all(a);
    rtl_config_fini(a);
    free(a);
}

bool tlpb_rtl_finished(const struct tlpb_rtl *a, int *exit_code)
{
    if (!tlpb_sim_connected(a->sim)) {
        if (exit_code)
            *exit_code = 1;
        return true;
    }
    if (a->stop_requested) {
        if (exit_code)
            *exit_code = 0;
        return true;
    }
    return false;
}

void tlpb_rtl_request_stop(struct tlpb_rtl *a)
{
    a->stop_requested = 1;
}

bool tlpb_rtl_take_trigger(struct tlpb_rtl *a)
{
    bool t = a->trigger_pending;
    a->trigger_pending = false;
    return t;
}

void tlpb_rtl_get_stats(const struct tlpb_rtl *a, struct tlpb_rtl_stats *stats)
{
    *stats = a->stats;
    stats->time_cycle = a->time_cycle;
}

/* tlpbridged: routes PCIe transactions between hosts (the QEMU shim) and
 * device backends (in-process hlsim models, simulator processes, or the
 * fallback responder). Single-threaded libuv loop. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"

int bridge_log_level = TLPB_LOG_INFO;

static void log_line(int level, const char *text)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld tlpbridged %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, tlpb_log_level_name(level), text);
}

static void emit_summary(int level, const char *line, void *opaque)
{
    (void)opaque;
    log_line(level, line);
}

void bridge_log_flush(bool force)
{
    tlpb_log_flush_summaries(tlpb_now_ns(), force, emit_summary, NULL);
}

void bridge_log_at(struct tlpb_log_site *site, enum tlpb_log_level level, const char *fmt, ...)
{
    if ((int)level > bridge_log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Text from a peer that reached the line unescaped still cannot forge
     * a line or send terminal escapes. */
    char escaped[1024];
    const char *text = line;
    if (tlpb_log_needs_escape(line))
        text = tlpb_log_escape(escaped, sizeof(escaped), line, sizeof(line));
    if (level != TLPB_LOG_DEBUG) {
        uint64_t now = tlpb_now_ns();
        tlpb_log_flush_summaries(now, false, emit_summary, NULL);
        if (!tlpb_log_site_admit(site, now, level, text)) {
            bridge_log_summary_due();
            return;
        }
    }
    log_line(level, text);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tlpbridged [options]\n"
            "  -c, --config FILE         libconfig file (see examples/configs/)\n"
            "  -l, --listen PATH         unix socket to listen on (mode 0600)\n"
            "      --tcp HOST:PORT       also listen on TCP (loopback unless a token is set)\n"
            "      --token-file FILE     shared token (first line of FILE) every TCP peer must\n"
            "                            send; control over TCP needs it (also on loopback)\n"
            "      --token TOKEN         the same, on the command line (visible in ps)\n"
            "      --model-dir DIR       models may be loaded from DIR (repeatable); models\n"
            "                            named in the configuration are always allowed\n"
            "      --handshake-timeout-ms N  close connections without Hello after N ms\n"
            "      --ring adaptive|busy-poll|off  how the bridge waits on hosts' shared-memory\n"
            "                            rings (default adaptive; off: hosts use the socket)\n"
            "      --ring-spin-us N      adaptive: poll for N us after the last ring activity\n"
            "                            before sleeping (default 50)\n"
            "                            (default 5000)\n"
            "  -d, --device SPEC         NAME:hlsim=MODEL.so | NAME:external[=MODEL.so] |\n"
            "                            NAME:fallback[=MODEL.so] (repeatable)\n"
            "      --dma strict|fast     DMA mode for --device models (default strict)\n"
            "      --fallback-read ones|zeros|ur   for --device devices (default ones)\n"
            "      --timeout-ms N        completion timeout for --device devices\n"
            "      --check warn|reject|stop  what a PCIe checker violation does, for every\n"
            "                            device (default warn, or the config file's check)\n"
            "  -t, --trace FILE          record every transaction to FILE (a new file)\n"
            "  -v, --log-level LEVEL     error, warn, info (default), debug\n"
            "      --ready-fd N          write \"ready\\n\" to fd N once listening, then close it\n"
            "  -h, --help\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"listen", required_argument, NULL, 'l'},
        {"tcp", required_argument, NULL, 'T'},      {"token", required_argument, NULL, 'K'},
        {"device", required_argument, NULL, 'd'},   {"dma", required_argument, NULL, 'D'},
        {"fallback-read", required_argument, NULL, 'F'},
        {"timeout-ms", required_argument, NULL, 'O'},
        {"trace", required_argument, NULL, 't'},    {"log-level", required_argument, NULL, 'v'},
        {"ready-fd", required_argument, NULL, 'R'}, {"help", no_argument, NULL, 'h'},
        {"token-file", required_argument, NULL, 'k'},
        {"model-dir", required_argument, NULL, 'M'},
        {"handshake-timeout-ms", required_argument, NULL, 'H'},
        {"ring", required_argument, NULL, 'r'},
        {"check", required_argument, NULL, 'C'},
        {"ring-spin-us", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    /* Static: large, one per process, and nothing to free on the many
     * early exits below. */
    static struct bridge_config cfg_storage;
    static struct bridge bridge_storage;
    struct bridge_config *cfg = &cfg_storage;
    struct bridge *b = &bridge_storage;
    const char *config_path = NULL, *listen = NULL, *tcp = NULL, *token = NULL, *trace = NULL;
    const char *token_file = NULL;
    const char *model_dirs[BRIDGE_MAX_MODEL_DIRS];
    unsigned model_dir_count = 0;
    unsigned long handshake_timeout = 0;
    const char *dma = "strict", *fallback_read = "ones";
    unsigned long timeout = 0;
    char *device_args[BRIDGE_MAX_DEVICES];
    unsigned device_arg_count = 0;
    int ready_fd = -1;
    const char *ring = NULL;
    const char *check = NULL;
    long ring_spin_us = -1;
    char err[1024];
    int ch;
    while ((ch = getopt_long(argc, argv, "c:l:d:t:v:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config_path = optarg; break;
        case 'l': listen = optarg; break;
        case 'T': tcp = optarg; break;
        case 'K': token = optarg; break;
        case 'k': token_file = optarg; break;
        case 'M':
            if (model_dir_count == BRIDGE_MAX_MODEL_DIRS) {
                fprintf(stderr, "tlpbridged: more than %d --model-dir options\n",
                        BRIDGE_MAX_MODEL_DIRS);
                return 2;
            }
            model_dirs[model_dir_count++] = optarg;
            break;
        case 'r': ring = optarg; break;
        case 'C': check = optarg; break;
        case 'S': {
            char *end;
            ring_spin_us = strtol(optarg, &end, 10);
            if (!optarg[0] || *end || ring_spin_us < 0 || ring_spin_us > 1000000) {
                fprintf(stderr, "tlpbridged: --ring-spin-us wants 0..1000000\n");
                return 2;
            }
            break;
        }
        case 'H': {
            char *end;
            handshake_timeout = strtoul(optarg, &end, 10);
            if (*end || handshake_timeout == 0 || handshake_timeout > 600000) {
                fprintf(stderr, "tlpbridged: --handshake-timeout-ms wants 1..600000\n");
                return 2;
            }
            break;
        }
        case 'd':
            if (device_arg_count == BRIDGE_MAX_DEVICES) {
                fprintf(stderr, "tlpbridged: too many --device options\n");
                return 2;
            }
            device_args[device_arg_count++] = optarg;
            break;
        case 'D': dma = optarg; break;
        case 'F': fallback_read = optarg; break;
        case 'O': {
            char *end;
            timeout = strtoul(optarg, &end, 10);
            if (*end || timeout == 0 || timeout > 3600000) {
                fprintf(stderr, "tlpbridged: --timeout-ms wants 1..3600000\n");
                return 2;
            }
            break;
        }
        case 't': trace = optarg; break;
        case 'v':
            bridge_log_level = tlpb_log_level_from_name(optarg);
            if (bridge_log_level < 0) {
                fprintf(stderr, "tlpbridged: --log-level wants error, warn, info or debug\n");
                return 2;
            }
            break;
        case 'R': {
            char *end;
            long fd = strtol(optarg, &end, 10);
            if (*end || fd < 0 || fd > 65535) {
                fprintf(stderr, "tlpbridged: --ready-fd wants a file descriptor number\n");
                return 2;
            }
            ready_fd = (int)fd;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tlpbridged: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    /* Defaults, then the config file, then the command line. */
    cfg->ring_policy = TLPB_RING_ADAPTIVE;
    cfg->ring_spin_us = TLPB_RING_DEFAULT_SPIN_US;
    if (config_path && bridge_config_load(cfg, config_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "tlpbridged: %s\n", err);
        return 2;
    }
    if (strcmp(dma, "strict") != 0 && strcmp(dma, "fast") != 0) {
        fprintf(stderr, "tlpbridged: --dma wants strict or fast\n");
        return 2;
    }
    enum fallback_read fb;
    if (strcmp(fallback_read, "ones") == 0)
        fb = FALLBACK_READ_ONES;
    else if (strcmp(fallback_read, "zeros") == 0)
        fb = FALLBACK_READ_ZEROS;
    else if (strcmp(fallback_read, "ur") == 0)
        fb = FALLBACK_READ_UR;
    else {
        fprintf(stderr, "tlpbridged: --fallback-read wants ones, zeros or ur\n");
        return 2;
    }
    enum tlpb_check_policy check_policy = TLPB_CHECK_POLICY_WARN;
    if (check && tlpb_check_policy_parse(check, &check_policy) != 0) {
        fprintf(stderr, "tlpbridged: --check wants warn, reject or stop\n");
        return 2;
    }
    for (unsigned i = 0; i < device_arg_count; i++) {
        if (bridge_config_add_device_arg(cfg, device_args[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "tlpbridged: %s\n", err);
            return 2;
        }
        struct device_config *dc = &cfg->devices[cfg->device_count - 1];
        dc->fast_dma = strcmp(dma, "fast") == 0;
        dc->fallback_read = fb;
        dc->timeout_ms = (uint32_t)timeout;
    }
    if (check)
        for (unsigned i = 0; i < cfg->device_count; i++)
            cfg->devices[i].check_policy = check_policy;
#define SET(field, value)                                                                        \
    do {                                                                                         \
        if (value) {                                                                             \
            if (strlen(value) >= sizeof(cfg->field)) {                                           \
                fprintf(stderr, "tlpbridged: %s is too long\n", value);                          \
                return 2;                                                                        \
            }                                                                                    \
            strcpy(cfg->field, value);                                                           \
        }                                                                                        \
    } while (0)
    SET(listen_path, listen);
    SET(tcp_address, tcp);
    SET(token, token);
    SET(trace_path, trace);
    SET(token_file, token_file);
#undef SET
    if (token && token_file) {
        fprintf(stderr, "tlpbridged: give --token or --token-file, not both\n");
        return 2;
    }
    if (token_file)
        cfg->token[0] = '\0'; /* the file given here wins over the config's token */
    if (token)
        cfg->token_file[0] = '\0';
    for (unsigned i = 0; i < model_dir_count; i++)
        if (bridge_config_add_model_dir(cfg, model_dirs[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "tlpbridged: %s\n", err);
            return 2;
        }
    if (handshake_timeout)
        cfg->handshake_timeout_ms = (uint32_t)handshake_timeout;
    if (ring && tlpb_ring_policy_from_name(ring, &cfg->ring_policy) != 0) {
        fprintf(stderr, "tlpbridged: --ring wants adaptive, busy-poll or off\n");
        return 2;
    }
    if (ring_spin_us >= 0)
        cfg->ring_spin_us = (uint32_t)ring_spin_us;
    if (bridge_config_check(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "tlpbridged: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    if (bridge_start(b, loop, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "tlpbridged: %s\n", err);
        bridge_stop(b);
        uv_run(loop, UV_RUN_DEFAULT); /* let the closed handles go */
        uv_loop_close(loop);
        return 1;
    }
    if (ready_fd >= 0) {
        if (write(ready_fd, "ready\n", 6) != 6)
            bridge_log(TLPB_LOG_WARN, "--ready-fd %d: %s", ready_fd, strerror(errno));
        close(ready_fd);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    bridge_log(TLPB_LOG_INFO, "stopped");
    return 0;
}

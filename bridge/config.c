/* tlpbridged configuration: a libconfig file (see examples/configs/) and
 * command-line overrides. Every value is checked here, with the file name
 * and line in the message, so a bad file never reaches the running bridge. */
#include <errno.h>
#include <stdarg.h>
#include <libconfig.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

static bool fail(char *err, size_t err_size, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fail(char *err, size_t err_size, const config_setting_t *s, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (s && config_setting_source_file(s))
        snprintf(err, err_size, "%s:%u: %s", config_setting_source_file(s),
                 config_setting_source_line(s), msg);
    else
        snprintf(err, err_size, "%s", msg);
    return false;
}

static bool get_uint(const config_setting_t *group, const char *name, long long max,
                     uint64_t *out, bool required, char *err, size_t err_size)
{
    const config_setting_t *s = config_setting_get_member(group, name);
    if (!s) {
        if (required)
            return fail(err, err_size, group, "missing '%s'", name);
        return true;
    }
    int type = config_setting_type(s);
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return fail(err, err_size, s, "'%s' must be an integer", name);
    long long v = config_setting_get_int64(s);
    if (v < 0 || v > max)
        return fail(err, err_size, s, "'%s' = %lld is out of range 0..%lld", name, v, max);
    *out = (uint64_t)v;
    return true;
}

static bool get_bool(const config_setting_t *group, const char *name, bool *out, char *err,
                     size_t err_size)
{
    const config_setting_t *s = config_setting_get_member(group, name);
    if (!s)
        return true;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(err, err_size, s, "'%s' must be true or false", name);
    *out = config_setting_get_bool(s);
    return true;
}

static bool get_string(const config_setting_t *group, const char *name, char *out, size_t out_size,
                       char *err, size_t err_size)
{
    const config_setting_t *s = config_setting_get_member(group, name);
    if (!s)
        return true;
    const char *v = config_setting_get_string(s);
    if (!v)
        return fail(err, err_size, s, "'%s' must be a string", name);
    if (strlen(v) >= out_size)
        return fail(err, err_size, s, "'%s' is too long", name);
    strcpy(out, v);
    return true;
}

static bool parse_description(const config_setting_t *g, struct tlpb_devdesc *desc, char *err,
                              size_t err_size)
{
    uint64_t v;
    memset(desc, 0, sizeof(*desc));
    desc->max_payload_supported_bytes = 512;
#define FIELD(name, max, dst, req)                                                               \
    do {                                                                                         \
        v = 0;                                                                                   \
        bool present = config_setting_get_member(g, name) != NULL;                               \
        if (!get_uint(g, name, max, &v, req, err, err_size))                                     \
            return false;                                                                        \
        if (present)                                                                             \
            dst = (__typeof__(dst))v;                                                            \
    } while (0)
    FIELD("vendor_id", 0xFFFF, desc->vendor_id, true);
    FIELD("device_id", 0xFFFF, desc->device_id, true);
    FIELD("subsystem_vendor_id", 0xFFFF, desc->subsystem_vendor_id, false);
    FIELD("subsystem_id", 0xFFFF, desc->subsystem_id, false);
    FIELD("revision", 0xFF, desc->revision, false);
    FIELD("class_code", 0xFFFFFF, desc->class_code, true);
    FIELD("intx_pin", 4, desc->intx_pin, false);
    FIELD("max_payload_supported", 4096, desc->max_payload_supported_bytes, false);
    const config_setting_t *bars = config_setting_get_member(g, "bars");
    if (bars) {
        if (!config_setting_is_list(bars) && !config_setting_is_array(bars))
            return fail(err, err_size, bars, "'bars' must be a list of groups");
        for (int i = 0; i < config_setting_length(bars); i++) {
            const config_setting_t *bar = config_setting_get_elem(bars, (unsigned)i);
            if (!config_setting_is_group(bar))
                return fail(err, err_size, bar, "each BAR must be a group { index = N; size = S; }");
            uint64_t index = 0, size = 0;
            if (!get_uint(bar, "index", 5, &index, true, err, err_size) ||
                !get_uint(bar, "size", LLONG_MAX, &size, true, err, err_size))
                return false;
            struct tlpb_bar_desc *b = &desc->bars[index];
            if (b->size_bytes)
                return fail(err, err_size, bar, "BAR %u given twice", (unsigned)index);
            b->size_bytes = size;
            if (!get_bool(bar, "is_64bit", &b->is_64bit, err, err_size) ||
                !get_bool(bar, "prefetchable", &b->prefetchable, err, err_size) ||
                !get_bool(bar, "is_io", &b->is_io, err, err_size))
                return false;
        }
    }
    const config_setting_t *msix = config_setting_get_member(g, "msix");
    if (msix) {
        const config_setting_t *saved = g;
        g = msix;
        FIELD("vectors", 2048, desc->msix_vectors, true);
        FIELD("table_bar", 5, desc->msix_table_bar, true);
        FIELD("table_offset", 0xFFFFFFF8, desc->msix_table_offset, true);
        FIELD("pba_bar", 5, desc->msix_pba_bar, true);
        FIELD("pba_offset", 0xFFFFFFF8, desc->msix_pba_offset, true);
        g = saved;
    }
    const config_setting_t *msi = config_setting_get_member(g, "msi");
    if (msi) {
        const config_setting_t *saved = g;
        g = msi;
        FIELD("vectors", 32, desc->msi_vectors, true);
        if (!get_bool(msi, "is_64bit", &desc->msi_64bit, err, err_size))
            return false;
        g = saved;
    }
#undef FIELD
    const char *reason = NULL;
    if (tlpb_devdesc_validate(desc, &reason) != 0)
        return fail(err, err_size, g, "bad description: %s", reason);
    return true;
}

static void resolve_relative(char *path, size_t size, const char *base_dir)
{
    if (!path[0] || path[0] == '/' || !base_dir)
        return;
    char joined[2048];
    snprintf(joined, sizeof(joined), "%s/%s", base_dir, path);
    if (strlen(joined) < size)
        strcpy(path, joined);
}

static bool parse_device(const config_setting_t *g, struct device_config *dc, const char *base_dir,
                         char *err, size_t err_size)
{
    memset(dc, 0, sizeof(*dc));
    if (!get_string(g, "name", dc->name, sizeof(dc->name), err, err_size))
        return false;
    if (!dc->name[0])
        return fail(err, err_size, g, "device needs a 'name'");
    char backend[32] = "";
    if (!get_string(g, "backend", backend, sizeof(backend), err, err_size))
        return false;
    if (!get_string(g, "model", dc->model_path, sizeof(dc->model_path), err, err_size) ||
        !get_string(g, "model_args", dc->model_args, sizeof(dc->model_args), err, err_size))
        return false;
    resolve_relative(dc->model_path, sizeof(dc->model_path), base_dir);
    if (!backend[0])
        strcpy(backend, dc->model_path[0] ? "hlsim" : "fallback");
    if (backend_from_name(backend, &dc->backend) != 0)
        return fail(err, err_size, g, "backend '%s' is not one of hlsim, external, fallback",
                    backend);
    char dma[16] = "strict";
    if (!get_string(g, "dma", dma, sizeof(dma), err, err_size))
        return false;
    if (strcmp(dma, "fast") == 0)
        dc->fast_dma = true;
    else if (strcmp(dma, "strict") != 0)
        return fail(err, err_size, g, "dma must be \"strict\" or \"fast\", not '%s'", dma);
    char fb[16] = "ones";
    if (!get_string(g, "fallback_read", fb, sizeof(fb), err, err_size))
        return false;
    if (strcmp(fb, "ones") == 0)
        dc->fallback_read = FALLBACK_READ_ONES;
    else if (strcmp(fb, "zeros") == 0)
        dc->fallback_read = FALLBACK_READ_ZEROS;
    else if (strcmp(fb, "ur") == 0)
        dc->fallback_read = FALLBACK_READ_UR;
    else
        return fail(err, err_size, g, "fallback_read must be \"ones\", \"zeros\" or \"ur\"");
    char check[16] = "warn";
    if (!get_string(g, "check", check, sizeof(check), err, err_size))
        return false;
    if (tlpb_check_policy_parse(check, &dc->check_policy) != 0)
        return fail(err, err_size, g, "check must be \"warn\", \"reject\" or \"stop\", not '%s'",
                    check);
    uint64_t t = 0;
    if (!get_uint(g, "timeout_ms", 3600000, &t, false, err, err_size))
        return false;
    dc->timeout_ms = (uint32_t)t;
    const config_setting_t *desc = config_setting_get_member(g, "description");
    if (desc) {
        if (!parse_description(desc, &dc->description, err, err_size))
            return false;
        dc->has_description = true;
    }
    if (dc->backend == BACKEND_HLSIM && !dc->model_path[0])
        return fail(err, err_size, g, "device %s: backend hlsim needs a 'model'", dc->name);
    return true;
}

int bridge_config_load(struct bridge_config *cfg, const char *path, char *err, size_t err_size)
{
    config_t lc;
    config_init(&lc);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, err_size, "cannot read config file %s", path);
        else
            snprintf(err, err_size, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
                     config_error_line(&lc), config_error_text(&lc));
        config_destroy(&lc);
        return -1;
    }
    char dir_buf[1024];
    snprintf(dir_buf, sizeof(dir_buf), "%s", path);
    const char *base_dir = dirname(dir_buf);
    const config_setting_t *root = config_root_setting(&lc);
    bool ok = get_string(root, "listen", cfg->listen_path, sizeof(cfg->listen_path), err, err_size) &&
              get_string(root, "tcp", cfg->tcp_address, sizeof(cfg->tcp_address), err, err_size) &&
              get_string(root, "token", cfg->token, sizeof(cfg->token), err, err_size) &&
              get_string(root, "token_file", cfg->token_file, sizeof(cfg->token_file), err,
                         err_size) &&
              get_string(root, "trace", cfg->trace_path, sizeof(cfg->trace_path), err, err_size);
    uint64_t handshake_ms = 0;
    if (ok && get_uint(root, "handshake_timeout_ms", 600000, &handshake_ms, false, err, err_size))
        cfg->handshake_timeout_ms = (uint32_t)handshake_ms;
    else
        ok = false;
    /* The ring's waiting policy (tlpbridged --ring, --ring-spin-us). */
    char ring[16] = "";
    if (ok && !get_string(root, "ring", ring, sizeof(ring), err, err_size))
        ok = false;
    if (ok && ring[0] && tlpb_ring_policy_from_name(ring, &cfg->ring_policy) != 0)
        ok = fail(err, err_size, config_setting_get_member(root, "ring"),
                  "'ring' must be \"adaptive\", \"busy-poll\" or \"off\"");
    uint64_t spin_us = cfg->ring_spin_us;
    if (ok && get_uint(root, "ring_spin_us", 1000000, &spin_us, false, err, err_size))
        cfg->ring_spin_us = (uint32_t)spin_us;
    else
        ok = false;
    if (ok && cfg->token[0] && cfg->token_file[0])
        ok = fail(err, err_size, config_setting_get_member(root, "token_file"),
                  "give 'token' or 'token_file', not both");
    resolve_relative(cfg->token_file, sizeof(cfg->token_file), base_dir);
    /* model_dirs = [ "DIR", ... ]; relative to the file's directory. */
    const config_setting_t *dirs = ok ? config_setting_get_member(root, "model_dirs") : NULL;
    if (dirs) {
        if (!config_setting_is_array(dirs) && !config_setting_is_list(dirs))
            ok = fail(err, err_size, dirs, "'model_dirs' must be a list of directories: [ \"...\" ]");
        for (int i = 0; ok && i < config_setting_length(dirs); i++) {
            const char *dir = config_setting_get_string_elem(dirs, i);
            char joined[1024];
            if (!dir) {
                ok = fail(err, err_size, dirs, "'model_dirs' must hold strings");
                break;
            }
            snprintf(joined, sizeof(joined), "%s", dir);
            resolve_relative(joined, sizeof(joined), base_dir);
            if (bridge_config_add_model_dir(cfg, joined, err, err_size) != 0)
                ok = false;
        }
    }
    const config_setting_t *devices = ok ? config_setting_get_member(root, "devices") : NULL;
    if (ok && devices) {
        if (!config_setting_is_list(devices))
            ok = fail(err, err_size, devices, "'devices' must be a list: devices = ( { ... } );");
        for (int i = 0; ok && i < config_setting_length(devices); i++) {
            if (cfg->device_count >= BRIDGE_MAX_DEVICES) {
                ok = fail(err, err_size, devices, "more than %d devices", BRIDGE_MAX_DEVICES);
                break;
            }
            const config_setting_t *g = config_setting_get_elem(devices, (unsigned)i);
            if (!config_setting_is_group(g)) {
                ok = fail(err, err_size, g, "each device must be a group { name = ...; }");
                break;
            }
            ok = parse_device(g, &cfg->devices[cfg->device_count], base_dir, err, err_size);
            if (ok)
                cfg->device_count++;
        }
    }
    config_destroy(&lc);
    return ok ? 0 : -1;
}

int bridge_config_add_device_arg(struct bridge_config *cfg, const char *arg, char *err,
                                 size_t err_size)
{
    if (cfg->device_count >= BRIDGE_MAX_DEVICES) {
        snprintf(err, err_size, "more than %d devices", BRIDGE_MAX_DEVICES);
        return -1;
    }
    struct device_config *dc = &cfg->devices[cfg->device_count];
    memset(dc, 0, sizeof(*dc));
    const char *colon = strchr(arg, ':');
    size_t name_len = colon ? (size_t)(colon - arg) : strlen(arg);
    if (name_len == 0 || name_len >= sizeof(dc->name)) {
        snprintf(err, err_size, "--device %s: bad device name", arg);
        return -1;
    }
    memcpy(dc->name, arg, name_len);
    /* NAME[:BACKEND[=MODEL.so]]: with a model and a non-hlsim backend, the
     * model is loaded for its description and is ready for a switch. */
    char backend[32] = "fallback";
    const char *spec = colon ? colon + 1 : "";
    const char *eq = strchr(spec, '=');
    size_t backend_len = eq ? (size_t)(eq - spec) : strlen(spec);
    if (backend_len >= sizeof(backend)) {
        snprintf(err, err_size, "--device %s: bad backend", arg);
        return -1;
    }
    if (backend_len) {
        memcpy(backend, spec, backend_len);
        backend[backend_len] = '\0';
    }
    if (eq)
        snprintf(dc->model_path, sizeof(dc->model_path), "%s", eq + 1);
    if (backend_from_name(backend, &dc->backend) != 0 ||
        (dc->backend == BACKEND_HLSIM && !dc->model_path[0])) {
        snprintf(err, err_size,
                 "--device %s: expected NAME:hlsim=MODEL.so, NAME:external[=MODEL.so] or"
                 " NAME:fallback[=MODEL.so]",
                 arg);
        return -1;
    }
    cfg->device_count++;
    return 0;
}

int bridge_config_add_model_dir(struct bridge_config *cfg, const char *dir, char *err,
                                size_t err_size)
{
    if (cfg->model_dir_count >= BRIDGE_MAX_MODEL_DIRS) {
        snprintf(err, err_size, "more than %d model directories", BRIDGE_MAX_MODEL_DIRS);
        return -1;
    }
    if (!dir[0] || strlen(dir) >= sizeof(cfg->model_dirs[0])) {
        snprintf(err, err_size, "bad model directory '%s'", dir);
        return -1;
    }
    strcpy(cfg->model_dirs[cfg->model_dir_count++], dir);
    return 0;
}

/* The token is a secret: from a file, so that it is not visible in ps. The
 * first line counts; a trailing newline is not part of it. */
static int read_token_file(struct bridge_config *cfg, char *err, size_t err_size)
{
    char file_err[512];
    if (tlpb_token_read_file(cfg->token_file, cfg->token, sizeof(cfg->token), file_err,
                             sizeof(file_err)) != 0) {
        snprintf(err, err_size, "token file: %s", file_err);
        return -1;
    }
    return 0;
}

int bridge_model_allowed(const struct bridge_config *cfg, const char *path, char *resolved,
                         size_t resolved_size, char *err, size_t err_size)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        snprintf(err, err_size, "cannot load model %s: %s", path, strerror(errno));
        return -1;
    }
    if (strlen(real) >= resolved_size) {
        snprintf(err, err_size, "cannot load model %s: path too long", path);
        return -1;
    }
    bool allowed = false;
    for (unsigned i = 0; i < cfg->device_count && !allowed; i++)
        allowed = cfg->allowed_models[i][0] && strcmp(cfg->allowed_models[i], real) == 0;
    for (unsigned i = 0; i < cfg->model_dir_count && !allowed; i++) {
        size_t n = strlen(cfg->model_dirs[i]);
        /* "/" as a model directory allows everything: the operator's choice. */
        allowed = strncmp(real, cfg->model_dirs[i], n) == 0 &&
                  (real[n] == '/' || (n == 1 && cfg->model_dirs[i][0] == '/'));
    }
    if (!allowed) {
        snprintf(err, err_size,
                 "model %s (%s) is not in an allowed model directory: the bridge's operator"
                 " allows more with --model-dir DIR or model_dirs = [ ... ]",
                 path, real);
        return -1;
    }
    strcpy(resolved, real);
    return 0;
}

int bridge_config_check(struct bridge_config *cfg, char *err, size_t err_size)
{
    if (cfg->token_file[0] && read_token_file(cfg, err, err_size) != 0)
        return -1;
    for (unsigned i = 0; i < cfg->model_dir_count; i++) {
        char real[PATH_MAX];
        if (!realpath(cfg->model_dirs[i], real)) {
            snprintf(err, err_size, "model directory %s: %s", cfg->model_dirs[i], strerror(errno));
            return -1;
        }
        if (strlen(real) >= sizeof(cfg->model_dirs[i])) {
            snprintf(err, err_size, "model directory %s: path too long", cfg->model_dirs[i]);
            return -1;
        }
        strcpy(cfg->model_dirs[i], real);
    }
    /* The models named at start are the operator's choice: allowed. A missing
     * file is reported when the device is set up. */
    for (unsigned i = 0; i < cfg->device_count; i++) {
        char real[PATH_MAX];
        cfg->allowed_models[i][0] = '\0';
        if (cfg->devices[i].model_path[0] && realpath(cfg->devices[i].model_path, real) &&
            strlen(real) < sizeof(cfg->allowed_models[i]))
            strcpy(cfg->allowed_models[i], real);
    }
    if (!cfg->listen_path[0]) {
        snprintf(err, err_size, "no listen socket: give --listen PATH or listen = \"...\"");
        return -1;
    }
    if (cfg->device_count == 0) {
        snprintf(err, err_size, "no devices configured: give --device or a config file");
        return -1;
    }
    for (unsigned i = 0; i < cfg->device_count; i++)
        for (unsigned j = i + 1; j < cfg->device_count; j++)
            if (strcmp(cfg->devices[i].name, cfg->devices[j].name) == 0) {
                snprintf(err, err_size, "device name '%s' used twice", cfg->devices[i].name);
                return -1;
            }
    return 0;
}

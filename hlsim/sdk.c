/* hlsim SDK: device lifecycle, dispatch of host TLPs, config requests,
 * resets, timers and logging. Memory requests are in mmio.c, DMA and the
 * outbound queues in dma.c, interrupts and the MSI-X table in irq.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk_internal.h"

static void format_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void format_err(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;

    if (!err || err_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

uint16_t sdk_bdf(const hlsim_device *dev)
{
    return dev->cfg.bus_device_function;
}

uint64_t sdk_now(hlsim_device *dev)
{
    return dev->env_ops->now_ns ? dev->env_ops->now_ns(dev->env) : 0;
}

/* ---- deferred work ------------------------------------------------------- */

static void deferred_run(void *arg)
{
    hlsim_device *dev = arg;

    dev->defer_pending = false;
    dma_deliver_callbacks(dev);
    dma_pump(dev);
}

/* Run DMA callbacks and continue queued DMA soon, from the event loop. */
void sdk_schedule(hlsim_device *dev)
{
    if (dev->defer_pending || dev->destroying)
        return;
    dev->defer_pending = true;
    dev->env_ops->defer(dev->env, deferred_run, dev);
}

/* ---- calls into the model ------------------------------------------------- */

const char *sdk_model_enter(hlsim_device *dev, const char *callback)
{
    const char *outer = dev->model_callback;
    dev->model_callback = callback;
    if (dev->env_ops->model_callback)
        dev->env_ops->model_callback(dev->env, callback);
    return outer;
}

void sdk_model_leave(hlsim_device *dev, const char *outer)
{
    dev->model_callback = outer;
    if (dev->env_ops->model_callback)
        dev->env_ops->model_callback(dev->env, outer);
}

/* ---- lifecycle ----------------------------------------------------------- */

hlsim_device *hlsim_device_create(const struct hlsim_model_ops *ops, const char *model_args,
                                  const struct hlsim_device_options *opts,
                                  const struct hlsim_env_ops *env_ops, void *env,
                                  char *err, size_t err_size)
{
    const char *reason = NULL;

    if (!ops || !env_ops || !env_ops->send_tlp || !env_ops->send_interrupt ||
        !env_ops->defer) {
        format_err(err, err_size, "missing model or environment operations");
        return NULL;
    }
    if (ops->abi_version != HLSIM_ABI_VERSION) {
        format_err(err, err_size, "model ABI version %u, SDK expects %u", ops->abi_version,
                   HLSIM_ABI_VERSION);
        return NULL;
    }
    if (!ops->create || !ops->destroy || !ops->reset || !ops->mmio_read || !ops->mmio_write) {
        format_err(err, err_size, "model %s lacks a required operation",
                   ops->name ? ops->name : "(unnamed)");
        return NULL;
    }
    if (tlpb_devdesc_validate(&ops->description, &reason) != 0) {
        format_err(err, err_size, "model %s has a bad description: %s",
                   ops->name ? ops->name : "(unnamed)", reason ? reason : "?");
        return NULL;
    }

    hlsim_device *dev = calloc(1, sizeof(*dev));
    if (!dev) {
        format_err(err, err_size, "out of memory");
        return NULL;
    }
    dev->ops = ops;
    if (opts)
        dev->opts = *opts;
    dev->env_ops = env_ops;
    dev->env = env;
    TAILQ_INIT(&dev->timers);
    tlpb_cfgspace_init(&dev->cfg, &ops->description);
    dev->cfg.bus_device_function = dev->opts.bus_device_function;
    dma_init(dev);
    mmio_init(dev);
    if (irq_init(dev) != 0) {
        format_err(err, err_size, "out of memory");
        mmio_fini(dev);
        dma_fini(dev);
        free(dev);
        return NULL;
    }

    char create_err[256] = "";
    SDK_CALL_MODEL(dev, "create",
                   dev->model = ops->create(dev, model_args ? model_args : "", create_err,
                                            sizeof(create_err)));
    if (!dev->model) {
        format_err(err, err_size, "model %s refused to start: %s",
                   ops->name ? ops->name : "(unnamed)",
                   create_err[0] ? create_err : "no reason given");
        hlsim_device_destroy(dev);
        return NULL;
    }
    SDK_CALL_MODEL(dev, "reset", ops->reset(dev->model, HLSIM_RESET_POWER_ON));
    return dev;
}

void hlsim_device_destroy(hlsim_device *dev)
{
    if (!dev)
        return;
    dev->destroying = true; /* nothing new may be deferred */
    hlsim_dma_cancel_all(dev);
    if (dev->model)
        SDK_CALL_MODEL(dev, "destroy", dev->ops->destroy(dev->model));
    dev->model = NULL;
    /* timers the model forgot */
    struct hlsim_timer *timer;
    while ((timer = TAILQ_FIRST(&dev->timers)) != NULL)
        hlsim_timer_destroy(timer);
    mmio_fini(dev);
    dma_fini(dev);
    irq_fini(dev);
    free(dev);
}

void *hlsim_device_env(const hlsim_device *dev)
{
    return dev->env;
}

const struct tlpb_devdesc *hlsim_device_description(const hlsim_device *dev)
{
    return &dev->cfg.desc;
}

const struct tlpb_cfgspace *hlsim_config(const hlsim_device *dev)
{
    return &dev->cfg;
}

bool hlsim_bus_master_enabled(const hlsim_device *dev)
{
    return tlpb_cfg_bus_master_enabled(&dev->cfg);
}

bool hlsim_msix_enabled(const hlsim_device *dev)
{
    return tlpb_cfg_msix_enabled(&dev->cfg);
}

/* ---- simulated time ------------------------------------------------------- */

uint64_t hlsim_now_ns(hlsim_device *dev)
{
    return sdk_now(dev);
}

void hlsim_device_set_time_coupled(hlsim_device *dev, bool coupled)
{
    dev->time_coupled = coupled;
    dev->link_free_ps = 0;
    dma_pump(dev); /* free-running: what waited for the link goes */
}

bool hlsim_device_busy(const hlsim_device *dev)
{
    return !TAILQ_EMPTY(&dev->posted) || !TAILQ_EMPTY(&dev->nonposted) ||
           !TAILQ_EMPTY(&dev->inflight) || !TAILQ_EMPTY(&dev->done) ||
           !TAILQ_EMPTY(&dev->cpls) || !TAILQ_EMPTY(&dev->delayed_cpls) || dev->defer_pending ||
           hlsim_device_dma_reads_outstanding(dev);
}

/* ---- resets -------------------------------------------------------------- */

void hlsim_device_reset(hlsim_device *dev, enum hlsim_reset_kind kind)
{
    hlsim_log(dev, HLSIM_LOG_INFO, "%s reset",
              kind == HLSIM_RESET_FUNCTION_LEVEL ? "function-level"
              : kind == HLSIM_RESET_HOT         ? "hot"
                                                : "power-on");
    hlsim_dma_cancel_all(dev);
    dma_clear_context(dev); /* the model's work before the reset is gone */
    tlpb_cfgspace_reset(&dev->cfg);
    irq_reset(dev);
    SDK_CALL_MODEL(dev, "reset", dev->ops->reset(dev->model, kind));
    dma_pump(dev); /* completions held behind dropped writes can go now */
}

void hlsim_device_link_down(hlsim_device *dev)
{
    hlsim_log(dev, HLSIM_LOG_WARN, "link down: outstanding DMA fails");
    dma_link_down(dev);
}

void hlsim_device_output_ready(hlsim_device *dev)
{
    dev->output_blocked = false;
    dma_pump(dev);
}

/* ---- host requests ------------------------------------------------------- */

static void config_request(hlsim_device *dev, const struct tlpb_tlp *tlp)
{
    struct tlpb_tlp cpl;
    uint8_t data[4];
    const char *refused;

    int rc = tlpb_cfgspace_complete_request(&dev->cfg, tlp, &cpl, data, &refused);
    if (rc < 0)
        return; /* only config requests come here */
    if (refused)
        hlsim_log(dev, HLSIM_LOG_WARN, "%s at %#x: completed with UR", refused,
                  tlp->cfg_register);
    upstream_send_completion(dev, &cpl);
    unsigned changes = (unsigned)rc;

    if (changes & TLPB_CFG_FLR_REQUESTED) {
        /* The write completes first, then the function resets. */
        hlsim_device_reset(dev, HLSIM_RESET_FUNCTION_LEVEL);
        return;
    }
    if (changes == 0)
        return;
    irq_config_changed(dev, changes);
    if (changes & (TLPB_CFG_CHANGED_COMMAND | TLPB_CFG_CHANGED_DEVCTL))
        dma_pump(dev); /* bus mastering on, or a tag count change, may unblock DMA */
    if (dev->ops->config_changed)
        SDK_CALL_MODEL(dev, "config_changed", dev->ops->config_changed(dev->model, changes));
}

void hlsim_device_receive_tlp(hlsim_device *dev, const struct tlpb_tlp *tlp)
{
    switch (tlp->kind) {
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        config_request(dev, tlp);
        break;
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        mmio_receive_request(dev, tlp);
        break;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        dma_receive_completion(dev, tlp);
        break;
    default:
        hlsim_log(dev, HLSIM_LOG_WARN, "ignoring TLP of kind %d", (int)tlp->kind);
        break;
    }
}

/* ---- timers -------------------------------------------------------------- */

static void timer_fire(void *arg)
{
    struct hlsim_timer *timer = arg;
    hlsim_device *dev = timer->dev; /* the callback may destroy the timer */
    SDK_CALL_MODEL(dev, "timer", timer->cb(timer->arg));
}

hlsim_timer *hlsim_timer_create(hlsim_device *dev, hlsim_timer_cb cb, void *arg)
{
    if (!dev->env_ops->timer_create)
        return NULL;
    struct hlsim_timer *timer = calloc(1, sizeof(*timer));
    if (!timer)
        return NULL;
    timer->dev = dev;
    timer->cb = cb;
    timer->arg = arg;
    timer->env_timer = dev->env_ops->timer_create(dev->env, timer_fire, timer);
    if (!timer->env_timer) {
        free(timer);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&dev->timers, timer, link);
    return timer;
}

void hlsim_timer_start(hlsim_timer *timer, uint64_t delay_ns)
{
    if (timer)
        timer->dev->env_ops->timer_start(timer->env_timer, delay_ns);
}

void hlsim_timer_stop(hlsim_timer *timer)
{
    if (timer)
        timer->dev->env_ops->timer_stop(timer->env_timer);
}

void hlsim_timer_destroy(hlsim_timer *timer)
{
    if (!timer)
        return;
    hlsim_device *dev = timer->dev;
    dev->env_ops->timer_stop(timer->env_timer);
    dev->env_ops->timer_destroy(timer->env_timer);
    TAILQ_REMOVE(&dev->timers, timer, link);
    free(timer);
}

/* ---- logging ------------------------------------------------------------- */

void hlsim_log(hlsim_device *dev, enum hlsim_log_level level, const char *fmt, ...)
{
    char message[512];
    va_list ap;

    if (!dev->env_ops->log)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    dev->env_ops->log(dev->env, (int)level, message);
}

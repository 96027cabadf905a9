/* A working hlsim model whose own functions carry the names of tlpbridged's
 * internals, for test_model_interposition. With dmacopy's identity, BAR0
 * holds an ID register and scratch registers, and every register access goes
 * through functions named device_init, conn_flush, trace_open and dma_pump.
 * Should the model's calls bind to the daemon's functions of those names
 * (the daemon exporting its internals), the daemon's code runs on the
 * model's state: the registers read back wrong or the bridge crashes.
 * Should the daemon's calls bind to the model's functions, they abort. The
 * register map is the test's own (it is not dmacopy's). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_description.h"
#include "hlsim.h"

#define INTERPOSER_MAGIC 0x1a7e9051u
#define INTERPOSER_ID 0x1a7e9051u /* BAR0 0x000 */
#define INTERPOSER_WRITES 0x100u  /* BAR0 0x100: register writes seen */
#define SCRATCH_REGS 63           /* BAR0 0x004..0x0FC */

struct interposer {
    uint32_t magic;
    uint32_t scratch[SCRATCH_REGS];
    uint32_t writes;
};

/* Named like tlpbridged's internals on purpose; global, so that they are
 * interposable, as any model function would be. */
void device_init(struct interposer *m);
void conn_flush(struct interposer *m, unsigned index, uint32_t value);
uint32_t trace_open(const struct interposer *m, unsigned index);
void dma_pump(struct interposer *m);
void device_fini(void);
void device_tlp_from_host(void);
void device_tlp_from_model(void);
void device_output_ready(void);
void conn_close(void);
void conn_send_tlp(void);
void conn_resume_paused(void);
void trace_tlp(void);
void trace_close(void);
void dma_init(void);
void dma_receive_completion(void);
void mmio_receive_request(void);
void irq_reset(void);
void sdk_now(void);
void bridge_log(void);
void bridge_find_device(void);
void hlsim_backend_deliver_later(void);
void control_handle(void);
void tlpb_reader_next(void);
void tlpb_obuf_append(void);

static void check(const struct interposer *m)
{
    if (!m || m->magic != INTERPOSER_MAGIC)
        abort();
}

void device_init(struct interposer *m)
{
    memset(m, 0, sizeof(*m));
    m->magic = INTERPOSER_MAGIC;
}

void conn_flush(struct interposer *m, unsigned index, uint32_t value)
{
    check(m);
    m->scratch[index] = value;
}

uint32_t trace_open(const struct interposer *m, unsigned index)
{
    check(m);
    return m->scratch[index];
}

void dma_pump(struct interposer *m)
{
    check(m);
    m->writes++;
}

/* What the daemon calls all the time: reaching one of these from the
 * daemon is the failure the test looks for. */
#define DAEMON_NAME(name)                                                                        \
    void name(void)                                                                              \
    {                                                                                            \
        abort();                                                                                 \
    }
DAEMON_NAME(device_fini)
DAEMON_NAME(device_tlp_from_host)
DAEMON_NAME(device_tlp_from_model)
DAEMON_NAME(device_output_ready)
DAEMON_NAME(conn_close)
DAEMON_NAME(conn_send_tlp)
DAEMON_NAME(conn_resume_paused)
DAEMON_NAME(trace_tlp)
DAEMON_NAME(trace_close)
DAEMON_NAME(dma_init)
DAEMON_NAME(dma_receive_completion)
DAEMON_NAME(mmio_receive_request)
DAEMON_NAME(irq_reset)
DAEMON_NAME(sdk_now)
DAEMON_NAME(bridge_log)
DAEMON_NAME(bridge_find_device)
DAEMON_NAME(hlsim_backend_deliver_later)
DAEMON_NAME(control_handle)
DAEMON_NAME(tlpb_reader_next)
DAEMON_NAME(tlpb_obuf_append)

static void *ip_create(hlsim_device *dev, const char *args, char *err, size_t err_size)
{
    struct interposer *m = malloc(sizeof(*m));
    if (m)
        device_init(m);
    return m;
}

static void ip_destroy(void *model)
{
    free(model);
}

static void ip_reset(void *model, enum hlsim_reset_kind kind)
{
    device_init(model);
}

static uint32_t ip_mmio_read(void *model, unsigned bar, uint64_t offset, unsigned size)
{
    struct interposer *m = model;
    uint32_t value = 0;
    if (bar == 0 && offset < 4)
        value = INTERPOSER_ID;
    else if (bar == 0 && offset < 4 * (SCRATCH_REGS + 1))
        value = trace_open(m, (unsigned)(offset / 4) - 1);
    else if (bar == 0 && offset / 4 == INTERPOSER_WRITES / 4)
        value = m->writes;
    return value >> (8 * (offset & 3));
}

static void ip_mmio_write(void *model, unsigned bar, uint64_t offset, uint32_t value,
                          unsigned size)
{
    struct interposer *m = model;
    dma_pump(m);
    /* Whole registers only: enough for the test. */
    if (bar == 0 && size == 4 && offset >= 4 && offset < 4 * (SCRATCH_REGS + 1))
        conn_flush(m, (unsigned)(offset / 4) - 1, value);
}

const struct hlsim_model_ops hlsim_model = {
    .abi_version = HLSIM_ABI_VERSION,
    .name = "interposer",
    .description = DMACOPY_DESCRIPTION,
    .create = ip_create,
    .destroy = ip_destroy,
    .reset = ip_reset,
    .mmio_read = ip_mmio_read,
    .mmio_write = ip_mmio_write,
};

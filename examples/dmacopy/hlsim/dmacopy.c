/* dmacopy: the example device as an hlsim behavioural model. Register and
 * descriptor semantics follow the device specification (docs and
 * EXAMPLE_DEVICE); the Verilog implementation must behave the same.
 *
 * The engine works on descriptors in ring order through three stages:
 *   fetch  - up to FETCH_AHEAD descriptors are read ahead of HEAD;
 *   data   - one descriptor at a time: its source is read in CHUNK_BYTES
 *            pieces (two in flight), each piece is CRC'd and written to the
 *            destination; the last write is followed by a flush read that
 *            tells whether the writes landed;
 *   finish - in ring order: crc, then status (DONE last), HEAD, COMPLETED,
 *            interrupt.
 * While descriptor N waits for its flush, N+1 may already move data; N+1's
 * reads are issued after N's writes, so they see N's data (PCIe ordering:
 * a read does not pass earlier writes). An error halts the engine at the
 * failing descriptor; descriptors after it may have moved data but are never
 * marked DONE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ISA-L's CRC-32 is zlib's crc32 (same polynomial, reflection and chaining)
 * with carry-less multiply: ~9x faster here, and the CRC is most of the
 * model's work on a large copy. */
#include <isa-l/crc.h>

#include "../dmacopy_description.h"
#include "../dmacopy_regs.h"
#include "hlsim.h"
#include "tlpb/byteorder.h"

/* Timing when coupled to a guest's clock (docs/hlsim.md "Simulated time"):
 * close to the RTL dmacopy at 250 MHz, 128-bit datapath, which moved 12.2
 * bytes per cycle under continuous 64 KiB copies (docs/performance.md),
 * 3.05 bytes per ns; without any wait a 128-byte MWr is 9 beats with its
 * header and each read request one more, 13.8 bytes per cycle at best. A
 * register read passes the receive, register and transmit stages: about
 * 6 cycles. */
#define DEFAULT_BYTES_PER_NS 3.0
#define DEFAULT_REG_LATENCY_NS 24u
#define MAX_REG_LATENCY_NS 1000000000ull

#define FETCH_AHEAD 4u
#define CHUNK_BYTES (64u * 1024u)
#define CHUNKS 2u

enum job_state {
    JOB_FREE,
    JOB_FETCHING, /* descriptor read in flight */
    JOB_FETCHED,  /* descriptor known (or its read failed: error set) */
    JOB_DATA,     /* moving data */
    JOB_FLUSHING, /* data written, waiting for the flush read */
    JOB_READY,    /* ready to finish: success, or error set */
};

struct dmacopy;

struct job {
    struct dmacopy *dc;
    enum job_state state;
    uint32_t index;
    uint64_t desc_addr;
    uint8_t desc[DMACOPY_DESC_BYTES];
    uint64_t src, dst;
    uint32_t len, flags;
    uint32_t crc;
    uint8_t error;
    unsigned finish_step; /* 0: write crc, 1: write status */
};

enum chunk_state { CHUNK_FREE, CHUNK_READING, CHUNK_READ };

struct chunk {
    struct dmacopy *dc;
    enum chunk_state state;
    uint32_t offset; /* within the descriptor's data */
    uint32_t len;
    enum hlsim_dma_status status;
    uint8_t *buf;
};

struct dmacopy {
    hlsim_device *dev;

    /* registers */
    uint32_t scratch;
    uint32_t ctrl;
    uint32_t ring_lo, ring_hi, ring_size;
    uint32_t head, tail;
    uint32_t irq_status, irq_mask;
    uint32_t completed;
    uint32_t err_code;
    bool halted;

    /* engine: jobs[first .. first + count) in ring order */
    struct job jobs[FETCH_AHEAD];
    unsigned job_first, job_count;
    unsigned data_pos;    /* jobs before this one (from first) have moved their data */
    bool data_stopped;    /* a job failed before moving data: go no further */
    uint32_t read_off;    /* data stage: bytes requested / written */
    uint32_t write_off;
    struct chunk chunks[CHUNKS];
    bool in_run, run_again;
};

static void engine_run(struct dmacopy *dc);

/* ---- little helpers -------------------------------------------------------- */

static bool ring_valid(const struct dmacopy *dc)
{
    uint32_t n = dc->ring_size;
    return n >= 1 && n <= DMACOPY_MAX_RING_SIZE && (n & (n - 1)) == 0 &&
           (dc->ring_lo % DMACOPY_RING_ALIGN) == 0;
}

static uint32_t ring_mask(const struct dmacopy *dc)
{
    return ring_valid(dc) ? dc->ring_size - 1 : 0xFFFFFFFFu;
}

static uint64_t ring_base(const struct dmacopy *dc)
{
    return ((uint64_t)dc->ring_hi << 32) | dc->ring_lo;
}

static bool descriptors_pending(const struct dmacopy *dc)
{
    return dc->head != (dc->tail & ring_mask(dc));
}

static struct job *job_at(struct dmacopy *dc, unsigned pos)
{
    return &dc->jobs[(dc->job_first + pos) % FETCH_AHEAD];
}

/* ---- interrupts -------------------------------------------------------------- */

/* INTx follows the unmasked causes whenever MSI-X is off. */
static void update_intx(struct dmacopy *dc)
{
    bool level = (dc->irq_status & ~dc->irq_mask) != 0 && !hlsim_msix_enabled(dc->dev);
    hlsim_intx_set(dc->dev, level);
}

static void signal_cause(struct dmacopy *dc, uint32_t cause, unsigned vector)
{
    dc->irq_status |= cause;
    if (dc->irq_mask & cause)
        return;
    if (hlsim_msix_enabled(dc->dev))
        hlsim_msix_notify(dc->dev, vector);
    else
        update_intx(dc);
}

/* ---- engine state -------------------------------------------------------------- */

static void engine_clear(struct dmacopy *dc)
{
    for (unsigned i = 0; i < FETCH_AHEAD; i++) {
        dc->jobs[i].state = JOB_FREE;
        dc->jobs[i].dc = dc;
    }
    dc->job_first = 0;
    dc->job_count = 0;
    dc->data_pos = 0;
    dc->data_stopped = false;
    dc->read_off = 0;
    dc->write_off = 0;
    for (unsigned i = 0; i < CHUNKS; i++) {
        dc->chunks[i].state = CHUNK_FREE;
        dc->chunks[i].dc = dc;
    }
}

/* CTRL.RESET: engine state, ring registers, counters and IRQ status. */
static void soft_reset(struct dmacopy *dc)
{
    hlsim_dma_cancel_all(dc->dev); /* no callback of the old work will run */
    engine_clear(dc);
    dc->ring_lo = dc->ring_hi = dc->ring_size = 0;
    dc->head = dc->tail = 0;
    dc->completed = 0;
    dc->err_code = DMACOPY_ERR_NONE;
    dc->halted = false;
    dc->irq_status = 0;
    update_intx(dc);
}

static void halt(struct dmacopy *dc, uint8_t code, struct job *job)
{
    hlsim_log(dc->dev, HLSIM_LOG_WARN, "error %u at descriptor %u, halted", code,
              job ? job->index : dc->head);
    dc->err_code = code;
    dc->halted = true;
    if (job) {
        /* Report the error in the descriptor where possible (no DONE). */
        uint8_t status[4];
        tlpb_put_le32(status, (uint32_t)code << 8);
        hlsim_dma_set_context(dc->dev, "writing the error status of descriptor %u at 0x%llx",
                              job->index, (unsigned long long)job->desc_addr);
        if (hlsim_dma_write(dc->dev, job->desc_addr + DMACOPY_DESC_STATUS, status, 4, NULL,
                            NULL) != 0)
            hlsim_log(dc->dev, HLSIM_LOG_WARN, "error status not written to the descriptor");
    }
    signal_cause(dc, DMACOPY_IRQ_ERROR, DMACOPY_MSIX_VECTOR_ERROR);
}

/* ---- DMA callbacks ----------------------------------------------------------- */

static void descriptor_fetched(void *arg, enum hlsim_dma_status status)
{
    struct job *job = arg;
    struct dmacopy *dc = job->dc;

    if (dc->halted || job->state != JOB_FETCHING)
        return;
    job->state = JOB_FETCHED;
    if (status != HLSIM_DMA_OK) {
        job->error = DMACOPY_ERR_DMA_READ;
    } else {
        job->src = tlpb_get_le64(&job->desc[DMACOPY_DESC_SRC]);
        job->dst = tlpb_get_le64(&job->desc[DMACOPY_DESC_DST]);
        job->len = tlpb_get_le32(&job->desc[DMACOPY_DESC_LEN]);
        job->flags = tlpb_get_le32(&job->desc[DMACOPY_DESC_FLAGS]);
    }
    engine_run(dc);
}

static void chunk_read(void *arg, enum hlsim_dma_status status)
{
    struct chunk *chunk = arg;
    struct dmacopy *dc = chunk->dc;

    if (dc->halted || chunk->state != CHUNK_READING)
        return;
    chunk->state = CHUNK_READ;
    chunk->status = status;
    engine_run(dc);
}

static void data_flushed(void *arg, enum hlsim_dma_status status)
{
    struct job *job = arg;
    struct dmacopy *dc = job->dc;

    if (dc->halted || job->state != JOB_FLUSHING)
        return;
    job->state = JOB_READY;
    if (status != HLSIM_DMA_OK)
        job->error = DMACOPY_ERR_DMA_WRITE;
    engine_run(dc);
}

/* ---- stages: each returns true when it made progress ---------------------- */

/* Names the descriptor in the bridge's report should the host refuse one of
 * its data reads or writes. */
static void copy_context(struct dmacopy *dc, const struct job *job)
{
    hlsim_dma_set_context(dc->dev, "copying descriptor %u (src 0x%llx dst 0x%llx len %u)",
                          job->index, (unsigned long long)job->src, (unsigned long long)job->dst,
                          job->len);
}

static bool fetch_stage(struct dmacopy *dc)
{
    bool progress = false;

    while ((dc->ctrl & DMACOPY_CTRL_ENABLE) && dc->job_count < FETCH_AHEAD) {
        if (dc->job_count == 0) {
            if (!descriptors_pending(dc))
                break;
            /* The engine starts: the ring must make sense. */
            if (!ring_valid(dc)) {
                halt(dc, DMACOPY_ERR_BAD_RING, NULL);
                return true;
            }
        }
        uint32_t index = (dc->head + dc->job_count) & ring_mask(dc);
        if (index == (dc->tail & ring_mask(dc)))
            break;
        struct job *job = job_at(dc, dc->job_count);
        memset(job, 0, sizeof(*job));
        job->dc = dc;
        job->index = index;
        job->desc_addr = ring_base(dc) + (uint64_t)index * DMACOPY_DESC_BYTES;
        job->state = JOB_FETCHING;
        hlsim_dma_set_context(dc->dev, "fetching descriptor %u at 0x%llx", index,
                              (unsigned long long)job->desc_addr);
        int r = hlsim_dma_read(dc->dev, job->desc_addr, job->desc, DMACOPY_DESC_BYTES,
                               descriptor_fetched, job);
        if (r == -EPERM) {
            job->state = JOB_FREE; /* bus mastering off: retry when it is on */
            break;
        }
        dc->job_count++;
        progress = true;
        if (r != 0) {
            job->state = JOB_FETCHED;
            job->error = DMACOPY_ERR_DMA_READ;
        }
    }
    return progress;
}

/* Start the job at data_pos if it is fetched; false when nothing to do. */
static bool data_begin(struct dmacopy *dc, struct job *job)
{
    if (job->error == DMACOPY_ERR_NONE && (job->len == 0 || job->len > DMACOPY_MAX_COPY_BYTES))
        job->error = DMACOPY_ERR_BAD_LENGTH;
    if (job->error != DMACOPY_ERR_NONE) {
        job->state = JOB_READY;
        dc->data_stopped = true; /* the engine halts here */
        return true;
    }
    job->state = JOB_DATA;
    job->crc = 0;
    dc->read_off = 0;
    dc->write_off = 0;
    return true;
}

static bool data_stage(struct dmacopy *dc)
{
    bool progress = false;

    if (dc->data_stopped || dc->data_pos >= dc->job_count)
        return false;
    struct job *job = job_at(dc, dc->data_pos);
    if (job->state == JOB_FETCHING)
        return false;
    if (job->state == JOB_FETCHED)
        progress = data_begin(dc, job);
    if (job->state != JOB_DATA)
        return progress;

    /* Keep the source reads going into free chunk buffers. */
    for (unsigned i = 0; i < CHUNKS && dc->read_off < job->len; i++) {
        struct chunk *chunk = &dc->chunks[i];
        if (chunk->state != CHUNK_FREE)
            continue;
        uint32_t n = job->len - dc->read_off;
        if (n > CHUNK_BYTES)
            n = CHUNK_BYTES;
        chunk->offset = dc->read_off;
        chunk->len = n;
        chunk->state = CHUNK_READING;
        copy_context(dc, job);
        int r = hlsim_dma_read(dc->dev, job->src + dc->read_off, chunk->buf, n, chunk_read, chunk);
        if (r == -EPERM) {
            chunk->state = CHUNK_FREE;
            break;
        }
        if (r != 0) {
            chunk->state = CHUNK_READ;
            chunk->status = HLSIM_DMA_CA;
        }
        dc->read_off += n;
        progress = true;
    }

    /* Write what has been read, in order. */
    for (;;) {
        struct chunk *chunk = NULL;
        for (unsigned i = 0; i < CHUNKS; i++)
            if (dc->chunks[i].state == CHUNK_READ && dc->chunks[i].offset == dc->write_off)
                chunk = &dc->chunks[i];
        if (!chunk)
            break;
        if (chunk->status != HLSIM_DMA_OK) {
            job->error = DMACOPY_ERR_DMA_READ;
            job->state = JOB_READY;
            dc->data_stopped = true;
            return true;
        }
        bool last = chunk->offset + chunk->len == job->len;
        copy_context(dc, job);
        int r = hlsim_dma_write(dc->dev, job->dst + chunk->offset, chunk->buf, chunk->len,
                                last ? data_flushed : NULL, job);
        if (r == -EPERM)
            break;
        progress = true;
        if (r != 0) {
            job->error = DMACOPY_ERR_DMA_WRITE;
            job->state = JOB_READY;
            dc->data_stopped = true;
            return true;
        }
        job->crc = crc32_gzip_refl(job->crc, chunk->buf, chunk->len);
        dc->write_off += chunk->len;
        chunk->state = CHUNK_FREE;
        if (last) {
            job->state = JOB_FLUSHING;
            dc->data_pos++; /* the next descriptor may move data now */
            break;
        }
        /* a buffer is free: start the next read before writing more */
        return true;
    }
    return progress;
}

static bool finish_stage(struct dmacopy *dc)
{
    bool progress = false;

    while (!dc->halted && dc->job_count > 0) {
        struct job *job = job_at(dc, 0);
        if (job->state != JOB_READY)
            break;
        if (job->error != DMACOPY_ERR_NONE) {
            halt(dc, job->error, job);
            return true;
        }
        /* crc first, then status: DONE is visible only after data and crc */
        hlsim_dma_set_context(dc->dev, "completing descriptor %u at 0x%llx", job->index,
                              (unsigned long long)job->desc_addr);
        if (job->finish_step == 0) {
            uint8_t crc[4];
            tlpb_put_le32(crc, job->crc);
            if (hlsim_dma_write(dc->dev, job->desc_addr + DMACOPY_DESC_CRC, crc, 4, NULL, NULL) ==
                -EPERM)
                break;
            job->finish_step = 1;
        }
        uint8_t status[4];
        tlpb_put_le32(status, DMACOPY_DESC_DONE);
        if (hlsim_dma_write(dc->dev, job->desc_addr + DMACOPY_DESC_STATUS, status, 4, NULL, NULL) ==
            -EPERM)
            break;
        dc->head = (dc->head + 1) & ring_mask(dc);
        dc->completed++;
        job->state = JOB_FREE;
        dc->job_first = (dc->job_first + 1) % FETCH_AHEAD;
        dc->job_count--;
        dc->data_pos--;
        progress = true;
        if (job->flags & DMACOPY_DESC_FLAG_IRQ) {
            /* A masked completion cause is neither recorded nor signalled. */
            if (!(dc->irq_mask & DMACOPY_IRQ_COMPLETION))
                signal_cause(dc, DMACOPY_IRQ_COMPLETION, DMACOPY_MSIX_VECTOR_COMPLETION);
        }
    }
    return progress;
}

static void engine_run(struct dmacopy *dc)
{
    if (dc->in_run) {
        dc->run_again = true;
        return;
    }
    dc->in_run = true;
    do {
        dc->run_again = false;
        if (dc->halted || !hlsim_bus_master_enabled(dc->dev))
            break; /* halted until RESET; without bus mastering, wait */
        bool progress = finish_stage(dc);
        progress |= data_stage(dc);
        progress |= finish_stage(dc);
        progress |= fetch_stage(dc);
        if (progress)
            dc->run_again = true;
    } while (dc->run_again);
    dc->in_run = false;
}

/* ---- registers ------------------------------------------------------------- */

static uint32_t status_register(const struct dmacopy *dc)
{
    uint32_t status = 0;
    if (descriptors_pending(dc) || dc->job_count > 0)
        status |= DMACOPY_STATUS_BUSY;
    if (dc->err_code != DMACOPY_ERR_NONE)
        status |= DMACOPY_STATUS_ERROR;
    if (dc->halted)
        status |= DMACOPY_STATUS_HALTED;
    return status;
}

static uint32_t register_read(struct dmacopy *dc, uint64_t reg)
{
    switch (reg) {
    case DMACOPY_REG_ID:
        return DMACOPY_ID_VALUE;
    case DMACOPY_REG_SCRATCH:
        return dc->scratch;
    case DMACOPY_REG_CTRL:
        return dc->ctrl;
    case DMACOPY_REG_STATUS:
        return status_register(dc);
    case DMACOPY_REG_RING_LO:
        return dc->ring_lo;
    case DMACOPY_REG_RING_HI:
        return dc->ring_hi;
    case DMACOPY_REG_RING_SIZE:
        return dc->ring_size;
    case DMACOPY_REG_HEAD:
        return dc->head;
    case DMACOPY_REG_TAIL:
        return dc->tail;
    case DMACOPY_REG_IRQ_STATUS:
        return dc->irq_status;
    case DMACOPY_REG_IRQ_MASK:
        return dc->irq_mask;
    case DMACOPY_REG_COMPLETED:
        return dc->completed;
    case DMACOPY_REG_ERR_CODE:
        return dc->err_code;
    default:
        return 0;
    }
}

/* value and lanes are already shifted to the register's byte positions. */
static void register_write(struct dmacopy *dc, uint64_t reg, uint32_t value, uint32_t lanes)
{
#define MERGE(field) ((field) = ((field) & ~lanes) | (value & lanes))
    switch (reg) {
    case DMACOPY_REG_SCRATCH:
        MERGE(dc->scratch);
        break;
    case DMACOPY_REG_CTRL: {
        uint32_t ctrl = dc->ctrl;
        MERGE(ctrl);
        /* RESET self-clears; ENABLE takes the written value */
        dc->ctrl = ctrl & DMACOPY_CTRL_ENABLE;
        if (ctrl & DMACOPY_CTRL_RESET)
            soft_reset(dc);
        engine_run(dc);
        break;
    }
    case DMACOPY_REG_RING_LO:
        MERGE(dc->ring_lo);
        break;
    case DMACOPY_REG_RING_HI:
        MERGE(dc->ring_hi);
        break;
    case DMACOPY_REG_RING_SIZE:
        MERGE(dc->ring_size);
        break;
    case DMACOPY_REG_TAIL:
        MERGE(dc->tail);
        engine_run(dc);
        break;
    case DMACOPY_REG_IRQ_STATUS:
        dc->irq_status &= ~(value & lanes);
        update_intx(dc);
        break;
    case DMACOPY_REG_IRQ_MASK:
        MERGE(dc->irq_mask);
        update_intx(dc);
        break;
    default:
        break; /* read-only or unassigned */
    }
#undef MERGE
}

/* ---- model operations ---------------------------------------------------------- */

/* model_args: "bytes_per_ns=F,reg_latency_ns=N", each optional. */
static int parse_args(const char *args, double *bytes_per_ns, uint64_t *reg_latency_ns,
                      char *err, size_t err_size)
{
    const char *p = args ? args : "";

    while (*p) {
        const char *end = strchr(p, ',');
        size_t item_len = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (item_len == 0 || item_len >= sizeof(item)) {
            snprintf(err, err_size, "bad model argument near \"%.32s\" (expected "
                     "bytes_per_ns=F,reg_latency_ns=N)", p);
            return -1;
        }
        memcpy(item, p, item_len);
        item[item_len] = '\0';
        char *value = strchr(item, '=');
        char *rest = NULL;
        if (!value || value[1] == '\0') {
            snprintf(err, err_size, "model argument \"%s\" has no value", item);
            return -1;
        }
        *value++ = '\0';
        if (strcmp(item, "bytes_per_ns") == 0) {
            double v = strtod(value, &rest);
            if (*rest != '\0' || !(v > 0.0 && v <= 1e6)) {
                snprintf(err, err_size, "bytes_per_ns must be a number above 0 and at most 1e6, not \"%s\"",
                         value);
                return -1;
            }
            *bytes_per_ns = v;
        } else if (strcmp(item, "reg_latency_ns") == 0) {
            unsigned long long v = strtoull(value, &rest, 10);
            if (*rest != '\0' || value[0] < '0' || value[0] > '9' || v > MAX_REG_LATENCY_NS) {
                snprintf(err, err_size, "reg_latency_ns must be an integer from 0 to %llu, not \"%s\"",
                         MAX_REG_LATENCY_NS, value);
                return -1;
            }
            *reg_latency_ns = v;
        } else {
            snprintf(err, err_size, "unknown model argument \"%s\" (dmacopy takes bytes_per_ns "
                     "and reg_latency_ns)", item);
            return -1;
        }
        p = end ? end + 1 : p + item_len;
    }
    return 0;
}

static void *dmacopy_create(hlsim_device *dev, const char *args, char *err, size_t err_size)
{
    double bytes_per_ns = DEFAULT_BYTES_PER_NS;
    uint64_t reg_latency_ns = DEFAULT_REG_LATENCY_NS;

    if (parse_args(args, &bytes_per_ns, &reg_latency_ns, err, err_size) != 0)
        return NULL;
    struct dmacopy *dc = calloc(1, sizeof(*dc));
    if (!dc) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    dc->dev = dev;
    for (unsigned i = 0; i < CHUNKS; i++) {
        dc->chunks[i].buf = malloc(CHUNK_BYTES);
        if (!dc->chunks[i].buf) {
            for (unsigned j = 0; j < i; j++)
                free(dc->chunks[j].buf);
            free(dc);
            snprintf(err, err_size, "out of memory");
            return NULL;
        }
    }
    engine_clear(dc);
    hlsim_dma_set_rate(dev, bytes_per_ns);
    hlsim_set_access_latency_ns(dev, reg_latency_ns);
    return dc;
}

static void dmacopy_destroy(void *model)
{
    struct dmacopy *dc = model;
    for (unsigned i = 0; i < CHUNKS; i++)
        free(dc->chunks[i].buf);
    free(dc);
}

static void dmacopy_reset(void *model, enum hlsim_reset_kind kind)
{
    struct dmacopy *dc = model;

    /* The SDK has abandoned outstanding DMA and lowered INTx. */
    engine_clear(dc);
    dc->scratch = 0;
    dc->ctrl = 0;
    dc->ring_lo = dc->ring_hi = dc->ring_size = 0;
    dc->head = dc->tail = 0;
    dc->irq_status = 0;
    dc->irq_mask = 0;
    dc->completed = 0;
    dc->err_code = DMACOPY_ERR_NONE;
    dc->halted = false;
}

static uint32_t dmacopy_mmio_read(void *model, unsigned bar, uint64_t offset, unsigned size)
{
    struct dmacopy *dc = model;

    if (bar != 0)
        return 0;
    uint32_t value = register_read(dc, offset & ~3ull) >> (8 * (offset & 3));
    return size >= 4 ? value : value & ((1u << (8 * size)) - 1);
}

static void dmacopy_mmio_write(void *model, unsigned bar, uint64_t offset, uint32_t value,
                               unsigned size)
{
    struct dmacopy *dc = model;

    if (bar != 0)
        return;
    unsigned shift = 8 * (unsigned)(offset & 3);
    uint32_t lanes = (size >= 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1) << shift;
    register_write(dc, offset & ~3ull, value << shift, lanes);
}

static void dmacopy_config_changed(void *model, unsigned changes)
{
    struct dmacopy *dc = model;

    if (changes & (TLPB_CFG_CHANGED_MSIX | TLPB_CFG_CHANGED_COMMAND))
        update_intx(dc);
    if (changes & TLPB_CFG_CHANGED_COMMAND)
        engine_run(dc); /* bus mastering may have come on */
}

const struct hlsim_model_ops hlsim_model = {
    .abi_version = HLSIM_ABI_VERSION,
    .name = "dmacopy",
    .description = DMACOPY_DESCRIPTION,
    .create = dmacopy_create,
    .destroy = dmacopy_destroy,
    .reset = dmacopy_reset,
    .mmio_read = dmacopy_mmio_read,
    .mmio_write = dmacopy_mmio_write,
    .config_changed = dmacopy_config_changed,
};

/* hlsim SDK: the device's outbound traffic. DMA reads and writes are split
 * into PCIe requests, tags are allocated and completions reassembled, and
 * everything the device sends (DMA, interrupts, completions) leaves in an
 * order PCIe allows; see the queue description in sdk_internal.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk_internal.h"

/* Context of a tag whose request was abandoned (cancel or reset): its late
 * completions are consumed and dropped, and the tag is not reused until they
 * have arrived or timed out, so old data can never land in a new request. */
static char stale_tag_context;
#define STALE_TAG ((void *)&stale_tag_context)

static void arm_timeout(hlsim_device *dev);

static void timeout_fire(void *arg)
{
    hlsim_device *dev = arg;

    dev->timeout_armed = false;
    hlsim_device_poll_timeouts(dev);
    arm_timeout(dev);
}

static void link_timer_fire(void *arg)
{
    hlsim_device *dev = arg;

    dev->link_timer_armed = false;
    dma_pump(dev);
}

void dma_init(hlsim_device *dev)
{
    TAILQ_INIT(&dev->posted);
    TAILQ_INIT(&dev->nonposted);
    TAILQ_INIT(&dev->inflight);
    TAILQ_INIT(&dev->done);
    TAILQ_INIT(&dev->cpls);
    tlpb_tags_init(&dev->tags, HLSIM_TAGS_BASIC);
    dev->dma_timeout_ns = dev->opts.dma_timeout_ns ? dev->opts.dma_timeout_ns
                                                   : HLSIM_DEFAULT_DMA_TIMEOUT_NS;
    if (dev->env_ops->timer_create)
        dev->timeout_timer = dev->env_ops->timer_create(dev->env, timeout_fire, dev);
    if (dev->env_ops->timer_create)
        dev->link_timer = dev->env_ops->timer_create(dev->env, link_timer_fire, dev);
}

static void free_posted(hlsim_device *dev, struct hlsim_posted *p)
{
    TAILQ_REMOVE(&dev->posted, p, link);
    free(p->image);
    free(p);
}

static void free_op(struct hlsim_op_list *list, struct hlsim_dma_op *op)
{
    TAILQ_REMOVE(list, op, link);
    free(op);
}

static struct hlsim_op_list *op_list(hlsim_device *dev, struct hlsim_dma_op *op)
{
    switch (op->place) {
    case HLSIM_OP_QUEUED:
        return &dev->nonposted;
    case HLSIM_OP_INFLIGHT:
        return &dev->inflight;
    case HLSIM_OP_DONE:
        break;
    }
    return &dev->done;
}

void dma_fini(hlsim_device *dev)
{
    struct hlsim_queued_cpl *c;
    struct hlsim_posted *p;

    while ((p = TAILQ_FIRST(&dev->posted)) != NULL)
        free_posted(dev, p);
    while ((c = TAILQ_FIRST(&dev->cpls)) != NULL) {
        TAILQ_REMOVE(&dev->cpls, c, link);
        free(c);
    }
    if (dev->timeout_timer) {
        dev->env_ops->timer_stop(dev->timeout_timer);
        dev->env_ops->timer_destroy(dev->timeout_timer);
        dev->timeout_timer = NULL;
    }
    if (dev->link_timer) {
        dev->env_ops->timer_stop(dev->link_timer);
        dev->env_ops->timer_destroy(dev->link_timer);
        dev->link_timer = NULL;
    }
}

/* ---- what a DMA is for ------------------------------------------------------ */

void hlsim_dma_set_context(hlsim_device *dev, const char *fmt, ...)
{
    if (!fmt) {
        dev->dma_context[0] = '\0';
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dev->dma_context, sizeof(dev->dma_context), fmt, ap);
    va_end(ap);
}

void dma_clear_context(hlsim_device *dev)
{
    dev->dma_context[0] = '\0';
}

_Static_assert(HLSIM_DMA_CONTEXT_MAX == TLPB_DMA_CONTEXT_MAX, "one bound for the DMA context");

static void record_context(hlsim_device *dev, bool write, uint64_t address, uint32_t len)
{
    if (!dev->dma_context[0])
        return;
    tlpb_dma_context_note(&dev->dma_history, write, address, len, dev->dma_context);
    /* A model in its own process: the bridge keeps it too (hlsim-run sends
     * it ahead of the DMA's requests). */
    if (dev->env_ops->dma_context)
        dev->env_ops->dma_context(dev->env, write, address, len, dev->dma_context);
}

const char *hlsim_device_dma_context(const hlsim_device *dev, bool write, uint64_t address)
{
    return tlpb_dma_context_find(&dev->dma_history, write, address);
}

/* ---- link throughput (coupled time only) ------------------------------------ */

void hlsim_dma_set_rate(hlsim_device *dev, double bytes_per_ns)
{
    dev->dma_bytes_per_ns = bytes_per_ns > 0 ? bytes_per_ns : 0;
}

static bool link_paced(const hlsim_device *dev)
{
    return dev->time_coupled && dev->dma_bytes_per_ns > 0 && dev->link_timer;
}

/* Is the link still busy with earlier TLPs? Then the link timer resumes
 * the pump when it is free. */
static bool link_busy(hlsim_device *dev)
{
    if (!link_paced(dev))
        return false;
    uint64_t now_ps = sdk_now(dev) * 1000u;
    if (now_ps >= dev->link_free_ps)
        return false;
    if (!dev->link_timer_armed) {
        dev->link_timer_armed = true;
        dev->env_ops->timer_start(dev->link_timer, (dev->link_free_ps - now_ps + 999u) / 1000u);
    }
    return true;
}

/* A TLP of payload_bytes went out now: the link is busy for its bytes. */
static void link_charge(hlsim_device *dev, uint32_t payload_bytes)
{
    if (!link_paced(dev))
        return;
    uint64_t now_ps = sdk_now(dev) * 1000u;
    if (dev->link_free_ps < now_ps)
        dev->link_free_ps = now_ps;
    dev->link_free_ps += (uint64_t)((double)payload_bytes * 1000.0 / dev->dma_bytes_per_ns + 0.5);
}

/* ---- ordering -------------------------------------------------------------- */

/* Have all posted entries queued before `barrier` been sent? */
static bool posted_before_sent(const hlsim_device *dev, uint64_t barrier)
{
    const struct hlsim_posted *p = TAILQ_FIRST(&dev->posted);
    return p == NULL || p->seq >= barrier;
}

static struct hlsim_posted *posted_append(hlsim_device *dev)
{
    struct hlsim_posted *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->seq = dev->posted_seq++;
    TAILQ_INSERT_TAIL(&dev->posted, p, link);
    return p;
}

void upstream_send_completion(hlsim_device *dev, const struct tlpb_tlp *cpl)
{
    if (TAILQ_EMPTY(&dev->cpls) && posted_before_sent(dev, dev->posted_seq)) {
        int r = dev->env_ops->send_tlp(dev->env, cpl);
        if (r < 0)
            hlsim_log(dev, HLSIM_LOG_ERROR, "completion for tag %u not sent (%d)", cpl->tag, r);
        return;
    }
    /* A completion must not pass the device's earlier posted writes. */
    struct hlsim_queued_cpl *c = malloc(sizeof(*c) + cpl->payload_bytes);
    if (!c) {
        hlsim_log(dev, HLSIM_LOG_ERROR, "out of memory: completion for tag %u lost", cpl->tag);
        return;
    }
    c->barrier = dev->posted_seq;
    c->tlp = *cpl;
    if (cpl->payload_bytes && cpl->payload)
        memcpy(c->payload, cpl->payload, cpl->payload_bytes);
    c->tlp.payload = cpl->payload_bytes ? c->payload : NULL;
    TAILQ_INSERT_TAIL(&dev->cpls, c, link);
}

void upstream_send_interrupt(hlsim_device *dev, Tlpb__InterruptKind kind, unsigned vector)
{
    if (TAILQ_EMPTY(&dev->posted)) {
        dev->env_ops->send_interrupt(dev->env, kind, vector);
        return;
    }
    /* An interrupt must not overtake the DMA writes it announces. */
    struct hlsim_posted *p = posted_append(dev);
    if (!p) {
        hlsim_log(dev, HLSIM_LOG_ERROR, "out of memory: interrupt %d/%u lost", (int)kind, vector);
        return;
    }
    p->is_interrupt = true;
    p->irq_kind = kind;
    p->irq_vector = vector;
}

/* ---- finishing operations ----------------------------------------------- */

static void status_worsen(enum hlsim_dma_status *status, enum hlsim_dma_status s)
{
    /* larger values are worse: UR < CRS < CA < TIMEOUT < LINK_DOWN */
    if (s > *status)
        *status = s;
}

static enum hlsim_dma_status status_from_cpl(enum tlpb_cpl_status s)
{
    switch (s) {
    case TLPB_CPL_SC:
        return HLSIM_DMA_OK;
    case TLPB_CPL_UR:
        return HLSIM_DMA_UR;
    case TLPB_CPL_CRS:
        return HLSIM_DMA_CRS;
    case TLPB_CPL_CA:
        break;
    }
    return HLSIM_DMA_CA;
}

static bool op_fully_issued(const struct hlsim_dma_op *op)
{
    if (op->stop_issuing)
        return true;
    if (op->is_flush)
        return op->flush_issued;
    return op->issued_bytes >= op->length_bytes;
}

/* Move a finished operation to the done list; its callback runs deferred. */
static void op_finish_if_done(hlsim_device *dev, struct hlsim_dma_op *op)
{
    if (op->place == HLSIM_OP_DONE || !op_fully_issued(op) || op->outstanding > 0)
        return;
    TAILQ_REMOVE(op_list(dev, op), op, link);
    op->place = HLSIM_OP_DONE;
    TAILQ_INSERT_TAIL(&dev->done, op, link);
    sdk_schedule(dev);
}

static void op_request_done(hlsim_device *dev, struct hlsim_dma_op *op,
                            enum hlsim_dma_status status)
{
    if (op->outstanding > 0)
        op->outstanding--;
    if (status != HLSIM_DMA_OK) {
        status_worsen(&op->status, status);
        op->stop_issuing = true; /* nothing more to learn from the rest */
    }
    op_finish_if_done(dev, op);
}

void dma_deliver_callbacks(hlsim_device *dev)
{
    struct hlsim_dma_op *op;

    /* One at a time from the head: a callback may start DMA or cancel it. */
    while ((op = TAILQ_FIRST(&dev->done)) != NULL) {
        hlsim_dma_cb cb = op->cb;
        void *arg = op->cb_arg;
        enum hlsim_dma_status status = op->status;
        free_op(&dev->done, op);
        if (cb)
            SDK_CALL_MODEL(dev, "dma_callback", cb(arg, status));
    }
}

/* ---- issuing ----------------------------------------------------------------- */

static uint32_t next_piece(hlsim_device *dev, uint64_t addr, uint32_t remaining,
                           uint32_t max_bytes)
{
    if (dev->opts.unsplit_dma)
        return remaining < HLSIM_UNSPLIT_PIECE_BYTES ? remaining : HLSIM_UNSPLIT_PIECE_BYTES;
    uint32_t piece = tlpb_split_request_bytes(addr, remaining, max_bytes);
    /* MPS and MRRS limit the DW length: end on a max_bytes boundary so an
     * unaligned start does not spill into one DW too many. */
    uint32_t to_boundary = max_bytes - (uint32_t)(addr & (max_bytes - 1));
    return piece < to_boundary ? piece : to_boundary;
}

static void request_header(hlsim_device *dev, struct tlpb_tlp *tlp, enum tlpb_tlp_kind kind)
{
    memset(tlp, 0, sizeof(*tlp));
    tlp->kind = kind;
    tlp->requester_id = sdk_bdf(dev);
    tlp->bar_hint = TLPB_NO_BAR;
    /* TC 0, no attributes: the model asks for nothing else */
}

/* Send the next MWr of a posted write. Returns 0 or -EAGAIN. */
static int issue_write(hlsim_device *dev, struct hlsim_posted *p)
{
    struct tlpb_tlp tlp;
    uint64_t addr = p->address + p->sent_bytes;
    uint32_t piece = next_piece(dev, addr, p->length_bytes - p->sent_bytes,
                                tlpb_cfg_max_payload_bytes(&dev->cfg));

    request_header(dev, &tlp, TLPB_TLP_MWR);
    if (tlpb_tlp_set_mem_range(&tlp, addr, piece) != 0) {
        hlsim_log(dev, HLSIM_LOG_ERROR, "DMA write at %#llx not encodable, dropped",
                  (unsigned long long)addr);
        p->sent_bytes = p->length_bytes;
        return 0;
    }
    tlp.payload = p->image + ((addr & ~3ull) - (p->address & ~3ull));
    tlp.payload_bytes = tlp.length_dw * 4;
    int r = dev->env_ops->send_tlp(dev->env, &tlp);
    if (r == -EAGAIN)
        return -EAGAIN;
    if (r < 0)
        hlsim_log(dev, HLSIM_LOG_ERROR, "DMA write at %#llx not sent (%d)",
                  (unsigned long long)addr, r);
    p->sent_bytes += piece;
    return 0;
}

/* Send the next MRd of a read (or the flush read). Returns 0, or -EAGAIN when
 * no tag is free or the output is full. */
static int issue_read(hlsim_device *dev, struct hlsim_dma_op *op, uint64_t now)
{
    struct tlpb_tlp tlp;
    uint64_t addr;
    uint32_t piece;
    int tag;

    request_header(dev, &tlp, TLPB_TLP_MRD);
    if (op->is_flush) {
        /* Zero-length read of the DW holding the last written byte. */
        addr = op->address & ~3ull;
        piece = 0;
        tag = tlpb_tags_alloc(&dev->tags, addr, 0, NULL, now + dev->dma_timeout_ns, op);
    } else {
        addr = op->address + op->issued_bytes;
        piece = next_piece(dev, addr, op->length_bytes - op->issued_bytes,
                           tlpb_cfg_max_read_request_bytes(&dev->cfg));
        tag = tlpb_tags_alloc(&dev->tags, addr, piece, op->buffer + op->issued_bytes,
                              now + dev->dma_timeout_ns, op);
    }
    if (tag == -EAGAIN)
        return -EAGAIN;
    if (tag < 0) {
        hlsim_log(dev, HLSIM_LOG_ERROR, "DMA read at %#llx: no tag (%d)",
                  (unsigned long long)addr, tag);
        status_worsen(&op->status, HLSIM_DMA_CA);
        op->stop_issuing = true;
        return 0;
    }
    tlp.tag = (uint8_t)tag;
    tlpb_tlp_set_mem_range(&tlp, addr, piece);
    int r = dev->env_ops->send_tlp(dev->env, &tlp);
    if (r == -EAGAIN) {
        tlpb_tags_release(&dev->tags, (uint8_t)tag);
        dev->output_blocked = true;
        return -EAGAIN;
    }
    if (r < 0) {
        tlpb_tags_release(&dev->tags, (uint8_t)tag);
        hlsim_log(dev, HLSIM_LOG_ERROR, "DMA read at %#llx not sent (%d)",
                  (unsigned long long)addr, r);
        status_worsen(&op->status, HLSIM_DMA_LINK_DOWN);
        op->stop_issuing = true;
        return 0;
    }
    if (op->is_flush)
        op->flush_issued = true;
    else
        op->issued_bytes += piece;
    op->outstanding++;
    return 0;
}

static void update_tag_count(hlsim_device *dev)
{
    unsigned wanted = tlpb_cfg_extended_tags_enabled(&dev->cfg) ? TLPB_TAGS_MAX
                                                                 : HLSIM_TAGS_BASIC;
    /* The table can only be resized when no tag is outstanding. */
    if (dev->tags.tag_count != wanted && dev->tags.in_use == 0)
        tlpb_tags_init(&dev->tags, wanted);
}

void dma_pump(hlsim_device *dev)
{
    struct hlsim_posted *p;
    struct hlsim_queued_cpl *c;
    struct hlsim_dma_op *op;

    if (dev->pumping)
        return;
    dev->pumping = true;

    /* Posted writes already accepted keep flowing even if bus mastering is
     * turned off meanwhile: they left the device's core before that. */
    while (!dev->output_blocked && (p = TAILQ_FIRST(&dev->posted)) != NULL && !link_busy(dev)) {
        if (p->is_interrupt) {
            dev->env_ops->send_interrupt(dev->env, p->irq_kind, p->irq_vector);
            free_posted(dev, p);
            continue;
        }
        uint32_t sent_before = p->sent_bytes;
        if (issue_write(dev, p) == -EAGAIN) {
            dev->output_blocked = true;
            break;
        }
        link_charge(dev, p->sent_bytes - sent_before);
        if (p->sent_bytes >= p->length_bytes)
            free_posted(dev, p);
    }
    /* Interrupts never wait for the output: they are always accepted (but
     * they do wait for the data before them on a paced link). */
    while ((p = TAILQ_FIRST(&dev->posted)) != NULL && p->is_interrupt && !link_busy(dev)) {
        dev->env_ops->send_interrupt(dev->env, p->irq_kind, p->irq_vector);
        free_posted(dev, p);
    }

    while ((c = TAILQ_FIRST(&dev->cpls)) != NULL && posted_before_sent(dev, c->barrier)) {
        int r = dev->env_ops->send_tlp(dev->env, &c->tlp);
        if (r < 0)
            hlsim_log(dev, HLSIM_LOG_ERROR, "completion for tag %u not sent (%d)", c->tlp.tag,
                      r);
        TAILQ_REMOVE(&dev->cpls, c, link);
        free(c);
    }

    update_tag_count(dev);
    uint64_t now = sdk_now(dev);
    while (!dev->output_blocked && tlpb_cfg_bus_master_enabled(&dev->cfg) &&
           (op = TAILQ_FIRST(&dev->nonposted)) != NULL &&
           posted_before_sent(dev, op->barrier) && !link_busy(dev)) {
        if (!op_fully_issued(op) && issue_read(dev, op, now) == -EAGAIN)
            break;
        if (op_fully_issued(op)) {
            TAILQ_REMOVE(&dev->nonposted, op, link);
            op->place = HLSIM_OP_INFLIGHT;
            TAILQ_INSERT_TAIL(&dev->inflight, op, link);
            op_finish_if_done(dev, op);
        }
    }
    arm_timeout(dev);
    dev->pumping = false;
}

/* ---- calls for models ---------------------------------------------------- */

static int check_request(hlsim_device *dev, uint64_t addr, uint32_t len)
{
    if (len > HLSIM_DMA_MAX_BYTES || addr > UINT64_MAX - len)
        return -EINVAL;
    if (!tlpb_cfg_bus_master_enabled(&dev->cfg))
        return -EPERM;
    return 0;
}

static struct hlsim_dma_op *op_append(hlsim_device *dev, uint64_t addr, uint32_t len,
                                      uint8_t *buffer, hlsim_dma_cb cb, void *arg)
{
    struct hlsim_dma_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->place = HLSIM_OP_QUEUED;
    op->barrier = dev->posted_seq; /* a read must not pass earlier writes */
    op->address = addr;
    op->length_bytes = len;
    op->buffer = buffer;
    op->status = HLSIM_DMA_OK;
    op->cb = cb;
    op->cb_arg = arg;
    TAILQ_INSERT_TAIL(&dev->nonposted, op, link);
    return op;
}

int hlsim_dma_read(hlsim_device *dev, uint64_t addr, void *buf, uint32_t len, hlsim_dma_cb cb,
                   void *arg)
{
    int r = check_request(dev, addr, len);
    if (r != 0)
        return r;
    if (len > 0 && !buf)
        return -EINVAL;
    if (!op_append(dev, addr, len, buf, cb, arg))
        return -ENOMEM;
    record_context(dev, false, addr, len);
    dma_pump(dev);
    return 0;
}

int hlsim_dma_write(hlsim_device *dev, uint64_t addr, const void *buf, uint32_t len,
                    hlsim_dma_cb cb, void *arg)
{
    int r = check_request(dev, addr, len);
    if (r != 0)
        return r;
    if (len > 0 && !buf)
        return -EINVAL;
    if (len > 0) {
        /* Keep the data DW aligned so every MWr's payload is a slice of it. */
        size_t image_bytes = ((addr & 3) + (size_t)len + 3) & ~(size_t)3;
        uint8_t *image = calloc(1, image_bytes);
        if (!image)
            return -ENOMEM;
        struct hlsim_posted *p = posted_append(dev);
        if (!p) {
            free(image);
            return -ENOMEM;
        }
        memcpy(image + (addr & 3), buf, len);
        p->address = addr;
        p->length_bytes = len;
        p->image = image;
        record_context(dev, true, addr, len);
    }
    if (cb) {
        /* The flush read goes behind the writes and reports whether they
         * landed. */
        uint64_t last = len > 0 ? addr + len - 1 : addr;
        struct hlsim_dma_op *op = op_append(dev, last, 0, NULL, cb, arg);
        if (!op)
            hlsim_log(dev, HLSIM_LOG_ERROR, "out of memory: write flush lost");
        else {
            op->is_flush = true;
            record_context(dev, false, last & ~3ull, 4); /* the read names the DW */
        }
    }
    dma_pump(dev);
    return 0;
}

void hlsim_dma_cancel_all(hlsim_device *dev)
{
    struct hlsim_posted *p, *next_p;
    struct hlsim_dma_op *op;

    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        struct tlpb_tag_slot *slot = &dev->tags.slots[tag];
        if (slot->in_use) {
            slot->context = STALE_TAG;
            slot->buffer = NULL; /* the caller's buffer may be gone */
        }
    }
    while ((op = TAILQ_FIRST(&dev->nonposted)) != NULL)
        free_op(&dev->nonposted, op);
    while ((op = TAILQ_FIRST(&dev->inflight)) != NULL)
        free_op(&dev->inflight, op);
    while ((op = TAILQ_FIRST(&dev->done)) != NULL)
        free_op(&dev->done, op);
    /* Interrupt messages stay: the host's view of the INTx line and MSI-X
     * delivery must not be lost. */
    for (p = TAILQ_FIRST(&dev->posted); p != NULL; p = next_p) {
        next_p = TAILQ_NEXT(p, link);
        if (!p->is_interrupt)
            free_posted(dev, p);
    }
}

/* ---- completions and timeouts ------------------------------------------- */

void dma_receive_completion(hlsim_device *dev, const struct tlpb_tlp *cpl)
{
    struct tlpb_tag_slot *slot = &dev->tags.slots[cpl->tag];
    struct tlpb_tag_done done;
    const char *reason = "?";

    if (!slot->in_use || cpl->tag >= dev->tags.tag_count) {
        hlsim_log(dev, HLSIM_LOG_DEBUG, "stale completion for tag %u ignored", cpl->tag);
        return;
    }
    void *context = slot->context;
    int r = tlpb_tags_complete(&dev->tags, cpl, &done, &reason);
    if (r < 0) {
        hlsim_log(dev, context == STALE_TAG ? HLSIM_LOG_DEBUG : HLSIM_LOG_WARN,
                  "unexpected completion for tag %u ignored: %s", cpl->tag, reason);
        return;
    }
    if (context != STALE_TAG && cpl->poisoned) {
        /* poisoned data must not be used */
        struct hlsim_dma_op *op = context;
        status_worsen(&op->status, HLSIM_DMA_CA);
        op->stop_issuing = true;
    }
    if (r == 1) {
        if (done.context != STALE_TAG)
            op_request_done(dev, done.context, status_from_cpl(done.status));
        if (dev->tags.in_use == 0 && dev->timeout_armed) {
            /* nothing left to time out: no stale event on a coupled clock */
            dev->env_ops->timer_stop(dev->timeout_timer);
            dev->timeout_armed = false;
        }
        dma_pump(dev); /* a tag is free again */
    }
}

static void tag_expired(const struct tlpb_tag_done *done, void *arg)
{
    hlsim_device *dev = arg;

    if (done->context == STALE_TAG)
        return;
    hlsim_log(dev, HLSIM_LOG_WARN, "DMA read tag %u: completion timeout", done->tag);
    op_request_done(dev, done->context, HLSIM_DMA_TIMEOUT);
}

void hlsim_device_poll_timeouts(hlsim_device *dev)
{
    if (dev->tags.in_use == 0)
        return;
    if (tlpb_tags_expire(&dev->tags, sdk_now(dev), tag_expired, dev) > 0)
        dma_pump(dev);
}

bool hlsim_device_dma_reads_outstanding(const hlsim_device *dev)
{
    if (dev->tags.in_use == 0)
        return false;
    for (unsigned tag = 0; tag < dev->tags.tag_count; tag++)
        if (dev->tags.slots[tag].in_use && dev->tags.slots[tag].context != STALE_TAG)
            return true;
    return false;
}

uint64_t hlsim_device_next_deadline_ns(const hlsim_device *dev)
{
    return tlpb_tags_next_deadline(&dev->tags);
}

static void arm_timeout(hlsim_device *dev)
{
    if (!dev->timeout_timer || dev->timeout_armed || dev->tags.in_use == 0)
        return;
    uint64_t deadline = tlpb_tags_next_deadline(&dev->tags);
    uint64_t now = sdk_now(dev);
    uint64_t delay = deadline > now ? deadline - now : 0;
    dev->timeout_armed = true;
    dev->env_ops->timer_start(dev->timeout_timer, delay);
}

void dma_link_down(hlsim_device *dev)
{
    struct hlsim_dma_op *op;
    struct hlsim_posted *p;
    struct hlsim_queued_cpl *c;

    /* No completion will come: free every tag outright. */
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++)
        if (dev->tags.slots[tag].in_use)
            tlpb_tags_release(&dev->tags, (uint8_t)tag);
    while ((op = TAILQ_FIRST(&dev->nonposted)) != NULL) {
        op->outstanding = 0;
        op->stop_issuing = true;
        status_worsen(&op->status, HLSIM_DMA_LINK_DOWN);
        op_finish_if_done(dev, op);
    }
    while ((op = TAILQ_FIRST(&dev->inflight)) != NULL) {
        op->outstanding = 0;
        status_worsen(&op->status, HLSIM_DMA_LINK_DOWN);
        op_finish_if_done(dev, op);
    }
    while ((p = TAILQ_FIRST(&dev->posted)) != NULL)
        free_posted(dev, p);
    while ((c = TAILQ_FIRST(&dev->cpls)) != NULL) {
        TAILQ_REMOVE(&dev->cpls, c, link);
        free(c);
    }
    dev->intx_wire = false; /* a new host starts with the line low */
    dev->output_blocked = false;
}

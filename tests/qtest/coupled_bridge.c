/* A minimal coupled-time bridge: see coupled_bridge.h. */
#include "coupled_bridge.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

static pthread_t cb_thread;
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cb_grew = PTHREAD_COND_INITIALIZER;
static struct cb_record cb_log[CB_MAX_RECORDS];
static unsigned cb_log_len;
static int cb_listen_fd = -1;

static void record(const struct cb_record *r)
{
    pthread_mutex_lock(&cb_lock);
    if (cb_log_len < CB_MAX_RECORDS)
        cb_log[cb_log_len++] = *r;
    pthread_cond_broadcast(&cb_grew);
    pthread_mutex_unlock(&cb_lock);
}

bool cb_wait_records(struct coupled_bridge *cb, unsigned n)
{
    (void)cb;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += IT_DEADLINE_MS / 1000;
    pthread_mutex_lock(&cb_lock);
    while (cb_log_len < n && pthread_cond_timedwait(&cb_grew, &cb_lock, &until) == 0)
        ;
    bool ok = cb_log_len >= n;
    pthread_mutex_unlock(&cb_lock);
    return ok;
}

unsigned cb_records(struct coupled_bridge *cb, struct cb_record *out, unsigned max)
{
    (void)cb;
    pthread_mutex_lock(&cb_lock);
    unsigned n = cb_log_len < max ? cb_log_len : max;
    memcpy(out, cb_log, n * sizeof(*out));
    pthread_mutex_unlock(&cb_lock);
    return n;
}

static void send_env(int fd, struct tlpb_obuf *ob, const Tlpb__Envelope *env)
{
    if (tlpb_obuf_append(ob, env, true) != 0 || tlpb_obuf_write_all(ob, fd) != 0)
        CHECK(false, "coupled bridge: cannot send");
}

static void send_tlp(int fd, struct tlpb_obuf *ob, const struct tlpb_tlp *tlp)
{
    if (tlpb_obuf_append_tlp(ob, tlp, true) != 0 || tlpb_obuf_write_all(ob, fd) != 0)
        CHECK(false, "coupled bridge: cannot send a TLP");
}

static void send_hello_reply(struct coupled_bridge *cb, int fd, struct tlpb_obuf *ob)
{
    /* dmacopy's layout: BAR0 and BAR2 of 4 KiB, MSI-X (2 vectors) in BAR2 */
    struct tlpb_devdesc desc = *dmacopy_description();
    if (cb->vendor_id)
        desc.vendor_id = cb->vendor_id;
    if (cb->device_id)
        desc.device_id = cb->device_id;
    struct tlpb_devdesc_pb desc_pb;
    Tlpb__HelloReply hr;
    raw_hello_reply_init(&hr, &desc_pb, &desc);
    hr.backend = (char *)"external";
    hr.simulator_attached = true;
    hr.capabilities = cb->hello_offered_time ? TLPB__CAPABILITY__CAP_TIME_SYNC : 0;
    hr.time_mode = (char *)(cb->hello_offered_time ? "coupled" : "");
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    env.hello_reply = &hr;
    send_env(fd, ob, &env);
}

static void serve_tlp(struct coupled_bridge *cb, int fd, struct tlpb_obuf *ob,
                      const Tlpb__Tlp *pb, unsigned *busy_left, bool *doorbell_rung)
{
    struct tlpb_tlp tlp, cpl;
    const char *reason = "";
    struct cb_record r = {.kind = CB_OTHER};
    if (tlpb_tlp_from_pb(&tlp, pb, &reason) != 0) {
        CHECK(false, "coupled bridge: malformed TLP from the host: %s", reason);
        return;
    }
    r.stamp_ps = tlp.sim_time_ps;
    *busy_left = cb->busy_grants;
    switch (tlp.kind) {
    case TLPB_TLP_CFGWR0:
        r.kind = CB_CFGWR;
        r.address = tlp.cfg_register;
        record(&r);
        tlpb_completion_for(&cpl, &tlp, 0x0100, 0, 4, 4);
        cpl.sim_time_ps = tlp.sim_time_ps;
        send_tlp(fd, ob, &cpl);
        break;
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_MRD: {
        uint8_t data[8] = {0};
        r.kind = CB_MRD;
        r.address = tlp.address;
        record(&r);
        uint32_t bytes = tlpb_tlp_request_bytes(&tlp);
        tlpb_completion_for(&cpl, &tlp, 0x0100, tlpb_tlp_first_byte_address(&tlp), bytes, bytes);
        tlpb_put_le32(data + (tlp.kind == TLPB_TLP_MRD ? (tlp.address & 3) : 0), cb->read_value);
        cpl.payload = data;
        cpl.sim_time_ps = tlp.sim_time_ps + cb->read_latency_ps;
        send_tlp(fd, ob, &cpl);
        break;
    }
    case TLPB_TLP_MWR:
        r.kind = CB_MWR;
        r.address = tlp.address;
        if (tlp.address == cb->eager_doorbell_address &&
            (tlpb_obuf_append_interrupt_at(ob, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1,
                                           tlp.sim_time_ps) != 0 ||
             tlpb_obuf_write_all(ob, fd) != 0))
            CHECK(false, "coupled bridge: cannot send the interrupt");
        record(&r); /* after the interrupt: once seen, it is on the socket */
        if (tlp.address == cb->doorbell_address)
            *doorbell_rung = true;
        break;
    default:
        record(&r);
        break;
    }
}

static void *cb_run(void *arg)
{
    struct coupled_bridge *cb = arg;
    int fd = accept(cb_listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct tlpb_frame_reader rd;
    struct tlpb_obuf ob;
    tlpb_reader_init(&rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    tlpb_obuf_init(&ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_HARD_MAX_FRAME_BYTES);
    unsigned busy_left = 0;
    bool doorbell_rung = false, have_hello = false;

    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        /* No deadline: QEMU may sit idle between the test's commands; the
         * thread ends when QEMU hangs up (the test stops it). */
        if (tlpb_reader_read_frame(&rd, fd, -1, &frame, &len, &reason) <= 0)
            break;
        Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
        if (!env) {
            CHECK(false, "coupled bridge: undecodable frame: %s", reason);
            break;
        }
        if (!have_hello) {
            have_hello = true;
            if (env->body_case == TLPB__ENVELOPE__BODY_HELLO) {
                cb->hello_offered_time =
                    (env->hello->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC) != 0;
                cb->hello_quantum_ps = env->hello->quantum_ps;
            }
            send_hello_reply(cb, fd, &ob);
            tlpb_envelope_free(env);
            continue;
        }
        switch (env->body_case) {
        case TLPB__ENVELOPE__BODY_TLP:
            serve_tlp(cb, fd, &ob, env->tlp, &busy_left, &doorbell_rung);
            break;
        case TLPB__ENVELOPE__BODY_RESET: {
            struct cb_record r = {.kind = CB_RESET, .stamp_ps = env->reset->sim_time_ps};
            record(&r);
            busy_left = cb->busy_grants;
            break;
        }
        case TLPB__ENVELOPE__BODY_TIME_SYNC: {
            const Tlpb__TimeSync *ts = env->time_sync;
            struct cb_record r = {.kind = CB_GRANT, .stamp_ps = ts->sim_time_ps,
                                  .sync_id = ts->sync_id, .until_ps = ts->grant_until_ps};
            record(&r);
            if (doorbell_rung) {
                doorbell_rung = false;
                if (tlpb_obuf_append_interrupt_at(&ob, TLPB__INTERRUPT_KIND__IRQ_MSIX, 0,
                                                  ts->grant_until_ps) != 0)
                    CHECK(false, "coupled bridge: cannot queue the interrupt");
            }
            if (busy_left > 0)
                busy_left--;
            Tlpb__TimeSync reached = TLPB__TIME_SYNC__INIT;
            reached.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
            reached.sync_id = ts->sync_id;
            reached.sim_time_ps = ts->grant_until_ps;
            reached.idle = busy_left == 0;
            Tlpb__Envelope out;
            tlpb_time_sync_envelope(&out, &reached);
            send_env(fd, &ob, &out);
            break;
        }
        default: {
            struct cb_record r = {.kind = CB_OTHER};
            record(&r);
            break;
        }
        }
        tlpb_envelope_free(env);
    }
    close(fd);
    tlpb_obuf_free(&ob);
    tlpb_reader_free(&rd);
    return NULL;
}

void cb_start(struct coupled_bridge *cb)
{
    cb_listen_fd = raw_listen(cb->socket_path);
    REQUIRE(pthread_create(&cb_thread, NULL, cb_run, cb) == 0, "pthread_create");
}

void cb_join(struct coupled_bridge *cb)
{
    /* Wakes an accept() still waiting (QEMU never connected). */
    shutdown(cb_listen_fd, SHUT_RDWR);
    pthread_join(cb_thread, NULL);
    close(cb_listen_fd);
    cb_listen_fd = -1;
    unlink(cb->socket_path);
}

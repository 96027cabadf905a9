/* libtlpbhost against a scripted bridge (a thread speaking the protocol by
 * hand), for what a real bridge does not do on cue:
 * - messages that arrive in the same read as the HelloReply are handled
 *   (an event saying a simulator is attached, with no more traffic after);
 * - a bridge that sends bytes that are not a message: the host drops the
 *   connection, the waiting read gets the fallback value, nothing crashes;
 * - a bridge that goes away while a read is outstanding;
 * - a bridge that refuses the handshake. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/wire.h"

enum script { SCRIPT_EVENT_WITH_REPLY, SCRIPT_JUNK, SCRIPT_VANISH, SCRIPT_REFUSE };

struct fake_bridge {
    int listen_fd;
    enum script script;
    bool hello_ok;
    bool got_request;
};

static void append(struct tlpb_obuf *ob, const Tlpb__Envelope *env)
{
    int rc = tlpb_obuf_append(ob, env, true);
    if (rc)
        it_fail_at(__FILE__, __LINE__, false, "fake bridge: cannot frame a message: %d", rc);
}

static void *fake_bridge_run(void *arg)
{
    struct fake_bridge *fb = arg;
    int fd = accept(fb->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct tlpb_frame_reader rd;
    tlpb_reader_init(&rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    Tlpb__Envelope *hello = raw_read_envelope(fd, &rd);
    fb->hello_ok = hello && hello->body_case == TLPB__ENVELOPE__BODY_HELLO &&
                   hello->hello->role == TLPB__ROLE__ROLE_HOST &&
                   strcmp(hello->hello->device_name, "dmacopy0") == 0;
    tlpb_envelope_free(hello);

    struct tlpb_devdesc_pb desc_pb;
    Tlpb__HelloReply hr;
    raw_hello_reply_init(&hr, &desc_pb, dmacopy_description());
    hr.accepted = fb->script != SCRIPT_REFUSE;
    hr.error = (char *)(fb->script == SCRIPT_REFUSE ? "this scripted bridge says no" : "");
    hr.backend = (char *)"fallback";
    Tlpb__Envelope reply = TLPB__ENVELOPE__INIT;
    reply.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    reply.hello_reply = &hr;

    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_HARD_MAX_FRAME_BYTES);
    append(&ob, &reply);
    if (fb->script == SCRIPT_EVENT_WITH_REPLY) {
        /* One write: the HelloReply and, right behind it, an event. */
        Tlpb__Event ev = TLPB__EVENT__INIT;
        ev.kind = TLPB__EVENT_KIND__EVENT_SIMULATOR_ATTACHED;
        ev.backend = (char *)"external";
        ev.detail = (char *)"scripted simulator attached";
        Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
        env.body_case = TLPB__ENVELOPE__BODY_EVENT;
        env.event = &ev;
        append(&ob, &env);
    }
    tlpb_obuf_write_all(&ob, fd);

    if (fb->script == SCRIPT_JUNK || fb->script == SCRIPT_VANISH) {
        Tlpb__Envelope *req = raw_read_envelope(fd, &rd);
        fb->got_request = req && req->body_case == TLPB__ENVELOPE__BODY_TLP &&
                          req->tlp->kind == TLPB__TLP_KIND__TLP_MRD;
        tlpb_envelope_free(req);
        if (fb->script == SCRIPT_JUNK) {
            static const uint8_t junk[] = {12, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
                                           0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
            ssize_t ignored = write(fd, junk, sizeof(junk));
            (void)ignored;
        } else {
            close(fd); /* gone, with the read unanswered */
            fd = -1;
        }
    }
    /* Wait for the host to hang up. */
    if (fd >= 0) {
        Tlpb__Envelope *more;
        while ((more = raw_read_envelope(fd, &rd)) != NULL)
            tlpb_envelope_free(more);
        close(fd);
    }
    tlpb_obuf_free(&ob);
    tlpb_reader_free(&rd);
    return NULL;
}

static struct fake_bridge fb;
static pthread_t fb_thread;
static struct dmacopy_fixture fx;

static void start_script(enum script script)
{
    fb.script = script;
    fb.hello_ok = fb.got_request = false;
    REQUIRE(pthread_create(&fb_thread, NULL, fake_bridge_run, &fb) == 0, "pthread_create");
    fx_open_ex(&fx, "dmacopy0", false, false);
}

static void end_script(void)
{
    fx_close(&fx);
    pthread_join(fb_thread, NULL);
}

static void case_event_with_reply(void)
{
    start_script(SCRIPT_EVENT_WITH_REPLY);
    CHECK(tlpb_host_connected(fx.host), "not connected to the scripted bridge");
    CHECK(tlpb_host_simulator_attached(fx.host),
          "the event that came with the HelloReply was not handled");
    CHECK(fx.link_sim_attached, "link_changed did not report the attached simulator");
    end_script();
    CHECK(fb.hello_ok, "the host's Hello was not a host Hello for dmacopy0");
}

static void case_junk(void)
{
    start_script(SCRIPT_JUNK);
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR, &v, 4);
    CHECK(rc == -ENOTCONN && v == 0xFFFFFFFFu, "read answered by junk: rc %d value 0x%x", rc, v);
    CHECK(!tlpb_host_connected(fx.host), "still connected after junk from the bridge");
    end_script();
    CHECK(fb.got_request, "the scripted bridge never saw the read");
}

static void case_vanish(void)
{
    start_script(SCRIPT_VANISH);
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR, &v, 4);
    CHECK(rc == -ENOTCONN && v == 0xFFFFFFFFu, "read with the bridge gone: rc %d value 0x%x", rc, v);
    struct tlpb_host_stats st;
    tlpb_host_get_stats(fx.host, &st);
    CHECK(st.fallback_reads == 1, "fallback_reads %llu", (unsigned long long)st.fallback_reads);
    end_script();
}

static void case_refuse(void)
{
    start_script(SCRIPT_REFUSE);
    CHECK(!tlpb_host_connected(fx.host), "connected although the bridge refused");
    uint32_t v = 0;
    int rc = tlpb_host_config_read(fx.host, 0, &v);
    CHECK(rc == -ENOTCONN && v == 0xFFFFFFFFu, "config read after a refusal: rc %d 0x%x", rc, v);
    end_script();
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_host_fake_bridge");
    fx_reconnect_interval_ms = 600000; /* one connection per script */
    fb.listen_fd = raw_listen(it.socket_path);

    IT_RUN("messages that came with the HelloReply", case_event_with_reply());
    IT_RUN("junk from the bridge during a read", case_junk());
    IT_RUN("the bridge vanishes during a read", case_vanish());
    IT_RUN("the bridge refuses the handshake", case_refuse());

    close(fb.listen_fd);
    return it_finish();
}

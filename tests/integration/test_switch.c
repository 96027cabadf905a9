/* `tlpbctl switch` in the middle of a 1 MiB copy (docs/bridge.md, "Backends
 * and switching"): the switch completes or abandons what the old backend had
 * outstanding, says so (a log line and the Event's detail), resets the old
 * backend, and the new one starts from reset with the host's config state
 * replayed. Nothing is left hanging: the host's late DMA completions are
 * discarded without an error, the new backend reads reset values (SCRATCH
 * too, also after fallback and back) and runs a full copy.
 *
 * Directions, each switch made from inside the host's DMA service while the
 * copy runs: external -> hlsim, hlsim -> fallback -> hlsim, hlsim ->
 * external. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"

#define COPY_BYTES (1024u * 1024u)
#define SCRATCH_MARK 0x5CA7C401u

static struct dmacopy_fixture fx;
static const char *switch_to;    /* the backend the hook switches to */
static bool switched;

/* Called by the fixture after each DMA read it served: the first time, the
 * copy is under way with reads outstanding; switch there. */
static void switch_hook(struct dmacopy_fixture *f)
{
    (void)f;
    if (switched || !switch_to)
        return;
    switched = true;
    bool ok = false;
    const char *args[] = {"dmacopy0", switch_to, NULL};
    char *reply = it_control("switch", args, &ok);
    CHECK(ok && reply && strcmp(reply, switch_to) == 0, "switch to %s during a copy: '%s'",
          switch_to, reply ? reply : "(no reply)");
    free(reply);
}

/* Serve the device until the host has seen `target` link events (the
 * bridge's Event for a switch); bounded. */
static bool serve_until_events(unsigned target)
{
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (fx.link_events < target) {
        uint64_t now = it_now_ms();
        if (now >= deadline)
            return false;
        int rc = tlpb_host_wait(fx.host, (int)(deadline - now > 1000 ? 1000 : deadline - now));
        if (rc < 0 && rc != -EINTR)
            return false;
        it_check_children();
    }
    return true;
}

static unsigned long long device_counter(const char *key, char *backend, size_t backend_size)
{
    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *dev = status ? it_json_device(status, "dmacopy0") : NULL;
    unsigned long long n = 0;
    CHECK(ok && dev && it_json_uint(dev, key, &n), "status lacks %s", key);
    if (backend && dev)
        it_json_str(dev, "backend", backend, backend_size);
    free(status);
    return n;
}

/* How many times needle is in the bridge's log. */
static unsigned log_count(const char *needle)
{
    char *log = it_read_log(it.bridge);
    unsigned n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* A backend that has just become active, as the host sees it. */
static void check_from_reset(const char *backend, const char *what)
{
    if (strcmp(backend, "fallback") == 0) {
        /* The fallback has no registers: reads complete all-ones. */
        CHECK_EQ_U64(fx_rd32(&fx, REG_ID), 0xFFFFFFFFu, "ID on the fallback");
        CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0xFFFFFFFFu, "SCRATCH on the fallback");
        return;
    }
    printf("  checking %s registers after %s\n", backend, what);
    CHECK_EQ_U64(fx_rd32(&fx, REG_ID), 0x7A110001u, "ID after the switch");
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0, "SCRATCH after the switch (reset value)");
    CHECK_EQ_U64(fx_rd32(&fx, REG_STATUS), 0, "STATUS after the switch (not busy, not halted)");
    CHECK_EQ_U64(fx_rd32(&fx, REG_ERR_CODE), 0, "ERR_CODE after the switch");
    CHECK_EQ_U64(fx_rd32(&fx, REG_COMPLETED), 0, "COMPLETED after the switch");
    CHECK_EQ_U64(fx_rd32(&fx, REG_CTRL) & CTRL_ENABLE, 0, "CTRL.ENABLE after the switch");
}

/* Start a 1 MiB copy on the current backend and switch to `to` while it
 * runs. */
static void switch_during_copy(const char *from, const char *to)
{
    char what[96];
    snprintf(what, sizeof(what), "switch %s -> %s during a copy", from, to);
    fx_wr32(&fx, REG_SCRATCH, SCRATCH_MARK);
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), SCRATCH_MARK, "SCRATCH before the switch");
    unsigned long long rejected_before = device_counter("rejected_tlps", NULL, 0);
    char reset_line[160], event_line[160];
    snprintf(reset_line, sizeof(reset_line),
             "the %s backend stops serving (the backend was switched), reset; ", from);
    snprintf(event_line, sizeof(event_line), "switched from %s; the device starts from reset", from);
    unsigned resets_before = log_count(reset_line), events_before = log_count(event_line);

    memset(fx.ram + SRC_OFF, 0xA5, COPY_BYTES);
    memset(fx.ram + DST_OFF, 0x00, COPY_BYTES);
    unsigned index = fx_post(&fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, COPY_BYTES,
                             DESC_FLAG_IRQ);
    unsigned events = fx.link_events;
    switch_to = to;
    switched = false;
    fx.dma_read_hook = switch_hook;
    fx_doorbell(&fx);
    bool seen = serve_until_events(events + 1);
    fx.dma_read_hook = NULL;
    switch_to = NULL;
    REQUIRE(switched, "%s: the copy made no DMA read", what);
    REQUIRE(seen, "%s: the host got no Event for the switch", what);

    /* A register read completes after everything the host had before it,
     * including its completions for the old backend's DMA reads. */
    check_from_reset(to, what);

    char backend[32] = "";
    unsigned long long rejected = device_counter("rejected_tlps", backend, sizeof(backend));
    CHECK(strcmp(backend, to) == 0, "%s: backend is '%s'", what, backend);
    CHECK(rejected == rejected_before,
          "%s: the bridge rejected %llu TLPs from the host (its late DMA completions)", what,
          rejected - rejected_before);

    /* Nothing half-done unreported: the switch says, every time, that the
     * old backend was reset and how many of its DMA reads were abandoned,
     * and the host's Event says the device starts from reset. Either the
     * copy finished before the switch or it is not marked done. */
    CHECK(log_count(reset_line) == resets_before + 1, "%s: the log lacks a new \"%s\"", what,
          reset_line);
    CHECK(log_count(event_line) == events_before + 1, "%s: no new Event \"%s\"", what,
          event_line);
    uint32_t status = fx_desc_status(&fx, index);
    CHECK(status == 0 || status == DESC_DONE, "%s: descriptor status 0x%x", what, status);
    if (status == DESC_DONE)
        CHECK(memcmp(fx.ram + SRC_OFF, fx.ram + DST_OFF, COPY_BYTES) == 0,
              "%s: a copy marked done with wrong data", what);
}

/* Switch outside a copy and wait for the host to hear of it. */
static void switch_now(const char *to)
{
    unsigned events = fx.link_events;
    bool ok = false;
    const char *args[] = {"dmacopy0", to, NULL};
    char *reply = it_control("switch", args, &ok);
    CHECK(ok, "switch to %s: '%s'", to, reply ? reply : "(no reply)");
    free(reply);
    CHECK(serve_until_events(events + 1), "no Event for the switch to %s", to);
}

static void copy_works(const char *on)
{
    char what[64];
    snprintf(what, sizeof(what), "1 MiB copy on %s after the switch", on);
    fx_reset_engine(&fx, 64);
    fx_copy(&fx, SRC_OFF, DST_OFF, COPY_BYTES, what);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_switch");
    REQUIRE(it_paths.model != NULL, "--model is required");
    char dev[1200];
    snprintf(dev, sizeof(dev), "dmacopy0:external=%s", it_paths.model);
    const char *args[] = {"--device", dev, NULL};
    it_start_bridge(args);
    fx_open(&fx, "dmacopy0", false);
    it_start_sim("dmacopy0", false);
    fx_wait_attached(&fx, true);
    fx_enumerate(&fx);
    fx_init_device(&fx);

    IT_RUN("external -> hlsim during a copy", {
        switch_during_copy("external", "hlsim");
        copy_works("hlsim");
    });
    IT_RUN("hlsim -> fallback -> hlsim during a copy", {
        switch_during_copy("hlsim", "fallback");
        switch_now("hlsim");
        check_from_reset("hlsim", "fallback and back");
        copy_works("hlsim");
    });
    IT_RUN("hlsim -> external during a copy", {
        switch_during_copy("hlsim", "external");
        copy_works("external");
    });

    /* Every completion the bridge built passed its own validator. */
    CHECK(!it_log_contains(it.bridge, "internal error"), "the bridge built a completion it rejects");
    fx_close(&fx);
    return it_finish();
}

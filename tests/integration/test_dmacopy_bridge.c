/* The dmacopy suite through a real tlpbridged:
 *   --mode inproc       model loaded in the bridge, strict DMA
 *   --mode inproc-fast  model loaded in the bridge, fast (unsplit) DMA
 *   --mode external     model in its own hlsim-run process, strict DMA
 *   --mode external-fast  the same with hlsim-run --fast-dma
 *   --mode inproc-tcp   model loaded in the bridge, the host over TCP (loopback)
 *   --mode rtl          the Verilog dmacopy in its Verilator simulator (the
 *                       executable named by TLPB_IT_RTL_SIM), strict DMA
 * On the unix socket the host's guest RAM is a memfd shared with the bridge,
 * which serves the DMA from it (the default, as with QEMU); "-msg" appended
 * (inproc-msg, external-fast-msg) keeps it private: every DMA a message.
 * With shared memory, external-fast's hlsim-run gets the map too and copies
 * in guest memory itself (no DMA crosses the bridge; afterwards the host
 * disconnects and reconnects: the map is withdrawn, then shared again);
 *   --mode external-fast-nodirect  hlsim-run --no-guest-memory: the bridge
 *                         serves its DMA from the shared memory instead
 *   --mode inproc-socket  the unix socket with neither shared memory nor the
 *                         ring (TLPB_RING=off): everything on the socket */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"

/* Status until the device's simulator_guest_memory is want (a host's
 * disconnect reaches the bridge on its own time). */
static bool wait_simulator_guest_memory(struct dmacopy_fixture *fx, bool want)
{
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (it_status_bool(fx->device, "simulator_guest_memory") != want) {
        if (it_now_ms() >= deadline)
            return false;
        poll(NULL, 0, 1);
    }
    return true;
}

/* The host goes away and comes back: the simulator's map is withdrawn, then
 * shared again, and its DMA is still right (and still direct). */
static void case_host_reconnect(struct dmacopy_fixture *fx)
{
    fx_close(fx);
    CHECK(wait_simulator_guest_memory(fx, false),
          "the simulator kept guest memory after the host left");
    fx_open(fx, "dmacopy0", true);
    REQUIRE(fx_wait_attached(fx, true), "no simulator after the host reconnected");
    fx_enumerate(fx);
    fx_init_device(fx);
    CHECK(wait_simulator_guest_memory(fx, true),
          "the simulator did not get the reconnected host's guest memory");
    fx_copy(fx, SRC_OFF + 0x10, DST_OFF + 0x20, 256u * 1024u, "256 KiB copy after reconnect");
    CHECK(fx->dma_read_requests == 0, "%llu DMA reads reached the host after reconnect",
          (unsigned long long)fx->dma_read_requests);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_dmacopy_bridge");
    const char *full_mode = it_paths.mode ? it_paths.mode : "inproc";
    char mode[64];
    snprintf(mode, sizeof(mode), "%s", full_mode);
    size_t mode_len = strlen(mode);
    bool msg = mode_len > 4 && strcmp(mode + mode_len - 4, "-msg") == 0;
    if (msg)
        mode[mode_len - 4] = '\0';
    bool rtl = strcmp(mode, "rtl") == 0;
    bool external = strncmp(mode, "external", 8) == 0 || rtl;
    bool fast = strstr(mode, "-fast") != NULL;
    /* hlsim-run without CAP_GUEST_MEMORY: the bridge serves its DMA. */
    bool nodirect = strcmp(mode, "external-fast-nodirect") == 0;
    bool tcp = strcmp(mode, "inproc-tcp") == 0;
    /* The unix socket without the shared-memory ring (TLPB_RING=off). */
    bool socket_only = strcmp(mode, "inproc-socket") == 0;
    bool shm = !msg && !tcp && !socket_only;
    fx_guest_memory = shm;
    fx_sim_direct = shm && fast && external && !rtl && !nodirect;
    if (socket_only)
        setenv("TLPB_RING", "off", 1);
    if (strcmp(mode, "inproc") != 0 && strcmp(mode, "inproc-fast") != 0 && !tcp && !socket_only &&
        strcmp(mode, "external") != 0 && strcmp(mode, "external-fast") != 0 && !nodirect && !rtl) {
        fprintf(stderr, "unknown --mode %s\n", full_mode);
        return 2;
    }
    REQUIRE(it_paths.model != NULL, "--model not given");
    /* The bridge takes the device description from the C model; the RTL
     * simulator must announce the same one to attach. */
    const char *rtl_sim = getenv("TLPB_IT_RTL_SIM");
    if (rtl)
        REQUIRE(rtl_sim && *rtl_sim, "--mode rtl needs TLPB_IT_RTL_SIM (the simulator executable)");
    REQUIRE(!(shm && tcp), "guest memory is shared only over the unix socket");
    printf("mode %s: dmacopy %s, %s DMA%s\n", full_mode,
           rtl ? "in RTL (Verilator simulator process)"
           : external ? "in its own hlsim-run process" : "loaded in the bridge",
           fast ? "fast (unsplit)" : "strict", shm ? ", guest RAM shared with the bridge" : "");

    char device_arg[1200];
    snprintf(device_arg, sizeof(device_arg), "dmacopy0:%s=%s", external ? "external" : "hlsim",
             it_paths.model);
    const char *args[] = {"--device", device_arg, "--dma", fast ? "fast" : "strict",
                          tcp ? "--tcp" : NULL, "127.0.0.1:0", NULL};
    struct it_child *bridge = it_start_bridge(args);
    char tcp_address[96];
    if (tcp) {
        /* The bridge logs the port the kernel chose before it reports ready. */
        char *log = it_read_log(bridge);
        const char *at = log ? strstr(log, "listening on tcp:127.0.0.1:") : NULL;
        REQUIRE(at != NULL, "the bridge did not log its TCP port");
        int port = atoi(at + strlen("listening on tcp:127.0.0.1:"));
        free(log);
        REQUIRE(port > 0 && port < 65536, "bad TCP port %d", port);
        snprintf(tcp_address, sizeof(tcp_address), "tcp:127.0.0.1:%d", port);
        fx_bridge_address = tcp_address;
        printf("host connects to %s\n", tcp_address);
    }
    if (rtl) {
        /* a child of the harness like hlsim-run: stopped with SIGTERM at the
         * end, which it must survive with exit status 0 */
        const char *sim_argv[] = {rtl_sim, "--socket", it.socket_path, "--device", "dmacopy0",
                                  NULL};
        it_start_child("rtl-sim", sim_argv);
    } else if (nodirect) {
        REQUIRE(it_paths.sim != NULL, "--hlsim-run not given");
        const char *sim_argv[] = {it_paths.sim, "--socket", it.socket_path, "--device", "dmacopy0",
                                  "--model", it_paths.model, "--fast-dma", "--no-guest-memory",
                                  NULL};
        it_start_child("hlsim-run", sim_argv);
    } else if (external) {
        it_start_sim("dmacopy0", fast);
    }

    struct dmacopy_fixture fx;
    fx_open(&fx, "dmacopy0", fast);
    if (external)
        REQUIRE(fx_wait_attached(&fx, true), "%s never attached", rtl ? "the RTL simulator" : "hlsim-run");
    CHECK(tlpb_host_simulator_attached(fx.host), "no simulator attached at the start");

    /* The configuration says which DMA mode is in force. */
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    CHECK(ok && status, "control status failed");
    const char *dev = it_json_device(status, "dmacopy0");
    CHECK(dev != NULL, "status has no dmacopy0: %s", status ? status : "(none)");
    char text[64];
    if (!external) {
        CHECK(it_json_str(dev, "dma", text, sizeof(text)) && strcmp(text, fast ? "fast" : "strict") == 0,
              "status dma is '%s'", text);
    }
    CHECK(it_json_str(dev, "backend", text, sizeof(text)) &&
              strcmp(text, external ? "external" : "hlsim") == 0,
          "status backend is '%s'", text);
    free(status);

    /* On the unix socket every message goes through the shared-memory ring
     * unless it is turned off; over TCP there is none. */
    struct tlpb_host_stats hst;
    tlpb_host_get_stats(fx.host, &hst);
    bool want_ring = !tcp && !socket_only;
    CHECK(hst.ring_active == want_ring, "the host %s the shared-memory ring",
          hst.ring_active ? "uses" : "does not use");

    dmacopy_suite_run(&fx);

    /* Only a fast simulator that asked for it has the guest's memory. */
    if (shm)
        CHECK(it_status_bool(fx.device, "simulator_guest_memory") == fx_sim_direct,
              "status simulator_guest_memory is not %s", fx_sim_direct ? "true" : "false");
    if (fx_sim_direct)
        IT_RUN("host reconnects: guest memory withdrawn and shared again",
               case_host_reconnect(&fx));

    fx_close(&fx);
    return it_finish();
}

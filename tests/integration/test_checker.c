/* The bridge's PCIe checker (docs/checker.md) against a running tlpbridged,
 * with a raw simulator and a raw host of an external device: for each rule,
 * one case breaks exactly that rule on a device of its own and checks that
 * the status counts it once and nothing else, and that the log names it
 * (the trace has the violation record for one rule); the rules the bridge
 * refuses before the checker (its validator: crosses_4k,
 * cpl_status_with_data, cpl_length; its interrupt check: msix_vector_range)
 * are counted as the rule too, with their trace records, the refusal
 * handled as before and the other devices still served; then the policies:
 * reject answers a violating host request with UR and counts it in
 * rejected_tlps; stop puts the device on the fallback (reads all ones)
 * while another device keeps working. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "checker_pair.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"
#include "tlpb/wire.h"

#define BDF CHECKER_PAIR_BDF
#define HOST_MEM CHECKER_PAIR_HOST_MEM

/* The device's status object (malloc'd reply in *json). */
static const char *device_status(const char *dev, char **json)
{
    bool ok = false;
    *json = it_control("status", NULL, &ok);
    const char *obj = *json && ok ? it_json_device(*json, dev) : NULL;
    CHECK(obj != NULL, "status lacks device %s", dev);
    return obj;
}

/* ---- device requests ---------------------------------------------------- */

/* The simulator sends req; the host gets it; a read is answered with UR
 * (the checker's request then completes). */
static void device_request(struct checker_pair *p, struct tlpb_tlp *req)
{
    raw_send_tlp(&p->s, req);
    struct tlpb_tlp got;
    static uint8_t data[4096];
    bool ok = raw_recv_tlp(&p->h, &got, data, sizeof(data));
    CHECK(ok && got.kind == req->kind, "%s: the host did not get the %s", p->dev,
          tlpb_tlp_kind_name(req->kind));
    if (ok && got.kind == TLPB_TLP_MRD) {
        struct tlpb_tlp cpl;
        tlpb_completion_error_for(&cpl, &got, 0, TLPB_CPL_UR);
        raw_send_tlp(&p->h, &cpl);
        struct tlpb_tlp back;
        CHECK(raw_sim_recv_tlp(&p->s, BDF, &back, data, sizeof(data)) && back.status == TLPB_CPL_UR,
              "%s: the UR did not reach the simulator", p->dev);
    }
}

static void case_mwr_exceeds_mps(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_mps", 0x6);
    struct tlpb_tlp t;
    checker_device_write(&t, HOST_MEM, 512, 0); /* MPS is 128 bytes after reset */
    device_request(&p, &t);
    checker_expect_only("c_mps", "mwr_exceeds_mps");
    checker_pair_close(&p);
}

static void case_mrd_exceeds_mrrs(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_mrrs", 0x6);
    struct tlpb_tlp t;
    checker_device_read(&t, HOST_MEM, 1024, 5, 0); /* MRRS is 512 bytes after reset */
    device_request(&p, &t);
    checker_expect_only("c_mrrs", "mrd_exceeds_mrrs");
    checker_pair_close(&p);
}

static void case_bus_master_disabled(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_bme", 0x2); /* memory space only */
    struct tlpb_tlp t;
    checker_device_write(&t, HOST_MEM, 4, 0);
    device_request(&p, &t);
    checker_expect_only("c_bme", "bus_master_disabled");
    checker_pair_close(&p);
}

static void case_requester_id(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_rid", 0x6);
    struct tlpb_tlp t;
    checker_device_write(&t, HOST_MEM, 4, 0);
    t.requester_id = 0x0200; /* not the device's 01:00.0 */
    device_request(&p, &t);
    checker_expect_only("c_rid", "requester_id");
    checker_pair_close(&p);
}

/* ---- completions to host requests ----------------------------------------- */

/* The host reads bytes at BAR0; returns the request as the simulator got
 * it (bridge tag). */
static bool host_read(struct checker_pair *p, uint32_t bytes, uint8_t tag, struct tlpb_tlp *at_sim)
{
    struct tlpb_tlp rd;
    checker_host_read(&rd, bytes, tag, 0);
    raw_send_tlp(&p->h, &rd);
    static uint8_t data[64];
    bool ok = raw_sim_recv_tlp(&p->s, BDF, at_sim, data, sizeof(data));
    CHECK(ok && at_sim->kind == TLPB_TLP_MRD, "%s: the simulator did not get the MRd", p->dev);
    return ok && at_sim->kind == TLPB_TLP_MRD;
}

/* A 4-byte host read of BAR0 (tag): the value, and the status in *status. */
static uint32_t read_bar0(struct raw *h, uint8_t tag, enum tlpb_cpl_status *status)
{
    struct tlpb_tlp rd;
    checker_host_read(&rd, 4, tag, 0);
    raw_send_tlp(h, &rd);
    struct tlpb_tlp cpl;
    uint8_t data[8];
    *status = (enum tlpb_cpl_status)-1;
    if (!raw_recv_tlp(h, &cpl, data, sizeof(data)))
        return 0;
    *status = cpl.status;
    return cpl.payload_bytes >= 4 ? tlpb_get_le32(cpl.payload) : 0;
}

/* A 4-byte host read of BAR0 (tag) is served by p's simulator: the
 * host gets the value the simulator returns. */
static void expect_served(struct checker_pair *p, uint8_t tag)
{
    struct tlpb_tlp req;
    if (!host_read(p, 4, tag, &req))
        return;
    static const uint8_t value[4] = {0x78, 0x56, 0x34, 0x12};
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, &req, BDF, req.address, 4, 4);
    cpl.payload = value;
    raw_send_tlp(&p->s, &cpl);
    struct tlpb_tlp got;
    uint8_t buf[8];
    CHECK(raw_recv_tlp(&p->h, &got, buf, sizeof(buf)) && got.tag == tag &&
              got.payload_bytes >= 4 && tlpb_get_le32(got.payload) == 0x12345678u,
          "%s: the host's read was not served by its simulator", p->dev);
}

/* The trace has dev's violation record of rule, as tlpbtrace prints it. */
static void expect_trace_violation(const char *dev, const char *rule)
{
    const char *args[] = {"--device", dev, it_path("checker.trace"), NULL};
    char *out = NULL, *err = NULL;
    CHECK(it_trace_tool(args, &out, &err) == 0, "tlpbtrace: %s", err ? err : "");
    char needle[96];
    snprintf(needle, sizeof(needle), "violation of %s:", rule);
    const char *viol = out ? strstr(out, " VIOL ") : NULL;
    CHECK(viol && strstr(out, needle) && !strstr(viol + 1, " VIOL "),
          "the trace of %s lacks its one violation record, of %s: %s", dev, rule,
          out ? out : "");
    free(out);
    free(err);
}

static void case_memory_space_disabled(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_mse", 0x4); /* bus master only */
    struct tlpb_tlp req;
    if (host_read(&p, 4, 7, &req)) {
        static const uint8_t data[4];
        struct tlpb_tlp cpl;
        tlpb_completion_for(&cpl, &req, BDF, req.address, 4, 4);
        cpl.payload = data;
        raw_send_tlp(&p.s, &cpl);
        struct tlpb_tlp got;
        uint8_t buf[8];
        CHECK(raw_recv_tlp(&p.h, &got, buf, sizeof(buf)) && got.tag == 7,
              "no completion to the host");
    }
    checker_expect_only("c_mse", "memory_space_disabled");
    checker_pair_close(&p);
}

/* A completion the simulator builds for a 8-byte host read, altered by
 * change; the host gets it or not (not waited for). */
static void bad_completion(const char *dev, void (*change)(struct tlpb_tlp *cpl), const char *rule)
{
    struct checker_pair p;
    checker_pair_open(&p, dev, 0x6);
    struct tlpb_tlp req;
    if (host_read(&p, 8, 8, &req)) {
        static const uint8_t data[16];
        struct tlpb_tlp cpl;
        tlpb_completion_for(&cpl, &req, BDF, req.address, 8, 8);
        cpl.payload = data;
        change(&cpl);
        raw_send_tlp(&p.s, &cpl);
        /* Delivered (policy warn): the bridge has checked it. */
        checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_TLP, "completion to the host");
    }
    checker_expect_only(dev, rule);
    checker_pair_close(&p);
}

static void wrong_completer(struct tlpb_tlp *c) { c->completer_id = 0x0300; }
static void wrong_byte_count(struct tlpb_tlp *c) { c->byte_count = 12; }
static void wrong_lower_address(struct tlpb_tlp *c) { c->lower_address = 4; }

static void case_completer_id(void) { bad_completion("c_cid", wrong_completer, "completer_id"); }
static void case_cpl_byte_count(void) { bad_completion("c_bc", wrong_byte_count, "cpl_byte_count"); }
static void no_data(struct tlpb_tlp *c)
{
    c->kind = TLPB_TLP_CPL; /* SC without data: the read ends with nothing */
    c->length_dw = 0;
    c->payload = NULL;
    c->payload_bytes = 0;
}
static void case_cpl_length(void) { bad_completion("c_nodata", no_data, "cpl_length"); }
static void case_cpl_lower_address(void)
{
    bad_completion("c_la", wrong_lower_address, "cpl_lower_address");
}

/* A 256-byte host read at BAR0 (MPS is 128), completed by the simulator
 * in pieces of the sizes given (0-terminated, adding up to 256). */
static void read_in_pieces(const char *dev, const uint32_t *pieces, const char *rule)
{
    struct checker_pair p;
    checker_pair_open(&p, dev, 0x6);
    struct tlpb_tlp req;
    if (host_read(&p, 256, 12, &req)) {
        static const uint8_t data[256];
        for (uint32_t done = 0, i = 0; pieces[i]; i++) {
            uint32_t n = pieces[i];
            struct tlpb_tlp cpl;
            tlpb_completion_for(&cpl, &req, BDF, req.address + done, n, 256 - done);
            cpl.payload = data;
            raw_send_tlp(&p.s, &cpl);
            checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_TLP, "completion to the host");
            done += n;
        }
    }
    checker_expect_only(dev, rule);
    checker_pair_close(&p);
}

static void case_cpl_exceeds_mps(void)
{
    static const uint32_t whole[] = {256, 0};
    read_in_pieces("c_cmps", whole, "cpl_exceeds_mps");
}

static void case_cpl_rcb(void)
{
    /* 36 bytes end off the 64-byte boundary; the next piece realigns. */
    static const uint32_t pieces[] = {36, 92, 128, 0};
    read_in_pieces("c_rcb", pieces, "cpl_rcb");
}

static void case_unexpected_completion(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_unexp", 0x6);
    /* A completion for a DMA read the device never sent, from the host. */
    struct tlpb_tlp req, cpl;
    checker_device_read(&req, HOST_MEM, 4, 40, 0);
    tlpb_completion_error_for(&cpl, &req, 0, TLPB_CPL_UR);
    raw_send_tlp(&p.h, &cpl);
    checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_ERROR, "Error for the unmatched completion");
    checker_expect_only("c_unexp", "unexpected_completion");
    checker_pair_close(&p);
}

static void case_cpl_after_last_byte(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_after", 0x6);
    struct tlpb_tlp t;
    checker_device_read(&t, HOST_MEM, 4, 41, 0);
    device_request(&p, &t); /* answered with UR: complete */
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, &t, 0, TLPB_CPL_UR);
    raw_send_tlp(&p.h, &cpl); /* once more */
    checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_ERROR, "Error for the extra completion");
    checker_expect_only("c_after", "cpl_after_last_byte");
    checker_pair_close(&p);
}

static void case_completion_timeout(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_cto", 0x6);
    struct tlpb_tlp t;
    checker_device_read(&t, HOST_MEM, 4, 42, 0);
    raw_send_tlp(&p.s, &t);
    struct tlpb_tlp got;
    uint8_t data[8];
    CHECK(raw_recv_tlp(&p.h, &got, data, sizeof(data)) && got.kind == TLPB_TLP_MRD,
          "the host did not get the MRd");
    /* The host never answers: the checker reports it from the device's
     * timer (c_cto's timeout is 100 ms); polled through status, bounded. */
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    unsigned long long total = 0;
    unsigned long long of_rule = 0;
    while (total == 0 && it_now_ms() < deadline)
        if (!checker_counts("c_cto", NULL, &total, &of_rule))
            break;
    checker_expect_only("c_cto", "completion_timeout");
    checker_pair_close(&p);
}

/* ---- interrupts ------------------------------------------------------------ */

static void send_irq(struct checker_pair *p, Tlpb__InterruptKind kind, uint32_t vector)
{
    Tlpb__Interrupt irq;
    Tlpb__Envelope env;
    tlpb_interrupt_envelope(&env, &irq, kind, vector);
    raw_send_env(&p->s, &env);
}

static void case_msix_disabled(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_msix", 0x6); /* MSI-X never enabled */
    send_irq(&p, TLPB__INTERRUPT_KIND__IRQ_MSIX, 0);
    checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_INTERRUPT, "MSI-X to the host");
    checker_expect_only("c_msix", "msix_disabled");
    checker_pair_close(&p);
}

static void case_intx_disabled(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_intx", 0x6 | 0x400); /* Interrupt Disable */
    send_irq(&p, TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT, 0);
    checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_INTERRUPT, "INTx to the host");
    checker_expect_only("c_intx", "intx_disabled");
    checker_pair_close(&p);
}

/* c_msi and c_msi2 are described with 4 MSI vectors (the raw simulator's
 * description has none: the bridge matches BARs and MSI-X only), so the
 * bridge takes IRQ_MSI for vectors 0..3 and the checker decides. */
#define MSI_CONTROL_DW TLPB_CFG_MSI_CAP /* ID, next, Message Control (31:16) */

static void case_msi_disabled(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_msi", 0x6); /* MSI never enabled */
    send_irq(&p, TLPB__INTERRUPT_KIND__IRQ_MSI, 0);
    checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_INTERRUPT, "MSI to the host");
    checker_expect_only("c_msi", "msi_disabled");
    checker_pair_close(&p);
}

static void case_msi_vector_range(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_msi2", 0x6);
    /* MSI Enable, Multiple Message Enable 0: one vector granted of four. */
    raw_cfg_write(&p.h, BDF, MSI_CONTROL_DW, 1u << 16, 0xF, 4);
    send_irq(&p, TLPB__INTERRUPT_KIND__IRQ_MSI, 2);
    checker_wait_message(&p.h, TLPB__ENVELOPE__BODY_INTERRUPT, "MSI to the host");
    checker_expect_only("c_msi2", "msi_vector_range");
    checker_pair_close(&p);
}

/* ---- rules the bridge refuses before the checker -------------------------- */

/* A device of the same bridge that breaks nothing, served throughout. */
static struct checker_pair bystander;

/* The simulator's TLP is refused as before (an Error to it; the connection
 * goes on), and counted, logged and traced as the rule it breaks. */
static void refused_tlp(struct checker_pair *p, const struct tlpb_tlp *tlp, const char *rule)
{
    raw_send_tlp(&p->s, tlp);
    checker_wait_message(&p->s, TLPB__ENVELOPE__BODY_ERROR, "Error for the refused TLP");
    checker_expect_only(p->dev, rule);
    expect_trace_violation(p->dev, rule);
}

static void case_refused_crosses_4k(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_4k", 0x6);
    struct tlpb_tlp t;
    checker_device_write(&t, HOST_MEM + 0xff8, 16, 0); /* 8 bytes each side of a 4 KiB line */
    refused_tlp(&p, &t, "crosses_4k");
    expect_served(&p, 20);
    expect_served(&bystander, 21);
    checker_expect_only("c_4k", "crosses_4k");
    checker_pair_close(&p);
}

/* The simulator answers an 8-byte host read first with the completion
 * change makes of the right one (refused), then with the right one, which
 * the host gets. */
static void refused_completion(const char *dev, void (*change)(struct tlpb_tlp *cpl),
                               const char *rule)
{
    struct checker_pair p;
    checker_pair_open(&p, dev, 0x6);
    struct tlpb_tlp req;
    if (host_read(&p, 8, 22, &req)) {
        static const uint8_t data[16] = {1, 2, 3, 4, 5, 6, 7, 8};
        struct tlpb_tlp cpl;
        tlpb_completion_for(&cpl, &req, BDF, req.address, 8, 8);
        cpl.payload = data;
        struct tlpb_tlp bad = cpl;
        change(&bad);
        refused_tlp(&p, &bad, rule);
        /* Reported under the host's tag, as the checker's own. */
        CHECK(checker_log_names(dev, "tag 0x16"), "%s: the checker line lacks the host's tag 22",
              dev);
        raw_send_tlp(&p.s, &cpl);
        struct tlpb_tlp got;
        uint8_t buf[16];
        CHECK(raw_recv_tlp(&p.h, &got, buf, sizeof(buf)) && got.tag == 22 &&
                  got.status == TLPB_CPL_SC && got.payload_bytes == 8 &&
                  memcmp(got.payload, data, 8) == 0,
              "%s: the host did not get the right completion after the refused one", dev);
    }
    expect_served(&bystander, 23);
    checker_expect_only(dev, rule);
    checker_pair_close(&p);
}

static void data_with_ur(struct tlpb_tlp *c) { c->status = TLPB_CPL_UR; }
static void data_past_byte_count(struct tlpb_tlp *c)
{
    c->length_dw = 3; /* 8 bytes from offset 0 need 2 DWs */
    c->payload_bytes = 12;
}

static void case_refused_cpl_status_with_data(void)
{
    refused_completion("c_cplst", data_with_ur, "cpl_status_with_data");
}

static void case_refused_cpl_length(void)
{
    refused_completion("c_cpllen", data_past_byte_count, "cpl_length");
}

/* dev's simulator sends an MSI-X vector the device does not have, with
 * MSI-X enabled (only the vector breaks a rule). */
static void refused_msix_vector(const char *dev, uint8_t bystander_tag)
{
    struct checker_pair p;
    checker_pair_open_cfg(&p, dev, 0x6, TLPB_CFG_MSIX_CAP, 0x8000u << 16);
    send_irq(&p, TLPB__INTERRUPT_KIND__IRQ_MSIX, 5); /* the device has 2 */
    /* A protocol error as before: an Error, then the connection ends. */
    CHECK(raw_expect_dropped(&p.s) && p.s.errors_seen == 1 &&
              strstr(p.s.last_error, "IRQ_MSIX vector 5"),
          "%s: the simulator was not dropped with one Error naming the vector (%u: %s)", dev,
          p.s.errors_seen, p.s.last_error);
    checker_expect_only(dev, "msix_vector_range");
    expect_trace_violation(dev, "msix_vector_range");
    expect_served(&bystander, bystander_tag);
    checker_pair_close(&p);
}

static void case_refused_msix_vector_range(void)
{
    refused_msix_vector("c_msixv", 24);
}

/* Under reject the refusal is the rejection (counted once in
 * rejected_tlps); under stop the device goes to the fallback. */
static void case_refused_policies(void)
{
    struct checker_pair p;
    struct tlpb_tlp t;
    checker_pair_open(&p, "c_rej4k", 0x6);
    checker_device_write(&t, HOST_MEM + 0xffc, 8, 0);
    refused_tlp(&p, &t, "crosses_4k");
    char *json;
    const char *obj = device_status("c_rej4k", &json);
    unsigned long long rejected = 0;
    CHECK(obj && it_json_uint(obj, "rejected_tlps", &rejected) && rejected == 1,
          "c_rej4k: rejected_tlps %llu, expected 1", rejected);
    free(json);
    expect_served(&p, 25);
    checker_pair_close(&p);

    checker_pair_open(&p, "c_stop4k", 0x6);
    refused_tlp(&p, &t, "crosses_4k");
    CHECK(it_log_contains(it.bridge, "device c_stop4k: PCIe checker: rule crosses_4k broken,"
                                     " policy stop"),
          "the stop is not logged with its rule");
    obj = device_status("c_stop4k", &json);
    char backend[32] = "";
    bool stopped = obj && it_json_str(obj, "backend", backend, sizeof(backend)) &&
                   strcmp(backend, "fallback") == 0;
    CHECK(stopped, "c_stop4k's backend is %s, expected fallback", backend);
    free(json);
    if (stopped) {
        enum tlpb_cpl_status st;
        uint32_t v = read_bar0(&p.h, 26, &st);
        CHECK(st == TLPB_CPL_SC && v == 0xFFFFFFFFu,
              "c_stop4k after stop: read status %d value 0x%08x, expected all ones from the"
              " fallback", (int)st, v);
    }
    expect_served(&bystander, 27);
    checker_pair_close(&p);

    /* The simulator is dropped all the same; the stop is logged. */
    refused_msix_vector("c_stopmsix", 28);
    CHECK(it_log_contains(it.bridge, "device c_stopmsix: PCIe checker: rule msix_vector_range"
                                     " broken, policy stop"),
          "the stop is not logged with its rule");
}

/* ---- the trace ------------------------------------------------------------- */

static void case_trace_record(void)
{
    /* c_mps broke mwr_exceeds_mps above: its violation record names it. */
    const char *args[] = {"--device", "c_mps", it_path("checker.trace"), NULL};
    char *out = NULL, *err = NULL;
    CHECK(it_trace_tool(args, &out, &err) == 0, "tlpbtrace: %s", err ? err : "");
    CHECK(out && strstr(out, " VIOL ") && strstr(out, "violation of mwr_exceeds_mps"),
          "the trace lacks the violation record of c_mps: %s", out ? out : "");
    free(out);
    free(err);
}

/* tshark on PATH into path; false without one. */
static bool find_tshark(char *path, size_t size)
{
    const char *env = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s", env ? env : "/usr/bin:/bin");
    for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(path, size, "%s/tshark", dir);
        if (access(path, X_OK) == 0)
            return true;
    }
    return false;
}

static void case_pcapng_violation(void)
{
    /* The pcapng export keeps the violation record: direction 5, and the
     * dissector shows its rule. */
    const char *pcap = it_path("checker.pcapng");
    const char *conv[] = {"--pcapng", pcap, "--device", "c_mps", it_path("checker.trace"), NULL};
    char *out = NULL, *err = NULL;
    CHECK(it_trace_tool(conv, &out, &err) == 0, "tlpbtrace --pcapng: %s", err ? err : "");
    free(out);
    free(err);
    char tshark[512];
    if (!find_tshark(tshark, sizeof(tshark))) {
        printf("  skipped the dissector check: no tshark on PATH\n");
        return;
    }
    const char *argv[] = {tshark, "-X", "lua_script:" TLPB_DISSECTOR, "-r", pcap,
                          "-Y", "tlpbridge.direction == 5", "-T", "fields",
                          "-e", "tlpbridge.rule", NULL};
    out = err = NULL;
    int rc = it_run_capture(argv, &out, &err);
    CHECK(rc == 0 && out && strcmp(out, "mwr_exceeds_mps\n") == 0,
          "tshark: exit %d, rules of the violation packets '%s' (expected mwr_exceeds_mps): %s", rc,
          out ? out : "", err ? err : "");
    free(out);
    free(err);
}

/* ---- policies -------------------------------------------------------------- */

static void case_policy_reject(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "c_reject", 0x4); /* memory space off */
    struct tlpb_tlp rd;
    checker_host_read(&rd, 4, 9, 0);
    raw_send_tlp(&p.h, &rd);
    expect_ur(&p.h, 9, "a host read with Memory Space Enable clear, policy reject");
    char *json;
    const char *obj = device_status("c_reject", &json);
    unsigned long long rejected = 0, host_requests = 0;
    CHECK(obj && it_json_uint(obj, "rejected_tlps", &rejected) && rejected == 1,
          "rejected_tlps %llu, expected 1", rejected);
    CHECK(obj && it_json_uint(obj, "host_requests", &host_requests), "no host_requests");
    free(json);
    checker_expect_only("c_reject", "memory_space_disabled");
    /* The UR answered the rejected read: the next read under the same tag
     * breaks the same rule again, and is no tag_reuse. */
    raw_send_tlp(&p.h, &rd);
    expect_ur(&p.h, 9, "a second host read under the same tag, policy reject");
    unsigned long long total = 0, n = 0;
    CHECK(checker_counts("c_reject", "memory_space_disabled", &total, &n) && n == 2 &&
              total == 2,
          "after a second rejected read under tag 9: memory_space_disabled %llu, %llu in all "
          "(expected 2 and 2: no tag_reuse)", n, total);
    checker_pair_close(&p);
}

static void case_policy_stop(void)
{
    struct checker_pair p, other;
    checker_pair_open(&p, "c_stop", 0x6);
    checker_pair_open(&other, "c_other", 0x6);
    send_irq(&p, TLPB__INTERRUPT_KIND__IRQ_MSIX, 0); /* MSI-X is off */
    enum tlpb_cpl_status st;
    uint32_t v = read_bar0(&p.h, 10, &st);
    CHECK(st == TLPB_CPL_SC && v == 0xFFFFFFFFu,
          "c_stop after stop: read status %d value 0x%08x, expected all ones from the fallback",
          (int)st, v);
    char *json;
    const char *obj = device_status("c_stop", &json);
    char backend[32] = "";
    CHECK(obj && it_json_str(obj, "backend", backend, sizeof(backend)) &&
              strcmp(backend, "fallback") == 0,
          "c_stop's backend is %s, expected fallback", backend);
    free(json);
    CHECK(it_log_contains(it.bridge, "device c_stop: PCIe checker: rule msix_disabled"
                                     " broken, policy stop"),
          "the stop is not logged with its rule");
    /* The other device is still served by its simulator. */
    expect_served(&other, 11);
    checker_pair_close(&other);
    checker_pair_close(&p);
}

static void case_bad_policy(void)
{
    /* A policy that does not exist is a clear error, on the command line
     * and in the config file. */
    const char *argv[] = {it_paths.bridge, "--listen", it_path("other.sock"), "--check", "ignore",
                          NULL};
    char *out = NULL, *err = NULL;
    int rc = it_run_capture(argv, &out, &err);
    CHECK(rc == 2 && err && strstr(err, "--check wants warn, reject or stop"),
          "--check ignore: exit %d, '%s'", rc, err ? err : "");
    free(out);
    free(err);
    char cfg[1200];
    snprintf(cfg, sizeof(cfg),
             "devices = ({ name = \"x\"; backend = \"external\"; model = \"%s\";"
             " check = \"loud\"; });\n", it_paths.model);
    const char *argv2[] = {it_paths.bridge, "--listen", it_path("other.sock"), "--config",
                           it_write_file("bad-check.cfg", cfg), NULL};
    out = err = NULL;
    rc = it_run_capture(argv2, &out, &err);
    CHECK(rc == 2 && err && strstr(err, "check must be \"warn\", \"reject\" or \"stop\", not 'loud'"),
          "check = \"loud\": exit %d, '%s'", rc, err ? err : "");
    free(out);
    free(err);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_checker");
    /* Every case here breaks a rule on purpose. */
    it_expect_violations();
    REQUIRE(it_paths.model != NULL, "--model is required");
    static const char *const names[] = {
        "c_mps", "c_mrrs", "c_bme", "c_rid", "c_mse", "c_cid", "c_bc", "c_la",
        "c_unexp", "c_after", "c_cmps", "c_rcb", "c_msix", "c_intx", "c_other",
        "c_4k", "c_cplst", "c_cpllen", "c_msixv", "c_by", "c_nodata"};
    char cfg[8192];
    size_t n = (size_t)snprintf(cfg, sizeof(cfg), "devices = (\n");
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        n += (size_t)snprintf(cfg + n, sizeof(cfg) - n,
                              "  { name = \"%s\"; backend = \"external\"; model = \"%s\"; },\n",
                              names[i], it_paths.model);
    n += (size_t)snprintf(cfg + n, sizeof(cfg) - n,
                          "  { name = \"c_cto\"; backend = \"external\"; model = \"%s\";"
                          " timeout_ms = 100; },\n"
                          "  { name = \"c_reject\"; backend = \"external\"; model = \"%s\";"
                          " check = \"reject\"; },\n"
                          "  { name = \"c_stop\"; backend = \"external\"; model = \"%s\";"
                          " check = \"stop\"; },\n"
                          "  { name = \"c_rej4k\"; backend = \"external\"; model = \"%s\";"
                          " check = \"reject\"; },\n"
                          "  { name = \"c_stop4k\"; backend = \"external\"; model = \"%s\";"
                          " check = \"stop\"; },\n"
                          "  { name = \"c_stopmsix\"; backend = \"external\"; model = \"%s\";"
                          " check = \"stop\"; },\n",
                          it_paths.model, it_paths.model, it_paths.model, it_paths.model,
                          it_paths.model, it_paths.model);
    static const char msi_desc[] =
        "description = { vendor_id = 0x1234; device_id = 0x7a11; revision = 1;"
        " class_code = 0x088000; bars = ( { index = 0; size = 4096; },"
        " { index = 2; size = 4096; } ); msix = { vectors = 2; table_bar = 2;"
        " table_offset = 0x0; pba_bar = 2; pba_offset = 0x800; }; msi = { vectors = 4; };"
        " intx_pin = 1; max_payload_supported = 512; };";
    n += (size_t)snprintf(cfg + n, sizeof(cfg) - n,
                          "  { name = \"c_msi\"; backend = \"external\"; %s },\n"
                          "  { name = \"c_msi2\"; backend = \"external\"; %s }\n);\n",
                          msi_desc, msi_desc);
    const char *args[] = {"--config", it_write_file("checker.cfg", cfg), "--trace",
                          it_path("checker.trace"), NULL};
    it_start_bridge(args);

    IT_RUN("mwr_exceeds_mps", case_mwr_exceeds_mps());
    IT_RUN("mrd_exceeds_mrrs", case_mrd_exceeds_mrrs());
    IT_RUN("bus_master_disabled", case_bus_master_disabled());
    IT_RUN("requester_id", case_requester_id());
    IT_RUN("memory_space_disabled", case_memory_space_disabled());
    IT_RUN("completer_id", case_completer_id());
    IT_RUN("cpl_byte_count", case_cpl_byte_count());
    IT_RUN("cpl_lower_address", case_cpl_lower_address());
    IT_RUN("cpl_length", case_cpl_length());
    IT_RUN("cpl_exceeds_mps", case_cpl_exceeds_mps());
    IT_RUN("cpl_rcb", case_cpl_rcb());
    IT_RUN("unexpected_completion", case_unexpected_completion());
    IT_RUN("cpl_after_last_byte", case_cpl_after_last_byte());
    IT_RUN("completion_timeout", case_completion_timeout());
    IT_RUN("msix_disabled", case_msix_disabled());
    IT_RUN("intx_disabled", case_intx_disabled());
    IT_RUN("msi_disabled", case_msi_disabled());
    IT_RUN("msi_vector_range", case_msi_vector_range());
    checker_pair_open(&bystander, "c_by", 0x6);
    IT_RUN("crosses_4k, refused by the validator", case_refused_crosses_4k());
    IT_RUN("cpl_status_with_data, refused by the validator",
           case_refused_cpl_status_with_data());
    IT_RUN("cpl_length, refused by the validator", case_refused_cpl_length());
    IT_RUN("msix_vector_range, refused by the interrupt check",
           case_refused_msix_vector_range());
    IT_RUN("refused rule violations under reject and stop", case_refused_policies());
    checker_pair_close(&bystander);
    IT_RUN("a violation record in the trace", case_trace_record());
    IT_RUN("the violation in the pcapng export and Wireshark", case_pcapng_violation());
    IT_RUN("policy reject: UR and rejected_tlps", case_policy_reject());
    IT_RUN("policy stop: fallback, the other device served", case_policy_stop());
    IT_RUN("a policy that does not exist", case_bad_policy());
    return it_finish();
}

/* The checker's tag and ordering rules (docs/checker.md) against a running
 * tlpbridged, each broken by a raw simulator on a device of its own: the
 * status counts that rule once and nothing else, and the log names it.
 * tag_reuse: a DMA read under a tag whose read the host has not completed.
 * relaxed_ordering_disabled, no_snoop_disabled: a DMA request, or a
 * completion, with an attribute the host cleared in Device Control.
 * id_ordering_disabled: ID-Based Ordering, which this config space never
 * enables (Device Control 2). And the streams that must stay clean: a
 * completion echoing its request's attributes, and RO and NS used while
 * enabled (as they are after reset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checker_pair.h"
#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/cfgspace.h"

#define BDF CHECKER_PAIR_BDF
#define HOST_MEM CHECKER_PAIR_HOST_MEM
#define DEVCTL (TLPB_CFG_PCIE_CAP + 0x08u) /* Device Control */
#define DEVCTL_MRRS_512 (2u << 12)

/* The simulator sends req; the host gets it, attributes as sent. */
static bool host_gets(struct checker_pair *p, const struct tlpb_tlp *req, struct tlpb_tlp *got)
{
    raw_send_tlp(&p->s, req);
    static uint8_t data[64];
    bool ok = raw_recv_tlp(&p->h, got, data, sizeof(data));
    CHECK(ok && got->kind == req->kind && got->tag == req->tag &&
              got->attributes == req->attributes,
          "%s: the host did not get the %s tag %u with attributes 0x%x", p->dev,
          tlpb_tlp_kind_name(req->kind), req->tag, req->attributes);
    return ok && got->kind == req->kind;
}

/* The host answers a DMA read with UR; the simulator gets it. */
static void host_refuses(struct checker_pair *p, const struct tlpb_tlp *got)
{
    struct tlpb_tlp cpl, back;
    static uint8_t data[64];
    tlpb_completion_error_for(&cpl, got, 0, TLPB_CPL_UR);
    raw_send_tlp(&p->h, &cpl);
    CHECK(raw_sim_recv_tlp(&p->s, BDF, &back, data, sizeof(data)) && back.status == TLPB_CPL_UR &&
              back.tag == got->tag,
          "%s: the UR for tag %u did not reach the simulator", p->dev, got->tag);
}

/* The host reads 8 bytes of BAR0 with attributes; the simulator completes
 * it with its completion's attributes changed to cpl_attributes (or as
 * its request had them, for -1); returns the attributes the host got. */
static int host_read(struct checker_pair *p, uint8_t tag, uint8_t attributes, int cpl_attributes)
{
    struct tlpb_tlp rd, req, cpl, got;
    static uint8_t data[64];
    static const uint8_t value[8];
    checker_host_read(&rd, 8, tag, attributes);
    raw_send_tlp(&p->h, &rd);
    if (!raw_sim_recv_tlp(&p->s, BDF, &req, data, sizeof(data)) || req.kind != TLPB_TLP_MRD) {
        CHECK(false, "%s: the simulator did not get the MRd", p->dev);
        return -1;
    }
    CHECK(req.attributes == attributes, "%s: the MRd reached the simulator with attributes 0x%x,"
          " sent with 0x%x", p->dev, req.attributes, attributes);
    tlpb_completion_for(&cpl, &req, BDF, req.address, 8, 8);
    cpl.payload = value;
    if (cpl_attributes >= 0)
        cpl.attributes = (uint8_t)cpl_attributes;
    raw_send_tlp(&p->s, &cpl);
    if (!raw_recv_tlp(&p->h, &got, data, sizeof(data)) || got.tag != tag) {
        CHECK(false, "%s: no completion for tag %u to the host", p->dev, tag);
        return -1;
    }
    return got.attributes;
}

/* ---- one rule each ---------------------------------------------------------- */

static void case_tag_reuse(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "o_tag", 0x6);
    struct tlpb_tlp first, second, got;
    checker_device_read(&first, HOST_MEM, 4, 5, 0);
    checker_device_read(&second, HOST_MEM + 0x40, 4, 5, 0);
    if (host_gets(&p, &first, &got) && host_gets(&p, &second, &got))
        host_refuses(&p, &got); /* completes the read that holds the tag */
    checker_expect_only("o_tag", "tag_reuse");
    checker_pair_close(&p);
}

static void case_relaxed_ordering_disabled(void)
{
    struct checker_pair p;
    checker_pair_open_cfg(&p, "o_ro", 0x6, DEVCTL, DEVCTL_MRRS_512); /* RO and NS off */
    struct tlpb_tlp wr, got;
    checker_device_write(&wr, HOST_MEM, 4, TLPB_ATTR_RELAXED_ORDERING);
    host_gets(&p, &wr, &got);
    checker_expect_only("o_ro", "relaxed_ordering_disabled");
    checker_pair_close(&p);
}

static void case_no_snoop_disabled(void)
{
    struct checker_pair p;
    checker_pair_open_cfg(&p, "o_ns", 0x6, DEVCTL, DEVCTL_MRRS_512); /* RO and NS off */
    struct tlpb_tlp rd, got;
    checker_device_read(&rd, HOST_MEM, 4, 6, TLPB_ATTR_NO_SNOOP);
    if (host_gets(&p, &rd, &got))
        host_refuses(&p, &got);
    checker_expect_only("o_ns", "no_snoop_disabled");
    checker_pair_close(&p);
}

static void case_id_ordering_disabled(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "o_ido", 0x6); /* Device Control 2 as at reset */
    struct tlpb_tlp wr, got;
    checker_device_write(&wr, HOST_MEM, 4, TLPB_ATTR_ID_ORDERING);
    host_gets(&p, &wr, &got);
    checker_expect_only("o_ido", "id_ordering_disabled");
    checker_pair_close(&p);
}

static void case_completion_relaxed_ordering(void)
{
    struct checker_pair p;
    checker_pair_open_cfg(&p, "o_cpl", 0x6, DEVCTL, DEVCTL_MRRS_512); /* RO and NS off */
    /* The host asked without attributes; the device's completion adds RO. */
    host_read(&p, 7, 0, TLPB_ATTR_RELAXED_ORDERING);
    checker_expect_only("o_cpl", "relaxed_ordering_disabled");
    checker_pair_close(&p);
}

/* ---- what stays clean --------------------------------------------------------- */

/* Completions copy their request's attributes, whatever the device's
 * enables: delivered to the host as they are, not counted. */
static void case_echoed_attributes(void)
{
    struct checker_pair p;
    checker_pair_open_cfg(&p, "o_echo", 0x6, DEVCTL, DEVCTL_MRRS_512); /* RO and NS off */
    const uint8_t all = TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_NO_SNOOP | TLPB_ATTR_ID_ORDERING;
    CHECK(host_read(&p, 8, all, -1) == all, "the echoed attributes did not reach the host");
    checker_expect_none("o_echo");
    checker_pair_close(&p);
}

/* Enabled (Device Control as at reset), the device uses RO and NS on its
 * DMA and its completions; a tag is free again once its read completed. */
static void case_enabled_attributes(void)
{
    struct checker_pair p;
    checker_pair_open(&p, "o_enabled", 0x6);
    const uint8_t ro_ns = TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_NO_SNOOP;
    struct tlpb_tlp t, got;
    checker_device_write(&t, HOST_MEM, 64, ro_ns);
    host_gets(&p, &t, &got);
    for (unsigned i = 0; i < 2; i++) {
        checker_device_read(&t, HOST_MEM, 64, 9, ro_ns);
        if (host_gets(&p, &t, &got))
            host_refuses(&p, &got);
    }
    CHECK(host_read(&p, 10, 0, ro_ns) == ro_ns,
          "the completion's attributes did not reach the host");
    checker_expect_none("o_enabled");
    checker_pair_close(&p);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_checker_order");
    /* The cases break a rule on purpose (o_echo and o_enabled are
     * checked to have none). */
    it_expect_violations();
    REQUIRE(it_paths.model != NULL, "--model is required");
    static const char *const names[] = {"o_tag", "o_ro", "o_ns", "o_ido", "o_cpl", "o_echo",
                                         "o_enabled"};
    char cfg[4096];
    size_t n = (size_t)snprintf(cfg, sizeof(cfg), "devices = (\n");
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        n += (size_t)snprintf(cfg + n, sizeof(cfg) - n,
                              "  { name = \"%s\"; backend = \"external\"; model = \"%s\"; }%s\n",
                              names[i], it_paths.model,
                              i + 1 < sizeof(names) / sizeof(names[0]) ? "," : "");
    snprintf(cfg + n, sizeof(cfg) - n, ");\n");
    const char *args[] = {"--config", it_write_file("checker_order.cfg", cfg), NULL};
    it_start_bridge(args);

    IT_RUN("tag_reuse", case_tag_reuse());
    IT_RUN("relaxed_ordering_disabled", case_relaxed_ordering_disabled());
    IT_RUN("no_snoop_disabled", case_no_snoop_disabled());
    IT_RUN("id_ordering_disabled", case_id_ordering_disabled());
    IT_RUN("relaxed_ordering_disabled on a completion", case_completion_relaxed_ordering());
    IT_RUN("a completion echoing its request stays clean", case_echoed_attributes());
    IT_RUN("attributes software enabled stay clean", case_enabled_attributes());
    return it_finish();
}

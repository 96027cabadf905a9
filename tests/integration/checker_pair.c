/* One external device driven by hand for the checker's integration tests
 * (checker_pair.h). */
#include "checker_pair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "tlpb/wire.h"

void checker_pair_open_host(struct checker_pair *p, const char *dev, uint32_t command)
{
    p->dev = dev;
    raw_host(&p->h, dev);
    raw_cfg_write(&p->h, CHECKER_PAIR_BDF, 0x10, DMACOPY_BAR0_ADDR, 0xF, 1);
    raw_cfg_write(&p->h, CHECKER_PAIR_BDF, 0x18, DMACOPY_BAR2_ADDR, 0xF, 2);
    raw_cfg_write(&p->h, CHECKER_PAIR_BDF, 0x04, command, 0xF, 3);
}

void checker_pair_open(struct checker_pair *p, const char *dev, uint32_t command)
{
    checker_pair_open_host(p, dev, command);
    raw_simulator(&p->s, dev);
}

void checker_pair_open_cfg(struct checker_pair *p, const char *dev, uint32_t command,
                           uint16_t reg, uint32_t value)
{
    checker_pair_open_host(p, dev, command);
    raw_cfg_write(&p->h, CHECKER_PAIR_BDF, reg, value, 0xF, 4);
    raw_simulator(&p->s, dev);
}

void checker_pair_close(struct checker_pair *p)
{
    raw_close(&p->h);
    raw_close(&p->s);
}

void checker_device_write(struct tlpb_tlp *t, uint64_t addr, uint32_t bytes, uint8_t attributes)
{
    static const uint8_t zeros[4096];
    memset(t, 0, sizeof(*t));
    t->kind = TLPB_TLP_MWR;
    t->requester_id = CHECKER_PAIR_BDF;
    t->attributes = attributes;
    t->bar_hint = TLPB_NO_BAR;
    tlpb_tlp_set_mem_range(t, addr, bytes);
    t->payload = zeros;
    t->payload_bytes = t->length_dw * 4u;
}

void checker_device_read(struct tlpb_tlp *t, uint64_t addr, uint32_t bytes, uint8_t tag,
                         uint8_t attributes)
{
    memset(t, 0, sizeof(*t));
    t->kind = TLPB_TLP_MRD;
    t->requester_id = CHECKER_PAIR_BDF;
    t->tag = tag;
    t->attributes = attributes;
    t->bar_hint = TLPB_NO_BAR;
    tlpb_tlp_set_mem_range(t, addr, bytes);
}

void checker_host_read(struct tlpb_tlp *t, uint32_t bytes, uint8_t tag, uint8_t attributes)
{
    checker_device_read(t, DMACOPY_BAR0_ADDR, bytes, tag, attributes);
    t->requester_id = 0;
    t->bar_hint = 0;
}

bool checker_wait_message(struct raw *r, Tlpb__Envelope__BodyCase body, const char *what)
{
    for (;;) {
        bool eof = false;
        Tlpb__Envelope *m = raw_next(r, &eof);
        if (!m) {
            CHECK(false, "no %s from the bridge", what);
            return false;
        }
        bool match = m->body_case == body;
        tlpb_envelope_free(m);
        if (match)
            return true;
    }
}

bool checker_counts(const char *dev, const char *rule, unsigned long long *total,
                    unsigned long long *of_rule)
{
    bool ok = false;
    char *json = it_control("status", NULL, &ok);
    const char *obj = json && ok ? it_json_device(json, dev) : NULL;
    const char *checker = obj ? strstr(obj, "\"checker\": {") : NULL;
    bool found = checker && it_json_uint(checker, "violations", total);
    *of_rule = 0;
    /* Only the rules broken are listed: absent is zero. */
    if (found && rule && !it_json_uint(checker, rule, of_rule))
        *of_rule = 0;
    CHECK(found, "status has no checker counts for %s: %s", dev, json ? json : "(no reply)");
    free(json);
    return found;
}

bool checker_log_names(const char *dev, const char *what)
{
    char needle[160];
    snprintf(needle, sizeof(needle), "device %s: PCIe checker: ", dev);
    char *log = it_read_log(it.bridge);
    bool named = false;
    for (const char *l = log ? strstr(log, needle) : NULL; l && !named; l = strstr(l + 1, needle)) {
        const char *eol = strchr(l, '\n');
        const char *at = strstr(l, what);
        named = at && (!eol || at < eol);
    }
    free(log);
    return named;
}

void checker_expect_only(const char *dev, const char *rule)
{
    unsigned long long total = 0, n = 0;
    if (checker_counts(dev, rule, &total, &n)) {
        CHECK(n == 1, "%s: rule %s counted %llu times, expected once", dev, rule, n);
        CHECK(total == 1, "%s: %llu violations in all, expected only the one of %s", dev, total,
              rule);
    }
    CHECK(checker_log_names(dev, rule), "the bridge log has no checker line of %s naming %s",
          dev, rule);
}

void checker_expect_none(const char *dev)
{
    unsigned long long total = 0, n = 0;
    if (checker_counts(dev, NULL, &total, &n))
        CHECK(total == 0, "%s: %llu violations, expected none", dev, total);
}

/* The device the simulator announces in the unit tests of libtlpbsim against
 * a fake bridge (tests/unit/test_tlpb_sim.c, test_sim_guest_memory.c): a
 * plain function with a 4 KiB BAR0 and INTA, MPS 128. */
#ifndef TLPB_TESTS_SIM_TEST_DESCRIPTION_H
#define TLPB_TESTS_SIM_TEST_DESCRIPTION_H

#include "tlpb/devdesc.h"

static const struct tlpb_devdesc test_description = {
    .vendor_id = 0x1234,
    .device_id = 0x5eed,
    .class_code = 0xff0000,
    .bars = {[0] = {.size_bytes = 4096}},
    .intx_pin = 1,
    .max_payload_supported_bytes = 128,
};

#endif

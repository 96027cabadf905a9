/* Guest RAM as QEMU's memory-backend-memfd shares it, and the GuestMemory
 * that maps it (docs/protocol.md "Shared guest memory"), for the tests that
 * send one (tests/integration/test_guest_memory*.c, tests/unit/
 * test_sim_guest_memory.c): one way of making them, each test failing in its
 * own framework. Needs _GNU_SOURCE (memfd_create). */
#ifndef TLPB_TESTS_GUEST_MEMORY_MAP_H
#define TLPB_TESTS_GUEST_MEMORY_MAP_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "tlpb/wire.h"

/* A memfd of bytes, sealed against shrinking and growing (seal false: left
 * resizable, which a receiver must refuse). Returns the fd, or -errno with
 * *failed naming the call that failed (nothing left open). */
static inline int guest_ram_memfd(size_t bytes, bool seal, const char **failed)
{
    int fd = memfd_create("test-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        *failed = "memfd_create";
        return -errno;
    }
    *failed = "ftruncate";
    int rc = ftruncate(fd, (off_t)bytes);
    if (rc == 0 && seal) {
        *failed = "F_ADD_SEALS";
        rc = fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
    }
    if (rc != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    *failed = NULL;
    return fd;
}

/* One region of a GuestMemory, as a test writes it (any values, bad ones
 * included). */
struct test_guest_region {
    uint64_t bus_address, size_bytes;
    uint32_t fd_index;
    uint64_t fd_offset;
};

#define TEST_GUEST_MAX_REGIONS 8u

/* A GuestMemory envelope and what it points to. */
struct test_guest_memory {
    Tlpb__GuestMemoryRegion region[TEST_GUEST_MAX_REGIONS];
    Tlpb__GuestMemoryRegion *region_ptr[TEST_GUEST_MAX_REGIONS];
    Tlpb__GuestMemory gm;
    Tlpb__Envelope env;
};

/* m->env as a GuestMemory of the n regions (n 0: a withdrawal) naming
 * fd_count descriptors. Returns &m->env, or NULL for more than
 * TEST_GUEST_MAX_REGIONS regions. */
static inline const Tlpb__Envelope *test_guest_memory_envelope(
    struct test_guest_memory *m, const struct test_guest_region *regions, unsigned n,
    uint32_t fd_count)
{
    if (n > TEST_GUEST_MAX_REGIONS)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        tlpb__guest_memory_region__init(&m->region[i]);
        m->region[i].bus_address = regions[i].bus_address;
        m->region[i].size_bytes = regions[i].size_bytes;
        m->region[i].fd_index = regions[i].fd_index;
        m->region[i].fd_offset = regions[i].fd_offset;
        m->region_ptr[i] = &m->region[i];
    }
    tlpb__guest_memory__init(&m->gm);
    m->gm.n_regions = n;
    m->gm.regions = m->region_ptr;
    m->gm.fd_count = fd_count;
    tlpb__envelope__init(&m->env);
    m->env.body_case = TLPB__ENVELOPE__BODY_GUEST_MEMORY;
    m->env.guest_memory = &m->gm;
    return &m->env;
}

#endif

/* Guest RAM as QEMU's memory-backend-memfd shares it, for the tests that
 * send it in a GuestMemory (tests/integration/test_guest_memory*.c,
 * tests/unit/test_sim_guest_memory.c): one way of making it, each test
 * failing in its own framework. Needs _GNU_SOURCE (memfd_create). */
#ifndef TLPB_TESTS_GUEST_RAM_MEMFD_H
#define TLPB_TESTS_GUEST_RAM_MEMFD_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

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

#endif

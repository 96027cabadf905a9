/* The refusals behind fuzz_sandbox.h. */
#include <errno.h>

#include "fuzz_sandbox.h"

#undef dlopen

FILE *fuzz_sandbox_fopen(const char *path, const char *mode)
{
    errno = EROFS;
    return NULL;
}

int fuzz_sandbox_open(const char *path, int flags, ...)
{
    errno = EROFS;
    return -1;
}

int fuzz_sandbox_openat(int dirfd, const char *path, int flags, ...)
{
    errno = EROFS;
    return -1;
}

void *fuzz_sandbox_dlopen(const char *path, int flags)
{
    /* A real failed dlopen, so that dlerror() has a message to give. */
    return dlopen("/nonexistent/fuzz-sandbox-loads-no-model.so", flags);
}

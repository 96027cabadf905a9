/* Included first into every bridge source compiled into fuzz_bridge_conn:
 * the fuzz input may ask, as a control peer, to open a trace file or load a
 * model from any path. Those calls go to fuzz_sandbox.c, which refuses them
 * (as a read-only file system or a missing file would), so a fuzz run never
 * writes over a file or loads a library. */
#ifndef TLPB_FUZZ_SANDBOX_H
#define TLPB_FUZZ_SANDBOX_H

/* Before any system header: the bridge's sources ask for GNU extensions
 * (accept4, ...), and this header is included ahead of their own define. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>

FILE *fuzz_sandbox_fopen(const char *path, const char *mode);
int fuzz_sandbox_open(const char *path, int flags, ...);
int fuzz_sandbox_openat(int dirfd, const char *path, int flags, ...);
void *fuzz_sandbox_dlopen(const char *path, int flags);

#define fopen(path, mode) fuzz_sandbox_fopen(path, mode)
#define open(path, ...) fuzz_sandbox_open(path, __VA_ARGS__)
#define openat(dirfd, path, ...) fuzz_sandbox_openat(dirfd, path, __VA_ARGS__)
#define dlopen(path, flags) fuzz_sandbox_dlopen(path, flags)

#endif

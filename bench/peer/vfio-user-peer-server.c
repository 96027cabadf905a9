/* The libvfio-user server of tlpb-bench's peer measurement: a PCIe device
 * with one 4 KiB BAR (a register file, and a copy engine: see peer_regs.h)
 * that does its DMA the way the libvfio-user API offers for each of the
 * client's memory regions: through the shared mapping when the client
 * passed a file descriptor (vfu_sgl_get), through VFIO_USER_DMA_READ/WRITE
 * messages when it did not (vfu_sgl_read/write).
 *
 * usage: vfio-user-peer-server --socket PATH [--ready-fd N]
 * Serves one client and exits 0 when it disconnects. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libvfio-user.h"
#include "peer_regs.h"

static uint32_t bar0[PEER_BAR0_BYTES / 4];
static uint8_t device_buffer[PEER_COPY_MAX];
static dma_sg_t *sg;

static void log_to_stderr(vfu_ctx_t *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    fprintf(stderr, "vfio-user-peer-server: %s\n", msg);
}

/* Device-side DMA of len bytes at iova: through the mapping when the client
 * shared the region, by messages to the client otherwise. */
static int dma_transfer(vfu_ctx_t *ctx, uint64_t iova, uint64_t len, bool to_client)
{
    int prot = to_client ? PROT_WRITE : PROT_READ;
    if (vfu_addr_to_sgl(ctx, (vfu_dma_addr_t)(uintptr_t)iova, len, sg, 1, prot) != 1)
        return -1; /* not (wholly) inside one region the client mapped */
    if (vfu_sg_is_mappable(ctx, sg)) {
        struct iovec iov;
        if (vfu_sgl_get(ctx, sg, &iov, 1, 0) != 0)
            return -1;
        if (to_client)
            memcpy(iov.iov_base, device_buffer, len);
        else
            memcpy(device_buffer, iov.iov_base, len);
        vfu_sgl_put(ctx, sg, &iov, 1);
        return 0;
    }
    return to_client ? vfu_sgl_write(ctx, sg, 1, device_buffer)
                     : vfu_sgl_read(ctx, sg, 1, device_buffer);
}

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset, bool is_write)
{
    if (offset < 0 || (size_t)offset > PEER_BAR0_BYTES || count > PEER_BAR0_BYTES - (size_t)offset) {
        errno = EINVAL;
        return -1;
    }
    if (is_write && offset == PEER_REG_COPY && count == sizeof(struct peer_copy_desc)) {
        struct peer_copy_desc d;
        memcpy(&d, buf, sizeof(d));
        if (d.len == 0 || d.len > PEER_COPY_MAX) {
            errno = EINVAL;
            return -1;
        }
        if (dma_transfer(ctx, d.src, d.len, false) != 0 || dma_transfer(ctx, d.dst, d.len, true) != 0) {
            if (!errno)
                errno = EIO;
            return -1;
        }
        return (ssize_t)count;
    }
    if (is_write)
        memcpy((char *)bar0 + offset, buf, count);
    else
        memcpy(buf, (char *)bar0 + offset, count);
    return (ssize_t)count;
}

/* The mappings stay libvfio-user's: the device keeps no pointer into them
 * between copies, so there is nothing to do here. */
static void dma_register(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    (void)ctx;
    (void)info;
}

static void dma_unregister(vfu_ctx_t *ctx, vfu_dma_info_t *info)
{
    (void)ctx;
    (void)info;
}

static void fail(const char *what)
{
    fprintf(stderr, "vfio-user-peer-server: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    int ready_fd = -1;
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"ready-fd", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "s:r:", opts, NULL)) != -1) {
        if (ch == 's')
            socket_path = optarg;
        else if (ch == 'r')
            ready_fd = atoi(optarg);
        else
            socket_path = NULL, optind = argc + 1;
    }
    if (!socket_path || optind > argc) {
        fprintf(stderr, "usage: vfio-user-peer-server --socket PATH [--ready-fd N]\n");
        return 2;
    }
    sg = calloc(1, dma_sg_size());
    if (!sg)
        fail("calloc");
    vfu_ctx_t *ctx = vfu_create_ctx(VFU_TRANS_SOCK, socket_path, 0, NULL, VFU_DEV_TYPE_PCI);
    if (!ctx)
        fail("vfu_create_ctx");
    if (vfu_setup_log(ctx, log_to_stderr, LOG_ERR) != 0)
        fail("vfu_setup_log");
    if (vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) != 0)
        fail("vfu_pci_init");
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, PEER_BAR0_BYTES, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) != 0)
        fail("vfu_setup_region BAR0");
    if (vfu_setup_device_dma(ctx, dma_register, dma_unregister) != 0)
        fail("vfu_setup_device_dma");
    if (vfu_realize_ctx(ctx) != 0)
        fail("vfu_realize_ctx");
    /* the socket listens from vfu_create_ctx on: a client may connect now */
    if (ready_fd >= 0) {
        if (write(ready_fd, "ready\n", 6) != 6)
            fail("write ready");
        close(ready_fd);
    }
    if (vfu_attach_ctx(ctx) != 0)
        fail("vfu_attach_ctx");
    int rc = 0;
    while (rc == 0) {
        if (vfu_run_ctx(ctx) < 0) {
            if (errno == ENOTCONN)
                break; /* the client is done */
            if (errno != EINTR)
                rc = 1, fprintf(stderr, "vfio-user-peer-server: vfu_run_ctx: %s\n", strerror(errno));
        }
    }
    vfu_destroy_ctx(ctx);
    free(sg);
    return rc;
}

/* The dmacopy cases of EXAMPLE_DEVICE.md, through libtlpbhost. See
 * dmacopy_suite.h. */
#define _GNU_SOURCE
#include "dmacopy_suite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "tlpb/byteorder.h"

#define GUARD_BYTES 64u
#define GUARD_FILL 0xA5u
#define DESC_BYTES 32u

/* Bus addresses that are not guest memory. */
#define NOT_RAM_SRC 0x100000000ull
#define NOT_RAM_DST 0x200000000ull

unsigned fx_reconnect_interval_ms = 1;
const char *fx_bridge_address;
bool fx_guest_memory;
bool fx_sim_direct;

/* ---- Host callbacks ---------------------------------------------------------- */

static bool ram_range(uint64_t addr, uint32_t len, uint64_t *offset)
{
    if (addr < GUEST_RAM_BASE)
        return false;
    uint64_t off = addr - GUEST_RAM_BASE;
    if (off >= GUEST_RAM_BYTES || len > GUEST_RAM_BYTES - off)
        return false;
    *offset = off;
    return true;
}

static void note_request(struct dmacopy_fixture *fx, uint64_t addr, uint32_t len)
{
    if (len && (addr & 0xFFFu) + len > 4096u)
        fx->dma_crossing_4k++;
}

static int cb_dma_read(void *opaque, uint64_t addr, void *buf, uint32_t len)
{
    struct dmacopy_fixture *fx = opaque;
    fx->dma_read_requests++;
    if (len > fx->max_dma_read_bytes)
        fx->max_dma_read_bytes = len;
    note_request(fx, addr, len);
    uint64_t off;
    if (!ram_range(addr, len, &off)) {
        fx->dma_refused++;
        return 1; /* UR */
    }
    memcpy(buf, fx->ram + off, len);
    if (fx->dma_read_hook)
        fx->dma_read_hook(fx);
    return 0;
}

static int cb_dma_write(void *opaque, uint64_t addr, const void *buf, uint32_t len)
{
    struct dmacopy_fixture *fx = opaque;
    fx->dma_write_requests++;
    if (len > fx->max_dma_write_bytes)
        fx->max_dma_write_bytes = len;
    note_request(fx, addr, len);
    uint64_t off;
    if (!ram_range(addr, len, &off)) {
        fx->dma_refused++;
        return 1;
    }
    memcpy(fx->ram + off, buf, len);
    return 0;
}

static void cb_interrupt(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector)
{
    struct dmacopy_fixture *fx = opaque;
    /* DMA data (and DONE) must land before the interrupt that announces it. */
    if (fx->irq_watch_index >= 0 &&
        ((kind == TLPB_HOST_IRQ_MSIX && vector == 0) || kind == TLPB_HOST_IRQ_INTX_ASSERT) &&
        !(fx_desc_status(fx, (unsigned)fx->irq_watch_index) & DESC_DONE))
        fx->irq_before_done++;
    switch (kind) {
    case TLPB_HOST_IRQ_MSIX:
        if (vector < 2)
            fx->msix[vector]++;
        else
            fx->msix_other++;
        break;
    case TLPB_HOST_IRQ_MSI:
        fx->msi++;
        break;
    case TLPB_HOST_IRQ_INTX_ASSERT:
        fx->intx_level = true;
        fx->intx_asserts++;
        break;
    case TLPB_HOST_IRQ_INTX_DEASSERT:
        fx->intx_level = false;
        fx->intx_deasserts++;
        break;
    }
}

static void cb_link_changed(void *opaque, bool connected, bool simulator_attached)
{
    struct dmacopy_fixture *fx = opaque;
    fx->link_events++;
    fx->link_sim_attached = connected && simulator_attached;
}

static void cb_log(void *opaque, enum tlpb_host_log_level level, const char *message)
{
    struct dmacopy_fixture *fx = opaque;
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level <= TLPB_HOST_LOG_INFO)
        printf("  [host %s] %s: %s\n", fx->device, names[level], message);
}

void fx_open(struct dmacopy_fixture *fx, const char *device, bool offer_unsplit)
{
    fx_open_ex(fx, device, offer_unsplit, true);
}

void fx_open_ex(struct dmacopy_fixture *fx, const char *device, bool offer_unsplit,
                bool require_connected)
{
    memset(fx, 0, sizeof(*fx));
    fx->irq_watch_index = -1;
    fx->device = device;
    fx->dma_mode = offer_unsplit ? FX_DMA_FAST : FX_DMA_STRICT;
    fx->ram_fd = -1;
    if (fx_guest_memory) {
        /* Guest RAM as QEMU's memory-backend-memfd has it: a memfd sealed
         * against resizing, shared with the bridge. */
        fx->ram_fd = memfd_create("dmacopy-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        REQUIRE(fx->ram_fd >= 0, "memfd_create: %s", strerror(errno));
        REQUIRE(ftruncate(fx->ram_fd, GUEST_RAM_BYTES) == 0 &&
                    fcntl(fx->ram_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0,
                "sizing and sealing the guest RAM memfd: %s", strerror(errno));
        fx->ram = mmap(NULL, GUEST_RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fx->ram_fd, 0);
        REQUIRE(fx->ram != MAP_FAILED, "mmap of the guest RAM memfd: %s", strerror(errno));
    } else {
        fx->ram = calloc(1, GUEST_RAM_BYTES);
        REQUIRE(fx->ram != NULL, "out of memory");
    }
    struct tlpb_host_config cfg = {
        .address = fx_bridge_address ? fx_bridge_address : it.socket_path,
        .device_name = device,
        .read_timeout_ms = IT_DEADLINE_MS,
        .reconnect_interval_ms = fx_reconnect_interval_ms,
        .offer_unsplit_dma = offer_unsplit,
    };
    struct tlpb_host_ops ops = {
        .dma_read = cb_dma_read,
        .dma_write = cb_dma_write,
        .interrupt = cb_interrupt,
        .link_changed = cb_link_changed,
        .log = cb_log,
    };
    char err[256];
    int rc = tlpb_host_open(&fx->host, &cfg, &ops, fx, err, sizeof(err));
    REQUIRE(rc == 0, "tlpb_host_open: %s", err);
    if (fx_guest_memory) {
        struct tlpb_host_memory_region ram = {.bus_address = GUEST_RAM_BASE,
                                              .size_bytes = GUEST_RAM_BYTES,
                                              .fd = fx->ram_fd,
                                              .fd_offset = 0};
        rc = tlpb_host_set_guest_memory(fx->host, &ram, 1);
        REQUIRE(rc == 0, "tlpb_host_set_guest_memory: %s", strerror(-rc));
    }
    if (require_connected)
        REQUIRE(tlpb_host_connected(fx->host), "host for %s did not connect to the bridge", device);
}

bool fx_wait_connected(struct dmacopy_fixture *fx)
{
    /* Not connected, tlpb_host_wait retries the connection when the (1 ms)
     * reconnect interval has passed and returns at once otherwise. */
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (!tlpb_host_connected(fx->host)) {
        if (it_now_ms() >= deadline) {
            it_fail_at(__FILE__, __LINE__, false, "%s: host never reconnected", fx->device);
            return false;
        }
        tlpb_host_wait(fx->host, 10);
        it_check_children();
    }
    return true;
}

void fx_close(struct dmacopy_fixture *fx)
{
    tlpb_host_close(fx->host);
    fx->host = NULL;
    if (fx->ram_fd >= 0) {
        munmap(fx->ram, GUEST_RAM_BYTES);
        close(fx->ram_fd);
        fx->ram_fd = -1;
    } else {
        free(fx->ram);
    }
    fx->ram = NULL;
}

typedef bool (*fx_pred)(struct dmacopy_fixture *fx, const void *arg);

/* Serve the device until pred holds; bounded. */
static bool fx_wait_for(struct dmacopy_fixture *fx, fx_pred pred, const void *arg,
                        const char *what)
{
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    for (;;) {
        if (pred(fx, arg))
            return true;
        uint64_t now = it_now_ms();
        if (now >= deadline) /* a hang: the rest of the test would only hang too */
            it_fail_at(__FILE__, __LINE__, true, "%s: timed out waiting for %s", fx->device, what);
        uint64_t left = deadline - now;
        int rc = tlpb_host_wait(fx->host, (int)(left > 1000 ? 1000 : left));
        if (rc < 0 && rc != -EINTR) {
            it_fail_at(__FILE__, __LINE__, false, "%s: host wait failed (%s) while waiting for %s",
                       fx->device, strerror(-rc), what);
            return false;
        }
        it_check_children();
    }
}

static bool pred_attached(struct dmacopy_fixture *fx, const void *arg)
{
    return tlpb_host_simulator_attached(fx->host) == *(const bool *)arg;
}

bool fx_wait_attached(struct dmacopy_fixture *fx, bool want)
{
    return fx_wait_for(fx, pred_attached, &want,
                       want ? "a simulator to attach" : "the simulator to go away");
}

/* ---- Register and config access -------------------------------------------- */

uint32_t fx_rd32(struct dmacopy_fixture *fx, uint32_t reg)
{
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(fx->host, 0, DMACOPY_BAR0_ADDR + reg, &v, 4);
    if (rc != 0)
        it_fail_at(__FILE__, __LINE__, rc == -ETIMEDOUT, "%s: read of BAR0+0x%03x failed: %d",
                   fx->device, reg, rc);
    return v;
}

static uint32_t fx_rd(struct dmacopy_fixture *fx, uint32_t reg, unsigned size)
{
    uint8_t b[4] = {0};
    int rc = tlpb_host_mem_read(fx->host, 0, DMACOPY_BAR0_ADDR + reg, b, size);
    if (rc != 0)
        it_fail_at(__FILE__, __LINE__, false, "%s: %u-byte read of BAR0+0x%03x failed: %d",
                   fx->device, size, reg, rc);
    return tlpb_get_le32(b);
}

static void fx_wr(struct dmacopy_fixture *fx, uint32_t reg, uint32_t value, unsigned size)
{
    uint8_t b[4];
    tlpb_put_le32(b, value);
    int rc = tlpb_host_mem_write(fx->host, 0, DMACOPY_BAR0_ADDR + reg, b, size);
    if (rc != 0)
        it_fail_at(__FILE__, __LINE__, false, "%s: write of BAR0+0x%03x failed: %d", fx->device,
                   reg, rc);
}

void fx_wr32(struct dmacopy_fixture *fx, uint32_t reg, uint32_t value)
{
    fx_wr(fx, reg, value, 4);
}

uint32_t fx_config_read(struct dmacopy_fixture *fx, uint16_t reg)
{
    uint32_t v = 0;
    int rc = tlpb_host_config_read(fx->host, reg, &v);
    if (rc != 0)
        it_fail_at(__FILE__, __LINE__, false, "%s: config read 0x%03x failed: %d", fx->device,
                   reg, rc);
    return v;
}

void fx_config_write(struct dmacopy_fixture *fx, uint16_t reg, uint32_t value, uint8_t be)
{
    int rc = tlpb_host_config_write(fx->host, reg, value, be);
    if (rc != 0)
        it_fail_at(__FILE__, __LINE__, false, "%s: config write 0x%03x failed: %d", fx->device,
                   reg, rc);
}

static void msix_table_write(struct dmacopy_fixture *fx, unsigned vector, unsigned dw,
                             uint32_t value)
{
    uint8_t b[4];
    tlpb_put_le32(b, value);
    int rc = tlpb_host_mem_write(fx->host, 2, DMACOPY_BAR2_ADDR + vector * 16u + dw * 4u, b, 4);
    CHECK(rc == 0, "MSI-X table write vector %u dw %u: %d", vector, dw, rc);
}

static uint32_t msix_table_read(struct dmacopy_fixture *fx, unsigned vector, unsigned dw)
{
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(fx->host, 2, DMACOPY_BAR2_ADDR + vector * 16u + dw * 4u, &v, 4);
    CHECK(rc == 0, "MSI-X table read vector %u dw %u: %d", vector, dw, rc);
    return v;
}

/* ---- Enumeration and set-up --------------------------------------------------- */

void fx_enumerate(struct dmacopy_fixture *fx)
{
    uint32_t id = fx_config_read(fx, 0x00);
    CHECK_EQ_U64(id & 0xFFFF, 0x1234, "vendor ID");
    CHECK_EQ_U64(id >> 16, 0x7A11, "device ID");
    uint32_t class_rev = fx_config_read(fx, 0x08);
    CHECK_EQ_U64(class_rev & 0xFF, 1, "revision");
    CHECK_EQ_U64(class_rev >> 8, 0x088000, "class code");
    uint32_t hdr = fx_config_read(fx, 0x0C);
    CHECK_EQ_U64((hdr >> 16) & 0x7F, 0, "header type");
    uint32_t intr = fx_config_read(fx, 0x3C);
    CHECK_EQ_U64((intr >> 8) & 0xFF, 1, "interrupt pin (INTA)");

    /* BAR sizing: write all-ones, read the size mask, restore. */
    static const uint32_t expected_size[6] = {4096, 0, 4096, 0, 0, 0};
    for (unsigned bar = 0; bar < 6; bar++) {
        uint16_t reg = (uint16_t)(0x10 + 4 * bar);
        uint32_t orig = fx_config_read(fx, reg);
        fx_config_write(fx, reg, 0xFFFFFFFFu, 0xF);
        uint32_t mask = fx_config_read(fx, reg);
        fx_config_write(fx, reg, orig, 0xF);
        char what[80];
        if (expected_size[bar] == 0) {
            snprintf(what, sizeof(what), "BAR%u (not implemented) after all-ones", bar);
            CHECK_EQ_U64(mask, 0, what);
            continue;
        }
        snprintf(what, sizeof(what), "BAR%u type bits (32-bit memory, non-prefetchable)", bar);
        CHECK_EQ_U64(mask & 0xF, 0, what);
        uint32_t size = ~(mask & ~0xFu) + 1u;
        snprintf(what, sizeof(what), "BAR%u size", bar);
        CHECK_EQ_U64(size, expected_size[bar], what);
    }

    /* Capability walk. */
    uint32_t cmd_status = fx_config_read(fx, 0x04);
    CHECK((cmd_status >> 16) & 0x10, "status register says no capability list (0x%08x)", cmd_status);
    uint8_t ptr = (uint8_t)(fx_config_read(fx, 0x34) & 0xFC);
    fx->pcie_cap = fx->msix_cap = 0;
    for (unsigned hops = 0; ptr && hops < 48; hops++) {
        CHECK(ptr >= 0x40, "capability pointer 0x%02x inside the standard header", ptr);
        if (ptr < 0x40)
            break;
        uint32_t cap = fx_config_read(fx, ptr);
        uint8_t cap_id = (uint8_t)cap;
        if (cap_id == 0x10)
            fx->pcie_cap = ptr;
        else if (cap_id == 0x11)
            fx->msix_cap = ptr;
        ptr = (uint8_t)((cap >> 8) & 0xFC);
    }
    CHECK(fx->pcie_cap != 0, "no PCI Express capability found");
    CHECK(fx->msix_cap != 0, "no MSI-X capability found");
    if (fx->pcie_cap) {
        uint32_t pcie = fx_config_read(fx, fx->pcie_cap);
        CHECK_EQ_U64((pcie >> 20) & 0xF, 0, "PCIe device/port type (endpoint)");
        CHECK((pcie >> 16) & 0xF, "PCIe capability version 0");
    }
    if (fx->msix_cap) {
        uint32_t ctrl = fx_config_read(fx, fx->msix_cap);
        CHECK_EQ_U64(((ctrl >> 16) & 0x7FF) + 1, 2, "MSI-X table size");
        uint32_t table = fx_config_read(fx, (uint16_t)(fx->msix_cap + 4));
        CHECK_EQ_U64(table & 7, 2, "MSI-X table BIR");
        CHECK_EQ_U64(table & ~7u, 0, "MSI-X table offset");
        uint32_t pba = fx_config_read(fx, (uint16_t)(fx->msix_cap + 8));
        CHECK_EQ_U64(pba & 7, 2, "MSI-X PBA BIR");
        CHECK_EQ_U64(pba & ~7u, 0x800, "MSI-X PBA offset");
    }
}

static void set_msix_enabled(struct dmacopy_fixture *fx, bool on)
{
    fx_config_write(fx, fx->msix_cap, on ? 0x80000000u : 0, 0xC);
    uint32_t ctrl = fx_config_read(fx, fx->msix_cap);
    CHECK(((ctrl >> 31) & 1) == (on ? 1u : 0u), "MSI-X enable did not stick (0x%08x)", ctrl);
    fx->msix_on = on;
}

void fx_init_device(struct dmacopy_fixture *fx)
{
    REQUIRE(fx->pcie_cap && fx->msix_cap, "enumeration did not find the capabilities");
    fx_config_write(fx, 0x10, DMACOPY_BAR0_ADDR, 0xF);
    fx_config_write(fx, 0x18, DMACOPY_BAR2_ADDR, 0xF);
    CHECK_EQ_U64(fx_config_read(fx, 0x10), DMACOPY_BAR0_ADDR, "BAR0 after programming");
    CHECK_EQ_U64(fx_config_read(fx, 0x18), DMACOPY_BAR2_ADDR, "BAR2 after programming");

    /* Max payload 128 (0), max read request 512 (2): the strict splitting
     * checks below rely on these. */
    uint16_t devctl_reg = (uint16_t)(fx->pcie_cap + 8);
    uint32_t devctl = fx_config_read(fx, devctl_reg) & 0xFFFF;
    devctl = (devctl & ~((7u << 5) | (7u << 12))) | (0u << 5) | (2u << 12);
    fx_config_write(fx, devctl_reg, devctl, 0x3);
    devctl = fx_config_read(fx, devctl_reg);
    CHECK_EQ_U64((devctl >> 5) & 7, 0, "device control max payload size");
    CHECK_EQ_U64((devctl >> 12) & 7, 2, "device control max read request size");

    fx_config_write(fx, 0x04, 0x0006, 0x3); /* memory space + bus master */
    CHECK_EQ_U64(fx_config_read(fx, 0x04) & 0x0406, 0x0006, "command register");

    for (unsigned v = 0; v < 2; v++) {
        msix_table_write(fx, v, 0, 0xFEE00000u);
        msix_table_write(fx, v, 1, 0);
        msix_table_write(fx, v, 2, 0x40u + v);
        msix_table_write(fx, v, 3, 0); /* unmask */
        CHECK_EQ_U64(msix_table_read(fx, v, 2), 0x40u + v, "MSI-X table data read-back");
        CHECK_EQ_U64(msix_table_read(fx, v, 3), 0, "MSI-X vector control read-back");
    }
    set_msix_enabled(fx, true);
    fx_reset_engine(fx, 64);
}

void fx_reset_engine(struct dmacopy_fixture *fx, unsigned ring_size)
{
    fx_wr32(fx, REG_CTRL, CTRL_RESET);
    CHECK_EQ_U64(fx_rd32(fx, REG_CTRL) & CTRL_RESET, 0, "CTRL.RESET self-clears");
    CHECK_EQ_U64(fx_rd32(fx, REG_STATUS), 0, "STATUS after reset");
    CHECK_EQ_U64(fx_rd32(fx, REG_HEAD), 0, "HEAD after reset");
    CHECK_EQ_U64(fx_rd32(fx, REG_TAIL), 0, "TAIL after reset");
    CHECK_EQ_U64(fx_rd32(fx, REG_COMPLETED), 0, "COMPLETED after reset");
    CHECK_EQ_U64(fx_rd32(fx, REG_IRQ_STATUS), 0, "IRQ_STATUS after reset");
    CHECK_EQ_U64(fx_rd32(fx, REG_ERR_CODE), 0, "ERR_CODE after reset");
    memset(fx->ram + RING_OFF, 0, (size_t)ring_size * DESC_BYTES);
    fx->ring_bus = GUEST_RAM_BASE + RING_OFF;
    fx->ring_size = ring_size;
    fx->tail = 0;
    fx->completed = 0;
    fx_wr32(fx, REG_IRQ_MASK, 0);
    fx_wr32(fx, REG_RING_LO, (uint32_t)fx->ring_bus);
    fx_wr32(fx, REG_RING_HI, (uint32_t)(fx->ring_bus >> 32));
    fx_wr32(fx, REG_RING_SIZE, ring_size);
    fx_wr32(fx, REG_CTRL, CTRL_ENABLE);
    CHECK_EQ_U64(fx_rd32(fx, REG_RING_LO), (uint32_t)fx->ring_bus, "RING_LO read-back");
    CHECK_EQ_U64(fx_rd32(fx, REG_RING_SIZE), ring_size, "RING_SIZE read-back");
    CHECK_EQ_U64(fx_rd32(fx, REG_CTRL) & CTRL_ENABLE, CTRL_ENABLE, "CTRL.ENABLE read-back");
}

/* ---- Descriptors ------------------------------------------------------------ */

static uint8_t *desc_at(struct dmacopy_fixture *fx, unsigned index)
{
    return fx->ram + RING_OFF + (size_t)index * DESC_BYTES;
}

unsigned fx_post(struct dmacopy_fixture *fx, uint64_t src, uint64_t dst, uint32_t len,
                 uint32_t flags)
{
    unsigned index = fx->tail;
    uint8_t *d = desc_at(fx, index);
    tlpb_put_le64(d + 0, src);
    tlpb_put_le64(d + 8, dst);
    tlpb_put_le32(d + 16, len);
    tlpb_put_le32(d + 20, flags);
    tlpb_put_le32(d + 24, 0);
    tlpb_put_le32(d + 28, 0);
    fx->tail = (fx->tail + 1) % fx->ring_size;
    return index;
}

void fx_doorbell(struct dmacopy_fixture *fx)
{
    fx_wr32(fx, REG_TAIL, fx->tail);
    CHECK(tlpb_host_flush(fx->host) == 0, "flush after the doorbell");
}

uint32_t fx_desc_status(struct dmacopy_fixture *fx, unsigned index)
{
    return tlpb_get_le32(desc_at(fx, index) + 24);
}

static uint32_t desc_crc(struct dmacopy_fixture *fx, unsigned index)
{
    return tlpb_get_le32(desc_at(fx, index) + 28);
}

static bool pred_desc(struct dmacopy_fixture *fx, const void *arg)
{
    return fx_desc_status(fx, *(const unsigned *)arg) != 0;
}

bool fx_wait_desc(struct dmacopy_fixture *fx, unsigned index)
{
    char what[64];
    snprintf(what, sizeof(what), "descriptor %u to complete", index);
    return fx_wait_for(fx, pred_desc, &index, what);
}

struct count_target {
    const unsigned *counter;
    unsigned at_least;
};

static bool pred_count(struct dmacopy_fixture *fx, const void *arg)
{
    const struct count_target *t = arg;
    return *t->counter >= t->at_least;
}

static bool wait_count(struct dmacopy_fixture *fx, const unsigned *counter, unsigned at_least,
                       const char *what)
{
    struct count_target t = {counter, at_least};
    return fx_wait_for(fx, pred_count, &t, what);
}

static bool pred_intx(struct dmacopy_fixture *fx, const void *arg)
{
    return fx->intx_level == *(const bool *)arg;
}

/* Deterministic test data. */
static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 0x9E3779B9u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* Prepare source data and a guarded destination. */
static void prepare_copy(struct dmacopy_fixture *fx, uint32_t src_off, uint32_t dst_off,
                         uint32_t len, uint32_t seed)
{
    fill_pattern(fx->ram + src_off, len, seed);
    memset(fx->ram + dst_off - GUARD_BYTES, GUARD_FILL, len + 2 * GUARD_BYTES);
    /* make sure the destination differs from the source before the copy */
    if (len && fx->ram[dst_off] == fx->ram[src_off])
        fx->ram[dst_off] ^= 0xFF;
}

/* Data, CRC, status and the untouched guard bytes of one finished copy. */
static void check_copy(struct dmacopy_fixture *fx, unsigned index, uint32_t src_off,
                       uint32_t dst_off, uint32_t len, const char *what)
{
    uint32_t status = fx_desc_status(fx, index);
    CHECK(status == DESC_DONE, "%s: descriptor %u status 0x%08x, expected DONE only", what, index,
          status);
    uint32_t crc = (uint32_t)crc32(0L, fx->ram + src_off, len);
    CHECK(desc_crc(fx, index) == crc, "%s: descriptor CRC 0x%08x, zlib says 0x%08x", what,
          desc_crc(fx, index), crc);
    if (memcmp(fx->ram + src_off, fx->ram + dst_off, len) != 0) {
        uint32_t first = 0;
        while (first < len && fx->ram[src_off + first] == fx->ram[dst_off + first])
            first++;
        it_fail_at(__FILE__, __LINE__, false, "%s: destination differs from source at byte %u of %u",
                   what, first, len);
    }
    for (uint32_t i = 0; i < GUARD_BYTES; i++) {
        if (fx->ram[dst_off - GUARD_BYTES + i] != GUARD_FILL ||
            fx->ram[dst_off + len + i] != GUARD_FILL) {
            it_fail_at(__FILE__, __LINE__, false, "%s: bytes around the destination were written", what);
            break;
        }
    }
}

/* Acknowledge the completion interrupt: MSI-X counted exactly once, or
 * INTx asserted and deasserted by the IRQ_STATUS write. */
static void ack_completion_irq(struct dmacopy_fixture *fx, unsigned msix0_before, const char *what)
{
    if (fx->msix_on) {
        wait_count(fx, &fx->msix[0], msix0_before + 1, "the completion interrupt (vector 0)");
        /* A register read completes after any interrupt the device sent
         * before it: the counts are final here. */
        uint32_t irq = fx_rd32(fx, REG_IRQ_STATUS);
        CHECK(irq & IRQ_COMPLETION, "%s: IRQ_STATUS.completion not set (0x%x)", what, irq);
        CHECK(fx->msix[0] == msix0_before + 1, "%s: %u completion interrupts, expected 1", what,
              fx->msix[0] - msix0_before);
        fx_wr32(fx, REG_IRQ_STATUS, IRQ_COMPLETION);
        CHECK_EQ_U64(fx_rd32(fx, REG_IRQ_STATUS) & IRQ_COMPLETION, 0, "IRQ_STATUS after W1C");
    }
}

/* One copy through the ring, with a completion interrupt. */
void fx_copy(struct dmacopy_fixture *fx, uint32_t src_off, uint32_t dst_off, uint32_t len,
                      const char *what)
{
    prepare_copy(fx, src_off, dst_off, len, len ^ src_off ^ (dst_off << 3));
    unsigned m0 = fx->msix[0];
    unsigned m1 = fx->msix[1];
    unsigned index = fx_post(fx, GUEST_RAM_BASE + src_off, GUEST_RAM_BASE + dst_off, len,
                             DESC_FLAG_IRQ);
    unsigned early = fx->irq_before_done;
    fx->irq_watch_index = (int)index;
    fx_doorbell(fx);
    if (!fx_wait_desc(fx, index))
        return;
    fx->completed++;
    check_copy(fx, index, src_off, dst_off, len, what);
    ack_completion_irq(fx, m0, what);
    fx->irq_watch_index = -1;
    CHECK(fx->irq_before_done == early, "%s: the completion interrupt came before DONE", what);
    CHECK(fx->msix[1] == m1, "%s: unexpected error interrupt", what);
    CHECK_EQ_U64(fx_rd32(fx, REG_STATUS), 0, "STATUS after a copy");
    CHECK_EQ_U64(fx_rd32(fx, REG_HEAD), fx->tail, "HEAD after a copy");
    CHECK_EQ_U64(fx_rd32(fx, REG_COMPLETED), fx->completed, "COMPLETED after a copy");
}

/* ---- Cases -------------------------------------------------------------------- */

static void case_scratch(struct dmacopy_fixture *fx)
{
    CHECK_EQ_U64(fx_rd32(fx, REG_ID), 0x7A110001u, "ID register");
    fx_wr32(fx, REG_SCRATCH, 0x12345678u);
    CHECK_EQ_U64(fx_rd32(fx, REG_SCRATCH), 0x12345678u, "SCRATCH after a 4-byte write");
    fx_wr(fx, REG_SCRATCH + 1, 0xAB, 1);
    CHECK_EQ_U64(fx_rd32(fx, REG_SCRATCH), 0x1234AB78u, "SCRATCH after a 1-byte write at +1");
    fx_wr(fx, REG_SCRATCH + 2, 0xCDEF, 2);
    CHECK_EQ_U64(fx_rd32(fx, REG_SCRATCH), 0xCDEFAB78u, "SCRATCH after a 2-byte write at +2");
    fx_wr(fx, REG_SCRATCH + 0, 0x11, 1);
    CHECK_EQ_U64(fx_rd(fx, REG_SCRATCH + 3, 1), 0xCD, "1-byte read of SCRATCH+3");
    CHECK_EQ_U64(fx_rd(fx, REG_SCRATCH + 0, 2), 0xAB11, "2-byte read of SCRATCH+0");
    CHECK_EQ_U64(fx_rd(fx, REG_SCRATCH + 2, 2), 0xCDEF, "2-byte read of SCRATCH+2");
    CHECK_EQ_U64(fx_rd(fx, REG_SCRATCH + 1, 1), 0xAB, "1-byte read of SCRATCH+1");
    CHECK_EQ_U64(fx_rd32(fx, REG_SCRATCH), 0xCDEFAB11u, "SCRATCH, 4-byte read");
    /* an 8-byte read spanning ID and SCRATCH (2 DWs, one TLP) */
    uint8_t b8[8];
    int rc = tlpb_host_mem_read(fx->host, 0, DMACOPY_BAR0_ADDR + REG_ID, b8, 8);
    CHECK(rc == 0, "8-byte read: %d", rc);
    CHECK_EQ_U64(tlpb_get_le32(b8), 0x7A110001u, "8-byte read, ID half");
    CHECK_EQ_U64(tlpb_get_le32(b8 + 4), 0xCDEFAB11u, "8-byte read, SCRATCH half");
    /* other offsets read 0 and ignore writes */
    fx_wr32(fx, 0x100, 0xFFFFFFFFu);
    CHECK_EQ_U64(fx_rd32(fx, 0x100), 0, "unassigned offset 0x100");
    CHECK_EQ_U64(fx_rd32(fx, 0xFFC), 0, "unassigned offset 0xFFC");
    fx_wr32(fx, REG_SCRATCH, 0);
}

static void case_copy_one_byte(struct dmacopy_fixture *fx)
{
    fx_copy(fx, SRC_OFF + 3, DST_OFF + 6, 1, "1-byte copy");
    fx_copy(fx, SRC_OFF + 0, DST_OFF + 1, 1, "1-byte copy to an odd address");
}

static void case_copy_odd_sizes(struct dmacopy_fixture *fx)
{
    static const struct {
        uint32_t len, src_skew, dst_skew;
    } cases[] = {
        {3, 1, 2},    {5, 0, 3},     {7, 3, 0},      {127, 1, 1},    {129, 2, 3},
        {513, 3, 1},  {1023, 0, 0},  {4095, 1, 2},   {4097, 2, 0},   {65537, 3, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[64];
        snprintf(what, sizeof(what), "%u-byte copy (src +%u, dst +%u)", cases[i].len,
                 cases[i].src_skew, cases[i].dst_skew);
        fx_copy(fx, SRC_OFF + cases[i].src_skew, DST_OFF + cases[i].dst_skew, cases[i].len, what);
    }
}

static void case_copy_4k_crossing(struct dmacopy_fixture *fx)
{
    fx_copy(fx, SRC_OFF + 0xF00, DST_OFF + 0xFFD, 0x300, "copy across one 4 KiB boundary");
    fx_copy(fx, SRC_OFF + 0xFFF, DST_OFF + 0x7FE, 3 * 4096 + 5, "copy across four 4 KiB pages");
    fx_copy(fx, SRC_OFF + 0x1000, DST_OFF + 0x3000, 4096, "one aligned page");
}

static void case_copy_1mib(struct dmacopy_fixture *fx)
{
    uint64_t reads_before = fx->dma_read_requests;
    uint32_t max_read_before = fx->max_dma_read_bytes;
    fx->max_dma_read_bytes = 0;
    unsigned long long shm_before =
        fx_guest_memory ? it_status_uint(fx->device, "dma_shm_bytes") : 0;
    unsigned long long bytes_before = it_status_uint(fx->device, "dma_bytes");
    fx_copy(fx, SRC_OFF, DST_OFF, 1024u * 1024u, "1 MiB copy");
    uint64_t reads = fx->dma_read_requests - reads_before;
    if (fx_sim_direct) {
        /* The simulator copied it in guest memory itself: no DMA byte
         * crossed the bridge (fx_copy verified the data). */
        CHECK(it_status_bool(fx->device, "simulator_guest_memory"),
              "the simulator does not have guest memory");
        CHECK(it_status_uint(fx->device, "dma_shm_bytes") == shm_before &&
                  it_status_uint(fx->device, "dma_bytes") == bytes_before,
              "1 MiB copy by a simulator with guest memory: DMA went through the bridge");
        CHECK(reads == 0, "1 MiB copy with shared guest memory: %llu reads reached the host",
              (unsigned long long)reads);
    } else if (fx_guest_memory) {
        /* The bridge served it from the shared RAM: the host saw none of it. */
        CHECK(it_status_uint(fx->device, "dma_shm_bytes") - shm_before >= 2u * 1024u * 1024u,
              "1 MiB copy with shared guest memory: the bridge served less than 2 MiB of DMA");
        CHECK(reads == 0, "1 MiB copy with shared guest memory: %llu reads reached the host",
              (unsigned long long)reads);
    } else if (fx->dma_mode == FX_DMA_STRICT) {
        /* 1 MiB in requests of at most the max read request size (512). */
        CHECK(reads >= 2048, "strict DMA: 1 MiB was read in %llu requests, expected >= 2048",
              (unsigned long long)reads);
    } else {
        /* Unsplit: requests beyond PCIe's 4 KiB limit, so far fewer. */
        CHECK(fx->max_dma_read_bytes > 4096,
              "fast DMA: largest read request %u bytes, expected more than PCIe allows",
              fx->max_dma_read_bytes);
        CHECK(reads < 256, "fast DMA: 1 MiB took %llu read requests", (unsigned long long)reads);
    }
    if (max_read_before > fx->max_dma_read_bytes)
        fx->max_dma_read_bytes = max_read_before;
}

/* PCIe rules the device's DMA must follow in strict mode; fast mode must
 * really be unsplit. */
static void case_dma_rules(struct dmacopy_fixture *fx)
{
    CHECK(fx->dma_refused == 0, "%llu DMA requests outside guest memory so far",
          (unsigned long long)fx->dma_refused);
    if (fx_guest_memory) {
        /* The host sees no DMA in RAM: the bridge's validator (which every
         * device TLP passes before it is served) refused none. */
        CHECK(it_status_uint(fx->device, "rejected_tlps") == 0, "the bridge rejected device TLPs");
    } else if (fx->dma_mode == FX_DMA_STRICT) {
        CHECK(fx->max_dma_read_bytes <= 512, "read request of %u bytes > max read request 512",
              fx->max_dma_read_bytes);
        CHECK(fx->max_dma_write_bytes <= 128, "write of %u bytes > max payload 128",
              fx->max_dma_write_bytes);
        CHECK(fx->dma_crossing_4k == 0, "%llu DMA requests crossed a 4 KiB boundary",
              (unsigned long long)fx->dma_crossing_4k);
    } else {
        CHECK(fx->max_dma_write_bytes > 4096, "fast DMA: largest write only %u bytes",
              fx->max_dma_write_bytes);
    }
}

static void case_ring_wrap(struct dmacopy_fixture *fx)
{
    fx_reset_engine(fx, 4);
    for (unsigned i = 0; i < 10; i++) {
        char what[48];
        snprintf(what, sizeof(what), "copy %u in a ring of 4", i);
        fx_copy(fx, SRC_OFF + 0x10000 * (i % 3) + i, DST_OFF + 0x10000 * (i % 3) + 2 * i,
                  1000 + 37 * i, what);
        CHECK_EQ_U64(fx_rd32(fx, REG_HEAD), (i + 1) % 4, "HEAD wraps modulo RING_SIZE");
    }
    CHECK_EQ_U64(fx_rd32(fx, REG_COMPLETED), 10, "COMPLETED after 10 copies in a ring of 4");
    fx_reset_engine(fx, 64);
}

static void case_many_one_doorbell(struct dmacopy_fixture *fx)
{
    enum { N = 63 };
    fx_reset_engine(fx, 64);
    uint32_t src[N], dst[N], len[N];
    unsigned index[N];
    uint32_t src_at = SRC_OFF, dst_at = DST_OFF;
    for (unsigned i = 0; i < N; i++) {
        len[i] = 1 + (i * 997u) % 3000u;
        src[i] = src_at + (i % 4);
        dst[i] = dst_at + GUARD_BYTES + ((i * 3) % 4);
        src_at += len[i] + 8;
        dst_at += len[i] + 2 * GUARD_BYTES + 8;
        prepare_copy(fx, src[i], dst[i], len[i], 1000 + i);
        index[i] = fx_post(fx, GUEST_RAM_BASE + src[i], GUEST_RAM_BASE + dst[i], len[i],
                           i == N - 1 ? DESC_FLAG_IRQ : 0);
    }
    unsigned m0 = fx->msix[0];
    fx_doorbell(fx);
    if (!fx_wait_desc(fx, index[N - 1]))
        return;
    fx->completed += N;
    for (unsigned i = 0; i < N; i++) {
        char what[48];
        snprintf(what, sizeof(what), "descriptor %u of %u (one doorbell)", i, N);
        check_copy(fx, index[i], src[i], dst[i], len[i], what);
    }
    ack_completion_irq(fx, m0, "63 descriptors, IRQ on the last");
    CHECK_EQ_U64(fx_rd32(fx, REG_HEAD), N, "HEAD after 63 descriptors");
    CHECK_EQ_U64(fx_rd32(fx, REG_COMPLETED), N, "COMPLETED after 63 descriptors");
}

/* An error: ERR_CODE, STATUS, the descriptor's error field, vector 1. */
static void expect_error(struct dmacopy_fixture *fx, unsigned index, uint32_t code,
                         unsigned m1_before, bool irq_expected, const char *what)
{
    if (irq_expected) {
        wait_count(fx, &fx->msix[1], m1_before + 1, "the error interrupt (vector 1)");
    } else if (!fx_wait_desc(fx, index)) {
        return;
    }
    CHECK_EQ_U64(fx_rd32(fx, REG_ERR_CODE), code, what);
    uint32_t status = fx_rd32(fx, REG_STATUS);
    CHECK((status & (STATUS_ERROR | STATUS_HALTED)) == (STATUS_ERROR | STATUS_HALTED),
          "%s: STATUS 0x%x, expected ERROR and HALTED", what, status);
    uint32_t irq = fx_rd32(fx, REG_IRQ_STATUS);
    if (irq_expected) {
        CHECK(irq & IRQ_ERROR, "%s: IRQ_STATUS.error not set (0x%x)", what, irq);
        CHECK(fx->msix[1] == m1_before + 1, "%s: %u error interrupts, expected 1", what,
              fx->msix[1] - m1_before);
    } else {
        CHECK(fx->msix[1] == m1_before, "%s: error interrupt although the cause is masked", what);
    }
    uint32_t desc_status = fx_desc_status(fx, index);
    CHECK(((desc_status >> 8) & 0xFF) == code, "%s: descriptor status 0x%08x, expected error %u",
          what, desc_status, code);
}

static void case_error_zero_length(struct dmacopy_fixture *fx)
{
    unsigned m0 = fx->msix[0], m1 = fx->msix[1];
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, 0,
                             DESC_FLAG_IRQ);
    fx_doorbell(fx);
    expect_error(fx, index, 1, m1, true, "zero length: ERR_CODE 1");
    CHECK(fx->msix[0] == m0, "zero length: completion interrupt on an error");
    /* Halted: a good descriptor is not processed until RESET. */
    prepare_copy(fx, SRC_OFF, DST_OFF, 16, 7);
    unsigned next = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, 16, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    uint32_t head = fx_rd32(fx, REG_HEAD);
    CHECK(head == index || head == next, "HEAD 0x%x moved past the failed descriptor", head);
    CHECK(fx_rd32(fx, REG_STATUS) & STATUS_HALTED, "not HALTED after an error");
    CHECK_EQ_U64(fx_desc_status(fx, next), 0, "descriptor processed while halted");
    fx_reset_engine(fx, 64);
    fx_copy(fx, SRC_OFF, DST_OFF, 4096, "copy after RESET from an error");
}

static void case_error_bad_src(struct dmacopy_fixture *fx)
{
    unsigned m1 = fx->msix[1];
    uint64_t refused = fx->dma_refused;
    unsigned index = fx_post(fx, NOT_RAM_SRC, GUEST_RAM_BASE + DST_OFF, 256, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    expect_error(fx, index, 2, m1, true, "source not guest memory: ERR_CODE 2");
    CHECK(fx->dma_refused > refused, "the host never saw the bad read");
    fx->dma_refused = refused;
    fx_reset_engine(fx, 64);
}

static void case_error_bad_dst(struct dmacopy_fixture *fx)
{
    unsigned m1 = fx->msix[1];
    uint64_t refused = fx->dma_refused;
    fill_pattern(fx->ram + SRC_OFF, 256, 99);
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, NOT_RAM_DST, 256, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    expect_error(fx, index, 3, m1, true, "destination not guest memory: ERR_CODE 3");
    CHECK(fx->dma_refused > refused, "the host never saw the bad write");
    fx->dma_refused = refused;
    fx_reset_engine(fx, 64);
}

static void case_irq_masked(struct dmacopy_fixture *fx)
{
    /* Completion masked: the copy completes, no vector 0. */
    fx_wr32(fx, REG_IRQ_MASK, IRQ_COMPLETION);
    CHECK_EQ_U64(fx_rd32(fx, REG_IRQ_MASK), IRQ_COMPLETION, "IRQ_MASK read-back");
    unsigned m0 = fx->msix[0];
    prepare_copy(fx, SRC_OFF, DST_OFF, 300, 5);
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, 300, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    if (fx_wait_desc(fx, index)) {
        fx->completed++;
        check_copy(fx, index, SRC_OFF, DST_OFF, 300, "copy with the completion cause masked");
        CHECK_EQ_U64(fx_rd32(fx, REG_STATUS) & STATUS_BUSY, 0, "BUSY after the masked copy");
        CHECK(fx->msix[0] == m0, "masked completion still raised vector 0");
    }
    /* Unmasked again: the next copy interrupts exactly once (a late
     * interrupt for the masked one would make it two). */
    fx_wr32(fx, REG_IRQ_MASK, 0);
    fx_wr32(fx, REG_IRQ_STATUS, IRQ_COMPLETION | IRQ_ERROR);
    fx_copy(fx, SRC_OFF + 1, DST_OFF + 2, 301, "copy after unmasking");

    /* Error masked: the device halts, no vector 1. */
    fx_wr32(fx, REG_IRQ_MASK, IRQ_ERROR);
    unsigned m1 = fx->msix[1];
    index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, 0, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    expect_error(fx, index, 1, m1, false, "zero length with the error cause masked");
    fx_reset_engine(fx, 64);
    CHECK(fx->msix[1] == m1, "masked error raised vector 1 after all");
}

static void case_intx(struct dmacopy_fixture *fx)
{
    set_msix_enabled(fx, false);
    unsigned m0 = fx->msix[0], asserts = fx->intx_asserts;
    prepare_copy(fx, SRC_OFF, DST_OFF, 2000, 11);
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, 2000, DESC_FLAG_IRQ);
    unsigned early = fx->irq_before_done;
    fx->irq_watch_index = (int)index;
    fx_doorbell(fx);
    if (fx_wait_desc(fx, index)) {
        fx->completed++;
        check_copy(fx, index, SRC_OFF, DST_OFF, 2000, "copy with INTx");
        bool level = true;
        fx_wait_for(fx, pred_intx, &level, "INTx assert");
        fx->irq_watch_index = -1;
        CHECK(fx->irq_before_done == early, "INTx asserted before DONE landed");
        CHECK(fx->intx_asserts == asserts + 1, "INTx asserted %u times", fx->intx_asserts - asserts);
        CHECK(fx_rd32(fx, REG_IRQ_STATUS) & IRQ_COMPLETION, "IRQ_STATUS.completion with INTx");
        uint32_t cs = fx_config_read(fx, 0x04);
        CHECK(cs & (1u << 19), "config status interrupt bit clear while INTx is asserted (0x%08x)", cs);
        fx_wr32(fx, REG_IRQ_STATUS, IRQ_COMPLETION);
        level = false;
        fx_wait_for(fx, pred_intx, &level, "INTx deassert after IRQ_STATUS W1C");
        cs = fx_config_read(fx, 0x04);
        CHECK(!(cs & (1u << 19)), "config status interrupt bit set after deassert (0x%08x)", cs);
        CHECK(fx->msix[0] == m0, "MSI-X vector 0 while MSI-X is off");
    }
    set_msix_enabled(fx, true);
}

static void case_poll_during_copy(struct dmacopy_fixture *fx)
{
    struct tlpb_host_stats before, after;
    tlpb_host_get_stats(fx->host, &before);
    const uint32_t len = 1024u * 1024u;
    prepare_copy(fx, SRC_OFF, DST_OFF, len, 77);
    unsigned m0 = fx->msix[0];
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, len, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    unsigned reads = 0, busy_reads = 0;
    bool first_busy = false;
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (fx_desc_status(fx, index) == 0 && it_now_ms() < deadline) {
        uint32_t st = fx_rd32(fx, REG_STATUS);
        if (reads == 0)
            first_busy = (st & STATUS_BUSY) != 0;
        reads++;
        if (st & STATUS_BUSY)
            busy_reads++;
        CHECK((st & ~STATUS_BUSY) == 0, "STATUS 0x%08x during a copy", st);
        if (st & ~STATUS_BUSY)
            break;
    }
    REQUIRE(fx_desc_status(fx, index) != 0, "1 MiB copy did not finish while polling STATUS");
    fx->completed++;
    check_copy(fx, index, SRC_OFF, DST_OFF, len, "1 MiB copy while polling STATUS");
    ack_completion_irq(fx, m0, "1 MiB copy while polling");
    /* A device whose DMA the bridge serves from shared memory does not wait
     * for this host: it may finish a copy before the first read arrives. A
     * fast device's few DMA requests may be served while this host waits
     * for that read (it serves DMA meanwhile), so it may finish first too. */
    CHECK(first_busy || fx_guest_memory || fx->dma_mode == FX_DMA_FAST,
          "the first STATUS read after the doorbell did not see BUSY");
    tlpb_host_get_stats(fx->host, &after);
    CHECK(after.fallback_reads == before.fallback_reads, "%llu reads answered by a fallback",
          (unsigned long long)(after.fallback_reads - before.fallback_reads));
    printf("  %u STATUS reads during the copy, %u saw BUSY\n", reads, busy_reads);
    CHECK_EQ_U64(fx_rd32(fx, REG_STATUS), 0, "STATUS after the copy");
}

static void case_reset_mid_transfer(struct dmacopy_fixture *fx)
{
    const uint32_t len = 1024u * 1024u;
    prepare_copy(fx, SRC_OFF, DST_OFF, len, 123);
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, len, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    /* The copy needs the host to serve more DMA before it can finish; the
     * reset goes out before the host serves anything else. With guest memory
     * shared the device needs nothing from this host and may finish first,
     * and a fast device's few requests may be served while the host waits
     * for its read: then only what a reset must do anyway is checked. */
    bool busy = fx_rd32(fx, REG_STATUS) & STATUS_BUSY;
    CHECK(busy || fx_guest_memory || fx->dma_mode == FX_DMA_FAST,
          "not BUSY right after the doorbell");
    fx_wr32(fx, REG_CTRL, CTRL_RESET);
    uint32_t st = fx_rd32(fx, REG_STATUS);
    CHECK_EQ_U64(st, 0, "STATUS right after CTRL.RESET during a copy");
    CHECK_EQ_U64(fx_rd32(fx, REG_HEAD), 0, "HEAD after reset during a copy");
    CHECK_EQ_U64(fx_rd32(fx, REG_COMPLETED), 0, "COMPLETED after reset during a copy");
    /* Three round trips later the abandoned descriptor is still not
     * completed (look before the ring is cleared for the next copy). In
     * strict mode only: the host serves DMA requests while it waits for
     * its reads, and a fast device's 1 MiB is few enough requests to be
     * served, and the copy finished, within those round trips. */
    if (!fx_guest_memory && fx->dma_mode == FX_DMA_STRICT)
        CHECK_EQ_U64(fx_desc_status(fx, index), 0, "abandoned descriptor status after the reset");
    fx_reset_engine(fx, 64);
    fx_copy(fx, SRC_OFF + 8, DST_OFF + 0x200000, 8192, "copy after a reset mid-transfer");
}

static void case_bus_master_off(struct dmacopy_fixture *fx)
{
    fx_config_write(fx, 0x04, 0x0002, 0x3); /* memory space only */
    struct tlpb_host_stats before, after;
    tlpb_host_get_stats(fx->host, &before);
    prepare_copy(fx, SRC_OFF, DST_OFF, 5000, 31);
    unsigned m0 = fx->msix[0];
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF, 5000, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    for (unsigned i = 0; i < 4; i++)
        CHECK(fx_rd32(fx, REG_STATUS) & STATUS_BUSY, "not BUSY with a descriptor pending");
    CHECK_EQ_U64(fx_rd32(fx, REG_HEAD), index, "HEAD moved with bus mastering off");
    tlpb_host_get_stats(fx->host, &after);
    CHECK(after.dma_reads == before.dma_reads && after.dma_writes == before.dma_writes,
          "DMA with bus mastering off (%llu reads, %llu writes)",
          (unsigned long long)(after.dma_reads - before.dma_reads),
          (unsigned long long)(after.dma_writes - before.dma_writes));
    CHECK_EQ_U64(fx_desc_status(fx, index), 0, "descriptor status with bus mastering off");
    fx_config_write(fx, 0x04, 0x0006, 0x3);
    if (fx_wait_desc(fx, index)) {
        fx->completed++;
        check_copy(fx, index, SRC_OFF, DST_OFF, 5000, "copy once bus mastering is back");
        ack_completion_irq(fx, m0, "copy once bus mastering is back");
    }
}

void dmacopy_suite_run(struct dmacopy_fixture *fx)
{
    IT_RUN("enumeration", fx_enumerate(fx));
    IT_RUN("init", fx_init_device(fx));
    IT_RUN("scratch 1/2/4-byte", case_scratch(fx));
    IT_RUN("copy 1 byte", case_copy_one_byte(fx));
    IT_RUN("copy odd sizes", case_copy_odd_sizes(fx));
    IT_RUN("copy across 4 KiB", case_copy_4k_crossing(fx));
    IT_RUN("copy 1 MiB", case_copy_1mib(fx));
    IT_RUN("ring wrap", case_ring_wrap(fx));
    IT_RUN("many descriptors, one doorbell", case_many_one_doorbell(fx));
    IT_RUN("error: zero length (vector 1)", case_error_zero_length(fx));
    IT_RUN("error: source not guest memory", case_error_bad_src(fx));
    IT_RUN("error: destination not guest memory", case_error_bad_dst(fx));
    IT_RUN("masked causes", case_irq_masked(fx));
    IT_RUN("INTx with MSI-X off", case_intx(fx));
    IT_RUN("poll STATUS during a 1 MiB copy", case_poll_during_copy(fx));
    IT_RUN("reset in the middle of a transfer", case_reset_mid_transfer(fx));
    IT_RUN("bus master off: the device waits", case_bus_master_off(fx));
    IT_RUN("DMA rules", case_dma_rules(fx));
    printf("  %s: %llu DMA read requests (largest %u bytes), %llu DMA writes (largest %u bytes),"
           " %u + %u MSI-X, %u INTx asserts\n",
           fx->device, (unsigned long long)fx->dma_read_requests, fx->max_dma_read_bytes,
           (unsigned long long)fx->dma_write_requests, fx->max_dma_write_bytes, fx->msix[0],
           fx->msix[1], fx->intx_asserts);
}

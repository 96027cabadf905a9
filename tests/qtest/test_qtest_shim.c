/* tlpbridge-pci under QEMU's qtest accelerator: the test plays the CPU and
 * firmware (config cycles, BAR programming, MMIO, guest memory) while a real
 * tlpbridged with the dmacopy model serves the device.
 *
 *   test_qtest_shim --qemu QEMU --tlpbridged BRIDGE --model libdmacopy.so --mode MODE
 *
 * Modes, one ctest each:
 *   layout     config space built from the bridge's description: IDs, class,
 *              BAR sizing, PCIe capability at 0x40, MSI-X at 0xA0
 *   mmio       BAR programming, ID and SCRATCH through the whole path
 *   dma        a descriptor copy from guest memory: data, CRC, DONE, the
 *              MSI-X message in guest memory; a DMA from an address that is
 *              not memory ends in ERR_CODE 2 and vector 1, QEMU survives
 *   nobridge   no bridge at all: description from properties, reads return
 *              the fallback value, writes are dropped, QEMU survives
 *   reconnect  the bridge is killed and restarted: reads fall back, then
 *              work again, and DMA works after the config replay
 *   hotplug    device_add / device_del under a pcie-root-port, repeatedly
 *   token      a bridge on TCP that requires a token: QEMU without it is
 *              refused (the device answers from its fallback, QEMU
 *              survives); with the token in a secret object it is served
 *
 * Guest-physical layout used: root port 00:04.0 with secondary bus 1 and a
 * memory window at 0xfe000000; BAR0 0xfe000000, BAR2 0xfe001000; descriptor
 * ring 0x100000, source 0x200000, destination 0x280000, MSI-X messages at
 * 0x300000 (vector 0) and 0x300010 (vector 1): plain RAM, so a delivered
 * message is a visible memory write. */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../dmacopy_spec.h" /* the tests' own register map, on purpose */
#include "harness.h"
#include "qtest_client.h"

#define RP_DEV 4          /* root port at 00:04.0 */
#define DEV_BUS 1         /* the device at 01:00.0 */
#define BAR0_ADDR 0xfe000000u
#define BAR2_ADDR 0xfe001000u

#define DMACOPY_ID 0x7A110001u

#define RING_ADDR 0x100000u
#define SRC_ADDR 0x200000u
#define DST_ADDR 0x280000u
#define MSG0_ADDR 0x300000u
#define MSG1_ADDR 0x300010u
#define MSG0_DATA 0x00c0ffeeu
#define MSG1_DATA 0x0000bad1u

static const char *qemu_binary;

/* ---- Setup helpers --------------------------------------------------------- */

/* Stop QEMU: it must exit cleanly; its log is shown when anything failed. */
static void finish_qemu(struct qt_qemu *q, int failures_before)
{
    CHECK(qt_stop(q), "QEMU exits cleanly");
    if (it_failures != failures_before || getenv("TLPB_IT_VERBOSE"))
        qt_dump_log(q);
}

static void start_bridge(void)
{
    char device[512];
    snprintf(device, sizeof(device), "dmacopy0:hlsim=%s", it_paths.model);
    const char *args[] = {"--device", device, NULL};
    it_start_bridge(args);
}

/* QEMU with one root port and the device behind it. */
static void start_qemu(struct qt_qemu *q, const char *device_extra, bool qmp)
{
    char dev[1024];
    snprintf(dev, sizeof(dev), "tlpbridge-pci,id=tlpb0,bus=rp0,socket=%s,device=dmacopy0%s%s",
             it.socket_path, device_extra && *device_extra ? "," : "",
             device_extra ? device_extra : "");
    const char *args[] = {"-device", "pcie-root-port,id=rp0,chassis=1,bus=pcie.0,addr=0x4",
                          "-device", dev, NULL};
    qt_start(q, qemu_binary, args, qmp);
}

/* What firmware does for the root port: bus numbers, a memory window for
 * the device's BARs, memory decoding and bus mastering (for upstream DMA). */
static void setup_root_port(struct qt_qemu *q)
{
    qt_cfg_write(q, 0, RP_DEV, 0x18, 4, 0x00000000u | (DEV_BUS << 8) | (DEV_BUS << 16));
    qt_cfg_write(q, 0, RP_DEV, 0x20, 4, 0xfe00fe00u); /* 0xfe000000..0xfe0fffff */
    qt_cfg_write(q, 0, RP_DEV, 0x04, 2, 0x0006);
}

/* Program the device's BARs and enable memory decoding and bus mastering. */
static void map_device(struct qt_qemu *q)
{
    qt_cfg_write(q, DEV_BUS, 0, 0x10, 4, BAR0_ADDR);
    qt_cfg_write(q, DEV_BUS, 0, 0x18, 4, BAR2_ADDR);
    qt_cfg_write(q, DEV_BUS, 0, 0x04, 2, 0x0006);
}

/* MSI-X on, entry 0 and 1 aimed at RAM, both unmasked. */
static void setup_msix(struct qt_qemu *q)
{
    qt_cfg_write(q, DEV_BUS, 0, 0xA2, 2, 0x8000);
    qt_writel(q, BAR2_ADDR + 0x00, MSG0_ADDR);
    qt_writel(q, BAR2_ADDR + 0x04, 0);
    qt_writel(q, BAR2_ADDR + 0x08, MSG0_DATA);
    qt_writel(q, BAR2_ADDR + 0x0C, 0);
    qt_writel(q, BAR2_ADDR + 0x10, MSG1_ADDR);
    qt_writel(q, BAR2_ADDR + 0x14, 0);
    qt_writel(q, BAR2_ADDR + 0x18, MSG1_DATA);
    qt_writel(q, BAR2_ADDR + 0x1C, 0);
}

static uint32_t reg_read(struct qt_qemu *q, unsigned reg)
{
    return qt_readl(q, BAR0_ADDR + reg);
}

static void reg_write(struct qt_qemu *q, unsigned reg, uint32_t value)
{
    qt_writel(q, BAR0_ADDR + reg, value);
}

/* Poll guest memory (DMA lands there without any CPU involvement) until
 * (value & mask) == want, bounded by the deadline. The model runs in another
 * process, so this is waiting for an event, not for time to pass. */
static bool wait_mem(struct qt_qemu *q, uint64_t addr, uint32_t mask, uint32_t want,
                     uint32_t *last)
{
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    uint32_t v;
    do {
        v = qt_readl(q, addr);
        if ((v & mask) == want)
            break;
    } while (it_now_ms() < deadline);
    if (last)
        *last = v;
    return (v & mask) == want;
}

struct descriptor {
    uint64_t src, dst;
    uint32_t len, flags, status, crc;
};

static void put_descriptor(struct qt_qemu *q, unsigned index, const struct descriptor *d)
{
    uint8_t raw[32];
    memcpy(raw, &d->src, 8);
    memcpy(raw + 8, &d->dst, 8);
    memcpy(raw + 16, &d->len, 4);
    memcpy(raw + 20, &d->flags, 4);
    memcpy(raw + 24, &d->status, 4);
    memcpy(raw + 28, &d->crc, 4);
    qt_memwrite(q, RING_ADDR + 32u * index, raw, sizeof(raw));
}

/* Ring of 4 at RING_ADDR, engine enabled. */
static void setup_ring(struct qt_qemu *q)
{
    reg_write(q, REG_RING_LO, RING_ADDR);
    reg_write(q, REG_RING_HI, 0);
    reg_write(q, REG_RING_SIZE, 4);
    reg_write(q, REG_CTRL, 1);
}

/* One copy of len bytes through descriptor `index`, checked for data, CRC,
 * DONE, COMPLETED and the vector 0 message. */
static void copy_and_check(struct qt_qemu *q, unsigned index, uint32_t len, uint8_t seed)
{
    uint8_t *src = malloc(len), *dst = malloc(len);
    REQUIRE(src && dst, "out of memory");
    for (uint32_t i = 0; i < len; i++)
        src[i] = (uint8_t)(i * 7u + seed);
    qt_memwrite(q, SRC_ADDR, src, len);
    memset(dst, 0, len);
    qt_memwrite(q, DST_ADDR, dst, len);
    qt_writel(q, MSG0_ADDR, 0);
    uint32_t completed = reg_read(q, REG_COMPLETED);

    struct descriptor d = {.src = SRC_ADDR, .dst = DST_ADDR, .len = len, .flags = 1};
    put_descriptor(q, index, &d);
    reg_write(q, REG_TAIL, (index + 1) % 4);

    uint32_t status = 0;
    CHECK(wait_mem(q, RING_ADDR + 32u * index + 24, 1, 1, &status),
          "descriptor %u not DONE (status 0x%x)", index, status);
    CHECK_EQ_U64(status & 0xFF00u, 0, "descriptor error code");
    qt_memread(q, DST_ADDR, dst, len);
    CHECK(memcmp(src, dst, len) == 0, "copied data differs from the source (%u bytes)", len);
    uint32_t crc = qt_readl(q, RING_ADDR + 32u * index + 28);
    CHECK_EQ_U64(crc, crc32(0, src, len), "descriptor CRC");
    uint32_t msg = 0;
    CHECK(wait_mem(q, MSG0_ADDR, 0xFFFFFFFFu, MSG0_DATA, &msg),
          "MSI-X vector 0 message not written (0x%x)", msg);
    CHECK_EQ_U64(reg_read(q, REG_COMPLETED), completed + 1, "COMPLETED");
    CHECK_EQ_U64(reg_read(q, REG_HEAD), (index + 1) % 4, "HEAD");
    CHECK(reg_read(q, REG_IRQ_STATUS) & 1u, "IRQ_STATUS completion bit");
    reg_write(q, REG_IRQ_STATUS, 1); /* RW1C */
    free(src);
    free(dst);
}

/* ---- Modes ------------------------------------------------------------------ */

static void check_dmacopy_layout(struct qt_qemu *q)
{
    CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, 0x00, 4), 0x7a111234u, "vendor/device ID");
    CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, 0x08, 4), 0x08800001u, "class code and revision");
    CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, 0x0E, 1) & 0x7F, 0, "header type 0");
    CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, 0x3D, 1), 1, "interrupt pin INTA");

    /* BAR sizing: all-ones in, size mask out */
    static const uint32_t expect[6] = {0xfffff000u, 0, 0xfffff000u, 0, 0, 0};
    for (unsigned bar = 0; bar < 6; bar++) {
        unsigned reg = 0x10 + 4 * bar;
        qt_cfg_write(q, DEV_BUS, 0, reg, 4, 0xffffffffu);
        char what[32];
        snprintf(what, sizeof(what), "BAR%u sizing", bar);
        CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, reg, 4), expect[bar], what);
        qt_cfg_write(q, DEV_BUS, 0, reg, 4, 0);
    }

    CHECK(qt_cfg_read(q, DEV_BUS, 0, 0x06, 2) & 0x10, "capability list bit");
    CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, 0x34, 1), 0x40, "capability pointer");
    uint32_t pcie = qt_cfg_read(q, DEV_BUS, 0, 0x40, 4);
    CHECK_EQ_U64(pcie & 0xFF, 0x10, "PCI Express capability ID at 0x40");
    CHECK_EQ_U64((pcie >> 20) & 0xF, 0, "device/port type: PCI Express endpoint");
    CHECK_EQ_U64((pcie >> 16) & 0xF, 2, "PCI Express capability version 2");
    CHECK(qt_cfg_read(q, DEV_BUS, 0, 0x44, 4) & (1u << 28), "DEVCAP: function-level reset");
    CHECK_EQ_U64(qt_cfg_find_cap(q, DEV_BUS, 0, 0x11), 0xA0, "MSI-X capability offset");
    CHECK_EQ_U64(qt_cfg_find_cap(q, DEV_BUS, 0, 0x05), 0, "no MSI capability");
    uint32_t msix = qt_cfg_read(q, DEV_BUS, 0, 0xA0, 4);
    CHECK_EQ_U64(msix & 0xFF, 0x11, "MSI-X capability ID at 0xA0");
    CHECK_EQ_U64((msix >> 16) & 0x7FF, 1, "MSI-X table size (N-1)");
    CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, 0xA4, 4), 0x00000002u, "MSI-X table: BIR 2, offset 0");
    CHECK_EQ_U64(qt_cfg_read(q, DEV_BUS, 0, 0xA8, 4), 0x00000802u, "MSI-X PBA: BIR 2, offset 0x800");
}

static void mode_layout(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    start_bridge();
    start_qemu(&q, NULL, false);
    setup_root_port(&q);
    check_dmacopy_layout(&q);
    CHECK(qt_log_contains(&q, "description from the bridge"), "realized from the bridge's description");
    CHECK(!qt_log_contains(&q, "describes the device differently"), "no description mismatch");
    finish_qemu(&q, failures);
}

static void mode_mmio(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    start_bridge();
    start_qemu(&q, NULL, true);
    setup_root_port(&q);
    map_device(&q);

    CHECK_EQ_U64(reg_read(&q, REG_ID), DMACOPY_ID, "ID register");
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0, "SCRATCH after reset");
    reg_write(&q, REG_SCRATCH, 0xdeadbeefu);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0xdeadbeefu, "SCRATCH 4-byte read-back");
    qt_write(&q, BAR0_ADDR + REG_SCRATCH + 1, 1, 0x5a);
    CHECK_EQ_U64(qt_read(&q, BAR0_ADDR + REG_SCRATCH + 1, 1), 0x5a, "SCRATCH byte 1");
    qt_write(&q, BAR0_ADDR + REG_SCRATCH + 2, 2, 0x1234);
    CHECK_EQ_U64(qt_read(&q, BAR0_ADDR + REG_SCRATCH + 2, 2), 0x1234, "SCRATCH upper half");
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0x12345aefu, "SCRATCH after narrow writes");
    CHECK_EQ_U64(qt_read(&q, BAR0_ADDR + REG_ID, 8), ((uint64_t)0x12345aefu << 32) | DMACOPY_ID,
                 "8-byte read of ID and SCRATCH");
    /* a burst of posted writes, then a read: the read sees the last one */
    for (uint32_t i = 1; i <= 100; i++)
        reg_write(&q, REG_SCRATCH, i);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 100, "read ordered after posted writes");
    CHECK_EQ_U64(reg_read(&q, 0x800), 0, "unimplemented register reads 0");

    /* MSI-X table and PBA are QEMU's; vectors come out of reset masked */
    CHECK_EQ_U64(qt_readl(&q, BAR2_ADDR + 0x0C), 1, "MSI-X entry 0 vector control (masked)");
    qt_writel(&q, BAR2_ADDR + 0x08, 0x4321);
    CHECK_EQ_U64(qt_readl(&q, BAR2_ADDR + 0x08), 0x4321, "MSI-X entry 0 data");
    CHECK_EQ_U64(qt_readl(&q, BAR2_ADDR + 0x800), 0, "PBA");

    /* memory decoding off: the BAR is not mapped, the bridge sees nothing */
    qt_cfg_write(&q, DEV_BUS, 0, 0x04, 2, 0x0000);
    CHECK(reg_read(&q, REG_ID) != DMACOPY_ID, "no decode with memory space disabled");
    qt_cfg_write(&q, DEV_BUS, 0, 0x04, 2, 0x0006);
    CHECK_EQ_U64(reg_read(&q, REG_ID), DMACOPY_ID, "ID again after re-enabling");

    /* Function-level reset: the initiate-FLR config write reaches the model
     * (its registers reset), and QEMU resets its side (BARs unprogrammed). */
    reg_write(&q, REG_SCRATCH, 0xabcd);
    uint32_t devctl = qt_cfg_read(&q, DEV_BUS, 0, 0x48, 2);
    qt_cfg_write(&q, DEV_BUS, 0, 0x48, 2, devctl | 0x8000u);
    CHECK_EQ_U64(qt_cfg_read(&q, DEV_BUS, 0, 0x04, 2) & 0x6u, 0, "command register after FLR");
    CHECK_EQ_U64(qt_cfg_read(&q, DEV_BUS, 0, 0x48, 2) & 0x8000u, 0, "initiate-FLR reads 0");
    map_device(&q);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0, "SCRATCH after FLR");
    CHECK(it_log_contains(it.bridge, "function-level reset"), "the model saw a function-level reset");

    /* System reset: a hot reset reaches the model. */
    reg_write(&q, REG_SCRATCH, 0x5555);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0x5555, "SCRATCH before system reset");
    CHECK(qt_qmp(&q, "{\"execute\": \"system_reset\"}", NULL, 0), "system_reset");
    CHECK(qt_qmp_wait_event(&q, "\"RESET\""), "RESET event");
    setup_root_port(&q);
    map_device(&q);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0, "SCRATCH after system reset");
    CHECK_EQ_U64(reg_read(&q, REG_ID), DMACOPY_ID, "ID after system reset");
    finish_qemu(&q, failures);
}

static void mode_dma(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    start_bridge();
    start_qemu(&q, NULL, false);
    setup_root_port(&q);
    map_device(&q);
    setup_msix(&q);
    setup_ring(&q);

    copy_and_check(&q, 0, 1, 3);
    copy_and_check(&q, 1, 5000, 11);  /* crosses 4 KiB boundaries: split DMA */
    copy_and_check(&q, 2, 64 * 1024, 29);

    /* A source that is not guest memory: the DMA read completes with UR,
     * the device halts with ERR_CODE 2 and signals vector 1. */
    qt_writel(&q, MSG1_ADDR, 0);
    struct descriptor bad = {.src = 0x7f0000000000ull, .dst = DST_ADDR, .len = 256, .flags = 1};
    put_descriptor(&q, 3, &bad);
    reg_write(&q, REG_TAIL, 0);
    uint32_t msg = 0;
    CHECK(wait_mem(&q, MSG1_ADDR, 0xFFFFFFFFu, MSG1_DATA, &msg),
          "MSI-X vector 1 (error) message not written (0x%x)", msg);
    CHECK_EQ_U64(reg_read(&q, REG_ERR_CODE), 2, "ERR_CODE: DMA read failed");
    CHECK_EQ_U64(reg_read(&q, REG_STATUS) & 0x6u, 0x6u, "STATUS: ERROR and HALTED");
    CHECK(qt_alive(&q), "QEMU survives a DMA outside guest memory");

    /* bus mastering off: DMA is held, then completes when it is back on */
    reg_write(&q, REG_CTRL, 2); /* RESET */
    setup_ring(&q);
    qt_cfg_write(&q, DEV_BUS, 0, 0x04, 2, 0x0002);
    qt_writel(&q, MSG0_ADDR, 0);
    uint8_t byte = 0x77;
    qt_memwrite(&q, SRC_ADDR, &byte, 1);
    struct descriptor d = {.src = SRC_ADDR, .dst = DST_ADDR, .len = 1, .flags = 1};
    put_descriptor(&q, 0, &d);
    reg_write(&q, REG_TAIL, 1);
    CHECK_EQ_U64(reg_read(&q, REG_STATUS) & 1u, 1, "BUSY while bus mastering is off");
    CHECK_EQ_U64(qt_readl(&q, RING_ADDR + 24) & 1u, 0, "no DONE without bus mastering");
    qt_cfg_write(&q, DEV_BUS, 0, 0x04, 2, 0x0006);
    CHECK(wait_mem(&q, RING_ADDR + 24, 1, 1, NULL), "DONE once bus mastering is on");
    CHECK_EQ_U64(qt_read(&q, DST_ADDR, 1), 0x77, "byte copied");

    /* MSI-X off: the completion asserts INTx (seen in the status register's
     * interrupt-status bit), and clearing IRQ_STATUS deasserts it. */
    reg_write(&q, REG_IRQ_STATUS, 3);
    qt_cfg_write(&q, DEV_BUS, 0, 0xA2, 2, 0x0000);
    put_descriptor(&q, 1, &d);
    reg_write(&q, REG_TAIL, 2);
    CHECK(wait_mem(&q, RING_ADDR + 32 + 24, 1, 1, NULL), "DONE with MSI-X off");
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    while (!(qt_cfg_read(&q, DEV_BUS, 0, 0x06, 2) & 0x8u) && it_now_ms() < deadline)
        ;
    CHECK(qt_cfg_read(&q, DEV_BUS, 0, 0x06, 2) & 0x8u, "INTx asserted");
    reg_write(&q, REG_IRQ_STATUS, 1);
    deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    while ((qt_cfg_read(&q, DEV_BUS, 0, 0x06, 2) & 0x8u) && it_now_ms() < deadline)
        ;
    CHECK_EQ_U64(qt_cfg_read(&q, DEV_BUS, 0, 0x06, 2) & 0x8u, 0, "INTx deasserted");
    finish_qemu(&q, failures);
}

static void mode_nobridge(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    /* no tlpbridged: nothing listens on it.socket_path */
    char dev2[512];
    snprintf(dev2, sizeof(dev2),
             "tlpbridge-pci,id=tlpb1,bus=rp1,socket=%s,device=other,vendor-id=0x1af4,"
             "device-id=0x1111,class-code=0x058000,revision=7,bar0-size=0x10000,bar-64bit=1,"
             "bar2-size=0,bar4-size=0x2000,msix-vectors=4,msix-bar=4,msix-pba-offset=0x1000,"
             "msi-vectors=2,intx-pin=2,fallback-value=0x12345678",
             it.socket_path);
    char dev1[512];
    snprintf(dev1, sizeof(dev1), "tlpbridge-pci,id=tlpb0,bus=rp0,socket=%s,device=dmacopy0",
             it.socket_path);
    const char *args[] = {"-device", "pcie-root-port,id=rp0,chassis=1,bus=pcie.0,addr=0x4",
                          "-device", dev1,
                          "-device", "pcie-root-port,id=rp1,chassis=2,bus=pcie.0,addr=0x5",
                          "-device", dev2, NULL};
    qt_start(&q, qemu_binary, args, false);
    setup_root_port(&q);
    check_dmacopy_layout(&q);
    CHECK(qt_log_contains(&q, "description from properties"), "realized from properties");
    CHECK(qt_log_contains(&q, "bridge not reachable"), "the missing bridge is reported");
    map_device(&q);
    CHECK_EQ_U64(reg_read(&q, REG_ID), 0xffffffffu, "ID reads all-ones");
    reg_write(&q, REG_SCRATCH, 0x1234);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0xffffffffu, "SCRATCH write dropped, all-ones");
    CHECK_EQ_U64(qt_read(&q, BAR0_ADDR + 2, 2), 0xffffu, "2-byte read all-ones");
    setup_msix(&q); /* QEMU's table still works */
    CHECK_EQ_U64(qt_readl(&q, BAR2_ADDR + 0x08), MSG0_DATA, "MSI-X table without a bridge");

    /* The second device, described by properties: 64-bit BAR0 of 64 KiB,
     * MSI-X (4 vectors) and the rest of BAR4, MSI, INTB. */
    qt_cfg_write(&q, 0, 5, 0x18, 4, (2u << 8) | (2u << 16));
    qt_cfg_write(&q, 0, 5, 0x20, 4, 0xfe20fe10u); /* 0xfe100000..0xfe2fffff */
    qt_cfg_write(&q, 0, 5, 0x04, 2, 0x0006);
    CHECK_EQ_U64(qt_cfg_read(&q, 2, 0, 0x00, 4), 0x11111af4u, "second device IDs");
    CHECK_EQ_U64(qt_cfg_read(&q, 2, 0, 0x08, 4), 0x05800007u, "second device class/revision");
    CHECK_EQ_U64(qt_cfg_read(&q, 2, 0, 0x3D, 1), 2, "second device INTB");
    qt_cfg_write(&q, 2, 0, 0x10, 4, 0xffffffffu);
    CHECK_EQ_U64(qt_cfg_read(&q, 2, 0, 0x10, 4), 0xffff0004u, "64-bit BAR0 of 64 KiB");
    qt_cfg_write(&q, 2, 0, 0x20, 4, 0xffffffffu);
    CHECK_EQ_U64(qt_cfg_read(&q, 2, 0, 0x20, 4), 0xffffe000u, "BAR4 of 8 KiB");
    CHECK_EQ_U64(qt_cfg_find_cap(&q, 2, 0, 0x05), 0x80, "MSI at 0x80");
    CHECK_EQ_U64(qt_cfg_find_cap(&q, 2, 0, 0x11), 0xA0, "MSI-X at 0xA0");
    CHECK_EQ_U64((qt_cfg_read(&q, 2, 0, 0xA0, 4) >> 16) & 0x7FF, 3, "4 MSI-X vectors");
    CHECK_EQ_U64(qt_cfg_read(&q, 2, 0, 0xA8, 4), 0x00001004u, "PBA in BAR4 at 0x1000");
    qt_cfg_write(&q, 2, 0, 0x10, 4, 0xfe100000u);
    qt_cfg_write(&q, 2, 0, 0x14, 4, 0);
    qt_cfg_write(&q, 2, 0, 0x20, 4, 0xfe200000u);
    qt_cfg_write(&q, 2, 0, 0x04, 2, 0x0006);
    CHECK_EQ_U64(qt_readl(&q, 0xfe100000u), 0x12345678u, "fallback-value");
    CHECK_EQ_U64(qt_readl(&q, 0xfe201800u), 0x12345678u, "forwarded part of the MSI-X BAR");
    CHECK_EQ_U64(qt_readl(&q, 0xfe20000cu), 1, "MSI-X entry 0 masked");

    CHECK(qt_alive(&q), "QEMU survives without a bridge");
    finish_qemu(&q, failures);
}

static void mode_reconnect(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    start_bridge();
    start_qemu(&q, "reconnect-ms=20", false);
    setup_root_port(&q);
    map_device(&q);
    setup_msix(&q);
    CHECK_EQ_U64(reg_read(&q, REG_ID), DMACOPY_ID, "ID with the bridge up");

    it_signal(it.bridge, SIGKILL);
    it_wait_exit(it.bridge);
    /* The first read after the loss may still find the socket open; the
     * loss is seen within a couple of requests. */
    uint32_t id = 0;
    for (unsigned i = 0; i < 10 && id != 0xffffffffu; i++)
        id = reg_read(&q, REG_ID);
    CHECK_EQ_U64(id, 0xffffffffu, "ID reads all-ones while the bridge is gone");
    reg_write(&q, REG_SCRATCH, 5); /* dropped, counted */
    CHECK(qt_alive(&q), "QEMU survives the bridge's death");

    start_bridge();
    /* Reconnection is retried every 20 ms (and on a read when due): bounded
     * polling until the device answers again. */
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    do
        id = reg_read(&q, REG_ID);
    while (id != DMACOPY_ID && it_now_ms() < deadline);
    CHECK_EQ_U64(id, DMACOPY_ID, "ID after the bridge came back");
    CHECK(qt_log_contains(&q, "connection lost"), "the loss is reported");
    reg_write(&q, REG_SCRATCH, 0xfeedu);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0xfeedu, "SCRATCH after reconnecting");

    /* The new model learnt BARs, bus mastering and MSI-X enable from the
     * config replay: DMA and MSI-X work without reprogramming config space. */
    setup_ring(&q);
    copy_and_check(&q, 0, 3000, 5);
    finish_qemu(&q, failures);
}

static void mode_hotplug(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    start_bridge();
    /* Native PCIe hot-plug (the root port's slot registers), which a test
     * without a guest can drive; q35's default is ACPI hot-plug. */
    const char *args[] = {"-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
                          "-device", "pcie-root-port,id=rp0,chassis=1,bus=pcie.0,addr=0x4", NULL};
    qt_start(&q, qemu_binary, args, true);
    setup_root_port(&q);
    unsigned exp = qt_cfg_find_cap(&q, 0, RP_DEV, 0x10);
    REQUIRE(exp != 0, "root port has no PCI Express capability");

    for (unsigned round = 0; round < 3; round++) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd),
                 "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"tlpbridge-pci\", "
                 "\"id\": \"hp0\", \"bus\": \"rp0\", \"socket\": \"%s\", \"device\": \"dmacopy0\"}}",
                 it.socket_path);
        CHECK(qt_qmp(&q, cmd, NULL, 0), "device_add round %u", round);
        /* the slot is powered on the way a guest's pciehp driver would */
        qt_cfg_write(&q, 0, RP_DEV, exp + 0x18, 2, 0x01C0 & ~0x0400u); /* PIC on (01), PCC on */
        CHECK_EQ_U64(qt_cfg_read(&q, DEV_BUS, 0, 0x00, 4), 0x7a111234u, "IDs after hot-plug");
        map_device(&q);
        CHECK_EQ_U64(reg_read(&q, REG_ID), DMACOPY_ID, "ID through the hot-plugged device");

        /* The guest powers the slot off (as pciehp does when it accepts the
         * unplug request); QEMU then removes the device at once. */
        CHECK(qt_qmp(&q, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"hp0\"}}", NULL,
                     0),
              "device_del round %u", round);
        qt_cfg_write(&q, 0, RP_DEV, exp + 0x18, 2, 0x03C0 | 0x0400u); /* PIC off, PCC off */
        CHECK(qt_qmp_wait_event(&q, "DEVICE_DELETED"), "DEVICE_DELETED round %u", round);
        CHECK_EQ_U64(qt_cfg_read(&q, DEV_BUS, 0, 0x00, 4), 0xffffffffu, "slot empty after unplug");
        CHECK(qt_alive(&q), "QEMU alive after unplug round %u", round);
    }
    finish_qemu(&q, failures);
}

/* The TCP address the bridge bound ("--tcp 127.0.0.1:0"), from its log. */
static void bridge_tcp_address(char *out, size_t out_size)
{
    char *log = it_read_log(it.bridge);
    const char *at = log ? strstr(log, "listening on tcp:127.0.0.1:") : NULL;
    REQUIRE(at != NULL, "the bridge did not log its TCP port");
    snprintf(out, out_size, "tcp:127.0.0.1:%d", atoi(at + strlen("listening on tcp:127.0.0.1:")));
    free(log);
}

/* QEMU whose device connects to address, with a secret object holding the
 * token when token_path is given (token-secret names it). */
static void start_qemu_tcp(struct qt_qemu *q, const char *address, const char *token_path)
{
    char dev[1024], secret[512];
    snprintf(dev, sizeof(dev), "tlpbridge-pci,id=tlpb0,bus=rp0,socket=%s,device=dmacopy0%s",
             address, token_path ? ",token-secret=tlpbtok" : "");
    snprintf(secret, sizeof(secret), "secret,id=tlpbtok,file=%s", token_path ? token_path : "");
    const char *args[] = {"-device", "pcie-root-port,id=rp0,chassis=1,bus=pcie.0,addr=0x4",
                          "-device", dev, token_path ? "-object" : NULL, secret, NULL};
    qt_start(q, qemu_binary, args, false);
}

static void mode_token(void)
{
    const char *token_path = it_path("bridge.token");
    FILE *f = fopen(token_path, "w");
    REQUIRE(f && fputs("qtest-token-5e1d\n", f) >= 0 && fclose(f) == 0, "write %s", token_path);
    char device[512];
    snprintf(device, sizeof(device), "dmacopy0:hlsim=%s", it_paths.model);
    const char *args[] = {"--device", device, "--tcp", "127.0.0.1:0", "--token-file", token_path,
                          NULL};
    it_start_bridge(args);
    char address[96];
    bridge_tcp_address(address, sizeof(address));

    struct qt_qemu q;
    int failures = it_failures;
    start_qemu_tcp(&q, address, NULL);
    setup_root_port(&q);
    map_device(&q);
    CHECK_EQ_U64(reg_read(&q, REG_ID), 0xFFFFFFFFu, "ID without the token (fallback)");
    CHECK(it_log_contains(it.bridge, "bad or missing token"), "the bridge refused the handshake");
    CHECK(qt_alive(&q), "QEMU survives a refused handshake");
    finish_qemu(&q, failures);

    failures = it_failures;
    start_qemu_tcp(&q, address, token_path);
    setup_root_port(&q);
    map_device(&q);
    CHECK_EQ_U64(reg_read(&q, REG_ID), DMACOPY_ID, "ID with the token from the secret object");
    reg_write(&q, REG_SCRATCH, 0x70c3e11du);
    CHECK_EQ_U64(reg_read(&q, REG_SCRATCH), 0x70c3e11du, "SCRATCH read-back over TCP");
    finish_qemu(&q, failures);
}

int main(int argc, char **argv)
{
    /* --qemu is ours; everything else goes to the harness. */
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--qemu") == 0 && i + 1 < argc)
            qemu_binary = argv[++i];
        else
            rest[n++] = argv[i];
    }
    it_init(n, rest, "test_qtest_shim");
    REQUIRE(qemu_binary != NULL, "--qemu QEMU not given");
    REQUIRE(it_paths.mode != NULL, "--mode not given");
    REQUIRE(it_paths.model != NULL, "--model not given");

    const char *mode = it_paths.mode;
    if (strcmp(mode, "layout") == 0)
        IT_RUN("config space layout", mode_layout());
    else if (strcmp(mode, "mmio") == 0)
        IT_RUN("MMIO through the bridge", mode_mmio());
    else if (strcmp(mode, "dma") == 0)
        IT_RUN("DMA copy and MSI-X", mode_dma());
    else if (strcmp(mode, "nobridge") == 0)
        IT_RUN("no bridge", mode_nobridge());
    else if (strcmp(mode, "reconnect") == 0)
        IT_RUN("bridge killed and restarted", mode_reconnect());
    else if (strcmp(mode, "hotplug") == 0)
        IT_RUN("hot-plug and unplug", mode_hotplug());
    else if (strcmp(mode, "token") == 0)
        IT_RUN("token from a secret object", mode_token());
    else
        REQUIRE(false, "unknown --mode %s", mode);
    int rc = it_finish();
    free(rest);
    return rc;
}

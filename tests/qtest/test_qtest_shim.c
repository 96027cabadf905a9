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
 *   msixmask   MSI-X masking, which the shim's MSI-X emulation owns: a
 *              completion while vector 0 is masked (Vector Control) sets
 *              its Pending bit and writes no message, unmasking delivers
 *              it and clears the bit; the same with the Function Mask
 *   nobridge   no bridge at all: description from properties, reads return
 *              the fallback value, writes are dropped, QEMU survives
 *   reconnect  the bridge is killed and restarted: reads fall back, then
 *              work again, and DMA works after the config replay
 *   hotplug    device_add / device_del under a pcie-root-port, repeatedly
 *   token      a bridge on TCP that requires a token: QEMU without it is
 *              refused (the device answers from its fallback, QEMU
 *              survives); with the token in a secret object it is served
 *   coupled    time=coupled against a scripted coupled-time bridge
 *              (coupled_bridge.c), the clock moved by qtest's clock_step:
 *              requests stamped with the virtual clock, GRANTs at each
 *              quantum boundary while the device is busy and none while it
 *              is idle, an interrupt applied in the grant wait, and one the
 *              device sent early not before it, counters
 *   coupled-refused  time=coupled under TCG without precise icount and
 *              sleep=off: QEMU exits with the options it needs; with them
 *              the device realizes; a bad time value is refused
 *
 * Guest-physical layout used: root port 00:04.0 with secondary bus 1 and a
 * memory window at 0xfe000000; BAR0 0xfe000000, BAR2 0xfe001000; descriptor
 * ring 0x100000, source 0x200000, destination 0x280000, MSI-X messages at
 * 0x300000 (vector 0) and 0x300010 (vector 1): plain RAM, so a delivered
 * message is a visible memory write. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../dmacopy_spec.h" /* the tests' own register map, on purpose */
#include "coupled_bridge.h"
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

/* A bridge and QEMU with the dmacopy device enumerated, MSI-X on (both
 * entries aimed at RAM) and the descriptor ring set up: ready for copies. */
static void start_copy_device(struct qt_qemu *q)
{
    start_bridge();
    start_qemu(q, NULL, false);
    setup_root_port(q);
    map_device(q);
    setup_msix(q);
    setup_ring(q);
}

static void mode_dma(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    start_copy_device(&q);

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

/* A one-byte copy through descriptor `index` whose completion interrupt
 * (vector 0) is masked: once the interrupt reached QEMU, vector 0 is
 * pending in the PBA and no message was written. */
static void copy_while_masked(struct qt_qemu *q, unsigned index, const char *what)
{
    qt_writel(q, MSG0_ADDR, 0);
    uint8_t byte = (uint8_t)(0x50u + index);
    qt_memwrite(q, SRC_ADDR, &byte, 1);
    struct descriptor d = {.src = SRC_ADDR, .dst = DST_ADDR, .len = 1, .flags = DESC_FLAG_IRQ};
    put_descriptor(q, index, &d);
    reg_write(q, REG_TAIL, (index + 1) % 4);
    CHECK(wait_mem(q, RING_ADDR + 32u * index + 24, 1, 1, NULL), "%s: descriptor %u not DONE",
          what, index);
    CHECK_EQ_U64(qt_read(q, DST_ADDR, 1), byte, "byte copied");
    /* The device signals after its DONE write reached guest memory: the
     * Pending bit, not DONE, says QEMU has taken the interrupt. A vector
     * delivered despite its mask never sets it. */
    uint32_t pba = 0;
    CHECK(wait_mem(q, BAR2_ADDR + 0x800, 1u, 1u, &pba), "%s: PBA pending bit 0 not set (PBA 0x%x)",
          what, pba);
    CHECK_EQ_U64(qt_readl(q, MSG0_ADDR), 0, "MSI-X message written while masked");
    CHECK_EQ_U64(reg_read(q, REG_IRQ_STATUS) & IRQ_COMPLETION, IRQ_COMPLETION,
                 "IRQ_STATUS completion bit");
    reg_write(q, REG_IRQ_STATUS, IRQ_COMPLETION); /* RW1C: the next completion signals again */
}

/* After an unmask: the pending message was delivered and its bit cleared. */
static void check_delivered_on_unmask(struct qt_qemu *q, const char *what)
{
    uint32_t msg = qt_readl(q, MSG0_ADDR);
    CHECK(msg == MSG0_DATA, "%s: MSI-X vector 0 message 0x%x, expected 0x%x", what, msg, MSG0_DATA);
    uint32_t pba = qt_readl(q, BAR2_ADDR + 0x800);
    CHECK((pba & 1u) == 0, "%s: PBA pending bit 0 still set after delivery (PBA 0x%x)", what, pba);
}

static void mode_msixmask(void)
{
    struct qt_qemu q;
    int failures = it_failures;
    start_copy_device(&q);
    CHECK_EQ_U64(qt_readl(&q, BAR2_ADDR + 0x800), 0, "PBA before any interrupt");

    /* Vector 0 masked in its Vector Control word. The unmask is the MMIO
     * write that QEMU handles by delivering: the message is in RAM when
     * the write returns. */
    qt_writel(&q, BAR2_ADDR + 0x0C, 1);
    copy_while_masked(&q, 0, "vector 0 masked");
    qt_writel(&q, BAR2_ADDR + 0x0C, 0);
    check_delivered_on_unmask(&q, "vector 0 unmasked");

    /* The whole function masked: MSI-X Control bit 14, vector 0 unmasked.
     * The model signals the completion all the same: the host applies
     * function masking (docs/protocol.md "MSI-X ownership"), and the
     * bridge's PCIe checker counts nothing. */
    qt_cfg_write(&q, DEV_BUS, 0, 0xA2, 2, 0xC000);
    copy_while_masked(&q, 1, "Function Mask set");
    qt_cfg_write(&q, DEV_BUS, 0, 0xA2, 2, 0x8000);
    check_delivered_on_unmask(&q, "Function Mask cleared");
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

/* ---- Coupled time ------------------------------------------------------------ */

#define QUANTUM_NS 1000u
#define DOORBELL_ADDR (BAR0_ADDR + 0x20u)
#define EAGER_DOORBELL_ADDR (BAR0_ADDR + 0x24u)

/* Move the virtual clock by ns (timers due on the way run at their
 * deadlines); returns the clock after it. */
static uint64_t clock_step(struct qt_qemu *q, uint64_t ns)
{
    const char *a = qt_request(q, "clock_step %llu", (unsigned long long)ns);
    return strtoull(a + 2, NULL, 0);
}

/* The records after the first `from`, of one kind, into out. */
static unsigned records_of(struct coupled_bridge *cb, unsigned from, enum cb_kind kind,
                           struct cb_record *out, unsigned max)
{
    static struct cb_record all[CB_MAX_RECORDS];
    unsigned n = cb_records(cb, all, CB_MAX_RECORDS), k = 0;
    for (unsigned i = from; i < n; i++)
        if (all[i].kind == kind && k < max)
            out[k++] = all[i];
    return k;
}

static unsigned records_total(struct coupled_bridge *cb)
{
    static struct cb_record all[CB_MAX_RECORDS];
    return cb_records(cb, all, CB_MAX_RECORDS);
}

/* One read-only property of the device through QMP, as text. */
static void qom_get(struct qt_qemu *q, const char *property, char *out, size_t out_size)
{
    char cmd[256], reply[1024];
    snprintf(cmd, sizeof(cmd),
             "{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
             "\"/machine/peripheral/tlpb0\", \"property\": \"%s\"}}",
             property);
    CHECK(qt_qmp(q, cmd, reply, sizeof(reply)), "qom-get %s: %s", property, reply);
    const char *v = strstr(reply, "\"return\":");
    snprintf(out, out_size, "%s", v ? v + strlen("\"return\":") : "");
    /* strip spaces, quotes and the closing brace */
    char *p = out, *w = out;
    for (; *p; p++)
        if (*p != ' ' && *p != '"' && *p != '}')
            *w++ = *p;
    *w = '\0';
}

static void mode_coupled(void)
{
    struct coupled_bridge cb = {.socket_path = it.socket_path, .busy_grants = 2,
                                .read_latency_ps = 2500000, .read_value = DMACOPY_ID,
                                .doorbell_address = DOORBELL_ADDR,
                                .eager_doorbell_address = EAGER_DOORBELL_ADDR};
    struct cb_record g[16], r[16];
    unsigned n, mark;
    struct qt_qemu q;
    int failures = it_failures;
    char dev_extra[64];

    cb_start(&cb);
    snprintf(dev_extra, sizeof(dev_extra), "time=coupled,quantum-ns=%u", QUANTUM_NS);
    start_qemu(&q, dev_extra, true);
    CHECK(qt_log_contains(&q, "time coupled, quantum 1000 ns; the bridge says: coupled"),
          "the device reports coupled time");

    /* The machine's reset reached the device at 0: busy, so it is granted
     * time at the first two boundaries (the fake works for two grants),
     * then it is idle and no grant follows however far the clock goes. */
    uint64_t now = clock_step(&q, 100000);
    CHECK_EQ_U64(now, 100000, "clock after the first step");
    n = records_of(&cb, 0, CB_RESET, r, 16);
    CHECK_EQ_U64(n, 1, "resets at start");
    n = records_of(&cb, 0, CB_GRANT, g, 16);
    CHECK_EQ_U64(n, 2, "grants while the reset kept the device busy");
    for (unsigned i = 0; i < n && i < 2; i++) {
        CHECK_EQ_U64(g[i].sync_id, i + 1, "grant id");
        CHECK_EQ_U64(g[i].until_ps, (i + 1) * QUANTUM_NS * 1000ull, "grant at a quantum boundary");
        CHECK_EQ_U64(g[i].stamp_ps, g[i].until_ps, "grant stamped with the host's time");
    }

    /* Config writes to the device: stamped with the clock, busy again. */
    setup_root_port(&q);
    mark = records_total(&cb);
    map_device(&q);
    n = records_of(&cb, mark, CB_CFGWR, r, 16);
    CHECK_EQ_U64(n, 3, "config writes forwarded");
    for (unsigned i = 0; i < n && i < 3; i++)
        CHECK_EQ_U64(r[i].stamp_ps, now * 1000, "config write stamp");
    CHECK_EQ_U64(records_of(&cb, mark, CB_GRANT, g, 16), 0, "no grant before a boundary");
    now = clock_step(&q, QUANTUM_NS / 2);
    CHECK_EQ_U64(records_of(&cb, mark, CB_GRANT, g, 16), 0, "no grant within the quantum");
    now = clock_step(&q, 2 * QUANTUM_NS);
    n = records_of(&cb, mark, CB_GRANT, g, 16);
    CHECK_EQ_U64(n, 2, "grants at the two boundaries crossed while busy");
    for (unsigned i = 0; i < n && i < 2; i++)
        CHECK_EQ_U64(g[i].until_ps, (100000ull + (i + 1) * QUANTUM_NS) * 1000,
                     "grant at the next boundaries");
    now = clock_step(&q, 50 * QUANTUM_NS);
    CHECK_EQ_U64(records_of(&cb, mark, CB_GRANT, g, 16), 2, "no grant once the device is idle");

    /* An interrupt the device raises is applied in the grant wait: not
     * before the boundary (nothing was granted yet), at it. */
    setup_msix(&q);
    now = clock_step(&q, 10 * QUANTUM_NS);
    qt_writel(&q, MSG0_ADDR, 0);
    mark = records_total(&cb);
    uint64_t doorbell_at = now + QUANTUM_NS / 4;
    now = clock_step(&q, QUANTUM_NS / 4);
    reg_write(&q, DOORBELL_ADDR - BAR0_ADDR, 1);
    CHECK_EQ_U64(qt_readl(&q, MSG0_ADDR), 0, "MSI-X message before the boundary");
    now = clock_step(&q, QUANTUM_NS);
    CHECK_EQ_U64(qt_readl(&q, MSG0_ADDR), MSG0_DATA, "MSI-X message after the grant");
    n = records_of(&cb, mark, CB_MWR, r, 16);
    CHECK(n == 1 && r[0].address == DOORBELL_ADDR, "the doorbell write (%u writes)", n);
    if (n == 1)
        CHECK_EQ_U64(r[0].stamp_ps, doorbell_at * 1000, "posted write stamped when written");
    n = records_of(&cb, mark, CB_GRANT, g, 16);
    CHECK(n >= 1, "a grant after the doorbell");
    if (n >= 1)
        CHECK_EQ_U64(g[0].until_ps, (doorbell_at / QUANTUM_NS + 1) * QUANTUM_NS * 1000,
                     "the grant at the boundary after the write");

    /* What a busy device sends between sync points (here an interrupt
     * raised as soon as a write reached it) waits in the socket until the
     * next boundary: it is not applied from the main loop at whatever wall
     * time it arrived. Two qtest round trips after it is on the socket give
     * the main loop every chance to (wrongly) take it. */
    now = clock_step(&q, 10 * QUANTUM_NS);
    qt_writel(&q, MSG1_ADDR, 0);
    mark = records_total(&cb);
    reg_write(&q, EAGER_DOORBELL_ADDR - BAR0_ADDR, 1);
    CHECK(cb_wait_records(&cb, mark + 1), "the eager doorbell reached the device");
    CHECK_EQ_U64(qt_readl(&q, MSG1_ADDR), 0, "interrupt not applied from the main loop");
    CHECK_EQ_U64(qt_readl(&q, MSG1_ADDR), 0, "interrupt still not applied");
    now = clock_step(&q, QUANTUM_NS);
    CHECK_EQ_U64(qt_readl(&q, MSG1_ADDR), MSG1_DATA, "interrupt applied at the next sync point");

    /* A read: stamped; its completion is later in device time (no vCPU to
     * stall under qtest, so only the stamps are seen). */
    now = clock_step(&q, 100 * QUANTUM_NS);
    mark = records_total(&cb);
    CHECK_EQ_U64(reg_read(&q, REG_ID), DMACOPY_ID, "ID through the coupled path");
    n = records_of(&cb, mark, CB_MRD, r, 16);
    CHECK(n == 1, "one memory read (%u)", n);
    if (n == 1)
        CHECK_EQ_U64(r[0].stamp_ps, now * 1000, "memory read stamp");

    char text[128];
    unsigned grants = records_of(&cb, 0, CB_GRANT, g, 16);
    qom_get(&q, "time-syncs", text, sizeof(text));
    CHECK_EQ_U64(strtoull(text, NULL, 10), grants, "time-syncs counts the grants");
    qom_get(&q, "time-stalls", text, sizeof(text));
    CHECK_EQ_U64(strtoull(text, NULL, 10), 0, "no stalls without a vCPU");
    qom_get(&q, "time-status", text, sizeof(text));
    CHECK(strcmp(text, "coupled") == 0, "time-status '%s'", text);
    finish_qemu(&q, failures);
    char summary[128];
    snprintf(summary, sizeof(summary), "coupled time: %u syncs", grants);
    CHECK(qt_log_contains(&q, summary), "the counters are printed at exit ('%s')", summary);
    cb_join(&cb);
    CHECK(cb.hello_offered_time, "the device's Hello offered CAP_TIME_SYNC");
    CHECK_EQ_U64(cb.hello_quantum_ps, QUANTUM_NS * 1000ull, "Hello.quantum_ps");
}

/* QEMU under TCG with extra arguments and the device (time=coupled plus
 * device_extra), run to its exit; returns its log (to free). A QEMU that
 * does not exit is killed at the deadline and fails the check. */
static char *run_tcg_qemu(const char *name, const char *const *extra, const char *device_extra)
{
    char dev[512];
    snprintf(dev, sizeof(dev), "tlpbridge-pci,id=tlpb0,bus=rp0,socket=%s,device=dmacopy0,%s",
             it.socket_path, device_extra);
    const char *argv[IT_MAX_ARGS];
    unsigned n = 0;
    argv[n++] = qemu_binary;
    argv[n++] = "-machine";
    argv[n++] = "q35";
    argv[n++] = "-accel";
    argv[n++] = "tcg";
    argv[n++] = "-nodefaults";
    argv[n++] = "-display";
    argv[n++] = "none";
    for (unsigned i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n++] = "-device";
    argv[n++] = "pcie-root-port,id=rp0,chassis=1,bus=pcie.0,addr=0x4";
    argv[n++] = "-device";
    argv[n++] = dev;
    /* With the first device realized, this one ends QEMU: it has no socket. */
    argv[n++] = "-device";
    argv[n++] = "tlpbridge-pci,id=tlpb1,bus=pcie.0,addr=0x6,device=nosocket";
    argv[n] = NULL;
    const char *log_path = it_path(name);
    pid_t pid = it_spawn(argv, log_path, log_path, -1);
    REQUIRE(pid >= 0, "fork: %s", strerror(errno));
    bool killed = false;
    int status = it_reap(pid, &killed);
    CHECK(!killed, "QEMU (%s) did not exit on its own", name);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "QEMU (%s) exit status 0x%x", name,
          status);
    FILE *f = fopen(log_path, "r");
    char *text = calloc(1, 65536);
    REQUIRE(text, "out of memory");
    if (f) {
        size_t got = fread(text, 1, 65535, f);
        text[got] = '\0';
        fclose(f);
    }
    if (it_failures || getenv("TLPB_IT_VERBOSE"))
        printf("---- QEMU log (%s)\n%s\n", name, text);
    return text;
}

static void mode_coupled_refused(void)
{
    static const char *const no_icount[] = {NULL};
    static const char *const sleep_on[] = {"-icount", "shift=0", NULL};
    static const char *const precise[] = {"-icount", "shift=0,sleep=off", NULL};
    const char *needs = "time=coupled needs the guest clock to follow executed instructions: run "
                        "QEMU with -accel tcg -icount shift=0,sleep=off";

    char *log = run_tcg_qemu("qemu.noicount.log", no_icount, "time=coupled");
    CHECK(strstr(log, needs) != NULL, "refused without icount, naming the options");
    free(log);

    log = run_tcg_qemu("qemu.sleepon.log", sleep_on, "time=coupled");
    CHECK(strstr(log, needs) != NULL, "refused with icount sleeping");
    free(log);

    log = run_tcg_qemu("qemu.precise.log", precise, "time=coupled,quantum-ns=5000");
    CHECK(strstr(log, needs) == NULL, "refused with -icount shift=0,sleep=off");
    CHECK(strstr(log, "device 'dmacopy0': time coupled, quantum 5000 ns") != NULL,
          "realized coupled with precise icount, sleep off");
    CHECK(strstr(log, "property 'socket' is required") != NULL,
          "QEMU went on to the second device");
    free(log);

    log = run_tcg_qemu("qemu.badtime.log", precise, "time=sometimes");
    CHECK(strstr(log, "time must be 'free' or 'coupled', not 'sometimes'") != NULL,
          "a bad time value is refused");
    free(log);

    log = run_tcg_qemu("qemu.badquantum.log", precise, "time=coupled,quantum-ns=0");
    CHECK(strstr(log, "quantum-ns must be 1 to") != NULL, "quantum-ns=0 is refused");
    free(log);

    /* Free-running (the default) needs no icount. */
    log = run_tcg_qemu("qemu.free.log", no_icount, "time=free");
    CHECK(strstr(log, "time=coupled needs") == NULL && strstr(log, "time coupled") == NULL,
          "time=free is not coupled");
    CHECK(strstr(log, "property 'socket' is required") != NULL,
          "time=free realized without icount");
    free(log);
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
    else if (strcmp(mode, "msixmask") == 0)
        IT_RUN("MSI-X vector and function masking: pending, delivered on unmask", mode_msixmask());
    else if (strcmp(mode, "nobridge") == 0)
        IT_RUN("no bridge", mode_nobridge());
    else if (strcmp(mode, "reconnect") == 0)
        IT_RUN("bridge killed and restarted", mode_reconnect());
    else if (strcmp(mode, "hotplug") == 0)
        IT_RUN("hot-plug and unplug", mode_hotplug());
    else if (strcmp(mode, "token") == 0)
        IT_RUN("token from a secret object", mode_token());
    else if (strcmp(mode, "coupled") == 0)
        IT_RUN("coupled time: stamps, grants at quantum boundaries while busy", mode_coupled());
    else if (strcmp(mode, "coupled-refused") == 0)
        IT_RUN("coupled time needs precise icount with sleep off", mode_coupled_refused());
    else
        REQUIRE(false, "unknown --mode %s", mode);
    int rc = it_finish();
    free(rest);
    return rc;
}

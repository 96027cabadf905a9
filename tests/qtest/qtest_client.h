/* A small client for QEMU's qtest protocol (and enough QMP for device_add
 * and device_del), for testing tlpbridge-pci without a guest.
 *
 * QEMU runs with -accel qtest: no guest code executes, and this process
 * plays the CPU. Each request is one text line ("readl 0xfe000000",
 * "outl 0xcf8 0x80010000", "write 0x1000 4 0x01020304") answered by one line
 * ("OK 0x...", "FAIL ..."). Config space is reached with the legacy
 * 0xcf8/0xcfc mechanism, so bus numbers and bridge windows must be
 * programmed by the test, as firmware would.
 *
 * Failures are recorded with the integration harness (harness.h): a request
 * that gets no answer within the deadline, or an answer other than OK, ends
 * the test. QEMU is a child of the test (killed if the test dies); its
 * stderr goes to a log file in the test directory. */
#ifndef TLPB_QTEST_CLIENT_H
#define TLPB_QTEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qt_qemu {
    pid_t pid;
    bool running;
    int status;             /* waitpid status once it exited */
    int qtest_fd;           /* connected qtest socket */
    int qmp_fd;             /* connected QMP socket, or -1 */
    char log_path[256];
    char rx[1 << 16];       /* unparsed input from qtest */
    size_t rx_len;
    char qmp_rx[1 << 16];
    size_t qmp_rx_len;
};

/* Start QEMU (q35, qtest accelerator, no default devices) with the given
 * extra arguments (NULL-terminated) and wait for its qtest connection; with
 * qmp, also open a QMP monitor and negotiate capabilities. Fatal on
 * failure. */
void qt_start(struct qt_qemu *q, const char *qemu_binary, const char *const *extra_args,
              bool qmp);
/* Ask QEMU to quit (SIGTERM) and wait for it; returns true if it exited on
 * its own terms (exit status 0), false if it crashed or had to be killed. */
bool qt_stop(struct qt_qemu *q);
/* Is QEMU still running (not crashed)? */
bool qt_alive(struct qt_qemu *q);
/* Does QEMU's log contain needle? */
bool qt_log_contains(const struct qt_qemu *q, const char *needle);
/* Print QEMU's log (on failures). */
void qt_dump_log(const struct qt_qemu *q);

/* One raw request; returns the answer line (valid until the next request)
 * with a leading "OK" required. */
const char *qt_request(struct qt_qemu *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Memory (guest physical, as the CPU sees it: RAM and BARs). */
uint64_t qt_read(struct qt_qemu *q, uint64_t addr, unsigned size); /* 1, 2, 4, 8 */
void qt_write(struct qt_qemu *q, uint64_t addr, unsigned size, uint64_t value);
static inline uint32_t qt_readl(struct qt_qemu *q, uint64_t addr) { return (uint32_t)qt_read(q, addr, 4); }
static inline void qt_writel(struct qt_qemu *q, uint64_t addr, uint32_t v) { qt_write(q, addr, 4, v); }
void qt_memread(struct qt_qemu *q, uint64_t addr, void *buf, size_t len);
void qt_memwrite(struct qt_qemu *q, uint64_t addr, const void *buf, size_t len);

/* Config space through 0xcf8/0xcfc (offsets below 0x100). */
uint32_t qt_cfg_read(struct qt_qemu *q, unsigned bus, unsigned dev, unsigned reg, unsigned size);
void qt_cfg_write(struct qt_qemu *q, unsigned bus, unsigned dev, unsigned reg, unsigned size,
                  uint32_t value);
/* Offset of capability cap_id in the standard list, or 0. */
unsigned qt_cfg_find_cap(struct qt_qemu *q, unsigned bus, unsigned dev, uint8_t cap_id);

/* QMP: run one command (JSON text) and return true on "return", false on
 * "error" (the reply is copied into reply when given). */
bool qt_qmp(struct qt_qemu *q, const char *command_json, char *reply, size_t reply_size);
/* Wait (bounded) for an event whose text contains needle. */
bool qt_qmp_wait_event(struct qt_qemu *q, const char *needle);

#endif

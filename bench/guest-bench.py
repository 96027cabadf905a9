#!/usr/bin/env python3
"""Guest-side benchmark: what the Linux driver in a QEMU guest sees.

QEMU boots with tlpbridge-pci (dmacopy served by its hlsim model loaded in
tlpbridged) and, in the first boot, QEMU's built-in `edu` device as a
baseline (QEMU completes its MMIO reads itself). Guest RAM is on
memory-backend-memfd,share=on, so the shim shares it with the bridge. One run
boots three times, each with a bridge of its own:

  1. strict DMA, ring adaptive (the defaults): MMIO reads on dmacopy and edu,
     64 KiB copies (guest_copy_strict_MBps), then the guest idle;
  2. fast DMA, ring adaptive: 64 KiB copies (guest_copy_fast_MBps);
  3. strict DMA, ring busy-poll on both sides (tlpbridge-pci ring=busy-poll,
     tlpbridged --ring busy-poll): MMIO reads (guest_readl_us_p50_busy_poll);

then once more without tlpbridge-pci, idle, as the idle baseline. In the
guest, dmacopy-test measures:

  - the cost of one 4-byte MMIO read issued by the driver (readl() of SCRATCH
    on dmacopy, of register 0 on edu, N times, timed in the kernel):
    `dmacopy-test --bench-mmio N` and `--node /dev/edu-mmio-bench`;
  - dmacopy throughput for 64 KiB copies through the Linux driver, counted
    per second of wall time, the device's CRC checked on each, the data
    compared after the clock stops: `dmacopy-test --bench-copy 65536 COUNT`
    with `--copy-mode mapped --copy-wait poll` (the driver's fast path: in
    place between its mmap()ed DMA buffers, polled; guest_copy_*_MBps), and
    for comparison through user memory with the completion interrupt
    (`--copy-mode bounce --copy-wait irq`; guest_copy_*_bounce_irq_MBps, the
    method of earlier versions) and in place with the interrupt.

Each measurement is repeated; the JSON on stdout has every sample and the
medians, and the ratio tlpbridge/edu for the MMIO read. Progress goes to
stderr.

usage: guest-bench.py --build BUILD [--reps 5] [--mmio-reads N] [--edu-reads N]
                      [--copies N] [--accel tcg|kvm] [--idle-s N]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "examples", "guest"))
import tlpbguest as tg  # noqa: E402

NO_PROXY_BASELINE = (
    "not measured: QEMU's multi-process device (x-pci-proxy-dev with a remote "
    "process) needs KVM irqfds and crashes at realize under TCG on this machine, "
    "so there is no such baseline")


def progress(msg):
    print("guest-bench: " + msg, file=sys.stderr, flush=True)


def bench(g, cmd, key, timeout):
    rc, out = g.run(cmd, timeout)
    vals = tg.parse_bench(out)
    if rc != 0 or key not in vals:
        raise tg.Failure("guest command %r failed (rc %d):\n%s" % (cmd, rc, "\n".join(out[-20:])))
    return vals


def cpu_seconds(pid):
    """User plus system CPU of a process so far (/proc/PID/stat, clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_percent(g, seconds, bridge_pid=None):
    """(bridge %, QEMU %) of one core while the guest runs `sleep seconds`."""
    g.run("true")  # the command loop is idle again before the clock starts
    b0 = cpu_seconds(bridge_pid) if bridge_pid else 0.0
    q0 = cpu_seconds(g.proc.pid)
    t0 = time.monotonic()
    g.run("sleep %d" % seconds, seconds + 120)
    wall = time.monotonic() - t0
    b1 = cpu_seconds(bridge_pid) if bridge_pid else 0.0
    q1 = cpu_seconds(g.proc.pid)
    return round(100 * (b1 - b0) / wall, 2), round(100 * (q1 - q0) / wall, 2)


def summary(samples):
    return {"median": round(statistics.median(samples), 2),
            "min": round(min(samples), 2), "max": round(max(samples), 2),
            "samples": [round(x, 2) for x in samples]}


def bridge_figures(tlpbctl, s):
    """What the bridge says it used for dmacopy0: ring policy, shared guest
    memory and the DMA it served from it (docs/bridge.md, status)."""
    if not os.path.exists(tlpbctl):
        return "not read: %s not found" % tlpbctl
    st = tg.tlpbctl_status(tlpbctl, s.socket)
    figures = {k: st.get(k) for k in ("ring", "guest_memory_regions", "guest_memory_bytes",
                                      "ring_records_in", "ring_records_out",
                                      "ring_wakeups_sent", "ring_sleeps")}
    counters = st.get("counters", {})
    figures.update({k: counters.get(k) for k in ("dma_shm_requests", "dma_shm_bytes",
                                                 "dma_bytes")})
    return figures


# Every guest of the benchmark, with and without the device: q35 without its
# HPET. An idle guest's HPET costs QEMU's main loop about 1.2 % of a core
# under TCG on this kind of machine, device or not (docs/performance.md).
GUEST_MACHINE_ARGS = ["-machine", "hpet=off"]


def boot(s, paths, accel, name, dma, ring, devices_extra=()):
    """A bridge of its own (--dma dma --ring ring) and a guest whose
    tlpbridge-pci uses the same ring policy; returns (bridge, guest) once the
    guest has booted with /dev/dmacopy0."""
    bproc = s.start_bridge(paths["bridge"], ["--device", "dmacopy0:hlsim=" + paths["model"],
                                             "--dma", dma, "--ring", ring,
                                             "--log-level", "warn"],
                           name="tlpbridged-" + name)
    g = tg.Guest(s, paths["qemu"], paths["kernel"], paths["initrd"], accel=accel,
                 name="qemu-" + name, extra_args=GUEST_MACHINE_ARGS,
                 shim_props=tg.shim_props(ring=None if ring == "adaptive" else ring),
                 devices=["pcie-root-port,id=rp0,chassis=1",
                          "tlpbridge-pci,bus=rp0,socket=%s,device=dmacopy0" % s.socket]
                 + list(devices_extra))
    g.wait_booted()
    rc, _ = g.run("test -c /dev/dmacopy0")
    if rc != 0:
        raise tg.Failure("the guest has no /dev/dmacopy0 (driver not bound?)")
    return bproc, g


def shut(g, bproc):
    g.poweroff()
    bproc.stop()


def mmio_reads(g, count):
    return bench(g, "dmacopy-test --bench-mmio %d" % count, "mmio_read_ns_per_op",
                 600)["mmio_read_ns_per_op"]


# How a copy goes through the driver (dmacopy-test --copy-mode / --copy-wait):
# mapped_poll: in place between the driver's mmap()ed DMA buffers, no
# interrupt, the driver polls the descriptor's status in memory (the driver's
# fast path); bounce_irq: from and to user memory through the driver's bounce
# buffers, the driver sleeping until the completion interrupt; mapped_irq: in
# place, with the interrupt (the two effects apart).
COPY_METHODS = {
    "mapped_poll": "--copy-mode mapped --copy-wait poll",
    "bounce_irq": "--copy-mode bounce --copy-wait irq",
    "mapped_irq": "--copy-mode mapped --copy-wait irq",
}
COPY_SAMPLES = {}  # (dma mode, method) -> {"MBps": [], "us_per_copy": [], "device_us": []}


def copies(g, count, dma=None, method="mapped_poll"):
    v = bench(g, "dmacopy-test --bench-copy 65536 %d %s" % (count, COPY_METHODS[method]),
              "copy_MBps", 600)
    if dma:
        d = COPY_SAMPLES.setdefault((dma, method), {"MBps": [], "us_per_copy": [], "device_us": []})
        d["MBps"].append(v["copy_MBps"])
        d["us_per_copy"].append(v["copy_us_per_op"])
        if "copy_driver_ns" in v:
            # The driver's own time from doorbell to completion, last copy.
            d["device_us"].append(v["copy_driver_ns"] / 1e3)
    return v["copy_MBps"]


def main():
    tg.exit_on_signals()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="CMake build directory (-DTLPB_BUILD_QEMU=ON)")
    ap.add_argument("--qemu", help="default: BUILD/qemu_shim/qemu-system-x86_64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mmio-reads", type=int, default=20000,
                    help="MMIO reads per sample on tlpbridge-pci")
    ap.add_argument("--edu-reads", type=int, default=1000000,
                    help="MMIO reads per sample on edu")
    ap.add_argument("--copies", type=int, default=200, help="64 KiB copies per sample")
    ap.add_argument("--accel", help="tcg or kvm (default: TLPB_ACCEL, else KVM if a KVM guest boots)")
    ap.add_argument("--idle-s", type=int, default=10,
                    help="guest idle (sleep) for the idle CPU measure")
    args = ap.parse_args()

    b = os.path.abspath(args.build)
    paths = {
        "qemu": args.qemu or os.path.join(b, "qemu_shim", "qemu-system-x86_64"),
        "kernel": os.path.join(b, "guest", "vmlinuz"),
        "initrd": os.path.join(b, "guest", "initramfs.cpio.gz"),
        "bridge": os.path.join(b, "bridge", "tlpbridged"),
        "model": os.path.join(b, "examples", "libdmacopy.so"),
    }
    tlpbctl = os.path.join(b, "bridge", "tlpbctl")
    for p in paths.values():
        if not os.path.exists(p):
            progress("%s not found: configure with -DTLPB_BUILD_QEMU=ON and build "
                     "(targets qemu, guest-image, tlpbridged, dmacopy_model)" % p)
            return 2
    if args.accel:
        os.environ["TLPB_ACCEL"] = args.accel
    accel, why = tg.choose_accel(paths["qemu"], paths["kernel"], paths["initrd"])
    progress("accelerator %s (%s)" % (accel, why))

    result = {
        "benchmark": "guest-side MMIO read and dmacopy copy",
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "qemu_accel": accel,
        "dma_mode": "strict (copy_64KiB*), fast (copy_64KiB_fast*)",
        "guest_ram": "memory-backend-memfd,share=on (shared with the bridge)",
        "guest_machine": "q35 " + " ".join(GUEST_MACHINE_ARGS),
        "repetitions": args.reps,
    }
    bridge_status = {}
    with tg.Session("tlpb-bench", verbose=False) as s:
        try:
            # 1. strict DMA, adaptive ring: MMIO reads beside edu, strict
            # copies, idle.
            progress("boot 1/3: strict DMA, ring adaptive, with edu")
            bproc, g = boot(s, paths, accel, "adaptive", "strict", "adaptive", ["edu"])
            result["guest_kernel"] = g.run("uname -r")[1][0].strip()
            if g.run("test -c /dev/edu-mmio-bench")[0] != 0:
                raise tg.Failure("the guest has no /dev/edu-mmio-bench")
            tl, edu = [], []
            # Warm-up (first-touch costs in the guest and in the bridge).
            mmio_reads(g, 1000)
            copies(g, 10)
            for i in range(args.reps):
                progress("repetition %d/%d" % (i + 1, args.reps))
                tl.append(mmio_reads(g, args.mmio_reads))
                edu.append(bench(g, "dmacopy-test --node /dev/edu-mmio-bench --bench-mmio %d" %
                                 args.edu_reads, "mmio_read_ns_per_op", 600)["mmio_read_ns_per_op"])
                for method in COPY_METHODS:
                    copies(g, args.copies, "strict", method)
            # The guest idle with the device attached: what the bridge and
            # QEMU burn doing nothing (one command sent, then only sleep).
            progress("idle guest for %d s" % args.idle_s)
            bridge_pct, qemu_pct = idle_cpu_percent(g, args.idle_s, bproc.pid)
            bridge_status["strict_adaptive"] = bridge_figures(tlpbctl, s)
            shut(g, bproc)

            # 2. fast DMA, adaptive ring: copies.
            progress("boot 2/3: fast DMA, ring adaptive")
            bproc, g = boot(s, paths, accel, "fast", "fast", "adaptive")
            copies(g, 10)
            for i in range(args.reps):
                progress("repetition %d/%d" % (i + 1, args.reps))
                for method in COPY_METHODS:
                    copies(g, args.copies, "fast", method)
            bridge_status["fast_adaptive"] = bridge_figures(tlpbctl, s)
            shut(g, bproc)

            # 3. busy-polling on both sides: MMIO reads.
            progress("boot 3/3: strict DMA, ring busy-poll")
            bproc, g = boot(s, paths, accel, "busy-poll", "strict", "busy-poll")
            busy = []
            mmio_reads(g, 1000)
            for i in range(args.reps):
                progress("repetition %d/%d" % (i + 1, args.reps))
                busy.append(mmio_reads(g, args.mmio_reads))
            bridge_status["strict_busy_poll"] = bridge_figures(tlpbctl, s)
            shut(g, bproc)

            # Baseline: the same guest without tlpbridge-pci, idle as long.
            progress("idle guest without tlpbridge-pci for %d s (baseline)" % args.idle_s)
            g = tg.Guest(s, paths["qemu"], paths["kernel"], paths["initrd"], accel=accel,
                         extra_args=GUEST_MACHINE_ARGS,
                         name="qemu-baseline",
                         devices=["pcie-root-port,id=rp0,chassis=1", "edu"])
            g.wait_booted()
            _, base_pct = idle_cpu_percent(g, args.idle_s)
            g.poweroff()
            result["idle_cpu_percent"] = {
                "bridge": bridge_pct, "qemu": qemu_pct, "total": round(bridge_pct + qemu_pct, 2),
                "qemu_without_device": base_pct, "idle_s": args.idle_s,
                "what": "CPU of a core used by tlpbridged and QEMU while the guest sleeps "
                        "with the device attached (%s, ring adaptive); baseline: QEMU with "
                        "no tlpbridge-pci" % accel,
            }
        except tg.Failure as e:
            progress("failed: %s" % e)
            s.dump_logs()
            return 1
    result["guest_readl_us_p50"] = round(statistics.median(tl) / 1e3, 3)
    result["guest_readl_us_p50_busy_poll"] = round(statistics.median(busy) / 1e3, 3)
    result["guest_readl_us_p50_edu"] = round(statistics.median(edu) / 1e3, 3)
    median = {k: statistics.median(v["MBps"]) for k, v in COPY_SAMPLES.items()}
    # The driver's fast path (in place, polled): the figures the targets name.
    result["guest_copy_fast_MBps"] = round(median[("fast", "mapped_poll")], 1)
    result["guest_copy_strict_MBps"] = round(median[("strict", "mapped_poll")], 1)
    # Through user memory with the completion interrupt, as measured before
    # the driver had a mapped path.
    result["guest_copy_fast_bounce_irq_MBps"] = round(median[("fast", "bounce_irq")], 1)
    result["guest_copy_strict_bounce_irq_MBps"] = round(median[("strict", "bounce_irq")], 1)
    result["mmio_read_ns"] = {
        "tlpbridge_pci": dict(summary(tl), reads_per_sample=args.mmio_reads,
                              what="readl() of dmacopy SCRATCH, served by the hlsim model "
                                   "in tlpbridged, ring adaptive"),
        "tlpbridge_pci_busy_poll": dict(summary(busy), reads_per_sample=args.mmio_reads,
                                        what="the same, tlpbridge-pci and tlpbridged "
                                             "busy-polling the ring"),
        "edu": dict(summary(edu), reads_per_sample=args.edu_reads,
                    what="readl() of edu register 0, completed by QEMU itself"),
        "ratio_tlpbridge_over_edu": round(statistics.median(tl) / statistics.median(edu), 1),
        "ratio_tlpbridge_busy_poll_over_edu": round(statistics.median(busy) /
                                                    statistics.median(edu), 1),
    }
    how = {
        "mapped_poll": "in place between the driver's mmap()ed DMA buffers (the destination "
                       "moving over the 16 slots of its 1 MiB buffer), no interrupt: the driver "
                       "polls the descriptor's status in memory",
        "bounce_irq": "from and to user memory through the driver's bounce buffers, the "
                      "driver sleeping until the completion interrupt",
        "mapped_irq": "in place between the mmap()ed buffers, the driver sleeping until the "
                      "completion interrupt",
    }
    for (dma, method), v in sorted(COPY_SAMPLES.items()):
        key = "copy_64KiB" + ("_fast" if dma == "fast" else "") + \
            ("" if method == "mapped_poll" else "_" + method)
        result[key] = {
            "MBps": summary(v["MBps"]), "us_per_copy": summary(v["us_per_copy"]),
            "device_us_per_copy": summary(v["device_us"]) if v["device_us"] else None,
            "copies_per_sample": args.copies,
            "what": "DMACOPY_IOC_COPY of 65536 bytes, %s DMA, %s; the device's CRC checked on "
                    "each copy, the data compared after the clock stops; "
                    "device_us_per_copy: the driver's own time from doorbell to completion "
                    "(last copy of each sample)" % (dma, how[method]),
        }
    result["bridge_status"] = bridge_status
    result["baseline_multiprocess_qemu"] = NO_PROXY_BASELINE
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

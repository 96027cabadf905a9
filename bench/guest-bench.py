#!/usr/bin/env python3
"""Guest-side benchmark: what the Linux driver in a QEMU guest sees.

One QEMU boot with two devices: tlpbridge-pci (dmacopy served by its hlsim
model loaded in tlpbridged) and QEMU's built-in `edu` device as a baseline
(QEMU completes its MMIO reads itself). In the guest, dmacopy-test measures:

  - the cost of one 4-byte MMIO read issued by the driver (readl() of SCRATCH
    on dmacopy, of register 0 on edu, N times, timed in the kernel):
    `dmacopy-test --bench-mmio N` and `--node /dev/edu-mmio-bench`;
  - dmacopy throughput for 64 KiB copies with completion interrupts, CRC
    checked on each: `dmacopy-test --bench-copy 65536 COUNT`.

Each measurement is repeated; the JSON on stdout has every sample and the
medians, and the ratio tlpbridge/edu for the MMIO read. Progress goes to
stderr.

usage: guest-bench.py --build BUILD [--reps 5] [--mmio-reads N] [--edu-reads N]
                      [--copies N] [--accel tcg|kvm] [--dma strict|fast]
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
    ap.add_argument("--dma", choices=("strict", "fast"), default="strict")
    ap.add_argument("--idle-s", type=int, default=10,
                    help="guest idle (sleep) for the idle CPU measure")
    args = ap.parse_args()

    b = os.path.abspath(args.build)
    qemu = args.qemu or os.path.join(b, "qemu_shim", "qemu-system-x86_64")
    kernel = os.path.join(b, "guest", "vmlinuz")
    initrd = os.path.join(b, "guest", "initramfs.cpio.gz")
    bridge = os.path.join(b, "bridge", "tlpbridged")
    model = os.path.join(b, "examples", "libdmacopy.so")
    for p in (qemu, kernel, initrd, bridge, model):
        if not os.path.exists(p):
            progress("%s not found: configure with -DTLPB_BUILD_QEMU=ON and build "
                     "(targets qemu, guest-image, tlpbridged, dmacopy_model)" % p)
            return 2
    if args.accel:
        os.environ["TLPB_ACCEL"] = args.accel
    accel, why = tg.choose_accel(qemu, kernel, initrd)
    progress("accelerator %s (%s)" % (accel, why))

    result = {
        "benchmark": "guest-side MMIO read and dmacopy copy",
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "qemu_accel": accel,
        "dma_mode": args.dma,
        "repetitions": args.reps,
    }
    with tg.Session("tlpb-bench", verbose=False) as s:
        try:
            bproc = s.start_bridge(bridge, ["--device", "dmacopy0:hlsim=" + model,
                                            "--dma", args.dma, "--log-level", "warn"])
            g = tg.Guest(s, qemu, kernel, initrd, accel=accel, devices=[
                "pcie-root-port,id=rp0,chassis=1",
                "tlpbridge-pci,bus=rp0,socket=%s,device=dmacopy0" % s.socket,
                "edu"])
            g.wait_booted()
            result["guest_kernel"] = g.run("uname -r")[1][0].strip()
            rc, _ = g.run("test -c /dev/dmacopy0 && test -c /dev/edu-mmio-bench")
            if rc != 0:
                raise tg.Failure("the guest has no /dev/dmacopy0 or /dev/edu-mmio-bench "
                                 "(driver not bound?)")
            tl, edu, mbps, us = [], [], [], []
            # Warm-up (first-touch costs in the guest and in the bridge).
            bench(g, "dmacopy-test --bench-mmio 1000", "mmio_read_ns_per_op", 300)
            bench(g, "dmacopy-test --bench-copy 65536 10", "copy_MBps", 300)
            for i in range(args.reps):
                progress("repetition %d/%d" % (i + 1, args.reps))
                v = bench(g, "dmacopy-test --bench-mmio %d" % args.mmio_reads,
                          "mmio_read_ns_per_op", 600)
                tl.append(v["mmio_read_ns_per_op"])
                v = bench(g, "dmacopy-test --node /dev/edu-mmio-bench --bench-mmio %d" %
                          args.edu_reads, "mmio_read_ns_per_op", 600)
                edu.append(v["mmio_read_ns_per_op"])
                v = bench(g, "dmacopy-test --bench-copy 65536 %d" % args.copies, "copy_MBps", 600)
                mbps.append(v["copy_MBps"])
                us.append(v["copy_us_per_op"])
            # The guest idle with the device attached: what the bridge and
            # QEMU burn doing nothing (one command sent, then only sleep).
            progress("idle guest for %d s" % args.idle_s)
            bridge_pct, qemu_pct = idle_cpu_percent(g, args.idle_s, bproc.pid)
            g.poweroff()
            # Baseline: the same guest without tlpbridge-pci, idle as long.
            progress("idle guest without tlpbridge-pci for %d s (baseline)" % args.idle_s)
            g = tg.Guest(s, qemu, kernel, initrd, accel=accel, name="qemu-baseline",
                         devices=["pcie-root-port,id=rp0,chassis=1", "edu"])
            g.wait_booted()
            _, base_pct = idle_cpu_percent(g, args.idle_s)
            g.poweroff()
            result["idle_cpu_percent"] = {
                "bridge": bridge_pct, "qemu": qemu_pct, "total": round(bridge_pct + qemu_pct, 2),
                "qemu_without_device": base_pct, "idle_s": args.idle_s,
                "what": "CPU of a core used by tlpbridged and QEMU while the guest sleeps "
                        "with the device attached (%s); baseline: QEMU with no "
                        "tlpbridge-pci" % accel,
            }
        except tg.Failure as e:
            progress("failed: %s" % e)
            s.dump_logs()
            return 1
    result["mmio_read_ns"] = {
        "tlpbridge_pci": dict(summary(tl), reads_per_sample=args.mmio_reads,
                              what="readl() of dmacopy SCRATCH, served by the hlsim model "
                                   "in tlpbridged"),
        "edu": dict(summary(edu), reads_per_sample=args.edu_reads,
                    what="readl() of edu register 0, completed by QEMU itself"),
        "ratio_tlpbridge_over_edu": round(statistics.median(tl) / statistics.median(edu), 1),
    }
    result["copy_64KiB"] = {
        "MBps": summary(mbps), "us_per_copy": summary(us), "copies_per_sample": args.copies,
        "what": "DMACOPY_IOC_COPY of 65536 bytes with completion interrupt, CRC checked",
    }
    result["baseline_multiprocess_qemu"] = NO_PROXY_BASELINE
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The dmacopy example end to end: tlpbridged with the dmacopy model, a Linux
guest in QEMU with tlpbridge-pci, the dmacopy driver, and dmacopy-test.

usage: run-guest.py --build BUILD [--backend hlsim|external|rtl] [--accel tcg|kvm]
                    [--coupled] [--rtl-cycles-per-s N] [--intx] [-v]

  --build DIR     CMake build directory configured with -DTLPB_BUILD_QEMU=ON
                  and built (targets tlpbridged, hlsim-run, dmacopy_model,
                  qemu, guest-image)
  --backend       hlsim: the model loaded into tlpbridged (default);
                  external: the model in its own process (hlsim-run);
                  rtl: dmacopy in SystemVerilog under Verilator
                  (dmacopy-rtl-sim, built with -DTLPB_BUILD_RTL=ON)
  --accel         default: TLPB_ACCEL, else KVM if a KVM guest boots, else TCG
  --coupled       coupled simulated time: QEMU runs TCG with -icount
                  shift=0,sleep=off and the device's time=coupled, so the
                  guest's clock waits for the device's (docs/user-guide.md)
  --rtl-cycles-per-s N  cap the RTL at N cycles per wall second, like a
                  large design (with --backend rtl)
  --intx          also rebind the driver with use_msix=0 and run the INTx cases
  -v              echo the guest console and the bridge log

Prints one line per step and per test case; exits 0 only if every check
passed. TLPB_GUEST_KEEP=1 keeps the logs (in /tmp/tlpb-run-*).
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlpbguest as tg  # noqa: E402


def say(msg):
    print(msg, flush=True)


def main():
    tg.exit_on_signals()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--qemu")
    ap.add_argument("--backend", choices=("hlsim", "external", "rtl"), default="hlsim")
    ap.add_argument("--accel", choices=("tcg", "kvm"))
    ap.add_argument("--intx", action="store_true")
    ap.add_argument("--coupled", action="store_true")
    ap.add_argument("--rtl-cycles-per-s", type=int, default=0)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    b = os.path.abspath(args.build)
    paths = {
        "qemu": args.qemu or os.path.join(b, "qemu_shim", "qemu-system-x86_64"),
        "kernel": os.path.join(b, "guest", "vmlinuz"),
        "initrd": os.path.join(b, "guest", "initramfs.cpio.gz"),
        "tlpbridged": os.path.join(b, "bridge", "tlpbridged"),
        "hlsim-run": os.path.join(b, "hlsim", "hlsim-run"),
        "tlpbctl": os.path.join(b, "bridge", "tlpbctl"),
        "model": os.path.join(b, "examples", "libdmacopy.so"),
    }
    if args.backend == "rtl":
        paths["dmacopy-rtl-sim"] = os.path.join(b, "examples", "dmacopy", "rtl",
                                                "dmacopy-rtl-sim")
    for name, p in paths.items():
        if not os.path.exists(p):
            say("run: %s not found (%s): build it first" % (name, p))
            return 2
    if args.coupled:
        if args.accel == "kvm":
            say("run: --coupled needs TCG (-icount), not KVM")
            return 2
        args.accel = "tcg"
    if args.accel:
        os.environ["TLPB_ACCEL"] = args.accel
    time_mode = "coupled" if args.coupled else "free"

    t0 = time.monotonic()
    failures = []
    passed = 0
    with tg.Session("tlpb-run", verbose=args.verbose) as s:
        try:
            accel, why = tg.choose_accel(paths["qemu"], paths["kernel"], paths["initrd"])
            say("accelerator: %s (%s)" % (accel, why))
            if args.backend == "hlsim":
                s.start_bridge(paths["tlpbridged"],
                               ["--device", "dmacopy0:hlsim=" + paths["model"]])
                say("tlpbridged: dmacopy0 served by the hlsim model loaded in the bridge")
            elif args.backend == "external":
                s.start_bridge(paths["tlpbridged"],
                               ["--device", "dmacopy0:external=" + paths["model"]])
                s.start_sim(paths["hlsim-run"], paths["model"], "dmacopy0")
                say("tlpbridged: dmacopy0 served by hlsim-run (the model in its own process)")
            else:
                s.start_bridge(paths["tlpbridged"],
                               ["--device", "dmacopy0:external=" + paths["model"]])
                cap = (["--max-cycles-per-s", str(args.rtl_cycles_per_s)]
                       if args.rtl_cycles_per_s else [])
                s.start_rtl_sim(paths["dmacopy-rtl-sim"], "dmacopy0", cap)
                say("tlpbridged: dmacopy0 served by the RTL (dmacopy-rtl-sim, Verilator%s)" %
                    (", at most %d cycles/s" % args.rtl_cycles_per_s if cap else ""))
            shim = "tlpbridge-pci,bus=rp0,socket=%s,device=dmacopy0%s" % (
                s.socket, tg.shim_time_props(time_mode))
            extra = tg.COUPLED_QEMU_ARGS if args.coupled else ()
            say("qemu: booting Linux (q35, %s) with %s-device %s" %
                (accel, " ".join(extra) + " " if extra else "", shim))
            g = tg.Guest(s, paths["qemu"], paths["kernel"], paths["initrd"], accel=accel,
                         devices=["pcie-root-port,id=rp0,chassis=1", shim], extra_args=extra)
            g.wait_booted()
            say("guest: Linux %s up after %.1f s" %
                (g.run("uname -r")[1][0].strip(), time.monotonic() - t0))
            rc, out = g.run("ls /sys/bus/pci/drivers/dmacopy | grep '^0000:'; "
                            "dmesg | grep 'dmacopy.*/dev/dmacopy'")
            bound = [l for l in out if l.startswith("0000:")]
            if rc != 0 or not bound:
                failures.append("driver probe")
                say("guest: the dmacopy driver is not bound; kernel log:")
                for l in g.run("dmesg | grep -i dmacopy")[1]:
                    say("    " + l)
            else:
                say("guest: dmacopy driver bound to %s" % ", ".join(bound))
                for l in out[len(bound):]:
                    say("    " + l.strip())
            runs = [("dmacopy-test", "MSI-X")]
            if args.intx:
                runs.append(("dmacopy-test --intx", "INTx"))
            for cmd, label in runs:
                if label == "INTx":
                    rc, _ = g.run("dmacopy-rebind use_msix=0")
                    if rc != 0:
                        failures.append("rebind with use_msix=0")
                say("guest: %s (%s)" % (cmd, label))
                rc, out = g.run(cmd, 900)
                cases, result = tg.parse_tests(out)
                for name, ok, reason in cases:
                    say("    %-20s %s%s" % (name, "PASS" if ok else "FAIL",
                                            "" if ok else "  " + reason))
                bad = [n for n, ok, _ in cases if not ok]
                passed += len(cases) - len(bad)
                if rc != 0 or not cases or bad or not result or result[1] != 0:
                    failures.append("%s: %s" % (cmd, ", ".join(bad) or "rc %d" % rc))
            st = tg.tlpbctl_status(paths["tlpbctl"], s.socket)
            c = st.get("counters", {})
            say("bridge: backend %s; %d host requests, %.1f MB of DMA, %d interrupts, "
                "%d completed by the fallback" %
                (st.get("backend"), c.get("host_requests", 0), c.get("dma_bytes", 0) / 1e6,
                 c.get("interrupts", 0), c.get("fallback_completions", 0)))
            if c.get("fallback_completions", 0):
                failures.append("the fallback answered requests")
            ts = st.get("time")
            if args.coupled and ts:
                say("time: %s; device at %.3f ms of guest time, %d syncs (%.1f per simulated "
                    "ms), sync p50 %s us" %
                    (ts.get("mode"), ts.get("device_time_ns", 0) / 1e6, ts.get("syncs", 0),
                     ts.get("syncs_per_sim_ms", 0), ts.get("sync_wall_us_p50")))
                if ts.get("mode") != "coupled":
                    failures.append("time mode is %s, not coupled" % ts.get("mode"))
            g.poweroff()
        except tg.Failure as e:
            failures.append(str(e))
            say("run: %s" % e)
            s.dump_logs(20)
    dt = time.monotonic() - t0
    if failures:
        say("RESULT: FAILED (%s) in %.0f s" % ("; ".join(failures), dt))
        return 1
    say("RESULT: PASS: the dmacopy driver in a QEMU guest passed all %d test cases "
        "through tlpbridge (%.0f s)" % (passed, dt))
    return 0


if __name__ == "__main__":
    sys.exit(main())

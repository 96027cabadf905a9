#!/usr/bin/env python3
"""Coupled simulated time: what it costs in wall time.

For each backend (the hlsim model in the bridge, the Verilated RTL) the same
guest command runs free-running (TCG, no -icount) and coupled (-icount
shift=0,sleep=off, time=coupled), side by side in one run, REPS times each,
in a guest booted with tlpb.run= (no console input). Measured:

  - wall time of the guest command (dmacopy-test, the MSI-X cases; from
    TLPB-BEGIN to TLPB-EXIT on the console) and of the whole boot-to-exit;
  - from the bridge's status after the run: syncs, simulated time, syncs per
    simulated ms, the wall cost of one sync (GRANT to REACHED, p50/p99);
  - an idle guest (`sleep 10`, the device idle) coupled versus free-running.

The JSON on stdout has every sample and the medians, and the ratios
coupled/free. Progress goes to stderr.

usage: coupled-bench.py --build BUILD [--reps 3] [--no-rtl] [--cmd CMD]
                        [--idle-s 10] [--quantum-ns 10000]
"""

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "examples", "guest"))
import tlpbguest as tg  # noqa: E402

DEVICE = "dmacopy0"


def progress(msg):
    print("coupled-bench: " + msg, file=sys.stderr, flush=True)


def summary(samples):
    return {"median": round(statistics.median(samples), 3),
            "min": round(min(samples), 3), "max": round(max(samples), 3),
            "samples": [round(x, 3) for x in samples]}


def one_run(paths, backend, time_mode, cmd, quantum_ns):
    """Boots once running cmd; returns the measurements of this run."""
    with tg.Session("tlpb-cbench") as s:
        if backend == "rtl":
            s.start_bridge(paths["tlpbridged"], ["--config", paths["rtl-config"]])
            s.start_rtl_sim(paths["rtl-sim"], DEVICE)
        else:
            s.start_bridge(paths["tlpbridged"], ["--device", "%s:hlsim=%s" % (DEVICE,
                                                                            paths["model"])])
        shim = "tlpbridge-pci,bus=rp0,socket=%s,device=%s%s" % (
            s.socket, DEVICE, tg.shim_time_props(time_mode, quantum_ns))
        extra = tg.COUPLED_QEMU_ARGS if time_mode == "coupled" else ()
        t0 = time.monotonic()
        g = tg.Guest(s, paths["qemu"], paths["kernel"], paths["initrd"], accel="tcg",
                     devices=["pcie-root-port,id=rp0,chassis=1", shim], interactive=False,
                     append='tlpb.run="%s"' % cmd, extra_args=extra)
        g.console.wait_for(r"TLPB-BEGIN", 600, 0, "TLPB-BEGIN")
        t1 = time.monotonic()
        st0 = tg.tlpbctl_status(paths["tlpbctl"], s.socket, DEVICE).get("time", {})
        idx, m = g.console.wait_for(r"TLPB-EXIT rc=(\d+)", 3600, 0, "TLPB-EXIT")
        t2 = time.monotonic()
        if int(m.group(1)) != 0:
            raise tg.Failure("%s %s: %r exited %s:\n%s" % (
                backend, time_mode, cmd, m.group(1), "\n".join(g.console.text(0)[-20:])))
        st = tg.tlpbctl_status(paths["tlpbctl"], s.socket, DEVICE)
        g.proc.wait(120)
        t3 = time.monotonic()
        # The shim's own account (printed when QEMU exits): wall time spent
        # in grants, seen from the guest's side.
        shim = None
        if time_mode == "coupled":
            _, shim = g.proc.out.wait_for(r"coupled time: (\d+) syncs \((\d+) us of wall time",
                                          30, 0, "the shim's coupled-time summary")
    ts = st.get("time", {})
    syncs_cmd = ts.get("syncs", 0) - st0.get("syncs", 0)
    sim_ms_cmd = (ts.get("host_time_ns", 0) - st0.get("host_time_ns", 0)) / 1e6
    shim_syncs, shim_us = (int(shim.group(1)), int(shim.group(2))) if shim else (0, 0)
    return {"cmd_wall_s": t2 - t1, "total_wall_s": t3 - t0, "syncs": ts.get("syncs", 0),
            "cmd_syncs": syncs_cmd, "cmd_guest_ms": sim_ms_cmd,
            "cmd_syncs_per_sim_ms": syncs_cmd / sim_ms_cmd if sim_ms_cmd > 0 else 0,
            "shim_us_per_sync": shim_us / shim_syncs if shim_syncs else 0,
            "device_time_ms": ts.get("device_time_ns", 0) / 1e6,
            "syncs_per_sim_ms": ts.get("syncs_per_sim_ms", 0),
            "sync_wall_us_p50": ts.get("sync_wall_us_p50", 0),
            "sync_wall_us_p99": ts.get("sync_wall_us_p99", 0),
            "mode": ts.get("mode", "free-running")}


def compare(paths, backend, cmd, reps, quantum_ns):
    runs = {"free": [], "coupled": []}
    for r in range(reps):
        for mode in ("free", "coupled"):  # interleaved: both see the same machine load
            progress("%s %s run %d/%d: %s" % (backend, mode, r + 1, reps, cmd))
            runs[mode].append(one_run(paths, backend, mode, cmd, quantum_ns))
            progress("  command %.1f s wall" % runs[mode][-1]["cmd_wall_s"])
    out = {"cmd": cmd}
    for mode, rs in runs.items():
        out[mode] = {k: summary([x[k] for x in rs]) for k in rs[0] if k != "mode"}
        out[mode]["time_mode"] = rs[0]["mode"]
    out["ratio_cmd_wall_coupled_over_free"] = round(
        out["coupled"]["cmd_wall_s"]["median"] / out["free"]["cmd_wall_s"]["median"], 2)
    return out


def main():
    tg.exit_on_signals()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="CMake build directory (-DTLPB_BUILD_QEMU=ON)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-rtl", action="store_true", help="hlsim only")
    ap.add_argument("--cmd", default="dmacopy-test", help="guest command for the backends")
    ap.add_argument("--idle-s", type=int, default=10, help="guest sleep for the idle case")
    ap.add_argument("--quantum-ns", type=int, default=10000)
    args = ap.parse_args()

    b = os.path.abspath(args.build)
    paths = {
        "qemu": os.path.join(b, "qemu_shim", "qemu-system-x86_64"),
        "kernel": os.path.join(b, "guest", "vmlinuz"),
        "initrd": os.path.join(b, "guest", "initramfs.cpio.gz"),
        "tlpbridged": os.path.join(b, "bridge", "tlpbridged"),
        "tlpbctl": os.path.join(b, "bridge", "tlpbctl"),
        "model": os.path.join(b, "examples", "libdmacopy.so"),
        "rtl-sim": os.path.join(b, "examples", "dmacopy", "rtl", "dmacopy-rtl-sim"),
        "rtl-config": os.path.join(HERE, "..", "examples", "configs", "dmacopy-fallback.cfg"),
    }
    for name, p in paths.items():
        if name == "rtl-sim" and args.no_rtl:
            continue
        if not os.path.exists(p):
            progress("%s not found (%s): build it first" % (name, p))
            return 2

    result = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
              "quantum_ns": args.quantum_ns, "reps": args.reps}
    try:
        result["hlsim"] = compare(paths, "hlsim", args.cmd, args.reps, args.quantum_ns)
        if not args.no_rtl:
            result["rtl"] = compare(paths, "rtl", args.cmd, args.reps, args.quantum_ns)
        result["idle"] = compare(paths, "hlsim", "sleep %d" % args.idle_s, args.reps,
                                 args.quantum_ns)
    except tg.Failure as e:
        progress("failed: %s" % e)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Guest end-to-end tests: Linux in QEMU with tlpbridge-pci, the dmacopy
driver and dmacopy-test, against tlpbridged on each backend.

usage: guest_test.py TEST --qemu Q --kernel K --initrd I --tlpbridged B
                     --hlsim-run H --model M --tlpbctl C --configs DIR
                     [--accel-file F]
                     [--rtl-sim S]
TEST: accel | inproc | inproc_fast | external | nosim | sim_kill | hotplug | rtl |
      coupled_hlsim | coupled_rtl | coupled_rtl_slow | iommu

Each test boots one guest in interactive mode (tlpb.interactive=1) and runs
many checks in it. Exit status: 0 all checks passed, 1 a check failed,
77 skipped (something needed is not built). TLPB_GUEST_VERBOSE=1 echoes the
console and every log; TLPB_GUEST_KEEP=1 keeps the temporary directory;
TLPB_ACCEL=tcg|kvm overrides the accelerator probe. With TLPB_JUNIT_DIR set,
the test writes TLPB_JUNIT_DIR/guest.TEST.xml, one JUnit <testcase> per
dmacopy-test case (guest_junit.py).
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "guest"))
import tlpbguest as tg  # noqa: E402
from tlpbguest import Failure, log  # noqa: E402
import guest_junit  # noqa: E402

SKIP = 77
DEVICE = "dmacopy0"

# Longest a guest command may take before the test calls it hung. Generous:
# they are bounds for a hang, not performance thresholds (TCG on a busy
# 2-core machine is slow).
SUITE_TIMEOUT = 420
SHORT_TIMEOUT = 120


class Skip(Exception):
    pass


class Test:
    def __init__(self, args):
        self.args = args
        self.failures = 0
        self.t0 = time.monotonic()
        self.junit = guest_junit.Report(args.test)

    def check(self, cond, msg):
        if not cond:
            self.failures += 1
            self.junit.check_failed(msg)
            log("FAIL: " + msg)
        return bool(cond)

    def elapsed(self):
        return time.monotonic() - self.t0

    def step(self, msg):
        log("[%6.1fs] %s" % (self.elapsed(), msg))


# ---- preconditions ---------------------------------------------------------------------


def preconditions(args, need_qemu=True):
    for what, path, target in (("guest kernel", args.kernel, "guest-image"),
                               ("guest initramfs", args.initrd, "guest-image")):
        if not os.path.exists(path):
            raise Skip("%s %s not found: build the '%s' target" % (what, path, target))
    if need_qemu:
        if not os.path.exists(args.qemu):
            raise Skip("QEMU with tlpbridge-pci not found at %s: configure with "
                       "-DTLPB_BUILD_QEMU=ON and build the 'qemu' target" % args.qemu)
        r = subprocess.run([args.qemu, "-device", "help"], capture_output=True, text=True,
                           timeout=60)
        if '"tlpbridge-pci"' not in r.stdout:
            raise Failure("%s has no tlpbridge-pci device (-device help)" % args.qemu)
    for p in (args.tlpbridged, args.hlsim_run, args.model, args.tlpbctl):
        if not os.path.exists(p):
            raise Skip("%s not built" % p)


def accel_for(t):
    accel, why = tg.choose_accel(t.args.qemu, t.args.kernel, t.args.initrd, t.args.accel_file)
    t.step("accelerator %s (%s)" % (accel, why))
    return accel


# ---- helpers -----------------------------------------------------------------------------


def shim_device(s, dev_id="tlpb0", bus="rp0", props=""):
    return "tlpbridge-pci,id=%s,bus=%s,socket=%s,device=%s%s" % (dev_id, bus, s.socket, DEVICE,
                                                                 props)


ROOT_PORT = "pcie-root-port,id=rp0,chassis=1,slot=1"


def boot(t, s, accel, devices, append="", shared_memory=True, reboot=False):
    t.step("booting the guest (%s, guest RAM %s)" % (
        accel, "shareable (memfd)" if shared_memory else "private"))
    g = tg.Guest(s, t.args.qemu, t.args.kernel, t.args.initrd, accel=accel, devices=devices,
                 append=append, shared_memory=shared_memory, reboot=reboot)
    g.wait_booted()
    t.step("guest up")
    return g


def gsh(t, g, cmd, timeout=SHORT_TIMEOUT, want_rc=0):
    """Runs a guest command; checks its exit status when want_rc is not None."""
    rc, out = g.run(cmd, timeout)
    if want_rc is not None:
        t.check(rc == want_rc, "guest command %r exited %d, expected %d; output:\n%s" %
                (cmd, rc, want_rc, "\n".join("    " + l for l in out[-30:])))
    return rc, out


BOUND_CMD = ("for d in /sys/bus/pci/drivers/dmacopy/0000:*; do "
             "[ -e \"$d\" ] && echo \"BOUND ${d##*/}\"; done; true")


def bound_devices(t, g):
    _, out = gsh(t, g, BOUND_CMD)
    return [l.split()[1] for l in out if l.startswith("BOUND ")]


_case_list = {}


def case_names(t, g, intx):
    """The cases dmacopy-test runs in a mode, from its --list."""
    if not _case_list:
        _, out = gsh(t, g, "dmacopy-test --list")
        for l in out:
            m = re.match(r"^(\w+)\s+.*?(\[(MSI-X|--intx) runs\])?$", l)
            if m:
                _case_list[m.group(1)] = m.group(3)
        t.check(len(_case_list) > 0, "dmacopy-test --list printed no cases")
    want = "--intx" if intx else "MSI-X"
    return [n for n, mode in _case_list.items() if mode in (None, want)]


def log_cases(cases):
    for name, ok, reason in cases:
        log("    %-20s %s%s" % (name, "PASS" if ok else "FAIL", "" if ok else "  " + reason))


def run_suite(t, g, intx=False, only=None, label=None, timeout=SUITE_TIMEOUT):
    """Runs dmacopy-test in the guest; every expected case must PASS."""
    cmd = "dmacopy-test" + (" --intx" if intx else "")
    expected = case_names(t, g, intx)
    if only:
        cmd += " --only " + ",".join(only)
        expected = list(only)
    label = label or cmd
    t.step("guest: %s" % cmd)
    mode = "intx" if intx else "msix"
    t0 = time.monotonic()
    mark = g.start(cmd)
    try:
        rc, out = g.finish(mark, timeout, "guest command %r" % cmd)
    except Failure as e:
        # The farm still sees the cases that ran and the one that hung.
        t.junit.add_suite(mode, label, cmd, g.console.text(mark), expected, None,
                          time.monotonic() - t0, ended=str(e).splitlines()[0])
        raise
    t.junit.add_suite(mode, label, cmd, out, expected, rc, time.monotonic() - t0)
    cases, result = tg.parse_tests(out)
    log_cases(cases)
    seen = {n for n, _, _ in cases}
    missing = [n for n in expected if n not in seen]
    failed = [n for n, ok, _ in cases if not ok]
    ok = t.check(not missing, "%s: no result for %s" % (label, ", ".join(missing)))
    ok &= t.check(not failed, "%s: failed cases: %s" % (label, ", ".join(failed)))
    ok &= t.check(result is not None and result[1] == 0 and result[0] == len(expected),
                  "%s: RESULT line %s, expected %d passed, 0 failed" %
                  (label, result, len(expected)))
    ok &= t.check(rc == 0, "%s exited %d" % (label, rc))
    if not ok:
        log("    guest output:\n" + "\n".join("      " + l for l in out[-60:]))
    return ok


def check_model_served(t, s, backend):
    """The bridge served the guest from the expected backend, and the fallback
    answered nothing."""
    st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
    c = st.get("counters", {})
    t.step("bridge: backend %s, %d host requests, %d DMA bytes, %d interrupts, "
           "%d fallback completions" % (st.get("backend"), c.get("host_requests", 0),
                                        c.get("dma_bytes", 0), c.get("interrupts", 0),
                                        c.get("fallback_completions", 0)))
    t.check(st.get("backend") == backend, "backend is %s, expected %s" % (st.get("backend"),
                                                                          backend))
    t.check(st.get("host_connected") is True, "the bridge has no host (QEMU) connected")
    t.check(c.get("host_requests", 0) > 0, "no host requests reached the bridge")
    t.check(c.get("dma_bytes", 0) > 0, "no DMA through the bridge")
    t.check(c.get("interrupts", 0) > 0, "no interrupts through the bridge")
    t.check(c.get("fallback_completions", 0) == 0,
            "%d requests were completed by the fallback" % c.get("fallback_completions", 0))
    return st


def fast_path_status(t, s):
    """What the bridge says of the fast path for the device: bytes of DMA it
    served from shared guest memory, the host's ring policy."""
    st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
    c = st.get("counters", {})
    shm = c.get("dma_shm_bytes", st.get("dma_shm_bytes", 0))
    return shm, st.get("ring"), st


def check_fast_path(t, s, shared, ring="adaptive", since_bytes=0):
    """shared: the device's DMA must have been served from shared guest memory
    (more than since_bytes of it); else none of it. ring: the host's ring
    policy the bridge reports ("off": the socket only)."""
    shm, got_ring, _ = fast_path_status(t, s)
    t.step("bridge: %d DMA bytes from shared guest memory, host ring %s" % (shm, got_ring))
    if shared:
        t.check(shm > since_bytes, "no DMA served from shared guest memory (%d bytes, %d "
                "before)" % (shm, since_bytes))
    else:
        t.check(shm == 0, "%d DMA bytes served from shared memory, expected none" % shm)
    t.check(got_ring == ring, "the bridge reports ring %s, expected %s" % (got_ring, ring))
    return shm


def check_sanitizers(t, s):
    for name, lines in s.sanitizer_reports:
        t.check(False, "sanitizer report in %s: %s" % (name, lines[0]))


def finish_guest(t, g):
    t.step("powering the guest off")
    rc = g.poweroff()
    t.check(rc == 0, "QEMU exited with status %s" % rc)


def check_no_violations(t, s):
    """Zero PCIe checker violations: the property every guest test ends with
    (docs/checker.md)."""
    st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
    chk = st.get("checker") or {}
    n = chk.get("violations", 0)
    t.check(n == 0, "the PCIe checker counted %d violation(s): %s" % (n, chk.get("rules")))


def stop_bridge(t, bridge, s=None):
    if s is not None:
        check_no_violations(t, s)
    rc = bridge.stop()
    t.check(rc == 0, "tlpbridged exited with status %s on SIGTERM" % rc)


@contextlib.contextmanager
def guest_session(t):
    """A session for one guest test: its logs are shown when the test fails,
    and, when it ends without an exception, the logs of its processes are
    checked for sanitizer reports."""
    with tg.Session("tlpb-guest") as s:
        try:
            yield s
        except Failure:
            s.dump_logs()
            raise
        if t.failures:
            s.dump_logs()
    check_sanitizers(t, s)


def bridge_device_args(t, backend):
    return ["--device", "%s:%s=%s" % (DEVICE, backend, t.args.model)]


def external_device_args(t):
    """The device served by a simulator process, the fallback until one attaches."""
    return ["--config", os.path.join(t.args.configs, "dmacopy-fallback.cfg")]


def wait_host_connected(t, bridge, since, timeout=60):
    """The shim connects (or reconnects) to the bridge: the bridge logs it."""
    bridge.wait_line(r"device %s: host .* connected" % DEVICE, timeout, since,
                     what="'host connected' in the bridge log")


# ---- the tests --------------------------------------------------------------------------


def test_accel(t):
    """Decides once per ctest run whether KVM works (guest tests read it)."""
    preconditions(t.args)
    if t.args.accel_file and os.path.exists(t.args.accel_file):
        os.unlink(t.args.accel_file)
    accel = accel_for(t)
    log("guest tests use %s" % accel)


def full_session(t, s, accel, backend_label, reboot=False):
    g = boot(t, s, accel, [ROOT_PORT, shim_device(s)], reboot=reboot)
    devs = bound_devices(t, g)
    t.check(len(devs) == 1, "dmacopy driver bound to %s, expected one device" % devs)
    gsh(t, g, "test -c /dev/dmacopy0")
    _, out = gsh(t, g, "dmesg | grep -i dmacopy")
    for l in out:
        log("    " + l)
    run_suite(t, g, intx=False, label="MSI-X suite (%s)" % backend_label)
    t.step("rebind with use_msix=0")
    gsh(t, g, "dmacopy-rebind use_msix=0")
    run_suite(t, g, intx=True, label="INTx suite (%s)" % backend_label)
    return g


def full_session_reboot(t, s, accel, label):
    """The suite, then a guest reboot (system_reset), then DMA again: the
    shared guest memory and the ring stay right across it."""
    g = full_session(t, s, accel, label, reboot=True)
    shm = check_fast_path(t, s, shared=True)
    t.step("rebooting the guest (system_reset)")
    mark = g.console.mark()
    g.qmp.cmd("system_reset")
    g.wait_booted(since=mark)
    t.check(len(bound_devices(t, g)) == 1, "dmacopy not bound after the reboot")
    run_suite(t, g, only=["scratch_4", "copy_1", "copy_odd", "copy_4k_cross", "copy_1m", "msix",
                          "error_bad_src", "error_bad_dst"],
              label="after the reboot (%s)" % label)
    check_fast_path(t, s, shared=True, since_bytes=shm)
    return g


def test_inproc(t):
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, bridge_device_args(t, "hlsim"))
        g = full_session_reboot(t, s, accel, "hlsim in the bridge")
        check_model_served(t, s, "hlsim")
        finish_guest(t, g)
        stop_bridge(t, bridge, s)


def test_socket(t):
    """The path without the fast path: guest RAM not shareable and QEMU's
    ring off, so every message, DMA data included, crosses the socket; the
    whole suite passes as with it."""
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, bridge_device_args(t, "hlsim"))
        g = boot(t, s, accel, [ROOT_PORT, shim_device(s, props=",ring=off")],
                 shared_memory=False)
        run_suite(t, g, label="MSI-X suite (socket only)")
        check_model_served(t, s, "hlsim")
        check_fast_path(t, s, shared=False, ring="off")
        finish_guest(t, g)
        stop_bridge(t, bridge, s)


def test_busy_poll(t):
    """QEMU and the bridge both busy-polling the ring: the suite passes."""
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, bridge_device_args(t, "hlsim") +
                                ["--ring", "busy-poll"])
        g = boot(t, s, accel, [ROOT_PORT, shim_device(s, props=",ring=busy-poll")])
        run_suite(t, g, label="MSI-X suite (ring busy-poll)")
        check_model_served(t, s, "hlsim")
        check_fast_path(t, s, shared=True, ring="busy-poll")
        finish_guest(t, g)
        stop_bridge(t, bridge, s)


def test_inproc_fast(t):
    """The model in fast DMA mode: QEMU offers unsplit DMA (fast-dma is on by
    default), the bridge grants it to this device, the whole suite passes
    with transfers in TLPs larger than PCIe allows."""
    preconditions(t.args)
    if not t.args.tlpbtrace or not os.path.exists(t.args.tlpbtrace):
        raise Skip("tlpbtrace %s not built (--tlpbtrace): the TLP lengths in the trace "
                   "cannot be checked" % (t.args.tlpbtrace or "(not given)"))
    accel = accel_for(t)
    with guest_session(t) as s:
        trace = os.path.join(s.dir, "fast.trace")
        bridge = s.start_bridge(t.args.tlpbridged, bridge_device_args(t, "hlsim") +
                                ["--dma", "fast", "--trace", trace])
        g = full_session_reboot(t, s, accel, "hlsim in the bridge, fast DMA")
        st = check_model_served(t, s, "hlsim")
        t.check(st.get("dma") == "fast", "status says DMA %s, expected fast" % st.get("dma"))
        t.check(not any("did not offer unsplit DMA" in l for l in bridge.out.text()),
                "the bridge says QEMU did not offer unsplit DMA")
        finish_guest(t, g)
        stop_bridge(t, bridge, s)
        # PCIe caps a TLP at 1024 DW (4 KiB): the copies went in larger
        # ones, served by QEMU.
        out = subprocess.run([t.args.tlpbtrace, "--kind", "MRd", trace], check=True,
                             capture_output=True, text=True).stdout
        lengths = [int(m.group(1)) for m in re.finditer(r" len (\d+) be", out)]
        t.check(lengths and max(lengths) > 1024,
                "largest DMA read in the trace: %s DW; expected unsplit reads above 1024"
                % (max(lengths) if lengths else "none"))


def test_external(t):
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, external_device_args(t))
        sim = s.start_sim(t.args.hlsim_run, t.args.model, DEVICE)
        t.step("hlsim-run attached")
        g = full_session(t, s, accel, "hlsim-run")
        check_model_served(t, s, "external")
        finish_guest(t, g)
        t.check(sim.alive(), "hlsim-run exited during the run")
        rc = sim.stop()
        t.check(rc == 0, "hlsim-run exited with status %s on SIGTERM" % rc)
        stop_bridge(t, bridge, s)


def test_external_fast(t):
    """hlsim-run in fast DMA mode on the same machine: the bridge shares the
    guest RAM QEMU shares with it, and the simulator process reads and writes
    it directly (docs/protocol.md, "Shared guest memory"); the whole suite
    passes."""
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged,
                                ["--device", "%s:external=%s" % (DEVICE, t.args.model),
                                 "--dma", "fast"])
        sim = s.start_sim(t.args.hlsim_run, t.args.model, DEVICE, ["--fast-dma"])
        t.step("hlsim-run attached")
        g = full_session(t, s, accel, "hlsim-run, fast DMA, direct to guest memory")
        st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
        c = st.get("counters", {})
        t.step("bridge: backend %s, DMA %s, simulator_guest_memory %s, %d DMA bytes through "
               "the bridge, %d interrupts" % (st.get("backend"), st.get("dma"),
                                              st.get("simulator_guest_memory"),
                                              c.get("dma_bytes", 0), c.get("interrupts", 0)))
        t.check(st.get("backend") == "external" and st.get("dma") == "fast",
                "backend %s, DMA %s: expected external, fast" % (st.get("backend"), st.get("dma")))
        t.check(st.get("simulator_guest_memory") is True,
                "the simulator does not have the guest memory map")
        # The suite moves about 24 MB by DMA; through the bridge go only the
        # error cases' accesses outside RAM.
        t.check(c.get("dma_bytes", 0) < 1 << 20,
                "%d DMA bytes went through the bridge, not directly to guest memory" %
                c.get("dma_bytes", 0))
        t.check(c.get("interrupts", 0) > 0 and c.get("fallback_completions", 0) == 0,
                "interrupts %d, fallback completions %d" % (c.get("interrupts", 0),
                                                            c.get("fallback_completions", 0)))
        finish_guest(t, g)
        t.check(sim.alive(), "hlsim-run exited during the run")
        rc = sim.stop()
        t.check(rc == 0, "hlsim-run exited with status %s on SIGTERM" % rc)
        stop_bridge(t, bridge, s)


ENUM_CMD = (
    "for d in /sys/bus/pci/devices/*; do "
    "echo \"PCI ${d##*/} $(cat $d/vendor) $(cat $d/device) $(cat $d/class) $(cat $d/revision)\";"
    " done; "
    "f=$(grep -l 0x7a11 /sys/bus/pci/devices/*/device | head -n 1); d=${f%/device}; "
    "[ -n \"$f\" ] || exit 3; n=0; "
    "while read a b fl; do echo \"RES $n $a $b $fl\"; n=$((n+1)); done < $d/resource; "
    "echo \"IRQPIN $(od -An -tx1 -j61 -N1 $d/config)\"; "
    "[ -e $d/driver ] && echo \"DRIVER $(basename $(readlink $d/driver))\"; true")


def check_enumeration(t, g):
    """lspci-like view from sysfs: the configured description, with no simulator."""
    rc, out = gsh(t, g, ENUM_CMD)
    for l in out:
        if l.startswith(("PCI ", "RES ", "IRQPIN", "DRIVER")):
            log("    " + l)
    pci = [l.split() for l in out if l.startswith("PCI ")]
    ours = [p for p in pci if p[2] == "0x1234" and p[3] == "0x7a11"]
    if not t.check(len(ours) == 1, "expected one 1234:7a11 device in sysfs, found %d" %
                   len(ours)):
        return None
    bdf, _, _, cls, rev = ours[0][1:6]
    t.check(cls == "0x088000", "class %s, expected 0x088000" % cls)
    t.check(rev == "0x01", "revision %s, expected 0x01" % rev)
    res = {int(l.split()[1]): l.split()[2:5] for l in out if l.startswith("RES ")}
    for bar in range(6):
        start, end, flags = (int(x, 16) for x in res.get(bar, ["0", "0", "0"]))
        size = end - start + 1 if end else 0
        if bar in (0, 2):
            t.check(size == 4096, "BAR%d size %d, expected 4096" % (bar, size))
            t.check(flags & 0x200 and not flags & 0x2000 and not flags & 0x100000,
                    "BAR%d flags 0x%x: expected 32-bit non-prefetchable memory" % (bar, flags))
        else:
            t.check(size == 0, "BAR%d present (size %d), expected none" % (bar, size))
    pin = [l.split()[1] for l in out if l.startswith("IRQPIN")]
    t.check(pin == ["01"], "interrupt pin %s, expected 01 (INTA)" % pin)
    drv = [l for l in out if l.startswith("DRIVER")]
    return bdf, drv


def test_nosim(t):
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, external_device_args(t))
        g = boot(t, s, accel, [ROOT_PORT, shim_device(s)])
        t.step("no simulator: enumeration from the configured description")
        found = check_enumeration(t, g)
        if found:
            bdf, drv = found
            t.check(not drv, "a driver is bound to %s with no simulator: %s" % (bdf, drv))
        t.check(bound_devices(t, g) == [], "dmacopy bound with no simulator")
        _, out = gsh(t, g, "dmesg | grep dmacopy")
        for l in out:
            log("    " + l)
        t.check(any("ID register reads 0xffffffff (no device model attached?)" in l
                    for l in out),
                "no 'ID register reads 0xffffffff (no device model attached?)' "
                "in the guest's kernel log")
        gsh(t, g, "test ! -e /dev/dmacopy0")
        st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
        t.check(st.get("backend") == "fallback", "backend %s, expected fallback" %
                st.get("backend"))
        t.check(st.get("counters", {}).get("fallback_completions", 0) > 0,
                "the fallback completed no reads")

        t.step("starting hlsim-run")
        sim = s.start_sim(t.args.hlsim_run, t.args.model, DEVICE)
        t.step("hlsim-run attached; rebinding the driver in the guest")
        rc, out = gsh(t, g, "dmacopy-rebind")
        t.check(len(bound_devices(t, g)) == 1, "dmacopy not bound after rebind")
        run_suite(t, g, intx=False, label="MSI-X suite after the simulator attached")
        check_model_served_after_attach(t, s)
        finish_guest(t, g)
        t.check(sim.alive(), "hlsim-run exited during the run")
        rc = sim.stop()
        t.check(rc == 0, "hlsim-run exited with status %s on SIGTERM" % rc)
        stop_bridge(t, bridge, s)


def check_model_served_after_attach(t, s):
    st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
    c = st.get("counters", {})
    t.check(st.get("backend") == "external", "backend %s, expected external" %
            st.get("backend"))
    t.check(c.get("dma_bytes", 0) > 0, "no DMA through the bridge")


def test_sim_kill(t):
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, external_device_args(t))
        sim = s.start_sim(t.args.hlsim_run, t.args.model, DEVICE)
        g = boot(t, s, accel, [ROOT_PORT, shim_device(s)])
        t.check(len(bound_devices(t, g)) == 1, "dmacopy not bound")
        run_suite(t, g, only=["scratch_4", "copy_1"], label="quick check before the kill")

        # --- the simulator dies in the middle of a test run --------------------
        # A dead device must not cost the driver's default 30 s per wait.
        gsh(t, g, "echo 3000 > /sys/module/dmacopy/parameters/timeout_ms")
        t.step("guest: dmacopy-test (full suite); SIGKILL hlsim-run once copy_1 passed")
        mark = g.start("dmacopy-test")
        g.wait_console(r"^TEST copy_1 ", SUITE_TIMEOUT, since=mark,
                       what="dmacopy-test's copy_1 result")
        sim.signal(signal.SIGKILL)
        sim.wait(30)
        t.step("hlsim-run killed")
        rc, out = g.finish(mark, SUITE_TIMEOUT,
                           "dmacopy-test after the kill (guest hung?)")
        cases, result = tg.parse_tests(out)
        failed = [n for n, ok, _ in cases if not ok]
        log("    after the kill: %d cases reported, failed: %s; %s" %
            (len(cases), ", ".join(failed) or "none", result))
        t.check(rc != 0, "dmacopy-test exited 0 although the simulator died")
        t.check(result is not None, "dmacopy-test printed no RESULT line")
        t.check(len(failed) > 0, "no case failed after the simulator was killed")
        gsh(t, g, "echo guest-alive")
        bridge.check_alive()
        st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
        t.check(st.get("backend") == "fallback", "backend %s after the kill, expected "
                "fallback" % st.get("backend"))
        t.check(st.get("counters", {}).get("fallback_completions", 0) > 0,
                "no request was completed by the fallback after the kill")

        # --- a simulator attaches again -----------------------------------------
        t.step("starting hlsim-run again")
        sim2 = s.start_sim(t.args.hlsim_run, t.args.model, DEVICE, name="hlsim-run-2")
        gsh(t, g, "echo 30000 > /sys/module/dmacopy/parameters/timeout_ms")
        gsh(t, g, "dmacopy-rebind")
        run_suite(t, g, only=["scratch_4", "copy_1", "copy_odd", "msix"],
                  label="after the simulator re-attached")
        # The simulator process's DMA is served by the bridge from shared memory.
        check_fast_path(t, s, shared=True)

        # --- the bridge dies ------------------------------------------------------
        t.step("SIGKILL tlpbridged")
        bridge.signal(signal.SIGKILL)
        bridge.wait(30)
        sim2.wait(60)  # it exits when the bridge goes away (no --reconnect)
        gsh(t, g, "echo 3000 > /sys/module/dmacopy/parameters/timeout_ms")
        rc, out = gsh(t, g, "dmacopy-test --only scratch_4,copy_1", want_rc=None)
        cases, _ = tg.parse_tests(out)
        t.check(rc != 0 and any(not ok for _, ok, _ in cases),
                "with no bridge, dmacopy-test should fail (reads all-ones), got rc %d: %s"
                % (rc, cases))
        status = g.qmp.cmd("query-status")
        t.check(status.get("running") is True and status.get("status") == "running",
                "QEMU status %s with no bridge, expected running" % status)
        g.alive_check()

        # --- the bridge comes back: the shim reconnects ----------------------------
        t.step("restarting tlpbridged (dmacopy in the bridge)")
        bridge2 = s.start_bridge(t.args.tlpbridged, bridge_device_args(t, "hlsim"),
                                 name="tlpbridged-2")
        wait_host_connected(t, bridge2, 0)
        t.step("the shim reconnected")
        gsh(t, g, "echo 30000 > /sys/module/dmacopy/parameters/timeout_ms")
        gsh(t, g, "dmacopy-rebind")
        run_suite(t, g, only=["scratch_4", "copy_1", "copy_odd", "copy_4k_cross", "msix"],
                  label="after the bridge came back")
        # The new bridge got the guest memory map and the ring on reconnect.
        check_fast_path(t, s, shared=True)
        finish_guest(t, g)
        stop_bridge(t, bridge2, s)


HOTPLUG_ROUNDS = int(os.environ.get("TLPB_HOTPLUG_ROUNDS", "20"))


def test_hotplug(t):
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, bridge_device_args(t, "hlsim"))
        # The root port starts empty; the device comes and goes through QMP.
        g = boot(t, s, accel, [ROOT_PORT])
        t.check(bound_devices(t, g) == [], "a dmacopy device is bound before device_add")
        # Kernel info messages on the console: the driver's probe and remove
        # lines are the events the test waits for.
        gsh(t, g, "dmesg -n 7")
        shm_seen = 0
        for i in range(1, HOTPLUG_ROUNDS + 1):
            t.step("round %d: device_add" % i)
            mark = g.console.mark()
            bmark = bridge.out.mark()
            g.qmp.cmd("device_add", driver="tlpbridge-pci", id="tlpb0", bus="rp0",
                      socket=s.socket, device=DEVICE)
            g.wait_console(r"dmacopy \S+: /dev/dmacopy0: ring", SHORT_TIMEOUT, since=mark,
                           what="dmacopy probe after device_add (round %d)" % i)
            wait_host_connected(t, bridge, bmark)
            devs = bound_devices(t, g)
            t.check(len(devs) == 1, "round %d: dmacopy bound to %s, expected one" %
                    (i, devs))
            run_suite(t, g, only=["scratch_4", "copy_1", "copy_4k_cross"], label="round %d" % i,
                      timeout=SHORT_TIMEOUT)
            # The plugged device shares guest RAM again; the map of the
            # unplugged one was dropped with its connection.
            shm_seen = check_fast_path(t, s, shared=True, since_bytes=shm_seen)
            if i == 1:
                # A process keeps the driver's mapped window (mmap) across the
                # unplug; FIFOs order its steps with the test's.
                _, out = gsh(t, g, "mkdir -p /tmp/mh && mkfifo /tmp/mh/ready /tmp/mh/go "
                             "/tmp/mh/done && { dmacopy-test --map-hold /tmp/mh >/tmp/mh/log "
                             "2>&1 & } && timeout 60 cat /tmp/mh/ready")
                t.check("MAPHOLD mapped" in [l.strip() for l in out],
                        "round 1: the mapped window was not set up: %s" % out[-5:])
                t.step("round 1: a process holds the driver's mapped window")
            t.step("round %d: device_del" % i)
            mark = g.console.mark()
            qmark = g.qmp.mark()
            g.qmp.cmd("device_del", id="tlpb0")
            try:
                g.qmp.wait_event("DEVICE_DELETED", SHORT_TIMEOUT, since=qmark,
                                 match={"device": "tlpb0"})
            except Failure as e:
                raise Failure("round %d: device_del did not complete: %s (QEMU never "
                              "released the device)" % (i, e))
            g.wait_console(r"dmacopy \S+: removed /dev/dmacopy0", SHORT_TIMEOUT,
                           since=mark, what="dmacopy remove (round %d)" % i)
            # The device closed its connection to the bridge.
            bridge.wait_line(r"device %s: host disconnected" % DEVICE, SHORT_TIMEOUT,
                             bmark, what="'host disconnected' in the bridge log")
            t.check(bound_devices(t, g) == [], "round %d: dmacopy still bound after "
                    "device_del" % i)
            if i == 1:
                # The device is gone: copies fail with ENODEV, the window stays
                # ordinary memory holding what it held, and the kernel is sane.
                _, out = gsh(t, g, "timeout 60 sh -c 'echo go > /tmp/mh/go' && "
                             "timeout 60 cat /tmp/mh/done; cat /tmp/mh/log; "
                             "dmesg | grep -E 'BUG|Bad page|general protection' || true")
                lines = [l.strip() for l in out]
                t.check("MAPHOLD ok" in lines and not any(
                    "BUG" in l or "Bad page" in l or "general protection" in l for l in lines),
                    "round 1: the mapped window across the unplug: %s" % lines[-10:])
                t.step("round 1: after the unplug: %s" % ", ".join(
                    l for l in lines if l.startswith("MAPHOLD")))
            if t.failures:
                break
        bridge.check_alive()
        finish_guest(t, g)
        stop_bridge(t, bridge, s)


def test_rtl(t):
    """The RTL backend: dmacopy in SystemVerilog under Verilator, attached to the
    bridge through the RTL adapter; the same guest, driver and cases."""
    rtl_preconditions(t)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, external_device_args(t))
        sim = s.start_rtl_sim(t.args.rtl_sim, DEVICE)
        t.step("RTL simulator attached")
        g = full_session(t, s, accel, "RTL")
        check_model_served(t, s, "external")
        finish_guest(t, g)
        t.check(sim.alive(), "the RTL simulator exited during the run")
        rc = sim.stop(60)
        t.check(rc == 0, "the RTL simulator exited with status %s on SIGTERM" % rc)
        stop_bridge(t, bridge, s)


# ---- the DMA safety net: a guest IOMMU --------------------------------------------------

IOMMU_DEVICE = "intel-iommu,intremap=off"
# Strict invalidation: a freed buffer's address stops translating at once
# (the default flush queue would leave it mapped for a while).
IOMMU_APPEND = "intel_iommu=on iommu.strict=1"
GROUPS_CMD = ("for g in /sys/kernel/iommu_groups/*; do for d in $g/devices/*; do "
              "echo \"GROUP ${d##*/} $(cat $g/type)\"; done; done; true")


def test_iommu(t):
    """The driver with the guest's IOMMU on (intel-iommu, strict): the device's
    DMA is translated, the whole suite passes; a driver bug that hands the
    device a stale DMA address (inject_stale_dma) is caught: the host refuses
    the read, the bridge counts and logs the fault at that address, and the
    device goes on working."""
    preconditions(t.args)
    accel = accel_for(t)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, bridge_device_args(t, "hlsim"))
        g = boot(t, s, accel, [IOMMU_DEVICE, ROOT_PORT, shim_device(s)], append=IOMMU_APPEND)
        devs = bound_devices(t, g)
        t.check(len(devs) == 1, "dmacopy driver bound to %s, expected one device" % devs)
        _, out = gsh(t, g, GROUPS_CMD)
        groups = dict(l.split()[1:3] for l in out if l.startswith("GROUP ") and len(l.split()) >= 3)
        t.step("IOMMU groups: %s" % groups)
        if devs:
            t.check(groups.get(devs[0]) == "DMA",
                    "the device %s is not behind a strict translating IOMMU domain (%s)" %
                    (devs[0], groups.get(devs[0])))
        suite_mark = bridge.out.mark()
        run_suite(t, g, label="MSI-X suite behind the guest IOMMU")
        # error_bad_dst has the device write where nothing is mapped: the host
        # refuses the posted write and tells the bridge.
        bridge.wait_line(r"DMA fault: write of \d+ bytes at 0x", 30, suite_mark,
                         what="the bridge's DMA fault line for error_bad_dst's write")
        before = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE).get(
            "counters", {}).get("dma_faults", 0)

        t.step("injecting a driver bug: a copy from a stale DMA address")
        mark = bridge.out.mark()
        gsh(t, g, "echo 1 > /sys/module/dmacopy/parameters/inject_stale_dma")
        rc, out = gsh(t, g, "dmacopy-test --bench-copy 4096 1; dmesg | grep 'injected bug'",
                      want_rc=None)
        addr = None
        for l in out:
            m = re.search(r"stale DMA address (0x[0-9a-f]+)", l)
            if m:
                addr = int(m.group(1), 16)
        t.check(addr is not None, "the driver did not log the injected stale address:\n%s" %
                "\n".join(out[-10:]))
        t.check(any("bench copy failed" in l for l in out),
                "the copy from a stale address did not fail in the guest:\n%s" %
                "\n".join(out[-10:]))
        if addr is not None:
            _, m = bridge.wait_line(r"DMA fault: read of \d+ bytes at (0x[0-9a-f]+)(.*)", 30, mark,
                                    what="the bridge's DMA fault line")
            t.check(int(m.group(1), 16) == addr,
                    "the bridge reported the fault at %s, the driver injected 0x%x" %
                    (m.group(1), addr))
            # The model says what the DMA was for: the descriptor whose
            # source is the stale address.
            d = re.search(r" while copying descriptor (\d+) \(src (0x[0-9a-f]+)", m.group(2))
            t.check(d is not None and int(d.group(2), 16) == addr,
                    "the fault line does not name the descriptor copying from 0x%x: %r" %
                    (addr, m.group(2)))
            if d:
                t.step("the bridge names descriptor %s as the one reading the stale address"
                       % d.group(1))
        st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
        faults = st.get("counters", {}).get("dma_faults", 0)
        t.step("bridge: %d DMA faults, %d of them from the injected bug" % (faults,
                                                                          faults - before))
        t.check(faults > before, "the bridge counted no DMA fault for the injected bug")
        run_suite(t, g, only=["scratch_4", "copy_1", "copy_4k_cross", "msix"],
                  label="the device after the fault")
        # Behind the IOMMU every DMA is translated by QEMU: nothing is shared.
        check_fast_path(t, s, shared=False)
        finish_guest(t, g)
        stop_bridge(t, bridge, s)


# ---- coupled simulated time ----------------------------------------------------------------
# docs/user-guide.md, "Coupled simulated time". The guest's clock counts
# instructions (-icount, sleep=off) and the shim keeps the device's clock
# within one quantum of it.

QUANTUM_NS = 10000
# Lines a guest prints when its clock ran while a CPU was kept from
# scheduling: what a slow device causes without coupled time.
LOCKUP_RE = re.compile(r"soft lockup|hard LOCKUP|rcu_\w+ (self-)?detected stall|"
                       r"rcu.*stall|hung_task|blocked for more than|watchdog: BUG", re.I)


def rtl_preconditions(t):
    if not t.args.rtl_sim:
        raise Skip("no RTL simulator: configure with -DTLPB_BUILD_RTL=ON")
    preconditions(t.args)
    if not os.path.exists(t.args.rtl_sim):
        raise Skip("%s not built" % t.args.rtl_sim)


def time_devices(s, time_mode):
    return [ROOT_PORT, shim_device(s) + tg.shim_time_props(time_mode, QUANTUM_NS)]


def time_qemu_args(time_mode):
    return tg.COUPLED_QEMU_ARGS if time_mode == "coupled" else ()


# The trace file (docs/protocol.md, "Trace file"): "TLPBTRC1", then frames of
# a 4-byte little-endian length and one TraceRecord. Read here with a small
# protobuf reader, independent of the bridge's own tools.
def _varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def _fields(b):
    """{field number: [values]} of one protobuf message (varints and bytes)."""
    out, i = {}, 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = int.from_bytes(b[i:i + 8], "little"), i + 8
        elif wt == 5:
            v, i = int.from_bytes(b[i:i + 4], "little"), i + 4
        else:
            raise Failure("trace: wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _one(f, num, default=0):
    return f.get(num, [default])[0]


def read_trace_events(path):
    """[(what, address, sim_time_ps)]: 'MWr'/'MRd' host requests, 'IRQ'
    interrupts, in trace order."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"TLPBTRC1":
        raise Failure("%s is no tlpbridge trace" % path)
    i, events = 8, []
    while i + 4 <= len(data):
        n = int.from_bytes(data[i:i + 4], "little")
        rec = _fields(data[i + 4:i + 4 + n])
        i += 4 + n
        env = _fields(_one(rec, 5, b""))
        if 3 in env:
            tlp = _fields(env[3][0])
            kind = {1: "MRd", 2: "MWr"}.get(_one(tlp, 1))
            if kind and _one(rec, 2) == 1:  # host to device
                events.append((kind, _one(tlp, 4), _one(tlp, 19)))
        elif 4 in env:
            irq = _fields(env[4][0])
            events.append(("IRQ", _one(irq, 2), _one(irq, 3)))
    return events


def copy_spans(events):
    """Device time (ps) from each doorbell (a host write to TAIL, BAR0 + 0x20)
    to the next interrupt, in order."""
    spans, doorbell = [], None
    for what, addr, ps in events:
        if what == "MWr" and addr & 0xFFF == 0x20:
            doorbell = ps
        elif what == "IRQ" and doorbell is not None:
            spans.append(ps - doorbell)
            doorbell = None
    return spans


def sim_trace_text(t, path):
    """tlpbtrace --sim: the trace without wall time, for comparing runs."""
    r = subprocess.run([t.args.tlpbtrace, "--sim", path], capture_output=True, text=True,
                       timeout=120)
    t.check(r.returncode == 0, "tlpbtrace --sim %s failed: %s" % (path, r.stderr.strip()))
    return r.stdout


FIDELITY_CMD = "dmacopy-test --bench-copy 4 1 && dmacopy-test --bench-copy 65536 1"


def coupled_once(t, backend, label, sim_args=(), bridge_args=()):
    """One coupled boot that runs FIDELITY_CMD (tlpb.run: no console input, so
    the guest's instructions, and with them its clock, are the same every
    run); returns (driver ktimes in ns, trace events, tlpbtrace --sim text,
    bridge status)."""
    with guest_session(t) as s:
        trace = s.path("trace.tlpb")
        if backend == "rtl":
            bridge = s.start_bridge(t.args.tlpbridged, external_device_args(t) +
                                    ["--trace", trace] + list(bridge_args))
            sim = s.start_rtl_sim(t.args.rtl_sim, DEVICE, list(sim_args))
        else:
            bridge = s.start_bridge(t.args.tlpbridged, list(bridge_args) + ["--trace", trace])
            sim = None
        t.step("%s: coupled boot running %r" % (label, FIDELITY_CMD))
        g = tg.Guest(s, t.args.qemu, t.args.kernel, t.args.initrd, accel="tcg",
                     devices=time_devices(s, "coupled"), interactive=False,
                     append='tlpb.run="%s"' % FIDELITY_CMD,
                     extra_args=time_qemu_args("coupled"))
        rc, out = g.wait_run_once(SUITE_TIMEOUT)
        t.check(rc == 0, "%s: %r exited %d:\n%s" % (label, FIDELITY_CMD, rc,
                                                     "\n".join("    " + l for l in out[-20:])))
        ktimes = [int(l.split()[2]) for l in out if l.startswith("BENCH copy_driver_ns ")]
        st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
        if sim:
            rc = sim.stop(60)
            t.check(rc == 0, "%s: the RTL simulator exited with status %s" % (label, rc))
        stop_bridge(t, bridge, s)
        events = read_trace_events(trace)
        text = sim_trace_text(t, trace)
    t.step("%s: driver ktime %s ns, %d syncs, %d fallback completions" %
           (label, ktimes, st.get("time", {}).get("syncs", -1),
            st.get("counters", {}).get("fallback_completions", -1)))
    t.check(st.get("counters", {}).get("fallback_completions", 0) == 0,
            "%s: the fallback completed requests" % label)
    return ktimes, events, text, st


def check_fidelity(t, label, ktimes, events):
    """The guest's ktime of a copy is the device's time for it (doorbell to
    interrupt, from the trace's stamps), plus guest software time, plus at
    most one quantum: the interrupt reaches the guest at the next sync point.
    The 4-byte copy measures the software time."""
    spans = copy_spans(events)
    # FIDELITY_CMD: per size one checked copy, then the timed one.
    if not t.check(len(ktimes) == 2 and len(spans) == 4,
                   "%s: expected 2 driver times and 4 copies in the trace, got %s and %s" %
                   (label, ktimes, spans)):
        return None
    small, big = spans[1] / 1000.0, spans[3] / 1000.0
    soft_small, soft_big = ktimes[0] - small, ktimes[1] - big
    t.step("%s: 4 B copy: device %.0f ns, guest %d ns; 64 KiB copy: device %.0f ns, "
           "guest %d ns" % (label, small, ktimes[0], big, ktimes[1]))
    t.check(soft_small >= 0 and soft_big >= 0,
            "%s: the guest measured less than the device took (%.0f / %.0f ns)" %
            (label, soft_small, soft_big))
    t.check(abs(soft_big - soft_small) <= QUANTUM_NS,
            "%s: 64 KiB copy: guest %d ns vs device %.0f ns + software %.0f ns: off by "
            "more than one quantum (%d ns)" % (label, ktimes[1], big, soft_small, QUANTUM_NS))
    return big


def test_coupled_rtl(t):
    """RTL dmacopy in coupled time: the guest's ktime of a 64 KiB copy is the
    RTL's cycles times its clock period (within a quantum, plus software time);
    the run is deterministic: uncapped and capped at 20,000 cycles/s give the
    same trace (TLPs and simulated stamps) and the same guest times."""
    rtl_preconditions(t)
    k1, e1, text1, st = coupled_once(t, "rtl", "RTL uncapped")
    big = check_fidelity(t, "RTL uncapped", k1, e1)
    period = st.get("time", {}).get("clock_period_ps", 0)
    if big is not None and period:
        t.step("RTL: 64 KiB copy took %d cycles at %d ps" % (big * 1000 / period, period))
    k2, e2, text2, _ = coupled_once(t, "rtl", "RTL capped", ["--max-cycles-per-s", "20000"])
    check_fidelity(t, "RTL capped", k2, e2)
    t.check(k1 == k2, "guest times differ between uncapped and capped RTL: %s vs %s" % (k1, k2))
    t.check(e1 == e2, "trace stamps differ between uncapped and capped RTL")
    t.check(text1 == text2 and text1.strip(),
            "tlpbtrace --sim differs between two coupled RTL runs (first difference: %s)" %
            first_difference(text1, text2))


def first_difference(a, b):
    for n, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
        if x != y:
            return "line %d: %r vs %r" % (n + 1, x, y)
    return "lengths %d vs %d lines" % (len(a.splitlines()), len(b.splitlines()))


HLSIM_BYTES_PER_NS = 1.0


def test_coupled_hlsim(t):
    """The in-process hlsim model in coupled time: a 64 KiB copy takes the
    model's declared throughput in the guest's clock, and two runs give the
    same trace and the same guest times."""
    preconditions(t.args)
    # The model's throughput comes from its model_args, set in a config file.
    cfg_dir = tempfile.mkdtemp(prefix="tlpb-coupled-")
    cfg = os.path.join(cfg_dir, "dmacopy-hlsim-coupled.cfg")
    with open(cfg, "w") as f:
        f.write('devices = ({ name = "%s"; backend = "hlsim"; model = "%s"; '
                'model_args = "bytes_per_ns=%g"; });\n' % (DEVICE, t.args.model,
                                                           HLSIM_BYTES_PER_NS))
    args = ["--config", cfg]
    k1, e1, text1, _ = coupled_once(t, "hlsim", "hlsim run 1", bridge_args=args)
    big = check_fidelity(t, "hlsim run 1", k1, e1)
    spans = copy_spans(e1)
    if big is not None and len(spans) == 4:
        want = (65536 - 4) / HLSIM_BYTES_PER_NS
        got = (spans[3] - spans[1]) / 1000.0
        t.check(abs(got - want) <= 0.05 * want,
                "hlsim: 64 KiB minus 4 B copy took %.0f ns of device time, the model declares "
                "%.0f ns (%g bytes/ns)" % (got, want, HLSIM_BYTES_PER_NS))
    k2, e2, text2, _ = coupled_once(t, "hlsim", "hlsim run 2", bridge_args=args)
    shutil.rmtree(cfg_dir, ignore_errors=True)
    t.check(k1 == k2, "guest times differ between two coupled hlsim runs: %s vs %s" % (k1, k2))
    t.check(text1 == text2 and text1.strip(),
            "tlpbtrace --sim differs between two coupled hlsim runs (%s)" %
            first_difference(text1, text2))


SLOW_RTL_CYCLES_PER_S = 2000
SLOW_CASES = ["scratch_4", "copy_1m", "msix", "poll_busy", "irq_masked"]
SLOW_CMD = "dmacopy-test --big-copy 65536 --only " + ",".join(SLOW_CASES)
SLOW_APPEND = "dmacopy.timeout_ms=100 watchdog_thresh=1"


def slow_rtl_run(t, time_mode):
    """The slow-RTL subset in one time mode: (passed, lockup lines, fallback
    completions, why it failed)."""
    label = "RTL at %d cycles/s, %s" % (SLOW_RTL_CYCLES_PER_S, time_mode)
    with guest_session(t) as s:
        bridge = s.start_bridge(t.args.tlpbridged, external_device_args(t))
        sim = s.start_rtl_sim(t.args.rtl_sim, DEVICE,
                              ["--max-cycles-per-s", str(SLOW_RTL_CYCLES_PER_S)])
        t.step("%s: booting" % label)
        g = tg.Guest(s, t.args.qemu, t.args.kernel, t.args.initrd, accel="tcg",
                     devices=time_devices(s, time_mode), append=SLOW_APPEND,
                     extra_args=time_qemu_args(time_mode))
        g.wait_booted()
        t.step("%s: guest up, running %s" % (label, SLOW_CMD))
        t0 = time.monotonic()
        why = ""
        try:
            rc, out = g.run(SLOW_CMD, SUITE_TIMEOUT)
            cases, result = tg.parse_tests(out)
            failed = [n for n, ok, _ in cases if not ok]
            passed = rc == 0 and not failed and result == (len(SLOW_CASES), 0)
            log_cases(cases)
            if not passed:
                why = "rc %d, failed cases %s" % (rc, ", ".join(failed) or "none")
        except Failure as e:
            passed, why = False, "hung: %s" % str(e).splitlines()[0]
        t.step("%s: %s after %.0f s" % (label, "passed" if passed else "failed (%s)" % why,
                                         time.monotonic() - t0))
        lockups = [l for l in g.console.text(0) if LOCKUP_RE.search(l)]
        st = tg.tlpbctl_status(t.args.tlpbctl, s.socket, DEVICE)
        fallbacks = st.get("counters", {}).get("fallback_completions", 0)
        for l in lockups[:5]:
            log("    console: " + l)
        if time_mode == "coupled":
            ts = st.get("time", {})
            t.step("%s: %s syncs, device time %s ns, %s fallback completions" %
                   (label, ts.get("syncs"), ts.get("device_time_ns"), fallbacks))
            finish_guest(t, g)
        else:
            g.kill()
        sim.stop(60)
        if time_mode == "coupled":
            # Free-running, the slow device's reads time out: the checker
            # rightly counts completion timeouts there.
            check_no_violations(t, s)
        bridge.stop()
    return passed, lockups, fallbacks, why


def test_coupled_rtl_slow(t):
    """A design as slow as a real one (2,000 cycles per wall second): with the
    driver's timeout at 100 ms and a 1 s watchdog, the guest's cases pass in
    coupled time with no fallback answer and no lockup report, and fail when
    the same run is free-running: the mode is what makes the difference."""
    rtl_preconditions(t)
    passed, lockups, fallbacks, why = slow_rtl_run(t, "coupled")
    t.check(passed, "coupled: the slow-RTL cases failed (%s)" % why)
    t.check(not lockups, "coupled: the guest reported lockups: %s" % lockups[:3])
    t.check(fallbacks == 0, "coupled: %d requests were completed by the fallback" % fallbacks)
    passed, lockups, fallbacks, why = slow_rtl_run(t, "free")
    t.check(not passed or lockups,
            "free-running: the slow-RTL cases passed with no lockup report, so this test "
            "does not show what coupled time changes")
    t.step("free-running: %s; %d lockup lines; %d fallback completions" %
           (why or "passed", len(lockups), fallbacks))


TESTS = {
    "accel": test_accel,
    "inproc": test_inproc,
    "inproc_fast": test_inproc_fast,
    "socket": test_socket,
    "busy_poll": test_busy_poll,
    "external": test_external,
    "external_fast": test_external_fast,
    "nosim": test_nosim,
    "sim_kill": test_sim_kill,
    "hotplug": test_hotplug,
    "rtl": test_rtl,
    "coupled_rtl": test_coupled_rtl,
    "coupled_rtl_slow": test_coupled_rtl_slow,
    "coupled_hlsim": test_coupled_hlsim,
    "iommu": test_iommu,
}


def main():
    tg.exit_on_signals()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("test", choices=sorted(TESTS))
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--tlpbridged", required=True)
    ap.add_argument("--hlsim-run", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tlpbctl", required=True)
    ap.add_argument("--tlpbtrace")
    ap.add_argument("--configs", required=True)
    ap.add_argument("--accel-file")
    ap.add_argument("--rtl-sim", help="dmacopy RTL simulator (for the rtl test)")
    args = ap.parse_args()
    t = Test(args)
    log("guest.%s" % args.test)
    try:
        try:
            TESTS[args.test](t)
        except Skip as e:
            t.junit.skipped(str(e))
            log("SKIP guest.%s: %s" % (args.test, e))
            return SKIP
        except Failure as e:
            t.failures += 1
            t.junit.check_failed(str(e))
            log("FAIL: %s" % e)
        except BaseException as e:
            # Killed (ctest's timeout: SIGTERM) or a bug here: the file says so.
            t.junit.check_failed("guest.%s ended by %s: %s" % (args.test, type(e).__name__, e))
            raise
        log("%s guest.%s in %.0f s (%d failed checks)" %
            ("PASS" if not t.failures else "FAIL", args.test, t.elapsed(), t.failures))
        return 1 if t.failures else 0
    finally:
        path = t.junit.write()
        if path:
            log("JUnit: %s" % path)


if __name__ == "__main__":
    sys.exit(main())

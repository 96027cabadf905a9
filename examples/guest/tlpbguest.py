"""tlpbguest: run tlpbridged, hlsim-run and a QEMU guest with tlpbridge-pci.

Used by the guest tests (tests/guest), the guest benchmark (bench/) and
scripts/run.sh. Python 3 standard library only.

- Every process is a child in a Session (a temporary directory with the
  sockets and logs); closing the session stops them all, SIGTERM then
  SIGKILL, and removes the directory (TLPB_GUEST_KEEP=1 keeps it).
- Every wait has a deadline and is woken by an event: a line on a log or on
  the serial console, a QMP message, a process exit, a ready pipe. Nothing
  sleeps to synchronise.
- The guest is the image of examples/guest (build-initramfs.sh) booted with
  tlpb.interactive=1: it prints TLPB-READY, runs each line it reads on ttyS0
  and prints TLPB-DONE rc=N.
"""

import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


class Failure(Exception):
    """Something the caller waited for did not happen (message says what)."""


class QMPError(Failure):
    """A QMP command returned an error."""

    def __init__(self, cmd, error):
        self.cmd = cmd
        self.error = error
        desc = error.get("desc", error) if isinstance(error, dict) else error
        super().__init__("QMP %s failed: %s" % (cmd, desc))


def log(msg):
    print(msg, flush=True)


def now():
    return time.monotonic()


# ---- line streams ------------------------------------------------------------------

# A kernel message printed while a program's line is half written lands in the
# middle of that line: "TLPB-DO[   12.345678] pcieport ...". With printk.time=1
# every kernel line starts with such a time stamp, so the line is split there
# and the program's part is joined to the next line.
KMSG_RE = re.compile(r"\[\s*\d+\.\d{6}\] ")


class LineBuffer:
    """Lines from a stream, appended by a reader thread; waiters are woken."""

    def __init__(self, name, log_path=None, echo=False, split_kmsg=False):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.echo = echo
        self.split_kmsg = split_kmsg
        self._partial = ""
        self._log = open(log_path, "a", encoding="utf-8", errors="replace") if log_path else None

    def _add(self, line):
        # Called with the condition held.
        self.lines.append(line)
        if self._log:
            self._log.write(line + "\n")
            self._log.flush()
        if self.echo:
            sys.stdout.write("  %s| %s\n" % (self.name, line))
            sys.stdout.flush()

    def feed_line(self, line):
        line = line.rstrip("\r\n").replace("\r", "")
        with self.cond:
            if self.split_kmsg:
                m = KMSG_RE.search(line)
                if m and m.start() > 0:
                    self._partial += line[: m.start()]
                    self._add(line[m.start():])
                    self.cond.notify_all()
                    return
                if self._partial:
                    line = self._partial + line
                    self._partial = ""
            self._add(line)
            self.cond.notify_all()

    def close(self):
        with self.cond:
            if self._partial:
                self._add(self._partial)
                self._partial = ""
            self.closed = True
            self.cond.notify_all()
            if self._log:
                self._log.close()
                self._log = None

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait_for(self, pattern, timeout, since=0, what=None, alive=None):
        """Wait for a line matching the regex pattern (searched anywhere in the
        line) at index >= since. Returns (index, match). Raises Failure on
        timeout or when the stream ends first."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = now() + timeout
        i = since
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return i, m
                    i += 1
                if self.closed:
                    raise Failure("%s ended before %s" % (self.name, what or repr(rx.pattern)))
                left = deadline - now()
                if left <= 0:
                    raise Failure("no %s on %s within %.0f s" % (what or repr(rx.pattern), self.name,
                                                                  timeout))
                self.cond.wait(min(left, 1.0))
                if alive is not None:
                    alive()

    def text(self, since=0, until=None):
        with self.cond:
            return list(self.lines[since:until])


def _pump_file(fileobj, buf):
    try:
        for raw in iter(fileobj.readline, b""):
            buf.feed_line(raw.decode("utf-8", "replace"))
    except (OSError, ValueError):
        pass
    finally:
        buf.close()


def _pump_socket(sock, buf):
    pending = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            pending += data
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                buf.feed_line(raw.decode("utf-8", "replace"))
    except OSError:
        pass
    finally:
        if pending:
            buf.feed_line(pending.decode("utf-8", "replace"))
        buf.close()


# ---- processes -----------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _die_with_parent():
    # In the child before exec: SIGKILL it if this (Python) process dies,
    # even by SIGKILL, so no QEMU or bridge outlives a killed test.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def exit_on_signals():
    """SIGTERM/SIGINT/SIGHUP end the program through SystemExit, so that every
    Session's cleanup runs (processes stopped, temporary directory removed)."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)



class Proc:
    """A child process whose stdout+stderr go, line by line, to a log file and
    to a LineBuffer that can be waited on."""

    def __init__(self, session, name, argv, pass_fds=(), stdin=subprocess.DEVNULL, env=None):
        self.session = session
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = os.path.join(session.dir, name + ".log")
        self.out = LineBuffer(name, self.log_path, echo=session.verbose)
        self.expect_exit = False
        with open(self.log_path, "a") as f:
            f.write("$ %s\n" % " ".join(self.argv))
        self.popen = subprocess.Popen(self.argv, stdin=stdin, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, pass_fds=pass_fds,
                                      env=env, start_new_session=True,
                                      preexec_fn=_die_with_parent)
        self._thread = threading.Thread(target=_pump_file, args=(self.popen.stdout, self.out),
                                        daemon=True)
        self._thread.start()
        session.procs.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def signal(self, sig):
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.expect_exit = True
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure("%s (pid %d) did not exit within %.0f s" % (self.name, self.pid, timeout))

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL; returns the exit status."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("%s did not stop on SIGTERM within %d s: SIGKILL" % (self.name, timeout))
                self.popen.kill()
                self.popen.wait()
        self._thread.join(timeout=5)
        return self.popen.returncode

    def check_alive(self):
        if not self.alive():
            raise Failure("%s exited unexpectedly (status %s); log %s:\n%s" %
                          (self.name, self.returncode(), self.log_path, self.tail()))

    def wait_line(self, pattern, timeout, since=0, what=None):
        return self.out.wait_for(pattern, timeout, since, what)

    def tail(self, n=25):
        return "\n".join("    " + l for l in self.out.text()[-n:])


SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                          r"UndefinedBehaviorSanitizer")


class Session:
    """A temporary directory and the processes of one run. After close(),
    sanitizer_reports lists (process, lines) for reports found in the logs of
    every process but QEMU."""

    def __init__(self, name="tlpb", verbose=None):
        # Short path under /tmp: unix socket paths are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="%s-" % name, dir="/tmp")
        self.procs = []
        self.verbose = bool(os.environ.get("TLPB_GUEST_VERBOSE")) if verbose is None else verbose
        self.keep = bool(os.environ.get("TLPB_GUEST_KEEP"))
        self.socket = os.path.join(self.dir, "tlpbridge.sock")
        self.sanitizer_reports = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # cleanup goes on whatever happens
                log("cleanup: %s: %s" % (p.name, e))
        # Sanitizer reports of our own programs (an ASan build), also at exit.
        self.sanitizer_reports = []
        for p in self.procs:
            if p.name.startswith("qemu"):
                continue
            bad = [l for l in p.out.text() if SANITIZER_RE.search(l)]
            if bad:
                self.sanitizer_reports.append((p.name, bad))
                log("---- sanitizer report in %s:" % p.name)
                log(p.tail(60))
        if self.keep:
            log("kept %s (TLPB_GUEST_KEEP)" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self, lines=40):
        for p in self.procs:
            log("---- last lines of %s (%s)" % (p.name, p.log_path))
            for l in p.out.text()[-lines:]:
                log("    " + l)

    # -- tlpbridged ----------------------------------------------------------------
    def start_bridge(self, tlpbridged, args, name="tlpbridged", timeout=30):
        """Starts tlpbridged --listen self.socket --ready-fd N ARGS and waits
        for it to write "ready"."""
        rfd, wfd = os.pipe()
        try:
            p = Proc(self, name, [tlpbridged, "--listen", self.socket, "--ready-fd", str(wfd)]
                     + list(args), pass_fds=(wfd,))
        finally:
            os.close(wfd)
        try:
            data = b""
            deadline = now() + timeout
            while b"\n" not in data:
                left = deadline - now()
                if left <= 0:
                    raise Failure("%s did not report ready within %d s" % (name, timeout))
                r, _, _ = select.select([rfd], [], [], left)
                if not r:
                    continue
                chunk = os.read(rfd, 64)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(rfd)
        if data.strip() != b"ready":
            p.popen.wait(timeout=5) if not p.alive() else None
            raise Failure("%s did not start (status %s):\n%s" % (name, p.returncode(), p.tail()))
        return p

    # -- simulators -------------------------------------------------------------------
    def start_sim(self, hlsim_run, model, device="dmacopy0", args=(), name="hlsim-run",
                  timeout=30):
        """Starts hlsim-run (the model in its own process) and waits until it
        has attached."""
        return self.start_simulator(name, [hlsim_run, "--socket", self.socket, "--device", device,
                                           "--model", model] + list(args), device, timeout)

    def start_rtl_sim(self, rtl_sim, device="dmacopy0", args=(), name="rtl-sim", timeout=60):
        """Starts a Verilated RTL simulator (rtl_adapter) and waits until it has
        attached."""
        return self.start_simulator(name, [rtl_sim, "--socket", self.socket, "--device", device]
                                    + list(args), device, timeout)

    def start_simulator(self, name, argv, device, timeout):
        """Starts a simulator process and waits for its "attached ... as
        simulator for DEVICE" line, logged once the bridge has accepted it."""
        p = Proc(self, name, argv)
        p.wait_line(r"attached .*as simulator for " + re.escape(device), timeout,
                    what="'attached as simulator' line from %s" % name)
        return p


# ---- QMP -----------------------------------------------------------------------------


class QMP:
    """A QMP connection (QEMU connected to our listening socket)."""

    def __init__(self, sock, log_path):
        self.sock = sock
        self.buf = LineBuffer("qmp", log_path)
        self._next_id = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=_pump_socket, args=(sock, self.buf), daemon=True)
        self._thread.start()

    def _msgs(self, since):
        out = []
        for i, line in enumerate(self.buf.text(since), start=since):
            try:
                out.append((i, json.loads(line)))
            except ValueError:
                pass
        return out

    def handshake(self, timeout):
        self.buf.wait_for(r'"QMP"', timeout, what="QMP greeting")
        self.cmd("qmp_capabilities", timeout=timeout)

    def cmd(self, name, timeout=30, **args):
        with self._lock:
            self._next_id += 1
            cid = "c%d" % self._next_id
        msg = {"execute": name, "id": cid}
        if args:
            msg["arguments"] = args
        since = self.buf.mark()
        self.sock.sendall((json.dumps(msg) + "\n").encode())
        _, _ = self.buf.wait_for(r'"id":\s*"%s"' % cid, timeout, since,
                                 what="reply to QMP %s" % name)
        for _, m in self._msgs(since):
            if m.get("id") == cid:
                if "error" in m:
                    raise QMPError(name, m["error"])
                return m.get("return")
        raise Failure("QMP reply to %s not parsed" % name)

    def mark(self):
        return self.buf.mark()

    def wait_event(self, event, timeout, since=0, match=None):
        """Waits for a QMP event (dict) named event, at or after index since,
        whose data contains the items of match."""
        i = since
        deadline = now() + timeout
        while True:
            left = deadline - now()
            idx, _ = self.buf.wait_for(r'"event":\s*"%s"' % event, max(left, 0.001), i,
                                       what="QMP event %s" % event)
            m = json.loads(self.buf.text(idx, idx + 1)[0])
            data = m.get("data", {})
            if not match or all(data.get(k) == v for k, v in match.items()):
                return m
            i = idx + 1


# ---- the guest ----------------------------------------------------------------------------


def _listen(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    return s


def _accept(lsock, proc, timeout, what):
    deadline = now() + timeout
    while True:
        left = deadline - now()
        if left <= 0:
            raise Failure("QEMU did not connect its %s within %d s" % (what, timeout))
        r, _, _ = select.select([lsock], [], [], min(left, 0.5))
        if r:
            conn, _ = lsock.accept()
            return conn
        if not proc.alive():
            proc.wait(5)
            raise Failure("QEMU exited (status %s) before connecting its %s:\n%s" %
                          (proc.returncode(), what, proc.tail()))


GUEST_APPEND = "console=ttyS0 printk.time=1 panic=-1"

# Coupled simulated time (docs/user-guide.md, "Coupled simulated time"): the
# guest's clock counts executed instructions and never sleeps, so it can wait
# for the device's clock; the RTC follows it too.
COUPLED_QEMU_ARGS = ("-icount", "shift=0,sleep=off",
                     "-rtc", "base=2026-01-01T00:00:00,clock=vm")


def shim_time_props(time_mode, quantum_ns=None):
    """tlpbridge-pci properties for a time mode ("free" or "coupled")."""
    if time_mode != "coupled":
        return ""
    return ",time=coupled" + (",quantum-ns=%d" % quantum_ns if quantum_ns else "")


def shim_props(**props):
    """tlpbridge-pci properties as a device-string suffix: shim_props(ring="busy-poll")
    gives ",ring=busy-poll" (underscores in names become dashes; None is left out)."""
    return "".join(",%s=%s" % (k.replace("_", "-"), v)
                   for k, v in sorted(props.items()) if v is not None)


class Guest:
    """One QEMU process with the guest image, its serial console and QMP.

    shared_memory (default): guest RAM on memory-backend-memfd,share=on, so the
    shim can share it with the bridge (docs/protocol.md, "Shared guest
    memory"); False: QEMU's private RAM, every DMA as messages.
    shim_props: a suffix (see shim_props()) added to every tlpbridge-pci device.
    reboot: a reset (QMP system_reset, a guest reboot) restarts the guest
    instead of ending QEMU (-no-reboot, the default)."""

    def __init__(self, session, qemu, kernel, initrd, accel="tcg", append="", devices=(),
                 extra_args=(), name="qemu", memory=512, interactive=True, boot_timeout=None,
                 quiet=True, shared_memory=True, shim_props="", reboot=False):
        self.session = session
        self.name = name
        self.accel = accel
        ser_path = session.path(name + "-serial.sock")
        qmp_path = session.path(name + "-qmp.sock")
        ser_l = _listen(ser_path)
        qmp_l = _listen(qmp_path)
        cmdline = GUEST_APPEND
        if quiet:
            cmdline += " quiet"
        if interactive:
            cmdline += " tlpb.interactive=1"
        if append:
            cmdline += " " + append
        machine = "q35"
        ram = []
        if shared_memory:
            machine += ",memory-backend=ram0"
            ram = ["-object", "memory-backend-memfd,id=ram0,size=%dM,share=on" % memory]
        argv = [qemu, "-machine", machine, "-accel", accel, "-nodefaults", "-display", "none",
                "-m", str(memory)] + ([] if reboot else ["-no-reboot"]) + ram + [
                "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
                "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
                # QEMU connects to sockets we already listen on: no waiting
                # for QEMU to create them.
                "-chardev", "socket,id=ser0,path=" + ser_path, "-serial", "chardev:ser0",
                "-chardev", "socket,id=qmp0,path=" + qmp_path, "-mon", "chardev=qmp0,mode=control"]
        for d in devices:
            if shim_props and d.startswith("tlpbridge-pci"):
                d += shim_props
            argv += ["-device", d]
        argv += list(extra_args)
        self.proc = Proc(session, name, argv)
        try:
            ser = _accept(ser_l, self.proc, 30, "serial console")
            qmp = _accept(qmp_l, self.proc, 30, "QMP monitor")
        finally:
            ser_l.close()
            qmp_l.close()
        self.ser = ser
        self.console = LineBuffer("console", session.path(name + "-console.log"),
                                  echo=session.verbose, split_kmsg=True)
        threading.Thread(target=_pump_socket, args=(ser, self.console), daemon=True).start()
        self.qmp = QMP(qmp, session.path(name + "-qmp.log"))
        self.qmp.handshake(30)
        self._ready_seen = 0  # TLPB-READY lines consumed
        self._cursor = 0
        self.boot_timeout = boot_timeout or (60 if accel == "kvm" else 180)

    def alive_check(self):
        self.proc.check_alive()

    def wait_console(self, pattern, timeout, since=None, what=None):
        return self.console.wait_for(pattern, timeout, self._cursor if since is None else since,
                                     what, alive=self.alive_check)

    def wait_booted(self, since=0):
        """Waits for the first TLPB-READY (interactive mode) of the boot whose
        console output starts at since (a console mark: after a reboot)."""
        self.wait_console(r"TLPB-INIT", self.boot_timeout, since=since,
                          what="TLPB-INIT (guest boot)")
        idx, _ = self.wait_console(r"TLPB-READY", 120, since=since, what="TLPB-READY")
        self._cursor = idx + 1
        self._ready_seen = 1

    def start(self, cmd):
        """Sends one shell line to the guest's command loop; returns a mark for
        finish(). Between the two, the caller can act on console lines."""
        if "\n" in cmd:
            raise ValueError("one line only")
        mark = self._cursor
        self.ser.sendall((cmd + "\n").encode())
        return mark

    def finish(self, mark, timeout, what="guest command"):
        """Waits for the command started at mark to end: (rc, output lines)."""
        idx, m = self.wait_console(r"TLPB-DONE rc=(\d+)", timeout, since=mark,
                                   what="end of %s" % what)
        out = self.console.text(mark, idx)
        # The loop prints TLPB-READY before it reads the next line.
        ridx, _ = self.wait_console(r"TLPB-READY", 60, since=idx + 1, what="TLPB-READY")
        self._cursor = ridx + 1
        return int(m.group(1)), out

    def wait_run_once(self, timeout):
        """Non-interactive mode (tlpb.run=CMD): waits for the command to end
        and QEMU to exit; returns (rc, output lines of the command)."""
        # No liveness check: QEMU exits right after the line, and the console
        # ends (EOF) when it does, so the wait cannot outlive it.
        idx, m = self.console.wait_for(r"TLPB-EXIT rc=(\d+)", timeout, 0,
                                       "end of the tlpb.run command")
        begin, _ = self.console.wait_for(r"TLPB-BEGIN", 1, 0, "TLPB-BEGIN")
        out = self.console.text(begin + 1, idx)
        self.proc.wait(60)
        return int(m.group(1)), out

    def run(self, cmd, timeout=120):
        """Runs one shell line in the guest; returns (rc, output lines)."""
        return self.finish(self.start(cmd), timeout, "guest command %r" % cmd)

    def poweroff(self, timeout=60):
        """Asks the guest to power off; waits for QEMU to exit."""
        if not self.proc.alive():
            return self.proc.returncode()
        self.ser.sendall(b"poweroff\n")
        try:
            self.wait_console(r"TLPB-POWEROFF", timeout, what="TLPB-POWEROFF")
        except Failure:
            if self.proc.alive():
                raise
        return self.proc.wait(timeout)

    def kill(self):
        self.proc.stop()


# ---- accelerator -------------------------------------------------------------------------


def probe_kvm(qemu, kernel, initrd, timeout=15):
    """KVM only if it works: boots the kernel with -accel kvm and requires
    "Linux version" on the serial console within timeout seconds. Returns
    (usable, reason)."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible"
    with Session("tlpb-kvm-probe", verbose=False) as s:
        try:
            # Not quiet: "Linux version" is among the first lines the kernel prints.
            g = Guest(s, qemu, kernel, initrd, accel="kvm", interactive=False, quiet=False,
                      append="tlpb.run=true")
            g.console.wait_for(r"Linux version", timeout, what="'Linux version'",
                               alive=g.alive_check)
            return True, "a KVM guest booted"
        except Failure as e:
            return False, "a KVM guest did not boot: %s" % str(e).splitlines()[0]


def choose_accel(qemu, kernel, initrd, accel_file=None):
    """TLPB_ACCEL=tcg|kvm decides; else the answer cached in accel_file (by the
    guest.accel test of this ctest run); else a probe."""
    env = os.environ.get("TLPB_ACCEL", "").strip()
    if env:
        if env not in ("tcg", "kvm"):
            raise Failure("TLPB_ACCEL must be tcg or kvm, not %r" % env)
        return env, "TLPB_ACCEL=%s" % env
    if accel_file and os.path.exists(accel_file):
        with open(accel_file) as f:
            words = f.read().split(None, 1)
        if words and words[0] in ("tcg", "kvm"):
            return words[0], (words[1].strip() if len(words) > 1 else "") + " (cached)"
    ok, reason = probe_kvm(qemu, kernel, initrd)
    accel = "kvm" if ok else "tcg"
    if accel_file:
        with open(accel_file, "w") as f:
            f.write("%s %s\n" % (accel, reason))
    return accel, reason


# ---- dmacopy-test output -------------------------------------------------------------------

TEST_RE = re.compile(r"^TEST (\S+) (PASS|FAIL)(?: (.*))?$")
RESULT_RE = re.compile(r"^RESULT (\d+) passed, (\d+) failed")
BENCH_RE = re.compile(r"^BENCH (\S+) ([-0-9.eE+]+)$")


def parse_tests(lines):
    """Returns (cases [(name, passed, reason)], result (passed, failed) or None)."""
    cases, result = [], None
    for l in lines:
        m = TEST_RE.match(l)
        if m:
            cases.append((m.group(1), m.group(2) == "PASS", m.group(3) or ""))
            continue
        m = RESULT_RE.match(l)
        if m:
            result = (int(m.group(1)), int(m.group(2)))
    return cases, result


def parse_bench(lines):
    out = {}
    for l in lines:
        m = BENCH_RE.match(l)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def tlpbctl_status(tlpbctl, socket_path, device="dmacopy0"):
    r = subprocess.run([tlpbctl, "-s", socket_path, "status"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise Failure("tlpbctl status failed (%d): %s" % (r.returncode, r.stderr.strip()))
    st = json.loads(r.stdout)
    for d in st.get("devices", []):
        if d.get("name") == device:
            return d
    raise Failure("tlpbctl status: no device %s" % device)

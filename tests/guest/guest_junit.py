"""JUnit XML for the guest tests, for a regression farm.

One file per guest test run, $TLPB_JUNIT_DIR/guest.TEST.xml (nothing is
written when TLPB_JUNIT_DIR is unset). Each case of each dmacopy-test run is
its own <testcase>: classname guest.TEST.MODE (MODE msix or intx; the n-th run
of a mode in one test gets ".n"), name the case. A failing case carries the
reason dmacopy-test printed and the guest console around its result line; a
case without a result is <skipped>, except the one a suite was in when it
ended abnormally (no RESULT line, timeout), which fails. One more testcase,
guest.TEST / checks, fails when any other check of the guest test failed.
"""

import datetime
import os
import re
import socket
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "guest"))
import tlpbguest as tg  # noqa: E402

ENV_DIR = "TLPB_JUNIT_DIR"
# Console lines kept with a failing case: most before its result line (what
# led to it), a few after (kernel messages printed as it failed).
EXCERPT_BEFORE = 50
EXCERPT_AFTER = 10


# Characters XML 1.0 cannot hold, even escaped (a console has escape codes).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text):
    return _NOT_XML.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100
                        else "\ufffd", text)


def _excerpt(lines, at):
    """Console lines around index at (the last lines when at is None)."""
    if at is None:
        part = lines[-(EXCERPT_BEFORE + EXCERPT_AFTER):]
    else:
        part = lines[max(0, at - EXCERPT_BEFORE + 1):at + 1 + EXCERPT_AFTER]
    return "\n".join(part)


class Suite:
    """The cases of one dmacopy-test run, as JUnit records."""

    def __init__(self, classname, label, command, seconds):
        self.classname = classname
        self.label = label
        self.command = command
        self.seconds = seconds
        self.timestamp = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S")
        # (name, status "passed" | "failed" | "skipped", message, console excerpt)
        self.cases = []


class Report:
    """The JUnit records of one guest test (guest.TEST)."""

    def __init__(self, test):
        self.test = test
        self.suites = []
        self.runs_per_mode = {}
        self.check_failures = []
        self.skip_reason = None
        self.t0 = time.monotonic()

    def add_suite(self, mode, label, command, out, expected, rc, seconds, ended=None):
        """Records one dmacopy-test run: out its console lines, expected the
        cases it should report, rc its exit status (None when it did not
        finish), ended why it did not finish."""
        n = self.runs_per_mode.get(mode, 0) + 1
        self.runs_per_mode[mode] = n
        classname = "guest.%s.%s%s" % (self.test, mode, "" if n == 1 else ".%d" % n)
        suite = Suite(classname, label, command, seconds)
        seen = set()
        result = None
        for i, line in enumerate(out):
            m = tg.TEST_RE.match(line)
            if m:
                name, passed, reason = m.group(1), m.group(2) == "PASS", m.group(3) or ""
                seen.add(name)
                if passed:
                    suite.cases.append((name, "passed", "", ""))
                else:
                    suite.cases.append((name, "failed", reason or "FAIL (no reason printed)",
                                        _excerpt(out, i)))
                continue
            m = tg.RESULT_RE.match(line)
            if m:
                result = (int(m.group(1)), int(m.group(2)))
        missing = [c for c in expected if c not in seen]
        if ended is None and result is None:
            ended = "dmacopy-test printed no RESULT line (exit status %s)" % rc
        for k, name in enumerate(missing):
            if k == 0 and ended is not None:
                # The case that was running when the suite stopped.
                suite.cases.append((name, "failed", "no result: %s" % ended, _excerpt(out, None)))
            elif ended is not None:
                suite.cases.append((name, "skipped", "not run: the suite stopped before it "
                                    "(%s)" % ended, ""))
            else:
                suite.cases.append((name, "skipped", "not run: dmacopy-test printed no "
                                    "result for it (exit status %s)" % rc, ""))
        self.suites.append(suite)
        return suite

    def check_failed(self, msg):
        self.check_failures.append(msg)

    def skipped(self, reason):
        self.skip_reason = reason

    def tree(self):
        root = ET.Element("testsuites", name="guest.%s" % self.test)
        totals = {"tests": 0, "failures": 0, "skipped": 0}
        host = socket.gethostname()
        for s in self.suites:
            el = ET.SubElement(root, "testsuite", name=s.classname, timestamp=s.timestamp,
                               hostname=host, time="%.3f" % s.seconds)
            props = ET.SubElement(el, "properties")
            ET.SubElement(props, "property", name="label", value=_xml(s.label))
            ET.SubElement(props, "property", name="command", value=_xml(s.command))
            self._cases(el, s.classname, s.cases, totals)
        checks = ET.SubElement(root, "testsuite", name="guest.%s" % self.test, hostname=host,
                               time="%.3f" % (time.monotonic() - self.t0))
        if self.skip_reason is not None:
            case = ("checks", "skipped", self.skip_reason, "")
        elif self.check_failures:
            # The first line of the first failure is the message; an empty
            # one still makes a failed case.
            first = (self.check_failures[0].splitlines() or ["(no message)"])[0]
            case = ("checks", "failed", first, "\n\n".join(self.check_failures))
        else:
            case = ("checks", "passed", "", "")
        self._cases(checks, "guest.%s" % self.test, [case], totals)
        for k, v in totals.items():
            root.set(k, str(v))
        root.set("errors", "0")
        return ET.ElementTree(root)

    @staticmethod
    def _cases(el, classname, cases, totals):
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for name, status, message, text in cases:
            tc = ET.SubElement(el, "testcase", classname=classname, name=_xml(name))
            counts["tests"] += 1
            if status == "failed":
                counts["failures"] += 1
                f = ET.SubElement(tc, "failure", message=_xml(message), type="failure")
                f.text = _xml(text)
            elif status == "skipped":
                counts["skipped"] += 1
                ET.SubElement(tc, "skipped", message=_xml(message))
        for k, v in counts.items():
            el.set(k, str(v))
            totals[k] += v
        el.set("errors", "0")

    def write(self, directory=None):
        """Writes DIR/guest.TEST.xml, DIR from TLPB_JUNIT_DIR unless given;
        returns the path, or None when there is no directory."""
        directory = directory or os.environ.get(ENV_DIR)
        if not directory:
            return None
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "guest.%s.xml" % self.test)
        # Written whole, then renamed: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(prefix=".guest.%s." % self.test, suffix=".xml", dir=directory)
        try:
            # mkstemp makes it private; the farm's reader may be another user.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "wb") as f:
                self.tree().write(f, encoding="utf-8", xml_declaration=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return path

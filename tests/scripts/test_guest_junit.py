#!/usr/bin/env python3
"""The guest tests' JUnit writer (tests/guest/guest_junit.py), fed fake
dmacopy-test output; the XML is read back with ElementTree.

usage: test_guest_junit.py SOURCE_DIR
"""

import os
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True
SOURCE_DIR = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "guest"))
import guest_junit  # noqa: E402

FILLER = ["[   1.%06d] filler line %d" % (i, i) for i in range(100)]
# A PASS, a FAIL with a reason (with characters XML must escape or cannot
# hold), a case with no result, and a complete RESULT line.
MSIX_OUT = (["TEST scratch_4 PASS"] + FILLER +
            ["[   2.000000] dmacopy 0000:01:00.0: copy timed out",
             "TEST copy_1m FAIL dst[0x40] = 0x00 <expected 0xa5> & \x1b[0m",
             "[   2.100000] after the failure",
             "RESULT 1 passed, 1 failed"])
MSIX_EXPECTED = ["scratch_4", "copy_1m", "msix"]
# A suite that hung in copy_1 (no RESULT line, no exit status).
INTX_OUT = ["TEST scratch_4 PASS", "[   3.000000] dmacopy: waiting for the copy"]
INTX_EXPECTED = ["scratch_4", "copy_1", "copy_odd"]


def cases_of(root, classname):
    return {tc.get("name"): tc for tc in root.iter("testcase")
            if tc.get("classname") == classname}


class JUnitWriter(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="tlpb-junit-")
        self.addCleanup(self.tmp.cleanup)
        r = guest_junit.Report("inproc")
        r.add_suite("msix", "MSI-X suite", "dmacopy-test", MSIX_OUT, MSIX_EXPECTED, 1, 2.5)
        r.add_suite("intx", "INTx suite", "dmacopy-test --intx", INTX_OUT, INTX_EXPECTED, None,
                    420.0, ended="no end of guest command within 420 s")
        r.add_suite("msix", "again", "dmacopy-test --only scratch_4", ["TEST scratch_4 PASS",
                    "RESULT 1 passed, 0 failed"], ["scratch_4"], 0, 1.0)
        r.check_failed("MSI-X suite: failed cases: copy_1m")
        self.report = r
        os.environ[guest_junit.ENV_DIR] = self.tmp.name
        self.addCleanup(os.environ.pop, guest_junit.ENV_DIR, None)
        self.path = r.write()
        self.root = ET.parse(self.path).getroot()

    def test_file_name_and_nothing_else(self):
        self.assertEqual(self.path, os.path.join(self.tmp.name, "guest.inproc.xml"))
        self.assertEqual(os.listdir(self.tmp.name), ["guest.inproc.xml"])

    def test_counts(self):
        self.assertEqual(self.root.tag, "testsuites")
        # 3 MSI-X + 3 INTx + 1 second MSI-X + the test's own checks.
        self.assertEqual(self.root.get("tests"), "8")
        self.assertEqual(self.root.get("failures"), "3")
        self.assertEqual(self.root.get("skipped"), "2")
        self.assertEqual(len(list(self.root.iter("testcase"))), 8)
        suites = {s.get("name"): s for s in self.root.iter("testsuite")}
        self.assertEqual(sorted(suites), ["guest.inproc", "guest.inproc.intx",
                                          "guest.inproc.msix", "guest.inproc.msix.2"])
        msix = suites["guest.inproc.msix"]
        self.assertEqual((msix.get("tests"), msix.get("failures"), msix.get("skipped")),
                         ("3", "1", "1"))

    def test_pass(self):
        tc = cases_of(self.root, "guest.inproc.msix")["scratch_4"]
        self.assertEqual(list(tc), [])

    def test_failure_reason_and_console(self):
        tc = cases_of(self.root, "guest.inproc.msix")["copy_1m"]
        f = tc.find("failure")
        self.assertIsNotNone(f)
        self.assertEqual(f.get("message"), "dst[0x40] = 0x00 <expected 0xa5> & \\x1b[0m")
        text = f.text.splitlines()
        self.assertIn("[   2.000000] dmacopy 0000:01:00.0: copy timed out", text)
        self.assertIn("[   2.100000] after the failure", text)
        self.assertIn(FILLER[-1], text)
        # An excerpt, not the whole console.
        self.assertNotIn(FILLER[0], text)
        self.assertNotIn("TEST scratch_4 PASS", text)
        self.assertLessEqual(len(text), 60)

    def test_missing_case_skipped(self):
        tc = cases_of(self.root, "guest.inproc.msix")["msix"]
        self.assertIsNone(tc.find("failure"))
        sk = tc.find("skipped")
        self.assertIsNotNone(sk)
        self.assertIn("no result", sk.get("message"))
        self.assertIn("exit status 1", sk.get("message"))

    def test_hung_suite(self):
        cases = cases_of(self.root, "guest.inproc.intx")
        self.assertEqual(sorted(cases), ["copy_1", "copy_odd", "scratch_4"])
        self.assertEqual(list(cases["scratch_4"]), [])
        f = cases["copy_1"].find("failure")
        self.assertIsNotNone(f)
        self.assertIn("no end of guest command within 420 s", f.get("message"))
        self.assertIn("waiting for the copy", f.text)
        sk = cases["copy_odd"].find("skipped")
        self.assertIsNotNone(sk)
        self.assertIn("stopped before it", sk.get("message"))

    def test_second_run_of_a_mode(self):
        cases = cases_of(self.root, "guest.inproc.msix.2")
        self.assertEqual(list(cases), ["scratch_4"])

    def test_checks_case(self):
        tc = cases_of(self.root, "guest.inproc")["checks"]
        f = tc.find("failure")
        self.assertIsNotNone(f)
        self.assertEqual(f.get("message"), "MSI-X suite: failed cases: copy_1m")

    def test_nothing_written_without_directory(self):
        os.environ.pop(guest_junit.ENV_DIR)
        other = guest_junit.Report("nosim")
        self.assertIsNone(other.write())
        self.assertEqual(os.listdir(self.tmp.name), ["guest.inproc.xml"])

    def test_skipped_test(self):
        r = guest_junit.Report("rtl")
        r.skipped("no RTL simulator: configure with -DTLPB_BUILD_RTL=ON")
        root = ET.parse(r.write()).getroot()
        tcs = list(root.iter("testcase"))
        self.assertEqual(len(tcs), 1)
        self.assertEqual(tcs[0].find("skipped").get("message"),
                         "no RTL simulator: configure with -DTLPB_BUILD_RTL=ON")
        self.assertEqual((root.get("tests"), root.get("skipped")), ("1", "1"))


if __name__ == "__main__":
    unittest.main(verbosity=2)

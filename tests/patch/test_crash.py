"""`--snapshot-on-crash`: an exception about to end the program writes a snapshot before the stack
unwinds; the program ends as it would have; resuming it raises the same exception again, resuming
it with a fix runs the fixed statement and goes on (same output as the fixed program run plainly);
`stasis debug` opens pdb in the raising frame. Exceptions the program catches write nothing."""
from __future__ import annotations

import os
import subprocess
import unittest

from tests.patch.support import PLAIN, PatchTestCase

JOB = """
PRICES = {"apple": 3, "pear": 5, "plum": 2}

def price_of(item):
    base = PRICES[item]
    return base * 2

def line_total(item, qty):
    p = price_of(item)
    return p * qty

def run(orders):
    total = 0
    for i, (item, qty) in enumerate(orders):
        t = line_total(item, qty)
        total += t
        print(f"order {i}: {item} x{qty} = {t} (running {total})")
    return total

orders = [("apple", 2), ("pear", 1), ("kiwi", 4), ("plum", 3), ("apple", 1)]
print("grand total", run(orders))
"""

FIXED = JOB.replace("    base = PRICES[item]\n", "    base = PRICES.get(item, 1)\n")

CAUGHT = """
import contextlib

def lookup(d, k):
    return d[k]

def safe(d, k):
    try:
        return lookup(d, k)
    except KeyError:
        return None

def main():
    d = {"a": 1}
    print(safe(d, "b"))
    with contextlib.suppress(KeyError):
        lookup(d, "c")
    print(hasattr(Thing(), "missing"))
    for x in Numbers():
        print("n", x)
    print("done")

class Thing:
    def __getattr__(self, name):
        raise AttributeError(name)

class Numbers:
    def __init__(self):
        self.i = 0
    def __iter__(self):
        return self
    def __next__(self):
        self.i += 1
        if self.i > 2:
            raise StopIteration
        return self.i

main()
"""

THREAD_CRASH = """
import threading

def parse(values):
    return [int(v) for v in values]

def worker(batches):
    for b in batches:
        print("sum", sum(parse(b)), flush=True)

t = threading.Thread(target=worker, args=([["1", "2"], ["3", "x"], ["5"]],), name="parser")
t.start()
t.join()
print("main goes on")
"""


class CrashSnapshots(PatchTestCase):
    def crashed(self) -> None:
        self.write("job.py", JOB)
        r = self.stasis("run", "--snapshot-on-crash", "job.py")
        plain = subprocess.run([PLAIN, "job.py"], cwd=self.dir, env=self.env, capture_output=True)
        self.assertEqual(r.rc, plain.returncode, r)          # ends as it would have
        self.assertEqual(r.out, plain.stdout.decode())
        self.assertTrue(r.err.startswith(plain.stderr.decode()), r)   # its traceback, unchanged
        self.assertIn(f"crash snapshot written to {self.path('job.crash.snap')}", r.err)
        self.first = r

    def test_crash_fixed_by_an_edited_source_and_resumed(self):
        self.crashed()
        self.write("job.py", FIXED)
        r = self.stasis("resume", "job.crash.snap", "--patch", "job.py")
        self.assertEqual(r.rc, 0, r)
        self.write("fixed.py", FIXED)
        self.assertEqual(self.first.out + r.out, self.plain("fixed.py"))

    def test_crash_patched_offline_then_resumed(self):
        self.crashed()
        self.write("fixed.py", FIXED)
        r = self.stasis("patch", "job.crash.snap", "--source", "fixed.py=__main__", "-o", "fixed.snap")
        self.assertEqual(r.rc, 0, r)
        r = self.stasis("resume", "fixed.snap")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.first.out + r.out, self.plain("fixed.py"))

    def test_crash_resumed_without_a_fix_raises_the_same_exception_again(self):
        self.crashed()
        for _ in range(2):  # deterministically, every time
            r = self.stasis("resume", "job.crash.snap")
            self.assertEqual(r.rc, 1, r)
            self.assertEqual(r.out, "")
            self.assertTrue(r.err.rstrip().endswith("KeyError: 'kiwi'"), r)
            self.assertIn("base = PRICES[item]", r.err)

    def test_debug_opens_pdb_in_the_raising_frame(self):
        self.crashed()
        commands = "p item, qty\np sys.last_value\nup\np item, qty\nup\np i, total\nq\n"
        for _ in range(2):  # as often as you like: the snapshot is only read
            r = self.stasis("debug", "job.crash.snap", stdin="import sys\n" + commands)
            self.assertIn("-> base = PRICES[item]", r.out)
            self.assertIn("KeyError: 'kiwi'", r.out)
            self.assertIn("('kiwi', 4)", r.out)          # price_of has no qty: line_total's
            self.assertIn("KeyError('kiwi')", r.out)
            self.assertIn("(2, 22)", r.out)              # run's loop index and running total

    def test_caught_exceptions_write_nothing(self):
        self.write("job.py", CAUGHT)
        r = self.stasis("run", "--snapshot-on-crash", "job.py")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, self.plain("job.py"))
        self.assertEqual(r.err, "")
        self.assertFalse([f for f in self.listing() if "snap" in f or "partial" in f], self.listing())

    def test_uncaught_exception_in_a_thread(self):
        self.write("job.py", THREAD_CRASH)
        r = self.stasis("run", "--snapshot-on-crash=parser.snap", "job.py")
        self.assertEqual(r.rc, 0, r)            # the thread ends; the program goes on, as plainly
        self.assertIn("ValueError: invalid literal for int() with base 10: 'x'", r.err)
        self.assertIn(f"crash snapshot written to {self.path('parser.snap')}", r.err)
        self.assertEqual(r.out, "sum 3\nmain goes on\n")
        self.write("job.py", THREAD_CRASH.replace("return [int(v) for v in values]",
                                                  "return [int(v) for v in values if v.isdigit()]"))
        r2 = self.stasis("resume", "parser.snap", "--patch", "job.py")
        self.assertEqual(r2.rc, 0, r2)
        self.assertEqual(r2.out, "sum 3\nsum 5\nmain goes on\n")

    def test_resumed_program_with_the_option_snapshots_its_crash(self):
        """A program suspended before it crashes: `resume --snapshot-on-crash` watches it too (its
        code, restored from the snapshot, gets the handlers)."""
        self.write("job.py", JOB.replace('    total = 0\n', '    total = 0\n    import stasis\n    stasis.suspend()\n'))
        r = self.stasis("run", "job.py")
        self.assertEqual(r.rc, 75, r)
        r = self.stasis("resume", "job.snap", "--snapshot-on-crash=crashed.snap")
        self.assertEqual(r.rc, 1, r)
        self.assertIn(f"crash snapshot written to {self.path('crashed.snap')}", r.err)
        part1 = r.out
        self.write("job.py", FIXED.replace('    total = 0\n', '    total = 0\n    import stasis\n    stasis.suspend()\n'))
        r = self.stasis("resume", "crashed.snap", "--patch", "job.py")
        self.assertEqual(r.rc, 0, r)
        self.write("fixed.py", FIXED)
        self.assertEqual(part1 + r.out, self.plain("fixed.py"))

    def test_signed_crash_snapshot_patched_with_the_key(self):
        key = self.write("key", "0123456789abcdef0123456789abcdef")
        self.write("job.py", JOB)
        r = self.stasis("run", "--key-file", key, "--snapshot-on-crash", "job.py")
        self.assertIn("crash snapshot written", r.err)
        self.write("job.py", FIXED)
        r = self.stasis("patch", "job.crash.snap", "--key-file", key, "--source", "job.py")
        self.assertEqual(r.rc, 0, r)
        r = self.stasis("resume", "job.crash.snap", "--key-file", key)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("grand total", r.out)

    def test_without_the_option_no_snapshot(self):
        self.write("job.py", JOB)
        r = self.stasis("run", "job.py")
        self.assertEqual(r.rc, 1)
        self.assertNotIn("crash snapshot", r.err)
        self.assertFalse(os.path.exists(self.path("job.crash.snap")))


if __name__ == "__main__":
    unittest.main()

"""safepoint="quiescent": an update waits (bounded) until no thread stack and no suspended
generator uses the targets, and otherwise fails naming what was active — here a generator paused
inside the target, then a thread blocked inside it."""
from __future__ import annotations

import unittest

from stasis.updater.errors import NotQuiescentError
from tests.updater.support import TargetTestCase

TARGET = '''
import sys, threading, stasis

def numbers():
    n = 0
    while True:
        n += 1
        yield n          # the generator is paused here

def blocked(event):
    event.wait()         # a thread waits here
    return "done"

gen = numbers()
next(gen)
stasis.serve_updates()
print("ready", flush=True)
event = threading.Event()
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "close":
        gen.close()
    elif cmd == "block":
        t = threading.Thread(target=blocked, args=(event,), name="blocker")
        t.start()
    elif cmd == "release":
        event.set()
        t.join()
    elif cmd == "next":
        gen = numbers(); next(gen)
    print("ok " + cmd, flush=True)
'''

GEN_UPDATE = '''
from stasis.update import redefine
def numbers():
    n = 100
    while True:
        n += 1
        yield n
redefine("__main__.numbers", numbers, timeout=0.5)
'''

THREAD_UPDATE = '''
from stasis.update import redefine
def blocked(event):
    event.wait()
    return "new"
redefine("__main__.blocked", blocked, timeout=0.5)
'''


class QuiescenceTest(TargetTestCase):
    def test_suspended_generator_blocks_then_allows(self) -> None:
        proc, _ = self.start("target.py", TARGET)
        update = self.write("gen_update.py", GEN_UPDATE)
        status, _, err = self.ctl(proc.pid, "apply", update, expect=NotQuiescentError.code)
        self.assertIn("generator numbers suspended at", err)
        self.assertIn("target.py:8", err)   # the line of the yield
        _, listing, _ = self.ctl(proc.pid, "list")
        self.assertEqual(listing.strip(), "no updates")   # nothing was applied
        proc.stdin.write("close\n")
        proc.stdin.flush()
        self.assertEqual(self.readline(proc), "ok close")
        _, out, _ = self.ctl(proc.pid, "apply", update)
        self.assertIn("update", out)

    def test_thread_inside_target_blocks_then_allows(self) -> None:
        proc, _ = self.start("target.py", TARGET)
        update = self.write("thread_update.py", THREAD_UPDATE)
        proc.stdin.write("block\n")
        proc.stdin.flush()
        self.assertEqual(self.readline(proc), "ok block")
        _, _, err = self.ctl(proc.pid, "apply", update, expect=NotQuiescentError.code)
        self.assertIn("thread 'blocker' is running blocked at", err)
        proc.stdin.write("release\n")
        proc.stdin.flush()
        self.assertEqual(self.readline(proc), "ok release")
        self.ctl(proc.pid, "apply", update)


if __name__ == "__main__":
    unittest.main()

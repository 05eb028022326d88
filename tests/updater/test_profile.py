"""The built-in instruments through `stasis ctl`: profile (summary table, folded stacks, SVG flame
graph; only functions matching the pattern), trace, watch and lines; and the profile prologue
injected into code objects, which must not change results, line numbers or tracebacks."""
from __future__ import annotations

import os
import sys
import time
import traceback
import unittest
import xml.etree.ElementTree as ET

from stasis import _engine
from stasis.updater import channel
from stasis.updater.instrument import inject_profile
from tests.updater.support import TargetTestCase

APP = '''
import functools

def leaf(x):
    return x * 2

def middle(n):
    total = 0
    for i in range(n):
        total += leaf(i)
    return total

def top(rounds):
    acc = 0
    for r in range(rounds):
        acc += middle(50)
    return acc

def outside(n):
    return sum(range(n))

def countdown(n):
    while n:
        yield n
        n -= 1
'''

MAIN = '''
import sys, threading, time, stasis
import app

def work():
    while True:
        app.top(20)
        app.outside(100)
        list(app.countdown(3))
        time.sleep(0.001)

stasis.serve_updates()
threading.Thread(target=work, name="worker", daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
'''

SHAPES = '''
def shapes(x, *args, k=1, **kw):
    total = 0
    for i in range(x):
        try:
            if i == 3:
                raise ValueError(i)
            total += i
        except ValueError:
            total -= 1
        finally:
            total += 0
    with open(__file__) as f:
        f.read(1)
    return total + k + len(args) + len(kw)

def make(n):
    def inner(m):
        return [m + n for _ in range(2)]
    return inner

def boom(x):
    y = x + 1
    return 1 / (y - y)

def numbers(n):
    for i in range(n):
        yield i
    return "end"

async def doubled(x):
    import asyncio
    await asyncio.sleep(0)
    return 2 * x
'''


class InjectedPrologueTest(unittest.TestCase):
    def test_results_lines_and_tracebacks_unchanged(self) -> None:
        ns = {"__file__": __file__}
        exec(compile(SHAPES, "shapes_src.py", "exec"), ns)
        inner = ns["make"](5)
        expected = (ns["shapes"](10, 1, 2, k=5, z=1), inner(1))
        try:
            ns["boom"](1)
        except ZeroDivisionError:
            expected_tb = [(f.name, f.lineno) for f in traceback.extract_tb(sys.exc_info()[2])][1:]
        for fn in (ns["shapes"], inner, ns["boom"], ns["numbers"], ns["doubled"]):
            new = inject_profile(fn.__code__, fn.__qualname__)
            self.assertIsNotNone(new, fn.__qualname__)
            fn.__code__ = new
        _engine.updater_profile_start()
        try:
            self.assertEqual((ns["shapes"](10, 1, 2, k=5, z=1), inner(1)), expected)
            import asyncio
            self.assertEqual((list(ns["numbers"](3)), asyncio.run(ns["doubled"](4))), ([0, 1, 2], 8))
            ns["numbers"](5)                     # created, never started: not a call
            try:
                ns["boom"](1)
                self.fail("no ZeroDivisionError")
            except ZeroDivisionError:
                got_tb = [(f.name, f.lineno) for f in traceback.extract_tb(sys.exc_info()[2])][1:]
            self.assertEqual(got_tb, expected_tb)
            self.assertEqual(expected_tb, [("boom", 24)])
        finally:
            rows = _engine.updater_profile_stop()
        calls = {(keys[-1], is_async): n for _tid, keys, n, _total, _self, is_async in rows}
        self.assertEqual(calls, {("shapes", False): 1, ("make.<locals>.inner", False): 1, ("boom", False): 1,
                                 ("numbers", True): 1, ("doubled", True): 1})


class CtlToolsTest(TargetTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.write("app.py", APP)
        self.proc, _ = self.start("main.py", MAIN)

    def test_profile_outputs(self) -> None:
        folded, svg = os.path.join(self.tmp, "p.folded"), os.path.join(self.tmp, "p.svg")
        _, out, _ = self.ctl(self.proc.pid, "profile", "app.*", "--seconds", "0.5", "--folded", folded, "--svg", svg)
        table = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        self.assertEqual(set(table), {"app.top", "app.middle", "app.leaf", "app.outside", "app.countdown"})
        self.assertIn("app.countdown [generator/coroutine: wall time]", out)
        self.assertGreater(int(table["app.leaf"][1]), int(table["app.middle"][1]))   # calls
        self.assertEqual(table["app.top"][-1], "app.middle")                          # callees
        with open(folded) as f:
            stacks = [line.rsplit(" ", 1)[0] for line in f]
        self.assertIn(f"process {self.proc.pid};thread worker;app.top;app.middle;app.leaf", stacks)
        root = ET.parse(svg).getroot()
        titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
        self.assertTrue(any(t.startswith("app.leaf (") for t in titles), titles[:5])
        _, listing, _ = self.ctl(self.proc.pid, "list")
        self.assertRegex(listing, r"1 reverted .*profile app\.\*")

    def test_one_profile_at_a_time(self) -> None:
        with channel.connect(self.proc.pid, timeout=20) as s:
            channel.send(s, {"protocol": channel.PROTOCOL, "op": "profile", "pattern": "app.*", "seconds": 600})
            deadline = time.monotonic() + 20   # wait until the first profile is applied
            while "applied" not in self.ctl(self.proc.pid, "list")[1] and time.monotonic() < deadline:
                time.sleep(0.02)
            _, _, err = self.ctl(self.proc.pid, "profile", "app.*", "--seconds", "0.1", expect=102)
            self.assertIn("another profile is running", err)

    def test_pattern_limits_what_is_profiled(self) -> None:
        _, out, _ = self.ctl(self.proc.pid, "profile", "app.mid*", "--seconds", "0.3")
        self.assertEqual([line.split()[0] for line in out.splitlines()[1:]], ["app.middle"])

    def test_client_hangup_ends_and_reverts_the_tool(self) -> None:
        with channel.connect(self.proc.pid, timeout=20) as s:
            channel.send(s, {"protocol": channel.PROTOCOL, "op": "trace", "function": "app.leaf", "seconds": 600})
            self.assertIn("-> app.leaf(x=", channel.recv(s)["event"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _, listing, _ = self.ctl(self.proc.pid, "list")
            if "1 reverted" in listing:
                break
            time.sleep(0.05)
        self.assertRegex(listing, r"1 reverted .*trace app\.leaf")

    def test_trace_watch_lines(self) -> None:
        _, out, _ = self.ctl(self.proc.pid, "trace", "app.middle", "--seconds", "0.3")
        self.assertIn("[worker] -> app.middle(n=50)", out)
        self.assertIn("[worker] <- app.middle returned 2450", out)
        _, out, _ = self.ctl(self.proc.pid, "watch", "app.middle", "total", "--seconds", "0.3")
        self.assertIn("app.middle line 9: total = 0", out)
        self.assertIn("total = 2450", out)
        _, out, _ = self.ctl(self.proc.pid, "lines", "app.middle", "9-11", "--seconds", "0.3")
        rows = {int(l.split()[0]): l.split() for l in out.splitlines()[2:]}
        self.assertEqual(set(rows), {9, 10, 11})
        self.assertGreater(int(rows[10][1]), int(rows[11][1]))   # the loop body runs more often than the return
        self.assertIn("total += leaf(i)", out)
        _, _, err = self.ctl(self.proc.pid, "watch", "app.middle", "nope", "--seconds", "0.1", expect=102)
        self.assertIn("no local variable 'nope'", err)


if __name__ == "__main__":
    unittest.main()

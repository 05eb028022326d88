"""Updater benchmarks (`make bench`), each against a peer measured in the same run:

1. `profile` overhead: stasis's profile of every function of a module vs cProfile, on a realistic
   call-heavy workload and on a worst case (functions that do nothing but call); and the cost
   imposed on functions outside the pattern while the profile runs (should be none).
2. Redefine with 1e6 objects on the heap: time to apply one update (one heap scan, whatever the
   number of functions), next to one gc.get_referrers() call (the per-function way).

Prints medians and ratios; never fails on speed."""
from __future__ import annotations

import cProfile
import gc
import os
import statistics
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import other  # noqa: E402
import programs  # noqa: E402

from stasis import _engine  # noqa: E402
from stasis.updater import api  # noqa: E402
from stasis.updater.layers import layers as registry  # noqa: E402
from stasis.updater.tools import matching_functions  # noqa: E402

REPEAT = int(os.environ.get("STASIS_BENCH_REPEAT", "9"))


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


class StasisProfile:
    """The same wrapping `stasis ctl PID profile 'programs.*'` does, in-process."""

    def __enter__(self):
        functions, _ = matching_functions("programs.*")
        self.update = registry.new_update("bench profile")
        for name, fn in functions:
            registry.plan_profile(self.update, name, fn)
        self.update.actions.append("profile")
        _engine.updater_profile_start()
        registry.apply(self.update)
        return self

    def __exit__(self, *exc):
        registry.revert(self.update.id)
        self.rows = _engine.updater_profile_stop()


def compare(label: str, work) -> None:
    """Runs plain / cProfile / stasis profile back to back, REPEAT rounds (the machine may be
    shared: each round's three runs see the same load, so the per-round ratio is reported too)."""
    base, cprof, ours, ratios = [], [], [], []
    work()  # warm up (specialisation)
    for _ in range(REPEAT):
        b = timed(work)
        p = cProfile.Profile()
        p.enable()
        c = timed(work)
        p.disable()
        with StasisProfile() as s:
            o = timed(work)
        base.append(b)
        cprof.append(c)
        ours.append(o)
        ratios.append((o - b) / (c - b))
    b, c, o = statistics.median(base), statistics.median(cprof), statistics.median(ours)
    calls = sum(r[2] for r in s.rows)
    print(f"{label}: {calls} profiled calls per run")
    print(f"  median: plain {b * 1e3:7.1f} ms | cProfile {c * 1e3:7.1f} ms ({c / b:4.2f}x) | "
          f"stasis profile {o * 1e3:7.1f} ms ({o / b:4.2f}x)")
    print(f"  stasis slowdown / cProfile slowdown: {(o - b) / (c - b):.2f} from the medians, "
          f"{statistics.median(ratios):.2f} median of rounds (target <= 0.33)")


def outside_pattern() -> None:
    """other.workload with and without `programs.*` being profiled, alternating in each round."""
    off, on, ratios = [], [], []
    other.workload(3000)
    for i in range(2 * REPEAT + 1):
        first_off = i % 2 == 0
        if first_off:
            a = timed(other.workload, 3000)
        with StasisProfile():
            b = timed(other.workload, 3000)
        if not first_off:
            a = timed(other.workload, 3000)
        off.append(a)
        on.append(b)
        ratios.append(b / a)
    print(f"code outside the pattern (other.*) while programs.* is profiled: "
          f"{statistics.median(on) * 1e3:.1f} ms vs {statistics.median(off) * 1e3:.1f} ms unprofiled; "
          f"median of paired ratios {statistics.median(ratios):.3f}x")


def redefine_with_big_heap(n: int = 1_000_000, functions: int = 20) -> None:
    mod = types.ModuleType("bench_target")
    sys.modules["bench_target"] = mod
    src = "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(functions))
    exec(compile(src, "bench_target.py", "exec"), mod.__dict__)

    class Record:
        __slots__ = ("a", "b", "c")
    heap = [Record() for _ in range(n)]
    for r in heap:
        r.a = r
    gc.collect()
    print(f"heap: {len(gc.get_objects()):,} GC-tracked objects ({n:,} instances)")
    one, many = [], []
    new_src = "\n".join(f"def f{i}(x):\n    return x - {i}\n" for i in range(functions))
    new = {}
    exec(compile(new_src, "update.py", "exec"), new)
    for _ in range(5):
        t = time.perf_counter()
        uid = api.redefine("bench_target.f0", new["f0"])
        one.append(time.perf_counter() - t)
        api.revert(uid)
        t = time.perf_counter()
        with api._update() as u:
            for i in range(functions):
                api.redefine(f"bench_target.f{i}", new[f"f{i}"])
        many.append(time.perf_counter() - t)
        api.revert(u.id)
    t = time.perf_counter()
    gc.get_referrers(mod.f0.__code__)
    referrers = time.perf_counter() - t
    m1, mn = statistics.median(one), statistics.median(many)
    print(f"redefine 1 function: {m1 * 1e3:.1f} ms; {functions} functions in one update: {mn * 1e3:.1f} ms "
          f"({mn / m1:.2f}x: one heap scan per update)")
    print(f"peer: one gc.get_referrers(code) call: {referrers * 1e3:.1f} ms "
          f"(per function: {functions} x = {functions * referrers * 1e3:.0f} ms)")
    del heap


def main() -> None:
    print(f"CPython {sys.version.split()[0]}, medians of {REPEAT} runs")
    compare("realistic (tokenizer/parser/template, programs.*)", programs.realistic)
    compare("worst case (fib: every function only calls)", programs.trivial)
    outside_pattern()
    redefine_with_big_heap()


if __name__ == "__main__":
    main()

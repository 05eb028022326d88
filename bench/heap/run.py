"""Heap snapshot benchmark: stasis.dumps/loads against pickle (protocol 5) on the same data, in
the same run; sizes against pickle's bytes compressed by `zstd -3`. Prints medians and ratios,
and peak memory of dump and load as a multiple of the snapshot payload size.

Usage: build/bin/python bench/heap/run.py [--repeat N] [--scale F]
Required by issue 3: dumps <= 0.5x pickle, loads <= 0.67x, size <= 1.0x zstd(pickle).
"""
from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import pickle
import statistics
import subprocess
import time
from typing import Callable, Dict, List

import stasis


class Small:
    def __init__(self, i: int) -> None:
        self.id = i
        self.name = "obj%d" % i
        self.score = i * 0.25


def make(workload: str, scale: float):
    if workload == "dicts":
        return [{"id": i, "name": "item%d" % i, "val": i * 0.5} for i in range(int(1_000_000 * scale))]
    if workload == "floats":
        return [i * 1.1 for i in range(int(5_000_000 * scale))]
    if workload == "instances":
        return [Small(i) for i in range(int(300_000 * scale))]
    if workload == "strings":
        return ["s%07d-%x" % (i, i * 2654435761 % 2**32) for i in range(int(1_000_000 * scale))]
    raise ValueError(workload)


WORKLOADS = ["dicts", "floats", "instances", "strings"]


def timed_pair(a: Callable[[], object], b: Callable[[], object], repeat: int):
    """Medians of `a` and `b`, run alternately so that load from other processes on the machine
    affects both alike. The cyclic GC is off while timing (for both)."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            gc.collect()
            gc.disable()
            t = time.perf_counter()
            r = fn()
            out.append(time.perf_counter() - t)
            gc.enable()
            del r
    return statistics.median(ta), statistics.median(tb)


def zstd3(data: bytes) -> int:
    return len(subprocess.run(["zstd", "-3", "-c", "-q"], input=data, capture_output=True, check=True).stdout)


def peak_child(workload: str, scale: float, phase: str, q) -> None:
    """Peak RSS growth (bytes) of one dump or load, measured in a fresh process."""
    import resource
    data = make(workload, scale)
    blob = stasis.dumps(data) if phase == "load" else None
    with open("/proc/self/status") as f:
        base = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
    # Reset the high-water mark so VmHWM measures this phase only.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    if phase == "dump":
        blob = stasis.dumps(data)
    else:
        obj = stasis.loads(blob)  # noqa: F841
    with open("/proc/self/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
    q.put(((hwm - base) * 1024, len(blob)))
    del resource


def peak(workload: str, scale: float, phase: str):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=peak_child, args=(workload, scale, phase, q))
    p.start()
    r = q.get()
    p.join()
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    rows: List[Dict[str, object]] = []
    for w in WORKLOADS:
        data = make(w, args.scale)
        p = pickle.dumps(data, 5)
        s = stasis.dumps(data)
        assert stasis.loads(s) == data or w == "instances"
        row: Dict[str, object] = {"workload": w}
        row["pickle_dump"], row["stasis_dump"] = timed_pair(
            lambda: pickle.dumps(data, 5), lambda: stasis.dumps(data), args.repeat)
        row["pickle_load"], row["stasis_load"] = timed_pair(
            lambda: pickle.loads(p), lambda: stasis.loads(s), args.repeat)
        row["pickle_size"] = len(p)
        row["zstd_pickle_size"] = zstd3(p)
        row["stasis_size"] = len(s)
        if not args.no_memory:
            row["dump_peak"], _ = peak(w, args.scale, "dump")
            row["load_peak"], _ = peak(w, args.scale, "load")
        rows.append(row)
        del data, p, s
        gc.collect()

    print(f"{'workload':10} {'pickle dump':>11} {'stasis dump':>11} {'ratio':>6} {'pickle load':>11} "
          f"{'stasis load':>11} {'ratio':>6} {'zstd(pkl) B':>12} {'stasis B':>10} {'ratio':>6} "
          f"{'dump peak':>9} {'load peak':>9}")
    ok = True
    for r in rows:
        dr = r["stasis_dump"] / r["pickle_dump"]
        lr = r["stasis_load"] / r["pickle_load"]
        sr = r["stasis_size"] / r["zstd_pickle_size"]
        ok &= dr <= 0.5 and lr <= 0.67 and sr <= 1.0
        dp = f"{r['dump_peak'] / r['stasis_size']:.1f}x" if "dump_peak" in r else "-"
        lp = f"{r['load_peak'] / r['stasis_size']:.1f}x" if "load_peak" in r else "-"
        print(f"{r['workload']:10} {r['pickle_dump']:10.3f}s {r['stasis_dump']:10.3f}s {dr:6.2f} "
              f"{r['pickle_load']:10.3f}s {r['stasis_load']:10.3f}s {lr:6.2f} {r['zstd_pickle_size']:12d} "
              f"{r['stasis_size']:10d} {sr:6.2f} {dp:>9} {lp:>9}")
    print("targets: dump <= 0.50, load <= 0.67, size <= 1.00 (ratios: stasis / pickle; sizes against "
          "`zstd -3` of pickle's bytes)")
    print("peaks: growth of the RSS high-water mark during one dumps/loads in a fresh process, as a "
          "multiple of the snapshot size (load: mostly the objects built; dump: zstd's buffers and "
          "the output)")
    print("all targets met" if ok else "SOME TARGETS MISSED")


if __name__ == "__main__":
    main()

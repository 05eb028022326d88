"""A stand-in for the `pyperf` module, enough to run pyperformance's benchmark scripts
(bm_*/run_benchmark.py) under Stasis's benches: pyperf is not packaged for Debian, and the benches
want the benchmark's workload, not pyperf's statistics.

`Runner.bench_func(name, func, *args)`, `bench_time_func(name, func, *args)` (func(loops, *args)
returns seconds) and `bench_async_func` hand the workload to the harness: if BENCH_CAPTURE is
set (a list), they append (kind, func, args) to it and return; otherwise they run it
PYPERF_SHIM_LOOPS times (default 1)."""
from __future__ import annotations

import argparse
import os
import sys
import time

BENCH_CAPTURE: list | None = None
perf_counter = time.perf_counter


class Runner:
    def __init__(self, *args, **kwargs) -> None:
        self.metadata: dict = {}
        self.argparser = argparse.ArgumentParser()
        self.args = None

    def parse_args(self, args=None):
        self.args, _ = self.argparser.parse_known_args(sys.argv[1:] if args is None else args)
        return self.args

    def _run(self, kind: str, func, args: tuple):
        if self.args is None:
            self.parse_args()
        if BENCH_CAPTURE is not None:
            BENCH_CAPTURE.append((kind, func, args))
            return None
        loops = int(os.environ.get("PYPERF_SHIM_LOOPS", "1"))
        return run_workload(kind, func, args, loops)

    def bench_func(self, name, func, *args, inner_loops=None, metadata=None):
        return self._run("func", func, args)

    def bench_time_func(self, name, func, *args, inner_loops=None, metadata=None):
        return self._run("time_func", func, args)

    def bench_async_func(self, name, func, *args, inner_loops=None, metadata=None):
        return self._run("async_func", func, args)

    def bench_command(self, name, command):
        raise NotImplementedError("bench_command is not supported by the pyperf stand-in")


def run_workload(kind: str, func, args: tuple, loops: int = 1):
    if kind == "time_func":
        return func(loops, *args)
    if kind == "async_func":
        import asyncio
        for _ in range(loops):
            asyncio.run(func(*args))
        return None
    for _ in range(loops):
        func(*args)
    return None

"""What --snapshot-on-crash costs before a crash (README "Crash snapshots"), against the same
rewritten code without its crash handlers, measured in the same process and run:

1. code that raises nothing: bytecode instructions executed (counted with an opcode tracer:
   they must be the same instructions) and time, median of interleaved rounds;
2. exceptions caught in the frame that raised them (never reach the handlers);
3. exceptions that leave frames and are caught further out (one hook call per frame left).
(What one crash itself costs, the capture and write of its snapshot, is not measured here.)

Ratios = with handlers / without. The machine is shared: each ratio is the median of rounds that
alternate the two variants; an A/A ratio (without / without) shows the noise."""
from __future__ import annotations

import statistics
import sys
import time

from stasis.compiler_hooks import rewriter
from stasis.program import crash

PROGRAM = '''
def leaf(d, k):
    return d[k]

def middle(d, k):
    return leaf(d, k) + 1

def no_exceptions(n):
    d = {i: i for i in range(64)}
    total = 0
    for i in range(n):
        total += middle(d, i & 63)
    return total

def caught_here(n):
    d = {}
    misses = 0
    for i in range(n):
        try:
            d[i]
        except KeyError:
            misses += 1
    return misses

def caught_two_frames_out(n):
    d = {}
    misses = 0
    for i in range(n):
        try:
            middle(d, i)
        except KeyError:
            misses += 1
    return misses
'''


def compiled(with_handlers: bool) -> dict:
    code, _ = rewriter.rewrite_module(PROGRAM, "<bench>")
    if with_handlers:
        code = crash.instrument(code)
    ns: dict = {"__name__": "bench"}
    exec(code, ns)
    return ns


def count_instructions(fn, *args) -> int:
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return tracer
    sys.settrace(tracer)
    try:
        fn(*args)
    finally:
        sys.settrace(None)
    return count


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def ratio(a: dict, b: dict, name: str, n: int, rounds: int = 9) -> float:
    ra = []
    for _ in range(rounds):
        x = timed(a[name], n)
        y = timed(b[name], n)
        ra.append(x / y)
    return statistics.median(ra)


def main() -> None:
    plain, other, handled = compiled(False), compiled(False), compiled(True)

    class Session:  # the hook runs (as under --snapshot-on-crash) but there is nothing to capture
        sources: dict = {}
        base_code = None

        def thread_base(self, ident):
            return (None, False)
    crash.activate(Session())
    try:
        print("%-34s %12s %12s %8s %8s" % ("case", "instr plain", "instr hooks", "time", "A/A"))
        for name, n in (("no_exceptions", 200_000), ("caught_here", 200_000), ("caught_two_frames_out", 50_000)):
            ip = count_instructions(plain[name], n // 50)
            ih = count_instructions(handled[name], n // 50)
            print("%-34s %12d %12d %8.3f %8.3f" % (name, ip, ih, ratio(handled, plain, name, n),
                                                   ratio(other, plain, name, n)))
    finally:
        crash.deactivate()
    print("instr: bytecode instructions executed (opcode tracer, n/50); time: median ratio of 9 alternating "
          "rounds, handlers / plain; A/A: plain / plain")


if __name__ == "__main__":
    main()

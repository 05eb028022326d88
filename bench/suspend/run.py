"""Suspend and resume latency of whole programs, and the steady-state cost of `stasis run`.

Suspend latency: from the program's request (stasis.suspend()) to the durable snapshot (the
process has exited 75 after fsync + rename). Resume latency: from starting `stasis resume` to the
first instruction of the resumed program. Heaps of ~1 MB, ~100 MB (and ~1 GB with
STASIS_BENCH_GB=1) of small dicts; stack depths 10, 100, 900. Median of 3 (1 for 1 GB).
Threads: the 1 MB heap with 0, 4 and 16 other threads, half of them running Python code and half
blocked in queue.get; median of 5.
Steady state: a CPU-bound program plainly and under `stasis run` (no request), median of 5.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
STASIS = os.path.join(BUILD, "bin", "stasis")
PLAIN = "/usr/bin/python3.11"

PROGRAM = r"""
import sys, time, stasis, threading, queue
n_objects, depth, mark, n_threads = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
heap = [{"id": i, "name": "item%d" % i, "val": i * 0.5} for i in range(n_objects)]
jobs = queue.Queue()
stop = []

def spin():  # running Python code: parks at its next safe point
    x = 0
    while not stop:
        x += 1

def wait():  # blocked in C (Condition.wait in queue.get): captured at that call
    jobs.get()

workers = [threading.Thread(target=spin if i % 2 else wait) for i in range(n_threads)]
for w in workers:
    w.start()

def down(d):
    if d > 1:
        return down(d - 1)
    with open(mark, "w") as f:
        f.write(repr(time.time()))
    stasis.suspend()
    with open(mark, "w") as f:
        f.write(repr(time.time()))
    return len(heap)

down(depth)
stop.append(1)
for w in workers:
    jobs.put(None)
for w in workers:
    w.join()
"""

STEADY = r"""
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
total = 0
for i in range(27):
    total += fib(i)
class P:
    def __init__(self, x):
        self.x = x
ps = [P(i) for i in range(200000)]
print(total, sum(p.x for p in ps))
"""


def one(tmp, n_objects, depth, threads=0):
    prog = os.path.join(tmp, "prog.py")
    with open(prog, "w") as f:
        f.write(PROGRAM)
    mark, snap = os.path.join(tmp, "mark"), os.path.join(tmp, "prog.snap")
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    r = subprocess.run([STASIS, "run", "--snapshot", snap, prog, str(n_objects), str(depth), mark, str(threads)],
                       cwd=tmp, env=env, capture_output=True, text=True)
    done = time.time()
    if r.returncode != 75:
        raise SystemExit(f"suspension failed ({r.returncode}): {r.stderr}")
    with open(mark) as f:
        suspend = done - float(f.read())
    size = os.path.getsize(snap)
    start = time.time()
    r = subprocess.run([STASIS, "resume", snap], cwd=tmp, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"resume failed ({r.returncode}): {r.stderr}")
    with open(mark) as f:
        resume = float(f.read()) - start
    return suspend, resume, size


def main():
    heaps = [("1 MB", 5_000), ("100 MB", 500_000)]
    if os.environ.get("STASIS_BENCH_GB"):
        heaps.append(("1 GB", 5_000_000))
    start = time.time()
    subprocess.run([PLAIN, "-c", "pass"])
    python_start = time.time() - start
    print(f"process start of plain python3: {python_start * 1000:.0f} ms (included in resume latency)")
    print(f"{'heap':>7} {'depth':>6} {'snapshot':>10} {'suspend ms':>11} {'resume ms':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, n in heaps:
            for depth in (10, 100, 900):
                reps = 1 if n >= 5_000_000 else 3
                runs = [one(tmp, n, depth) for _ in range(reps)]
                s = statistics.median(r[0] for r in runs) * 1000
                q = statistics.median(r[1] for r in runs) * 1000
                print(f"{label:>7} {depth:>6} {runs[0][2] / 1e6:>8.1f}MB {s:>11.0f} {q:>10.0f}", flush=True)
        print(f"{'heap':>7} {'depth':>6} {'threads':>8} {'suspend ms':>11} {'resume ms':>10}  "
              "(half running Python, half blocked in queue.get)")
        for threads in (0, 4, 16):
            runs = [one(tmp, 5_000, 10, threads) for _ in range(5)]
            s = statistics.median(r[0] for r in runs) * 1000
            q = statistics.median(r[1] for r in runs) * 1000
            print(f"{'1 MB':>7} {10:>6} {threads:>8} {s:>11.0f} {q:>10.0f}", flush=True)
        prog = os.path.join(tmp, "steady.py")
        with open(prog, "w") as f:
            f.write(STEADY)
        empty = os.path.join(tmp, "empty.py")
        with open(empty, "w") as f:
            f.write("pass\n")
        times = {}
        for _ in range(5):  # interleaved: the machine's noise hits both sides alike
            for name, cmd in (("plain", [PLAIN, prog]), ("stasis", [STASIS, "run", prog]),
                              ("plain-empty", [PLAIN, empty]), ("stasis-empty", [STASIS, "run", empty])):
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=tmp, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "1"})
                times.setdefault(name, []).append(time.perf_counter() - t0)
        m = {k: statistics.median(v) for k, v in times.items()}
        startup = m["stasis-empty"] - m["plain-empty"]
        steady = (m["stasis"] - m["stasis-empty"]) / (m["plain"] - m["plain-empty"])
        print(f"start-up of `stasis run` over plain python3: {startup * 1000:.0f} ms")
        print(f"steady state (no request), start-up excluded: plain {m['plain'] - m['plain-empty']:.3f} s, "
              f"stasis run {m['stasis'] - m['stasis-empty']:.3f} s, ratio {steady:.3f}")


if __name__ == "__main__":
    main()

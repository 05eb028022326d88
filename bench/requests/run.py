"""Suspension requests (issue 17): how fast a request ends in a snapshot, how fast the program runs
while a request waits, how fast a chain step starts, what the first import of a rewritten library
module costs, and asyncio programs with many tasks. Every figure is a ratio or a difference
against a peer measured in the same run (plain python3, the same program without a request).

Programs: pyperformance's pure-Python benchmarks when $STASIS_PYPERFORMANCE names its
`pyperformance/data-files/benchmarks` directory (fetch github:python/pyperformance; they run with
bench/pyperf_shim standing in for pyperf), and the suspend corpus (tests/suspend/programs).

1. Request-to-capture latency: each program runs under `stasis run --quota T` (T random, so the
   request lands at a random moment); the snapshot records when the request was made and when
   every stack was captured (root `suspension`). Targets: median <= 20 ms, p99 <= 1 s, no
   request lost.
2. While-waiting speed: the program's workload runs from inside a C callback (sorted(key=)),
   where no safe point can ever come, once without and once with a pending request: ratio of the
   process's CPU time (wall clock beside). Target >= 0.67. A program that stands still while the
   request waits (threads parked, waiting for a thread that cannot reach a safe point) is a
   failure row: the request gives up after WAITING_TIMEOUT seconds.
3. Start-up of a chain step: `stasis run` and `stasis resume` of a 2-line program against plain
   python3 (target: resume within 100 ms of python3's start-up on a quiet machine).
4. First import of library modules, rewritten (cold cache) and from the cache (warm), against
   plain python3.
5. asyncio programs with 10^4 and 10^5 sleeping tasks: snapshot objects and size, suspend and
   resume time against the plain run.

    run.py [--only latency,waiting,startup,imports,asyncio] [--rounds N] [--match NAME]...
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHIM = os.path.join(REPO, "bench", "pyperf_shim")
CORPUS = os.path.join(REPO, "tests", "suspend", "programs")
BUILD = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
STASIS = os.path.join(BUILD, "bin", "stasis")
PLAIN = "/usr/bin/python3.11"

# pyperformance benchmarks that need nothing but the standard library and are mostly Python.
PYPERFORMANCE = ["chaos", "coroutines", "deltablue", "fannkuch", "float", "go", "hexiom", "nbody", "nqueens",
                 "pyflate", "raytrace", "richards", "spectral_norm", "unpack_sequence", "generators", "deepcopy",
                 "meteor_contest", "mdp", "scimark", "async_tree", "comprehensions", "richards_super"]


# Arguments some benchmarks need (pyperformance's manifest passes them).
BM_ARGS = {"bm_async_tree": ["none"]}


def pyperformance_dir() -> str | None:
    d = os.environ.get("STASIS_PYPERFORMANCE")
    return d if d and os.path.isdir(d) else None


MATCH: list[str] = []  # --match: only programs whose name contains one of these


def programs() -> list[tuple[str, str]]:
    """[(name, script)]: pyperformance's benchmarks (if present) and the corpus."""
    if MATCH:
        return [(n, p) for n, p in _programs() if any(m in n for m in MATCH)]
    return _programs()


def _programs() -> list[tuple[str, str]]:
    out = []
    d = pyperformance_dir()
    if d:
        for name in PYPERFORMANCE:
            path = os.path.join(d, f"bm_{name}", "run_benchmark.py")
            if os.path.exists(path):
                out.append((f"bm_{name}", path))
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.py"))):
        if not path.endswith("helper_mod.py"):
            out.append((os.path.basename(path)[:-3], path))
    return out


def env(**extra: str) -> dict:
    # The pyperf stand-in is found through PYTHONPATH and rewritten (--rewrite pyperf): its frames
    # call the benchmark's workload.
    e = dict(os.environ, PYTHONPATH=SHIM, **extra)
    return e


# --- 1. latency ---------------------------------------------------------------------------------

READ_SUSPENSION = r"""
import sys, json
from stasis import _engine, _ensure_builtin_handlers
from stasis.compiler_hooks import hook
import importlib
R = importlib.import_module("stasis.program.resume")
data = R.read_once(sys.argv[1])
header, meta = R._read_meta(sys.argv[1], data, None)
sys.path[:] = meta.sys_path + sys.path
hook.install(hook.Selection([r.rstrip("/") for r in meta.roots], meta.rewrite, meta.no_rewrite))
R._create_modules(meta.modules)
if "asyncio" in meta.handler_modules:
    from stasis.program import process_state
    process_state.pure_python_asyncio()
for name in meta.handler_modules:
    importlib.import_module(name)
_ensure_builtin_handlers()
root = _engine.loads(data, key=None, kind="program")
s = root["suspension"]
print(json.dumps([s["requested_at"], s["captured_at"]]))
"""


def latency(rounds: int) -> None:
    rng = random.Random(17)
    print(f"{'program':28} {'runs':>4} {'lost':>4} {'median_ms':>10} {'p99_ms':>8} {'max_ms':>8}")
    every, lost_total = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in programs():
            lat, lost = [], 0
            is_bm = name.startswith("bm_")
            for _ in range(rounds):
                snap = os.path.join(tmp, "l.snap")
                if os.path.exists(snap):
                    os.unlink(snap)
                quota = rng.uniform(0.05, 0.4) if is_bm else rng.uniform(0.01, 0.06)
                r = subprocess.run([STASIS, "run", "--quota", f"{quota:.3f}", "--rewrite", "pyperf", "--snapshot", snap,
                                    path, *BM_ARGS.get(name, [])],
                                   cwd=os.path.dirname(path), capture_output=True, text=True, timeout=600,
                                   env=env(PYPERF_SHIM_LOOPS="1000" if is_bm else "1", PYTHONHASHSEED="3"))
                if r.returncode != 75:
                    if r.returncode != 0:  # 0: the program ended before its quota
                        lost += 1
                    continue
                q = subprocess.run([sys.executable, "-c", READ_SUSPENSION, snap], capture_output=True, text=True,
                                   cwd=os.path.dirname(path), env=env(), timeout=300)
                if q.returncode != 0:
                    print(f"  {name}: cannot read the snapshot: {q.stderr.strip().splitlines()[-1:]}")
                    continue
                requested, captured = json.loads(q.stdout)
                lat.append((captured - requested) * 1000)
            every += lat
            lost_total += lost
            if lat:
                lat.sort()
                print(f"{name:28} {len(lat):4d} {lost:4d} {statistics.median(lat):10.1f} "
                      f"{lat[min(len(lat) - 1, int(len(lat) * 0.99))]:8.1f} {lat[-1]:8.1f}", flush=True)
            else:
                print(f"{name:28} {0:4d} {lost:4d} {'(no snapshot to read)':>28}", flush=True)
    if every:
        every.sort()
        p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
        print(f"{'all':28} {len(every):4d} {lost_total:4d} {statistics.median(every):10.1f} {p99:8.1f} "
              f"{every[-1]:8.1f}   (targets: median <= 20 ms, p99 <= 1000 ms, lost 0)")


# --- 2. while waiting ---------------------------------------------------------------------------

# The workload runs from a C callback (sorted()'s key function): no safe point comes before it
# returns, so the request waits for the whole measure. Timed by the process's CPU time (the
# coordinator's work included; other processes on a loaded machine excluded) and by the wall clock,
# median of REPS runs each way, a run lasting at least ~0.2 s.
WAITING = r"""
import math, os, sys, time, statistics
sys.path.insert(0, SHIM)
import pyperf
from stasis.compiler_hooks import hook
from stasis.program import session
path = PATH
pyperf.BENCH_CAPTURE = []
sys.argv = [path, *ARGS]
sys.path.insert(0, os.path.dirname(path))
with open(path, "rb") as f:
    code = hook.compile_cached(path, f.read())      # rewritten, as stasis run would
ns = {"__name__": "__main__", "__file__": path}
exec(code, ns)
kind, func, args = pyperf.BENCH_CAPTURE[0]

def workload(loops):
    pyperf.run_workload(kind, func, args, loops)
"""

CORPUS_WAITING = r"""
import io, contextlib, math, os, sys, time, statistics
from stasis.compiler_hooks import hook
from stasis.program import session
path = PATH
sys.path.insert(0, os.path.dirname(path))
with open(path, "rb") as f:
    code = hook.compile_cached(path, f.read())

def workload(loops):
    for _ in range(loops):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, {"__name__": "__main__", "__file__": path})
"""

WAITING_MAIN = r"""
def once(loops):
    c0, w0 = time.process_time(), time.perf_counter()
    workload(loops)
    return time.process_time() - c0, time.perf_counter() - w0

def timed(loops):
    runs = [once(loops) for _ in range(REPS)]
    return statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs)

def main():  # run from sorted()'s key function: no safe point comes before it returns
    loops = 1
    while once(loops)[0] < 0.2:  # the first runs also warm up (imports, caches)
        loops *= 2
    cpu, wall = timed(loops)
    session.current().request("bench")
    time.sleep(0.02)
    cpu_w, wall_w = timed(loops)
    print(cpu, cpu_w, wall, wall_w, flush=True)
    return 0
sorted([0], key=lambda _: main())
"""


# --safe-point-timeout of the while-waiting runs: well above what the waiting measure lasts (5 runs
# of ~0.2-0.4 s CPU each, slower on a loaded machine), so that a request given up means the program
# stood still while it waited (its threads parked, waiting for a thread that could not get to a
# safe point): a failure row, not a wait as long as the timeout.
WAITING_TIMEOUT = 30


def waiting(rounds: int) -> None:
    print(f"{'program':28} {'plain_cpu':>9} {'wait_cpu':>9} {'speed':>7} {'wall_speed':>10}   "
          "(speed = plain / waiting, process CPU time; wall clock beside)")
    speeds, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in programs():
            is_bm = name.startswith("bm_")
            if not is_bm and name in ("threads_subclass_daemon", "process_state", "module_imports"):
                continue  # they run once per process (daemon threads, chdir, import side effects)
            template = (WAITING if is_bm else CORPUS_WAITING) + WAITING_MAIN
            harness = os.path.join(tmp, "harness.py")
            with open(harness, "w") as f:
                f.write(template.replace("SHIM", repr(SHIM)).replace("PATH", repr(path))
                        .replace("REPS", "5").replace("ARGS", repr(BM_ARGS.get(name, []))))
            ratios, walls, bases, waits = [], [], [], []
            for _ in range(rounds):
                try:
                    r = subprocess.run([STASIS, "run", "--safe-point-timeout", str(WAITING_TIMEOUT), "--rewrite",
                                        "pyperf", "--snapshot", os.path.join(tmp, "w.snap"), harness],
                                       cwd=os.path.dirname(path), capture_output=True, text=True, timeout=600,
                                       env=env(PYTHONHASHSEED="3"))
                except subprocess.TimeoutExpired:
                    print(f"{name:28} failed: still running after 600 s")
                    failed.append(name)
                    break
                try:
                    cpu, cpu_w, wall, wall_w = map(float, r.stdout.split()[-4:])
                except ValueError:
                    print(f"{name:28} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
                    failed.append(name)
                    break
                if "could not suspend" in r.stderr:
                    print(f"{name:28} failed: stood still while the request waited (it gave up after "
                          f"{WAITING_TIMEOUT} s)")
                    failed.append(name)
                    break
                bases.append(cpu)
                waits.append(cpu_w)
                ratios.append(cpu / cpu_w)
                walls.append(wall / wall_w)
            if ratios:
                sp = statistics.median(ratios)
                speeds.append(sp)
                flag = "  < 0.67" if sp < 0.67 else ""
                print(f"{name:28} {statistics.median(bases):9.3f} {statistics.median(waits):9.3f} {sp:7.3f} "
                      f"{statistics.median(walls):10.3f}{flag}", flush=True)
    if speeds:
        geo = statistics.geometric_mean(speeds)
        print(f"{'geometric mean':28} {'':9} {'':9} {geo:7.3f}   (target: every program >= 0.67; "
              f"min here {min(speeds):.3f})")
    if failed:
        print(f"failed: {len(failed)} ({', '.join(failed)})")


# --- 3. start-up --------------------------------------------------------------------------------

def cpu_and_wall(cmd: list[str], cwd: str, e: dict | None = None, n: int = 9) -> tuple[float, float]:
    cpus, walls = [], []
    for _ in range(n):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return statistics.median(cpus) * 1000, statistics.median(walls) * 1000


def startup() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prog = os.path.join(tmp, "small.py")
        with open(prog, "w") as f:
            f.write("x = 1\nprint(x)\n")
        snap = os.path.join(tmp, "small.snap")
        subprocess.run([STASIS, "run", "--suspend-after", "1", "--snapshot", snap, prog], cwd=tmp,
                       capture_output=True)
        rows = [("python3 small.py", [PLAIN, prog]), ("stasis run small.py", [STASIS, "run", prog]),
                ("stasis resume small.snap", [STASIS, "resume", snap])]
        # A rewrite cache of its own, warmed first: the per-user one is shared with every other
        # Stasis build of the user, which rewrites the same library modules into the same files.
        e = dict(os.environ, STASIS_CACHE_DIR=os.path.join(tmp, "cache"))
        for _label, cmd in rows[1:]:
            cpu_and_wall(cmd, tmp, e, n=1)
        results = {}
        for label, cmd in rows:
            results[label] = cpu_and_wall(cmd, tmp, e)
        pc, pw = results["python3 small.py"]
        print(f"{'command':28} {'cpu_ms':>8} {'wall_ms':>8} {'wall over python3':>18}")
        for label, (c, w) in results.items():
            print(f"{label:28} {c:8.1f} {w:8.1f} {w - pw:18.1f}")
        print("(target: resume within 100 ms of python3 on a quiet machine; medians of 9)")


# --- 4. first imports ---------------------------------------------------------------------------

IMPORTS = ["unittest", "asyncio", "http.client", "email.message", "xml.etree.ElementTree", "decimal", "csv",
           "sqlite3", "urllib.request", "pydoc"]


def imports() -> None:
    print(f"{'module':24} {'plain_ms':>9} {'cold_ms':>9} {'warm_ms':>9}   (CPU ms of the import alone; cold: "
          "rewritten and cached, warm: from the cache)")
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "empty.py")
        with open(base, "w") as f:
            f.write("pass\n")
        cache = os.path.join(tmp, "cache")
        e = dict(os.environ, STASIS_CACHE_DIR=cache, PYTHONHASHSEED="1")
        for mod in IMPORTS:
            prog = os.path.join(tmp, "imp.py")
            with open(prog, "w") as f:
                f.write(f"import {mod}\n")
            plain = cpu_and_wall([PLAIN, prog], tmp, n=5)[0] - cpu_and_wall([PLAIN, base], tmp, n=5)[0]
            shutil.rmtree(cache, ignore_errors=True)
            cpu_and_wall([STASIS, "run", base], tmp, e, n=1)  # Stasis's own imports cached first
            warm_base = cpu_and_wall([STASIS, "run", base], tmp, e, n=5)[0]
            colds = []
            for _ in range(3):
                shutil.rmtree(cache, ignore_errors=True)
                cpu_and_wall([STASIS, "run", base], tmp, e, n=1)
                colds.append(cpu_and_wall([STASIS, "run", prog], tmp, e, n=1)[0])
            warm = cpu_and_wall([STASIS, "run", prog], tmp, e, n=5)[0]
            print(f"{mod:24} {plain:9.1f} {statistics.median(colds) - warm_base:9.1f} {warm - warm_base:9.1f}",
                  flush=True)


# --- 5. asyncio with many tasks -----------------------------------------------------------------

SLEEPERS = textwrap.dedent("""
    import asyncio, sys, time
    async def sleeper(i):
        await asyncio.sleep(3600)
    async def main(n):
        tasks = [asyncio.create_task(sleeper(i)) for i in range(n)]
        await asyncio.sleep(0)
        with open(sys.argv[2], "w") as f:
            f.write(repr(time.time()))
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with open(sys.argv[2], "w") as f:
            f.write(repr(time.time()))
        print("tasks", n)
    asyncio.run(main(int(sys.argv[1])))
""")


def many_tasks() -> None:
    print(f"{'tasks':>7} {'plain_s':>8} {'objects':>10} {'snapshot':>10} {'suspend_s':>10} {'resume_s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        prog = os.path.join(tmp, "sleepers.py")
        with open(prog, "w") as f:
            f.write(SLEEPERS)
        mark, snap = os.path.join(tmp, "mark"), os.path.join(tmp, "s.snap")
        for n in (10_000, 100_000):
            t0 = time.perf_counter()
            subprocess.run([PLAIN, prog, str(n), mark], cwd=tmp, capture_output=True)
            plain = time.perf_counter() - t0
            r = subprocess.run([STASIS, "run", "--quota", "0.2", "--safe-point-timeout", "120", "--snapshot", snap,
                                prog, str(n), mark], cwd=tmp,
                               capture_output=True, text=True)
            done = time.time()
            if r.returncode != 75:
                print(f"{n:7d} not suspended ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
                continue
            with open(mark) as f:
                suspend = done - float(f.read())
            info = json.loads(subprocess.run([STASIS, "inspect", "--json", snap], capture_output=True,
                                             text=True).stdout)
            t0 = time.perf_counter()
            r = subprocess.run([STASIS, "resume", snap], cwd=tmp, capture_output=True, text=True)
            resume = time.perf_counter() - t0
            ok = "" if r.returncode == 0 else f"  resume failed ({r.returncode})"
            print(f"{n:7d} {plain:8.2f} {info['objects']:10,d} {info['file_size'] / 1e6:8.1f}MB {suspend:10.2f} "
                  f"{resume:9.2f}{ok}   (suspend: from the tasks' start to the durable snapshot; resume: "
                  "whole process, includes the remaining 0.5 s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="latency,waiting,startup,imports,asyncio")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--match", action="append", default=[], help="only programs whose name contains this")
    ns = ap.parse_args()
    MATCH[:] = ns.match
    parts = set(ns.only.split(","))
    if not pyperformance_dir():
        print("pyperformance not found ($STASIS_PYPERFORMANCE unset or not a directory; fetch "
              "github:python/pyperformance and point it at pyperformance/data-files/benchmarks): "
              "the corpus only")
    if "latency" in parts:
        print("\n-- request-to-capture latency (requests at random moments) --")
        latency(ns.rounds)
    if "waiting" in parts:
        print("\n-- speed while a request waits --")
        waiting(max(1, ns.rounds // 2))
    if "startup" in parts:
        print("\n-- start-up of a chain step --")
        startup()
    if "imports" in parts:
        print("\n-- first import of rewritten library modules --")
        imports()
    if "asyncio" in parts:
        print("\n-- asyncio with many sleeping tasks --")
        many_tasks()


if __name__ == "__main__":
    main()

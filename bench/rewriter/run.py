#!/usr/bin/env python3
"""Overhead of the resumable form (issue 4): each program plainly and rewritten, interleaved.

For every program in programs/, `--rounds` rounds; in each, three fresh processes --
`python3.11 PROG`, `stasis run PROG` (the rewritten program), and `python3.11 PROG` again as an
A/A control that shows the noise floor of this machine -- serve single runs of work(n) (start-up,
imports and the one-off rewrite are outside), 5 each, interleaved.  A round's ratio compares
runs made side by side; fresh processes each round average over memory layouts.  Prints the
median ratio rewritten/plain over the rounds and the geometric mean.  Targets: geomean <= 1.02,
no program > 1.05.  `--inproc` adds an in-process comparison (both variants in one process).

Timing on a shared machine is noisy (the A/A column), so the same targets are also checked
load-independently: the CPU instructions (valgrind callgrind `Ir`) that the interpreter executes
for work(n), n scaled down, plain vs rewritten code object vs plain again, counted only
between two client requests around the call (`perf stat` is not supported in this container).
The same count comes out on a busy or an idle machine (A/A = 1.000 up to address-dependent
hashing).  Then simulated cycles: the same runs under callgrind's cache and branch simulation,
weighted like KCachegrind's cycle estimate, which also sees layout and branch effects that Ir
does not (a model, but equally independent of load).  Then the bytecode instructions executed (sys.settrace opcode events: a weaker proxy,
every instruction counts 1), and the rewrite cost itself: parse + rewrite + compile + tables for a
first import, against a plain compile and a load from the rewrite cache.

    run.py [--rounds N] [--only time,ir,cycles,bytecode,cost] [--inproc] [--python PATH] [--stasis PATH]
           [PROGRAM...]
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROGRAMS = os.path.join(HERE, 'programs')


def package():
    try:
        from stasis.compiler_hooks import cache, hook, rewriter
    except ImportError:
        sys.path.insert(0, REPO)
        from compiler_hooks import cache, hook, rewriter      # type: ignore[no-redef]
    return cache, hook, rewriter


def usable_stasis() -> str | None:
    """The build tree's stasis (beside the interpreter running this, as `make bench` does, else
    build/bin/stasis) if it is built and starts, else None (then the runner is driven)."""
    for path in (os.path.join(os.path.dirname(sys.executable), 'stasis'),
                 os.path.join(REPO, 'build', 'bin', 'stasis')):
        if os.access(path, os.X_OK) and \
                subprocess.run([path, 'rewrite', os.devnull], capture_output=True).returncode == 0:
            return path
    return None


def commands(prog: str, python: str, stasis: str | None) -> tuple[list[str], list[str]]:
    plain = [python, prog]
    if stasis:
        return plain, [stasis, 'run', prog]
    driver = ('import sys; sys.path.insert(0, %r); from compiler_hooks.runner import run; '
              'sys.exit(run(sys.argv[1], sys.argv[2:], module=False, rewrite=[], no_rewrite=[]))' % REPO)
    return plain, [python, '-c', driver, prog]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=PROGRAMS, env=env, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f'{" ".join(cmd)} failed ({p.returncode}):\n{p.stderr}')
    lines = dict(line.split(' ', 1) for line in p.stdout.splitlines() if ' ' in line)
    return float(lines['TIME']), lines['RESULT']


INPROC = r'''
import re, statistics, sys, time
sys.path[:0] = [PROGRAMS, REPO]
try:
    from stasis.compiler_hooks import rewriter
except ImportError:
    from compiler_hooks import rewriter
def load(code, name):
    ns = {'__name__': name, '__file__': PATH}
    exec(code, ns)
    return ns['work']
src = open(PATH).read()
n = int(re.search(r'main\(work, (\d+)\)', src).group(1))
plain = load(compile(src, PATH, 'exec', dont_inherit=True), 'bm_plain')
control = load(compile(src, PATH, 'exec', dont_inherit=True), 'bm_control')
rewritten = load(rewriter.rewrite_module(src, PATH)[0], 'bm_rewritten')
assert plain(n) == rewritten(n), 'results differ'
times = {'plain': [], 'control': [], 'rewritten': []}
variants = [('plain', plain), ('rewritten', rewritten), ('control', control)]
import gc
for r in range(ROUNDS):
    for name, fn in (variants if r % 2 == 0 else variants[::-1]):
        gc.collect()
        t0 = time.process_time()
        fn(n)
        times[name].append(time.process_time() - t0)
print(*(statistics.median(times[k]) for k in ('plain', 'rewritten', 'control')))
'''


COUNT = r'''
import re, sys
sys.path[:0] = [PROGRAMS, REPO]
try:
    from stasis.compiler_hooks import rewriter
except ImportError:
    from compiler_hooks import rewriter
src = open(PATH).read()
n = max(1, int(int(re.search(r'main\(work, (\d+)\)', src).group(1)) * SCALE))
counts = []
for code in (compile(src, PATH, 'exec', dont_inherit=True), rewriter.rewrite_module(src, PATH)[0]):
    ns = {'__name__': 'bm', '__file__': PATH}
    exec(code, ns)
    box = [0]
    def tracer(frame, event, arg):
        if event == 'call':
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == 'opcode':
            box[0] += 1
        return tracer
    sys.settrace(tracer)
    ns['work'](n)
    sys.settrace(None)
    counts.append(box[0])
print(*counts)
'''

# Programs whose natural size is too slow to trace: smaller n for the instruction count.
COUNT_SCALE = {'fib_recursion': 0.7, 'nqueens': 0.75}


def instruction_counts(progs: list[str], python: str) -> None:
    """Bytecode instructions executed by work(n) plainly and rewritten: a load-independent
    measure of the work the resumable form adds (its extra instructions are the cheapest
    kind: LOAD_FAST/STORE_FAST/DELETE_FAST, NOP, JUMP_FORWARD)."""
    print(f'{"program":20} {"n":>7} {"plain_instr":>12} {"rewritten":>12} {"ratio":>7}')
    ratios = []
    for prog in progs:
        name = os.path.basename(prog)[:-3]
        scale = COUNT_SCALE.get(name, 0.05)
        code = (COUNT.replace('PROGRAMS', repr(PROGRAMS)).replace('REPO', repr(REPO))
                .replace('PATH', repr(prog)).replace('SCALE', repr(scale)))
        p = subprocess.run([python, '-c', code], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise SystemExit(f'{prog}: {p.stderr}')
        a, b = map(int, p.stdout.split())
        ratios.append(b / a)
        print(f'{name:20} {scale:7.2f} {a:12d} {b:12d} {b / a:7.3f}', flush=True)
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f'{"geometric mean":20} {"":7} {"":12} {"":12} {geo:7.3f}   (n column: fraction of the timed size)')



# --------------------------------------------------------------------------------------------
# CPU instructions (load-independent): valgrind's callgrind counts the machine instructions the
# interpreter executes (Ir) -- the same total for the same binary, input and environment however
# busy the machine is.  Only work(n) is counted: the harness toggles collection around it with a
# callgrind client request (a three-line C helper, compiled here and loaded with ctypes), so
# start-up, imports, compiling and rewriting are outside.  Both variants run the same harness in
# the same interpreter; they differ only in the code object (`compile` vs `rewrite_module`, the
# code `stasis run` executes).

TOGGLE_C = r"""
#include <valgrind/callgrind.h>
void stasis_bench_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void stasis_bench_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT("work"); }
"""

IR = r"""
import ctypes, re, sys
sys.path[:0] = [PROGRAMS, REPO]
try:
    from stasis.compiler_hooks import rewriter
except ImportError:
    from compiler_hooks import rewriter
lib = ctypes.CDLL(LIB)
src = open(PATH).read()
n = max(1, int(int(re.search(r'main\(work, (\d+)\)', src).group(1)) * SCALE))
code = rewriter.rewrite_module(src, PATH)[0] if VARIANT == 'rewritten' else \
    compile(src, PATH, 'exec', dont_inherit=True)
ns = {'__name__': 'bm', '__file__': PATH}
exec(code, ns)
work = ns['work']
work(max(1, n // 10))                    # warm-up: specialization, caches, lazy imports
start, stop = lib.stasis_bench_start, lib.stasis_bench_stop
start()
result = work(n)
stop()
print('RESULT', result)
"""

# Fraction of the timed size counted under callgrind.  1.0 by default: a smaller n changes the
# mix of some programs (fib_recursion at 70% of its n spends most of its time in is_even instead
# of fib), and the whole run takes a few minutes at full size.
IR_SCALE: dict[str, float] = {}


def _toggle_library(tmp: str) -> str | None:
    src, lib = os.path.join(tmp, 'toggle.c'), os.path.join(tmp, 'toggle.so')
    with open(src, 'w') as f:
        f.write(TOGGLE_C)
    cc = subprocess.run(['cc', '-O1', '-shared', '-fPIC', '-o', lib, src], capture_output=True, text=True)
    return lib if cc.returncode == 0 else None


# Simulated cycles: callgrind's cache and branch simulation, weighted like KCachegrind's "CEst"
# (Ir + 10 per branch mispredict + 10 per L1 miss + 100 per last-level miss).  A model, not a
# measurement, but it sees what Ir does not (code and data layout, mispredicted branches) and,
# like Ir, does not depend on what else runs on the machine.
CEST_WEIGHTS = {'Ir': 1, 'Bcm': 10, 'Bim': 10, 'I1mr': 10, 'D1mr': 10, 'D1mw': 10,
                'ILmr': 100, 'DLmr': 100, 'DLmw': 100}


def _callgrind_ir(python: str, prog: str, variant: str, scale: float, lib: str, tmp: str,
                  simulate: bool = False) -> tuple[int, str]:
    """Ir of work(n) in one process, or with `simulate` its simulated cycles (CEST_WEIGHTS)."""
    code = (IR.replace('PROGRAMS', repr(PROGRAMS)).replace('REPO', repr(REPO)).replace('LIB', repr(lib))
            .replace('PATH', repr(prog)).replace('SCALE', repr(scale)).replace('VARIANT', repr(variant)))
    out = os.path.join(tmp, f'cg.{variant}.out')
    sim = ['--cache-sim=yes', '--branch-sim=yes'] if simulate else []
    cmd = ['valgrind', '--tool=callgrind', '--instr-atstart=no', *sim, f'--callgrind-out-file={out}',
           python, '-c', code]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=PROGRAMS,
                       env=dict(os.environ, PYTHONHASHSEED='0'))
    if p.returncode != 0:
        raise SystemExit(f'{prog} ({variant}) under callgrind failed:\n{p.stderr[-3000:]}')
    total = None
    for path in glob.glob(out + '*'):
        with open(path) as f:
            text = f.read()
        os.unlink(path)
        if 'work' in re.findall(r'^desc: Trigger: Client Request: (\S+)', text, re.M):
            events = re.search(r'^events: (.*)$', text, re.M).group(1).split()
            totals = [int(x) for x in re.search(r'^totals: (.*)$', text, re.M).group(1).split()]
            values = dict(zip(events, totals))
            total = (sum(w * values.get(e, 0) for e, w in CEST_WEIGHTS.items()) if simulate
                     else values['Ir'])
    if total is None:
        raise SystemExit(f'{prog} ({variant}): no callgrind dump for work(n)')
    return total, p.stdout.split('RESULT ', 1)[1].strip()


def cpu_instructions(progs: list[str], python: str, default_scale: float = 1.0,
                     simulate: bool = False) -> bool | None:
    """Machine instructions (callgrind Ir) of work(n), or with `simulate` simulated cycles:
    plain, rewritten, and plain again (A/A)."""
    what = 'cycles' if simulate else 'Ir'
    if subprocess.run(['valgrind', '--version'], capture_output=True).returncode != 0:
        print('(valgrind not found: skipped)')
        return None
    with tempfile.TemporaryDirectory() as tmp:
        lib = _toggle_library(tmp)
        if lib is None:
            print('(cannot compile the callgrind toggle with cc: skipped)')
            return None
        print(f'{"program":20} {"n":>5} {"plain_" + what:>14} {"rewritten_" + what:>16} {"ratio":>7} {"A/A":>7}')
        ratios, controls = [], []
        for prog in progs:
            name = os.path.basename(prog)[:-3]
            scale = IR_SCALE.get(name, default_scale)
            if simulate and name in COUNT_SCALE:   # exponential programs: keep their mix
                scale = max(scale, COUNT_SCALE[name])
            (a, ra), (b, rb), (c, rc) = (_callgrind_ir(python, prog, v, scale, lib, tmp, simulate)
                                         for v in ('plain', 'rewritten', 'control'))
            if not ra == rb == rc:
                raise SystemExit(f'{prog}: results differ {ra!r} {rb!r} {rc!r}')
            ratios.append(b / a)
            controls.append(c / a)
            flag = '  > 1.05' if b / a > 1.05 else ''
            print(f'{name:20} {scale:5.2f} {a:14d} {b:16d} {b / a:7.4f} {c / a:7.4f}{flag}', flush=True)
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    geo_c = math.exp(sum(map(math.log, controls)) / len(controls))
    print(f'{"geometric mean":20} {"":5} {"":14} {"":16} {geo:7.4f} {geo_c:7.4f}   (targets: geomean <= 1.02, '
          f'max <= 1.05; max here {max(ratios):.3f}; n column: fraction of the timed size)')
    return geo <= 1.02 and max(ratios) <= 1.05


# pyperformance's benchmarks ($STASIS_PYPERFORMANCE = its data-files/benchmarks directory), run
# through bench/pyperf_shim in place of pyperf: plain, or the way `stasis run` runs them -- the
# benchmark's module rewritten and every library module it imports afterwards rewritten too
# (hook.Selection's library modules, issue 17). Only the workload is counted.
PYPERF_IR = r"""
import ctypes, os, sys
sys.path[:0] = [SHIM, REPO]
import pyperf
pyperf.BENCH_CAPTURE = []
with open(PATH, 'rb') as f:
    data = f.read()
if VARIANT == 'rewritten':
    try:
        from stasis.compiler_hooks import hook, runner
    except ImportError:
        from compiler_hooks import hook, runner
    runner.prepare()
    code = hook.compile_cached(PATH, data)
else:
    code = compile(data, PATH, 'exec', dont_inherit=True)
sys.argv = [PATH, *ARGS]
sys.path.insert(0, os.path.dirname(PATH))
exec(code, {'__name__': '__main__', '__file__': PATH})
kind, func, args = pyperf.BENCH_CAPTURE[0]
pyperf.run_workload(kind, func, args, 1)             # warm-up
lib = ctypes.CDLL(LIB)
lib.stasis_bench_start()
pyperf.run_workload(kind, func, args, 1)
lib.stasis_bench_stop()
print('RESULT ok')
"""

def pyperf_args(bm_dir: str) -> list[str]:
    """The command-line arguments pyperformance passes the benchmark (`extra_opts` of its
    pyproject.toml: bm_async_tree's "none" selects the variant without I/O)."""
    import tomllib
    try:
        with open(os.path.join(bm_dir, 'pyproject.toml'), 'rb') as f:
            meta = tomllib.load(f)
    except FileNotFoundError:
        return []
    return list(meta.get('tool', {}).get('pyperformance', {}).get('extra_opts', []))


PYPERF_PURE = ['chaos', 'coroutines', 'deltablue', 'fannkuch', 'float', 'go', 'hexiom', 'nbody', 'nqueens',
               'pyflate', 'raytrace', 'richards', 'spectral_norm', 'unpack_sequence', 'generators', 'deepcopy',
               'meteor_contest', 'scimark', 'async_tree', 'comprehensions', 'richards_super']


def pyperformance_instructions(python: str, names: list[str]) -> bool | None:
    root = os.environ.get('STASIS_PYPERFORMANCE')
    if not root or not os.path.isdir(root):
        print('(pyperformance not found: set STASIS_PYPERFORMANCE to its data-files/benchmarks directory, '
              'fetched from github:python/pyperformance: skipped)')
        return None
    if subprocess.run(['valgrind', '--version'], capture_output=True).returncode != 0:
        print('(valgrind not found: skipped)')
        return None
    shim = os.path.join(REPO, 'bench', 'pyperf_shim')
    ratios, controls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        lib = _toggle_library(tmp)
        if lib is None:
            print('(cannot compile the callgrind toggle with cc: skipped)')
            return None
        print(f'{"benchmark":20} {"plain_Ir":>14} {"rewritten_Ir":>14} {"ratio":>7} {"A/A":>7}')
        for name in names or PYPERF_PURE:
            path = os.path.join(root, f'bm_{name}', 'run_benchmark.py')
            if not os.path.exists(path):
                continue
            irs = []
            for variant in ('plain', 'rewritten', 'control'):
                code = (PYPERF_IR.replace('SHIM', repr(shim)).replace('REPO', repr(REPO)).replace('LIB', repr(lib))
                        .replace('PATH', repr(path)).replace('VARIANT', repr(variant))
                        .replace('ARGS', repr(pyperf_args(os.path.dirname(path)))))
                out = os.path.join(tmp, f'cg.{variant}.out')
                p = subprocess.run(['valgrind', '--tool=callgrind', '--instr-atstart=no',
                                    f'--callgrind-out-file={out}', python, '-c', code],
                                   capture_output=True, text=True, timeout=3600, cwd=os.path.dirname(path),
                                   env=dict(os.environ, PYTHONHASHSEED='0', STASIS_CACHE_DIR=os.path.join(tmp, 'cache')))
                total = None
                for dump in glob.glob(out + '*'):
                    with open(dump) as f:
                        text = f.read()
                    os.unlink(dump)
                    if 'work' in re.findall(r'^desc: Trigger: Client Request: (\S+)', text, re.M):
                        events = re.search(r'^events: (.*)$', text, re.M).group(1).split()
                        totals = [int(x) for x in re.search(r'^totals: (.*)$', text, re.M).group(1).split()]
                        total = dict(zip(events, totals))['Ir']
                if p.returncode != 0 or total is None:
                    print(f'{name:20} failed ({variant}): {p.stderr.strip().splitlines()[-1:]}')
                    break
                irs.append(total)
            if len(irs) != 3:
                continue
            a, b, c = irs
            ratios.append(b / a)
            controls.append(c / a)
            flag = '  > 1.05' if b / a > 1.05 else ''
            print(f'{name:20} {a:14d} {b:14d} {b / a:7.4f} {c / a:7.4f}{flag}', flush=True)
    if not ratios:
        return None
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    geo_c = math.exp(sum(map(math.log, controls)) / len(controls))
    print(f'{"geometric mean":20} {"":14} {"":14} {geo:7.4f} {geo_c:7.4f}   (targets: geomean <= 1.02, '
          f'max <= 1.05; max here {max(ratios):.3f})')
    return geo <= 1.02 and max(ratios) <= 1.05


def inproc(progs: list[str], python: str, rounds: int) -> bool:
    print(f'{"program":20} {"plain_s":>9} {"rewritten_s":>12} {"ratio":>7} {"A/A":>7}')
    ratios, controls = [], []
    for prog in progs:
        code = (INPROC.replace('PROGRAMS', repr(PROGRAMS)).replace('REPO', repr(REPO))
                .replace('PATH', repr(prog)).replace('ROUNDS', str(rounds)))
        p = subprocess.run([python, '-c', code], capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, PYTHONHASHSEED='0'))
        if p.returncode != 0:
            raise SystemExit(f'{prog}: {p.stderr}')
        plain, rw, control = map(float, p.stdout.split())
        ratios.append(rw / plain)
        controls.append(control / plain)
        flag = '  > 1.05' if rw / plain > 1.05 else ''
        print(f'{os.path.basename(prog)[:-3]:20} {plain:9.4f} {rw:12.4f} {rw / plain:7.3f} {control / plain:7.3f}{flag}',
              flush=True)
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    geo_c = math.exp(sum(map(math.log, controls)) / len(controls))
    print(f'{"geometric mean":20} {"":9} {"":12} {geo:7.4f} {geo_c:7.4f}   (targets: geomean <= 1.02, '
          f'max <= 1.05; max here {max(ratios):.3f}; A/A = plain vs plain, the noise floor)')
    return geo <= 1.02 and max(ratios) <= 1.05


# The three processes of a program run one at a time, all on the same CPU (when `taskset` is
# there), so that they see the same core, caches and neighbours.
PIN = ['taskset', '-c', str(max(os.sched_getaffinity(0)))] if shutil.which('taskset') else []


def overhead(progs: list[str], python: str, stasis: str | None, rounds: int, env: dict[str, str],
             runs: int = 5) -> bool:
    """Whole processes: in each round, three fresh processes -- `python3.11 PROG`, `stasis run PROG`
    and `python3.11 PROG` again (A/A control) -- serve single runs of work(n) (bm_common,
    BM_SERVE=1), `runs` each, interleaved in rotating order, so the runs compared were made side
    by side and load that changes more slowly than a second cancels out.  Fresh processes every
    round, because one process's memory layout alone moves a program's time by several percent
    (the same code measured in two processes differs that much).  A round's ratio compares the
    medians of its processes' runs; reported: the median over rounds (CPU time of the run)."""
    ratios, controls = [], []
    print(f'{"program":20} {"plain_s":>9} {"rewritten_s":>12} {"ratio":>7} {"A/A":>7} {"iqr_ratio":>16}')
    for prog in progs:
        plain, rw = commands(prog, python, stasis)
        serve_env = dict(env, BM_SERVE='1')
        per_round, per_round_c, med = [], [], [[], [], []]
        for rnd in range(rounds):
            procs = [subprocess.Popen(PIN + cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      cwd=PROGRAMS, env=serve_env) for cmd in (plain, rw, plain)]
            try:
                def one(k: int) -> tuple[float, str]:
                    procs[k].stdin.write('run\n')
                    procs[k].stdin.flush()
                    line = procs[k].stdout.readline().split(' ', 2)
                    if len(line) < 3 or line[0] != 'TIME':
                        raise SystemExit(f'{prog}: {"plain rewritten control".split()[k]} process failed')
                    return float(line[1]), line[2].strip()
                results = {one(k)[1] for k in range(3)}      # warm-up run; same results
                if len(results) != 1:
                    raise SystemExit(f'{prog}: results differ {results!r}')
                times: list[list[float]] = [[], [], []]
                for i in range(runs):
                    order = [0, 1, 2][(rnd + i) % 3:] + [0, 1, 2][:(rnd + i) % 3]
                    for k in order:
                        times[k].append(one(k)[0])
            finally:
                for p in procs:
                    p.stdin.close()
                    p.wait(timeout=60)
            p_, r_, c_ = (statistics.median(t) for t in times)
            per_round.append(r_ / p_)
            per_round_c.append(c_ / p_)
            for k, v in enumerate((p_, r_, c_)):
                med[k].append(v)
        per_round.sort()
        ratio = statistics.median(per_round)
        control = statistics.median(per_round_c)
        q1, q3 = per_round[len(per_round) // 4], per_round[(3 * len(per_round)) // 4]
        ratios.append(ratio)
        controls.append(control)
        flag = '  > 1.05' if ratio > 1.05 else ''
        print(f'{os.path.basename(prog)[:-3]:20} {statistics.median(med[0]):9.4f} '
              f'{statistics.median(med[1]):12.4f} {ratio:7.3f} {control:7.3f} {q1:7.3f}..{q3:<7.3f}{flag}',
              flush=True)

    def geo(xs: list[float]) -> float:
        return math.exp(sum(map(math.log, xs)) / len(xs))
    print(f'{"geometric mean":20} {"":9} {"":12} {geo(ratios):7.3f} {geo(controls):7.3f}')
    print(f'(median over {rounds} rounds of fresh processes, {runs} interleaved runs each; iqr_ratio: '
          f'the middle half of the rounds\' ratios.  Targets: geomean <= 1.02, max <= 1.05; max here '
          f'{max(ratios):.3f}.  A/A = plain vs plain: the noise floor.)')
    return geo(ratios) <= 1.02 and max(ratios) <= 1.05


def rewrite_cost(sources: list[str]) -> None:
    cache, hook, rewriter = package()
    print(f'\n{"module":36} {"lines":>6} {"compile_ms":>11} {"rewrite_ms":>11} {"cached_ms":>10}')
    with tempfile.TemporaryDirectory() as d:
        os.environ['STASIS_CACHE_DIR'] = d
        for path in sources:
            with open(path, 'rb') as f:
                data = f.read()
            t0 = time.perf_counter()
            compile(data, path, 'exec', dont_inherit=True)
            t1 = time.perf_counter()
            hook.compile_cached(path, data)            # first import: rewrite + write cache
            t2 = time.perf_counter()
            for _ in range(5):
                hook.compile_cached(path, data)        # later imports: read + validate + unmarshal
            t3 = time.perf_counter()
            name = os.path.relpath(path, os.path.dirname(os.__file__)) if path.startswith(os.path.dirname(os.__file__)) else os.path.basename(path)
            nlines = data.count(b'\n')
            print(f'{name:36} {nlines:6d} {(t1 - t0) * 1e3:11.1f} {(t2 - t1) * 1e3:11.1f} '
                  f'{(t3 - t2) / 5 * 1e3:10.2f}')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('programs', nargs='*')
    ap.add_argument('--rounds', type=int, default=11, help='rounds (fresh processes) of the time part')
    ap.add_argument('--inproc', action='store_true', help='also measure both variants inside one process')
    ap.add_argument('--only', default='time,ir,cycles,bytecode,cost,pyperf',
                    help='comma-separated parts to run: time (interleaved processes), ir (callgrind '
                         'CPU instructions), cycles (callgrind cache and branch simulation), '
                         'bytecode (bytecode instructions), cost (rewrite cost), pyperf (callgrind Ir '
                         "of pyperformance's pure-Python benchmarks, with library modules rewritten)")
    ap.add_argument('--bm', action='append', default=[], help='pyperf part: only this benchmark (no bm_)')
    ap.add_argument('--ir-scale', type=float, default=1.0, help='fraction of each n counted by callgrind')
    ap.add_argument('--cycles-scale', type=float, default=0.25,
                    help='fraction of each n simulated (cache simulation is slow)')
    ap.add_argument('--python', default='/usr/bin/python3.11')
    ap.add_argument('--stasis', default=None, help="stasis CLI; '' drives the runner directly")
    ns = ap.parse_args(argv)
    parts = set(ns.only.split(','))
    stasis = ns.stasis if ns.stasis is not None else usable_stasis()
    stasis = stasis or None
    progs = [os.path.join(PROGRAMS, p if p.endswith('.py') else p + '.py') for p in ns.programs] or \
        sorted(p for p in glob.glob(os.path.join(PROGRAMS, '*.py')) if not p.endswith('bm_common.py'))
    print(f'rewriter overhead: {len(progs)} programs, {ns.rounds} rounds, plain = {ns.python}, '
          f'rewritten = {stasis or "compiler_hooks.runner"} run')
    verdicts = []
    if 'time' in parts:
        print('\nwhole processes: python3.11 PROG vs stasis run PROG, fresh processes each round, '
              'single runs of work(n) interleaved between them (CPU time)')
        with tempfile.TemporaryDirectory() as cache_dir:
            env = dict(os.environ, STASIS_CACHE_DIR=cache_dir, PYTHONHASHSEED='0')
            verdicts.append(('time', overhead(progs, ns.python, stasis, ns.rounds, env)))
    if 'pyperf' in parts:
        print("\npyperformance's pure-Python benchmarks: CPU instructions of one workload run (callgrind Ir), "
              'plain vs rewritten with the library modules they import (as stasis run runs them)')
        verdicts.append(('pyperf', pyperformance_instructions(sys.executable, ns.bm)))
    if 'ir' in parts:
        print('\nCPU instructions of work(n) (callgrind Ir; load-independent: same count on a busy '
              'or idle machine)')
        verdicts.append(('Ir', cpu_instructions(progs, ns.python, ns.ir_scale)))
    if 'cycles' in parts:
        print('\nsimulated cycles of work(n) (callgrind cache and branch simulation, Ir + 10 x '
              'mispredicts + 10 x L1 misses + 100 x LL misses; load-independent)')
        verdicts.append(('simulated cycles', cpu_instructions(progs, ns.python, ns.cycles_scale, simulate=True)))
    if 'bytecode' in parts:
        print('\nbytecode instructions executed (load-independent)')
        instruction_counts(progs, ns.python)
    if ns.inproc:
        print('\nin-process, interleaved (median CPU seconds of work(n)); note: several copies of '
              'a class-heavy program in one process slow each other (see A/A)')
        inproc(progs, ns.python, ns.rounds)
    if 'cost' in parts:
        stdlib = os.path.dirname(os.__file__)
        rewrite_cost(progs[:3] + [os.path.join(stdlib, p) for p in
                                 ('threading.py', 'queue.py', 'json/decoder.py', 'asyncio/base_events.py',
                                  'typing.py', 'test/test_grammar.py')])
    for what, ok in verdicts:
        if ok is not None:
            print(f'\noverhead targets {"met" if ok else "NOT met"} by {what} on this run'
                  + (' (see the A/A column for this machine\'s noise)' if what == 'time' else ''))
    print('(a benchmark reports, it does not fail)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python3
"""Overhead of the resumable form (issue 4): each program plainly and rewritten, interleaved.

For every program in programs/: 5 rounds (order alternating per round), each run reporting the
time of its own work (`TIME` line, so interpreter start-up and the one-off rewrite are not
counted); prints median plain, median rewritten, their ratio, and the geometric mean.  Targets:
geomean <= 1.02, no program > 1.05.  Then the rewrite cost itself: parse + rewrite + compile +
tables for a first import, against a plain compile and a load from the rewrite cache.

    run.py [--rounds N] [--python PATH] [--stasis PATH] [PROGRAM...]
"""
from __future__ import annotations

import argparse
import glob
import math
import os
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


def overhead(progs: list[str], python: str, stasis: str | None, rounds: int, env: dict[str, str]) -> bool:
    times: dict[str, tuple[list[float], list[float]]] = {p: ([], []) for p in progs}
    for prog in progs:                       # warm the rewrite cache; check same results
        plain, rw = commands(prog, python, stasis)
        r1, r2 = timed(plain, env)[1], timed(rw, env)[1]
        if r1 != r2:
            raise SystemExit(f'{prog}: result differs plain {r1!r} vs rewritten {r2!r}')
    for rnd in range(rounds):
        for prog in progs:
            plain, rw = commands(prog, python, stasis)
            order = [(0, plain), (1, rw)] if rnd % 2 == 0 else [(1, rw), (0, plain)]
            for which, cmd in order:
                times[prog][which].append(timed(cmd, env)[0])
    print(f'{"program":20} {"plain_s":>9} {"rewritten_s":>12} {"ratio":>7}')
    ratios = []
    for prog in progs:
        p, r = statistics.median(times[prog][0]), statistics.median(times[prog][1])
        ratios.append(r / p)
        flag = '  > 1.05' if r / p > 1.05 else ''
        print(f'{os.path.basename(prog)[:-3]:20} {p:9.4f} {r:12.4f} {r / p:7.3f}{flag}')
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f'{"geometric mean":20} {"":9} {"":12} {geo:7.3f}   (targets: geomean <= 1.02, max <= 1.05; '
          f'max here {max(ratios):.3f})')
    return geo <= 1.02 and max(ratios) <= 1.05


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
            print(f'{name:36} {data.count(b"\n"):6d} {(t1 - t0) * 1e3:11.1f} {(t2 - t1) * 1e3:11.1f} '
                  f'{(t3 - t2) / 5 * 1e3:10.2f}')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('programs', nargs='*')
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--python', default='/usr/bin/python3.11')
    ap.add_argument('--stasis', default=None)
    ns = ap.parse_args(argv)
    stasis = ns.stasis
    if stasis is None:
        built = os.path.join(REPO, 'build', 'bin', 'stasis')
        stasis = built if os.access(built, os.X_OK) else None
    progs = [os.path.join(PROGRAMS, p if p.endswith('.py') else p + '.py') for p in ns.programs] or \
        sorted(p for p in glob.glob(os.path.join(PROGRAMS, '*.py')) if not p.endswith('bm_common.py'))
    print(f'rewriter overhead: {len(progs)} programs, {ns.rounds} rounds, plain = {ns.python}, '
          f'rewritten = {stasis or "compiler_hooks.runner"} run')
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, STASIS_CACHE_DIR=cache_dir, PYTHONHASHSEED='0')
        ok = overhead(progs, ns.python, stasis, ns.rounds, env)
    stdlib = os.path.dirname(os.__file__)
    rewrite_cost(progs[:3] + [os.path.join(stdlib, p) for p in
                             ('threading.py', 'queue.py', 'json/decoder.py', 'asyncio/base_events.py',
                              'typing.py', 'test/test_grammar.py')])
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())

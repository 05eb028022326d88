#!/usr/bin/env python3
"""CPython test-suite oracle for the rewriter (issue 4).

Runs each CPython test module (Debian `libpython3.11-testsuite`) twice -- plainly, and with the
`test` package rewritten (`stasis run --rewrite 'test.*' -m test -v MODULE`) -- and compares
the unittest counts (tests run, failures, errors, skipped, expected failures, unexpected
successes).  Prints one table row per module; exits 0 only if every module matches.

    run.py --fast | --full | --extra | MODULE...  [--jobs N] [--stasis PATH] [--python PATH]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time
from typing import NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FULL = [
    'test_grammar', 'test_generators', 'test_coroutines', 'test_with', 'test_exceptions',
    'test_scope', 'test_class', 'test_contextlib', 'test_listcomps', 'test_genexps',
    'test_unpack', 'test_keywordonlyarg', 'test_positional_only_arg', 'test_raise',
    'test_augassign', 'test_named_expressions', 'test_exception_group', 'test_except_star',
    'test_decorators', 'test_super', 'test_dataclasses', 'test_functools', 'test_collections',
    'test_json', 'test_enum', 'test_asyncgen', 'test_contextlib_async', 'test_dictcomps',
    'test_setcomps',
    # beyond the list
    'test_patma', 'test_unpack_ex', 'test_string_literals', 'test_fstring', 'test_itertools',
    'test_iter', 'test_funcattrs', 'test_types', 'test_bool',
    'test_traceback', 'test_inspect', 'test_threading', 'test_queue', 'test_sched',
]
# More of the suite (`--extra`).  test_dis, test_compile and test_sys_settrace inspect the
# bytecode, constants, positions or line events of functions defined in the test module itself,
# which the rewriting changes by design (compiler_hooks/README.md, deviations 4 and 5).
EXTRA = ['test_builtin', 'test_descr', 'test_typing', 'test_argparse', 'test_copy', 'test_heapq',
         'test_operator', 'test_statistics', 'test_logging', 'test_sort', 'test_property',
         'test_abc', 'test_gc', 'test_weakref', 'test_syntax', 'test_unittest', 'test_pprint',
         'test_textwrap', 'test_difflib', 'test_csv', 'test_random', 'test_dis', 'test_compile',
         'test_sys_settrace']
# A fast subset (< 1 min for both runs on a loaded 2-core machine), run by `make test`.
FAST = ['test_grammar', 'test_scope', 'test_with', 'test_raise', 'test_augassign',
        'test_named_expressions', 'test_listcomps', 'test_unpack', 'test_except_star',
        'test_exception_group', 'test_keywordonlyarg', 'test_positional_only_arg', 'test_super',
        'test_decorators', 'test_setcomps', 'test_dictcomps', 'test_genexps', 'test_generators']


class Counts(NamedTuple):
    ran: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    xfail: int = 0
    xpass: int = 0
    status: str = ''          # '' when unittest's summary was found, else what happened

    def show(self) -> str:
        if self.status:
            return self.status
        s = f'{self.ran} run'
        for name, v in (('fail', self.failures), ('err', self.errors), ('skip', self.skipped),
                        ('xfail', self.xfail), ('xpass', self.xpass)):
            if v:
                s += f' {v} {name}'
        return s

    def key(self) -> tuple:
        return tuple(self)


_RAN = re.compile(r'^Ran (\d+) tests? in ', re.M)
_SUMMARY = re.compile(r'^(OK|FAILED)(?: \((.*)\))?\s*$', re.M)
_FIELDS = {'failures': 'failures', 'errors': 'errors', 'skipped': 'skipped',
           'expected failures': 'xfail', 'unexpected successes': 'xpass'}
_FAILED_TEST = re.compile(r'^(?:FAIL|ERROR): (\S+) \(([\w.]+)\)', re.M)


def parse(output: str, returncode: int) -> Counts:
    ran = [int(m) for m in _RAN.findall(output)]
    if not ran:
        if re.search(r'skipped -- |\bskipped\b.*resource', output):
            return Counts(status='module skipped')
        return Counts(status=f'no summary (exit {returncode})')
    fields = dict.fromkeys(_FIELDS.values(), 0)
    for _ok, detail in _SUMMARY.findall(output):
        for part in filter(None, (p.strip() for p in (detail or '').split(','))):
            name, _, value = part.rpartition('=')
            if name in _FIELDS:
                fields[_FIELDS[name]] += int(value)
    return Counts(sum(ran), **fields)


def failed_tests(output: str) -> set[str]:
    return {f'{cls}.{name}' if not cls.endswith(name) else cls for name, cls in _FAILED_TEST.findall(output)}


def commands(module: str, python: str, stasis: str | None) -> tuple[list[str], list[str]]:
    plain = [python, '-m', 'test', '-v', module]
    if stasis:
        rewritten = [stasis, 'run', '--rewrite', 'test.*', '-m', 'test', '-v', module]
    else:   # before the CLI exists: drive compiler_hooks.runner directly from the source tree
        driver = ('import sys; sys.path.insert(0, %r); from compiler_hooks.runner import run; '
                  'sys.exit(run("test", sys.argv[1:], module=True, rewrite=["test.*"], no_rewrite=[]))'
                  % REPO)
        rewritten = [python, '-c', driver, '-v', module]
    return plain, rewritten


def run_one(cmd: list[str], timeout: float) -> tuple[Counts, str, float]:
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONHASHSEED='0')
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors='replace', timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
        return Counts(status='timeout'), out, time.monotonic() - t0
    return parse(p.stdout, p.returncode), p.stdout, time.monotonic() - t0


class Result(NamedTuple):
    module: str
    plain: Counts
    rewritten: Counts
    plain_s: float
    rewritten_s: float
    only_rewritten_failed: set[str]
    only_plain_failed: set[str]

    @property
    def same(self) -> bool:
        return self.plain.key() == self.rewritten.key() and not self.plain.status.startswith('no summary')


def compare(module: str, python: str, stasis: str | None, timeout: float) -> Result:
    plain_cmd, rw_cmd = commands(module, python, stasis)
    rw, rw_out, rw_s = run_one(rw_cmd, timeout)       # rewritten first: warms the cache honestly
    pl, pl_out, pl_s = run_one(plain_cmd, timeout)
    fp, fr = failed_tests(pl_out), failed_tests(rw_out)
    return Result(module, pl, rw, pl_s, rw_s, fr - fp, fp - fr)


def default_stasis() -> str | None:
    """The build tree's stasis (beside the interpreter running this, as `make conformance
    BUILD=...` does, else build/bin/stasis) if it is built and starts, else None (then the
    runner is driven)."""
    for path in (os.path.join(os.path.dirname(sys.executable), 'stasis'),
                 os.path.join(REPO, 'build', 'bin', 'stasis')):
        if os.access(path, os.X_OK) and \
                subprocess.run([path, 'rewrite', os.devnull], capture_output=True).returncode == 0:
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('modules', nargs='*')
    ap.add_argument('--fast', action='store_true')
    ap.add_argument('--full', action='store_true')
    ap.add_argument('--extra', action='store_true', help='the modules beyond the issue\'s list')
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--timeout', type=float, default=900)
    ap.add_argument('--python', default=sys.executable)
    ap.add_argument('--stasis', default=None, help='stasis CLI (default: build/bin/stasis if built)')
    ns = ap.parse_args(argv)
    modules = ns.modules or (EXTRA if ns.extra else FULL if ns.full else FAST)
    stasis = ns.stasis if ns.stasis is not None else default_stasis()
    stasis = stasis or None
    print(f'conformance: {len(modules)} modules; plain = {ns.python} -m test -v M; '
          f'rewritten = {stasis or "compiler_hooks.runner"} --rewrite test.* -m test -v M', flush=True)
    print(f'{"module":28} {"plain":34} {"rewritten":34} same   plain_s  rewr_s')
    results: list[Result] = []
    with concurrent.futures.ThreadPoolExecutor(max(1, ns.jobs)) as pool:
        futs = {pool.submit(compare, m, ns.python, stasis, ns.timeout): m for m in modules}
        for fut in concurrent.futures.as_completed(futs):
            r = fut.result()
            results.append(r)
            print(f'{r.module:28} {r.plain.show():34} {r.rewritten.show():34} '
                  f'{"yes" if r.same else "NO ":5} {r.plain_s:7.1f} {r.rewritten_s:7.1f}', flush=True)
            for t in sorted(r.only_rewritten_failed):
                print(f'    fails only rewritten: {t}')
            for t in sorted(r.only_plain_failed):
                print(f'    fails only plain:     {t}')
    bad = [r.module for r in results if not r.same]
    print(f'{len(results) - len(bad)}/{len(results)} modules identical' + (f'; differ: {" ".join(sorted(bad))}' if bad else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

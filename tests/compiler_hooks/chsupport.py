"""Shared helpers for the compiler_hooks tests: the package under test and plain-vs-rewritten
execution of source snippets."""
from __future__ import annotations

import io
import os
import sys
import traceback

REPO = os.environ.get('STASIS_SOURCE_DIR') or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('STASIS_BUILD_DIR') or os.path.join(REPO, 'build')
SNIPPETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'snippets')

try:                                    # the assembled package (build/python/stasis)
    from stasis import compiler_hooks as ch
    from stasis.compiler_hooks import bytecode, cache, hook, listing, resume_points, rewriter, runner, sites
    PACKAGE = 'stasis.compiler_hooks'
except ImportError:                     # before the build: the source folder
    sys.path.insert(0, REPO)
    import compiler_hooks as ch         # type: ignore[no-redef]
    from compiler_hooks import bytecode, cache, hook, listing, resume_points, rewriter, runner, sites  # type: ignore[no-redef]
    PACKAGE = 'compiler_hooks'


def driver_cmd() -> list[str]:
    """argv prefix that behaves like `stasis run` (the CLI when built, else the runner)."""
    stasis = os.path.join(BUILD, 'bin', 'stasis')
    if PACKAGE.startswith('stasis.') and os.access(stasis, os.X_OK):
        return [stasis, 'run']
    code = ('import sys; sys.path.insert(0, %r); from compiler_hooks.runner import run; a = sys.argv[1:]; '
            'm = a[0] == "-m"; a = a[1:] if m else a; '
            'sys.exit(run(a[0], a[1:], module=m, rewrite=[], no_rewrite=[]))' % REPO)
    return [sys.executable, '-c', code]


def execute(source: str, filename: str, rewritten: bool) -> tuple[object, str]:
    """Run module source; returns (value of `result` or the formatted exception, stdout)."""
    if rewritten:
        code, _ = rewriter.rewrite_module(source, filename)
    else:
        code = compile(source, filename, 'exec', dont_inherit=True)
    ns: dict = {'__name__': 'snippet', '__file__': filename}
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        exec(code, ns)
        value: object = ns.get('result')
    except BaseException as e:
        value = ('raised', ''.join(traceback.format_exception(e)))
    finally:
        sys.stdout = saved
    return value, out.getvalue()

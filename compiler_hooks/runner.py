"""`stasis run` back end: run a script or `-m` module like `python3`, under the import hook.

Counterparts: `hook` (selection, loader), `stasis/cli.py` (argument parsing, calls `run`).
Invariant: what the program sees (`sys.argv`, `sys.path[0]`, `__main__`, `__file__`,
`__spec__`, `__loader__`, exit status, traceback of an uncaught exception) is what
`/usr/bin/python3.11 SCRIPT ARGS` / `python3.11 -m MODULE ARGS` would give it.
"""
from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types
from typing import Sequence

from . import hook


def _exit_status(code: object) -> int:
    """CPython's handling of SystemExit.code (`_Py_HandleSystemExit`)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(str(code) + '\n')
        sys.stderr.flush()
    except Exception:
        pass
    return 1


_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '')


def _strip_own_frames(exc: BaseException) -> None:
    """Drops the leading traceback entries of Stasis's own frames (runner, program session)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    exc.__traceback__ = tb


# Called with the exception that ends the program, after its traceback is printed
# (stasis/program/crash.py publishes the crash snapshot it wrote before the stack unwound).
ON_UNCAUGHT: list = []


def _report(exc: BaseException) -> int:
    _strip_own_frames(exc)
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    except Exception:
        pass
    for on_uncaught in ON_UNCAUGHT:
        on_uncaught(exc)
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def _module_root(name: str) -> list[str]:
    """Directory that holds the top-level package (or module) `name` belongs to."""
    top = name.partition('.')[0]
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, sys.path)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.origin is None:
        return []
    locations = list(spec.submodule_search_locations or [])
    return locations or [os.path.dirname(spec.origin)]


_finder: hook.RewritingFinder | None = None


def prepare(no_rewrite: Sequence[str] = ()) -> None:
    """Install the hook now, selecting only the blocking stdlib modules (hook.DEFAULT_STDLIB),
    so that Stasis's own start-up (e.g. the updater's control thread importing `threading`,
    `queue`, `socket`) imports them rewritten.  `run` completes the selection.  Idempotent."""
    global _finder
    if _finder is None:
        # What the rewriter imports while it works (importlib's decode_source imports tokenize; the
        # rest comes with `hook`) is imported first, plainly: a module cannot be rewritten by a
        # rewriter that is importing it.
        import tokenize  # noqa: F401
        _finder = hook.install(hook.Selection((), (), no_rewrite))
        from .. import _engine
        _engine.hide_temporaries()      # frame.f_locals never shows `.t0` & co. (README)


def run(target: str, args: list[str], *, module: bool, rewrite: Sequence[str] = (),
        no_rewrite: Sequence[str] = (), execute=None) -> int:
    """Run SCRIPT `target` (or module `target` when `module`) with `args`; returns the exit
    status the plain interpreter would have exited with (130 for KeyboardInterrupt, where
    CPython would kill itself with SIGINT).  `execute(code, globals, selection)`, when given,
    runs the script's code instead of `exec` (whole-program suspension hooks in there)."""
    if module:
        sys.argv = ['-m', *args]
        cwd = os.getcwd()
        if sys.path and sys.path[0] != cwd:
            sys.path[0:1] = [cwd]
        # A library package run as a program (`-m unittest`, `-m json.tool`) is still a library:
        # its modules are imported (and rewritten) as libraries, not the program's own modules, which
        # a suspended program keeps by value.
        library = hook.library_dirs()
        # (A directory with its separator: a top-level module's root is the library directory itself.)
        roots = [r for r in _module_root(target)
                 if not any(os.path.join(os.path.realpath(r), '').startswith(d) for d in library)]
    else:
        sys.argv = [target, *args]
        script_dir = os.path.dirname(os.path.realpath(target))
        if sys.path:
            sys.path[0] = script_dir
        else:
            sys.path.append(script_dir)
        roots = [script_dir]
    prepare(no_rewrite)
    assert _finder is not None
    selection = _finder.selection = hook.Selection(roots, rewrite, no_rewrite)
    hook.program_starts()
    try:
        if module:
            def run_code(code, run_globals):
                runpy.importlib = importlib  # type: ignore[attr-defined] # the program's runpy is runpy
                if execute is None:
                    exec(code, run_globals)
                else:
                    execute(code, run_globals, selection)
            # runpy._run_code ends with exec(code, run_globals): a module-level `exec` in runpy
            # shadows the builtin for this one call, so the module's code runs through run_code.
            runpy.exec = run_code  # type: ignore[attr-defined]
            # A module Stasis itself imported before the hook (tokenize, ast, dis...) is found in
            # sys.modules with its plain loader: runpy would run its plain code as __main__, where
            # no safe point comes. Its code for __main__ is found afresh through the hook instead.
            runpy.importlib = _FreshSpecs  # type: ignore[attr-defined]
            try:
                runpy._run_module_as_main(target, alter_argv=True)   # type: ignore[attr-defined]
            finally:
                runpy.__dict__.pop('exec', None)
                runpy.importlib = importlib  # type: ignore[attr-defined]
        else:
            _run_script(target, execute, selection)
    except SystemExit as e:
        return _exit_status(e.code)
    except BaseException as e:             # the program's uncaught exception
        return _report(e)
    return 0            # the hook stays installed: code imported later (atexit, threads) too


def _fresh_find_spec(name: str, package: str | None = None):
    """importlib.util.find_spec for runpy: a module that was imported before the hook (Stasis's
    own start-up imports about 90 standard-library modules, hook.already_imported) gets the spec
    the hook gives it now, so `-m tokenize` runs rewritten code as __main__; the module already
    imported stays as it is (the rewriter itself uses tokenize)."""
    module = sys.modules.get(name)
    spec = getattr(module, '__spec__', None)
    if (_finder is not None and spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader
            and not name.startswith('.')):
        parent = name.rpartition('.')[0]
        path = getattr(sys.modules.get(parent), '__path__', None) if parent else None
        if not parent or path is not None:
            fresh = _finder.find_spec(name, path)
            if fresh is not None:
                return fresh
    return importlib.util.find_spec(name, package)


class _FreshSpecs:
    """What runpy sees as `importlib` while it looks up the module `-m` names."""
    machinery = importlib.machinery
    util = types.SimpleNamespace(find_spec=_fresh_find_spec)


def run_resumed(execute) -> int:
    """Runs `execute()` (a resumed program's remaining work) with `run`'s exit-status and
    uncaught-exception handling."""
    try:
        execute()
    except SystemExit as e:
        return _exit_status(e.code)
    except BaseException as e:             # the program's uncaught exception
        return _report(e)
    finally:
        sys.settrace(None)
    return 0


def _run_script(path: str, execute=None, selection=None) -> None:
    abspath = os.path.abspath(path)
    main = types.ModuleType('__main__')
    loader = importlib.machinery.SourceFileLoader('__main__', abspath)
    main.__dict__.update(__file__=abspath, __loader__=loader, __spec__=None,
                         __cached__=None, __package__=None, __builtins__=builtins)
    try:
        with open(abspath, 'rb') as f:
            data = f.read()
    except OSError as e:
        sys.stderr.write(f"{sys.executable}: can't open file {abspath!r}: [Errno {e.errno}] {e.strerror}\n")
        raise SystemExit(2)
    hook.SOURCES[os.path.realpath(abspath)] = data
    try:
        code = hook.compile_cached(abspath, data)
    except SyntaxError as e:
        err = e                 # reported like CPython: no traceback, only the source location
    else:
        sys.modules['__main__'] = main
        if execute is not None:
            execute(code, main.__dict__, selection)
        else:
            exec(code, main.__dict__)
        return
    err.__traceback__ = None
    raise err

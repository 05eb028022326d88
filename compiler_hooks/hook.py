"""The import hook: a meta-path finder whose loader compiles selected modules resumably.

Counterparts: `rewriter` (the transformation), `cache` (rewritten code on disk), `runner`
(installs the hook for `stasis run`).  Invariant: a module that is not selected is found and
loaded exactly as without the hook (the finder returns None and PathFinder handles it).
"""
from __future__ import annotations


import importlib.machinery
import os
import re
import sys
import time
from fnmatch import fnmatchcase
from types import CodeType
from typing import Sequence

# The standard-library modules the rewriter's own modules (lowering, scopes, sites, resume_points,
# bytecode) import. Those modules are imported only when a module has to be rewritten (most start-ups
# find everything in the cache), but their dependencies are imported here, before the hook is
# installed, so that they are plain (and the rewriter never has to rewrite what it runs on) in every
# process, whatever the cache holds: a module a program's frame runs in must be rewritten or plain
# alike in the process that suspends it and the one that resumes it.
# tests/compiler_hooks/test_hook.py checks that this list is complete.
import ast  # noqa: F401
import symtable  # noqa: F401

from . import bytecode  # noqa: F401 -- for dis and opcode (only bytecode.py imports them)
from . import cache
from .rewriter import rewrite_module

# Pure-Python standard-library modules whose frames sit under blocking calls, so that threads
# (and event loops) blocked there have resumable stacks.  Each one wraps a blocking C call in
# Python frames that the program's own frames call into:
#   threading            Thread.join, Event.wait, Condition.wait, Semaphore/Barrier (lock.acquire)
#   queue                Queue.get/put/join (Condition.wait)
#   socket               socket.accept, create_connection, makefile readers (accept/connect/recv)
#   selectors            BaseSelector.select (select/poll/epoll)
#   socketserver         BaseServer.serve_forever / handle_request (selectors)
#   http.server          request handlers on top of socketserver (readline on a socket)
#   asyncio, asyncio.*   the event loop (run_forever -> _run_once -> selector.select), futures,
#                        tasks, queues, locks, streams: coroutine stacks pass through them
#   concurrent.futures.* Future.result, wait, as_completed, executor worker loops
#   subprocess           Popen.wait / communicate (waitpid, select)
#   sched                scheduler.run (delayfunc = time.sleep)
# Modules already imported before the hook is installed (see runner) keep their plain code.
DEFAULT_STDLIB: tuple[str, ...] = (
    'threading', 'queue', 'socket', 'selectors', 'socketserver', 'http.server',
    'asyncio', 'asyncio.*', 'concurrent.futures', 'concurrent.futures.*', 'subprocess', 'sched',
)

# Library modules (the standard library and site-/dist-packages) are rewritten like the program's
# own, so that frames of library code that calls back into the program (unittest running a test,
# json calling default=, a library's main loop) and library frames above a blocking call are
# resumable; rewritten code is cached per user (cache.py), so each module's rewrite is paid once.
# These stay plain:
#   importlib, importlib.*     the import system itself: the hook's loader runs inside it
#   encodings, encodings.*     codecs, looked up and called by C code, imported at start-up
#   site, sitecustomize,       start-up only; never on a stack that waits for anything
#   usercustomize
#   random                     its functions are methods of a hidden module-level Random whose
#                              state the program snapshot restores into the new process's: a frame
#                              of it would hold a copy, and the two would draw different numbers
#   logging, logging.*,        their frames hold the module's own lock (logging._lock, the
#   warnings, tempfile         filters' and tempdir's locks) around their state; a module-level
#                              lock is not part of the heap, so a frame rebuilt inside such a
#                              section would release a lock the new process never took
# and so does every module imported before the hook is installed (runner.prepare()).
LIBRARY_EXCLUDED: tuple[str, ...] = (
    'importlib', 'importlib.*', 'encodings', 'encodings.*', 'site', 'sitecustomize', 'usercustomize',
    'random', 'logging', 'logging.*', 'warnings', 'tempfile',
)


def library_dirs() -> tuple[str, ...]:
    """Directories of library modules: the standard library and every site-/dist-packages
    directory on sys.path (real paths, with a trailing separator)."""
    import sysconfig
    paths = sysconfig.get_paths()
    dirs = {paths['stdlib'], paths['platstdlib'], paths['purelib'], paths['platlib']}
    dirs.update(p for p in sys.path if os.path.basename(p.rstrip(os.sep)) in ('site-packages', 'dist-packages'))
    return tuple(sorted(os.path.join(os.path.realpath(d), '') for d in dirs if d))


_OWN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) \
    if os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) == 'stasis' \
    else os.path.dirname(os.path.abspath(__file__))


_own_root_real: list[str] = []


def _own_root() -> str:
    if not _own_root_real:
        _own_root_real.append(os.path.join(os.path.realpath(_OWN_ROOT), ''))
    return _own_root_real[0]


def _under(path: str, roots: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(real.startswith(r) for r in roots)


class Selection:
    """Which modules are rewritten.  Order of decision: Stasis's own modules never;
    `no_rewrite` globs remove; `rewrite` globs and the stdlib list add; otherwise modules whose
    file lies under one of `roots` (the main script's directory) and, with `library`, library
    modules (library_dirs()) that are not in LIBRARY_EXCLUDED."""

    def __init__(self, roots: Sequence[str] = (), rewrite: Sequence[str] = (),
                 no_rewrite: Sequence[str] = (), stdlib: Sequence[str] = DEFAULT_STDLIB,
                 library: bool = True) -> None:
        self.roots = tuple(os.path.join(os.path.realpath(r), '') for r in roots)
        self.rewrite = tuple(rewrite)
        self.no_rewrite = tuple(no_rewrite)
        self.stdlib = tuple(stdlib)
        self.library = library_dirs() if library else ()

    def selects(self, fullname: str, origin: str | None) -> bool:
        if fullname == 'stasis' or fullname.startswith('stasis.'):
            return False
        real = os.path.realpath(origin) if origin is not None else None  # once: an lstat per component
        if real is not None and real.startswith(_own_root()):
            return False
        if any(fnmatchcase(fullname, g) for g in self.no_rewrite):
            return False
        if any(fnmatchcase(fullname, g) for g in self.rewrite + self.stdlib):
            return True
        if real is None:
            return False
        if real.startswith(self.roots):
            return True
        return (bool(self.library) and real.startswith(self.library)
                and not any(fnmatchcase(fullname, g) for g in LIBRARY_EXCLUDED))


# The source bytes of the program's own modules (those under the selection's roots, and the main
# script), by real path, as they were compiled: a program snapshot keeps them, so that a patch
# given as an edited source file can be diffed against the code that is running (the file on
# disk may have been edited since). Library modules are not kept.
SOURCES: dict[str, bytes] = {}
# Applied to the code of the program's own modules as they are imported, as
# OWN_CODE_TRANSFORM(code, path, source) (set by --snapshot-on-crash: stasis/program/crash.py adds
# its exception handlers, through a cache of its own).
OWN_CODE_TRANSFORM = None


# Wall time this process has spent rewriting modules (cache misses): [seconds of rewrites done,
# start of the rewrites under way or 0.0, how many are under way (threads)]. A suspension's wait
# for a safe point does not count it (program/freeze.py): a first run on a machine with a cold
# cache may rewrite numpy and pandas for 10 s or more inside one import.
_rewriting = [0.0, 0.0, 0]


def rewriting_seconds() -> float:
    """Seconds this process has spent rewriting modules, the rewrite under way included."""
    done, since, _count = _rewriting
    return done + (time.monotonic() - since if since else 0.0)


def _rewrite(data: bytes, path: str):
    if not _rewriting[2]:
        _rewriting[1] = time.monotonic()
    _rewriting[2] += 1
    try:
        return rewrite_module(data, path)
    finally:
        _rewriting[2] -= 1
        if not _rewriting[2]:
            _rewriting[0] += time.monotonic() - _rewriting[1]
            _rewriting[1] = 0.0


def compile_cached(path: str, data: bytes) -> CodeType:
    """Resumable code for the source `data` read from `path`, through the cache.

    A SyntaxError propagates as from `compile()`.  Should the rewriter itself fail (a bug),
    the module is compiled plainly, with a warning on stderr: it runs, but is not resumable."""
    key = cache.source_key(path, data)
    code = cache.load(path, key)
    if code is not None:
        return code
    try:
        code, _tree = _rewrite(data, path)
    except Exception as e:           # never break the program for our bug
        failure = f'{type(e).__name__}: {e}'
    else:
        cache.store(path, key, code)
        return code
    # A SyntaxError of the source itself is the program's: compile() raises it here exactly as
    # plain Python would (outside the except block: no chained context).  Else it was our bug.
    plain = compile(data, path, 'exec', dont_inherit=True)
    sys.stderr.write(f'stasis: warning: could not rewrite {path} ({failure}); '
                     'running it unrewritten (not resumable)\n')
    return plain


class RewritingLoader(importlib.machinery.SourceFileLoader):
    """SourceFileLoader whose code comes from the rewriter (via the cache)."""

    keep_source = False     # set by the finder for the program's own modules (SOURCES)

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        data = self.get_data(path)
        if not self.keep_source:
            return compile_cached(path, data)
        SOURCES[os.path.realpath(path)] = data
        code = compile_cached(path, data)
        return OWN_CODE_TRANSFORM(code, path, data) if OWN_CODE_TRANSFORM is not None else code


class RewritingFinder:
    """A meta-path finder (the importlib.abc.MetaPathFinder protocol; not imported from there:
    importlib.abc costs ~15 ms of start-up, as it imports importlib.resources)."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection

    def find_spec(self, fullname, path, target=None):
        sel = self.selection
        if any(fnmatchcase(fullname, g) for g in sel.no_rewrite):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return None
        if not sel.selects(fullname, spec.origin):
            return None
        spec.loader = RewritingLoader(fullname, spec.origin)
        spec.loader.keep_source = spec.origin is not None and _under(spec.origin, sel.roots)
        return spec

    def invalidate_caches(self) -> None:
        pass


# Modules already imported when the program's code starts (runner.run; resume: when the hook is
# installed): Stasis's start-up imports about 90 standard-library modules (tokenize, ast, dis,
# json...) before the program's selection is in force. A module is imported once per process, so
# their code stays plain whatever --rewrite says; only `-m MODULE` runs a fresh rewritten copy.
IMPORTED_BEFORE_PROGRAM: set[str] = set()


def program_starts() -> None:
    """Records the modules imported so far that do not run rewritten code."""
    IMPORTED_BEFORE_PROGRAM.update(
        name for name, mod in list(sys.modules.items())
        if not isinstance(getattr(getattr(mod, '__spec__', None), 'loader', None), RewritingLoader))


_NOT_SELECTED = re.compile(r'\(module (\S+) is not in the selection; --rewrite adds it\)')


def true_advice(why: str) -> str:
    """The diagnostic of a stack through plain code (snapshot/capture.cpp) advises --rewrite; for
    a module imported before the program started, that advice would not work: says why instead."""
    def advice(m: 're.Match[str]') -> str:
        name = m.group(1)
        if name not in IMPORTED_BEFORE_PROGRAM:
            return m.group(0)
        return (f'(module {name} was imported by Stasis itself before the program started, so its code '
                'is not rewritten and has no safe points; --rewrite cannot change that)')
    return _NOT_SELECTED.sub(advice, why)


def install(selection: Selection) -> RewritingFinder:
    """Put the finder first on `sys.meta_path`; returns it (for `uninstall`)."""
    finder = RewritingFinder(selection)
    sys.meta_path.insert(0, finder)
    return finder


def uninstall(finder: RewritingFinder) -> None:
    try:
        sys.meta_path.remove(finder)
    except ValueError:
        pass


def already_imported(selection: Selection) -> list[str]:
    """Selected modules that were imported before the hook and therefore run plain code."""
    out = []
    for name, mod in list(sys.modules.items()):
        origin = getattr(mod, '__file__', None)
        if origin and origin.endswith('.py') and selection.selects(name, origin):
            out.append(name)
    return sorted(out)

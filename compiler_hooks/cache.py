"""Cache of rewritten code objects, like `.pyc` files but never confused with them.

Counterpart: `hook` (reads through `load`/`store`).  Invariant: an entry is used only if its
header matches this interpreter (full `sys.version`, import magic, optimisation level), this
rewriter version and the bytes of every module of this package, and a hash of the source *path
and bytes*; anything else is treated as absent and overwritten.  Entries are written atomically (temporary file + rename).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import marshal
import os
import sys
import sysconfig
import time
from types import CodeType

from .rewriter import REWRITER_VERSION

FILE_MAGIC = b'STASISRW'
FORMAT_VERSION = 1


def package_digest(directory: str) -> bytes:
    """Hash of every module of the package in `directory` (names and bytes, in name order).  The
    rewriter is this whole package (rewriter, sites, scopes, lowering, resume_points,
    ...): hashing all of it, rather than a list of names, means a module added by a later split
    is covered too (tests/compiler_hooks/test_hook.py checks that the rewriter imports nothing
    of Stasis from outside the package)."""
    h = hashlib.sha256()
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith('.py'))
    except OSError:
        names = []
    for name in names:
        h.update(name.encode() + b'\0')
        try:
            with open(os.path.join(directory, name), 'rb') as f:
                h.update(hashlib.sha256(f.read()).digest())
        except OSError:
            h.update(b'unreadable')
    return h.digest()


@functools.lru_cache(maxsize=None)
def _rewriter_digest() -> bytes:
    """So that an edited rewriter never reads entries of its previous self even if
    REWRITER_VERSION was not bumped."""
    return package_digest(os.path.dirname(os.path.abspath(__file__)))


def _interpreter_id() -> bytes:
    # 3.11.x patch releases compile some code differently without a magic bump (CPYTHON311 §8),
    # so the full version string is part of the key, not only MAGIC_NUMBER.
    return hashlib.sha256(b'\0'.join([
        sys.version.encode(), importlib.util.MAGIC_NUMBER, str(sys.flags.optimize).encode(),
        _rewriter_digest(),
    ])).digest()[:16]


@functools.lru_cache(maxsize=None)
def _suffix() -> str:
    """The entry's file suffix names the interpreter and rewriter (`_interpreter_id`): two Stasis
    builds or versions on one machine keep entries of their own instead of overwriting each
    other's at every start (each would find the other's header and rewrite again)."""
    return f'.{sys.implementation.cache_tag}.stasis{REWRITER_VERSION}-{_interpreter_id()[:5].hex()}.pyc'


def source_key(path: str, data: bytes) -> bytes:
    return hashlib.sha256(os.path.abspath(path).encode('utf-8', 'surrogateescape') + b'\0' + data).digest()


def _header(key: bytes) -> bytes:
    return (FILE_MAGIC + FORMAT_VERSION.to_bytes(2, 'little') + REWRITER_VERSION.to_bytes(2, 'little')
            + _interpreter_id() + key)


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.realpath(p) + os.sep for p in {paths['stdlib'], paths['platstdlib']})


def user_cache_dir() -> str:
    base = os.environ.get('STASIS_CACHE_DIR')
    if base:
        return base
    xdg = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(xdg, 'stasis', 'rewrite')


def cache_path(source_path: str, variant: str = '') -> str:
    """Where the entry for `source_path` lives (`variant`: another form of the same module's code,
    such as the crash-handled one of --snapshot-on-crash, kept in a file of its own): its `__pycache__` when that directory is
    writable, not part of the Python installation and bytecode writing is not disabled
    (PYTHONDONTWRITEBYTECODE / -B: nothing is written into source trees then); else the
    per-user cache directory, mirroring the absolute source path like PYTHONPYCACHEPREFIX.
    $STASIS_CACHE_DIR replaces the per-user directory and is then always used."""
    src = os.path.abspath(source_path)
    head, tail = os.path.split(src)
    stem = tail.rsplit('.', 1)[0] + (f'.{variant}' if variant else '')
    real = os.path.realpath(head) + os.sep
    if (not os.environ.get('STASIS_CACHE_DIR') and not sys.dont_write_bytecode
            and not real.startswith(_stdlib_dirs())):
        pyc_dir = os.path.join(head, '__pycache__')
        if os.access(pyc_dir if os.path.isdir(pyc_dir) else head, os.W_OK):
            return os.path.join(pyc_dir, stem + _suffix())
    return os.path.join(user_cache_dir(), real.lstrip(os.sep), stem + _suffix())


def load(source_path: str, key: bytes, variant: str = '') -> CodeType | None:
    """The cached code for this source, or None when there is no valid entry."""
    try:
        with open(cache_path(source_path, variant), 'rb') as f:
            data = f.read()
    except OSError:
        return None
    header = _header(key)
    if not data.startswith(header):
        return None
    try:
        code = marshal.loads(data[len(header):])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


# An entry of the same source left by another Stasis version or interpreter (another suffix) is
# removed when an entry is written and it was not written for this long: upgrades do not pile up
# entries forever, and two builds used side by side keep theirs (each rewrites its own now and then).
STALE_SECONDS = 30 * 86400


def store(source_path: str, key: bytes, code: CodeType, variant: str = '') -> None:
    """Write an entry; failures (read-only places, races) only cost a rewrite next time."""
    path = cache_path(source_path, variant)
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, 'wb') as f:
            f.write(_header(key) + marshal.dumps(code))
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    _remove_stale_siblings(path)


def _remove_stale_siblings(path: str) -> None:
    directory, name = os.path.split(path)
    stem = name[:len(name) - len(_suffix())]
    prefix = f'{stem}.{sys.implementation.cache_tag}.stasis'
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for other in names:
        if other == name or not other.startswith(prefix) or not other.endswith('.pyc'):
            continue
        try:
            full = os.path.join(directory, other)
            if now - os.stat(full).st_mtime > STALE_SECONDS:
                os.unlink(full)
        except OSError:
            pass

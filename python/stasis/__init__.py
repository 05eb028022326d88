"""Stasis: suspend a running CPython 3.11 program into a snapshot and resume it elsewhere.

Object graphs:  dumps(obj) -> bytes, loads(data), dump(obj, path), load(path)
Type handlers:  register(type, save, load)
Module state:   module_state(module), restore_module_state(module, state)
Programs:       suspend(path=None), checkpoint(path) -> bool   (see `stasis run`)
Errors:         StasisError and its subclasses (stasis.errors)
"""
from __future__ import annotations

import os
import sys

from . import _engine
from .errors import (EXIT_SUSPENDED, CorruptSnapshotError, IncompatibleSnapshotError,
                     NotASnapshotError, NotAvailableError, NotSuspendableError, SignatureError,
                     SnapshotError, SnapshotIOError, StasisError, TruncatedSnapshotError,
                     UnsupportedObjectError, BY_CODE)

TYPE_CHECKING = False  # typing is not imported at run time: the launcher imports this package first
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Dict, Optional, Tuple, Union
    PathLike = Union[str, bytes, "os.PathLike[str]"]

__all__ = [
    "dumps", "loads", "dump", "load", "inspect", "suspend", "checkpoint", "register",
    "register_module_state", "module_state", "restore_module_state",
    "StasisError", "SnapshotError", "NotASnapshotError", "TruncatedSnapshotError",
    "CorruptSnapshotError", "IncompatibleSnapshotError", "SignatureError",
    "UnsupportedObjectError", "NotAvailableError", "SnapshotIOError", "NotSuspendableError",
    "EXIT_SUSPENDED", "FORMAT_VERSION", "__version__", "serve_updates",
]

_engine.register_error_classes(BY_CODE)



def serve_updates() -> None:
    """Serve live updates (`stasis ctl PID ...`) from this process (idempotent)."""
    from .updater.control import serve_updates as serve  # imported on use: threading, sockets
    serve()

FORMAT_VERSION: int = _engine.FORMAT_VERSION
__version__: str = _engine.ENGINE_VERSION


def read_key(key_file: Optional[PathLike] = None) -> Optional[bytes]:
    """The signing key: the bytes of `key_file`, else of $STASIS_KEY_FILE, else None."""
    path = key_file if key_file is not None else os.environ.get("STASIS_KEY_FILE") or None
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            key = f.read()
    except OSError as e:
        raise SnapshotIOError(f"cannot read key file {os.fsdecode(path)}: {e.strerror}") from None
    if not key:
        raise SnapshotIOError(f"key file {os.fsdecode(path)} is empty")
    return key


def dumps(obj: Any, *, key_file: Optional[PathLike] = None, level: int = 3) -> bytes:
    """Snapshot the object graph reachable from `obj` into bytes (a complete snapshot file)."""
    _ensure_builtin_handlers()
    return _engine.dumps(obj, key=read_key(key_file), level=level)


def loads(data: bytes, *, key_file: Optional[PathLike] = None) -> Any:
    """Rebuild an object graph from `dumps` output, validating it completely first."""
    _ensure_builtin_handlers()
    return _engine.loads(data, key=read_key(key_file))


def dump(obj: Any, path: PathLike, *, key_file: Optional[PathLike] = None, level: int = 3) -> None:
    """Write a snapshot of `obj` to `path` atomically (an existing file is replaced only when the
    new one is complete and durable)."""
    _ensure_builtin_handlers()
    _engine.dump(obj, path, key=read_key(key_file), level=level)


def load(path: PathLike, *, key_file: Optional[PathLike] = None) -> Any:
    """Read the object graph of the snapshot at `path`, validating it completely first."""
    _ensure_builtin_handlers()
    return _engine.load(path, key=read_key(key_file))


def inspect(path: PathLike, *, key_file: Optional[PathLike] = None) -> dict:
    """Describe a snapshot: preamble fields, sizes and a summary of its records."""
    return _engine.inspect(path, key=read_key(key_file))


def register(type_: type, save: Callable[[Any], Any], load: Callable[[Any], Any], *,
             key: Optional[str] = None) -> None:
    """Capture instances of `type_` (and its subclasses) as `save(obj)` and rebuild them with
    `load(state)`. The state is any object Stasis can capture. The snapshot stores `key` (default:
    "module.qualname" of the type); loading needs a handler registered under the same key and calls
    nothing else for these objects. Cycles through the state back to the object are not supported."""
    if key is None:
        key = f"{type_.__module__}.{type_.__qualname__}"
    _engine.register(type_, key, save, load)
    module = sys._getframe(1).f_globals.get("__name__")
    if isinstance(module, str) and module != "stasis" and not module.startswith("stasis."):
        _registrations[key] = HandlerRegistration(type_, key, save, load, module)


class HandlerRegistration:
    """A handler the program registered (stasis.register), and the module that did. A suspended
    program carries those of its own modules in its snapshot, ahead of every other object, so
    that resuming registers them before any object needs them (handlers of other modules: resume
    imports those modules, which register them again). `needs` holds the module globals that the
    save and load functions use (functions, classes, constants), set into the program's module
    while the snapshot loads: the module's other globals are only filled in after."""

    def __init__(self, type_: type, key: str, save: Callable, load: Callable, module: str,
                 needs: Optional[dict] = None) -> None:
        self.type, self.key, self.save, self.load, self.module = type_, key, save, load, module
        self.needs = needs if needs is not None else {}


# {key: HandlerRegistration} of the handlers registered by modules other than Stasis's own.
_registrations: Dict[str, HandlerRegistration] = {}


def _save_registration(r: HandlerRegistration) -> tuple:
    return (r.type, r.key, r.save, r.load, r.module, _globals_used(r.save, r.load))


def _load_registration(state: tuple) -> HandlerRegistration:
    type_, key, save, load, module, needs = state
    target = sys.modules.get(module)
    if target is not None:
        for name, value in needs.items():
            vars(target).setdefault(name, value)
    _engine.register(type_, key, save, load)
    r = _registrations[key] = HandlerRegistration(type_, key, save, load, module, needs)
    return r


_SIMPLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def _globals_used(*funcs: Callable) -> dict:
    """The globals of the functions' module that they (and the functions of that module they
    call) name: functions, classes, modules and constants."""
    import types
    out: dict = {}
    todo = [f for f in funcs if isinstance(f, types.FunctionType)]
    seen: set = set()
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        g = f.__globals__
        codes = [f.__code__]
        while codes:
            code = codes.pop()
            codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            for name in code.co_names:
                if name in out or name not in g:
                    continue
                value = g[name]
                if isinstance(value, (types.FunctionType, type, types.ModuleType)) or (
                        isinstance(value, _SIMPLE) and not isinstance(value, (tuple, frozenset))):
                    out[name] = value
                    if isinstance(value, types.FunctionType) and value.__globals__ is g:
                        todo.append(value)
    return out



def register_module_state(name: str, save: Callable[[ModuleType], Any],
                          load: Callable[[ModuleType, Any], None]) -> None:
    """State of library module `name` to keep across a snapshot (e.g. random's global generator):
    save(module) -> state, load(module, state). A suspended program keeps the registered state of
    every such module it has imported."""
    from . import modules
    modules.register_state(name, save, load)


_builtins_registered = False
_module_handlers_registered: set = set()


def _ensure_builtin_handlers() -> None:
    """Registers the built-in handlers (locks, weak containers, files...) and module states on
    first use, not at import: importing stasis must not import threading, queue or socket before
    `stasis run` installs its import hook (so those modules are rewritten, compiler_hooks). The
    handlers of a library module's types (logging, subprocess, asyncio) are registered on the
    first call after the program imported that module."""
    global _builtins_registered
    from . import handlers
    if not _builtins_registered:
        _builtins_registered = True
        register(HandlerRegistration, _save_registration, _load_registration, key="stasis.registration")
        for type_, (key, save, load_) in handlers.builtin_handlers().items():
            register(type_, save, load_, key=key)
        for name, (msave, mload) in handlers.builtin_module_states().items():
            register_module_state(name, msave, mload)
        _engine.set_handler_finder(_find_module_handler)
    for module, make in handlers.MODULE_HANDLERS.items():
        if module in _module_handlers_registered or module not in sys.modules:
            continue
        _module_handlers_registered.add(module)
        for type_, (key, save, load_) in make().items():
            register(type_, save, load_, key=key)


def _find_module_handler(key: str) -> bool:
    """Whether built-in handler `key` is registered now, its library module imported for it (the
    engine asks for a key no handler has: a snapshot of numpy arrays loaded by a process that has
    not imported numpy). False for a key of no such module, or a module not installed here (the
    load then says that no handler of that name is registered)."""
    from . import handlers
    module = handlers.MODULE_OF_KEY.get(key) if isinstance(key, str) else None
    if module is None:
        return False
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    _ensure_builtin_handlers()
    return True


def module_state(module: ModuleType) -> Tuple[str, str, Any]:
    """The state of `module` to keep across a snapshot (stasis/modules.py decides what is a user
    module): ("user", name, {global: value}) with all globals of a user module (module metadata
    aside; values that are modules, or classes and functions importable by name, are written by
    reference by dumps), ("library", name, state) for a library module with registered state, or
    ("library", name, None)."""
    from . import modules
    _ensure_builtin_handlers()
    return modules.module_state(module)


def restore_module_state(module: ModuleType, state: Tuple[str, str, Any]) -> None:
    """Apply `module_state(...)` output (after loads) to the re-imported module."""
    from . import modules
    _ensure_builtin_handlers()
    modules.restore_module_state(module, state)


def suspend(path: Optional[PathLike] = None) -> None:
    """Suspend the whole program at its next safe point (the line after this call) into a
    snapshot, and exit with status 75. Needs a program started with `stasis run`."""
    from . import program
    program.suspend(None if path is None else os.fsdecode(path))


def checkpoint(path: PathLike) -> bool:
    """Write a snapshot of the whole program to `path` and go on. Returns False in the run that
    wrote it, and True when execution continues from that snapshot (`stasis resume path`).
    Needs a program started with `stasis run`."""
    import sys as _sys
    from . import program
    return program.checkpoint(os.fsdecode(path), _sys._getframe(1))

"""Built-in handlers (stasis.register) for library types that pickle cannot capture, and the
module-state registrations for library modules. Each save function returns plain data; each load
function rebuilds the object from it. Loading calls only these functions, by their key.
"""
from __future__ import annotations

import _thread
import io
import os
import re
import sys
import threading
import weakref
from typing import Any, Callable, Dict, Tuple

from .errors import SnapshotIOError

# ---- threading ----------------------------------------------------------------------------------


def _save_lock(lock: Any) -> bool:
    return lock.locked()


def _load_lock(locked: bool) -> Any:
    lock = _thread.allocate_lock()
    if locked:
        lock.acquire()
    return lock


_RLOCK_STATE = re.compile(r"owner=(\d+) count=(\d+)")


def _save_rlock(lock: Any) -> int:
    # The C RLock exposes its owner and count only in its repr. Only the count is kept: the owner
    # is a thread of the writing process (see _load_rlock).
    m = _RLOCK_STATE.search(repr(lock))
    return int(m.group(2)) if m else 0


def _load_rlock(count: int) -> Any:
    """The restored RLock is held `count` times by the thread that loads it, whichever thread
    held it when it was dumped (thread identities do not survive a snapshot). That thread must
    release it `count` times; other threads block on it until then. `stasis resume` loads on the
    program's main thread, the only thread a suspended program has, so its held RLocks come back
    held by the thread that held them. An RLock that was not held comes back free."""
    lock = _thread.RLock()
    for _ in range(count):
        lock.acquire()
    return lock


def _save_condition(cond: threading.Condition) -> Any:
    # Only the lock (with its held state) is kept. Waiters are threads of the writing process
    # blocked in wait(): none of them exists after loading, so the restored Condition has none,
    # and notify() on it wakes nobody until a thread of the loading process waits.
    return cond._lock


def _load_condition(lock: Any) -> threading.Condition:
    return threading.Condition(lock)


# ---- weak containers: referents are written strongly and die after loading unless held --------


def _save_wvd(d: weakref.WeakValueDictionary) -> dict:
    return dict(d.items())


def _save_wkd(d: weakref.WeakKeyDictionary) -> list:
    return list(d.items())


def _save_weakset(s: weakref.WeakSet) -> list:
    return list(s)


# ---- open files ---------------------------------------------------------------------------------

_STD = {"<stdin>": "stdin", "<stdout>": "stdout", "<stderr>": "stderr"}


def _save_file(f: Any) -> Tuple:
    name = getattr(f, "name", None)
    if isinstance(name, str) and name in _STD:
        return ("std", _STD[name])
    if not isinstance(name, (str, bytes)):
        raise TypeError(f"an open file without a path (name={name!r}) cannot be reopened")
    closed = f.closed
    position = None
    if not closed:
        if f.writable():
            f.flush()
        position = f.tell()
    text = isinstance(f, io.TextIOBase)
    return ("file", os.path.abspath(os.fsdecode(name)), f.mode, position, closed, text,
            getattr(f, "encoding", None) if text else None, getattr(f, "errors", None) if text else None,
            type(f).__name__)


def _load_file(state: Tuple) -> Any:
    if state[0] == "std":
        return getattr(sys, state[1])
    _, path, mode, position, closed, text, encoding, errors, _kind = state
    # Reopen without truncating what the old process wrote: "w"/"x" become "r+".
    reopen = mode.replace("w", "r+").replace("x", "r+").replace("++", "+")
    if "b" not in reopen and not text:
        reopen += "b"
    try:
        f = open(path, reopen, encoding=encoding, errors=errors) if text else open(path, reopen)
    except FileNotFoundError:
        raise SnapshotIOError(f"cannot reopen file {path!r} (mode {mode!r}) saved in the snapshot: "
                              "it no longer exists") from None
    except OSError as e:
        raise SnapshotIOError(f"cannot reopen file {path!r} (mode {mode!r}) saved in the snapshot: "
                              f"{e.strerror}") from None
    if position is not None and "a" not in mode:
        f.seek(position)
    if closed:
        f.close()
    return f


# ---- Enum classes that cannot be found by name (defined inside a function, or by Enum(...)) -----
# The class machinery of enum needs its own namespace type, so the generic Class op cannot rebuild
# them. The ones whose body holds nothing but members are rebuilt by enum's functional API on
# their base, `Base(name, [(member, value)...], module=, qualname=, boundary=)`: the base's
# methods (an importable Enum subclass without members: Enum, IntEnum, Flag, a user's base) are
# kept; a body with methods, _ignore_, properties... is refused when dumping (snapshot/class_encoder.cpp).


class EnumClassByValue:
    """Key of the handler that loads such classes; never instantiated (the writer emits its
    Registered op from snapshot/class_encoder.cpp, for classes only)."""


def _functional_enum(base: Any, name: str, module: Any, qualname: str, members: list,
                     boundary: Any) -> Any:
    import enum
    kwargs: Dict[str, Any] = {"module": module, "qualname": qualname}
    if issubclass(base, enum.Flag):
        kwargs["boundary"] = boundary
    return base(name, members, **kwargs)


def save_enum_class(cls: Any) -> Tuple[Any, ...]:
    """(base, name, module, qualname, [(member, value)...], boundary, doc), or TypeError saying
    why the class cannot be rebuilt that way."""
    bases = cls.__bases__
    if len(bases) != 1 or len(bases[0].__members__) != 0:
        raise TypeError("it has several bases or its base has members")
    base = bases[0]
    members = [(n, m._value_) for n, m in cls.__members__.items()]
    boundary = getattr(cls, "_boundary_", None)
    rebuilt = _functional_enum(base, cls.__name__, cls.__module__, cls.__qualname__, members,
                               boundary)
    extra = sorted(set(vars(cls)) ^ set(vars(rebuilt)))
    if extra:
        raise TypeError("its body defines more than members: " + ", ".join(extra))
    if [(n, m._value_) for n, m in rebuilt.__members__.items()] != members:
        raise TypeError("its members do not come back from their values")
    return (base, cls.__name__, cls.__module__, cls.__qualname__, members, boundary, cls.__doc__)


def _load_enum_class(state: Tuple[Any, ...]) -> Any:
    base, name, module, qualname, members, boundary, doc = state
    cls = _functional_enum(base, name, module, qualname, members, boundary)
    if doc is not None and cls.__doc__ != doc:
        cls.__doc__ = doc
    return cls


def builtin_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """{type: (key, save, load)} registered by stasis at import."""
    h: Dict[type, Tuple[str, Callable, Callable]] = {
        _thread.LockType: ("stasis.lock", _save_lock, _load_lock),
        _thread.RLock: ("stasis.rlock", _save_rlock, _load_rlock),
        threading.Condition: ("stasis.condition", _save_condition, _load_condition),
        weakref.WeakValueDictionary: ("stasis.weakvaluedict", _save_wvd, weakref.WeakValueDictionary),
        weakref.WeakKeyDictionary: ("stasis.weakkeydict", _save_wkd, weakref.WeakKeyDictionary),
        weakref.WeakSet: ("stasis.weakset", _save_weakset, weakref.WeakSet),
        EnumClassByValue: ("stasis.enum_class", save_enum_class, _load_enum_class),
    }
    for t in (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO):
        h[t] = ("stasis.file", _save_file, _load_file)
    if threading.RLock is not _thread.RLock:  # the pure-Python fallback, if ever used
        pass
    return h


# ---- module state: library modules keep only registered state ----------------------------------


def _save_random_module(module: Any) -> Any:
    return module._inst.getstate()


def _load_random_module(module: Any, state: Any) -> None:
    module._inst.setstate(state)


def _save_threading_module(module: Any) -> Any:
    # threading._counter = itertools.count(1).__next__ numbers new threads ("Thread-7").
    return module._counter.__self__


def _load_threading_module(module: Any, counter: Any) -> None:
    module._counter = counter.__next__


def builtin_module_states() -> Dict[str, Tuple[Callable, Callable]]:
    """{module name: (save(module) -> state, load(module, state))}."""
    return {"random": (_save_random_module, _load_random_module),
            "threading": (_save_threading_module, _load_threading_module)}

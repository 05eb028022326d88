"""The API of update files (`stasis.update`): redefine, add_field, convert, instrument.

An update file is a module run in the target process by `stasis ctl PID apply FILE`. Its calls
plan changes; when the file has run, all of them are applied together at one safe point (or none
is). Called outside an update file, each call is an update of its own, applied at once.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from .errors import UpdateError, UpdateRefusedError
from .instrument import Probe
from .layers import (DEFAULT_TIMEOUT, Conversion, FieldAdd, LazyField, SafePoint, Update, layers)
from .targets import MISSING, describe_code, innermost_function, resolve, result_caches

__all__ = ["redefine", "add_field", "convert", "instrument", "map_frame", "revert", "list_updates", "apply_file"]

_local = threading.local()
_CLASS_SKIP = {"__dict__", "__weakref__", "__module__", "__qualname__"}


@contextlib.contextmanager
def _update(source: str = "api") -> Iterator[Update]:
    """The update being planned: the one of the running update file, or a fresh one-call update."""
    current = getattr(_local, "update", None)
    if current is not None:
        yield current
        return
    u = layers.new_update(source)
    _local.update = u
    try:
        yield u
    except BaseException:
        layers.forget_plan(u)
        raise
    finally:
        _local.update = None
    layers.apply(u)


def _policy(u: Update, safepoint: SafePoint, timeout: Optional[float]) -> None:
    if safepoint == "quiescent":
        u.check_codes = True
    elif callable(safepoint):
        u.checks.append(safepoint)
    elif safepoint != "immediate":
        raise UpdateRefusedError(f"safepoint must be 'quiescent', 'immediate' or a check function, not {safepoint!r}")
    if timeout is not None:
        u.timeout = max(u.timeout if u.timeout != DEFAULT_TIMEOUT else 0.0, float(timeout))


def redefine(target: Any, new: Any, *, safepoint: SafePoint = "quiescent",
             timeout: Optional[float] = None) -> int:
    """Replace a function, method or class in place, keeping identity: every function object made
    from the old code gets the new code, defaults and kwdefaults; a class keeps its identity and
    gets the new class's methods (swapped the same way) and attributes. A name that does not exist
    yet is added. Returns the update id."""
    with _update() as u:
        _policy(u, safepoint, timeout)
        t = resolve(target, allow_missing=True)
        if t.value is MISSING:
            layers.plan_attr(u, t.owner, t.attr, new)
            u.actions.append(f"add {t.name}")
        elif isinstance(t.value, type):
            if not isinstance(new, type):
                raise UpdateRefusedError(f"redefine {t.name}: it is a class, the replacement is {type(new).__name__}")
            _plan_class(u, t.name, t.value, new)
            u.actions.append(f"redefine class {t.name}")
        else:
            old_fn, new_fn = innermost_function(t.value), innermost_function(new)
            if old_fn is None or new_fn is None:
                raise UpdateRefusedError(f"redefine {t.name}: both the target ({type(t.value).__name__}) and the "
                                         f"replacement ({type(new).__name__}) must be functions or classes")
            layers.plan_redefine(u, t.name, old_fn, new_fn)
            u.caches.extend(result_caches(t.value))
            u.actions.append(f"redefine {t.name}")
        return u.id


def _plan_class(u: Update, name: str, old: type, new: type) -> None:
    for attr, value in new.__dict__.items():
        if attr in _CLASS_SKIP:
            continue
        current = old.__dict__.get(attr, MISSING)
        old_fn, new_fn = innermost_function(current), innermost_function(value)
        if old_fn is not None and new_fn is not None and type(current) is type(value):
            layers.plan_redefine(u, f"{name}.{attr}", old_fn, new_fn)
            u.caches.extend(result_caches(current))
        else:
            layers.plan_attr(u, old, attr, _rebind_class_cell(value, new, old))


def _rebind_class_cell(value: Any, new: type, old: type) -> Any:
    """A function added from the new class whose `__class__` cell (super()) names the new class
    gets a copy bound to the class that is updated in place."""
    fn = innermost_function(value)
    if fn is None or "__class__" not in fn.__code__.co_freevars or value is not fn and not isinstance(value, (staticmethod, classmethod)):
        return value
    cells = tuple(types.CellType(old) if n == "__class__" and c.cell_contents is new else c
                  for n, c in zip(fn.__code__.co_freevars, fn.__closure__))
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, cells)
    copy.__kwdefaults__, copy.__qualname__, copy.__doc__ = fn.__kwdefaults__, fn.__qualname__, fn.__doc__
    copy.__dict__.update(fn.__dict__)
    return type(value)(copy) if isinstance(value, (staticmethod, classmethod)) else copy


def add_field(target: str, init: Callable[[Any], Any], *, lazy: bool = False,
              safepoint: SafePoint = "immediate", timeout: Optional[float] = None) -> int:
    """Give every existing instance of a class (and subclasses) a new attribute: "pkg.mod.Class.name".
    init(instance) computes its value: for all instances at once (lazy=False; one heap scan) or on
    the first access of the field (lazy=True). Returns the update id."""
    cls_name, _, field_name = target.rpartition(".")
    with _update() as u:
        _policy(u, safepoint, timeout)
        cls = resolve(cls_name).value
        if not isinstance(cls, type):
            raise UpdateRefusedError(f"add_field {target}: {cls_name} is not a class")
        if not cls.__dictoffset__:
            raise UpdateRefusedError(f"add_field {target}: instances of {cls_name} have no __dict__ (__slots__)")
        u.fields.append(FieldAdd(cls, field_name, init, lazy))
        # Lazy or eager, the field is a lazy descriptor from the commit on: an instance touched
        # before the eager pass reaches it computes its value itself.
        layers.plan_attr(u, cls, field_name, LazyField(field_name, init))
        u.actions.append(f"add_field {target} ({'lazy' if lazy else 'eager'})")
        return u.id


def convert(target: Any, to: Union[type, Callable[[Any], Any]], *, lazy: bool = False,
            undo: Optional[Callable[[Any], Any]] = None, safepoint: SafePoint = "immediate",
            timeout: Optional[float] = None) -> int:
    """Convert every existing instance of a class: `to` is a function converting an instance in
    place, or a new class (instances get it as __class__ and its __convert__(self) runs). Eagerly
    (one heap scan) or lazily, on each instance's first attribute access. Revertible only with
    undo(instance). Returns the update id."""
    with _update() as u:
        _policy(u, safepoint, timeout)
        t = resolve(target)
        if not isinstance(t.value, type):
            raise UpdateRefusedError(f"convert {t.name}: not a class")
        u.conversions.append(Conversion(t.value, to, lazy, undo))
        if undo is None:
            u.not_revertible = f"convert({t.name}) has no undo= function"
        u.actions.append(f"convert {t.name} ({'lazy' if lazy else 'eager'})")
        return u.id


def instrument(target: Any, *, before: Optional[Callable] = None, after: Optional[Callable] = None,
               on_exception: Optional[Callable] = None, line: Optional[int] = None,
               safepoint: SafePoint = "immediate", timeout: Optional[float] = None) -> int:
    """Run callbacks at a function's call (before), return (after), exception (on_exception), or
    before a given source line (line=N with before). Callbacks get only the keyword arguments they
    name: the function's arguments by name, `arguments` (dict), `return_value`, `exception`,
    `function`, `thread`; at a line, the frame's locals by name (copies of the references) and
    `locals`. They never run in the function's frame. Returns the update id."""
    with _update() as u:
        _policy(u, safepoint, timeout)
        t = resolve(target)
        fn = innermost_function(t.value)
        if fn is None:
            raise UpdateRefusedError(f"instrument {t.name}: not a function")
        if line is not None:
            code = layers.current_code(fn)
            lines = {l for _, _, l in code.co_lines() if l is not None}
            if line not in lines:
                raise UpdateRefusedError(f"instrument {t.name}: line {line} is not a line of {describe_code(code)}")
            if before is None or after is not None or on_exception is not None:
                raise UpdateRefusedError(f"instrument {t.name}: with line= give only before=")
        layers.plan_probe(u, t.name, fn, Probe(u.id, t.name, before, after, on_exception, line))
        u.actions.append(f"instrument {t.name}" + (f" line {line}" if line is not None else ""))
        return u.id


def map_frame(function: Any, line: Optional[int] = None, *, to_line: Optional[int] = None,
              rename: Optional[Dict[str, str]] = None,
              init: Optional[Dict[str, Callable[[Dict[str, Any]], Any]]] = None) -> None:
    """In a patch of a suspended program (`stasis patch`, `stasis resume --patch`): how the frames
    of `function` ("module.func", "module.Class.method" or the function) that are suspended at
    old line `line` (None: all of them) continue in its new code. `to_line`: the line of the new
    code where they continue — for the innermost frame, the statement starting there; for a
    frame suspended in a call, the call of the same callee in that statement (None: found by
    matching the two versions). `rename`: {old local name: new name}. `init`: {new local name:
    f(locals) -> value} for locals the old frame did not have (they start unbound otherwise).
    Without this, a frame whose statement was deleted or whose call changed its callee is refused."""
    u = getattr(_local, "update", None)
    if u is None or not u.snapshot:
        raise UpdateRefusedError("map_frame applies to patches of suspended programs (stasis patch, stasis resume "
                                 "--patch); the frames of a live process finish on their old code")
    from .frame_map import FrameRule
    if isinstance(function, str):
        module, qualname = _split_target(function)
    else:
        fn = innermost_function(function)
        if fn is None:
            raise UpdateRefusedError(f"map_frame: {function!r} is not a function")
        module, qualname = fn.__module__, fn.__code__.co_qualname
    for what, value in (("rename", rename), ("init", init)):
        if value is not None and not isinstance(value, dict):
            raise UpdateRefusedError(f"map_frame({function!r}): {what} must be a dict")
    if init and not all(callable(f) for f in init.values()):
        raise UpdateRefusedError(f"map_frame({function!r}): each init value must be a function of the frame's "
                                 "locals (a dict) returning the value")
    u.frame_rules.append(FrameRule(module, qualname, line, to_line, dict(rename or {}), dict(init or {})))
    u.actions.append(f"map_frame {module}.{qualname}" + (f" line {line}" if line is not None else "")
                     + (f" -> line {to_line}" if to_line is not None else ""))


def _split_target(name: str) -> tuple:
    """("module", "qualname") of "module.Class.method": the longest loaded module prefix."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:cut]) in sys.modules:
            return ".".join(parts[:cut]), ".".join(parts[cut:])
    raise UpdateRefusedError(f"map_frame: no module of the program is a prefix of {name!r}")


def revert(update_id: int) -> None:
    """Revert one applied update (any of them, in any order), at the safe point it was applied with."""
    layers.revert(update_id)


def list_updates() -> List[dict]:
    return [u.describe() for u in sorted(layers.updates.values(), key=lambda u: u.id)]


def apply_file(path: str, source: str) -> Update:
    """Run an update file's source as a fresh module and apply what it planned, atomically."""
    if getattr(_local, "update", None) is not None:
        raise UpdateError("an update file cannot apply another update file")
    u = layers.new_update(path)
    module = types.ModuleType(f"stasis_update_{u.id}")
    module.__file__ = path
    # Registered like any module: functions and classes an update adds live on and name it in
    # their __module__ (pickle, inspect and snapshots look it up there).
    sys.modules[module.__name__] = module
    _local.update = u
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    except BaseException:
        layers.forget_plan(u)
        sys.modules.pop(module.__name__, None)
        raise
    finally:
        _local.update = None
    if not u.actions:
        sys.modules.pop(module.__name__, None)
        raise UpdateRefusedError(f"{path} planned no change (call stasis.update.redefine/add_field/convert/instrument)")
    try:
        layers.apply(u)
    except BaseException:
        sys.modules.pop(module.__name__, None)
        raise
    return u


# The package exports this API (updater/__init__.py imports this module on first use): set here, once
# this module is complete, so that the submodule `instrument` it imported does not stand in for the
# function of that name.
for _name in sys.modules[__package__]._API:
    setattr(sys.modules[__package__], _name, globals()[_name])
del _name

"""Applied updates and everything they changed, kept as layers so that any update can be reverted
in any order: a function's code is the code of its newest remaining redefine (or its original),
wrapped when instruments are active; an attribute's value is its newest remaining setting (or its
original). A revert removes one update's layers and installs what the rest add up to.

Every apply and revert goes through one commit in C++ (updater/function_swap.cpp): safe-point
check, swap of code/defaults/kwdefaults on every function object running a replaced code (one heap
scan for the whole update), attribute changes — with no Python code running in between.
"""
from __future__ import annotations

import inspect
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from .. import _engine
from ..compiler_hooks import bytecode
from .errors import NotQuiescentError, UpdateError, UpdateRefusedError
from .instrument import Hooks, Probe, build_wrapper, inject_profile, instrumentable
from .targets import MISSING

SafePoint = Union[str, Callable[[], bool]]
DEFAULT_TIMEOUT = 10.0
TOOL_SOURCES = ("profile", "trace", "watch", "lines")   # updates made by `stasis ctl` tools
_RETRY_PAUSE = 0.002  # between safe-point attempts; releases the GIL so busy threads can leave


# --- what an update changes ----------------------------------------------------------------------

@dataclass
class Layer:
    update_id: int
    code: types.CodeType
    defaults: Optional[tuple]
    kwdefaults: Optional[dict]


class FunctionGroup:
    """Every function object made from one original code (closures, decorator-held copies...)."""

    def __init__(self, name: str, fn: types.FunctionType):
        self.name = name
        self.base = Layer(0, fn.__code__, fn.__defaults__, fn.__kwdefaults__)
        self.layers: List[Layer] = []
        self.probes: List[Probe] = []
        self.profiles: List[Tuple[int, str]] = []
        self.installing: Optional[types.CodeType] = None   # the code of the last swap() entry
        # Every code its functions may run now, by identity (code objects compare equal by value:
        # two modules compiled from the same source have "equal" codes).
        self.codes: Dict[int, types.CodeType] = {id(fn.__code__): fn.__code__}

    def current(self) -> Layer:
        return self.layers[-1] if self.layers else self.base

    def swap(self) -> tuple:
        """The commit's swap entry installing what the remaining layers add up to: the current
        layer's code, with the profile prologue injected when profiled, wrapped when probed."""
        cur = self.current()
        froms = tuple(self.codes.values())
        code, wrapper_key = cur.code, None
        if self.profiles:
            key = self.profiles[-1][1]
            injected = inject_profile(cur.code, key)
            if injected is not None:
                code = injected
            elif cur.code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE):
                raise UpdateRefusedError(f"profile {key}: cannot add the profile prologue to this generator or coroutine")
            else:
                wrapper_key = key   # unusual code layout: time the calls from a wrapper instead
        if self.probes:
            wrapper, slot = build_wrapper(code, hooks=Hooks(list(self.probes), code, wrapper_key))
        elif wrapper_key is not None:
            wrapper, slot = build_wrapper(code, profile_key=wrapper_key)
        else:
            self.installing = code
            return (froms, code, cur.defaults, cur.kwdefaults, None, -1)
        self.installing = wrapper
        return (froms, wrapper, cur.defaults, cur.kwdefaults, code, slot)

    def drop(self, update_id: int) -> None:
        self.layers = [l for l in self.layers if l.update_id != update_id]
        self.probes = [p for p in self.probes if p.update_id != update_id]
        self.profiles = [p for p in self.profiles if p[0] != update_id]


class AttrSlot:
    """One attribute of a module or class that updates set (MISSING: absent)."""

    def __init__(self, owner: Any, name: str):
        self.owner = owner
        self.name = name
        d = owner.__dict__
        self.base = d[name] if name in d else MISSING
        self.layers: List[Tuple[int, Any]] = []

    def change(self) -> tuple:
        value = self.layers[-1][1] if self.layers else self.base
        return (self.owner, self.name) if value is MISSING else (self.owner, self.name, value)

    def drop(self, update_id: int) -> None:
        self.layers = [l for l in self.layers if l[0] != update_id]


class LazyField:
    """A field added lazily: computed by init(obj) on first access and stored in the instance."""

    def __init__(self, name: str, init: Callable[[Any], Any]):
        self.name, self.init = name, init

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        value = self.init(obj)
        obj.__dict__.setdefault(self.name, value)
        return obj.__dict__[self.name]


@dataclass
class FieldAdd:
    cls: type
    name: str
    init: Callable[[Any], Any]
    lazy: bool


@dataclass
class Conversion:
    cls: type
    to: Union[type, Callable[[Any], Any]]
    lazy: bool
    undo: Optional[Callable[[Any], Any]]
    pending: Dict[type, type] = field(default_factory=dict)   # lazy: real type -> pending subclass
    lock: threading.RLock = field(default_factory=threading.RLock)

    def convert(self, obj: Any, real: type) -> None:
        if isinstance(self.to, type):
            object.__setattr__(obj, "__class__", self.to)
            hook = getattr(self.to, "__convert__", None)
            if hook is not None:
                hook(obj)
        else:
            if type(obj) is not real:
                object.__setattr__(obj, "__class__", real)
            self.to(obj)

    def retype_map(self) -> Dict[type, type]:
        """{type: its pending subclass} for the class and every subclass it has now."""
        out, todo = {}, [self.cls]
        while todo:
            t = todo.pop()
            if getattr(t, "__stasis_pending__", False) or t in out:
                continue
            out[t] = self.pending_class(t)
            todo.extend(t.__subclasses__())
        return out

    def finish(self, obj: Any) -> None:
        """Converts a pending instance now (eager conversion after the commit)."""
        with self.lock:
            pending = type(obj)
            if getattr(pending, "__stasis_pending__", False) and self.pending.get(pending.__mro__[1]) is pending:
                real = pending.__mro__[1]
                object.__setattr__(obj, "__class__", real)
                self.convert(obj, real)

    def pending_class(self, real: type) -> type:
        """A layout-compatible subclass whose first attribute access converts the instance."""
        if real in self.pending:
            return self.pending[real]
        conv = self

        def _convert_now(self_: Any) -> None:
            with conv.lock:
                if type(self_) is pending:
                    object.__setattr__(self_, "__class__", real)
                    conv.convert(self_, real)

        def __getattribute__(self_: Any, name: str) -> Any:
            _convert_now(self_)
            return getattr(self_, name)

        def __setattr__(self_: Any, name: str, value: Any) -> None:
            _convert_now(self_)
            setattr(self_, name, value)

        def __delattr__(self_: Any, name: str) -> None:
            _convert_now(self_)
            delattr(self_, name)

        pending: type = type(real)(real.__name__, (real,), {
            "__slots__": (), "__module__": real.__module__, "__qualname__": real.__qualname__,
            "__getattribute__": __getattribute__, "__setattr__": __setattr__, "__delattr__": __delattr__,
            "__stasis_pending__": True})
        self.pending[real] = pending
        return pending


@dataclass
class Update:
    id: int
    source: str                              # file or "api"
    actions: List[str] = field(default_factory=list)
    groups: List[FunctionGroup] = field(default_factory=list)
    slots: List[AttrSlot] = field(default_factory=list)
    fields: List[FieldAdd] = field(default_factory=list)
    conversions: List[Conversion] = field(default_factory=list)
    check_codes: bool = False
    checks: List[Callable[[], bool]] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT
    state: str = "planned"                   # planned, applied, reverted
    applied_at: float = 0.0
    not_revertible: Optional[str] = None
    warnings: List[str] = field(default_factory=list)   # conversions that raised (update stays applied)
    # Patches of a snapshot (stasis patch / resume --patch, snapshot_patch.py): applied to a loaded
    # program none of whose code is running, with the frames on its stacks moved to the new code
    # (map_frame rules say how where matching cannot).
    snapshot: bool = False
    frame_rules: List[Any] = field(default_factory=list)
    caches: List[Any] = field(default_factory=list)   # lru_cache wrappers emptied once applied (targets.result_caches)

    def describe(self) -> Dict[str, Any]:
        return {"id": self.id, "source": self.source, "state": self.state, "actions": list(self.actions),
                "applied_at": self.applied_at, "revertible": self.not_revertible is None,
                "warnings": list(self.warnings)}


# --- the layers of all updates -----------------------------------------------------------------

class UpdateLayers:
    def __init__(self) -> None:
        self.lock = threading.RLock()              # one apply or revert at a time
        self.next_id = 1
        self.updates: Dict[int, Update] = {}
        self.groups: Dict[int, FunctionGroup] = {}   # id of any code of a group -> the group
        self.slots: Dict[Tuple[int, str], AttrSlot] = {}

    def after_fork(self) -> None:
        """In a forked child: fresh lock (another thread may have held it at fork), and the
        parent's running tools (profile/trace/watch/lines, which end by a revert in the parent's
        control thread, absent here) reverted now."""
        self.lock = threading.RLock()
        for u in list(self.updates.values()):
            if u.state == "applied" and u.source.split(" ", 1)[0] in TOOL_SOURCES:
                u.check_codes, u.checks = False, []
                try:
                    self.revert(u.id)
                except Exception as e:
                    print(f"stasis: after fork, cannot revert the parent's {u.source}: {e}", file=sys.stderr)
        _engine.updater_profile_stop()

    def new_update(self, source: str) -> Update:
        with self.lock:
            u = Update(self.next_id, source)
            self.next_id += 1
            return u

    def group_for(self, fn: types.FunctionType, name: str) -> FunctionGroup:
        g = self.groups.get(id(fn.__code__))
        if g is None:
            g = FunctionGroup(name, fn)
            self.groups[id(fn.__code__)] = g
        return g

    def current_code(self, fn: types.FunctionType) -> types.CodeType:
        """The code fn runs under its instrument wrapper, if it has one (else fn.__code__)."""
        g = self.groups.get(id(fn.__code__))
        return g.current().code if g is not None else fn.__code__

    def slot_for(self, owner: Any, name: str) -> AttrSlot:
        key = (id(owner), name)
        s = self.slots.get(key)
        if s is None or s.owner is not owner:
            s = self.slots[key] = AttrSlot(owner, name)
        return s

    # -- planning (called by the stasis.update API while an update file runs) --

    def plan_redefine(self, u: Update, name: str, old: types.FunctionType, new: types.FunctionType) -> None:
        why = _free_variable_problem(old, new) or self._global_problem(u, old, new)
        if why:
            raise UpdateRefusedError(f"redefine {name}: {why}")
        g = self.group_for(old, name)
        g.layers.append(Layer(u.id, new.__code__, new.__defaults__, new.__kwdefaults__))
        _remember(u.groups, g)

    def _global_problem(self, u: Update, old: types.FunctionType, new: types.FunctionType) -> Optional[str]:
        """The new code runs with the old function's globals: every global it reads must exist
        there (or in builtins, or be added by this same update)."""
        target = old.__globals__
        builtins = target.get("__builtins__", {})
        builtins = builtins if isinstance(builtins, dict) else vars(builtins)
        added = {s.name for s in u.slots if getattr(s.owner, "__dict__", None) is target}
        missing = sorted(n for n in _global_reads(new.__code__)
                         if n not in target and n not in builtins and n not in added)
        if not missing:
            return None
        module = target.get("__name__", "?")
        return (f"the new code reads the globals {missing}, which module {module} does not define (it runs with "
                f"the module's globals, not the update file's); add them first in the same update, e.g. "
                f"redefine('{module}.{missing[0]}', {missing[0]})")

    def plan_attr(self, u: Update, owner: Any, name: str, value: Any) -> None:
        s = self.slot_for(owner, name)
        s.layers.append((u.id, value))
        _remember(u.slots, s)

    def plan_probe(self, u: Update, name: str, fn: types.FunctionType, probe: Probe) -> None:
        kind = "line" if probe.line is not None or probe.line_callback is not None else "calls"
        g = self.groups.get(id(fn.__code__))
        if g is not None and kind == "calls" and any(p.line is not None or p.line_callback for p in g.probes):
            kind = "line"
        why = instrumentable(self.current_code(fn), kind)
        if why:
            raise UpdateRefusedError(f"instrument {name}: {why}")
        g = self.group_for(fn, name)
        g.probes.append(probe)
        _remember(u.groups, g)

    def plan_profile(self, u: Update, name: str, fn: types.FunctionType) -> None:
        why = instrumentable(self.current_code(fn), "profile")
        if why:
            raise UpdateRefusedError(f"profile {name}: {why}")
        g = self.group_for(fn, name)
        g.profiles.append((u.id, name))
        _remember(u.groups, g)

    def forget_plan(self, u: Update) -> None:
        for g in u.groups:
            g.drop(u.id)
        for s in u.slots:
            s.drop(u.id)

    # -- apply / revert --

    def apply(self, u: Update) -> int:
        with self.lock:
            try:
                classes = [f.cls for f in u.fields if not f.lazy] + [c.cls for c in u.conversions]
                retype = {t: p for c in u.conversions for t, p in c.retype_map().items()}
                _busy, installed, instances = self._commit(u, classes, f"update {u.id} not applied", retype)
            except BaseException:
                self.forget_plan(u)
                raise
            self._note_installed(u, installed)
            u.state, u.applied_at = "applied", time.time()
            self.updates[u.id] = u
            self._convert(u, instances)
            for cache in u.caches:
                cache.cache_clear()
            return u.id

    def revert(self, update_id: int) -> Update:
        with self.lock:
            u = self.updates.get(update_id)
            if u is None:
                raise UpdateRefusedError(f"no update {update_id} (see `stasis ctl PID list`)")
            if u.state != "applied":
                raise UpdateRefusedError(f"update {update_id} is {u.state}, not applied")
            if u.not_revertible:
                raise UpdateRefusedError(f"update {update_id} cannot be reverted: {u.not_revertible}")
            saved = ([(g, list(g.layers), list(g.probes), list(g.profiles)) for g in u.groups],
                     [(s, list(s.layers)) for s in u.slots])
            self.forget_plan(u)
            try:
                classes = [f.cls for f in u.fields] + [c.cls for c in u.conversions]
                _busy, installed, instances = self._commit(u, classes, f"update {update_id} not reverted")
            except BaseException:
                for g, layers, probes, profiles in saved[0]:
                    g.layers, g.probes, g.profiles = layers, probes, profiles
                for s, layers in saved[1]:
                    s.layers = layers
                raise
            self._note_installed(u, installed)
            u.state = "reverted"
            self._unconvert(u, instances)
            return u

    def _commit(self, u: Update, classes: Sequence[type], failure: str,
                retype: Optional[Dict[type, type]] = None) -> tuple:
        swaps = [g.swap() for g in u.groups]
        attrs = [s.change() for s in u.slots]
        check = tuple(c for g in u.groups if u.check_codes for c in g.codes.values())
        deadline = time.monotonic() + u.timeout
        while True:
            if all(_run_check(c) for c in u.checks):
                busy, installed, _swapped, instances = _engine.updater_commit(check, swaps, attrs, tuple(classes),
                                                                              retype or None)
                if not busy:
                    return busy, installed, instances
                why = "still active: " + "; ".join(_describe_use(*b) for b in busy)
            else:
                why = "the safe-point check function did not return True"
            if time.monotonic() >= deadline:
                raise NotQuiescentError(f"{failure}: no safe point within {u.timeout:g} s; {why}")
            time.sleep(_RETRY_PAUSE)

    def _note_installed(self, u: Update, installed: List[types.CodeType]) -> None:
        """Records the codes the group's functions run now (wrapper codes are made per function
        during the commit; they carry the qualname, file and first line of the code they wrap)."""
        for g in u.groups:
            cur = g.current().code
            mine = [c for c in installed if (c.co_qualname, c.co_filename, c.co_firstlineno)
                    == (cur.co_qualname, cur.co_filename, cur.co_firstlineno)]
            for c in [cur] + mine + ([g.installing] if g.installing is not None else []):
                g.codes[id(c)] = c
                self.groups[id(c)] = g

    def _convert(self, u: Update, instances: List[List[Any]]) -> None:
        """Eager work after the commit. The commit already made every change visible atomically:
        an added field is a lazy descriptor and every instance to convert has a pending class, so a
        thread touching an object before this loop reaches it converts it itself. A conversion that
        raises is counted in u.warnings; the update stays applied."""
        lists = iter(instances)
        for f in (f for f in u.fields if not f.lazy):
            with _Failures(u, f"add_field {f.cls.__qualname__}.{f.name}: init") as failures:
                for obj in next(lists):
                    d = getattr(obj, "__dict__", None)
                    if d is not None and f.name not in d:
                        failures.run(lambda: d.__setitem__(f.name, f.init(obj)))
        for c in u.conversions:
            objs = next(lists)
            if not c.lazy:
                with _Failures(u, f"convert {c.cls.__qualname__}") as failures:
                    for obj in objs:
                        failures.run(lambda: c.finish(obj))

    def _unconvert(self, u: Update, instances: List[List[Any]]) -> None:
        lists = iter(instances)
        for f in u.fields:
            for obj in next(lists):
                d = getattr(obj, "__dict__", None)
                if d is not None:
                    d.pop(f.name, None)
        for c in u.conversions:
            with _Failures(u, f"undo of convert {c.cls.__qualname__}") as failures:
                for obj in next(lists):
                    real = type(obj)
                    if getattr(real, "__stasis_pending__", False):
                        object.__setattr__(obj, "__class__", real.__mro__[1])
                    elif c.undo is not None:
                        failures.run(lambda: c.undo(obj))


class _Failures:
    """Runs one conversion step per object, counting the ones that raise."""

    def __init__(self, u: Update, what: str):
        self.u, self.what, self.count, self.first = u, what, 0, None

    def run(self, step: Callable[[], Any]) -> None:
        try:
            step()
        except Exception as e:
            self.count += 1
            self.first = self.first or e

    def __enter__(self) -> "_Failures":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.count:
            self.u.warnings.append(f"{self.what} raised for {self.count} instance(s), first: "
                                   f"{type(self.first).__name__}: {self.first}")


layers = UpdateLayers()


# --- helpers -------------------------------------------------------------------------------------

def _remember(items: list, item: Any) -> None:
    if not any(i is item for i in items):
        items.append(item)


def _run_check(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception as e:
        raise UpdateError(f"the safe-point check function raised {type(e).__name__}: {e}") from e


def _global_reads(code: types.CodeType) -> Set[str]:
    names = {i.argval for i in bytecode.instructions(code) if i.opname == "LOAD_GLOBAL"}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_reads(const)
    return names


def _free_variable_problem(old: types.FunctionType, new: types.FunctionType) -> Optional[str]:
    added = [v for v in new.__code__.co_freevars if v not in old.__code__.co_freevars]
    if added:
        return (f"the new code uses free variables {added} that {old.__qualname__} has no cells for; "
                f"free variables may be dropped or reordered by an update, not added (redefine the "
                f"enclosing function instead, or use a global)")
    return None


def _thread_name(ident: int) -> str:
    for t in threading.enumerate():
        if t.ident == ident:
            return repr(t.name)
    return f"#{ident}"


def _describe_use(kind: str, ident: int, code: types.CodeType, line: int) -> str:
    where = f"{code.co_filename}:{line}" if line >= 0 else f"{code.co_filename} (not started)"
    if kind == "thread":
        return f"thread {_thread_name(ident)} is running {code.co_qualname} at {where}"
    state = "created, not started" if line < 0 else "suspended"
    return f"{kind} {code.co_qualname} {state} at {where}"

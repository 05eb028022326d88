"""The built-in instruments of `stasis ctl`: profile, trace, watch, lines — run in the target.

profile wraps only the functions matching the pattern (no global profile hook); trace, watch and
lines instrument one function. Each runs as an update of its own (visible in `ctl PID list`) for a
bounded time and is reverted afterwards, also when the client goes away.
"""
from __future__ import annotations

import linecache
import re
import sys
import threading
import time
import types
from typing import Any, Callable, Dict, List, Tuple

from .. import _engine
from .errors import UpdateRefusedError
from .instrument import Probe, instrumentable
from .layers import layers
from .targets import innermost_function, resolve

_SELF_PREFIXES = ("stasis.", "stasis_update_")


def glob_regex(pattern: str) -> "re.Pattern[str]":
    """'*' matches within one dotted component, '**' across components, '?' one character."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^.]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matching_functions(pattern: str) -> Tuple[List[Tuple[str, types.FunctionType]], List[str]]:
    """(name, function) for every function defined in a loaded module whose qualified name matches,
    and the names of matching functions that cannot be wrapped (with the reason)."""
    rx = glob_regex(pattern)
    found: Dict[int, Tuple[str, types.FunctionType]] = {}   # by id: codes compare equal by value
    skipped: List[str] = []

    def consider(name: str, value: Any) -> None:
        fn = innermost_function(value)
        if fn is None or not rx.match(name) or id(fn.__code__) in found:
            return
        why = instrumentable(layers.current_code(fn), "profile")
        if why:
            skipped.append(f"{name}: {why}")
        else:
            found[id(fn.__code__)] = (name, fn)

    for modname, mod in list(sys.modules.items()):
        if mod is None or modname.startswith(_SELF_PREFIXES) or modname == "stasis":
            continue
        try:
            items = list(vars(mod).items())
        except TypeError:
            continue
        for attr, value in items:
            if isinstance(value, type) and value.__module__ == modname:
                for cattr, cvalue in list(vars(value).items()):
                    consider(f"{modname}.{value.__qualname__}.{cattr}", cvalue)
            elif getattr(innermost_function(value), "__module__", None) == modname:
                consider(f"{modname}.{attr}", value)
    return sorted(found.values(), key=lambda t: t[0]), skipped


def _thread_names() -> Dict[str, str]:
    return {str(t.ident): t.name for t in threading.enumerate()}


def profile(pattern: str, seconds: float, stop: threading.Event) -> Dict[str, Any]:
    """Profiles the matching functions for `seconds` (or until `stop`), then reverts; returns the
    call tree rows: [thread id, [function, ...], calls, total ns, self ns, is_async] (is_async:
    a generator or coroutine function, timed apart: wall time per call, awaits included)."""
    if not _profile_lock.acquire(blocking=False):
        raise UpdateRefusedError("another profile is running in this process (one at a time: the C++ "
                                 "session is per process); try again when it ends")
    try:
        return _profile(pattern, seconds, stop)
    finally:
        _profile_lock.release()


_profile_lock = threading.Lock()


def _profile(pattern: str, seconds: float, stop: threading.Event) -> Dict[str, Any]:
    functions, skipped = matching_functions(pattern)
    if not functions:
        raise UpdateRefusedError(f"no function of a loaded module matches {pattern!r}"
                                 + (f" (skipped: {'; '.join(skipped)})" if skipped else ""))
    u = layers.new_update(f"profile {pattern}")
    for name, fn in functions:
        layers.plan_profile(u, name, fn)
    u.actions.append(f"profile {pattern} ({len(functions)} functions)")
    _engine.updater_profile_start()
    try:
        layers.apply(u)
        try:
            stop.wait(seconds)
        finally:
            layers.revert(u.id)
    finally:
        rows = _engine.updater_profile_stop()
    return {"update": u.id, "functions": [n for n, _ in functions], "skipped": skipped,
            "rows": [[str(tid), list(keys), calls, total, self_, is_async]
                     for tid, keys, calls, total, self_, is_async in rows],
            "threads": _thread_names()}


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception as e:  # a broken __repr__ must not break the target
        text = f"<repr failed: {type(e).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _one_function(target: str) -> Tuple[str, types.FunctionType]:
    t = resolve(target)
    fn = innermost_function(t.value)
    if fn is None:
        raise UpdateRefusedError(f"{target} is not a function")
    return t.name, fn


def _run_probe(kind: str, name: str, fn: types.FunctionType, probe_args: Dict[str, Any],
               seconds: float, stop: threading.Event) -> int:
    u = layers.new_update(f"{kind} {name}")
    layers.plan_probe(u, name, fn, Probe(u.id, name, **probe_args))
    u.actions.append(f"{kind} {name}")
    layers.apply(u)
    try:
        stop.wait(seconds)
    finally:
        layers.revert(u.id)
    return u.id


def trace(target: str, seconds: float, stop: threading.Event, emit: Callable[[str], None]) -> Dict[str, Any]:
    name, fn = _one_function(target)
    depth = threading.local()

    def before(arguments: Dict[str, Any], thread: str) -> None:
        d = getattr(depth, "n", 0)
        depth.n = d + 1
        args = ", ".join(f"{k}={_short(v)}" for k, v in arguments.items())
        emit(f"[{thread}] {'  ' * d}-> {name}({args})")

    def after(return_value: Any, thread: str) -> None:
        depth.n = getattr(depth, "n", 1) - 1
        emit(f"[{thread}] {'  ' * depth.n}<- {name} returned {_short(return_value)}")

    def on_exception(exception: BaseException, thread: str) -> None:
        depth.n = getattr(depth, "n", 1) - 1
        emit(f"[{thread}] {'  ' * depth.n}<- {name} raised {_short(exception)}")

    uid = _run_probe("trace", name, fn, {"before": before, "after": after, "on_exception": on_exception},
                     seconds, stop)
    return {"update": uid}


def watch(target: str, variable: str, seconds: float, stop: threading.Event,
          emit: Callable[[str], None]) -> Dict[str, Any]:
    name, fn = _one_function(target)
    code = layers.current_code(fn)
    if variable not in code.co_varnames + code.co_cellvars + code.co_freevars:
        raise UpdateRefusedError(f"{name} has no local variable {variable!r} (locals: {', '.join(code.co_varnames)})")
    unset = object()
    last: Dict[int, Any] = {}

    def on_line(frame: types.FrameType, event: str, arg: Any) -> None:
        value = frame.f_locals.get(variable, unset)  # f_locals is a snapshot; the frame is never written
        key = id(frame)
        if event == "return":
            last.pop(key, None)
            return
        if value is not unset and (key not in last or last[key] is not value):
            emit(f"[{threading.current_thread().name}] {name} line {arg}: {variable} = {_short(value)}")
        last[key] = value

    uid = _run_probe("watch", name, fn, {"line_callback": on_line}, seconds, stop)
    return {"update": uid}


def parse_lines(spec: str, code: types.CodeType) -> List[int]:
    valid = sorted({l for _, _, l in code.co_lines() if l is not None})
    if spec == "all":
        return valid
    wanted: List[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise UpdateRefusedError(f"bad line range {part!r} (use e.g. 10-20,25 or all)") from None
        wanted.extend(l for l in valid if a <= l <= b)
    if not wanted:
        raise UpdateRefusedError(f"no line of {code.co_qualname} ({valid[0]}-{valid[-1]}) is in {spec!r}")
    return sorted(set(wanted))


def lines(target: str, spec: str, seconds: float, stop: threading.Event) -> Dict[str, Any]:
    name, fn = _one_function(target)
    wanted = parse_lines(spec, layers.current_code(fn))
    stats: Dict[int, List[int]] = {l: [0, 0] for l in wanted}     # line -> [hits, ns]
    current: Dict[int, Tuple[int, int]] = {}                       # frame -> (line, start ns)
    clock = time.perf_counter_ns

    def on_line(frame: types.FrameType, event: str, arg: Any) -> None:
        now = clock()
        key = id(frame)
        prev = current.pop(key, None)
        if prev is not None and prev[0] in stats:
            s = stats[prev[0]]
            s[0] += 1
            s[1] += now - prev[1]
        if event == "line":
            current[key] = (arg, now)

    uid = _run_probe("lines", name, fn, {"line_callback": on_line}, seconds, stop)
    filename = fn.__code__.co_filename
    rows = [[l, hits, ns, linecache.getline(filename, l).rstrip()] for l, (hits, ns) in sorted(stats.items())]
    return {"update": uid, "function": name, "file": filename, "rows": rows}

"""Instrument wrappers: the code an instrumented function runs instead of its own.

A wrapper has the target's exact signature (so the function's own defaults bind the arguments as
before), calls hooks with explicit arguments, and calls the original code in a hidden function
that shares the target's globals and closure cells — the target's frame, locals, line numbers
and code are untouched, and the wrapper removes its own entry from tracebacks. Only wrapped
functions pay anything. The hidden function is made per function object by the C++ commit
(placeholder constant ORIG), so closures keep their own cells.
"""
from __future__ import annotations

import inspect
import sys
import threading
import types
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import _engine
from ..compiler_hooks import bytecode as bc
from .errors import UpdateRefusedError

ORIG = "<stasis:orig>"
_HOOKS = "<stasis:hooks>"
_ENTER = "<stasis:enter>"
_EXIT = "<stasis:exit>"
_KEY = "<stasis:key>"
_HIDDEN = ("_stasis_call_", "_stasis_result_", "_stasis_exc_")

_FAST = '''def {name}({params}):
    "{enter}"("{key}")
    try:
        return "{orig}"({args})
    except BaseException as _stasis_exc_:
        _stasis_exc_.__traceback__ = _stasis_exc_.__traceback__.tb_next
        raise
    finally:
        "{exit}"()
'''

_GENERAL = '''{async_}def {name}({params}):
    _stasis_call_ = "{hooks}".before({argdict})
    try:
        _stasis_result_ = {delegate}"{orig}"({args})
    except BaseException as _stasis_exc_:
        _stasis_exc_.__traceback__ = _stasis_exc_.__traceback__.tb_next
        "{hooks}".exception(_stasis_call_, _stasis_exc_)
        raise
    "{hooks}".after(_stasis_call_, _stasis_result_)
    return _stasis_result_
'''

# Generators and coroutines get a wrapper of their own kind (`yield from` / `await` the original),
# whose before() runs at the first resumption. Their calls span suspensions: they are not
# line-instrumented (the line tracer would stay on the thread while they are parked), and profile
# times them apart from the call trees (wall time per call, awaits included: what runs while they
# are parked is not their callee).
_SUSPENDING = inspect.CO_GENERATOR | inspect.CO_COROUTINE
_NEVER = inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def instrumentable(code: types.CodeType, kind: str = "calls") -> Optional[str]:
    """None, or why `code` cannot be instrumented with `kind` ("calls": before/after/on_exception;
    "line": line callbacks; "profile")."""
    if code.co_flags & _NEVER:
        return f"{code.co_qualname} is an async generator or a types.coroutine generator; those cannot be instrumented yet"
    if code.co_flags & _SUSPENDING and kind == "line":
        return (f"{code.co_qualname} is a generator or coroutine function; those cannot be given line "
                f"instruments yet (their calls span suspensions); use before/after/on_exception")
    clash = set(_HIDDEN) & set(code.co_varnames + code.co_freevars)
    if clash:
        return f"{code.co_qualname} uses the reserved names {sorted(clash)}"
    return None


def _signature(code: types.CodeType) -> Tuple[str, str, List[str]]:
    """(parameter list, call arguments, parameter names) reproducing code's signature. In 3.11
    co_varnames holds positional parameters, keyword-only ones, then *args, then **kwargs."""
    names = code.co_varnames
    npos, nposonly, nkw = code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount
    params: List[str] = []
    args: List[str] = []
    all_names: List[str] = list(names[:npos])
    for i, n in enumerate(names[:npos]):
        params.append(n)
        args.append(n)
        if nposonly and i == nposonly - 1:
            params.append("/")
    kwonly = names[npos:npos + nkw]
    idx = npos + nkw
    if code.co_flags & inspect.CO_VARARGS:
        params.append("*" + names[idx])
        args.append("*" + names[idx])
        all_names.append(names[idx])
        idx += 1
    elif nkw:
        params.append("*")
    for n in kwonly:
        params.append(n)
        args.append(f"{n}={n}")
        all_names.append(n)
    if code.co_flags & inspect.CO_VARKEYWORDS:
        params.append("**" + names[idx])
        args.append("**" + names[idx])
        all_names.append(names[idx])
    return ", ".join(params), ", ".join(args), all_names


def build_wrapper(code: types.CodeType, *, hooks: Any = None, profile_key: Optional[str] = None
                  ) -> Tuple[types.CodeType, int]:
    """A wrapper code for `code` and the index of its ORIG placeholder constant. With only a
    profile key, the fast form (two C calls); otherwise the general form calling `hooks`."""
    why = instrumentable(code, "calls" if hooks is not None and not hooks.line_probes and not profile_key else
                         "line" if hooks is not None and hooks.line_probes else "profile")
    if why:
        raise UpdateRefusedError(why)
    params, args, names = _signature(code)
    if hooks is None:
        src = _FAST.format(name="_w", params=params, args=args, enter=_ENTER, key=_KEY, orig=ORIG, exit=_EXIT)
    else:
        argdict = "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}"
        delegate = ("yield from " if code.co_flags & inspect.CO_GENERATOR else
                    "await " if code.co_flags & inspect.CO_COROUTINE else "")
        src = _GENERAL.format(name="_w", params=params, args=args, hooks=_HOOKS, orig=ORIG, argdict=argdict,
                              delegate=delegate, async_="async " if code.co_flags & inspect.CO_COROUTINE else "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable": placeholders, replaced below
        module = compile(src, code.co_filename, "exec")
    wrapper = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    table = {_HOOKS: hooks, _ENTER: _engine.updater_profile_enter, _EXIT: _engine.updater_profile_exit,
             _KEY: sys.intern(profile_key or "")}
    consts = tuple(table[c] if isinstance(c, str) and c in table else c for c in wrapper.co_consts)
    slot = consts.index(ORIG)
    wrapper = wrapper.replace(co_consts=consts, co_freevars=code.co_freevars, co_name=code.co_name,
                              co_qualname=code.co_qualname, co_firstlineno=code.co_firstlineno)
    return wrapper, slot


# --- hooks of the general wrapper --------------------------------------------------------------

def _wants(callback: Callable) -> Tuple[set, bool]:
    """Parameter names `callback` asks for, and whether it takes **kwargs (then: everything)."""
    try:
        sig = inspect.signature(callback)
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def call_with(callback: Callable, available: Dict[str, Any]) -> None:
    """Calls callback with the keyword arguments it names, taken from `available` (copies of
    references: the callback never sees the target's frame or locals dict)."""
    names, everything = _wants(callback)
    kwargs = dict(available) if everything else {n: available[n] for n in names if n in available}
    callback(**kwargs)


@dataclass
class Probe:
    """One instrument: callbacks run at call, return, exception or a line of one function."""
    update_id: int
    function: str                                   # qualified name, passed as `function`
    before: Optional[Callable] = None
    after: Optional[Callable] = None
    on_exception: Optional[Callable] = None
    line: Optional[int] = None                      # with before: run before this line executes
    line_callback: Optional[Callable] = None        # raw (frame, event, arg) consumer (watch/lines)


class Hooks:
    """The object a general wrapper calls. Errors in callbacks are reported, never raised into
    the instrumented function."""

    def __init__(self, probes: List[Probe], orig_code: types.CodeType, profile_key: Optional[str]):
        self.probes = probes
        self.profile_key = sys.intern(profile_key) if profile_key else None
        self.line_probes = [p for p in probes if p.line is not None or p.line_callback is not None]
        self.spec = (orig_code, self._on_line) if self.line_probes else None

    def _report(self, probe: Probe, where: str) -> None:
        print(f"stasis: instrument of update {probe.update_id} on {probe.function} failed in {where}:",
              file=sys.stderr)
        sys.excepthook(*sys.exc_info())

    def _notify(self, which: str, arguments: Dict[str, Any], extra: Dict[str, Any]) -> None:
        """Calls every probe's `which` callback (before/after/on_exception) with what it asks for."""
        for p in self.probes:
            callback = getattr(p, which)
            if callback is None or (which == "before" and p.line is not None):
                continue
            try:
                call_with(callback, {**arguments, "arguments": arguments, "function": p.function,
                                     "thread": threading.current_thread().name, **extra})
            except Exception:
                self._report(p, which)

    def before(self, arguments: Dict[str, Any]) -> Any:
        self._notify("before", arguments, {})
        if self.profile_key is not None:
            _engine.updater_profile_enter(self.profile_key)
        if self.spec is not None:
            _engine.updater_line_trace_enter(self.spec)
        return arguments

    def _leave(self) -> None:
        if self.spec is not None:
            _engine.updater_line_trace_exit()
        if self.profile_key is not None:
            _engine.updater_profile_exit()

    def after(self, arguments: Any, result: Any) -> None:
        self._leave()
        self._notify("after", arguments, {"return_value": result})

    def exception(self, arguments: Any, exc: BaseException) -> None:
        self._leave()
        self._notify("on_exception", arguments, {"exception": exc})

    def _on_line(self, frame: types.FrameType, event: str, arg: Any) -> None:
        for p in self.line_probes:
            if p.line_callback is not None:
                p.line_callback(frame, event, arg)
            elif event == "line" and arg == p.line and p.before is not None:
                values = dict(frame.f_locals)  # a copy: the callback never gets the frame's dict
                try:
                    call_with(p.before, {**values, "locals": values, "line": arg, "function": p.function,
                                         "thread": threading.current_thread().name})
                except Exception:
                    self._report(p, f"line {arg}")


# --- profile probes injected into the code itself --------------------------------------------------
#
# The cheapest probe: right after the function's RESUME, call enter(key) and leave the token it
# returns at the bottom of the value stack. Every way out of the frame (return, exception) drops
# the value stack, and the token's deallocation records the exit time (updater/profiler.cpp). No
# extra frame, one C call per call; line numbers, tracebacks and the original instructions are
# unchanged (the prologue has no source location; exception-table offsets and depths move by the
# prologue's length and the token). Generators and coroutines are not wrapped at all.


def inject_profile(code: types.CodeType, key: str) -> Optional[types.CodeType]:
    """`code` with an enter(key) prologue whose token ends the timing, or None when the code's
    layout is not the plain one this supports (the caller then uses a wrapper). In a generator or
    coroutine the prologue runs at the first resumption and the token lives on the suspended
    frame's stack until the end."""
    if instrumentable(code, "profile"):
        return None
    raw = code.co_code
    units = len(raw) // 2
    resume = next((i for i in range(units) if raw[2 * i] == bc.OPMAP["RESUME"]), None)
    if resume is None:
        return None
    at = resume + 1                                           # insert after RESUME (code units)
    enter = _engine.updater_profile_async_token if code.co_flags & _SUSPENDING else _engine.updater_profile_token
    consts = code.co_consts + (enter, sys.intern(key))
    prologue = (bc.encode_instruction("PUSH_NULL") + bc.encode_instruction("LOAD_CONST", len(consts) - 2)
                + bc.encode_instruction("LOAD_CONST", len(consts) - 1) + bc.call_instructions(1))
    n = len(prologue) // 2
    # Line table: find the entry boundary at `at`, insert "no location" entries for the prologue.
    pos = bc.line_table_boundary(code.co_linetable, at)
    if pos is None:
        return None
    linetable = code.co_linetable[:pos] + bc.no_location(n) + code.co_linetable[pos:]
    # Exception table: shift by n units; one more value (the token) below every handler's depth.
    entries = []
    for e in bc.exception_entries(code):
        if e.start < 2 * at or e.target < 2 * at:
            return None
        entries.append(e._replace(start=e.start + 2 * n, end=e.end + 2 * n, target=e.target + 2 * n, depth=e.depth + 1))
    exc = bc.encode_exception_table(entries)
    new_code = raw[:2 * at] + prologue + raw[2 * at:]
    return code.replace(co_code=new_code, co_consts=consts, co_linetable=linetable,
                        co_exceptiontable=bytes(exc), co_stacksize=max(code.co_stacksize + 1, 4))

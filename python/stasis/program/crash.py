"""Crash snapshots (`stasis run/resume --snapshot-on-crash`): when an exception is about to end the
program (raised in the main thread and caught by no frame up to __main__, or a thread's uncaught
exception), a program snapshot is written *before the stack unwinds*: every frame as it stood, the
innermost program frame positioned at the start of the statement that raised, so that resuming
runs that statement again (with a patch that fixes it: the new statement). The program then ends
exactly as it would have (traceback, exit status) and stderr says where the snapshot is.

How, without tracing: the program's own code objects get one more exception handler per range of
bytecode that no handler of theirs covers (`instrument`): extra exception-table entries pointing at
a few instructions appended after the code, which call `_engine.crash_hook(exc, lasti, depth)` and
re-raise the exception unchanged (RERAISE with the original instruction offset, so tracebacks are
untouched). Each entry's depth keeps the frame's loop iterators and `with` exits on its value
stack. Nothing changes on the path without exceptions (CPython 3.11's exception table is zero
cost); an exception caught inside the frame that raised it never reaches these handlers. One
that leaves a frame calls the hook once per frame it leaves. The hook's fast path is C++
(snapshot/crash_hook.cpp): it walks the frames out to the base frame with the *plan* of each
(what an exception at that instruction meets there, `_Handlers.plan`, computed here once per code
object and instruction and handed over), matches `except` clauses, and stops at the first frame
that catches it or that C code called (that code may catch it). When it cannot tell — a frame
without a plan yet, a `with` block whose __exit__ must be judged (`_exit_catches`), or nothing
catches it — it calls `_on_exception`, which decides again in full here. Only when nothing
catches it are the stacks captured (capture.cpp for the callers, crash_capture.cpp for the raising
frame) and the snapshot written, to a temporary file that is published (renamed, announced) only
when the exception really ends the program: a `with` whose __exit__ swallows it, or C code that
catches it, leave nothing behind (and an __exit__ seen swallowing is taken as catching that type
of exception from then on).
"""
from __future__ import annotations

import atexit
import builtins
import functools
import hashlib
import marshal
import os
import sys
import threading
import traceback
import types
from typing import Any, Dict, List, Optional, Tuple

from .. import _engine
from ..compiler_hooks import bytecode as bc
from ..errors import StasisError

_LOOP_VALUES = frozenset({bc.FOR_ITER, bc.ASYNC_FOR_ITER, bc.WITH_EXIT, bc.COMP_ACC})
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200   # generator, coroutine, iterable coroutine, async generator

from .freeze import BOOTSTRAP_INNER as _BOOTSTRAP_INNER  # noqa: E402 - the base of other threads' stacks

_session: Any = None          # the Session whose program is watched (None: the hook does nothing)
_HOOK = _engine.crash_hook    # what the handlers call: the fast path, which calls _on_exception when unsure
_path: Optional[str] = None   # where a crash snapshot goes
# thread ident -> (exception, temporary file, __exit__ codes assumed to let it through, note for stderr)
_pending: Dict[int, Tuple[Any, str, tuple, str]] = {}
_failures: Dict[int, Tuple[Any, str]] = {}      # thread ident -> (exception, why no snapshot)
_given_up: Dict[int, Any] = {}                  # thread ident -> an exception no frame is to capture
_lock = threading.Lock()


# --- instrumentation of the program's code ------------------------------------------------------

def _hook_marker(code: types.CodeType) -> bool:
    return any(c is _HOOK for c in code.co_consts)


def is_instrumented(code: types.CodeType) -> bool:
    return _hook_marker(code) or any(is_instrumented(c) for c in code.co_consts if isinstance(c, types.CodeType))


def instrument(code: types.CodeType) -> types.CodeType:
    """`code` (and the code nested in it) with a crash handler on every range no handler covers.
    Generator and coroutine code is left alone (its frames are resumed from C, never rebuilt by
    replay: a crash there is captured in the frame that iterated it)."""
    consts = tuple(instrument(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    if consts != code.co_consts or any(a is not b for a, b in zip(consts, code.co_consts)):
        code = code.replace(co_consts=consts)
    if code.co_flags & _GENERATOR_FLAGS or _hook_marker(code):
        return code
    return _add_handlers(code)


# The crash-handled code of a module is kept in the rewriter's cache (a file of its own beside the
# module's resumable code): adding the handlers reads every code object's stack (resume_points),
# which costs more than running most modules' bodies. In the file, the hook constant is a
# placeholder, put back when it is read.
_HOOK_PLACEHOLDER = "\0stasis._engine.crash_hook"
_CACHE_VARIANT = "crash"


@functools.lru_cache(maxsize=None)
def _instrumenter_digest() -> bytes:
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).digest()


def instrument_module(code: types.CodeType, path: Optional[str] = None, source: Optional[bytes] = None) -> types.CodeType:
    """`instrument(code)` for the code of a module compiled from `source` read from `path` (by
    default the module's recorded source, compiler_hooks.hook.SOURCES), through the cache."""
    from ..compiler_hooks import cache, hook
    path = path or code.co_filename
    if source is None:
        source = hook.SOURCES.get(os.path.realpath(path))
    if source is None:
        return instrument(code)
    key = cache.source_key(path, source) + _instrumenter_digest() + hashlib.sha256(marshal.dumps(code)).digest()
    hit = cache.load(path, key, _CACHE_VARIANT)
    if hit is not None:
        return _swap_const(hit, _HOOK_PLACEHOLDER, _HOOK)
    out = instrument(code)
    cache.store(path, key, _swap_const(out, _HOOK, _HOOK_PLACEHOLDER), _CACHE_VARIANT)
    return out


def _swap_const(code: types.CodeType, old: Any, new: Any) -> types.CodeType:
    consts = tuple(_swap_const(c, old, new) if isinstance(c, types.CodeType) else
                   new if (c is old or (type(c) is str and c == old)) else c for c in code.co_consts)
    if any(a is not b for a, b in zip(consts, code.co_consts)):
        code = code.replace(co_consts=consts)
    return code


def _depths(code: types.CodeType) -> Dict[int, int]:
    """For each instruction: how many values at the bottom of its value stack a handler can keep
    while it raises (loop iterators and `with` exits, and never a value the instruction consumes)."""
    instrs, before = bc.stack_tags(code)
    out = {}
    for ins in instrs:
        st = before.get(ins.offset)
        if st is None:
            out[ins.offset] = 0
            continue
        lead = 0
        while lead < len(st) and st[lead] in _LOOP_VALUES:
            lead += 1
        effects = [0]
        try:
            effects = [bc.stack_effect(ins, j) for j in (False, True)]
        except ValueError:
            pass
        out[ins.offset] = max(0, min(lead, len(st) + min(min(effects), 0) - 1))
    return out


def _add_handlers(code: types.CodeType) -> types.CodeType:
    entries = bc.exception_entries(code)
    size = bc.code_size(code)
    covered = bytearray(size // 2)
    for e in entries:
        for u in range(e.start // 2, e.end // 2):
            covered[u] = 1
    depths = _depths(code)
    # Ranges of uncovered instructions with the same depth.
    gaps: List[Tuple[int, int, int]] = []
    for ins in bc.instructions(code):
        if covered[ins.offset // 2] or ins.opname in bc.FRAME_PREFIX:
            continue    # (no handler may cover the frame prefix: it runs once, before the frame is complete)
        d = depths.get(ins.offset, 0)
        end = bc.instruction_end(ins)
        if gaps and gaps[-1][1] == ins.offset and gaps[-1][2] == d:
            gaps[-1] = (gaps[-1][0], end, d)
        else:
            gaps.append((ins.offset, end, d))
    if not gaps:
        return code
    has_table = bool(code.co_consts) and type(code.co_consts[-1]) is tuple and len(code.co_consts[-1]) == 3 \
        and code.co_consts[-1][0] == ".stasis-resume-table"
    head = list(code.co_consts[:-1] if has_table else code.co_consts)
    tail = [code.co_consts[-1]] if has_table else []
    hook_index = len(head)
    head.append(_HOOK)
    stubs: Dict[int, int] = {}
    extra = bytearray()
    for d in sorted({g[2] for g in gaps}):
        stubs[d] = size + len(extra)
        head.append(d)
        # stack: [..d values.., lasti, exc]  ->  _HOOK(exc, lasti, d); RERAISE 1
        extra += bc.encode_instruction("PUSH_NULL")
        extra += bc.encode_instruction("LOAD_CONST", hook_index)
        extra += bc.encode_instruction("COPY", 3)     # exc
        extra += bc.encode_instruction("COPY", 5)     # lasti
        extra += bc.encode_instruction("LOAD_CONST", len(head) - 1)
        extra += bc.call_instructions(3)
        extra += bc.encode_instruction("POP_TOP")
        extra += bc.encode_instruction("RERAISE", 1)
    table = sorted([*entries, *(bc.ExceptionEntry(a, b, stubs[d], d, True) for a, b, d in gaps)])
    exc = bc.encode_exception_table(table)
    lines = bc.no_location(len(extra) // 2)          # the appended instructions have no location
    return code.replace(co_code=code.co_code + bytes(extra), co_consts=tuple(head + tail),
                        co_exceptiontable=exc, co_linetable=code.co_linetable + lines,
                        co_stacksize=max(code.co_stacksize, max(stubs) + 7))


def instrument_loaded(state: Any, own: Dict[str, types.ModuleType]) -> None:
    """A resumed program's code, restored from its snapshot, instrumented in place: its functions,
    its frame records and its base code get the instrumented code objects."""
    import gc
    files = {getattr(m, "__file__", None) for m in own.values()} - {None}
    done: Dict[int, types.CodeType] = {}

    def new(code: types.CodeType) -> types.CodeType:
        if id(code) not in done:
            done[id(code)] = instrument(code)
        return done[id(code)]
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and obj.__code__.co_filename in files:
            obj.__code__ = new(obj.__code__)
    state.base_code = new(state.base_code)
    for t in state.threads:
        for r in t.frames:
            if r.code.co_filename in files:
                r.code = new(r.code)


# --- the hook ----------------------------------------------------------------------------------

def activate(session: Any) -> None:
    """The hook watches `session`'s program (its base code must be set): the fast path
    (snapshot/crash_hook.cpp) decides most exceptions, `_on_exception` the rest."""
    global _session
    _session = session
    _engine.crash_hook_configure(_on_exception, _pending, _given_up, session.base_code,
                                 threading.main_thread().ident, _BOOTSTRAP_INNER)


def deactivate() -> None:
    global _session
    _session = None
    _engine.crash_hook_disable()
    _plans.clear()


def enable(session: Any, path: str) -> None:
    """Watch `session`'s program: crash snapshots go to `path`."""
    global _path
    _path = os.path.abspath(path)
    activate(session)
    from ..compiler_hooks import hook
    hook.OWN_CODE_TRANSFORM = instrument_module
    previous = threading.excepthook

    def excepthook(args: Any) -> None:
        previous(args)
        if args.exc_type is not SystemExit:
            publish(args.exc_value, thread=args.thread)
    threading.excepthook = excepthook
    from ..compiler_hooks import runner
    runner.ON_UNCAUGHT.append(publish)
    atexit.register(_discard_all)


def _on_exception(exc: BaseException, lasti: int, depth: int) -> None:
    """Called by the handlers `instrument` adds, in a frame an exception is leaving."""
    if _session is None or not isinstance(exc, Exception):
        return
    me = threading.get_ident()
    given_up = _given_up.get(me)
    if given_up is not None:
        if given_up is exc:
            return      # no snapshot can be made for it (_consider said why)
        del _given_up[me]
    pending = _pending.get(me)
    if pending is not None:
        if pending[0] is exc:
            return      # captured where it was raised; this is an outer frame it is passing through
        if exc.__context__ is not pending[0] and sys.exc_info()[1] is not pending[0]:
            _swallowed(me, pending)
    # (Nothing else is remembered between calls: holding on to an exception would keep its
    # traceback's frames alive, and an id could be reused by the next one.)
    frame = sys._getframe(1)
    try:
        _consider(frame, exc, lasti, depth, me)
    except BaseException as e:  # never disturb the program's own exception
        _failures[me] = (exc, f"internal error of Stasis: {type(e).__name__}: {e}")
    finally:
        del frame


def _raised_elsewhere(exc: BaseException, frame: types.FrameType) -> Optional[str]:
    """Why `exc`, leaving `frame`, was raised on a stack that is gone — it was stored and raised
    again (asyncio's Future.result(), concurrent.futures, a thread's saved exception) after the
    frames that raised it had finished, in program code — or None."""
    from ..compiler_hooks import hook
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame is not frame:
        tb = tb.tb_next
    while tb is not None and tb.tb_next is not None:
        inner = tb.tb_next
        back = inner.tb_frame.f_back   # (None for a generator's finished frame: it is not kept)
        if back is not tb.tb_frame and not (back is None and inner.tb_frame.f_code.co_flags & _GENERATOR_FLAGS):
            own = [t for t in _tb_entries(inner) if os.path.realpath(t.tb_frame.f_code.co_filename) in hook.SOURCES]
            if own:
                where = own[-1]
                return (f"it was raised in {where.tb_frame.f_code.co_qualname} ({where.tb_frame.f_code.co_filename} "
                        f"line {where.tb_lineno}), whose stack is gone (an asyncio task's coroutine, a future's "
                        f"worker, a saved exception), and raised again by {tb.tb_frame.f_code.co_qualname}; "
                        "Stasis captures an exception only before the stack that raised it unwinds")
        tb = inner
    return None


def _line_at(code: types.CodeType, offset: int) -> Optional[int]:
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return None


def _tb_entries(tb: Any) -> List[Any]:
    out = []
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


def _swallowed(me: int, pending: tuple) -> None:
    """A captured exception did not end the program: another one is being raised, outside its
    handling. Something let the program go on — one of the `with` blocks whose __exit__ the hook
    could not judge (learned: they are taken as catching that type of exception from now on), or C
    code."""
    with _lock:
        if _pending.get(me) is pending:
            del _pending[me]
    _discard(pending[1])
    _swallowers.update((code, type(pending[0])) for code in pending[2])


def _consider(frame: types.FrameType, exc: BaseException, lasti: int, depth: int, me: int) -> bool:
    """Captures the program if nothing catches `exc` further out. True when outer frames need not
    look at it again (caught further out, or captured here)."""
    session = _session
    base, base_is_caller = session.thread_base(me)
    is_base = (frame.f_code is base) if not base_is_caller else \
        (frame.f_back is not None and frame.f_back.f_code is _BOOTSTRAP_INNER)
    unsure: List[types.CodeType] = []
    if not is_base:
        if _engine.frame_called_by_c(frame):
            # C code called this frame (a callback, a dunder method, an iterator's __next__): it may
            # catch the exception (hasattr, a for loop's StopIteration); when it does not, the frame
            # that called it sees the exception leave in turn and is captured there.
            return True
        why = _caught_further_out(frame.f_back, exc, base, base_is_caller, unsure)
        if why:
            return True
    stored = _raised_elsewhere(exc, frame)
    if stored:
        # The stack it was raised on is gone (an asyncio task's coroutine, a future's worker): a
        # snapshot here would run again the statement that re-raised it, not the one that failed.
        _failures[me] = (exc, stored)
        _given_up[me] = exc
        return True
    if bc.opname_at(frame.f_code, lasti * 2) == "FOR_ITER":
        # Raised by the iterator of a `for` loop (a generator, a __next__): running the `for`
        # statement again would start the loop over with the frame's state as it is now; a frame
        # further out runs its own statement again instead (the frames inside it are lost).
        _failures[me] = (exc, f"it was raised by the iterator of the for loop at line {_line_at(frame.f_code, lasti * 2)} of "
                              f"{frame.f_code.co_qualname} (a loop cannot be rebuilt while it fetches its next item)")
        return False
    start, keep = _statement_start(frame.f_code, lasti * 2)  # lasti: in code units
    if start is None:
        _failures[me] = (exc, keep)
        return False
    try:
        inner = _engine.crash_frame_record(frame, start, keep, depth, is_base)
        callers = [] if is_base else _engine.capture_stack(frame.f_back, base, True, base_is_caller)
    except StasisError as e:
        _failures[me] = (exc, str(e))
        return False
    earlier = _failures.get(me)
    note = ""
    if earlier is not None and earlier[0] is exc:   # an inner frame could not be captured
        note = (f". It is captured in {frame.f_code.co_qualname} (line {_line_at(frame.f_code, lasti * 2)}), further out than where it "
                f"was raised, because {earlier[1]}: resuming runs that statement again from its start")
    _write(exc, frame, callers + [inner], me, unsure, note)
    return True


def _caught_further_out(frame: Optional[types.FrameType], exc: BaseException, base: types.CodeType,
                        base_is_caller: bool, unsure: List[types.CodeType]) -> Optional[str]:
    """Why the exception may still be caught by a frame from `frame` out to the base frame, or
    None when none of them catches it. Each frame costs a dict lookup (the plan of its code at the
    instruction it is in, cached) unless an `except` clause or a `with` there has to be judged.
    `unsure` gets the code of each `__exit__` assumed to let the exception through."""
    plans = _plans
    entered_from_c = _engine.frame_called_by_c
    while frame is not None:
        code = frame.f_code
        key = (id(code), frame.f_lasti)
        hit = plans.get(key)
        if hit is None or hit[0] is not code:
            hit = plans[key] = (code, _Handlers.of(code).plan(frame.f_lasti))
            _engine.crash_hook_plan(code, frame.f_lasti, hit[1])   # the fast path's copy
        plan = hit[1]
        if plan is not _PASSES:
            why = _run_plan(plan, frame, exc, unsure)
            if why:
                return why
        if (code is base) if not base_is_caller else \
                (frame.f_back is not None and frame.f_back.f_code is _BOOTSTRAP_INNER):
            return None
        if entered_from_c(frame):
            return f"the C code that called {code.co_qualname} may catch it"
        frame = frame.f_back
    return "the frame that raised it is not on the program's stack"


# What an exception raised at one instruction of a code object meets in that frame, resolved once:
# _PASSES (nothing, or handlers that re-raise it unchanged: `with`, `finally`, cleanups, ours), or a
# tuple of steps in order — _CATCHES (a handler that does not re-raise), or a tuple of `except`
# clauses (each the instructions that load its exception type) to match against the exception.
_PASSES: tuple = ()
_CATCHES = "catches"
_ASYNC_FOR = "async for"
_plans: Dict[Tuple[int, int], Tuple[types.CodeType, tuple]] = {}   # (id(code), f_lasti) -> (code, plan)


def _run_plan(plan: tuple, frame: types.FrameType, exc: BaseException, unsure: List[types.CodeType]) -> Optional[str]:
    for step in plan:
        if step is _CATCHES:
            return f"an exception handler in {frame.f_code.co_qualname}"
        if step is _ASYNC_FOR:
            if isinstance(exc, StopAsyncIteration):
                return "async for"
            continue
        if type(step) is int:   # a `with` block: its __exit__ is the value under the handler's depth
            verdict = _exit_catches(_engine.frame_stack_value(frame, step - 1), exc, unsure)
            if verdict:
                return f"a `with` block in {frame.f_code.co_qualname} ({verdict})"
            continue
        for loads in step:
            kind = _clause_type(loads, frame)
            try:
                if kind is None or isinstance(exc, kind):
                    return f"an except clause in {frame.f_code.co_qualname}"
            except TypeError:
                return f"an except clause in {frame.f_code.co_qualname}"
    return None


# (__exit__ code, exception type) pairs seen letting the program go on after a capture (learned).
_swallowers: set = set()


def _exit_catches(exit: Any, exc: BaseException, unsure: List[types.CodeType]) -> Optional[str]:
    """Whether a `with` block's bound __exit__ swallows `exc`: a reason when it does (or may), None
    when it lets it through. Known context managers are asked; C ones never swallow; a Python
    __exit__ that only returns None or False lets it through; any other is assumed to let it
    through (and added to `unsure`) until it is seen swallowing one."""
    import contextlib
    func = getattr(exit, "__func__", None)
    cm = getattr(exit, "__self__", None)
    if not isinstance(func, types.FunctionType):
        return None                 # C (files, locks, ...) and other callables: they do not swallow
    if isinstance(cm, contextlib.suppress):
        return "contextlib.suppress" if isinstance(exc, cm._exceptions) else None
    if isinstance(cm, (contextlib._GeneratorContextManager, contextlib._AsyncGeneratorContextManager)):
        gen = getattr(cm, "gen", None)
        frame = getattr(gen, "gi_frame", None) or getattr(gen, "ag_frame", None)
        if frame is None:
            return None
        plan = _Handlers.of(frame.f_code).plan(frame.f_lasti)
        why = _run_plan(plan, frame, exc, unsure) if plan is not _PASSES else None
        return f"the @contextmanager {frame.f_code.co_qualname}: {why}" if why else None
    if isinstance(cm, contextlib.ExitStack):
        for _is_sync, cb in reversed(cm._exit_callbacks):
            why = _exit_catches(cb, exc, unsure)
            if why:
                return f"contextlib.ExitStack: {why}"
        return None
    expected = getattr(cm, "expected", None)
    if type(cm).__module__ == "unittest.case" and isinstance(expected, (type, tuple)):
        try:                        # assertRaises(...) as a context manager
            return "assertRaises" if isinstance(exc, expected) else None
        except TypeError:
            return "assertRaises"
    code = func.__code__
    if (code, type(exc)) in _swallowers:
        return f"{code.co_qualname} swallowed a {type(exc).__name__} before"
    if not _returns_only_false(code):
        unsure.append(code)
    return None


_false_returns: Dict[types.CodeType, bool] = {}


def _returns_only_false(code: types.CodeType) -> bool:
    """Every `return` of `code` returns the constant None or False."""
    hit = _false_returns.get(code)
    if hit is None:
        hit = True
        previous = None
        for _offset, op, arg in bc.unpack(code):
            if op == _RETURN_VALUE and not (previous is not None and previous[0] == _LOAD_CONST and
                                            code.co_consts[previous[1]] in (None, False)):
                hit = False
                break
            if op != _CACHE:
                previous = (op, arg)
        _false_returns[code] = hit
    return hit


_RETURN_VALUE, _LOAD_CONST, _CACHE = bc.OPMAP["RETURN_VALUE"], bc.OPMAP["LOAD_CONST"], bc.OPMAP["CACHE"]


def _clause_type(loads: tuple, frame: types.FrameType) -> Any:
    """The exception type (or tuple) an `except` clause's instructions load, None if unknown."""
    stack: List[Any] = []
    try:
        for opname, arg in loads:
            if opname == "LOAD_ATTR":
                stack[-1] = getattr(stack[-1], arg)
            elif opname == "BUILD_TUPLE":
                values = stack[len(stack) - arg:]
                del stack[len(stack) - arg:]
                stack.append(tuple(values))
            elif opname in ("LOAD_FAST", "LOAD_DEREF"):
                stack.append(frame.f_locals[arg])
            else:
                g = frame.f_globals
                if opname == "LOAD_NAME" and arg in frame.f_locals:
                    stack.append(frame.f_locals[arg])
                elif arg in g:
                    stack.append(g[arg])
                else:
                    b = g.get("__builtins__", builtins)
                    stack.append((b if isinstance(b, dict) else vars(b))[arg])
    except Exception:  # cannot tell: assume it catches
        return None
    return stack[0] if len(stack) == 1 else None


class _Handlers:
    """The exception handlers of one code object (its instructions decoded on first need)."""
    _cache: Dict[int, Tuple[types.CodeType, "_Handlers"]] = {}
    _LOADS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST", "LOAD_DEREF", "LOAD_ATTR", "BUILD_TUPLE")
    _CLEANUP = ("COPY", "POP_TOP", "SWAP", "POP_EXCEPT", "NOP", "RERAISE")

    @classmethod
    def of(cls, code: types.CodeType) -> "_Handlers":
        hit = cls._cache.get(id(code))
        if hit is None or hit[0] is not code:
            hit = (code, cls(code))
            cls._cache[id(code)] = hit
        return hit[1]

    def __init__(self, code: types.CodeType) -> None:
        self.code = code
        self.entries = bc.exception_entries(code)
        self._instrs: Optional[list] = None

    def _decode(self) -> None:
        self._instrs = bc.decode(self.code)
        self.index = {i.offset: n for n, i in enumerate(self._instrs)}
        self.ours = {i.offset for i in self._instrs if i.opname == "LOAD_CONST" and i.argval is _HOOK}

    def _entry(self, offset: int) -> Any:
        for e in self.entries:
            if e.start <= offset < e.end:
                return e
        return None

    def _reraise_after(self, n: int) -> Optional[int]:
        instrs = self._instrs
        while n < len(instrs):
            ins = instrs[n]
            if ins.opname == "RERAISE" or (ins.opname == "RAISE_VARARGS" and ins.arg == 0):
                return ins.offset
            n += 1
        return None

    def plan(self, offset: int) -> tuple:
        """What an exception raised at `offset` (a frame's f_lasti, in bytes) meets here."""
        steps: List[Any] = []
        for _ in range(64):
            e = self._entry(offset)
            if e is None:
                return tuple(steps)
            if self._instrs is None:
                self._decode()
            instrs = self._instrs
            n = self.index.get(e.target)
            if n is None:
                return tuple(steps + [_CATCHES])
            first = instrs[n]
            if first.opname == "PUSH_NULL" and n + 1 < len(instrs) and instrs[n + 1].offset in self.ours:
                return tuple(steps)                            # our own handler: it leaves the frame
            nxt_off: Optional[int] = None
            if first.opname == "PUSH_EXC_INFO" and n + 1 < len(instrs):
                nxt = instrs[n + 1]
                if nxt.opname == "POP_TOP":                     # a bare `except:`
                    if not self._only_clears_temporaries(n + 2):
                        return tuple(steps + [_CATCHES])
                    nxt_off = self._reraise_after(n + 2)
                elif nxt.opname == "WITH_EXCEPT_START":         # `with`: its __exit__ is asked
                    steps.append(e.depth)
                    nxt_off = self._reraise_after(n + 2)
                else:
                    clauses = self._clauses(n + 1)
                    if clauses is None:                         # not a clause: a `finally`
                        nxt_off = self._reraise_after(n + 1)
                    elif clauses is _CATCHES:
                        return tuple(steps + [_CATCHES])
                    else:
                        steps.append(clauses[0])
                        nxt_off = clauses[1]
            elif first.opname == "END_ASYNC_FOR":
                steps.append(_ASYNC_FOR)
                nxt_off = self._reraise_after(n)
            elif first.opname in self._CLEANUP:
                nxt_off = self._reraise_after(n)                # cleanup that re-raises
                if nxt_off is None or any(instrs[k].opname not in self._CLEANUP
                                          for k in range(n, self.index[nxt_off] + 1)):
                    return tuple(steps + [_CATCHES])
            if nxt_off is None:
                return tuple(steps + [_CATCHES])
            offset = nxt_off
        return tuple(steps + [_CATCHES])

    def _only_clears_temporaries(self, n: int) -> bool:
        instrs = self._instrs
        while n < len(instrs):
            ins = instrs[n]
            if ins.opname == "RAISE_VARARGS" and ins.arg == 0:
                return True
            if (ins.opname == "LOAD_CONST" and ins.argval is None) or (ins.opname == "COPY" and ins.arg == 1):
                pass    # `.t0 = .t1 = None`: None, COPY 1, STORE .t0, STORE .t1
            elif ins.opname in ("STORE_FAST", "DELETE_FAST", "STORE_NAME", "DELETE_NAME", "STORE_GLOBAL",
                                "DELETE_GLOBAL") and str(ins.argval).startswith("."):
                pass
            else:
                return False
            n += 1
        return False

    def _clauses(self, n: int) -> Any:
        """The `except T:` clauses from instruction n: (tuple of their type-loading instructions,
        offset of the RERAISE after the last one), _CATCHES when one cannot be read (or is an
        `except*`), None when n does not start a clause."""
        instrs = self._instrs
        found: List[tuple] = []
        for _ in range(64):
            loads: List[Tuple[str, Any]] = []
            k = n
            while k < len(instrs) and instrs[k].opname in self._LOADS:
                ins = instrs[k]
                loads.append((ins.opname, ins.arg if ins.opname == "BUILD_TUPLE" else ins.argval))
                k += 1
            if k >= len(instrs) or instrs[k].opname not in ("CHECK_EXC_MATCH", "CHECK_EG_MATCH") or not loads:
                if found and instrs[n].opname == "RERAISE":
                    return tuple(found), instrs[n].offset
                return None if not found else _CATCHES
            if instrs[k].opname == "CHECK_EG_MATCH":
                return _CATCHES
            found.append(tuple(loads))
            jump = instrs[k + 1] if k + 1 < len(instrs) else None
            if jump is None or not jump.opname.startswith("POP_JUMP"):
                return _CATCHES
            n = self.index.get(jump.argval, len(instrs))
            if n < len(instrs) and instrs[n].opname == "RERAISE":
                return tuple(found), instrs[n].offset
        return _CATCHES


# --- where the raising frame restarts -------------------------------------------------------------

_shapes: Dict[int, Tuple[types.CodeType, Any]] = {}


def _source_for(filename: str) -> Optional[bytes]:
    from ..compiler_hooks import hook
    data = hook.SOURCES.get(os.path.realpath(filename))
    if data is not None:
        return data
    for src in (getattr(_session, "sources", None) or {}).values():
        if src.path == filename:
            return src.source
    return None


def _statement_start(code: types.CodeType, lasti: int) -> Tuple[Optional[int], Any]:
    """(offset of the start of the source statement whose instruction `lasti` raised, number of
    loop/with values on the stack there), or (None, why not)."""
    hit = _shapes.get(id(code))
    if hit is None or hit[0] is not code:
        source = _source_for(code.co_filename)
        if source is None:
            return None, f"the source of {code.co_filename} is not known"
        from ..updater import frame_map, source_diff
        parsed = frame_map.SourceCode.parse(source, code.co_filename)
        d = source_diff.find_definition(parsed.defs, code)
        if d is None:
            return None, f"{code.co_qualname} is not a function of {code.co_filename} (a lambda or comprehension)"
        hit = (code, frame_map.CodeShape(code, d))
        _shapes[id(code)] = hit
    shape = hit[1]
    key, _k = shape.statement_at(lasti)
    if key is None:
        return None, f"the instruction that raised ({lasti}) is not part of a statement of {code.co_qualname}"
    start = shape.own[key][0]
    tags = shape.tags.get(start, ())
    if any(t not in _LOOP_VALUES for t in tags):
        return None, "the statement that raised it is inside an except or finally block (its exception state " \
                     "cannot be rebuilt)"
    return start, len(tags)


# --- writing and publishing --------------------------------------------------------------------

def _write(exc: BaseException, frame: types.FrameType, frames: List[dict], me: int,
           unsure: List[types.CodeType], note: str = "") -> None:
    from . import freeze
    from .layout import CrashRecord
    session = _session
    thread = threading.current_thread()
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    tb_text = "Traceback (the stack as it stood when the exception was raised):\n" + \
        "".join(_program_stack(frame, frames)) + summary + "\n"
    temp = f"{_path}.{os.getpid()}.{me}.partial"
    session.note_request("crash")
    try:
        threads = freeze.freeze_threads(session.thread_base, session.options.safe_point_timeout, own=(me, frames))
        if threads is None:
            _failures[me] = (exc, "the program's other threads did not reach a safe point")
            return
        for exception in (exc, None):
            session.crash = CrashRecord(me, thread.name, exception, summary, tb_text)
            try:
                session.write_snapshot(threads, temp)
                break
            except StasisError as e:
                if exception is None:
                    _failures[me] = (exc, f"the snapshot could not be written: {e}")
                    return
    finally:
        session.crash = None
        _engine.thaw()
        session.requested = False
    with _lock:
        old = _pending.pop(me, None)
        if old is not None:
            _discard(old[1])
        _pending[me] = (exc, temp, tuple(unsure), note)
        _failures.pop(me, None)


def _program_stack(frame: types.FrameType, records: List[dict]) -> List[str]:
    """The captured frames formatted like a traceback (outermost first), each at its line."""
    from ..updater.frame_map import line_of
    entries = []
    f: Optional[types.FrameType] = frame
    for record in reversed(records):
        if f is None:
            break
        code = record["code"]
        line = line_of(code, record["offset"]) if record["row"] is None else f.f_lineno
        entries.append((code.co_filename, line, code.co_name, None))
        f = f.f_back
    return traceback.StackSummary.from_list(list(reversed(entries))).format()


def publish(exc: BaseException, thread: Any = None) -> None:
    """Called once `exc` has ended the program (or a thread): the crash snapshot written for it
    becomes the file at the crash path, and stderr says so; or says why there is none."""
    if _session is None or exc is None or not isinstance(exc, Exception):
        return
    ident = thread.ident if thread is not None else threading.get_ident()
    with _lock:
        pending = _pending.pop(ident, None)
    if pending is not None and pending[0] is exc:
        try:
            os.replace(pending[1], _path)
        except OSError as e:
            sys.stderr.write(f"stasis: the crash snapshot could not be put at {_path}: {e.strerror}\n")
            return
        sys.stderr.write(f"stasis: crash snapshot written to {_path} (before the stack unwound; "
                         f"`stasis debug {_path}` opens pdb where it was raised; `stasis resume {_path} "
                         f"--patch FIXED.py` runs the fixed statement and goes on){pending[3]}\n")
        sys.stderr.flush()
        return
    if pending is not None:
        _discard(pending[1])
    _given_up.pop(ident, None)
    failure = _failures.pop(ident, None)
    why = failure[1] if failure is not None and failure[0] is exc else \
        "it was not raised in code of the program's own modules that Stasis can rebuild"
    sys.stderr.write(f"stasis: no crash snapshot was written: {why}\n")
    sys.stderr.flush()


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _discard_all() -> None:
    with _lock:
        for pending in _pending.values():
            _discard(pending[1])
        _pending.clear()


def crash_path(snapshot_path: str, option: str) -> str:
    """--snapshot-on-crash=PATH, or beside the suspension snapshot: STEM.crash.snap."""
    if option:
        return os.path.abspath(option)
    stem = snapshot_path[:-5] if snapshot_path.endswith(".snap") else snapshot_path
    return stem + ".crash.snap"

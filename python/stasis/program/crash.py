"""Crash snapshots (`stasis run/resume --snapshot-on-crash`): when an exception is about to end the
program (raised in the main thread and caught by no frame up to __main__, or a thread's uncaught
exception), a program snapshot is written *before the stack unwinds*: every frame as it stood, the
innermost program frame positioned at the start of the statement that raised, so that resuming
runs that statement again (with a patch that fixes it: the new statement). The program then ends
exactly as it would have (traceback, exit status) and stderr says where the snapshot is.

How, without tracing: the program's own code objects get one more exception handler per range of
bytecode that no handler of theirs covers (`instrument`): extra exception-table entries pointing at
a few instructions appended after the code, which call `_on_exception(exc, lasti, depth)` and
re-raise the exception unchanged (RERAISE with the original instruction offset, so tracebacks are
untouched). Each entry's depth keeps the frame's loop iterators and `with` exits on its value
stack. Nothing changes on the path without exceptions (CPython 3.11's exception table is zero
cost); an exception caught inside the frame that raised it never reaches these handlers. One
that leaves a frame calls the hook once per frame it leaves, and the hook decides from the
exception tables of the frames further out (which handlers would catch it: `except` clauses are
evaluated against the exception, `with` and `finally` let it through) whether anything up to
the base frame catches it. Only when nothing does are the stacks captured (capture.cpp for the
callers, crash_capture.cpp for the raising frame) and the snapshot written, to a temporary file
that is published (renamed, announced) only when the exception really ends the program: a `with`
whose __exit__ swallows it, or C code that catches it, leave nothing behind.
"""
from __future__ import annotations

import atexit
import builtins
import dis
import opcode
import os
import sys
import threading
import traceback
import types
from typing import Any, Dict, List, Optional, Tuple

from .. import _engine
from ..errors import StasisError

_LOOP_VALUES = frozenset({"for_iter", "async_for_iter", "with_exit", "comp_acc"})
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200   # generator, coroutine, iterable coroutine, async generator

from .freeze import BOOTSTRAP_INNER as _BOOTSTRAP_INNER  # noqa: E402 - the base of other threads' stacks

_session: Any = None          # the Session whose program is watched (None: the hook does nothing)
_path: Optional[str] = None   # where a crash snapshot goes
_pending: Dict[int, Tuple[Any, str]] = {}       # thread ident -> (exception, temporary file)
_failures: Dict[int, Tuple[Any, str]] = {}      # thread ident -> (exception, why no snapshot)
_lock = threading.Lock()


# --- instrumentation of the program's code ------------------------------------------------------

def _hook_marker(code: types.CodeType) -> bool:
    return any(c is _on_exception for c in code.co_consts)


def _is_ours(code: types.CodeType, target: int) -> bool:
    """Whether the handler at `target` is one `instrument` added (it calls _on_exception)."""
    if not _hook_marker(code):
        return False
    first = [i for i in dis.get_instructions(code) if i.offset >= target][:2]
    return len(first) == 2 and first[0].opname == "PUSH_NULL" and first[1].argval is _on_exception


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


def _depths(code: types.CodeType) -> Dict[int, int]:
    """For each instruction: how many values at the bottom of its value stack a handler can keep
    while it raises (loop iterators and `with` exits, and never a value the instruction consumes)."""
    from ..compiler_hooks.resume_points import stack_tags
    instrs, before = stack_tags(code)
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
            arg = ins.arg if ins.opcode >= opcode.HAVE_ARGUMENT else None
            effects = [dis.stack_effect(ins.opcode, arg, jump=j) for j in (False, True)]
        except ValueError:
            pass
        out[ins.offset] = max(0, min(lead, len(st) + min(min(effects), 0) - 1))
    return out


def _varint(value: int, first: bool) -> bytes:
    groups = [value & 63]
    value >>= 6
    while value:
        groups.append(value & 63)
        value >>= 6
    groups.reverse()
    out = bytearray(g | 64 for g in groups[:-1]) + bytearray([groups[-1]])
    if first:
        out[0] |= 128
    return bytes(out)


def _emit(out: bytearray, name: str, arg: int = 0) -> None:
    op = dis.opmap[name]
    if arg > 255:
        for shift in (24, 16, 8):
            if arg >> shift:
                out += bytes([dis.opmap["EXTENDED_ARG"], (arg >> shift) & 255])
    out += bytes([op, arg & 255])
    out += b"\0\0" * opcode._inline_cache_entries[op]  # type: ignore[attr-defined]


def _add_handlers(code: types.CodeType) -> types.CodeType:
    entries = dis._parse_exception_table(code)  # type: ignore[attr-defined]
    size = len(code.co_code)
    covered = bytearray(size // 2)
    for e in entries:
        for u in range(e.start // 2, e.end // 2):
            covered[u] = 1
    depths = _depths(code)
    # Ranges of uncovered instructions with the same depth.
    gaps: List[Tuple[int, int, int]] = []
    for ins in dis.get_instructions(code):
        if covered[ins.offset // 2]:
            continue
        d = depths.get(ins.offset, 0)
        end = ins.offset + 2 + 2 * opcode._inline_cache_entries[ins.opcode]  # type: ignore[attr-defined]
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
    head.append(_on_exception)
    stubs: Dict[int, int] = {}
    extra = bytearray()
    for d in sorted({g[2] for g in gaps}):
        stubs[d] = size + len(extra)
        head.append(d)
        # stack: [..d values.., lasti, exc]  ->  _on_exception(exc, lasti, d); RERAISE 1
        _emit(extra, "PUSH_NULL")
        _emit(extra, "LOAD_CONST", hook_index)
        _emit(extra, "COPY", 3)     # exc
        _emit(extra, "COPY", 5)     # lasti
        _emit(extra, "LOAD_CONST", len(head) - 1)
        _emit(extra, "PRECALL", 3)
        _emit(extra, "CALL", 3)
        _emit(extra, "POP_TOP")
        _emit(extra, "RERAISE", 1)
    table = [(e.start, e.end, e.target, e.depth, e.lasti) for e in entries]
    table += [(a, b, stubs[d], d, True) for a, b, d in gaps]
    table.sort()
    exc = bytearray()
    for start, end, target, depth, lasti in table:
        exc += _varint(start // 2, True) + _varint((end - start) // 2, False) + _varint(target // 2, False)
        exc += _varint((depth << 1) | int(lasti), False)
    units = len(extra) // 2
    lines = bytearray()
    while units:
        n = min(units, 8)
        lines.append(0x80 | (15 << 3) | (n - 1))   # "no location" for the appended instructions
        units -= n
    return code.replace(co_code=code.co_code + bytes(extra), co_consts=tuple(head + tail),
                        co_exceptiontable=bytes(exc), co_linetable=code.co_linetable + bytes(lines),
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

def enable(session: Any, path: str) -> None:
    """Watch `session`'s program: crash snapshots go to `path`."""
    global _session, _path
    _session, _path = session, os.path.abspath(path)
    from ..compiler_hooks import hook
    hook.OWN_CODE_TRANSFORM = instrument
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
    pending = _pending.get(me)
    if pending is not None and pending[0] is exc:
        return      # captured where it was raised; this is an outer frame it is passing through
    # (Nothing else is remembered between calls: holding on to an exception would keep its
    # traceback's frames alive, and an id could be reused by the next one.)
    frame = sys._getframe(1)
    try:
        _consider(frame, exc, lasti, depth, me)
    except BaseException as e:  # noqa: BLE001 - never disturb the program's own exception
        _failures[me] = (exc, f"internal error of Stasis: {type(e).__name__}: {e}")
    finally:
        del frame


def _consider(frame: types.FrameType, exc: BaseException, lasti: int, depth: int, me: int) -> bool:
    """Captures the program if nothing catches `exc` further out. True when outer frames need not
    look at it again (caught further out, or captured here)."""
    session = _session
    base, base_is_caller = session.thread_base(me)
    is_base = (frame.f_code is base) if not base_is_caller else \
        (frame.f_back is not None and frame.f_back.f_code is _BOOTSTRAP_INNER)
    if not is_base:
        why = _caught_further_out(frame.f_back, exc, base, base_is_caller)
        if why:
            return True
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
    _write(exc, frame, callers + [inner], me)
    return True


def _caught_further_out(frame: Optional[types.FrameType], exc: BaseException, base: types.CodeType,
                        base_is_caller: bool) -> Optional[str]:
    """Why the exception may still be caught by a frame from `frame` out to the base frame, or
    None when none of them catches it."""
    while frame is not None:
        handlers = _Handlers.of(frame.f_code)
        if handlers.entries:
            why = handlers.catches(frame, frame.f_lasti, exc)
            if why:
                return why
        if (frame.f_code is base) if not base_is_caller else \
                (frame.f_back is not None and frame.f_back.f_code is _BOOTSTRAP_INNER):
            return None
        frame = frame.f_back
    return "the frame that raised it is not on the program's stack"


class _Handlers:
    """What the exception handlers of one code object do with an exception."""
    _cache: Dict[int, Tuple[types.CodeType, "_Handlers"]] = {}

    @classmethod
    def of(cls, code: types.CodeType) -> "_Handlers":
        hit = cls._cache.get(id(code))
        if hit is None or hit[0] is not code:
            hit = (code, cls(code))
            cls._cache[id(code)] = hit
        return hit[1]

    def __init__(self, code: types.CodeType) -> None:
        # Only the entries a frame can be in while it calls: our own handlers never catch.
        self.entries = [e for e in dis._parse_exception_table(code)  # type: ignore[attr-defined]
                        if not _is_ours(code, e.target)]
        self.instrs = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
        self.index = {i.offset: n for n, i in enumerate(self.instrs)}
        self.ours = {i.offset for i in self.instrs if i.opname == "LOAD_CONST" and i.argval is _on_exception}

    def _entry(self, offset: int) -> Any:
        for e in self.entries:
            if e.start <= offset < e.end:
                return e
        return None

    def _reraise_after(self, n: int) -> Optional[int]:
        while n < len(self.instrs):
            ins = self.instrs[n]
            if ins.opname == "RERAISE" or (ins.opname == "RAISE_VARARGS" and ins.arg == 0):
                return ins.offset
            n += 1
        return None

    def catches(self, frame: types.FrameType, offset: int, exc: BaseException) -> Optional[str]:
        for _ in range(64):
            e = self._entry(offset)
            if e is None:
                return None
            n = self.index.get(e.target)
            if n is None:
                return "an unknown exception handler"
            first = self.instrs[n]
            if first.opname == "PUSH_NULL" and n + 1 < len(self.instrs) and self.instrs[n + 1].offset in self.ours:
                return None                                     # our own handler: it leaves the frame
            if first.opname == "PUSH_EXC_INFO":
                nxt = self.instrs[n + 1]
                if nxt.opname == "POP_TOP":                     # a bare `except:`
                    if not self._only_clears_temporaries(n + 2):
                        return f"a bare except in {frame.f_code.co_qualname}"
                    nxt_off = self._reraise_after(n + 2)
                elif nxt.opname == "WITH_EXCEPT_START":          # `with`: assumed to let it through
                    nxt_off = self._reraise_after(n + 2)
                else:
                    clause = self._clauses(frame, n + 1, exc)
                    if clause is None:                          # not a clause: a `finally`
                        nxt_off = self._reraise_after(n + 1)
                    elif clause is True:
                        return f"an except clause in {frame.f_code.co_qualname}"
                    else:
                        nxt_off = clause
            elif first.opname == "END_ASYNC_FOR":
                if isinstance(exc, StopAsyncIteration):
                    return "async for"
                nxt_off = self._reraise_after(n)
            elif first.opname in ("COPY", "POP_TOP", "SWAP", "POP_EXCEPT", "NOP"):
                nxt_off = self._reraise_after(n)                # cleanup that re-raises
                if nxt_off is None or any(self.instrs[k].opname not in ("COPY", "POP_TOP", "SWAP", "POP_EXCEPT",
                                                                         "NOP", "RERAISE")
                                          for k in range(n, self.index[nxt_off] + 1)):
                    return f"an exception handler in {frame.f_code.co_qualname}"
            else:
                return f"an exception handler in {frame.f_code.co_qualname}"
            if nxt_off is None:
                return f"an exception handler in {frame.f_code.co_qualname}"
            offset = nxt_off
        return "exception handlers too deep to follow"

    def _only_clears_temporaries(self, n: int) -> bool:
        while n < len(self.instrs):
            ins = self.instrs[n]
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

    def _clauses(self, frame: types.FrameType, n: int, exc: BaseException) -> Any:
        """Walks `except T:` clauses from instruction n: True when one matches, the offset of the
        RERAISE after the last one when none does, None when n does not start a clause."""
        seen = False
        for _ in range(64):
            stack: List[Any] = []
            k = n
            while k < len(self.instrs) and self.instrs[k].opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST",
                                                                     "LOAD_DEREF", "LOAD_ATTR", "BUILD_TUPLE"):
                ins = self.instrs[k]
                try:
                    if ins.opname == "LOAD_ATTR":
                        stack[-1] = getattr(stack[-1], ins.argval)
                    elif ins.opname == "BUILD_TUPLE":
                        values = stack[len(stack) - ins.arg:]
                        del stack[len(stack) - ins.arg:]
                        stack.append(tuple(values))
                    elif ins.opname in ("LOAD_FAST", "LOAD_DEREF"):
                        stack.append(frame.f_locals[ins.argval])
                    else:
                        g = frame.f_globals
                        b = g.get("__builtins__", builtins)
                        b = b if isinstance(b, dict) else vars(b)
                        name = ins.argval
                        stack.append(frame.f_locals[name] if ins.opname == "LOAD_NAME" and name in frame.f_locals
                                     else g[name] if name in g else b[name])
                except Exception:  # noqa: BLE001 - cannot tell: assume it catches
                    return True
                k += 1
            if k >= len(self.instrs) or self.instrs[k].opname not in ("CHECK_EXC_MATCH", "CHECK_EG_MATCH") \
                    or len(stack) != 1:
                if seen and self.instrs[n].opname == "RERAISE":
                    return self.instrs[n].offset
                return None if not seen else True
            if self.instrs[k].opname == "CHECK_EG_MATCH":
                return True
            try:
                if isinstance(exc, stack[0]):
                    return True
            except TypeError:
                return True
            seen = True
            jump = self.instrs[k + 1]
            if not jump.opname.startswith("POP_JUMP"):
                return True
            n = self.index.get(jump.argval, len(self.instrs))
            if n < len(self.instrs) and self.instrs[n].opname == "RERAISE":
                return self.instrs[n].offset
        return True


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

def _write(exc: BaseException, frame: types.FrameType, frames: List[dict], me: int) -> None:
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
        _pending[me] = (exc, temp)
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
                         f"--patch FIXED.py` runs the fixed statement and goes on)\n")
        sys.stderr.flush()
        return
    if pending is not None:
        _discard(pending[1])
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
        for _exc, path in _pending.values():
            _discard(path)
        _pending.clear()


def crash_path(snapshot_path: str, option: str) -> str:
    """--snapshot-on-crash=PATH, or beside the suspension snapshot: STEM.crash.snap."""
    if option:
        return os.path.abspath(option)
    stem = snapshot_path[:-5] if snapshot_path.endswith(".snap") else snapshot_path
    return stem + ".crash.snap"

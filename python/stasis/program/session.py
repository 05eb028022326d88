"""The program running under Stasis in this process: its suspension requests, the coordinator
that captures and writes the program snapshot, and the in-program API (stasis.suspend,
stasis.checkpoint).

A suspension request (quota timer, signal, `stasis.suspend()`, `--suspend-after N`) arms a C trace
function on the program's threads; at their next safe points the stacks are captured (freeze.py),
stdout and stderr are flushed, the snapshot is written atomically, and the process ends with
status 75 before any other Python code runs."""
from __future__ import annotations

import os
import random
import sys
import threading
import time
import types
from typing import Any, Callable, List, Optional, Sequence

from .. import _engine, internal_threads, modules
from ..errors import EXIT_SUSPENDED, NotAvailableError, NotSuspendableError, StasisError, SuspensionMissedError
from . import freeze, periodic, process_state, triggers
from . import progress as _progress
from .layout import ProgramMeta, ProgramState, Suspension, ThreadRecord
from .options import Options


_RETRY_PAUSE = 0.001      # pauses before a failed capture is tried again
_RETRY_PAUSE_MAX = 0.2


class Session:
    """The program running under Stasis in this process (one per process)."""

    def __init__(self, options: Options, target: str, generation: int, hash_seed: int) -> None:
        self.options = options
        self.target = target
        self.generation = generation      # how many times this program was suspended before
        self.hash_seed = hash_seed
        self.base_code: Optional[types.CodeType] = None
        self.selection: Any = None
        self.path = os.path.abspath(options.snapshot or os.path.splitext(os.path.basename(target))[0] + ".snap")
        self.requested = False
        self.trigger = ""                 # what made the pending request (Suspension.trigger)
        self.requested_at = 0.0           # when (Unix seconds)
        self.missed: Optional[str] = None  # why a request was given up (then the exit status is 104)
        self.failure = ""                  # why the latest capture of the pending request failed
        self.captured_at = 0.0             # when every thread's stack was captured (Unix seconds)
        # A resumed snapshot written by stasis.checkpoint(): the (new) ident of the thread whose
        # checkpoint() call returns True when it is issued again by replay.
        self.resumed_checkpoint_ident: Optional[int] = None
        # Carried from snapshot to snapshot: the sources of the program's own modules as they were
        # compiled (a resumed program does not import them again), the patches applied so far,
        # and the modules that patches added (update modules: their functions may be in the heap).
        self.sources: dict = {}
        self.patches: list = []
        self.patch_modules: List[str] = []
        self.crash: Any = None            # set while a crash snapshot is written (crash.py)
        # What was run (ProgramMeta.program): `stasis run --resume-if-present` resumes only a
        # snapshot of the same script and arguments.
        self.program: List[str] = []

    @property
    def roots(self) -> List[str]:
        return list(getattr(self.selection, "roots", ()))

    # --- requests --------------------------------------------------------------------------------

    def note_request(self, trigger: str) -> None:
        self.requested = True
        self.failure = ""
        self.trigger = trigger
        self.requested_at = time.time()

    def request(self, trigger: str = "api") -> None:
        """Suspend the program at the next point where every thread is at a safe point or blocked
        in a call that can be issued again (from any thread: signal handler, quota timer,
        stasis.suspend())."""
        if self.requested:
            return
        self.note_request(trigger)
        me = threading.get_ident()
        if me not in internal_threads.idents and me in threading._active:
            # A program thread asking (stasis.suspend(), the signal handler in the main thread)
            # stops at its own next safe point, not at one after the coordinator has started.
            base, is_caller = self.thread_base(me)
            _engine.arm_thread(me, base, is_caller, no_park_file=freeze.no_park_files())
        if me in internal_threads.idents:
            self._coordinate()  # a thread of Stasis asking (the quota timer) coordinates itself
        else:
            self.start_coordinator()

    def start_coordinator(self) -> None:
        internal_threads.start(self._coordinate)

    def thread_base(self, ident: int) -> tuple:
        """(base code, base_is_caller) of a program thread's stack: the main thread's base frame runs
        the __main__ code; another thread's is the frame Thread._bootstrap_inner called (run())."""
        if ident == threading.main_thread().ident:
            return self.base_code, False
        return freeze.BOOTSTRAP_INNER, True

    # --- capture ---------------------------------------------------------------------------------

    def _coordinate(self) -> None:
        """The coordinator (a thread of Stasis, invisible to `threading`): brings every thread of
        the program to a capturable state, writes the snapshot and ends the process with status 75
        before any program thread runs again. A capture that fails (an object that cannot be
        captured at this safe point) lets the program go on to later safe points and tries again,
        until --safe-point-timeout after the request; then the program goes on for good and, when
        it ends, `stasis run`/`resume` exit with SuspensionMissedError's status."""
        periodic.suspension_starts(self)  # no checkpoint from now on; one being written is dropped
        deadline = freeze.program_clock() + self.options.safe_point_timeout  # rewriting time excluded
        failure, retry = "", False
        while True:
            remaining = deadline - freeze.program_clock()
            why: List[str] = []
            started = time.monotonic()
            try:
                calls: dict = {}
                threads = freeze.freeze_threads(self.thread_base, max(remaining, 0.0), on_timeout=why.append,
                                                at_once=retry, blocked_calls=calls) if remaining > 0 else None
                if threads is not None:
                    self.captured_at = time.time()
                    self.write_snapshot(threads, self.path, progress=True,
                                        before_commit=lambda: _still_blocked(calls))
                    break
                # A capture that failed says more than the later places that were avoided.
                failure = failure or (why[0] if why else "") or "no safe point was reached"
            except Exception as e:  # whatever failed, the program must not stay parked
                from ..handlers import net
                net.capture_aborted()  # connections saved by TCP repair go on
                _engine.avoid_parked_points()  # the next attempt moves on to later safe points
                _engine.thaw()
                failure = str(e) if isinstance(e, StasisError) else f"internal error: {type(e).__name__}: {e}"
                self.failure = failure
                if isinstance(e, StasisError) and freeze.program_clock() < deadline:
                    # The program runs on, and the next attempt takes each thread at its very next
                    # safe point (the object may be gone there); a pause as long as the attempt
                    # keeps at least half of the time for the program.
                    time.sleep(max(_RETRY_PAUSE, min(time.monotonic() - started, _RETRY_PAUSE_MAX)))
                    retry = True
                    continue
            _engine.forget_avoided()
            self._give_up(failure)
            return
        sys.stderr.write(_progress.suspended_line(self.path, self.requested_at, self.captured_at))
        process_state.flush_std_streams()
        os._exit(EXIT_SUSPENDED)

    def _give_up(self, why: str) -> None:
        from ..compiler_hooks import hook
        why = hook.true_advice(why)
        sys.stderr.write(f"stasis: could not suspend within {self.options.safe_point_timeout:g} s: {why}; "
                         "the program keeps running\n")
        sys.stderr.flush()
        self.missed = why
        self.requested = False
        triggers.record_give_up(why)
        periodic.suspension_abandoned(self)  # the checkpoints go on

    def final_status(self, status: int) -> int:
        """The exit status of `stasis run`/`resume` for a program that ended with `status`."""
        if self.missed is None and self.requested and self.failure:
            self.missed = self.failure  # ended while the request was still retried
        elif self.missed is None and self.requested and self.trigger == "api":
            # stasis.suspend(), and no safe point came before the end.
            self.missed = "it ended before reaching a safe point"
        elif self.missed is None and self.requested and (self.trigger == "quota" or self.trigger.startswith("signal")):
            # The program's own end came first: its work is done, and its status says so.
            sys.stderr.write(f"stasis: the program ended (status {int(status)}) before reaching a safe point after "
                             f"the suspension request ({self.trigger}); nothing to suspend\n")
            sys.stderr.flush()
        if self.missed is None:
            return status
        sys.stderr.write(f"stasis: the program ended (status {int(status)}) without being suspended as requested "
                         f"({self.missed})\n")
        sys.stderr.flush()
        return SuspensionMissedError.code

    def own_modules(self) -> dict:
        own = modules.program_modules(self.roots)
        for name in self.patch_modules:
            if name in sys.modules:
                own[name] = sys.modules[name]
        return own

    def program_state(self, threads: List[ThreadRecord], checkpoint: Optional[int],
                      pending_writes: Sequence[tuple] = ()) -> ProgramState:
        import stasis
        own = self.own_modules()
        return ProgramState(
            target=self.target, argv=list(sys.argv), path=list(sys.path), cwd=os.getcwd(),
            roots=self.roots, rewrite=list(self.options.rewrite), no_rewrite=list(self.options.no_rewrite),
            handlers=[r for r in stasis._registrations.values() if r.module in own],
            modules={name: modules.program_globals(mod) for name, mod in own.items()},
            base_code=self.base_code, threads=threads, checkpoint=checkpoint, random=random.getstate(),
            library=process_state.library_states(), recursion_limit=sys.getrecursionlimit(),
            signals=process_state.signal_handlers(set(self.options.signal_numbers())),
            atexit=process_state.ATEXIT.program_calls(own), generation=self.generation + 1,
            suspension=Suspension(self.trigger or "api", self.requested_at or time.time(),
                                  self.captured_at or time.time()),
            sources=_sources(own, self.sources), patches=list(self.patches), crash=self.crash,
            pending_writes=list(pending_writes))

    def write_snapshot(self, threads: List[ThreadRecord], path: str, checkpoint: Optional[int] = None,
                       pending_writes: Sequence[tuple] = (), level: int = 3, progress: bool = False,
                       before_commit: Optional[Callable[[], None]] = None) -> None:
        """Writes the program snapshot; `checkpoint` is the thread whose stasis.checkpoint() call
        returns True on resume; `pending_writes` are file bytes a checkpoint writer found buffered;
        `level` is zstd's (stasis restart writes a transient snapshot fast); `progress`: a long
        write shows a progress line when stderr is a terminal (a suspension's, not a checkpoint's);
        `before_commit` is called once the file is written, before it takes the name `path`: if it
        raises, the file is dropped and `path` keeps what it held."""
        from .. import _ensure_builtin_handlers, handlers  # noqa: F401
        _ensure_builtin_handlers()
        process_state.flush_std_streams()
        state = self.program_state(threads, checkpoint, pending_writes)
        own = list(state.modules)
        meta = ProgramMeta(modules=own, sys_path=[p for p in sys.path if isinstance(p, str)], roots=self.roots,
                           rewrite=list(self.options.rewrite), no_rewrite=list(self.options.no_rewrite),
                           threads=len(threads),
                           handler_modules=_handler_modules(own),
                           program=list(self.program))
        _engine.dump(state.to_payload(), path, kind="program", hash_seed=self.hash_seed,
                     key=_key(self.options.key_file), by_value=own, meta=meta.to_json(), level=level,
                     progress=_progress.label("writing", path) if progress else None,
                     progress_delay=_progress.delay(), before_commit=before_commit)

    # --- running ---------------------------------------------------------------------------------

    def execute(self, code: types.CodeType, globals_: dict, selection: Any) -> None:
        """Runs the main script's code (called by compiler_hooks.runner)."""
        if self.options.snapshot_on_crash is not None:
            from . import crash
            code = self.base_code = crash.instrument_module(code)
            crash.enable(self, crash.crash_path(self.path, self.options.snapshot_on_crash))
        self.base_code = code
        self.selection = selection
        process_state.ATEXIT.install()
        triggers.install(self)
        exec(code, globals_)


def _still_blocked(calls: dict) -> None:
    """A thread taken as blocked in a call that takes data must be in it still once the snapshot
    is written (the GIL was let go meanwhile): a call that returned (a recv that got data) holds
    what it got outside the capture, lost with the program. The capture is then taken again."""
    if not freeze.still_blocked(calls):
        raise NotSuspendableError("a thread's blocking call returned while the snapshot was written")


def _sources(own: dict, known: dict) -> dict:
    """{module name: ModuleSource} of the program's own modules: the bytes the import hook compiled
    (compiler_hooks.hook.SOURCES), else what the snapshot this run resumed from carried."""
    import hashlib
    from ..compiler_hooks import hook
    from .layout import ModuleSource
    out = {}
    for name, mod in own.items():
        path = getattr(mod, "__file__", None)
        data = hook.SOURCES.get(os.path.realpath(path)) if isinstance(path, str) else None
        if data is not None:
            out[name] = ModuleSource(path, data, hashlib.sha256(data).hexdigest())
        elif name in known:
            out[name] = known[name]
    return out


def _key(key_file: Optional[str]) -> Optional[bytes]:
    from .. import read_key
    return read_key(key_file)


# --- the current session and the in-program API ---------------------------------------------------

_session: Optional[Session] = None


def current() -> Optional[Session]:
    return _session


def _handler_modules(own: List[str]) -> List[str]:
    """Modules that resume imports before loading: library modules whose types have built-in
    handlers, and the modules (not the program's own: those travel in the snapshot) that
    registered handlers with stasis.register."""
    import stasis
    from .. import handlers
    names = [m for m in handlers.MODULE_HANDLERS if m in sys.modules]
    for r in stasis._registrations.values():
        if r.module not in own and r.module not in names and r.module in sys.modules:
            names.append(r.module)
    return names


def set_current(session: Session) -> None:
    global _session
    _session = session


def run(target: str, args: list, *, module: bool, options: Options) -> int:
    from ..compiler_hooks import runner
    seed = process_state.ensure_hash_seed()
    process_state.pure_python_asyncio()
    from .. import handlers
    handlers.prepare_program_process()
    name = target.rsplit(".", 1)[-1] if module else target
    session = Session(options, name, generation=0, hash_seed=seed)
    session.program = program_identity(target, args, module=module)
    set_current(session)
    status = runner.run(target, args, module=module, rewrite=options.rewrite, no_rewrite=options.no_rewrite,
                        execute=session.execute)
    return session.final_status(status)


def program_identity(target: str, args: Sequence[str], *, module: bool) -> List[str]:
    """What a snapshot records as the program it is of (ProgramMeta.program)."""
    if module:
        return ["module", target, *args]
    return ["script", os.path.realpath(target), *args]


def checkpoint(path: str, caller: types.FrameType) -> bool:
    """Writes a snapshot of the whole program as it is at the caller's call of checkpoint();
    returns False now, and True when a resumed run re-issues that call."""
    session = _session
    me = threading.get_ident()
    if session is not None and session.resumed_checkpoint_ident == me:
        session.resumed_checkpoint_ident = None
        return True
    if session is None:
        raise NotAvailableError("stasis.checkpoint() works in a program started with `stasis run`")
    if session.requested:
        raise NotSuspendableError("stasis.checkpoint() was called while a suspension of the program is "
                                  "in progress")
    base, is_caller = session.thread_base(me)
    frames = _engine.capture_stack(caller, base, True, is_caller)
    # Written by a forked child while the program goes on (periodic.py).
    periodic.checkpoint_now(session, os.path.abspath(path), own=(me, frames))
    return False


def suspend(path: Optional[str] = None) -> None:
    """Write a snapshot of the whole program at the next safe point and exit with status 75."""
    if _session is None:
        raise NotAvailableError("stasis.suspend() works in a program started with `stasis run`")
    if path is not None:
        _session.path = os.path.abspath(path)
    _session.request("api")

"""Whole-program suspension and resume: triggers, the program snapshot, and the resumed run.

Counterparts: snapshot/capture.cpp (which stack is a safe point, and its frame records),
restore/replay.cpp (rebuilding those frames by replay), compiler_hooks/runner.py (runs the
script; calls `Session.execute` to run the main code). The snapshot's root object is the dict
built by `Session.program_state` (layout PROGRAM_LAYOUT); its payload kind is "program".

A suspension request (quota timer, signal, `stasis.suspend()`, `--suspend-after N`) installs a
C trace function on the main thread; at its next safe point the stack is captured, stdout and
stderr are flushed, the snapshot is written atomically, and the process ends with status 75
before any other Python code runs.
"""
from __future__ import annotations

import importlib
import json
import os
import random
import signal as _signal
import _thread
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any, Optional

from . import _engine, internal_threads
from .errors import (EXIT_SUSPENDED, IncompatibleSnapshotError, NotAvailableError, NotSuspendableError,
                     StasisError)

PROGRAM_LAYOUT = 4  # keys of the program root dict; bump with any change to them

# Module attributes rebuilt on resume instead of being captured (import machinery objects).
_MODULE_DUNDERS_NOT_CAPTURED = ("__builtins__", "__loader__", "__spec__", "__cached__")


@dataclass
class Options:
    snapshot: Optional[str] = None        # where a suspension writes (default: SCRIPT stem + .snap)
    quota: Optional[float] = None         # wall-clock seconds before a suspension request
    suspend_after: Optional[int] = None   # suspend at the N-th safe point (a testing aid)
    signal: str = "SIGUSR1"               # the signal that requests suspension
    safe_point_timeout: float = 10.0      # give up a request after this long; the program goes on
    key_file: Optional[str] = None
    rewrite: list = field(default_factory=list)
    no_rewrite: list = field(default_factory=list)


def _signal_number(name: str) -> int:
    n = name.upper()
    if not n.startswith("SIG"):
        n = "SIG" + n
    try:
        return int(getattr(_signal, n))
    except AttributeError:
        raise StasisError(f"unknown signal {name!r} (use a name such as SIGUSR1 or SIGTERM)") from None


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream must not stop the suspension
            pass


class Session:
    """The program running under Stasis in this process (one per process)."""

    def __init__(self, options: Options, target: str, generation: int, hash_seed: int) -> None:
        self.options = options
        self.target = target
        self.generation = generation      # how many times this program was suspended before
        self.hash_seed = hash_seed
        self.base_code: Optional[types.CodeType] = None
        self.selection = None
        self.path = os.path.abspath(options.snapshot or os.path.splitext(os.path.basename(target))[0] + ".snap")
        self.requested = False

    # --- triggers ------------------------------------------------------------------------------

    def install_triggers(self) -> None:
        o = self.options
        if o.suspend_after is not None:
            if o.suspend_after < 1:
                raise StasisError("--suspend-after counts safe points from 1")
            # The main thread parks at its N-th safe point and starts the coordinator from there.
            self.requested = True
            _engine.arm_thread(threading.main_thread().ident, self.base_code, countdown=o.suspend_after,
                               on_reached=self._start_coordinator, no_park_file=threading.__file__)
        signum = _signal_number(o.signal)
        _signal.signal(signum, lambda _n, _f: self.request())
        if o.quota is not None:
            def quota(seconds: float) -> None:
                time.sleep(seconds)
                self.request()
            internal_threads.start(quota, o.quota)
        _write_pid_record(self)

    def request(self) -> None:
        """Suspend the program at the next point where every thread is at a safe point or blocked
        in a call that can be issued again (from any thread: signal handler, quota timer,
        stasis.suspend())."""
        if self.requested:
            return
        self.requested = True
        me = threading.get_ident()
        if me not in internal_threads.idents and me in threading._active:
            # A program thread asking (stasis.suspend(), the signal handler in the main thread)
            # stops at its own next safe point, not at one after the coordinator has started.
            base, is_caller = self._thread_base(me)
            _engine.arm_thread(me, base, is_caller, no_park_file=threading.__file__)
        self._start_coordinator()

    def _start_coordinator(self) -> None:
        internal_threads.start(self._coordinate)

    # --- capture -------------------------------------------------------------------------------

    def _coordinate(self) -> None:
        """The coordinator (a thread of Stasis, invisible to `threading`): brings every thread of
        the program to a capturable state, writes the snapshot and ends the process with status 75
        before any program thread runs again; or, when that fails, lets the program go on."""
        try:
            threads = self.freeze_threads()
            if threads is None:
                self.requested = False
                return
            self.write_snapshot(threads, self.path)
        except Exception as e:  # noqa: BLE001 - whatever failed, the program must not stay parked
            _engine.thaw()
            what = str(e) if isinstance(e, StasisError) else f"internal error: {type(e).__name__}: {e}"
            sys.stderr.write(f"stasis: error: cannot suspend: {what}; the program keeps running\n")
            sys.stderr.flush()
            self.requested = False
            return
        sys.stderr.write(f"stasis: suspended into {self.path}\n")
        _flush_std_streams()
        os._exit(EXIT_SUSPENDED)

    def _thread_base(self, ident: int) -> tuple:
        """(base code, base_is_caller) of a program thread's stack: the main thread's base frame runs
        the __main__ code; another thread's is the frame Thread._bootstrap_inner called (run())."""
        if ident == threading.main_thread().ident:
            return self.base_code, False
        return _BOOTSTRAP_INNER, True

    def freeze_threads(self, own: Optional[tuple] = None) -> Optional[list]:
        """Parks every program thread at a safe point, or finds it blocked in a call that replay can
        issue again, and returns the thread records; `own` = (ident, frames) of the calling thread,
        already captured (stasis.checkpoint). Returns None after saying on stderr what blocked it
        when no such point came within --safe-point-timeout (every thread is then let go).

        A thread blocked in C is only taken as blocked when it ran no Python code across a window
        in which the GIL was free, and then, while the coordinator holds the GIL for several
        switch intervals, no thread asks for it: a thread whose call has returned (an acquire
        that succeeded) would. From that moment every armed thread parks at its next trace event;
        no program code runs until the process ends or the program is let go."""
        me = threading.get_ident()
        deadline = time.monotonic() + self.options.safe_point_timeout
        previous, stable, blockers = None, 0, []
        while True:
            threads, strangers = _program_threads(exclude=me)
            for ident, _t in threads:
                base, is_caller = self._thread_base(ident)
                _engine.arm_thread(ident, base, is_caller, no_park_file=threading.__file__)
            states = _engine.park_states()
            current = sys._current_frames()
            frames, blocked, blockers = {}, [], list(strangers)
            for ident, t in threads:
                parked, captured, events, why = states.get(ident, (False, None, 0, ""))
                if parked:
                    frames[ident] = captured
                    continue
                top = current.get(ident)
                if top is None:  # between its last frame and leaving threading._active: wait
                    blockers.append(f"thread {t.name!r} has no Python frames")
                    continue
                base, is_caller = self._thread_base(ident)
                try:
                    frames[ident] = _engine.capture_stack(top, base, True, is_caller)
                    blocked.append((ident, events, top.f_lasti))
                except StasisError as e:
                    blockers.append(f"thread {t.name!r}: {why or str(e)}")
            current = top = None
            if not blockers:
                stable = stable + 1 if blocked == previous else 0
                previous = blocked
                if not blocked:
                    _engine.freeze()
                    return self._thread_records(threads, frames, own)
                # Threads blocked in C: take them as they are only when none of them ran Python
                # code across a GIL-free window, and none is waiting for the GIL (a call that has
                # returned, e.g. an acquire that succeeded, would be issued twice on resume).
                if stable >= 1 and _engine.settle(3 * sys.getswitchinterval()):
                    if self._unmoved(blocked):
                        return self._thread_records(threads, frames, own)
                    _engine.thaw()  # one of them ran between the look and the settle: again
                    previous, stable = None, 0
            if time.monotonic() > deadline:
                _engine.thaw()
                why = "; ".join(blockers) or "a thread kept running outside safe points"
                sys.stderr.write(f"stasis: could not suspend within {self.options.safe_point_timeout:g} s: "
                                 f"no safe point was reached ({why}); the program keeps running\n")
                sys.stderr.flush()
                return None
            time.sleep(_SETTLE_WINDOW if blocked else _POLL)

    def _unmoved(self, blocked: list) -> bool:
        states = _engine.park_states()
        return all(states.get(ident, (0, 0, -1))[2] == events for ident, events, _ in blocked)

    def _thread_records(self, threads: list, frames: dict, own: Optional[tuple]) -> list:
        main = threading.main_thread()
        if own is not None:
            frames[own[0]] = own[1]
            threads = threads + [(own[0], threading._active.get(own[0], main))]
        records = []
        for ident, t in threads:
            if ident not in frames:
                continue
            record = {"ident": ident, "name": t.name, "main": ident == main.ident, "frames": frames[ident]}
            if ident != main.ident:
                record["thread"] = t
            records.append(record)
        records.sort(key=lambda r: not r["main"])
        return records

    def user_modules(self) -> dict:
        """Modules captured by value: __main__ and modules under the program's own directory."""
        out = {"__main__": sys.modules["__main__"]}
        roots = getattr(self.selection, "roots", ())
        for name, mod in list(sys.modules.items()):
            origin = getattr(mod, "__file__", None)
            if name == "__main__" or not origin or name.startswith("stasis"):
                continue
            real = os.path.realpath(origin)
            if any(real.startswith(r) for r in roots):
                out[name] = mod
        return out

    def program_state(self, threads: list) -> dict:
        modules = {}
        for name, mod in self.user_modules().items():
            state = {k: v for k, v in vars(mod).items() if k not in _MODULE_DUNDERS_NOT_CAPTURED}
            modules[name] = state
        return {
            "layout": PROGRAM_LAYOUT,
            "target": self.target,
            "argv": list(sys.argv),
            "path": list(sys.path),
            "cwd": os.getcwd(),
            "roots": list(getattr(self.selection, "roots", ())),
            "rewrite": list(self.options.rewrite),
            "no_rewrite": list(self.options.no_rewrite),
            "modules": modules,
            "base_code": self.base_code,
            "threads": threads,
            "random": random.getstate(),
            "library": _library_states(),
            "recursion_limit": sys.getrecursionlimit(),
            "signals": self._signal_handlers(),
            "atexit": [c for c in _atexit_calls if _defined_in(c[0], self.user_modules())],
            "generation": self.generation + 1,
        }

    def _signal_handlers(self) -> dict:
        """{signal number: handler} of the signals whose handling the program set from Python
        (its handler, SIG_IGN, SIG_DFL), except the one that requests suspension."""
        own = _signal_number(self.options.signal)
        out = {}
        for signum in _signal.valid_signals():
            if signum == own:
                continue
            try:
                handler = _signal.getsignal(signum)
            except (ValueError, OSError):
                continue
            if handler is not None:
                out[int(signum)] = handler
        return out

    def write_snapshot(self, threads: list, path: str, checkpoint: Optional[int] = None) -> None:
        from . import _ensure_builtin_handlers, handlers
        _ensure_builtin_handlers()
        _flush_std_streams()
        modules = list(self.user_modules())
        meta = {"modules": modules, "sys_path": [p for p in sys.path if isinstance(p, str)],
                "roots": list(getattr(self.selection, "roots", ())), "rewrite": list(self.options.rewrite),
                "no_rewrite": list(self.options.no_rewrite), "threads": len(threads),
                "handler_modules": [m for m in handlers.MODULE_HANDLERS if m in sys.modules]}
        state = self.program_state(threads)
        state["checkpoint"] = checkpoint  # the thread whose stasis.checkpoint() call returns True
        _engine.dump(state, path, kind="program", hash_seed=self.hash_seed,
                     key=_key(self.options.key_file), by_value=modules, meta=json.dumps(meta))

    # --- running -------------------------------------------------------------------------------

    def execute(self, code: types.CodeType, globals_: dict, selection: Any) -> None:
        """Runs the main script's code (called by compiler_hooks.runner)."""
        self.base_code = code
        self.selection = selection
        _record_atexit()
        self.install_triggers()
        exec(code, globals_)


_BOOTSTRAP_INNER = threading.Thread._bootstrap_inner.__code__
_REBUILD_TIMEOUT = 60   # seconds a resume waits for every thread's stack to be rebuilt
_POLL = 0.002           # seconds between looks while threads run towards safe points
_SETTLE_WINDOW = 0.01   # GIL-free window in which a thread taken as blocked must not run


def _program_threads(exclude: int) -> tuple:
    """([(ident, Thread)] of the program's threads, [why not capturable] for threads that Stasis
    cannot rebuild: started by _thread.start_new_thread or by C code, not by threading.Thread)."""
    active = dict(threading._active)  # no lock: a parked thread may hold _active_limbo_lock
    threads, strangers = [], []
    for ident, t in active.items():
        if ident == exclude or ident in internal_threads.idents:
            continue
        target = getattr(t, "_target", None)
        if str(getattr(target, "__module__", "")).startswith("stasis."):
            continue
        if isinstance(t, threading._DummyThread):
            strangers.append(f"thread {ident} was not started by threading.Thread, so Stasis cannot "
                             "start it again on resume")
            continue
        threads.append((ident, t))
    frames = sys._current_frames()
    for ident, has_frames in _engine.thread_states():
        if ident in internal_threads.idents:
            continue  # first: the control channel's watcher is frameless while it waits for the GIL
        if not has_frames:
            # Created, not started yet (it shows its creator's ident meanwhile), or past its last
            # frame: wait until it runs Python code or is gone.
            strangers.append(f"a thread (ident {ident}) has no Python frames yet: starting, or run by C code")
            continue
        if ident in active or ident == exclude:
            continue
        frame = frames.get(ident)
        if frame is not None and frame.f_code.co_filename == threading.__file__:
            # A threading.Thread that is starting (in _limbo) or finishing (it leaves _active before
            # its last lines): its Thread object is half set up. Wait until that is over.
            strangers.append(f"thread {ident} is starting or finishing")
            continue
        where = f" (in {frame.f_code.co_qualname})" if frame is not None else ""
        strangers.append(f"thread {ident}{where} was not started by threading.Thread, so Stasis cannot "
                         "start it again on resume")
    return threads, strangers


# atexit keeps its functions in C, out of reach: registrations are recorded as they are made, and
# those of the program's own modules are made again on resume (a library registers its own again
# when it is imported).
_atexit_calls: list = []


def _record_atexit() -> None:
    import atexit
    if getattr(atexit.register, "_stasis", False):
        return
    register, unregister = atexit.register, atexit.unregister

    def recording_register(func, *args, **kwargs):
        _atexit_calls.append((func, args, kwargs))
        return register(func, *args, **kwargs)

    def recording_unregister(func):
        _atexit_calls[:] = [c for c in _atexit_calls if c[0] != func]
        return unregister(func)
    recording_register._stasis = True  # type: ignore[attr-defined]
    recording_register.__doc__, recording_unregister.__doc__ = register.__doc__, unregister.__doc__
    atexit.register, atexit.unregister = recording_register, recording_unregister


def _defined_in(func: Any, modules: dict) -> bool:
    module = getattr(func, "__module__", None) or getattr(getattr(func, "func", None), "__module__", None)
    return module in modules


def _restore_process_state(state: dict, suspend_signal: int) -> None:
    """Signal handlers and atexit functions of the program, as they were at suspension."""
    import atexit
    for signum, handler in state["signals"].items():
        if signum == suspend_signal or _signal.getsignal(signum) == handler:
            continue
        try:
            _signal.signal(signum, handler)
        except (ValueError, OSError, TypeError) as e:
            sys.stderr.write(f"stasis: warning: cannot set the handler of signal {signum} again: {e}\n")
    _record_atexit()
    for func, args, kwargs in state["atexit"]:
        atexit.register(func, *args, **kwargs)


def _pure_python_asyncio() -> None:
    """asyncio's tasks and futures in their pure-Python form (the C accelerator _asyncio is kept
    out): a suspended program's Task objects are then plain objects of the heap, and their steps
    are Python methods. Same behaviour, somewhat slower event-loop bookkeeping."""
    if "asyncio" not in sys.modules:
        sys.modules.setdefault("_asyncio", None)  # type: ignore[arg-type]


def _restore_running_loops(frames: list) -> None:
    """An event loop whose run_forever() frame is on this thread's rebuilt stack is running
    again: what run_forever() set up before its loop (skipped by the jump) is set up here."""
    for code, _row, _offset, local_values, _stack in frames:
        if code.co_name != "run_forever" or not code.co_filename.endswith("asyncio/base_events.py"):
            continue
        loop = local_values.get("self")
        if loop is None:
            continue
        from asyncio import events
        loop._thread_id = threading.get_ident()
        events._set_running_loop(loop)
        if threading.current_thread() is threading.main_thread():
            events.set_event_loop(loop)  # as asyncio.run's Runner did
        sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook,
                               finalizer=loop._asyncgen_finalizer_hook)


def _library_states() -> dict:
    """Registered state (stasis.register_module_state) of the library modules the program has
    imported: logging's configuration, the decimal context, threading's name counter..."""
    from . import _module_state_names, module_state
    return {name: module_state(sys.modules[name]) for name in sorted(_module_state_names)
            if name in sys.modules and name != "random"}  # random: kept with the program state


def _restore_library_states(states: dict) -> None:
    from . import restore_module_state
    for name, state in states.items():
        restore_module_state(importlib.import_module(name), state)


def _key(key_file: Optional[str]) -> Optional[bytes]:
    from . import read_key
    return read_key(key_file)


def pid_dir() -> str:
    """Per-user directory (mode 0700) of records of processes running under Stasis."""
    path = os.path.join(f"/tmp/stasis-{os.getuid()}", "pids")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _write_pid_record(session: Session) -> None:
    """Lets `stasis suspend PID` find the signal and the snapshot path of this process."""
    try:
        with open(os.path.join(pid_dir(), f"{os.getpid()}.txt"), "w") as f:
            f.write(f"{_signal_number(session.options.signal)}\n{session.path}\n")
    except OSError:
        pass  # `stasis suspend` then falls back to SIGUSR1 and cannot print the path


# --- the current session and the in-program API ---------------------------------------------------

_session: Optional[Session] = None


def current() -> Optional[Session]:
    return _session


def ensure_hash_seed() -> int:
    """`stasis run` honours PYTHONHASHSEED; otherwise it picks one and re-executes itself with it,
    so that the seed can be recorded and restored (str hashes, set order)."""
    seed = os.environ.get("PYTHONHASHSEED")
    if seed is not None and seed != "random":
        return int(seed)
    os.environ["PYTHONHASHSEED"] = str(random.SystemRandom().randrange(1, 2**32))
    _flush_std_streams()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    raise AssertionError("unreachable")


def run(target: str, args: list, *, module: bool, options: Options) -> int:
    global _session
    from .compiler_hooks import runner
    seed = ensure_hash_seed()
    _pure_python_asyncio()
    name = target.rsplit(".", 1)[-1] if module else target
    _session = Session(options, name, generation=0, hash_seed=seed)
    return runner.run(target, args, module=module, rewrite=options.rewrite, no_rewrite=options.no_rewrite,
                      execute=_session.execute)


def resume(snapshot: str, options: Options, debug: bool = False) -> int:
    """Continues a suspended program from `snapshot` in this process; with `debug`, under pdb,
    stopped at the suspension point."""
    global _session
    # The header is read without checking the whole payload (load checks it before building
    # anything with effects); only what looks wrong is checked in full, so that a damaged file is
    # reported as damaged rather than as another kind of snapshot.
    header = _engine.payload_header(snapshot, key=_key(options.key_file), verify=False)
    try:
        meta = json.loads(header["meta"])
    except ValueError:
        meta = None
    if header["kind"] != "program" or not isinstance(meta, dict):
        header = _engine.payload_header(snapshot, key=_key(options.key_file))
        meta = json.loads(header["meta"]) if header["kind"] == "program" else None
    if header["kind"] != "program":
        raise IncompatibleSnapshotError(
            f"{snapshot} holds an object graph (stasis.dump), not a suspended program: load it with "
            "stasis.load()")
    seed = str(header["hash_seed"])
    if os.environ.get("PYTHONHASHSEED") != seed:
        os.environ["PYTHONHASHSEED"] = seed
        _flush_std_streams()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    from .compiler_hooks import hook, runner

    # Before any object is built: library modules are imported from where the program had them,
    # through the same import hook (so rewritten code is the same), and the program's own modules
    # exist, empty, for functions restored by value.
    sys.path[:] = meta["sys_path"]
    rewrite = options.rewrite or meta["rewrite"]
    no_rewrite = options.no_rewrite or meta["no_rewrite"]
    selection = hook.Selection([r.rstrip("/") for r in meta["roots"]], rewrite, no_rewrite)
    hook.install(selection)
    fresh = _create_modules(meta["modules"])
    if "asyncio" in meta["handler_modules"]:
        _pure_python_asyncio()
    for name in meta["handler_modules"]:  # through the hook: asyncio and subprocess are rewritten
        importlib.import_module(name)  # their types' handlers are registered for the load below
    from . import _ensure_builtin_handlers
    _ensure_builtin_handlers()
    from .handlers import threads as thread_handlers
    with thread_handlers.collect_held_rlocks() as rlocks:  # taken again by their own threads, below
        state = _engine.load(snapshot, key=_key(options.key_file), kind="program")
    if state.get("layout") != PROGRAM_LAYOUT:
        raise IncompatibleSnapshotError(f"program layout {state.get('layout')} found, this Stasis reads "
                                        f"layout {PROGRAM_LAYOUT}")
    sys.argv[:] = state["argv"]
    sys.path[:] = state["path"]
    try:
        os.chdir(state["cwd"])
    except OSError as e:
        sys.stderr.write(f"stasis: warning: cannot change to the program's directory {state['cwd']}: "
                         f"{e.strerror}; staying in {os.getcwd()}\n")
    main = _fill_modules(fresh, state["modules"])
    random.setstate(state["random"])
    _restore_library_states(state["library"])
    sys.setrecursionlimit(state["recursion_limit"])
    _restore_process_state(state, _signal_number(options.signal))

    target = state["target"]
    opts = Options(**{**options.__dict__, "snapshot": options.snapshot or snapshot,
                      "rewrite": rewrite, "no_rewrite": no_rewrite})
    _session = Session(opts, target, generation=state["generation"], hash_seed=int(seed))
    _session.base_code = state["base_code"]
    _session.selection = selection
    threads = state["threads"]
    checkpointed = state["checkpoint"]
    del state
    main_record = next(r for r in threads if r["main"])
    restart = _RestartedThreads([r for r in threads if not r["main"]], main_record, rlocks)

    def rebuilt(frame: types.FrameType) -> None:
        restart.take_rlocks(main_record["ident"])
        if debug:
            _start_debugger(frame, snapshot)
        try:
            restart.barrier.wait(None if debug else _REBUILD_TIMEOUT)
        except threading.BrokenBarrierError:
            _fail(f"the program's threads were not all rebuilt within {_REBUILD_TIMEOUT} s (a thread's "
                  "run method or threading.py differs from the suspended program's)")
        if not debug:
            _session.install_triggers()  # armed once the stack is rebuilt: replay needs the tracer

    def execute() -> None:
        global _resuming_ident
        restart.start()
        if checkpointed is not None:
            _resuming_ident = restart.new_ident(checkpointed)
        _restore_running_loops(main_record["frames"])
        _engine.replay(_session.base_code, main.__dict__, main_record["frames"], rebuilt)

    return runner.run_resumed(execute)


class _RestartedThreads:
    """Starts the program's threads again on resume. Each restored Thread object is reset to
    "not started" and started on a bare thread that runs its usual bootstrap under replay: the
    bootstrap gives it its new ident, tstate lock and place in threading._active, then calls
    run(), whose frame and those above it are rebuilt from the thread's records. Before any frame
    is rebuilt, references in the records to the old process's threads are translated: the
    tstate locks join() waits on, and the owner idents in saved Condition states. Every thread,
    the main thread included, takes back the RLocks it held and waits at a barrier until all
    stacks are rebuilt; then all continue together."""

    def __init__(self, records: list, main_record: dict, rlocks: list) -> None:
        self.records = records
        self.main_record = main_record
        main_ident = self.main_ident = main_record["ident"]
        self.rlocks = rlocks  # [(lock, old owner ident, count)]
        self.barrier = threading.Barrier(len(records) + 1)
        self.ready = threading.Event()
        self.idents = {main_ident: threading.get_ident()}

    def new_ident(self, old: int) -> Optional[int]:
        return self.idents.get(old)

    def start(self) -> None:
        if not self.records:
            return
        old_locks = {}
        for record in self.records:
            t = record["thread"]
            old_locks[id(t)] = t._tstate_lock
            t._ident = t._native_id = t._tstate_lock = None
            t._is_stopped = False
            t._started = threading.Event()
            with threading._active_limbo_lock:
                threading._limbo[t] = t
            _thread.start_new_thread(self._run, (record,))
        for record in self.records:
            t = record["thread"]
            if not t._started.wait(_REBUILD_TIMEOUT):
                _fail(f"thread {t.name!r} did not start again within {_REBUILD_TIMEOUT} s")
            self.idents[record["ident"]] = t.ident
        lock_map = {id(old_locks[id(r["thread"])]): r["thread"]._tstate_lock for r in self.records
                    if old_locks[id(r["thread"])] is not None}
        for record in self.records + [self.main_record]:
            for frame in record["frames"]:
                self._translate(frame, lock_map)
        self.ready.set()

    def _translate(self, frame: tuple, lock_map: dict) -> None:
        code, _row, _offset, local_values, _stack = frame
        in_threading = code.co_filename == threading.__file__
        for name, value in list(local_values.items()):
            new = lock_map.get(id(value))
            if new is not None:
                local_values[name] = new
            elif (in_threading and type(value) is tuple and len(value) == 2 and type(value[1]) is int
                  and value[1] in self.idents):
                local_values[name] = (value[0], self.idents[value[1]])  # (count, owner) of an RLock

    def take_rlocks(self, old_ident: int) -> None:
        mine = old_ident == self.main_ident
        for lock, owner, count in self.rlocks:
            if owner == old_ident or (mine and owner not in self.idents):
                for _ in range(count):
                    lock.acquire()

    def _run(self, record: dict) -> None:
        t = record["thread"]

        def before() -> None:
            self.ready.wait()
            _restore_running_loops(record["frames"])

        def rebuilt(_frame: types.FrameType) -> None:
            self.take_rlocks(record["ident"])
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                pass  # the main thread ends the process

        try:
            _engine.replay(None, None, record["frames"], rebuilt, before, _BOOTSTRAP_INNER)
        except StasisError as e:
            _fail(f"thread {t.name!r}: {e}", e.code)
        except BaseException as e:  # noqa: BLE001 - any failure here ends the resume
            _fail(f"thread {t.name!r} could not be rebuilt: {type(e).__name__}: {e}")
        t._bootstrap()  # rebuilt by the replay trace as it calls run()


def _fail(message: str, status: int = 90) -> None:
    """Ends a resume that cannot go on: nothing of the program has run yet."""
    sys.stderr.write(f"stasis: error: cannot resume: {message}\n")
    _flush_std_streams()
    os._exit(status)


def _start_debugger(frame: types.FrameType, snapshot: str) -> None:
    """Opens pdb on the rebuilt stack, at the suspension point, before the program goes on."""
    import pdb
    debugger = pdb.Pdb()
    debugger.reset()
    f = frame
    while f is not None:  # as pdb.set_trace(frame) does: trace every frame of the rebuilt stack
        f.f_trace = debugger.trace_dispatch
        debugger.botframe = f
        f = f.f_back
    debugger.set_step()
    sys.settrace(debugger.trace_dispatch)
    print(f"stasis debug: {snapshot} rebuilt; the program is at its suspension point "
          "(the snapshot is not changed; debug it again to replay from the same point)")
    debugger.interaction(frame, None)


def _create_modules(names: list) -> dict:
    """Empty module objects for the program's own modules, registered in sys.modules."""
    import builtins
    fresh = {}
    for name in names:
        mod = types.ModuleType(name)
        mod.__dict__["__builtins__"] = builtins
        sys.modules[name] = mod
        fresh[name] = mod
    return fresh


def _fill_modules(fresh: dict, states: dict) -> types.ModuleType:
    """Gives the fresh modules their restored globals; returns __main__."""
    for name, state in states.items():
        fresh[name].__dict__.update(state)
    return fresh["__main__"]


_resuming_ident: Optional[int] = None  # this thread's stasis.checkpoint() call returns True


def checkpoint(path: str, caller) -> bool:
    """Writes a snapshot of the whole program as it is at the caller's call of checkpoint();
    returns False now, and True when a resumed run re-issues that call."""
    global _resuming_ident
    me = threading.get_ident()
    if _resuming_ident == me:
        _resuming_ident = None
        return True
    if _session is None:
        raise NotAvailableError("stasis.checkpoint() works in a program started with `stasis run`")
    if _session.requested:
        raise NotSuspendableError("stasis.checkpoint() was called while a suspension of the program is "
                                  "in progress")
    base, is_caller = _session._thread_base(me)
    frames = _engine.capture_stack(caller, base, True, is_caller)
    _session.requested = True
    try:
        threads = _session.freeze_threads(own=(me, frames))
        if threads is None:
            raise NotSuspendableError("stasis.checkpoint(): the program's other threads did not reach a "
                                      "safe point (see the message above); no snapshot was written")
        _session.write_snapshot(threads, os.path.abspath(path), checkpoint=me)
    finally:
        _engine.thaw()
        _session.requested = False
    return False


def suspend(path: Optional[str] = None) -> None:
    """Write a snapshot of the whole program at the next safe point and exit with status 75."""
    if _session is None:
        raise NotAvailableError("stasis.suspend() works in a program started with `stasis run`")
    if path is not None:
        _session.path = os.path.abspath(path)
    _session.request()

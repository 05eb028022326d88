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

import json
import os
import random
import signal as _signal
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Any, Optional

from . import _engine
from .errors import EXIT_SUSPENDED, IncompatibleSnapshotError, NotAvailableError, StasisError

PROGRAM_LAYOUT = 1  # keys of the program root dict; bump with any change to them

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
        self._timer: Optional[threading.Timer] = None
        self.requested = False

    # --- triggers ------------------------------------------------------------------------------

    def install_triggers(self) -> None:
        o = self.options
        if o.suspend_after is not None:
            if o.suspend_after < 1:
                raise StasisError("--suspend-after counts safe points from 1")
            _engine.suspend_at_safe_point(self.base_code, o.suspend_after, self._on_capture)
        signum = _signal_number(o.signal)
        _signal.signal(signum, lambda _n, _f: self.request())
        if o.quota is not None:
            self._timer = threading.Timer(o.quota, self.request)
            self._timer.daemon = True
            self._timer._stasis_internal = True
            self._timer.start()
        _write_pid_record(self)

    def request(self) -> None:
        """Suspend at the main thread's next safe point (from any thread: signal handler, quota
        timer, stasis.suspend())."""
        if self.requested:
            return
        self.requested = True
        _engine.suspend_at_safe_point(self.base_code, 1, self._on_capture, threading.main_thread().ident)
        self._watch_timeout()

    def _watch_timeout(self) -> None:
        def give_up() -> None:
            if not self.requested:
                return
            why = _engine.last_blocker() or "no line of rewritten code ran"
            sys.stderr.write(
                f"stasis: could not suspend within {self.options.safe_point_timeout:g} s: no safe "
                f"point was reached ({why}); the program keeps running\n")
            sys.stderr.flush()
        t = threading.Timer(self.options.safe_point_timeout, give_up)
        t.daemon = True
        t._stasis_internal = True
        t.start()

    # --- capture -------------------------------------------------------------------------------

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

    def program_state(self, frames: list) -> dict:
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
            "threads": [{"name": threading.main_thread().name, "frames": frames}],
            "random": random.getstate(),
            "generation": self.generation + 1,
        }

    def write_snapshot(self, frames: list, path: str) -> None:
        from . import _ensure_builtin_handlers
        _ensure_builtin_handlers()
        _flush_std_streams()
        modules = list(self.user_modules())
        meta = {"modules": modules, "sys_path": [p for p in sys.path if isinstance(p, str)],
                "roots": list(getattr(self.selection, "roots", ())), "rewrite": list(self.options.rewrite),
                "no_rewrite": list(self.options.no_rewrite)}
        _engine.dump(self.program_state(frames), path, kind="program", hash_seed=self.hash_seed,
                     key=_key(self.options.key_file), by_value=modules, meta=json.dumps(meta))

    def _on_capture(self, frames: list) -> None:
        """At the safe point: write the snapshot, flush, exit 75. No other Python code runs."""
        others = program_threads()
        if others:
            names = ", ".join(t.name for t in others)
            sys.stderr.write(f"stasis: error: cannot suspend: the program runs {len(others)} other "
                             f"thread(s) ({names}), and suspending programs with several threads is "
                             "not built yet; the program keeps running\n")
            sys.stderr.flush()
            self.requested = False
            return
        try:
            self.write_snapshot(frames, self.path)
        except StasisError as e:
            sys.stderr.write(f"stasis: error: cannot suspend: {e}; the program keeps running\n")
            sys.stderr.flush()
            self.requested = False
            return
        sys.stderr.write(f"stasis: suspended into {self.path}\n")
        _flush_std_streams()
        os._exit(EXIT_SUSPENDED)

    # --- running -------------------------------------------------------------------------------

    def execute(self, code: types.CodeType, globals_: dict, selection: Any) -> None:
        """Runs the main script's code (called by compiler_hooks.runner)."""
        self.base_code = code
        self.selection = selection
        self.install_triggers()
        exec(code, globals_)


def program_threads() -> list:
    """Live threads of the program other than the main thread (Stasis's own are left out)."""
    out = []
    for t in threading.enumerate():
        if t is threading.main_thread() or getattr(t, "_stasis_internal", False):
            continue
        target = getattr(t, "_target", None)
        if str(getattr(target, "__module__", "")).startswith("stasis."):
            continue
        out.append(t)
    return out


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
    name = target.rsplit(".", 1)[-1] if module else target
    _session = Session(options, name, generation=0, hash_seed=seed)
    return runner.run(target, args, module=module, rewrite=options.rewrite, no_rewrite=options.no_rewrite,
                      execute=_session.execute)


def resume(snapshot: str, options: Options, debug: bool = False) -> int:
    """Continues a suspended program from `snapshot` in this process; with `debug`, under pdb,
    stopped at the suspension point."""
    global _session
    header = _engine.payload_header(snapshot, key=_key(options.key_file))
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

    meta = json.loads(header["meta"])
    # Before any object is built: library modules are imported from where the program had them,
    # through the same import hook (so rewritten code is the same), and the program's own modules
    # exist, empty, for functions restored by value.
    sys.path[:] = meta["sys_path"]
    rewrite = options.rewrite or meta["rewrite"]
    no_rewrite = options.no_rewrite or meta["no_rewrite"]
    selection = hook.Selection([r.rstrip("/") for r in meta["roots"]], rewrite, no_rewrite)
    hook.install(selection)
    fresh = _create_modules(meta["modules"])
    from . import _ensure_builtin_handlers
    _ensure_builtin_handlers()
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

    target = state["target"]
    opts = Options(**{**options.__dict__, "snapshot": options.snapshot or snapshot,
                      "rewrite": rewrite, "no_rewrite": no_rewrite})
    _session = Session(opts, target, generation=state["generation"], hash_seed=int(seed))
    _session.base_code = state["base_code"]
    _session.selection = selection
    frames = state["threads"][0]["frames"]
    del state

    global _resuming_call
    _resuming_call = True  # a stasis.checkpoint() call on the rebuilt stack returns True

    def rebuilt(frame: types.FrameType) -> None:
        if debug:
            _start_debugger(frame, snapshot)
        else:
            _session.install_triggers()  # armed once the stack is rebuilt: replay needs the tracer

    def execute() -> None:
        _engine.replay(_session.base_code, main.__dict__, frames, rebuilt)

    return runner.run_resumed(execute)


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


_resuming_call = False


def checkpoint(path: str, caller) -> bool:
    """Writes a snapshot of the whole program as it is at the caller's call of checkpoint();
    returns False now, and True when a resumed run re-issues that call."""
    global _resuming_call
    if _resuming_call:
        _resuming_call = False
        return True
    if _session is None:
        raise NotAvailableError("stasis.checkpoint() works in a program started with `stasis run`")
    frames = _engine.capture_stack(caller, _session.base_code, True)
    _session.write_snapshot(frames, os.path.abspath(path))
    return False


def suspend(path: Optional[str] = None) -> None:
    """Write a snapshot of the whole program at the next safe point and exit with status 75."""
    if _session is None:
        raise NotAvailableError("stasis.suspend() works in a program started with `stasis run`")
    if path is not None:
        _session.path = os.path.abspath(path)
    _session.request()

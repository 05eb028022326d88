"""Continuing a suspended program in this process (`stasis resume`, `stasis debug`).

In order: the payload header's metadata (read before any object is built) gives the hash seed
(this process re-executes itself with it), sys.path, the import hook's selection and the
program's own modules (created empty, for functions restored by value); the modules whose type
handlers the payload needs are imported; the heap is loaded; the process state is put back; the
threads other than the main thread are started again (restart.py); then every stack is rebuilt by
replay (restore/replay.cpp) and all threads continue together."""
from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
import threading
import types
from typing import Optional, Sequence

from .. import _engine
from ..errors import IncompatibleSnapshotError, StasisError
from . import debugger, process_state
from .layout import PATCH_MODULE_PREFIX, ProgramMeta, ProgramState
from .options import Options, signal_number
from .restart import REBUILD_TIMEOUT, RestartedThreads, fail, restore_running_loops
from .session import Session, _key, set_current


def _read_meta(snapshot: str, key: Optional[bytes]) -> tuple:
    """(payload header, ProgramMeta) of a program snapshot. The header is read without checking the
    whole payload (load checks it before building anything with effects); only what looks wrong
    is checked in full, so that a damaged file is reported as damaged rather than as another kind
    of snapshot."""
    header = _engine.payload_header(snapshot, key=key, verify=False)
    meta = None
    if header["kind"] == "program":
        try:
            meta = ProgramMeta.from_json(header["meta"])
        except StasisError:
            meta = None
    if meta is None:
        header = _engine.payload_header(snapshot, key=key)
        if header["kind"] == "program":
            meta = ProgramMeta.from_json(header["meta"])
    if header["kind"] != "program":
        raise IncompatibleSnapshotError(
            f"{snapshot} holds an object graph (stasis.dump), not a suspended program: load it with "
            "stasis.load()")
    return header, meta


class Loaded:
    """A program snapshot loaded into this process, its stacks not rebuilt yet (load_program)."""

    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


def load_program(snapshot: str, options: Options) -> Loaded:
    """Loads a program snapshot into this process: re-executes it with the program's hash seed,
    sets up sys.path and the import hook, builds the heap and fills the program's own modules.
    Shared by `stasis resume`, `stasis debug` and `stasis patch`."""
    key = _key(options.key_file)
    header, meta = _read_meta(snapshot, key)
    seed = str(header["hash_seed"])
    process_state.reexec_with_hash_seed(seed)
    from ..compiler_hooks import hook, runner

    # Before any object is built: library modules are imported from where the program had them,
    # through the same import hook (so rewritten code is the same), and the program's own modules
    # exist, empty, for functions restored by value.
    sys.path[:] = meta.sys_path
    rewrite = options.rewrite or meta.rewrite
    no_rewrite = options.no_rewrite or meta.no_rewrite
    selection = hook.Selection([r.rstrip("/") for r in meta.roots], rewrite, no_rewrite)
    hook.install(selection)
    fresh = _create_modules(meta.modules)
    if "asyncio" in meta.handler_modules:
        process_state.pure_python_asyncio()
    for name in meta.handler_modules:  # through the hook: asyncio and subprocess are rewritten
        importlib.import_module(name)  # their types' handlers are registered for the load below
    from .. import _ensure_builtin_handlers
    _ensure_builtin_handlers()
    from ..handlers import threads as thread_handlers
    with thread_handlers.collect_held_rlocks() as rlocks:  # taken again by their own threads, below
        payload = _engine.load(snapshot, key=key, kind="program")
    state = ProgramState.from_payload(payload)
    del payload
    sys.argv[:] = state.argv
    sys.path[:] = state.path
    try:
        os.chdir(state.cwd)
    except OSError as e:
        sys.stderr.write(f"stasis: warning: cannot change to the program's directory {state.cwd}: "
                         f"{e.strerror}; staying in {os.getcwd()}\n")
    main = _fill_modules(fresh, state.modules)
    _show_recorded_sources(state.sources)
    return Loaded(header=header, meta=meta, state=state, selection=selection, main=main, rlocks=rlocks,
                  seed=seed, rewrite=rewrite, no_rewrite=no_rewrite, key=key)


def resume(snapshot: str, options: Options, debug: bool = False, patches: Sequence = ()) -> int:
    """Continues a suspended program from `snapshot` in this process; with `debug`, under pdb,
    stopped at the suspension point; with `patches` (updater.snapshot_patch.PatchSpec), after
    applying them to the loaded program (UpdateRefusedError: nothing of the program has run)."""
    loaded = load_program(snapshot, options)
    from ..compiler_hooks import runner
    state, selection, main, rlocks = loaded.state, loaded.selection, loaded.main, loaded.rlocks
    seed, rewrite, no_rewrite = loaded.seed, loaded.rewrite, loaded.no_rewrite
    del loaded
    random.setstate(state.random)
    process_state.restore_library_states(state.library)
    sys.setrecursionlimit(state.recursion_limit)
    suspend_signal = signal_number(options.signal)
    process_state.restore_signal_handlers(state.signals, suspend_signal)
    process_state.ATEXIT.register_again(state.atexit)
    if patches:  # the program's state is complete; none of its frames runs yet
        from ..updater import snapshot_patch
        snapshot_patch.apply_patches(state, patches, by="stasis resume --patch")

    if options.snapshot_on_crash is not None:  # the restored code gets the crash handlers
        from . import crash
        crash.instrument_loaded(state, {n: sys.modules[n] for n in state.modules if n in sys.modules})
    opts = Options(**{**options.__dict__, "snapshot": options.snapshot or snapshot,
                      "rewrite": rewrite, "no_rewrite": no_rewrite})
    session = Session(opts, state.target, generation=state.generation, hash_seed=int(seed))
    session.base_code = state.base_code
    session.selection = selection
    session.sources, session.patches = dict(state.sources), list(state.patches)
    session.patch_modules = [m for m in state.modules if m.startswith(PATCH_MODULE_PREFIX)]
    crash = state.crash
    if options.snapshot_on_crash is not None:
        from . import crash as crash_snapshots
        crash_snapshots.enable(session, crash_snapshots.crash_path(session.path, options.snapshot_on_crash))
    set_current(session)
    main_record = state.main_thread
    restart = RestartedThreads([t for t in state.threads if not t.main], main_record, rlocks)
    checkpointed = state.checkpoint
    del state

    def rebuilt(frame: types.FrameType) -> None:
        restart.take_rlocks(main_record.ident)
        if debug:
            debugger.start(frame, snapshot, crash)
        try:
            restart.barrier.wait(None if debug else REBUILD_TIMEOUT)
        except threading.BrokenBarrierError:
            fail(f"the program's threads were not all rebuilt within {REBUILD_TIMEOUT} s (a thread's "
                 "run method or threading.py differs from the suspended program's)")
        if not debug:
            from . import triggers
            triggers.install(session)  # armed once the stack is rebuilt: replay needs the tracer

    def execute() -> None:
        restart.start()
        if checkpointed is not None:
            session.resumed_checkpoint_ident = restart.new_ident(checkpointed)
        restore_running_loops(main_record.frames)
        _engine.replay(session.base_code, main.__dict__, [f.to_payload() for f in main_record.frames], rebuilt)

    return runner.run_resumed(execute)


def _show_recorded_sources(sources: dict) -> None:
    """Tracebacks, pdb and inspect read a module's lines through linecache: where the file on disk
    is not the source the program runs (edited since, or patched with another file), they get the
    recorded source instead."""
    import hashlib
    import linecache
    for src in sources.values():
        try:
            with open(src.path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() == src.sha256:
                    continue
        except OSError:
            pass
        text = importlib.util.decode_source(src.source)
        lines = text.splitlines(True)
        linecache.cache[src.path] = (len(text), None, lines, src.path)


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

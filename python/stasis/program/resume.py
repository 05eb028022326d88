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
import stat
import struct
import sys
import threading
import types
from typing import Literal, Optional, Sequence

from .. import _engine
from ..errors import CorruptSnapshotError, IncompatibleSnapshotError, SnapshotIOError, StasisError
from . import debugger, process_state, progress, writer
from .layout import PATCH_MODULE_PREFIX, ProgramMeta, ProgramState
from .options import Options, signal_number
from .restart import REBUILD_TIMEOUT, RestartedThreads, fail, replay_failed, restore_running_loops
from .session import Session, _key, set_current


def read_once(snapshot: str) -> bytes:
    """The snapshot's bytes, from one open and one read: what resume acts on is one file, even if
    the path is replaced meanwhile (Stasis itself writes by renaming). Only a regular file is read
    (a FIFO without a writer would block); a path with a NUL byte raises ValueError, as open() does."""
    try:
        fd = os.open(snapshot, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise SnapshotIOError(f"cannot open {snapshot}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SnapshotIOError(f"cannot read {snapshot}: Is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotIOError(f"cannot read {snapshot}: it is not a regular file (a FIFO, socket or "
                                  "device); a snapshot is read only from a file")
        os.set_blocking(fd, True)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 24)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except SnapshotIOError:
        raise
    except OSError as e:
        raise SnapshotIOError(f"cannot read {snapshot}: {e.strerror}") from None
    finally:
        os.close(fd)


def _read_meta(snapshot: str, data: bytes, key: Optional[bytes]) -> tuple:
    """(payload header, ProgramMeta) of a program snapshot, after the whole file is verified
    (signature, every compressed byte, the frame checksum): nothing of it is acted on before."""
    header = _engine.payload_header(data, key=key, verify=True)
    meta = ProgramMeta.from_json(header["meta"]) if header["kind"] == "program" else None
    if header["kind"] != "program":
        raise IncompatibleSnapshotError(
            f"{snapshot} holds an object graph (stasis.dump), not a suspended program: load it with "
            "stasis.load()")
    return header, meta


class Loaded:
    """A program snapshot loaded into this process, its stacks not rebuilt yet (load_program)."""

    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


def _absolute(snapshot: str, options: Options) -> tuple:
    """Paths given on the command line are the resuming process's, not the program's: loading
    changes to the program's own working directory."""
    return os.path.abspath(snapshot), Options(**{
        **options.__dict__, "snapshot": options.snapshot and os.path.abspath(options.snapshot),
        "key_file": options.key_file and os.path.abspath(options.key_file)})


def load_program(snapshot: str, options: Options) -> Loaded:
    """Loads a program snapshot into this process: re-executes it with the program's hash seed,
    sets up sys.path and the import hook, builds the heap and fills the program's own modules.
    Shared by `stasis resume`, `stasis debug` and `stasis patch`."""
    snapshot, options = _absolute(snapshot, options)
    key = _key(options.key_file)
    data = read_once(snapshot)
    header, meta = _read_meta(snapshot, data, key)
    _check_meta(meta)
    seed = _hash_seed(header)
    process_state.reexec_with_hash_seed(seed)
    from ..compiler_hooks import hook, runner  # noqa: F401 - runner loads before the hook is installed

    # Before any object is built: library modules are imported from where the program had them,
    # through the same import hook (so rewritten code is the same), and the program's own modules
    # exist, empty, for functions restored by value.
    sys.path[:] = meta.sys_path
    rewrite = options.rewrite or meta.rewrite
    no_rewrite = options.no_rewrite or meta.no_rewrite
    selection = hook.Selection([r.rstrip("/") for r in meta.roots], rewrite, no_rewrite)
    hook.program_starts()  # what Stasis imported so far stays plain (hook.true_advice)
    hook.install(selection)
    fresh = _create_modules(meta.modules)
    if "asyncio" in meta.handler_modules:
        process_state.pure_python_asyncio()
    from .. import handlers
    handlers.prepare_program_process()
    for name in meta.handler_modules:  # through the hook: asyncio and subprocess are rewritten
        importlib.import_module(name)  # their types' handlers are registered for the load below
    from .. import _ensure_builtin_handlers
    _ensure_builtin_handlers()
    from ..handlers import threads as thread_handlers
    with thread_handlers.collect_held_rlocks() as rlocks:  # taken again by their own threads, below
        payload = _engine.loads(data, key=key, kind="program", progress=progress.label("reading", snapshot),
                                progress_delay=progress.delay())
    del data
    state = ProgramState.from_payload(payload)
    del payload
    with _malformed_state():
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
    snapshot, options = _absolute(snapshot, options)
    loaded = load_program(snapshot, options)
    from ..compiler_hooks import runner
    state, selection, main, rlocks = loaded.state, loaded.selection, loaded.main, loaded.rlocks
    seed, rewrite, no_rewrite = loaded.seed, loaded.rewrite, loaded.no_rewrite
    program = list(loaded.meta.program)
    del loaded
    with _malformed_state():
        process_state.restore_library_states(state.library)  # imports modules again (handlers/imports.py)
        random.setstate(state.random)  # after them: an import may draw from the global generator
        sys.setrecursionlimit(state.recursion_limit)
        suspend_signal = signal_number(options.signal)
        process_state.restore_signal_handlers(state.signals, suspend_signal)
        process_state.ATEXIT.register_again(state.atexit)
    from .. import handover
    from ..handlers import net
    net.release_fds()        # the descriptor numbers kept free for the snapshot's sockets (cli resume)
    handover.after_load()    # `stasis restart`: leftover descriptors, patches
    if patches:  # the program's state is complete; none of its frames runs yet
        from ..updater import snapshot_patch
        snapshot_patch.apply_patches(state, patches, by="stasis resume --patch")
    writer.apply_pending_writes(state.pending_writes)  # a checkpoint's buffered file bytes

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
    session.program = program
    set_current(session)
    main_record = state.main_thread
    restart = RestartedThreads([t for t in state.threads if not t.main], main_record, rlocks,
                               on_all_rebuilt=None if debug else handover.all_rebuilt)
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
            triggers.install(session, replaying=True)  # armed once the stack is rebuilt: replay needs the tracer

    def execute() -> None:
        restart.start()
        if checkpointed is not None:
            session.resumed_checkpoint_ident = restart.new_ident(checkpointed)
        restore_running_loops(main_record.frames)
        # The records go to replay alone, which drops each one as its frame is rebuilt: afterwards
        # only the program's frames hold what they held.
        frames = [f.to_payload() for f in main_record.frames]
        main_record.frames.clear()
        _engine.replay(session.base_code, main.__dict__, frames, rebuilt, on_error=replay_failed)

    return session.final_status(runner.run_resumed(execute))


class _malformed_state:
    """Putting the program's state back, before any of its code runs: a value of the wrong type or
    range in the snapshot is a CorruptSnapshotError, never a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> Literal[False]:
        if kind is not None and issubclass(kind, (TypeError, ValueError, KeyError, AttributeError, IndexError,
                                                  OverflowError, struct.error)) and not issubclass(kind, StasisError):
            raise CorruptSnapshotError(f"the snapshot's program state cannot be put back: {kind.__name__}: "
                                       f"{error}") from None
        return False


# PYTHONHASHSEED takes "random" or 0 .. 2^32-1; the header has room for 64 bits.
MAX_HASH_SEED = 2**32 - 1


def _hash_seed(header: dict) -> str:
    """The program's hash seed, as PYTHONHASHSEED: one out of its range (only a crafted or damaged
    file has one) is refused here, before the re-exec, where the new interpreter would die of it."""
    seed = header["hash_seed"]
    if not isinstance(seed, int) or not 0 <= seed <= MAX_HASH_SEED:
        raise CorruptSnapshotError(f"the snapshot's hash seed {seed!r} is out of range (0 to {MAX_HASH_SEED})")
    return str(seed)


def _check_meta(meta: ProgramMeta) -> None:
    """What the metadata may ask of this process before the load: modules of the program's own
    (not one this process or the standard library has), and the library modules whose type
    handlers Stasis registers."""
    from ..handlers import MODULE_HANDLERS
    for name in meta.modules:
        top = name.split(".")[0]
        if name != "__main__" and (name in sys.modules or top in sys.stdlib_module_names):
            raise CorruptSnapshotError(f"the snapshot names {name!r} as one of the program's own modules, "
                                       "which would replace a module of this process")
    if "__main__" not in meta.modules:
        raise CorruptSnapshotError("the snapshot's program metadata names no __main__ module")
    for name in meta.handler_modules:
        if name in MODULE_HANDLERS:
            continue
        # A module that called stasis.register (a library of the program's, not the standard
        # library, which registers none): imported as a Global op would import it.
        why = _engine.import_refusal(name) if isinstance(name, str) and name else "an empty name"
        if why or name.split(".")[0] in sys.stdlib_module_names or name in meta.modules:
            raise CorruptSnapshotError(f"the snapshot asks to import {name!r} for its type handlers; "
                                       f"Stasis has none there{' (' + why + ')' if why else ''}")


def _show_recorded_sources(sources: dict) -> None:
    """Tracebacks, pdb and inspect read a module's lines through linecache: where the file on disk
    is not the source the program runs (edited since, or patched with another file), they get the
    recorded source instead."""
    import linecache
    for src in sources.values():
        if _file_holds(src.path, src.source):
            continue
        text = importlib.util.decode_source(src.source)
        lines = text.splitlines(True)
        linecache.cache[src.path] = (len(text), None, lines, src.path)


def _file_holds(path: str, source: bytes) -> bool:
    """Whether the regular file at `path` holds exactly `source`. The path comes from the snapshot:
    a FIFO is never waited on, a device (/dev/zero) never read, and no more is read than the
    recorded source's size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except (OSError, ValueError):
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(source):
            return False
        os.set_blocking(fd, True)
        data = b""
        while len(data) <= len(source):
            chunk = os.read(fd, len(source) + 1 - len(data))
            if not chunk:
                break
            data += chunk
        return data == source
    except OSError:
        return False
    finally:
        os.close(fd)


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
    """Gives the fresh modules their restored globals; returns __main__. Only the program's own
    modules, made empty before the load, are filled."""
    if "__main__" not in fresh or not isinstance(states, dict) or not set(states) <= set(fresh):
        raise CorruptSnapshotError("the snapshot's modules are not the program's own modules its metadata names")
    for name, state in states.items():
        if not isinstance(state, dict):
            raise CorruptSnapshotError(f"the snapshot's state of module {name!r} is not a dict")
        fresh[name].__dict__.update(state)
    return fresh["__main__"]

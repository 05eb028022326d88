"""State of the process that a program snapshot keeps besides the heap: the hash seed, signal
handlers, atexit functions, registered library-module state, the recursion limit; and the
process set-up a run and a resume share (std streams, asyncio without its C accelerator)."""
from __future__ import annotations

import importlib
import os
import random
import signal as _signal
import sys
from typing import Any, Callable, Collection, Dict, List, Tuple

from .. import modules


def flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream must not stop the suspension
            pass


def reexec_with_hash_seed(seed: str) -> None:
    """Runs this command again in a fresh interpreter with PYTHONHASHSEED=seed (str hashes, set
    order); returns only when the seed is already this process's."""
    if os.environ.get("PYTHONHASHSEED") == seed:
        return
    os.environ["PYTHONHASHSEED"] = seed
    flush_std_streams()
    from .. import startup_signals
    startup_signals.block_for_exec()  # a suspension signal now is kept for the new process
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def ensure_hash_seed() -> int:
    """`stasis run` honours PYTHONHASHSEED; otherwise it picks one and re-executes itself with it,
    so that the seed can be recorded and restored."""
    seed = os.environ.get("PYTHONHASHSEED")
    if seed is not None and seed != "random":
        return int(seed)
    reexec_with_hash_seed(str(random.SystemRandom().randrange(1, 2**32)))
    raise AssertionError("unreachable")


def pure_python_asyncio() -> None:
    """asyncio's tasks and futures in their pure-Python form (the C accelerator _asyncio is kept
    out): a suspended program's Task objects are then plain objects of the heap, and their steps
    are Python methods. Same behaviour, somewhat slower event-loop bookkeeping."""
    if "asyncio" not in sys.modules:
        sys.modules.setdefault("_asyncio", None)  # type: ignore[arg-type]


# ---- signal handlers ----------------------------------------------------------------------------

def signal_handlers(except_signals: Collection[int]) -> Dict[int, Any]:
    """{signal number: handler} of the signals whose handling the program set from Python (its
    handler, SIG_IGN, SIG_DFL), except the ones that request suspension."""
    out = {}
    for signum in _signal.valid_signals():
        if signum in except_signals:
            continue
        try:
            handler = _signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if handler is not None:
            out[int(signum)] = handler
    return out


def restore_signal_handlers(handlers: Dict[int, Any], suspend_signal: int) -> None:
    for signum, handler in handlers.items():
        if signum == suspend_signal or _signal.getsignal(signum) == handler:
            continue
        try:
            _signal.signal(signum, handler)
        except (ValueError, OSError, TypeError) as e:
            sys.stderr.write(f"stasis: warning: cannot set the handler of signal {signum} again: {e}\n")


# ---- atexit -------------------------------------------------------------------------------------

class AtexitRecorder:
    """atexit keeps its functions in C, out of reach: registrations are recorded as they are made
    (atexit.register and unregister are wrapped once per process), and those of the program's own
    modules are made again on resume (a library registers its own again when it is imported)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Callable, tuple, dict]] = []
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        import atexit
        register, unregister = atexit.register, atexit.unregister
        calls = self.calls

        def recording_register(func, *args, **kwargs):
            calls.append((func, args, kwargs))
            return register(func, *args, **kwargs)

        def recording_unregister(func):
            calls[:] = [c for c in calls if c[0] != func]
            return unregister(func)
        recording_register.__doc__, recording_unregister.__doc__ = register.__doc__, unregister.__doc__
        atexit.register, atexit.unregister = recording_register, recording_unregister

    def program_calls(self, own_modules: dict) -> list:
        """The recorded registrations made by functions of the program's own modules."""
        return [c for c in self.calls if _defined_in(c[0], own_modules)]

    def register_again(self, calls: list) -> None:
        import atexit
        self.install()
        for func, args, kwargs in calls:
            atexit.register(func, *args, **kwargs)


def _defined_in(func: Any, own_modules: dict) -> bool:
    module = getattr(func, "__module__", None) or getattr(getattr(func, "func", None), "__module__", None)
    return module in own_modules


ATEXIT = AtexitRecorder()  # one per process: atexit itself is one per process


# ---- registered library-module state -------------------------------------------------------------

def library_states() -> dict:
    """Registered state (stasis.register_module_state) of the library modules the program has
    imported: logging's configuration, the decimal context, threading's name counter..."""
    from .. import _ensure_builtin_handlers
    _ensure_builtin_handlers()
    return {name: modules.module_state(sys.modules[name]) for name in sorted(modules.registered_names())
            if name in sys.modules and name != "random"}  # random: kept with the program state


def restore_library_states(states: dict) -> None:
    """Puts back the registered state of library modules. A program's snapshot may restore only
    its own modules (resume fills them) and the states registered with register_module_state:
    any other module it names, or a state of another kind, is refused before anything is applied."""
    from ..errors import CorruptSnapshotError
    registered = set(modules.registered_names())
    if not isinstance(states, dict):
        raise CorruptSnapshotError("the snapshot's library states are not a dict")
    for name, state in states.items():
        if (name not in registered or not isinstance(state, tuple) or len(state) != 3
                or state[0] != "library" or state[1] != name):
            raise CorruptSnapshotError(
                f"the snapshot holds state for module {name!r} that is not a registered library state "
                "(stasis.register_module_state); a program's snapshot restores only its own modules "
                "and registered library states")
    from ..handlers import imports
    # The modules the program had imported come back first: their imports may change another
    # module's registered state (add a logging handler), which its restore then replaces.
    for name in sorted(states, key=lambda n: n != imports.MODULE):
        modules.restore_module_state(importlib.import_module(name), states[name])

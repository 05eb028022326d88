"""subprocess.Popen: only a finished child can be part of a snapshot."""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

def _save_popen(p: Any) -> dict:
    if p.returncode is None and p.poll() is None:
        raise TypeError(f"its child process {p.pid} is still running and cannot be suspended with "
                        "the program; wait for it (wait(), communicate()) first")
    return {k: (None if k in ("stdin", "stdout", "stderr") else v) for k, v in vars(p).items()}


def _load_popen(state: dict) -> Any:
    """A finished child's Popen, inert: with its return code set, poll(), wait(), kill() and its
    __del__ never wait for or signal the pid it names. Only its data attributes are set: a key
    naming a method (`_internal_poll`, which __del__ calls) would replace it on the instance."""
    import subprocess
    if type(state) is not dict or not all(type(k) is str for k in state):
        raise TypeError("a Popen's state is not a dict of its attributes")
    if type(state.get("returncode")) is not int:
        raise TypeError("a Popen's state has no return code (only a finished child is restored)")
    for k in state:
        on_class = next((vars(c)[k] for c in subprocess.Popen.__mro__ if k in vars(c)), None)
        if k.startswith("__") or callable(on_class) or hasattr(type(on_class), "__get__"):
            raise TypeError(f"a Popen's state sets {k!r}, which is not a data attribute")
    p = subprocess.Popen.__new__(subprocess.Popen)
    vars(p).update(state)
    return p


def subprocess_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import subprocess
    return {subprocess.Popen: ("stasis.popen", _save_popen, _load_popen)}

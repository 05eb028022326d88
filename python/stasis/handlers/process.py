"""subprocess.Popen: only a finished child can be part of a snapshot."""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

def _save_popen(p: Any) -> dict:
    if p.returncode is None and p.poll() is None:
        raise TypeError(f"its child process {p.pid} is still running and cannot be suspended with "
                        "the program; wait for it (wait(), communicate()) first")
    return {k: (None if k in ("stdin", "stdout", "stderr") else v) for k, v in vars(p).items()}


def _load_popen(state: dict) -> Any:
    import subprocess
    p = subprocess.Popen.__new__(subprocess.Popen)
    vars(p).update(state)
    return p


def subprocess_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import subprocess
    return {subprocess.Popen: ("stasis.popen", _save_popen, _load_popen)}

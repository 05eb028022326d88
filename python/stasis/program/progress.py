"""What `stasis run`/`resume` say on stderr about a snapshot: the suspension line (how long after
the request the program was captured, where it went, how big it is), and a progress line while a
long snapshot is written or read — only when stderr is a terminal, after STASIS_PROGRESS_DELAY
seconds (default 1; the engine draws it, engine/progress.h)."""
from __future__ import annotations

import os
import sys
from typing import Optional

_DELAY = 1.0


def size_text(n: float) -> str:
    """A byte count as people read it: 812 B, 3.1 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def suspended_line(path: str, requested_at: float, captured_at: float) -> str:
    """'stasis: suspended into PATH (3.1 MiB), 12 ms after the request'"""
    try:
        size = f" ({size_text(os.path.getsize(path))})"
    except OSError:
        size = ""
    latency = ""
    if requested_at and captured_at:
        latency = f", {max(0.0, captured_at - requested_at) * 1000:.0f} ms after the request"
    return f"stasis: suspended into {path}{size}{latency}\n"


def stderr_is_terminal() -> bool:
    try:
        return os.isatty(2) and sys.stderr is not None
    except (OSError, ValueError):
        return False


def label(verb: str, path: str) -> Optional[str]:
    """The engine's progress label for `verb path`, or None when stderr is not a terminal."""
    if not stderr_is_terminal():
        return None
    return f"{verb} {path}"


def delay() -> float:
    try:
        value = float(os.environ.get("STASIS_PROGRESS_DELAY", _DELAY))
    except ValueError:
        return _DELAY
    return value if value >= 0 else _DELAY

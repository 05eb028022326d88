"""Options of a program running under Stasis (`stasis run` / `stasis resume`)."""
from __future__ import annotations

import signal as _signal
from dataclasses import dataclass, field
from typing import List, Optional

from ..errors import StasisError


@dataclass
class Options:
    snapshot: Optional[str] = None        # where a suspension writes (default: SCRIPT stem + .snap)
    quota: Optional[float] = None         # wall-clock seconds before a suspension request
    suspend_after: Optional[int] = None   # suspend at the N-th safe point (a testing aid)
    # The signals that request suspension (`--signal`, repeatable): the first is the one
    # `stasis suspend PID` sends. A batch job needs two: Slurm's time-limit warning (USR1) and
    # preemption (TERM).
    signals: List[str] = field(default_factory=lambda: ["SIGUSR1"])
    safe_point_timeout: float = 10.0      # give up a request after this long; the program goes on
    key_file: Optional[str] = None
    rewrite: List[str] = field(default_factory=list)
    no_rewrite: List[str] = field(default_factory=list)
    snapshot_on_crash: Optional[str] = None   # --snapshot-on-crash[=PATH] ("": beside --snapshot)
    checkpoint_every: Optional[float] = None  # seconds between periodic checkpoints (periodic.py)
    keep: int = 1                         # periodic checkpoints kept: PATH, PATH.1, ... PATH.<keep-1>

    @property
    def signal(self) -> str:
        """The first suspension signal (the one `stasis suspend PID` sends)."""
        return self.signals[0]

    @signal.setter
    def signal(self, name: str) -> None:
        self.signals = [name]

    def signal_numbers(self) -> List[int]:
        return [signal_number(s) for s in self.signals]


def signal_number(name: str) -> int:
    n = name.upper()
    if not n.startswith("SIG"):
        n = "SIG" + n
    try:
        return int(getattr(_signal, n))
    except AttributeError:
        raise StasisError(f"unknown signal {name!r} (use a name such as SIGUSR1 or SIGTERM)") from None

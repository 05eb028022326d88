"""A suspension signal that arrives while `stasis run` or `stasis resume` is still starting (the
interpreter re-executing itself with the program's hash seed, a large snapshot loading) is kept,
not lost, and does not kill the process with the signal's default action: it suspends the program
as soon as it runs (triggers.install). This matters for batch jobs: Slurm's time-limit warning or a
preemption can come at any moment, also while a requeued job is resuming.

The CLI installs a recording handler first thing (hold); across the re-execution the signals are
blocked, so that one arriving then is pending in the new process, where hold() unblocks it. This
module imports nothing of Stasis: the CLI calls it before the import hook is set up
(program/triggers.py takes over from it)."""
from __future__ import annotations

import signal as _signal
from typing import List

_signums: List[int] = []
_requested = 0  # the signal that came, or 0


def _record(signum, _frame) -> None:
    global _requested
    _requested = signum


def numbers(names: List[str]) -> List[int]:
    """Signal numbers of names such as USR1, SIGTERM, usr1 (unknown names left out: the CLI reports
    them when it parses its options)."""
    out = []
    for name in names:
        n = name.strip().upper()
        n = n if n.startswith("SIG") else "SIG" + n
        if isinstance(getattr(_signal, n, None), int):
            out.append(int(getattr(_signal, n)))
    return out


def hold(signums: List[int]) -> None:
    """Records the suspension signals until the program runs; delivers one left pending by the
    re-execution of this process."""
    _signums[:] = signums
    for signum in signums:
        _signal.signal(signum, _record)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, signums)


def block_for_exec() -> None:
    """Just before this process re-executes itself: a signal that arrives then stays pending."""
    if _signums:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _signums)
        if _requested:  # one came already: pending again, for the new process
            _signal.raise_signal(_requested)


def requested() -> bool:
    """Whether a suspension signal came before the program's own handlers were installed."""
    return bool(_requested)

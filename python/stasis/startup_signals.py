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

import _signal  # not `signal`: its enums import enum, functools and collections, a third of the
# first interpreter's start-up when it only re-executes itself (startup.py); these take numbers

TYPE_CHECKING = False
if TYPE_CHECKING:
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
        if isinstance(getattr(_signal, n, None), int) and n not in ("SIGKILL", "SIGSTOP"):
            out.append(int(getattr(_signal, n)))  # (those two cannot be caught: the CLI refuses them)
    return out


# Options of `stasis run` that take a value (the rest are flags): to find --signal before the
# command line is parsed, without taking the program's own arguments for Stasis's.
_RUN_VALUE_OPTIONS = {"--snapshot", "--quota", "--suspend-after", "--signal", "--safe-point-timeout",
                      "--checkpoint-every", "--keep", "--rewrite", "--no-rewrite", "--key-file"}


def names_in(command: str, args: List[str]) -> List[str]:
    """The --signal values of `stasis run|resume ARGS` (SIGUSR1 when none): for `run`, among the
    options before the program; for `resume`, anywhere."""
    names: List[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or (command == "run" and (a == "-m" or not a.startswith("-"))):
            break
        name, eq, value = a.partition("=")
        if name == "--signal":
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            names.extend(v for v in value.split(",") if v.strip())
        elif command == "run" and name in _RUN_VALUE_OPTIONS and not eq:
            i += 1
        i += 1
    return names or ["SIGUSR1"]


def hold(signums: List[int]) -> None:
    """Records the suspension signals until the program runs; delivers one left pending by the
    re-execution of this process."""
    _signums[:] = signums
    for signum in signums:
        _signal.signal(signum, _record)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, signums)


def release() -> None:
    """No suspension after all (`stasis run -m MODULE` without options runs as python3 -m would):
    the signals get their default action back, and one that came meanwhile takes it now."""
    for signum in _signums:
        _signal.signal(signum, _signal.SIG_DFL)
    if _requested:
        _signal.raise_signal(_requested)
    _signums.clear()


def block_for_exec() -> None:
    """Just before this process re-executes itself: a signal that arrives then stays pending."""
    if _signums:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _signums)
        if _requested:  # one came already: pending again, for the new process
            _signal.raise_signal(_requested)


def take() -> int:
    """Once the program's own handlers are installed (triggers.install): the suspension signal
    that came before them, 0 if none (then the caller asks for the suspension). Recording ends here."""
    global _requested
    came, _requested = int(_requested), 0
    _signums.clear()
    return came

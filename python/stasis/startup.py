"""The first thing `stasis run`/`resume`/`debug` do: settle the program's hash seed.

A program's str hashes and set orders depend on PYTHONHASHSEED, which only takes effect when an
interpreter starts; so `stasis run` picks a seed (unless the environment sets one) and `stasis
resume` needs the snapshot's, and both re-execute themselves with it. Done here, before the CLI's
own start-up imports, the first interpreter costs little more than its start; done later it paid
for every import twice. So the `stasis` launcher calls begin() before it imports the CLI, and
neither this module nor the package's __init__ imports more than the engine (not even typing).
Whatever goes wrong here is left to the normal path, which reports it
(program/process_state.py keeps the same re-exec as a fallback)."""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

# Options of `resume` that take a value (tests/cli/test_option_table.py keeps this in step with cli.py).
_VALUE_OPTIONS = {"--snapshot", "--quota", "--suspend-after", "--signal", "--safe-point-timeout", "--rewrite",
                  "--no-rewrite", "--patch", "--key-file", "--checkpoint-every", "--keep", "--rebind",
                  "--source", "--update"}


def _snapshot_argument(args: List[str]) -> Optional[str]:
    i = 0
    while i < len(args):
        a = args[i]
        if a in _VALUE_OPTIONS:
            i += 2
            continue
        if a.startswith("-"):
            if "=" not in a:
                return None  # an option this does not know: let the parser decide
            i += 1
            continue
        return a
    return None


def _wanted_seed(argv: List[str]) -> Optional[str]:
    command = argv[0] if argv else ""
    if command == "run":
        seed = os.environ.get("PYTHONHASHSEED")
        if seed is not None and seed != "random":
            return None
        return str(int.from_bytes(os.urandom(4), "little") % (2**32 - 1) + 1)
    if command in ("resume", "debug"):
        if "--key-file" in argv or any(a.startswith("--key-file=") for a in argv) or os.environ.get("STASIS_KEY_FILE"):
            return None  # signed snapshots: the normal path reads the key and checks it
        path = _snapshot_argument(argv[1:])
        if path is None:
            return None
        try:
            from . import _engine
            header = _engine.payload_header(path, key=None, verify=False)
        except Exception:  # reported by the normal path
            return None
        if header.get("kind") != "program":
            return None
        seed = header.get("hash_seed")
        if not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
            return None  # PYTHONHASHSEED's range: the normal path refuses the file
        return str(seed)
    return None


_begun_with: Optional[List[str]] = None  # the command line begin() has handled


def begin(argv: List[str], *, settle: bool = True) -> None:
    """The first thing `stasis CMD ...` does: keeps the suspension signals of run/resume from now on,
    until the program's handlers take over (a batch job's time-limit warning may come while Stasis
    starts), then, with `settle`, settles the hash seed (may re-execute this command)."""
    global _begun_with
    if argv and argv[0] in ("run", "resume"):
        from . import startup_signals
        startup_signals.hold(startup_signals.numbers(startup_signals.names_in(argv[0], argv[1:])))
    if settle:
        settle_hash_seed(argv)
    _begun_with = list(argv)


def begun(argv: List[str]) -> bool:
    """Whether the launcher ran begin() for this very command line already (then the CLI's main does
    not do it again); true once."""
    global _begun_with
    done, _begun_with = _begun_with == list(argv), None
    return done


def settle_hash_seed(argv: List[str]) -> None:
    """Re-executes this command with the hash seed the program needs, unless it has it already."""
    seed = _wanted_seed(argv)
    if seed is None or os.environ.get("PYTHONHASHSEED") == seed:
        return
    os.environ["PYTHONHASHSEED"] = seed
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    from . import startup_signals
    startup_signals.block_for_exec()  # a suspension signal now is kept for the new process
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

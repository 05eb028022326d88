"""One command line for every start of a batch job: `stasis run --snapshot PATH --resume-if-present
SCRIPT ARGS` resumes from PATH when it holds a complete snapshot of this program (same script,
same arguments), and starts the program otherwise. A job script that is requeued after a time
limit, a preemption or a lost node runs the same line again.

PATH is complete or absent (snapshots are written to a temporary file and renamed). When PATH is
damaged all the same (a disk error), the newest of the kept checkpoints (--keep: PATH.1, ...)
that is whole is resumed, with a warning. A snapshot of another program is refused: resuming it
would run something else, starting over would destroy it."""
from __future__ import annotations

import os
import shlex
import sys
import time
from typing import List, Optional, Tuple

from .. import _engine
from ..errors import IncompatibleSnapshotError, StasisError
from .layout import ProgramMeta


def candidates(path: str) -> List[str]:
    """PATH, then PATH.1, PATH.2, ... as long as they exist."""
    found = [path] if os.path.exists(path) else []
    k = 1
    while os.path.exists(f"{path}.{k}"):
        found.append(f"{path}.{k}")
        k += 1
    return found


def describe(program: List[str]) -> str:
    if not program:
        return "an unknown program"
    kind, target, *args = program
    return shlex.join((["-m", target] if kind == "module" else [target]) + args)


def choose(path: str, program: List[str], key: Optional[bytes]) -> Optional[str]:
    """The snapshot to resume, or None to start the program. Raises when PATH holds a snapshot
    of another program, or when every snapshot there is damaged."""
    damaged: List[Tuple[str, StasisError]] = []
    for candidate in candidates(path):
        try:
            header = _engine.payload_header(candidate, key=key, verify=False)
            if header["kind"] != "program":
                raise IncompatibleSnapshotError(f"{candidate} holds an object graph (stasis.dump), not a "
                                                "suspended program")
            meta = ProgramMeta.from_json(header["meta"])
        except StasisError as e:
            if isinstance(e, IncompatibleSnapshotError) and not damaged:
                raise IncompatibleSnapshotError(f"{candidate} cannot be resumed: {e}; remove it to start "
                                                f"the program from the beginning") from None
            damaged.append((candidate, e))
            continue
        if meta.program != program:
            raise IncompatibleSnapshotError(
                f"{candidate} is a snapshot of `{describe(meta.program)}`, not of `{describe(program)}`: "
                "give this program a --snapshot PATH of its own, or remove the file to start over")
        for bad, error in damaged:
            sys.stderr.write(f"stasis: warning: {bad} is damaged ({error}); resuming the older {candidate}\n")
        return candidate
    if damaged:
        bad, error = damaged[0]
        raise type(error)(f"{bad} is damaged and no older checkpoint is whole: {error}; remove it to start the "
                      "program from the beginning")
    return None


def hash_seed(path: str, key: Optional[bytes]) -> str:
    return str(_engine.payload_header(path, key=key, verify=False)["hash_seed"])


def announce(path: Optional[str], snapshot: str, program: List[str]) -> None:
    """One line in the job's log saying what this start does."""
    if path is None:
        sys.stderr.write(f"stasis: no snapshot at {snapshot}: starting {describe(program)}\n")
    else:
        age = max(0.0, time.time() - os.path.getmtime(path))
        sys.stderr.write(f"stasis: resuming {describe(program)} from {path} (written {age:.0f} s ago)\n")
    sys.stderr.flush()


def finished(status: int, path: str) -> None:
    """The program ended with `status` (not suspended). With 0 the job is done: PATH and the kept
    checkpoints are removed, so that the same command line starts the program the next time
    instead of resuming the end of this run. Another status keeps them (a crash can be debugged
    from the last checkpoint: `stasis debug PATH`)."""
    if status != 0:
        return
    for snapshot in candidates(path):
        try:
            os.unlink(snapshot)
        except OSError:
            pass

"""Open files: path, mode, position, encoding, errors, closed; sys.std* by name. Reopened without
truncating what the old process wrote; SnapshotIOError when the file is gone."""
from __future__ import annotations

import io
import os
import sys
from typing import Any, Callable, Dict, Tuple

from ..errors import SnapshotIOError

_STD = {"<stdin>": "stdin", "<stdout>": "stdout", "<stderr>": "stderr"}


def _save_file(f: Any) -> Tuple:
    name = getattr(f, "name", None)
    if isinstance(name, str) and name in _STD:
        return ("std", _STD[name])
    if not isinstance(name, (str, bytes)):
        raise TypeError(f"an open file without a path (name={name!r}) cannot be reopened")
    closed = f.closed
    position = None
    if not closed:
        if f.writable():
            f.flush()
        position = f.tell()
    text = isinstance(f, io.TextIOBase)
    return ("file", os.path.abspath(os.fsdecode(name)), f.mode, position, closed, text,
            getattr(f, "encoding", None) if text else None, getattr(f, "errors", None) if text else None,
            type(f).__name__)


def _load_file(state: Tuple) -> Any:
    if state[0] == "std":
        return getattr(sys, state[1])
    _, path, mode, position, closed, text, encoding, errors, _kind = state
    # Reopen without truncating what the old process wrote: "w"/"x" become "r+".
    reopen = mode.replace("w", "r+").replace("x", "r+").replace("++", "+")
    if "b" not in reopen and not text:
        reopen += "b"
    try:
        f = open(path, reopen, encoding=encoding, errors=errors) if text else open(path, reopen)
    except FileNotFoundError:
        raise SnapshotIOError(f"cannot reopen file {path!r} (mode {mode!r}) saved in the snapshot: "
                              "it no longer exists") from None
    except OSError as e:
        raise SnapshotIOError(f"cannot reopen file {path!r} (mode {mode!r}) saved in the snapshot: "
                              f"{e.strerror}") from None
    if position is not None and "a" not in mode:
        f.seek(position)
    if closed:
        f.close()
    return f


def handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    return {t: ("stasis.file", _save_file, _load_file)
            for t in (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO)}

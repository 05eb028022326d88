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
    from . import net
    if net.is_socket_file(f):  # sock.makefile(): no path; made again around the restored socket
        return net.save_socket_file(f)
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
        if state[1] not in _STD.values():
            raise TypeError(f"no standard stream {state[1]!r}")
        return getattr(sys, state[1])
    if state[0] == "socketfile":
        from . import net
        return net.load_socket_file(state)
    _, path, mode, position, closed, text, encoding, errors, _kind = state
    if not (isinstance(path, str) and isinstance(mode, str) and set(mode) <= set("rwxab+t")
            and (position is None or isinstance(position, int)) and isinstance(closed, bool)):
        raise TypeError("an open file's state is malformed")
    # Reopen without truncating what the old process wrote: "w"/"x" become "r+". The file must
    # still exist: loading never creates a file (os.open without O_CREAT; "a" would create it).
    reopen = mode.replace("w", "r+").replace("x", "r+").replace("++", "+")
    if "b" not in reopen and not text:
        reopen += "b"
    flags = os.O_RDWR if "+" in reopen else (os.O_WRONLY if "a" in reopen else os.O_RDONLY)
    if "a" in reopen:
        flags |= os.O_APPEND
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
        try:
            f = open(fd, reopen, encoding=encoding, errors=errors) if text else open(fd, reopen)
        except BaseException:
            os.close(fd)
            raise
        raw = f.buffer.raw if text else getattr(f, "raw", f)
        raw.name = path  # opened by descriptor: the name a later snapshot reopens it by
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

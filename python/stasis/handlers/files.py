"""Open files: path, mode, position, encoding, errors, newline, closed; sys.std* by name. Reopened
without truncating what the old process wrote; SnapshotIOError when the file is gone.

A text file being iterated (`for line in f`, csv.reader over it) continues at the next line: its
position is computed from the characters it has decoded but not returned yet and its decoder's
state, since tell() refuses after next() (_iterated_position)."""
from __future__ import annotations

import codecs
import io
import os
import stat
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
    text = isinstance(f, io.TextIOBase)
    if not closed:
        if f.writable():
            f.flush()
        try:
            position = f.tell()
        except OSError:
            if not (text and type(f) is io.TextIOWrapper and f.seekable()):
                raise
            position = _iterated_position(f)
    state = ("file", os.path.abspath(os.fsdecode(name)), f.mode, position, closed, text,
             getattr(f, "encoding", None) if text else None, getattr(f, "errors", None) if text else None,
             type(f).__name__)
    if text and not closed and type(f) is io.TextIOWrapper:
        from .. import _engine
        newline = _engine.text_reader_state(f)[3]
        if newline is not None:  # not the default: kept (csv files are opened with newline="")
            state += (newline,)
    return state


def _iterated_position(f: Any) -> int:
    """A seek cookie (as tell() would give) for text file `f` after next() disabled tell(): the
    byte offset where the characters it has decoded but not yet returned begin, found by decoding
    the file's bytes back to exactly those characters, with the decoder's flags."""
    from .. import _engine
    decoder, pending, _telling, newline = _engine.text_reader_state(f)
    end = f.buffer.tell()
    if decoder is None:
        return end
    undecoded, flags = decoder.getstate()
    newline_decoder = type(decoder) is io.IncrementalNewlineDecoder
    encoding, errors = f.encoding, f.errors
    end -= len(undecoded)
    if newline_decoder and flags & 1:  # a "\r" decoded but held back (a "\r\n" may follow)
        end -= len(("\n\r").encode(encoding)) - len("\n".encode(encoding))
    inner_flags = flags >> 1 if newline_decoder else flags
    if not pending:
        return end | (inner_flags << 1 if newline_decoder else inner_flags) << 64

    def decode(start: int) -> Any:
        inner = codecs.getincrementaldecoder(encoding)(errors)
        inner.setstate((b"", inner_flags))
        d = io.IncrementalNewlineDecoder(inner, newline is None) if newline_decoder else inner
        try:
            return d.decode(os.pread(f.fileno(), end - start, start), final=True)
        except (UnicodeError, ValueError):
            return None
    exact = len(("\n" + pending).encode(encoding, errors)) - len("\n".encode(encoding))
    # "\r\n" decoded as "\n": each newline may stand for one byte more; try those first.
    for extra in range(pending.count("\n") + 1):
        for start in ((end - exact - extra,) if extra else (end - exact, end - exact + 1)):
            if 0 <= start <= end and decode(start) == pending:
                return start | ((inner_flags << 1 if newline_decoder else inner_flags) << 64)
    raise TypeError(f"its reading position cannot be found: the {len(pending)} characters it has "
                    f"decoded but not returned yet do not decode from the file's bytes ({encoding})")


def _load_file(state: Tuple) -> Any:
    if state[0] == "std":
        if state[1] not in _STD.values():
            raise TypeError(f"no standard stream {state[1]!r}")
        return getattr(sys, state[1])
    if state[0] == "socketfile":
        from . import net
        return net.load_socket_file(state)
    _, path, mode, position, closed, text, encoding, errors, _kind = state[:9]
    newline = state[9] if len(state) > 9 else None
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise TypeError("an open file's newline is malformed")
    if not (type(path) is str and type(mode) is str and set(mode) <= set("rwxab+t")
            and (position is None or (type(position) is int and position >= 0)) and type(closed) is bool
            and type(text) is bool and (encoding is None or type(encoding) is str)
            and (errors is None or type(errors) is str)):
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
        # Never blocks (opening a FIFO waits for its other end), never makes a terminal the
        # controlling one; only a regular file or a character device (/dev/null) is reopened.
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            kind = os.fstat(fd).st_mode
            if not (stat.S_ISREG(kind) or stat.S_ISCHR(kind)):
                raise SnapshotIOError(f"cannot reopen {path!r} saved in the snapshot: it is not a regular "
                                      "file (a FIFO, socket, directory or block device)")
            os.set_blocking(fd, True)
            f = open(fd, reopen, encoding=encoding, errors=errors, newline=newline) if text else open(fd, reopen)
        except BaseException:
            os.close(fd)
            raise
        raw = f.buffer.raw if text else getattr(f, "raw", f)
        raw.name = path  # opened by descriptor: the name a later snapshot reopens it by
    except SnapshotIOError:
        raise
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

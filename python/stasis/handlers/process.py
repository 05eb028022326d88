"""subprocess.Popen: only a finished child can be part of a snapshot. The output it left unread in
its stdout/stderr pipes is captured (the pipe is drained without blocking, and the running
program's pipe is refilled with the same bytes) and is there to read after resume, from a new
pipe; its stdin comes back as a pipe nobody reads (writing to it fails as it would have, with
BrokenPipeError). A pipe whose write end another process still holds (a grandchild) is refused:
its output is not all there yet."""
from __future__ import annotations

import errno
import fcntl
import io
import os
from typing import Any, Callable, Dict, Optional, Tuple

_STREAMS = ("stdin", "stdout", "stderr")


def _save_popen(p: Any) -> dict:
    if p.returncode is None and p.poll() is None:
        raise TypeError(f"its child process {p.pid} is still running and cannot be suspended with "
                        "the program; wait for it (wait(), communicate()) first")
    state = {k: v for k, v in vars(p).items() if k not in _STREAMS}
    state["_stasis_streams"] = {name: _save_stream(p, name, getattr(p, name)) for name in _STREAMS}
    # communicate() keeps what it read in a dict keyed by the stream objects: keyed by name here.
    if isinstance(state.get("_fileobj2output"), dict):
        names = {id(getattr(p, name)): name for name in _STREAMS if getattr(p, name) is not None}
        state["_fileobj2output"] = {names.get(id(k), k): v for k, v in state["_fileobj2output"].items()}
    return state


def _save_stream(p: Any, name: str, f: Any) -> Optional[Tuple]:
    if f is None:
        return None
    text = isinstance(f, io.TextIOWrapper)
    if f.closed:
        return ("closed", text)
    if name == "stdin":
        return ("stdin", text)
    return ("output", text, _drain(f, name))


def _drain(f: Any, name: str) -> bytes:
    """The bytes left to read from pipe file `f` (its buffers and the pipe), read without
    blocking; the pipe under `f` is then refilled with them, so the running program reads them."""
    binary = f
    if isinstance(f, io.TextIOWrapper):
        from .. import _engine
        decoder, pending, _telling, _newline = _engine.text_reader_state(f)
        if pending or (decoder is not None and decoder.getstate() != (b"", 0)):
            raise TypeError(f"its {name} was read in part as text; the rest cannot be told apart "
                            "from what was decoded already")
        binary = f.buffer
    fd = binary.fileno()
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    chunks = []
    try:
        data = binary.read()
        if data:
            chunks.append(data)
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                _refill(fd, b"".join(chunks))
                raise TypeError(f"another process (a child of its child?) still holds the write end of "
                                f"its {name} pipe: its output is not complete") from None
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        except OSError:
            pass
    data = b"".join(chunks)
    _refill(fd, data)
    return data


def _pipe_holding(data: bytes) -> int:
    """The read end of a new pipe that holds `data`, then end of file."""
    r, w = os.pipe()
    try:
        if len(data) > 65536 and hasattr(fcntl, "F_SETPIPE_SZ"):
            try:
                fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, len(data))
            except OSError:
                pass
        os.set_blocking(w, False)
        view = memoryview(data)
        while view:
            try:
                n = os.write(w, view)
            except BlockingIOError:
                break
            view = view[n:]
        if view:  # more than the pipe holds: a thread of Stasis writes the rest
            from .. import internal_threads
            rest = bytes(view)
            os.set_blocking(w, True)

            def write_rest() -> None:
                try:
                    _write_all(w, rest)
                except OSError as e:
                    if e.errno != errno.EPIPE:
                        raise
                finally:
                    os.close(w)
            internal_threads.start(write_rest)
            return r
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    os.close(w)
    return r


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _refill(fd: int, data: bytes) -> None:
    """Puts `data` back where the running program reads it: file descriptor `fd` now reads a new
    pipe holding it (the file objects over fd are unchanged)."""
    r = _pipe_holding(data)
    try:
        os.dup2(r, fd, inheritable=os.get_inheritable(fd))
    finally:
        os.close(r)


def _load_stream(p: Any, saved: Optional[Tuple]) -> Any:
    if saved is None:
        return None
    kind, text = saved[0], saved[1]
    if kind == "closed":
        f = io.BytesIO()
        f.close()
        return f
    if kind == "stdin":
        r, w = os.pipe()
        os.close(r)  # nobody reads it: writes fail with BrokenPipeError, as to a finished child
        f = io.open(w, "wb", getattr(p, "_stasis_bufsize", -1))
    else:
        f = io.open(_pipe_holding(saved[2]), "rb", -1)
    if text:
        f = io.TextIOWrapper(f, encoding=getattr(p, "encoding", None), errors=getattr(p, "errors", None),
                             write_through=kind == "stdin", line_buffering=kind == "stdin")
    return f


def _load_popen(state: dict) -> Any:
    """A finished child's Popen, inert: with its return code set, poll(), wait(), kill() and its
    __del__ never wait for or signal the pid it names. Only its data attributes are set: a key
    naming a method (`_internal_poll`, which __del__ calls) would replace it on the instance."""
    import subprocess
    if type(state) is not dict or not all(type(k) is str for k in state):
        raise TypeError("a Popen's state is not a dict of its attributes")
    if type(state.get("returncode")) is not int:
        raise TypeError("a Popen's state has no return code (only a finished child is restored)")
    for k in state:
        on_class = next((vars(c)[k] for c in subprocess.Popen.__mro__ if k in vars(c)), None)
        if k.startswith("__") or callable(on_class) or hasattr(type(on_class), "__get__"):
            raise TypeError(f"a Popen's state sets {k!r}, which is not a data attribute")
    state = dict(state)
    streams = state.pop("_stasis_streams", {})
    if type(streams) is not dict:
        raise TypeError("a Popen's saved pipes are not a dict")
    p = subprocess.Popen.__new__(subprocess.Popen)
    vars(p).update(state)
    for name in _STREAMS:
        setattr(p, name, _load_stream(p, streams.get(name)))
    if isinstance(state.get("_fileobj2output"), dict):
        p._fileobj2output = {getattr(p, k) if k in _STREAMS else k: v for k, v in state["_fileobj2output"].items()}
    return p


def subprocess_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import subprocess
    return {subprocess.Popen: ("stasis.popen", _save_popen, _load_popen)}

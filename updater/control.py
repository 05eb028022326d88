"""The control channel's server: serve_updates() starts it (idempotent).

While idle, the channel holds no Python thread: a watcher in C++ (control_watch.cpp) polls the
listening socket and, when a client connects, calls _accept_one with a thread state of its own for
that call only. Each connection then gets a bare thread of its own (internal_threads, as do its
hang-up watcher and event sender), so the program's threading sees none of them, and its
sys._current_frames() and _thread._count() see what plain python3 shows except while a request is
being served. Each request is one JSON object naming an operation, and gets exactly one final
reply ({"ok": true, ...} or {"ok": false, "error", "code", "kind"}), preceded for trace/watch by
{"event": text} messages. After fork, the child closes the inherited socket and serves on its own
(os.register_at_fork), so every worker of a pre-fork server can be updated. Operations: ping,
apply, list, revert, profile, trace, watch, lines, and restart (stasis/handover.py: the process
ends once that reply is sent).
"""
from __future__ import annotations

import atexit
import functools
import os
import select
import socket
import sys
import threading
from typing import Any, Callable, Dict, Optional

from .. import _engine, internal_threads, runtime_dir
from ..errors import StasisError
from . import channel
from .errors import ControlChannelError, UpdateError, UpdateRefusedError

# The updater itself (api, layers, tools) and what only requests need (hashlib, queue, traceback)
# are imported when a request comes: every program started by `stasis run`/`resume` serves this
# channel, few ever get a request, and each chain step pays for what start-up imports.

_lock = threading.Lock()
_state: Dict[str, Any] = {"pid": None, "sock": None, "path": None, "fork_hook": False}
MAX_SECONDS = 3600.0
# Limits of what clients (of this user only) may hold: connections served at once, and how long
# a connection may stay silent before or inside a request.
MAX_CONNECTIONS = 16
IDLE_TIMEOUT = 60.0
_connections = {"count": 0}
_connections_lock = threading.Lock()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep   # .../stasis/


def serve_updates() -> None:
    """Start serving `stasis ctl` requests for this process (no-op when already serving)."""
    with _lock:
        if _state["pid"] == os.getpid():
            return
        path = channel.socket_path(os.getpid(), create_dir=True)
        runtime_dir.clean_stale(os.path.dirname(path))  # sockets of programs that were killed
        try:
            os.unlink(path)  # a stale socket of an earlier process with our PID
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)   # the socket file is 0600 from the start
        try:
            sock.bind(path)
            sock.listen(16)
        except OSError as e:
            sock.close()
            raise ControlChannelError(f"cannot serve updates on {path}: {e.strerror or e} "
                                      f"(set STASIS_CONTROL_DIR to a short private directory)") from None
        finally:
            os.umask(old_umask)
        sock.setblocking(False)   # the watcher says when to accept; a client gone by then is no wait
        try:
            _engine.updater_watch_start(sock.fileno(), functools.partial(_accept_one, sock),
                                        internal_threads.idents)
        except BaseException:
            sock.close()
            os.unlink(path)
            raise
        _state.update(pid=os.getpid(), sock=sock, path=path)
        if not _state["fork_hook"]:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            atexit.register(_at_exit)
            _state["fork_hook"] = True


def _after_fork_in_child() -> None:
    _engine.updater_watch_forget()  # the parent's watcher thread does not exist in the child
    sock = _state.get("sock")
    _state.update(pid=None, sock=None, path=None)  # the parent's socket path stays the parent's
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
    global _lock
    _lock = threading.Lock()  # the parent's lock may have been held by another thread at fork
    layers = sys.modules.get(__package__ + ".layers")
    if layers is not None:   # else no update was ever applied
        layers.layers.after_fork()
    try:
        serve_updates()
    except Exception as e:
        print(f"stasis: the forked process {os.getpid()} cannot serve updates: {e}", file=sys.stderr)


def _at_exit() -> None:
    # The watcher is joined while the interpreter is intact: it never asks a finalizing one for the GIL.
    _engine.updater_watch_stop()
    if _state.get("pid") == os.getpid() and _state.get("path"):
        try:
            os.unlink(_state["path"])
        except OSError:
            pass


def _accept_one(sock: socket.socket) -> bool:
    """Called by the watcher when the listening socket is readable; True: go on watching."""
    try:
        conn, _ = sock.accept()
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return True   # the client went away before we accepted
    except OSError:
        return False  # the socket is closed or broken: the watcher ends
    try:
        conn.setblocking(True)   # whatever socket.setdefaulttimeout() the program has set
        _pid, uid, _gid = channel.peer_credentials(conn)
        if uid != os.getuid():
            try:
                channel.send(conn, _error(ControlChannelError(
                    f"refused: peer uid {uid} is not the uid of this process ({os.getuid()})")))
            except OSError:
                pass
            conn.close()
            return True
        with _connections_lock:
            full = _connections["count"] >= MAX_CONNECTIONS
            if not full:
                _connections["count"] += 1
        if full:
            try:
                channel.send(conn, _error(ControlChannelError(
                    f"refused: {MAX_CONNECTIONS} connections are being served already; try again")))
            except OSError:
                pass
            conn.close()
            return True
        try:
            internal_threads.start(_serve_connection, conn)  # not in the program's threading.enumerate()
        except BaseException:
            _release_connection()
            raise
    except Exception:
        conn.close()  # no peer credentials, or no thread could be started: drop this client
    return True


def _release_connection() -> None:
    with _connections_lock:
        _connections["count"] -= 1


def _error(e: BaseException) -> Dict[str, Any]:
    if isinstance(e, StasisError):
        return {"ok": False, "error": str(e), "code": e.code, "kind": type(e).__name__}
    # An exception from the update file itself (or a bug): say where, with the traceback of the
    # update's own frames (Stasis's frames are dropped; a bug in Stasis keeps them all).
    import traceback
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return {"ok": False, "error": f"{type(e).__name__}: {e}", "code": UpdateError.code,
            "kind": type(e).__name__,
            "traceback": "".join(traceback.format_exception(type(e), e, tb) if tb is not None
                                 else traceback.format_exception_only(type(e), e))}


def _serve_connection(conn: socket.socket) -> None:
    try:
        _serve_requests(conn)
    finally:
        _release_connection()


def _serve_requests(conn: socket.socket) -> None:
    with conn:
        while True:
            stop = threading.Event()
            try:
                conn.settimeout(IDLE_TIMEOUT)  # a silent client does not hold its thread forever
                request = channel.recv(conn, channel.MAX_REQUEST)
                conn.settimeout(None)
            except socket.timeout:
                try:
                    channel.send(conn, _error(ControlChannelError(
                        f"no complete request within {IDLE_TIMEOUT:g} s; closing the connection")))
                except OSError:
                    pass
                return
            except (ControlChannelError, OSError) as e:
                try:
                    channel.send(conn, _error(e if isinstance(e, StasisError) else ControlChannelError(str(e))))
                except OSError:
                    pass
                return
            if request is None:
                return
            # A client that disconnects ends streaming operations early (they revert their update).
            events = _EventStream(conn)
            try:
                reply = {"ok": True, **_dispatch(request, stop, events.emit,
                                                 lambda: internal_threads.start(_watch_hangup, conn, stop))}
            except Exception as e:
                reply = _error(e)
            finally:
                stop.set()
                events.close()
            if events.dropped:
                reply["dropped_events"] = events.dropped
            exit_status = reply.pop("_exit_after_reply", None)  # a restart handed the program over
            try:
                channel.send(conn, reply)
            except OSError:
                if exit_status is None:
                    return
            if exit_status is not None:
                os._exit(exit_status)


def _watch_hangup(conn: socket.socket, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            readable, _, _ = select.select([conn], [], [], 0.2)
            if readable and not conn.recv(1, socket.MSG_PEEK):
                break  # end of file: the client is gone
    except (OSError, ValueError):
        pass
    stop.set()


class _EventStream:
    """Events of trace/watch go to the client through a bounded queue and a sender thread, so an
    instrumented function never waits for a slow client: when the queue is full, events are
    dropped and counted (the final reply says how many)."""

    LIMIT = 10000

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        import queue
        self.queue: "queue.Queue[Optional[str]]" = queue.Queue(self.LIMIT)
        self.full = queue.Full
        self.dropped = 0
        self.broken = False
        self.closed = False
        self.sender: Optional[Any] = None   # the sender's lock, held until it has ended
        self.lock = threading.Lock()

    def emit(self, text: str) -> None:
        with self.lock:
            if self.closed:
                return  # a callback still running on another thread as its tool ended
            if self.sender is None:
                self.sender = internal_threads.start(self._send_all)
        try:
            self.queue.put_nowait(text)
        except self.full:
            self.dropped += 1

    def _send_all(self) -> None:
        while True:
            text = self.queue.get()
            if text is None:
                return
            if not self.broken:
                try:
                    channel.send(self.conn, {"event": text})
                except OSError:
                    self.broken = True  # the client is gone; the hang-up watcher ends the tool

    def close(self) -> None:
        """Sends what is queued (before the final reply), then stops the sender."""
        with self.lock:
            self.closed = True
        if self.sender is not None:
            self.queue.put(None)
            with self.sender:
                pass


def _seconds(request: Dict[str, Any], default: float) -> float:
    value = request.get("seconds", default)
    if not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:
        raise UpdateRefusedError(f"seconds must be a number between 0 and {MAX_SECONDS:g}")
    return float(value)


def _str(request: Dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise UpdateRefusedError(f"request field {key!r} must be a non-empty string")
    return value


def _dispatch(request: Dict[str, Any], stop: threading.Event, emit: Callable[[str], None],
              watch_hangup: Callable[[], Any]) -> Dict[str, Any]:
    import hashlib
    from . import api, tools
    op = request.get("op")
    if request.get("protocol", channel.PROTOCOL) != channel.PROTOCOL:
        raise ControlChannelError(f"protocol {request.get('protocol')} is not {channel.PROTOCOL}; "
                                  f"use a stasis of the same version as the target")
    if op == "restart":  # `stasis restart`: hand the program over to a new process (stasis/handover.py)
        from .. import handover
        return handover.serve(request)
    if op == "ping":
        return {"pid": os.getpid(), "ppid": os.getppid(), "python": sys.version.split()[0], "argv": sys.argv}
    if op == "apply":
        path = _str(request, "path")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UpdateRefusedError(f"the target cannot read {path}: {e.strerror}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != request.get("sha256"):
            raise UpdateRefusedError(f"{path} changed between reading and applying (sha256 {digest} is not "
                                     f"the {request.get('sha256')} the client sent); apply again")
        u = api.apply_file(path, data.decode("utf-8"))
        return {"update": u.id, "actions": u.actions, "warnings": u.warnings}
    if op == "list":
        return {"updates": api.list_updates()}
    if op == "revert":
        update_id = request.get("update")
        if not isinstance(update_id, int):
            raise UpdateRefusedError("revert needs an integer update id")
        u = api.layers.revert(update_id)
        return {"update": u.id, "actions": u.actions, "warnings": u.warnings}
    if op in ("profile", "trace", "watch", "lines"):
        watch_hangup()
        if op == "profile":
            return tools.profile(_str(request, "pattern"), _seconds(request, 10.0), stop)
        if op == "trace":
            return tools.trace(_str(request, "function"), _seconds(request, 10.0), stop, emit)
        if op == "watch":
            return tools.watch(_str(request, "function"), _str(request, "variable"), _seconds(request, 10.0),
                               stop, emit)
        return tools.lines(_str(request, "function"), _str(request, "lines"), _seconds(request, 10.0), stop)
    raise UpdateRefusedError(f"unknown operation {op!r}")

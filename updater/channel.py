"""The control channel's transport, shared by the server (control.py) and the client (ctl.py).

A Unix-domain stream socket `<dir>/<pid>.sock` in a per-user directory of mode 0700:
$STASIS_CONTROL_DIR when set (checked, and refused if others could use it), else the user's
runtime directory (stasis/runtime_dir.py, which another user can never pre-empt). Both ends check
the directory (owned by us, no group/other permissions, not a symlink) and the peer's credentials
(SO_PEERCRED: same UID; the client also checks the server's PID). Messages are JSON objects
prefixed by a 4-byte big-endian length — data only: nothing received is ever evaluated or unpickled.
A request may be at most MAX_REQUEST bytes and MAX_DEPTH levels deep (the server reads nothing
more); replies, which carry profiles, at most MAX_MESSAGE.
"""
from __future__ import annotations

import json
import os
import re
import socket
import stat
import struct
from typing import Any, Dict, Optional, Tuple

from .. import runtime_dir
from .errors import ControlChannelError

MAX_MESSAGE = 64 << 20   # a reply (a profile, a trace's events): what a client reads at most
MAX_REQUEST = 1 << 20    # a request (a path, a pattern): what the server reads at most
MAX_DEPTH = 32           # JSON nesting of any message
PROTOCOL = 1


def socket_dir(create: bool = False) -> str:
    d = os.environ.get("STASIS_CONTROL_DIR")
    if not d:
        if create:
            return runtime_dir.runtime_dir()
        found = runtime_dir.candidates()
        return found[0] if found else runtime_dir.runtime_dir()
    if create:
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    check_dir(d)
    return d


def check_dir(d: str) -> None:
    """Refuses a directory other users could write to or plant sockets in."""
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        raise ControlChannelError(f"control directory {d} does not exist (is the process serving updates?)") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ControlChannelError(f"control directory {d} is not a plain directory; refusing it")
    if st.st_uid != os.getuid():
        raise ControlChannelError(f"control directory {d} belongs to uid {st.st_uid}, not to us ({os.getuid()}); refusing it")
    if st.st_mode & 0o077:
        raise ControlChannelError(f"control directory {d} has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0700 "
                                  f"(no access for group or others); refusing it")


def socket_path(pid: int, create_dir: bool = False) -> str:
    """Where process `pid` serves (create_dir: where this process will serve). Without
    $STASIS_CONTROL_DIR, every runtime directory of this user is searched for the socket."""
    if not create_dir and not os.environ.get("STASIS_CONTROL_DIR"):
        found = runtime_dir.find(f"{pid}.sock")
        if found:
            return found
    return os.path.join(socket_dir(create_dir), f"{pid}.sock")


def peer_credentials(sock: socket.socket) -> Tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end (SO_PEERCRED)."""
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))


def send(sock: socket.socket, message: Dict[str, Any]) -> None:
    data = json.dumps(message, default=repr).encode()
    if len(data) > MAX_MESSAGE:
        raise ControlChannelError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE}")
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise ControlChannelError(f"connection closed in the middle of a message ({got} of {n} bytes)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


def _depth(body: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in `body` (strings skipped)."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(_STRINGS.sub(b'""', body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def recv(sock: socket.socket, limit: int = MAX_MESSAGE) -> Optional[Dict[str, Any]]:
    """The next message, or None when the peer closed the connection between messages. A message
    announcing more than `limit` bytes is refused before any of it is read."""
    header = _recv_exact(sock, 4)
    if header is None:
        return None
    (n,) = struct.unpack(">I", header)
    if n > limit:
        raise ControlChannelError(f"announced message of {n} bytes exceeds the limit of {limit}")
    body = _recv_exact(sock, n)
    if body is None:
        raise ControlChannelError("connection closed after a message header")
    if _depth(body) > MAX_DEPTH:
        raise ControlChannelError(f"malformed message: nested more than {MAX_DEPTH} levels deep")
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ControlChannelError(f"malformed message (not JSON): {e}") from None
    if not isinstance(message, dict):
        raise ControlChannelError("malformed message (not a JSON object)")
    return message


def connect(pid: int, timeout: Optional[float] = None) -> socket.socket:
    """A connection to process `pid`'s control socket, after checking who is listening."""
    path = socket_path(pid)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ControlChannelError(f"process {pid} has no control socket ({path}); is it running under "
                                  f"`stasis run` or calling stasis.serve_updates()?") from None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        raise ControlChannelError(f"{path} is not a socket owned by us; refusing it")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise ControlChannelError(f"cannot connect to process {pid} at {path}: {e.strerror or e}") from None
    peer_pid, peer_uid, _ = peer_credentials(sock)
    if peer_uid != os.getuid() or peer_pid != pid:
        sock.close()
        raise ControlChannelError(f"{path} is served by pid {peer_pid} uid {peer_uid}, not by process {pid} "
                                  f"of uid {os.getuid()}; refusing it")
    return sock

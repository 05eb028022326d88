"""The control channel's transport, shared by the server (control.py) and the client (ctl.py).

A Unix-domain stream socket `<dir>/<pid>.sock` in a per-user directory of mode 0700
($STASIS_CONTROL_DIR, else $XDG_RUNTIME_DIR/stasis, else /tmp/stasis-<uid>). Both ends check the
directory (owned by us, no group/other permissions, not a symlink) and the peer's credentials
(SO_PEERCRED: same UID; the client also checks the server's PID). Messages are JSON objects
prefixed by a 4-byte big-endian length — data only: nothing received is ever evaluated or unpickled.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import struct
from typing import Any, Dict, Optional, Tuple

from .errors import ControlChannelError

MAX_MESSAGE = 64 << 20
PROTOCOL = 1


def socket_dir(create: bool = False) -> str:
    uid = os.getuid()
    d = os.environ.get("STASIS_CONTROL_DIR")
    if not d:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime and os.path.isdir(runtime) and os.stat(runtime).st_uid == uid:
            d = os.path.join(runtime, "stasis")
        else:
            d = f"/tmp/stasis-{uid}"
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


def recv(sock: socket.socket) -> Optional[Dict[str, Any]]:
    """The next message, or None when the peer closed the connection between messages."""
    header = _recv_exact(sock, 4)
    if header is None:
        return None
    (n,) = struct.unpack(">I", header)
    if n > MAX_MESSAGE:
        raise ControlChannelError(f"announced message of {n} bytes exceeds the limit of {MAX_MESSAGE}")
    body = _recv_exact(sock, n)
    if body is None:
        raise ControlChannelError("connection closed after a message header")
    try:
        message = json.loads(body)
    except ValueError as e:
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

"""Sockets, their file objects and selectors (issue 12).

A socket is saved as what the kernel says about it: family, type, protocol, timeout, the options
that differ from a fresh socket's (read back with getsockopt), its bound address, whether it
listens and with which backlog, and its peer. On load it is made again the same way: options,
bind (to the address moved by `stasis resume --rebind OLD=NEW`), listen. Python identity is the
heap's: every reference to the socket refers to the new object.

A connection (an accepted or connected TCP or Unix stream socket) cannot follow the process: it
comes back as a connection its peer has reset. It is a real socket of the same family whose peer
sent a reset (made over loopback), with that error already reported, so reads return b'' and
writes raise BrokenPipeError, and selectors see it readable: the program's own handling of a
client that went away runs. Two ways keep connections instead:
  * `stasis restart` (python/stasis/restart.py) passes the very file descriptors to the new
    process: a socket recorded with "inherit" takes its fd over (settings.inherited);
  * `--tcp-established` (root, CAP_NET_ADMIN) saves an established TCP connection by TCP repair
    (sequence numbers, queues, window, options: the method CRIU uses) and makes it again on load,
    for when the service's IP address moves with the process.

A selector (epoll, poll, select) is saved with its registrations (file object, fd, events, data)
and registers them again on the new descriptors, once the socket of each is loaded (a registration
may be loaded before its socket: it waits in settings.pending). A new socket takes the descriptor
number the old one had when that number is free (`reserve_fds` frees them for a resume), so that
numbers programs keep (asyncio's transports, selector keys) stay right; `fd_map` has the others.
"""
from __future__ import annotations

import os
import socket
import stat
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import SnapshotIOError

_STATE_VERSION = 1

# --- settings of this process: how sockets are captured and restored ------------------------------


@dataclass
class Settings:
    # capture
    tcp_established: bool = False      # save established TCP connections by TCP repair
    inherit: bool = False              # `stasis restart`: record fds for the new process to take over
    inherit_fds: Dict[int, int] = field(default_factory=dict)  # fd -> the fd that holds it for passing
    captured: Dict[int, Any] = field(default_factory=dict)      # fd -> socket saved by this capture
    repaired: List[Any] = field(default_factory=list)           # sockets left in repair mode
    # restore
    rebind: List[Tuple["Address", "Address", str]] = field(default_factory=list)
    rebind_used: set = field(default_factory=set)
    restore_tcp_established: bool = False
    inherited: Dict[int, int] = field(default_factory=dict)     # recorded fd -> fd of this process
    reserved: set = field(default_factory=set)                  # placeholder fds (reserve_fds)
    fd_map: Dict[int, int] = field(default_factory=dict)        # old fd -> new fd
    loaded: List[Tuple[Any, dict]] = field(default_factory=list)
    pending: Dict[int, List[Tuple[Any, Any, int, Any]]] = field(default_factory=dict)
    after_load: List[Callable[[], None]] = field(default_factory=list)  # fix-ups once all is loaded


settings = Settings()


def begin_capture(*, inherit: bool = False, inherit_fds: Optional[Dict[int, int]] = None) -> None:
    """Starts recording the sockets a snapshot saves (`captured`); with `inherit`, each is saved
    as a descriptor the new process of `stasis restart` takes over."""
    settings.inherit = inherit
    settings.inherit_fds = dict(inherit_fds or {})
    settings.captured = {}


def end_capture() -> None:
    settings.inherit = False
    settings.inherit_fds = {}


def capture_aborted() -> None:
    """A suspension failed after its sockets were saved: connections put in repair mode go on."""
    for sock in settings.repaired:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
        except OSError:
            pass
    settings.repaired.clear()


# --- addresses and --rebind -------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """An address as --rebind spells it: HOST:PORT, [V6HOST]:PORT, :PORT (any host), a Unix path
    (containing '/') or @NAME (an abstract Unix address)."""
    host: Optional[str] = None   # None: any host (OLD) / keep the host (NEW)
    port: Optional[int] = None
    path: Optional[str] = None   # a Unix address

    @staticmethod
    def parse(text: str) -> "Address":
        if text.startswith("@"):
            return Address(path="\0" + text[1:])
        if "/" in text:
            return Address(path=text)
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} is not HOST:PORT, :PORT, a Unix path or @NAME")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            number = int(port)
        except ValueError:
            raise ValueError(f"{text!r}: the port {port!r} is not a number") from None
        if not 0 <= number <= 65535:
            raise ValueError(f"{text!r}: the port {number} is out of range")
        return Address(host=host or None, port=number)


def parse_rebind(rule: str) -> Tuple[Address, Address, str]:
    """'OLD=NEW' -> (old, new, rule); ValueError with the reason when it is malformed."""
    old, sep, new = rule.partition("=")
    if not sep or not old or not new:
        raise ValueError(f"--rebind {rule!r}: write OLD=NEW (HOST:PORT, :PORT, a Unix path or @NAME)")
    a, b = Address.parse(old), Address.parse(new)
    if (a.path is None) != (b.path is None):
        raise ValueError(f"--rebind {rule!r}: a Unix address moves to a Unix address, an IP address to an IP address")
    return a, b, rule


def configure_restore(rebind: List[str] = (), tcp_established: bool = False) -> None:
    """Options of `stasis resume` (before the snapshot is loaded). ValueError for a bad rule."""
    settings.rebind = [parse_rebind(r) for r in rebind]
    settings.rebind_used = set()
    settings.restore_tcp_established = tcp_established


def _same_host(a: str, b: str) -> bool:
    import ipaddress  # only for --rebind rules: not every resume
    try:
        return ipaddress.ip_address(a.split("%")[0]) == ipaddress.ip_address(b.split("%")[0])
    except ValueError:
        try:
            return {i[4][0] for i in socket.getaddrinfo(a, None)} & {i[4][0] for i in socket.getaddrinfo(b, None)} != set()
        except OSError:
            return a == b


def _moved(family: int, address: Any) -> Tuple[int, Any]:
    """(family, address) after the --rebind rules that match the recorded address."""
    import ipaddress
    for old, new, rule in settings.rebind:
        if family == socket.AF_UNIX:
            name = address.decode("latin-1") if isinstance(address, bytes) else address
            if old.path is not None and name == old.path:
                settings.rebind_used.add(rule)
                return family, new.path
            continue
        if old.path is not None or family not in (socket.AF_INET, socket.AF_INET6):
            continue
        host, port = address[0], address[1]
        if (old.port is None or old.port == port) and (old.host is None or _same_host(old.host, host)):
            settings.rebind_used.add(rule)
            new_host = host if new.host is None else new.host
            new_port = port if new.port is None else new.port
            new_family = family
            try:
                new_family = socket.AF_INET6 if ipaddress.ip_address(new_host.split("%")[0]).version == 6 \
                    else socket.AF_INET
            except ValueError:
                pass  # a host name: bound in the recorded family
            if new_family == socket.AF_INET6:
                return new_family, (new_host, new_port) + tuple(address[2:4] if family == new_family else (0, 0))
            return new_family, (new_host, new_port)
    return family, address


def describe(family: int, address: Any) -> str:
    """An address as a user writes it (for messages and --rebind)."""
    if family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = address.decode("latin-1")
        if not address:
            return "an unnamed Unix socket"
        return "@" + address[1:] if address.startswith("\0") else address
    if family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    if family == socket.AF_INET:
        return f"{address[0]}:{address[1]}"
    return repr(address)


# --- options the program set: read back and compared with a fresh socket's -----------------------

TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ, TCP_REPAIR_OPTIONS = 19, 20, 21, 22
TCP_REPAIR_WINDOW, TCP_TIMESTAMP = 29, 24
_TCP_RECV_QUEUE, _TCP_SEND_QUEUE = 1, 2
_IP_FREEBIND, _IP_TRANSPARENT = 15, 19


def _option_table() -> List[Tuple[int, int, str, Any]]:
    """(level, option, name, kind): kind is "int", "linger", "buf" (the kernel reports twice the
    value set), or an int (a string option of that many bytes). Those set before bind come first."""
    S, T = socket.SOL_SOCKET, socket.IPPROTO_TCP
    IP, IP6 = socket.IPPROTO_IP, socket.IPPROTO_IPV6
    table = [
        (S, socket.SO_REUSEADDR, "SO_REUSEADDR", "int"), (S, getattr(socket, "SO_REUSEPORT", 15), "SO_REUSEPORT", "int"),
        (IP6, socket.IPV6_V6ONLY, "IPV6_V6ONLY", "int"), (S, getattr(socket, "SO_BINDTODEVICE", 25), "SO_BINDTODEVICE", 16),
        (IP, _IP_FREEBIND, "IP_FREEBIND", "int"), (IP, _IP_TRANSPARENT, "IP_TRANSPARENT", "int"),
        (S, socket.SO_KEEPALIVE, "SO_KEEPALIVE", "int"), (S, socket.SO_BROADCAST, "SO_BROADCAST", "int"),
        (S, socket.SO_OOBINLINE, "SO_OOBINLINE", "int"), (S, socket.SO_LINGER, "SO_LINGER", "linger"),
        (S, socket.SO_RCVBUF, "SO_RCVBUF", "buf"), (S, socket.SO_SNDBUF, "SO_SNDBUF", "buf"),
        (S, socket.SO_RCVLOWAT, "SO_RCVLOWAT", "int"), (S, getattr(socket, "SO_PRIORITY", 12), "SO_PRIORITY", "int"),
        (S, getattr(socket, "SO_MARK", 36), "SO_MARK", "int"), (S, getattr(socket, "SO_PASSCRED", 16), "SO_PASSCRED", "int"),
        (T, socket.TCP_NODELAY, "TCP_NODELAY", "int"), (T, socket.TCP_KEEPIDLE, "TCP_KEEPIDLE", "int"),
        (T, socket.TCP_KEEPINTVL, "TCP_KEEPINTVL", "int"), (T, socket.TCP_KEEPCNT, "TCP_KEEPCNT", "int"),
        (T, getattr(socket, "TCP_USER_TIMEOUT", 18), "TCP_USER_TIMEOUT", "int"),
        (T, getattr(socket, "TCP_DEFER_ACCEPT", 9), "TCP_DEFER_ACCEPT", "int"),
        (T, getattr(socket, "TCP_NOTSENT_LOWAT", 25), "TCP_NOTSENT_LOWAT", "int"),
        (T, getattr(socket, "TCP_FASTOPEN", 23), "TCP_FASTOPEN", "int"),
        (T, getattr(socket, "TCP_CONGESTION", 13), "TCP_CONGESTION", 16),
        (T, getattr(socket, "TCP_WINDOW_CLAMP", 10), "TCP_WINDOW_CLAMP", "int"),
        (T, getattr(socket, "TCP_LINGER2", 8), "TCP_LINGER2", "int"),
        (T, getattr(socket, "TCP_SYNCNT", 7), "TCP_SYNCNT", "int"),
        (T, getattr(socket, "TCP_CORK", 3), "TCP_CORK", "int"),
        (IP, socket.IP_TOS, "IP_TOS", "int"), (IP, socket.IP_TTL, "IP_TTL", "int"),
        (IP, socket.IP_MULTICAST_TTL, "IP_MULTICAST_TTL", "int"), (IP, socket.IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP", "int"),
        (IP6, socket.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", "int"),
        (IP6, socket.IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS", "int"),
        (IP6, socket.IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP", "int"),
        (IP6, getattr(socket, "IPV6_TCLASS", 67), "IPV6_TCLASS", "int"),
    ]
    return table


_OPTIONS = _option_table()
_BEFORE_BIND = {"SO_REUSEADDR", "SO_REUSEPORT", "IPV6_V6ONLY", "SO_BINDTODEVICE", "IP_FREEBIND", "IP_TRANSPARENT"}
_defaults: Dict[Tuple[int, int, int], Dict[str, Any]] = {}


_DATAGRAM_ONLY = {"IP_MULTICAST_TTL", "IP_MULTICAST_LOOP", "IPV6_MULTICAST_HOPS", "IPV6_MULTICAST_LOOP", "SO_BROADCAST"}


def _applies(level: int, family: int, type_: int, name: str = "") -> bool:
    if name in _DATAGRAM_ONLY and type_ != socket.SOCK_DGRAM:
        return False
    if level == socket.IPPROTO_TCP:
        return type_ == socket.SOCK_STREAM and family in (socket.AF_INET, socket.AF_INET6)
    if level == socket.IPPROTO_IP:
        return family == socket.AF_INET
    if level == socket.IPPROTO_IPV6:
        return family == socket.AF_INET6
    return True


def _read_options(sock: Any) -> Dict[str, Any]:
    out = {}
    for level, opt, name, kind in _OPTIONS:
        if not _applies(level, sock.family, sock.type, name):
            continue
        try:
            if kind == "linger":
                out[name] = struct.unpack("ii", sock.getsockopt(level, opt, 8))
            elif isinstance(kind, int):
                out[name] = sock.getsockopt(level, opt, kind).split(b"\0", 1)[0].decode("latin-1")
            else:
                out[name] = sock.getsockopt(level, opt)
        except OSError:
            continue  # not readable on this kind of socket or this kernel
    return out


def _default_options(family: int, type_: int, proto: int) -> Dict[str, Any]:
    key = (family, type_, proto)
    if key not in _defaults:
        try:
            with socket.socket(family, type_, proto) as fresh:
                _defaults[key] = _read_options(fresh)
        except OSError:
            _defaults[key] = {}
    return _defaults[key]


def _set_options(sock: Any, options: List[Tuple[str, Any]], which: Callable[[str], bool], where: str) -> None:
    table = {name: (level, opt, kind) for level, opt, name, kind in _OPTIONS}
    for name, value in options:
        if not which(name) or name not in table:
            continue
        level, opt, kind = table[name]
        if not _applies(level, sock.family, sock.type, name):
            continue  # --rebind moved the socket to the other IP family
        try:
            if kind == "linger":
                sock.setsockopt(level, opt, struct.pack("ii", *value))
            elif kind == "buf":
                sock.setsockopt(level, opt, max(1, value // 2))
            elif isinstance(kind, int):
                sock.setsockopt(level, opt, value.encode("latin-1"))
            else:
                sock.setsockopt(level, opt, value)
        except OSError as e:
            sys.stderr.write(f"stasis: warning: cannot set {name}={value!r} again on {where}: {e.strerror or e}\n")


# --- what the kernel says about a socket -----------------------------------------------------------

_TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
               7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


def _tcp_info(sock: Any) -> Optional[bytes]:
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    except OSError:
        return None


def _carried_segments(info: bytes) -> bool:
    """Whether a TCP socket ever carried segments (tcpi_segs_out/in, Linux 4.2+): a socket in
    CLOSE state that did is a connection that ended (reset), not one bound and never used.
    Without those fields, assume it did (a reset stand-in is safer than a bind that conflicts)."""
    if len(info) < 144:
        return True
    segs_out, segs_in = struct.unpack_from("II", info, 136)
    return segs_out + segs_in > 0


def _unix_diag(sock: Any) -> Dict[str, int]:
    """{"backlog", "peer"} of a Unix socket from sock_diag (NETLINK_SOCK_DIAG); {} when the kernel
    has no unix_diag."""
    try:
        ino = os.fstat(sock.fileno()).st_ino
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4) as nl:
            request = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, ino, 0x10 | 0x04,
                                  0xFFFFFFFF, 0xFFFFFFFF)  # UDIAG_SHOW_RQLEN | UDIAG_SHOW_PEER, no cookie
            nl.send(struct.pack("=IHHII", 16 + len(request), 20, 1, 1, 0) + request)  # SOCK_DIAG_BY_FAMILY
            data = nl.recv(8192)
    except OSError:
        return {}
    length, kind = struct.unpack_from("=IH", data)
    out: Dict[str, int] = {"ino": ino}
    if kind != 20:
        return {}
    offset = 16 + 16
    while offset + 4 <= min(length, len(data)):
        alen, atype = struct.unpack_from("=HH", data, offset)
        if alen < 4:
            break
        if atype == 4:  # UNIX_DIAG_RQLEN: (rqueue, wqueue); a listener's wqueue is its backlog
            out["backlog"] = struct.unpack_from("=II", data, offset + 4)[1]
        elif atype == 2:  # UNIX_DIAG_PEER
            out["peer"] = struct.unpack_from("=I", data, offset + 4)[0]
        offset += (alen + 3) & ~3
    return out


def _is_listening(sock: Any) -> bool:
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


def _address_or_none(get: Callable[[], Any]) -> Any:
    try:
        return get()
    except OSError:
        return None


_INET = (socket.AF_INET, socket.AF_INET6)
_SUPPORTED_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


# --- TCP repair (--tcp-established) ---------------------------------------------------------------


def _peek_queue(sock: Any, queue: int, size: int) -> bytes:
    sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, queue)
    if size <= 0:
        return b""
    return sock.recv(size, socket.MSG_PEEK | socket.MSG_DONTWAIT)


def save_repair(sock: Any) -> dict:
    """The state of an established TCP connection, read in repair mode; the socket stays in repair
    mode, so that closing it (the process ends) sends nothing to the peer. OSError if refused."""
    import fcntl
    import termios
    sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    settings.repaired.append(sock)
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    options, wscale = info[5], info[6]
    outq = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    notsent = struct.unpack("i", fcntl.ioctl(sock.fileno(), 0x894B, b"\0" * 4))[0]  # SIOCOUTQNSD
    inq = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
    send_data = _peek_queue(sock, _TCP_SEND_QUEUE, outq)
    send_seq = sock.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ) & 0xFFFFFFFF
    recv_data = _peek_queue(sock, _TCP_RECV_QUEUE, inq)
    recv_seq = sock.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ) & 0xFFFFFFFF
    return {
        "send_seq": send_seq, "recv_seq": recv_seq, "send_queue": send_data, "unsent": notsent,
        "recv_queue": recv_data, "mss": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
        "timestamp": sock.getsockopt(socket.IPPROTO_TCP, TCP_TIMESTAMP) & 0xFFFFFFFF,
        "window": sock.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, 20),
        "tcpi_options": options, "snd_wscale": wscale & 0xF, "rcv_wscale": wscale >> 4,
    }


def _restore_repair(state: dict, family: int, local: Any, peer: Any) -> Any:
    """A TCP connection made again in repair mode from save_repair's state, then let go."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    except OSError as e:
        s.close()
        raise SnapshotIOError(f"--tcp-established: the kernel refuses TCP repair (setsockopt TCP_REPAIR: "
                              f"{e.strerror}); it needs CAP_NET_ADMIN") from None
    try:
        r = state["repair"]
        sent = r["send_queue"][:len(r["send_queue"]) - r["unsent"]]
        unsent = r["send_queue"][len(sent):]
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, _TCP_RECV_QUEUE)
        s.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, _signed(r["recv_seq"] - len(r["recv_queue"])))
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, _TCP_SEND_QUEUE)
        s.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, _signed(r["send_seq"] - len(r["send_queue"])))
        s.bind(local)
        s.connect(peer)
        opts = []
        tcpi = r["tcpi_options"]
        opts.append((2, r["mss"]))                                        # TCPOPT_MSS
        if tcpi & 4:                                                      # TCPI_OPT_WSCALE
            opts.append((3, r["snd_wscale"] | (r["rcv_wscale"] << 16)))   # TCPOPT_WINDOW
        if tcpi & 2:                                                      # TCPI_OPT_SACK
            opts.append((4, 0))                                           # TCPOPT_SACK_PERM
        if tcpi & 1:                                                      # TCPI_OPT_TIMESTAMPS
            opts.append((8, 0))                                           # TCPOPT_TIMESTAMP
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_OPTIONS, b"".join(struct.pack("II", c, v) for c, v in opts))
        if tcpi & 1:
            s.setsockopt(socket.IPPROTO_TCP, TCP_TIMESTAMP, _signed(r["timestamp"]))
        if r["recv_queue"]:
            s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, _TCP_RECV_QUEUE)
            s.sendall(r["recv_queue"])
        if sent:
            s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, _TCP_SEND_QUEUE)
            s.sendall(sent)
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, r["window"])
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
        if unsent:
            s.sendall(unsent)
    except OSError as e:
        s.close()
        raise SnapshotIOError(f"--tcp-established: cannot make the connection {describe(family, local)} -> "
                              f"{describe(family, peer)} again: {e.strerror or e}") from None
    return s


def _signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


# --- stand-ins for connections that cannot come back -------------------------------------------------


def reset_connection(family: int) -> Any:
    """A connected stream socket of `family` whose peer has reset the connection, with the reset
    already reported: recv returns b'', send raises BrokenPipeError, selectors see it readable.
    Made over loopback; where loopback is down, a Unix socket pair whose other end is closed."""
    for fam, host in ((family, "::1" if family == socket.AF_INET6 else "127.0.0.1"), (socket.AF_INET, "127.0.0.1")):
        if fam not in _INET:
            continue
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as listener:
                listener.bind((host, 0))
                listener.listen(1)
                conn = socket.socket(fam, socket.SOCK_STREAM)
                try:
                    conn.connect(listener.getsockname())
                    peer, _ = listener.accept()
                except OSError:
                    conn.close()
                    raise
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()  # the reset
            import select
            waiter = select.poll()  # not select(): descriptors may be numbered above 1024 here
            waiter.register(conn, select.POLLIN)
            waiter.poll(1000)
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # reported: later reads see EOF
            return conn
        except OSError:
            continue
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.close()
    return a


# --- descriptor numbers -----------------------------------------------------------------------------

# Numbers below this are kept free for the sockets (above it, a socket takes its number when it is
# free, else another: fd_map and the fix-ups of release_fds keep that right). What the load opens
# meanwhile gets numbers from here up, well below select()'s limit of 1024.
_RESERVE_LIMIT = 256


def _fd_open(fd: int) -> bool:
    import fcntl
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
        return True
    except OSError:
        return False


def reserve_fds(limit: int = _RESERVE_LIMIT) -> None:
    """Before a snapshot is loaded: every free descriptor number below `limit` holds a placeholder
    (/dev/null, close-on-exec), so that what the load opens (the snapshot file, selectors, event
    loops' self-pipes) takes higher numbers and each socket can take the number it had. The
    placeholders left are closed by release_fds() once the load is done."""
    try:
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for fd in range(3, limit):
            if fd != null and not _fd_open(fd):
                os.dup2(null, fd, inheritable=False)
                settings.reserved.add(fd)
    finally:
        if null not in settings.reserved:
            os.close(null)


def release_fds() -> None:
    """Closes the placeholders no socket took (after the load). Warns about --rebind rules that
    moved nothing and selector registrations whose socket was not in the snapshot."""
    for fd in sorted(settings.reserved):
        try:
            os.close(fd)
        except OSError:
            pass
    settings.reserved.clear()
    for fix in settings.after_load:
        fix()
    settings.after_load.clear()
    for old, new, rule in settings.rebind:
        if rule not in settings.rebind_used:
            have = ", ".join(sorted({describe(s["family"], s["local"]) for _, s in settings.loaded
                                     if s.get("local") and (s["listening"] or s["type"] == socket.SOCK_DGRAM)}))
            sys.stderr.write(f"stasis: warning: --rebind {rule}: no socket of the snapshot has that address"
                             f"{' (it has ' + have + ')' if have else ''}\n")
    for fd, waiting in settings.pending.items():
        sys.stderr.write(f"stasis: warning: {len(waiting)} selector registration(s) of descriptor {fd} were "
                         "not made again: no socket of the snapshot had that descriptor\n")
    settings.pending.clear()


def _take_number(sock: Any, old_fd: int) -> None:
    """Moves the new socket onto the descriptor number it had, when that number is free or holds
    a placeholder; then records old -> new and makes the registrations waiting for it."""
    new = sock.fileno()
    if old_fd >= 0 and new != old_fd and (old_fd in settings.reserved or not _fd_open(old_fd)):
        inheritable = os.get_inheritable(new)
        os.dup2(new, old_fd, inheritable=inheritable)
        settings.reserved.discard(old_fd)
        family, type_, proto = sock.family, sock.type, sock.proto
        timeout = sock.gettimeout()
        os.close(sock.detach())
        import _socket
        _socket.socket.__init__(sock, family, type_, proto, old_fd)
        sock.settimeout(timeout)
        new = old_fd
    if old_fd >= 0:
        settings.fd_map[old_fd] = new
        for selector, fileobj, events, data in settings.pending.pop(old_fd, []):
            _register(selector, fileobj, new, events, data)


# --- sockets ---------------------------------------------------------------------------------------


def _save_socket(sock: Any) -> dict:
    cls = type(sock)
    ssl = sys.modules.get("ssl")  # a program with TLS sockets has imported it
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("a TLS socket's session (keys, sequence numbers) cannot be captured; close TLS "
                        "connections before suspending, or end TLS in a proxy in front of the service")
    fd = sock.fileno()
    state: Dict[str, Any] = {"v": _STATE_VERSION, "class": cls, "family": int(sock.family), "type": int(sock.type),
                             "proto": sock.proto, "fd": fd, "timeout": sock.gettimeout(),
                             "io_refs": getattr(sock, "_io_refs", 0), "closed": getattr(sock, "_closed", False),
                             "dict": dict(getattr(sock, "__dict__", {}))}
    if fd < 0:
        return state
    if sock.family not in _SUPPORTED_FAMILIES:
        raise TypeError(f"a socket of family {socket.AddressFamily(sock.family).name if sock.family in socket.AddressFamily.__members__.values() else sock.family} "
                        "cannot be captured (TCP, UDP and Unix sockets can)")
    state["inheritable"] = os.get_inheritable(fd)
    state["local"] = _address_or_none(sock.getsockname)
    state["peer"] = _address_or_none(sock.getpeername)
    state["listening"] = _is_listening(sock)
    defaults = _default_options(sock.family, sock.type, sock.proto)
    state["options"] = [(k, v) for k, v in _read_options(sock).items() if defaults.get(k) != v]
    state["backlog"] = None
    state["tcp_state"] = None
    if sock.family in _INET and sock.type == socket.SOCK_STREAM:
        info = _tcp_info(sock)
        if info:
            state["tcp_state"] = _TCP_STATES.get(info[0], str(info[0]))
            state["ended"] = state["tcp_state"] == "CLOSE" and _carried_segments(info)
            if state["listening"]:
                state["backlog"] = struct.unpack_from("I", info, 28)[0]  # tcpi_sacked: sk_max_ack_backlog
    elif sock.family == socket.AF_UNIX:
        diag = _unix_diag(sock)
        if state["listening"]:
            state["backlog"] = diag.get("backlog")
    state["repair"] = None
    if settings.inherit:
        state["inherit"] = settings.inherit_fds.get(fd, fd)
        settings.captured[fd] = sock  # passed to the new process (stasis restart)
    elif settings.tcp_established and state["tcp_state"] == "ESTABLISHED":
        try:
            state["repair"] = save_repair(sock)
        except OSError as e:
            raise TypeError(f"--tcp-established: the kernel refuses TCP repair of the connection "
                            f"{describe(sock.family, state['local'])} -> {describe(sock.family, state['peer'])} "
                            f"(setsockopt TCP_REPAIR: {e.strerror or e}; it needs CAP_NET_ADMIN)") from None
    return state


def _kind(state: dict) -> str:
    if state.get("listening"):
        return "listening socket"
    if state["type"] == socket.SOCK_DGRAM:
        return "datagram socket"
    return "socket"


def _bind(sock: Any, family: int, address: Any, state: dict) -> None:
    if family == socket.AF_UNIX and isinstance(address, str) and address and not address.startswith("\0"):
        _remove_stale_unix_socket(address, sock.type)
    try:
        sock.bind(address)
    except OSError as e:
        recorded = describe(state["family"], state["local"])
        moved = "" if (family, address) == (state["family"], state["local"]) else f" (moved from {recorded} by --rebind)"
        hint = (f"free it, or move it with --rebind {recorded}=NEW" if family != socket.AF_UNIX or not moved
                else "free it or choose another --rebind")
        sock.close()
        raise SnapshotIOError(f"cannot bind {describe(family, address)}{moved}, a {_kind(state)} of the snapshot: "
                              f"{e.strerror or e}; {hint}") from None


def _remove_stale_unix_socket(path: str, type_: int) -> None:
    """A socket file left by the process that was suspended (it ended without unlinking it) is
    removed when nobody serves it any more; a live one stays, and bind then reports the conflict."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, type_)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        try:
            os.unlink(path)
        except OSError:
            pass
    except OSError:
        pass
    finally:
        probe.close()


def _ephemeral(port: int) -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low <= port <= high


def _new_socket(state: dict) -> Tuple[Any, str]:
    """The kernel socket for a saved one, and how it was made: "inherited" (restart), "repaired"
    (--tcp-established), "reset" (a connection that cannot come back) or "made" again."""
    family, type_, proto = state["family"], state["type"], state["proto"]
    where = describe(family, state["local"]) if state.get("local") else f"a {socket.SocketKind(type_).name} socket"
    inherit = state.get("inherit")
    if inherit is not None and inherit in settings.inherited:
        fd = settings.inherited.pop(inherit)
        return socket.socket(family, type_, proto, fileno=fd), "inherited"
    peer = state.get("peer")
    connected_stream = peer is not None and type_ == socket.SOCK_STREAM and not state["listening"]
    if connected_stream and state.get("repair") is not None and settings.restore_tcp_established:
        # Only when asked: a repaired connection is one the kernel takes as established, queues and
        # all (without the option it comes back reset; the peer's next segment, to an address that
        # has no such connection any more, is answered by a reset of that host's kernel).
        return _restore_repair(state, family, state["local"], peer), "repaired"
    if connected_stream or state["tcp_state"] not in (None, "LISTEN", "CLOSE") or state.get("ended"):
        return reset_connection(family), "reset"  # a connection (perhaps one already ended)
    new_family, address = family, state.get("local")
    if address is not None:
        new_family, address = _moved(family, address)
    s = socket.socket(new_family, type_, proto)
    _set_options(s, state["options"], lambda n: n in _BEFORE_BIND, where)
    bound = address is not None and not _unbound(family, address)
    if bound and type_ == socket.SOCK_DGRAM and peer is not None and family in _INET and _ephemeral(address[1]):
        bound = False  # a connected UDP client: the kernel chose its port; it may choose again
    if bound:
        _bind(s, new_family, address, state)
    if state["listening"]:
        s.listen(state["backlog"] if state.get("backlog") is not None else socket.SOMAXCONN)
    if peer is not None and type_ == socket.SOCK_DGRAM:
        try:
            s.connect(peer)
        except OSError as e:
            sys.stderr.write(f"stasis: warning: cannot connect the datagram socket {where} to "
                             f"{describe(family, peer)} again: {e.strerror or e}\n")
    return s, "made"


def _unbound(family: int, address: Any) -> bool:
    if family == socket.AF_UNIX:
        return not address
    return address[1] == 0 and address[0] in ("0.0.0.0", "::")


def _load_socket(state: dict) -> Any:
    import _socket
    cls = state["class"]
    if state["fd"] < 0:
        made, how = socket.socket(state["family"], state["type"], state["proto"]), "closed"
        made.close()
    else:
        made, how = _new_socket(state)
    if cls is not socket.socket:
        # A subclass (or a bare _socket.socket): an instance of that class around the same
        # descriptor; a subclass's own attributes are restored below.
        obj = _socket.socket.__new__(cls)
        fd = made.detach()
        _socket.socket.__init__(obj, made.family, made.type, made.proto, fd if fd >= 0 else None)
        if fd < 0:
            obj.close()
        made = obj
    if how != "closed":
        if how != "inherited":  # an inherited socket is the same kernel socket, options and all
            where = describe(made.family, state["local"]) if state.get("local") else "a socket"
            _set_options(made, state["options"], lambda n: n not in _BEFORE_BIND, where)
        made.settimeout(state["timeout"])
        os.set_inheritable(made.fileno(), state.get("inheritable", False))
        _take_number(made, state["fd"])
        settings.loaded.append((made, state))
    if isinstance(made, socket.socket):
        made._io_refs = state["io_refs"]
        made._closed = state["closed"]
    if state["dict"]:
        made.__dict__.update(state["dict"])
    return made


# --- socket files (sock.makefile) ---------------------------------------------------------------------


def _save_socket_io(raw: Any) -> Tuple:
    return (raw._sock, raw._mode, raw.closed, raw._timeout_occurred)


def _load_socket_io(state: Tuple) -> Any:
    sock, mode, closed, timeout_occurred = state
    raw = socket.SocketIO(sock, mode)
    sock._io_refs -= 1  # the loaded socket already counts this file
    raw._timeout_occurred = timeout_occurred
    if closed:
        raw._sock = None
        import io
        io.RawIOBase.close(raw)
    return raw


def is_socket_file(f: Any) -> bool:
    """A buffered or text file made by sock.makefile() (files.py asks before treating it as a file
    with a path)."""
    inner = getattr(f, "buffer", f)
    return isinstance(getattr(inner, "raw", None), socket.SocketIO)


def save_socket_file(f: Any) -> Tuple:
    """A file of sock.makefile(): its SocketIO, buffering, and the bytes a reader has read ahead
    and not yet handed out (an HTTP handler suspended in the middle of a request has the rest of
    the request there). They are read from the buffer without its lock (the program's threads are
    frozen; engine/net_api.h). What a thread blocked in readline has taken of a line not yet
    complete is held by C code, not in the buffer, and is lost on a kept connection (restart,
    --tcp-established); a connection that comes back reset has nothing to read anyway."""
    import io
    from .. import _engine
    text = isinstance(f, io.TextIOBase)
    buffered = f.buffer if text else f
    kind = type(buffered).__name__
    size = getattr(buffered, "_CHUNK_SIZE", None) or io.DEFAULT_BUFFER_SIZE
    ahead = None
    if not buffered.closed and isinstance(buffered, io.BufferedReader):
        ahead = _engine.buffered_read_ahead(buffered, buffered.raw) or None
    out = ("socketfile", kind, buffered.raw, size, buffered.closed, text, ahead)
    if text:
        out += (f.encoding, f.errors, f._CHUNK_SIZE if hasattr(f, "_CHUNK_SIZE") else None,
                getattr(f, "_stasis_newline", None), f.line_buffering)
    return out


def load_socket_file(state: Tuple) -> Any:
    import io
    from .. import _engine
    _, kind, raw, size, closed, text, ahead = state[:7]
    cls = {"BufferedReader": io.BufferedReader, "BufferedWriter": io.BufferedWriter,
           "BufferedRWPair": None}.get(kind)
    size = max(size, len(ahead or b""))
    if cls is None:
        buffered = io.BufferedRWPair(raw, raw, size)
    else:
        buffered = cls(raw, size)
    if ahead and not _engine.buffered_preload(buffered, raw, ahead):
        raise SnapshotIOError(f"the {len(ahead)} bytes a socket file had read ahead do not fit its new buffer")
    f = buffered
    if text:
        encoding, errs, _chunk, newline, line_buffering = state[7:]
        f = io.TextIOWrapper(buffered, encoding, errs, newline, line_buffering)
    if closed:
        f.close()
    return f


# --- selectors ------------------------------------------------------------------------------------


def _socket_for_fd(fd: int, key: Any) -> Optional[Any]:
    """The socket object behind a registration by number (asyncio registers numbers): looked for in
    the registration's data (handles, their callbacks' objects), else among all objects."""
    def candidates(obj: Any, depth: int = 0):
        if isinstance(obj, socket.socket):
            yield obj
            return
        if depth > 3 or obj is None:
            return
        if isinstance(obj, (tuple, list)):
            for item in obj:
                yield from candidates(item, depth + 1)
            return
        for attr in ("_args", "_callback", "__self__", "_sock", "_sockets"):
            value = getattr(obj, attr, None)
            if value is not None:
                yield from candidates(value, depth + 1)
    for s in candidates(key.data):
        try:
            if s.fileno() == fd:
                return s
        except OSError:
            pass
    import gc
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket):
            try:
                if obj.fileno() == fd:
                    return obj
            except OSError:
                pass
    return None


def _describe_fd(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def save_selector(sel: Any, skip: Callable[[Any], bool] = lambda key: False) -> dict:
    """A selector and its registrations: (file object, descriptor, events, data, how to open it
    again). A socket's registration is made again when that socket is loaded (by its descriptor
    number, _take_number); the state never adds a reference to the socket itself: an object the
    heap writer met before unshared would be written twice."""
    keys = []
    for key in list(sel.get_map().values()):
        if skip(key):
            continue
        fileobj = key.fileobj
        holder: Any = None
        if not isinstance(fileobj, socket.socket):
            try:
                mode = os.fstat(key.fd).st_mode
            except OSError:
                raise TypeError(f"it watches descriptor {key.fd}, which is closed") from None
            if stat.S_ISSOCK(mode):
                by_object = hasattr(fileobj, "fileno") and not isinstance(fileobj, int)
                if not by_object and _socket_for_fd(key.fd, key) is None:
                    raise TypeError(f"it watches descriptor {key.fd}, a socket that no socket object of the "
                                    "program holds, so it cannot be made again")
            elif stat.S_ISFIFO(mode) or stat.S_ISREG(mode):
                target = _describe_fd(key.fd)
                if not target.startswith("/"):
                    raise TypeError(f"it watches descriptor {key.fd} ({target}), an anonymous pipe or device "
                                    "that cannot be opened again on resume")
                import fcntl
                flags = fcntl.fcntl(key.fd, fcntl.F_GETFL) & ~(os.O_CREAT | os.O_TRUNC | os.O_EXCL)
                holder = ("path", target, flags)
            else:
                raise TypeError(f"it watches descriptor {key.fd} ({_describe_fd(key.fd)}), which is not a "
                                "socket, FIFO or file and cannot be opened again on resume")
        keys.append((fileobj, key.fd, key.events, key.data, holder))
    return {"class": type(sel), "keys": keys}


def load_selector(state: dict) -> Any:
    sel = state["class"]()
    register_keys(sel, state["keys"])
    return sel


def register_keys(sel: Any, keys: list) -> None:
    """The registrations save_selector saved, made again in `sel`: now for the sockets already
    loaded, when each is loaded for the others (a FIFO or file is opened again at once)."""
    for fileobj, old_fd, events, data, holder in keys:
        if isinstance(holder, tuple) and holder and holder[0] == "path":
            _, path, flags = holder
            # Only what opening an existing file for reading or writing takes (never O_CREAT or
            # O_TRUNC, whatever the snapshot says), and only a FIFO or a regular file.
            flags = int(flags) & (os.O_ACCMODE | os.O_NONBLOCK | os.O_APPEND)
            where = f"cannot open {path} again for a selector that watched it"
            try:
                kind = os.stat(path).st_mode
            except OSError as e:
                raise SnapshotIOError(f"{where}: {e.strerror}") from None
            if not (stat.S_ISFIFO(kind) or stat.S_ISREG(kind)):
                raise SnapshotIOError(f"{where}: it is no longer a FIFO or a regular file")
            try:
                fd = os.open(path, flags | os.O_CLOEXEC)
            except OSError as e:
                raise SnapshotIOError(f"{where}: {e.strerror}") from None
            if old_fd in settings.reserved or not _fd_open(old_fd):
                os.dup2(fd, old_fd, inheritable=False)
                os.close(fd)
                settings.reserved.discard(old_fd)
                fd = old_fd
            if isinstance(fileobj, int):
                fileobj = fd
            _register(sel, fileobj, fd, events, data)
            continue
        new = settings.fd_map.get(old_fd)
        if new is None and isinstance(fileobj, socket.socket) and fileobj.fileno() >= 0 and \
                any(s is fileobj for s, _ in settings.loaded):
            new = fileobj.fileno()
        if new is None:
            settings.pending.setdefault(old_fd, []).append((sel, fileobj, events, data))
        else:
            _register(sel, fileobj, new, events, data)


def _register(sel: Any, fileobj: Any, fd: int, events: int, data: Any) -> None:
    key = sel.register(fd, events, data)
    if not isinstance(fileobj, int):
        # The key holds the program's file object (a socket, a server) as it did; registering the
        # object itself would ask its fileno() while it may still be being loaded.
        sel._fd_to_key[fd] = key._replace(fileobj=fileobj)


# --- the socket module's own state ----------------------------------------------------------------


def _save_socket_module(module: Any) -> Any:
    return {"default_timeout": module.getdefaulttimeout()}


def _load_socket_module(module: Any, state: Any) -> None:
    module.setdefaulttimeout(state.get("default_timeout"))


def socket_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """socket.socket (and _socket.socket) and socket.SocketIO: registered once the program has
    imported socket."""
    import _socket
    return {socket.socket: ("stasis.socket", _save_socket, _load_socket),
            _socket.socket: ("stasis.socket", _save_socket, _load_socket),
            socket.SocketIO: ("stasis.socket_io", _save_socket_io, _load_socket_io)}


def _save_socket_writer(writer: Any) -> Tuple:
    return (writer._sock, writer.closed)


def _load_socket_writer(state: Tuple) -> Any:
    import socketserver
    sock, closed = state
    writer = socketserver._SocketWriter(sock)
    if closed:
        writer.close()
    return writer


def socketserver_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    """socketserver's unbuffered socket writer (a StreamRequestHandler's wfile): its socket."""
    import socketserver
    return {socketserver._SocketWriter: ("stasis.socket_writer", _save_socket_writer, _load_socket_writer)}


def selector_handlers() -> Dict[type, Tuple[str, Callable, Callable]]:
    import selectors
    h: Dict[type, Tuple[str, Callable, Callable]] = {}
    for name in ("EpollSelector", "PollSelector", "SelectSelector", "DevpollSelector", "KqueueSelector"):
        t = getattr(selectors, name, None)
        if t is not None:
            h[t] = ("stasis.selector", _save_any_selector, load_selector)
    return h


def _save_any_selector(sel: Any) -> dict:
    from .asyncio_loop import is_self_pipe_key  # asyncio's own wake-up pipe: a new loop makes its own
    return save_selector(sel, is_self_pipe_key)


def module_states() -> Dict[str, Tuple[Callable, Callable]]:
    return {"socket": (_save_socket_module, _load_socket_module)}

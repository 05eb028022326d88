"""Sockets, socket files and selectors in object graphs (stasis.dumps / stasis.loads in one
process; handlers/net.py): what is kept, what comes back reset, what is refused and how."""
from __future__ import annotations

import os
import select
import selectors
import socket
import ssl
import struct
import tempfile
import unittest

import stasis
from stasis.handlers import net


def reload(obj):
    """dumps, close what the graph held, loads: the loaded sockets are new ones."""
    data = stasis.dumps(obj)
    for s in _sockets(obj):
        s.close()
    return stasis.loads(data)


def _sockets(obj):
    if isinstance(obj, socket.socket):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _sockets(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _sockets(v)


class Tagged(socket.socket):
    """A program's own socket class, with attributes of its own."""


class Sockets(unittest.TestCase):

    def tearDown(self) -> None:
        net.configure_restore([], False)

    def test_listening_tcp_keeps_address_backlog_options_timeout(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 77)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
        s.bind(("127.0.0.1", 0))
        s.listen(23)
        s.settimeout(2.5)
        address = s.getsockname()
        r = reload({"a": s, "b": s})
        t = r["a"]
        self.assertIs(r["a"], r["b"])
        self.assertIsInstance(t, socket.socket)
        self.assertEqual(t.getsockname(), address)
        self.assertEqual(t.gettimeout(), 2.5)
        self.assertTrue(t.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        self.assertEqual(t.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR), 1)
        self.assertEqual(t.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
        self.assertEqual(t.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        self.assertEqual(t.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), 77)
        self.assertEqual(struct.unpack("ii", t.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)), (1, 5))
        info = t.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        self.assertEqual(struct.unpack_from("I", info, 28)[0], 23)  # the listen backlog
        c = socket.create_connection(address)
        conn, _ = t.accept()
        conn.close()
        c.close()
        t.close()

    def test_reuseport_and_v6only(self) -> None:
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback here")
        s.close()
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("::1", 0))
        s.listen()
        address = s.getsockname()
        t = reload(s)
        self.assertEqual(t.family, socket.AF_INET6)
        self.assertEqual(t.getsockname()[:2], address[:2])
        self.assertEqual(t.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 1)
        self.assertEqual(t.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT), 1)
        t.close()

    def test_connection_comes_back_reset(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        server_side.settimeout(3.0)
        r = reload({"conn": server_side, "client": client, "listener": listener})
        conn = r["conn"]
        self.assertEqual(conn.gettimeout(), 3.0)
        self.assertEqual(conn.family, socket.AF_INET)
        self.assertEqual(conn.recv(10), b"")            # the reset has been reported: end of file
        with self.assertRaises(BrokenPipeError):
            conn.sendall(b"x" * 100)
        with self.assertRaises(OSError):
            conn.getpeername()
        poller = select.poll()
        poller.register(conn, select.POLLIN)
        self.assertTrue(poller.poll(0))                   # selectors see it readable at once
        for s in r.values():
            s.close()

    def test_udp_bound_and_connected(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        server.bind(("127.0.0.1", 0))
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.connect(server.getsockname())
        address = server.getsockname()
        r = reload({"server": server, "client": client})
        self.assertEqual(r["server"].getsockname(), address)
        self.assertEqual(r["server"].getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST), 1)
        self.assertEqual(r["client"].getpeername(), address)
        r["client"].send(b"ping")
        data, peer = r["server"].recvfrom(10)
        self.assertEqual(data, b"ping")
        for s in r.values():
            s.close()

    def test_unix_listener_stale_file_replaced(self) -> None:
        d = tempfile.mkdtemp()
        path = os.path.join(d, "s.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.listen(7)
        data = stasis.dumps(s)
        s.close()                                  # the file stays, nobody listens: stale
        t = stasis.loads(data)
        self.assertEqual(t.getsockname(), path)
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        c.close()
        t.close()
        os.unlink(path)
        os.rmdir(d)

    def test_unix_listener_in_use_is_a_bind_error(self) -> None:
        d = tempfile.mkdtemp()
        path = os.path.join(d, "s.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.listen()
        with self.assertRaises(stasis.SnapshotIOError) as e:
            stasis.loads(stasis.dumps(s))          # the original still listens there
        self.assertIn(f"cannot bind {path}", str(e.exception))
        self.assertEqual(e.exception.code, 98)
        s.close()
        os.unlink(path)
        os.rmdir(d)

    def test_rebind_rules(self) -> None:
        tcp = socket.create_server(("127.0.0.1", 0))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        d = tempfile.mkdtemp()
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(os.path.join(d, "old.sock"))
        unix.listen()
        data = stasis.dumps([tcp, udp, unix])
        ports = [tcp.getsockname()[1], udp.getsockname()[1]]
        for s in (tcp, udp, unix):
            s.close()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        net.configure_restore([f"127.0.0.1:{ports[0]}=:{free}", f":{ports[1]}=127.0.0.1:0",
                               f"{d}/old.sock={d}/new.sock"])
        t, u, x = stasis.loads(data)
        self.assertEqual(t.getsockname(), ("127.0.0.1", free))
        self.assertNotEqual(u.getsockname()[1], ports[1])
        self.assertEqual(x.getsockname(), f"{d}/new.sock")
        for s in (t, u, x):
            s.close()
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)

    def test_rebind_rule_parsing(self) -> None:
        a, b, _ = net.parse_rebind("[::1]:80=10.0.0.1:8080")
        self.assertEqual((a.host, a.port, b.host, b.port), ("::1", 80, "10.0.0.1", 8080))
        a, b, _ = net.parse_rebind("@old=@new")
        self.assertEqual((a.path, b.path), ("\0old", "\0new"))
        for bad in ("80", "=:1", ":1=", ":1=/x", "/x=:1", ":70000=:1", "h:p=:1"):
            with self.assertRaises(ValueError, msg=bad):
                net.parse_rebind(bad)

    def test_closed_and_subclassed_sockets(self) -> None:
        closed = socket.socket()
        closed.close()
        tagged = Tagged(socket.AF_INET, socket.SOCK_DGRAM)
        tagged.bind(("127.0.0.1", 0))
        tagged.label = "mine"
        address = tagged.getsockname()
        r = reload({"closed": closed, "tagged": tagged})
        self.assertEqual(r["closed"].fileno(), -1)
        self.assertIs(type(r["tagged"]), Tagged)
        self.assertEqual(r["tagged"].getsockname(), address)
        self.assertEqual(r["tagged"].label, "mine")
        r["tagged"].close()

    def test_socket_files(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        rfile = conn.makefile("rb")
        wfile = conn.makefile("wb", buffering=0)
        text = conn.makefile("r", encoding="latin-1")
        r = reload({"conn": conn, "rfile": rfile, "wfile": wfile, "text": text, "client": client, "l": listener})
        self.assertIs(r["rfile"].raw._sock, r["conn"])
        self.assertIs(r["wfile"]._sock, r["conn"])
        self.assertEqual(r["text"].encoding, "latin-1")
        self.assertEqual(r["rfile"].readline(), b"")       # the connection came back reset
        with self.assertRaises(BrokenPipeError):
            r["wfile"].write(b"x" * 10)
        for f in (r["rfile"], r["wfile"], r["text"]):
            f.close()
        for s in (r["conn"], r["client"], r["l"]):
            s.close()

    def test_kept_connection_keeps_what_its_reader_read_ahead(self) -> None:
        """A connection handed over (stasis restart) keeps the bytes its socket file had read
        ahead: a handler suspended after the request line finds the headers still to read."""
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        rfile = conn.makefile("rb")
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(rfile.readline(), b"GET / HTTP/1.1\r\n")   # the rest is in the buffer now
        net.begin_capture(inherit=True)
        try:
            data = stasis.dumps({"conn": conn, "rfile": rfile})
            captured = dict(net.settings.captured)
        finally:
            net.end_capture()
        net.settings.inherited = {fd: os.dup(fd) for fd in captured}  # as passed to a new process
        r = stasis.loads(data)
        self.assertEqual(r["rfile"].readline(), b"Host: x\r\n")
        self.assertEqual(r["rfile"].readline(), b"\r\n")
        client.sendall(b"more\n")
        self.assertEqual(r["rfile"].readline(), b"more\n")           # and reads on from the socket
        for f in (rfile, r["rfile"]):
            f.close()
        for s in (conn, r["conn"], client, listener):
            s.close()

    def test_selector_registrations(self) -> None:
        for cls in (selectors.EpollSelector, selectors.PollSelector, selectors.SelectSelector):
            sel = cls()
            listener = socket.create_server(("127.0.0.1", 0))
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            sel.register(listener, selectors.EVENT_READ, "listener")
            sel.register(udp.fileno(), selectors.EVENT_READ, ("by number", udp))
            address = listener.getsockname()
            data = stasis.dumps({"sel": sel, "listener": listener, "udp": udp})
            sel.close()
            listener.close()
            udp.close()
            r = stasis.loads(data)
            keys = {k.data if isinstance(k.data, str) else k.data[0]: k for k in r["sel"].get_map().values()}
            self.assertIs(keys["listener"].fileobj, r["listener"], cls)
            self.assertEqual(keys["listener"].fd, r["listener"].fileno())
            self.assertEqual(keys["by number"].fileobj, r["udp"].fileno())
            self.assertIs(keys["by number"].data[1], r["udp"])
            c = socket.create_connection(address)
            ready = r["sel"].select(5)
            self.assertEqual([k.data for k, _ in ready], ["listener"], cls)
            c.close()
            r["sel"].close()
            r["listener"].close()
            r["udp"].close()

    def test_selector_watching_a_fifo_reopens_it(self) -> None:
        d = tempfile.mkdtemp()
        path = os.path.join(d, "fifo")
        os.mkfifo(path)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        sel = selectors.PollSelector()
        sel.register(fd, selectors.EVENT_READ, "fifo")
        data = stasis.dumps(sel)
        sel.close()
        os.close(fd)
        r = stasis.loads(data)
        (key,) = r.get_map().values()
        self.assertEqual(os.readlink(f"/proc/self/fd/{key.fd}"), path)
        writer = os.open(path, os.O_WRONLY)
        os.write(writer, b"x")
        self.assertEqual(len(r.select(5)), 1)
        os.close(writer)
        os.close(key.fd)
        r.close()
        os.unlink(path)
        with self.assertRaises(stasis.SnapshotIOError) as e:
            stasis.loads(data)                        # the FIFO is gone
        self.assertIn(path, str(e.exception))
        os.rmdir(d)

    def test_refused_with_reasons(self) -> None:
        r, w = os.pipe()
        sel = selectors.PollSelector()
        sel.register(r, selectors.EVENT_READ)
        with self.assertRaises(stasis.UnsupportedObjectError) as e:
            stasis.dumps(sel)
        self.assertIn("anonymous pipe", str(e.exception))
        sel.close()
        os.close(r)
        os.close(w)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls = ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False, server_hostname="x")
        with self.assertRaises(stasis.UnsupportedObjectError) as e:
            stasis.dumps(tls)
        self.assertIn("TLS", str(e.exception))
        tls.close()
        raw.close()
        try:
            packet = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        except OSError:
            return
        with self.assertRaises(stasis.UnsupportedObjectError) as e:
            stasis.dumps(packet)
        self.assertIn("TCP, UDP and Unix sockets", str(e.exception))
        packet.close()

    def test_descriptor_numbers_kept_when_free(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        number = s.fileno()
        data = stasis.dumps(s)
        s.close()
        t = stasis.loads(data)
        self.assertEqual(t.fileno(), number)
        t.close()

    def test_default_timeout_is_module_state(self) -> None:
        socket.setdefaulttimeout(4.5)
        try:
            state = stasis.module_state(socket)
            socket.setdefaulttimeout(None)
            stasis.restore_module_state(socket, stasis.loads(stasis.dumps(state)))
            self.assertEqual(socket.getdefaulttimeout(), 4.5)
        finally:
            socket.setdefaulttimeout(None)


if __name__ == "__main__":
    unittest.main()

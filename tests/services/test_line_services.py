"""Counter services of every kind (tests/services/programs/) under client load: suspended with
`stasis suspend` and resumed in a fresh process at another address (--rebind), where the clients
reconnect and every counter equals the successes its client saw; and handed over with
`stasis restart`, where no request fails at all, over connections that stay open.

Kinds: a thread per connection blocked in recv (main thread in accept), a selectors (epoll) loop,
an asyncio server with open streams and a signal handler, a UDP server in recvfrom, a Unix-socket
server."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
import unittest

from tests.services.support import Load, ServiceTestCase, Target, alive, connectable, free_port

TCP_KINDS = ("threaded_server.py", "selector_server.py", "asyncio_server.py")


class Migrate(ServiceTestCase):
    """suspend -> resume --rebind at a new port, under load with retries."""

    def migrate_tcp(self, program: str) -> None:
        port = free_port()
        p = self.start_service(program, "127.0.0.1", str(port))
        target = Target(socket.AF_INET, ("127.0.0.1", port))
        load = Load(target, threads=4, persistent=True, retry=True)
        load.wait_for(300)
        snapshot = self.suspend(p)
        before = load.total()
        new_port = free_port()
        q = self.resume(snapshot, "--rebind", f"127.0.0.1:{port}=127.0.0.1:{new_port}")
        self.wait_until(lambda: connectable(socket.AF_INET, ("127.0.0.1", new_port)), "the resumed service")
        target.address = ("127.0.0.1", new_port)
        load.wait_for(before + 300)
        load.stop()
        load.check(self)
        self.assertFalse(connectable(socket.AF_INET, ("127.0.0.1", port)), "the old address still answers")
        self.assertIsNone(q.poll(), self.output(q))
        return q

    def test_threaded(self) -> None:
        self.migrate_tcp("threaded_server.py")

    def test_selector(self) -> None:
        self.migrate_tcp("selector_server.py")

    def test_asyncio_streams_and_signal_handler(self) -> None:
        q = self.migrate_tcp("asyncio_server.py")
        os.kill(q.pid, signal.SIGUSR2)  # loop.add_signal_handler's handler, made again on resume
        line = self.expect_line(q, "counters")
        self.assertIn("('c0', ", line)

    def test_udp(self) -> None:
        port = free_port(type_=socket.SOCK_DGRAM)
        p = self.start_service("udp_server.py", "127.0.0.1", str(port))
        target = Target(socket.AF_INET, ("127.0.0.1", port), socket.SOCK_DGRAM)
        load = Load(target, threads=3, retry=True, timeout=1.0)
        load.wait_for(200)
        snapshot = self.suspend(p)
        before = load.total()
        new_port = free_port(type_=socket.SOCK_DGRAM)
        self.resume(snapshot, "--rebind", f":{port}=:{new_port}")
        target.address = ("127.0.0.1", new_port)
        load.wait_for(before + 200)
        load.stop()
        load.check(self)

    @unittest.skipUnless(os.geteuid() == 0, "--tcp-established needs root (CAP_NET_ADMIN)")
    def test_a_request_while_the_snapshot_is_written_is_answered(self) -> None:
        """A reader captured blocked in recv whose recv returns while the suspension writes (the
        program makes it so, recv_in_window.py; its connection is saved by TCP repair): the
        snapshot is dropped before it takes the name and the capture is taken again, so the line
        is printed by the old process (without it: lost, taken off the queue TCP repair saved)."""
        port = free_port()
        p = self.start_service("recv_in_window.py", "127.0.0.1", str(port), "suspend",
                               options=["--tcp-established"])
        time.sleep(0.5)  # the reader blocks in recv
        r = self.stasis("suspend", str(p.pid))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(p.wait(60), 75)
        self.expect_line(p, "got in-window", timeout=10)

    def test_unix_socket_same_path(self) -> None:
        """The resumed service binds the same path: the socket file the suspended process left
        behind is stale (nobody listens) and is replaced."""
        path = os.path.join(self.tmp, "counter.sock")
        p = self.start_service("unix_server.py", path)
        target = Target(socket.AF_UNIX, path)
        load = Load(target, threads=3, retry=True)
        load.wait_for(200)
        snapshot = self.suspend(p)
        self.assertTrue(os.path.exists(path))
        before = load.total()
        self.resume(snapshot)
        load.wait_for(before + 200)
        load.stop()
        load.check(self)

    def test_unix_socket_rebind(self) -> None:
        path = os.path.join(self.tmp, "a.sock")
        p = self.start_service("unix_server.py", path)
        target = Target(socket.AF_UNIX, path)
        load = Load(target, threads=2, retry=True)
        load.wait_for(100)
        snapshot = self.suspend(p)
        before = load.total()
        moved = os.path.join(self.tmp, "b.sock")
        self.resume(snapshot, "--rebind", f"{path}={moved}")
        target.address = moved
        load.wait_for(before + 100)
        load.stop()
        load.check(self)


class Restart(ServiceTestCase):
    """stasis restart under load without retries: not one request fails, connections stay open."""

    def restart_under_load(self, target: Target, p, program_name: str, persistent: bool = True,
                           timeout: float = 30.0) -> Load:
        load = Load(target, threads=4, persistent=persistent, retry=False, timeout=timeout)
        load.wait_for(300)
        new = self.restart(p.pid)
        before = load.total()
        load.wait_for(before + 300)
        self.assertTrue(alive(new))
        load.stop()
        self.assertEqual(load.failures, [], "requests failed during the restart")
        load.check(self)
        self.assertEqual(set(load.servers), {program_name})
        return load

    def test_threaded_blocked_readers(self) -> None:
        """Threads blocked in recv on open connections and the main thread in accept: held still
        during the switch, their calls issued again by the new process on the inherited sockets."""
        port = free_port()
        p = self.start_service("threaded_server.py", "127.0.0.1", str(port))
        self.restart_under_load(Target(socket.AF_INET, ("127.0.0.1", port)), p, "threaded")

    def test_a_request_between_the_freeze_and_the_hold_is_answered(self) -> None:
        """A reader captured blocked in recv whose recv returns before its socket is held (the
        program makes it so, recv_in_window.py): the capture is stale and the freeze is taken
        again, so the line it received is answered (without it: lost, the new process waits in
        recv for bytes the old one took)."""
        port = free_port()
        p = self.start_service("recv_in_window.py", "127.0.0.1", str(port), "restart")
        time.sleep(0.5)  # the reader blocks in recv
        self.restart(p.pid)
        self.expect_line(p, "got in-window", timeout=10)

    def test_threaded_new_connections(self) -> None:
        port = free_port()
        p = self.start_service("threaded_server.py", "127.0.0.1", str(port))
        self.restart_under_load(Target(socket.AF_INET, ("127.0.0.1", port)), p, "threaded", persistent=False)

    def test_selector(self) -> None:
        port = free_port()
        p = self.start_service("selector_server.py", "127.0.0.1", str(port))
        self.restart_under_load(Target(socket.AF_INET, ("127.0.0.1", port)), p, "selector")

    def test_asyncio(self) -> None:
        port = free_port()
        p = self.start_service("asyncio_server.py", "127.0.0.1", str(port))
        self.restart_under_load(Target(socket.AF_INET, ("127.0.0.1", port)), p, "asyncio")

    def test_udp(self) -> None:
        port = free_port(type_=socket.SOCK_DGRAM)
        p = self.start_service("udp_server.py", "127.0.0.1", str(port))
        self.restart_under_load(Target(socket.AF_INET, ("127.0.0.1", port), socket.SOCK_DGRAM), p, "udp",
                                timeout=20.0)

    def test_unix(self) -> None:
        path = os.path.join(self.tmp, "counter.sock")
        p = self.start_service("unix_server.py", path)
        self.restart_under_load(Target(socket.AF_UNIX, path), p, "unix")


class Backend:
    """An echo server of the test's own, for a service that is itself a client: counts the
    connections it accepted and records every line, per connection."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            lines: list = []
            self.connections.append(lines)
            threading.Thread(target=self._echo, args=(conn, lines), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket, lines: list) -> None:
        try:
            with conn, conn.makefile("rb") as f:
                for line in f:
                    lines.append(int(line.split()[1]))
                    conn.sendall(line)
        except ConnectionError:
            pass  # the client's process went away (suspended): its connection was reset

    def pings(self) -> list:
        return [n for lines in self.connections for n in lines]

    def close(self) -> None:
        self.listener.close()


class AsyncioClient(ServiceTestCase):
    """An asyncio program whose open_connection stream to a backend is kept by `stasis restart`
    (one connection, no ping missing or repeated) and comes back reset after suspend/resume (the
    program reconnects; its count goes on from the snapshot)."""

    def setUp(self) -> None:
        super().setUp()
        self.backend = Backend()
        self.addCleanup(self.backend.close)

    def until_pings(self, n: int) -> None:
        self.wait_until(lambda: len(self.backend.pings()) >= n, f"{n} pings")

    def test_restart_keeps_the_stream(self) -> None:
        p = self.start_service("asyncio_client.py", "127.0.0.1", str(self.backend.port))
        self.until_pings(100)
        self.restart(p.pid)
        seen = len(self.backend.pings())
        self.until_pings(seen + 100)
        self.assertEqual(len(self.backend.connections), 1)
        pings = self.backend.pings()
        self.assertEqual(pings, list(range(1, len(pings) + 1)))

    def test_suspend_resume_reconnects(self) -> None:
        p = self.start_service("asyncio_client.py", "127.0.0.1", str(self.backend.port))
        self.until_pings(100)
        snapshot = self.suspend(p)
        before = self.backend.pings()
        self.resume(snapshot)
        self.wait_until(lambda: len(self.backend.connections) == 2 and len(self.backend.connections[1]) > 50,
                        "the resumed client's new connection")
        after = self.backend.connections[1]
        # The count goes on from the snapshot; a ping sent but not echoed before the suspension is
        # sent again on the new connection.
        self.assertIn(after[0], (before[-1], before[-1] + 1), "the count did not go on from the snapshot")
        self.assertEqual(after, list(range(after[0], after[0] + len(after))))


if __name__ == "__main__":
    unittest.main()

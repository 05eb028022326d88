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


if __name__ == "__main__":
    unittest.main()

"""A service moved from one network namespace to another (tests/services/netns.py), under load
from a client in a third one:

* with --rebind: the service comes back at another address; the clients reconnect there, and
  every counter equals the successes its client saw;
* with --tcp-established: the service's address moves with it, and its TCP connections are made
  again by TCP repair in the new namespace: the clients' connections stay open and not one request
  fails.

Skipped, with the reason printed, where network namespaces cannot be made (not root, no `ip`)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import unittest

from tests.services import netns
from tests.services.support import PROGRAMS, SOURCE, STASIS, Load, ServiceTestCase, Target, free_port

WHY_NOT = netns.unavailable()
if WHY_NOT:
    print(f"test_netns: skipped: {WHY_NOT}", file=sys.stderr)


@unittest.skipIf(WHY_NOT, WHY_NOT or "")
class MoveBetweenNamespaces(ServiceTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.env["STASIS_SOURCE_DIR"] = SOURCE

    def client(self, topo: netns.Topology) -> subprocess.Popen:
        argv = topo.exec(topo.c, [sys.executable, "-u", os.path.join(PROGRAMS, "load_client.py")])
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env)
        self.procs.append(p)
        return p

    @staticmethod
    def ask(client: subprocess.Popen, command: str) -> str:
        client.stdin.write(command + "\n")
        client.stdin.flush()
        return client.stdout.readline().strip() if command.split()[0] in ("wait", "stop", "total") else ""

    def wait(self, client: subprocess.Popen, n: int) -> int:
        answer = self.ask(client, f"wait {n}")
        self.assertTrue(answer.startswith("reached"), answer)
        return int(answer.split()[1])

    def serve(self, topo: netns.Topology, port: int, *options: str) -> subprocess.Popen:
        p = self.spawn(topo.exec(topo.a, [STASIS, "run", *options, os.path.join(PROGRAMS, "threaded_server.py"),
                                          topo.service_ip, str(port)]))
        self.expect_line(p, "serving")
        return p

    def test_rebind_to_another_address(self) -> None:
        port = 7000
        with netns.Topology(f"r{os.getpid()}", 77) as topo:
            p = self.serve(topo, port)
            client = self.client(topo)
            self.ask(client, f"start inet {topo.service_ip} {port} 1 1")
            self.wait(client, 200)
            snapshot = self.suspend(p)
            self.ask(client, f"target {topo.other_ip} {port}")
            topo.move_to_b(topo.other_ip)
            self.spawn(topo.exec(topo.b, [STASIS, "resume", snapshot, "--rebind",
                                          f"{topo.service_ip}:{port}={topo.other_ip}:{port}"]))
            n = int(self.ask(client, "total").split()[1])
            self.wait(client, n + 200)
            report = json.loads(self.ask(client, "stop"))
            self.assertEqual(report["counters"], report["successes"], report["failures"][:5])

    def test_tcp_established_connections_survive(self) -> None:
        port = 7001
        with netns.Topology(f"t{os.getpid()}", 78) as topo:
            p = self.serve(topo, port, "--tcp-established")
            client = self.client(topo)
            self.ask(client, f"start inet {topo.service_ip} {port} 1 0")   # persistent, no retry
            self.wait(client, 200)
            topo.client_link(False)             # nothing reaches the old kernel's sockets any more
            snapshot = self.suspend(p)
            topo.move_to_b(topo.service_ip)     # the address moves with the service
            q = self.spawn(topo.exec(topo.b, [STASIS, "resume", snapshot, "--tcp-established"]))
            self.wait_until(lambda: q.poll() is not None or self.listening(topo, port), "the resumed service")
            self.assertIsNone(q.poll(), self.output(q))
            topo.client_link(True)
            n = int(self.ask(client, "total").split()[1])
            self.wait(client, n + 200)
            report = json.loads(self.ask(client, "stop"))
            self.assertEqual(report["failures"], [], "a connection did not survive the move")
            self.assertEqual(report["counters"], report["successes"])

    def test_repaired_connections_are_reset_without_the_option(self) -> None:
        """A snapshot holding connections saved by TCP repair, resumed without --tcp-established:
        each connection is made again and reset at once, so the client learns it is gone (instead
        of waiting on a connection nobody holds), and reconnects."""
        port = 7002
        with netns.Topology(f"x{os.getpid()}", 79) as topo:
            p = self.serve(topo, port, "--tcp-established")
            client = self.client(topo)
            self.ask(client, f"start inet {topo.service_ip} {port} 1 1")   # persistent, retry
            self.wait(client, 200)
            topo.client_link(False)
            snapshot = self.suspend(p)
            topo.move_to_b(topo.service_ip)
            q = self.spawn(topo.exec(topo.b, [STASIS, "resume", snapshot]))
            self.wait_until(lambda: q.poll() is not None or self.listening(topo, port), "the resumed service")
            topo.client_link(True)
            n = int(self.ask(client, "total").split()[1])
            self.wait(client, n + 200)
            report = json.loads(self.ask(client, "stop"))
            self.assertTrue(any("Reset" in why or "closed" in why for _, why in report["failures"]),
                            report["failures"][:5])
            self.assertEqual(report["counters"], report["successes"])

    @staticmethod
    def listening(topo: netns.Topology, port: int) -> bool:
        r = subprocess.run(topo.exec(topo.b, ["ss", "-ltnH", f"sport = :{port}"]), capture_output=True, text=True)
        return bool(r.stdout.strip())


@unittest.skipUnless(shutil.which("setpriv") and os.geteuid() == 0, "needs root and setpriv to drop CAP_NET_ADMIN")
class TcpRepairRefused(ServiceTestCase):
    """Without CAP_NET_ADMIN the kernel refuses TCP repair: the suspension says which call failed
    and why, and the program keeps running with its connections."""

    def test_refusal_is_reported_and_the_program_goes_on(self) -> None:
        port = free_port()
        p = self.spawn(["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", STASIS, "run",
                        "--tcp-established", os.path.join(PROGRAMS, "threaded_server.py"), "127.0.0.1", str(port)])
        self.expect_line(p, "serving")
        load = Load(Target(socket.AF_INET, ("127.0.0.1", port)), threads=2, persistent=True, retry=False)
        load.wait_for(100)
        r = self.stasis("suspend", str(p.pid), "--timeout", "5")
        self.assertEqual(r.returncode, 99, r.stderr)
        line = self.expect_line(p, "--tcp-established: the kernel refuses TCP repair", contains=True)
        self.assertIn("the program keeps running", line)
        self.assertIn("Operation not permitted", line)
        self.assertIn("CAP_NET_ADMIN", line)
        load.wait_for(load.total() + 100)
        load.stop()
        self.assertEqual(load.failures, [])
        load.check(self)


if __name__ == "__main__":
    unittest.main()

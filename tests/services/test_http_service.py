"""samples/kv_store.py, a threading HTTP service (http.server.ThreadingHTTPServer suspended in
serve_forever), under load from several client threads:

* suspended with `stasis suspend` and resumed in a fresh process on another port (--rebind): the
  clients reconnect, and every counter in the store equals the number of requests that got a
  success reply (retried requests are not counted twice);
* handed over with `stasis restart --patch` to a new process running a changed handler: not one
  request fails, and the replies name the new version from the switch on;
* a restart whose new process cannot take over (its patch is refused) leaves the old process
  serving, and says why;
* a bind conflict on resume is refused with exit status 98 and a one-line message naming the
  address, the snapshot intact.

Clients open a connection per request, or keep it open (the handler threads then wait in
BufferedReader.readline between requests: capturable since issue 17; the bytes a reader has read
ahead go with the connection)."""
from __future__ import annotations

import json
import os
import socket
import time
import unittest

from tests.services.support import (SAMPLES, Load, ServiceTestCase, Target, alive, connectable,
                                    free_port)

KV_STORE = os.path.join(SAMPLES, "kv_store.py")
PATCH = os.path.join(SAMPLES, "kv_store_v2.py")


class HttpService(ServiceTestCase):

    def start_store(self, port: int, *extra: str):
        return self.start_service(KV_STORE, f"127.0.0.1:{port}", *extra, ready="kv store serving")

    def idle_client(self, port: int):
        """A kept-alive connection that made one request and now sends nothing: the store's handler
        thread for it is back in readline, waiting."""
        import http.client
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        idle.request("POST", "/incr/idle?client=idle&seq=0")
        self.assertEqual(json.loads(idle.getresponse().read())["value"], 1)
        time.sleep(0.3)
        return idle

    def test_migrate_with_rebind(self) -> None:
        port = free_port()
        p = self.start_store(port)
        target = Target(socket.AF_INET, ("127.0.0.1", port))
        load = Load(target, threads=4, persistent=False, retry=True, http=True)
        load.wait_for(200)
        snapshot = self.suspend(p)
        before = load.total()
        new_port = free_port()
        q = self.resume(snapshot, "--rebind", f"127.0.0.1:{port}=127.0.0.1:{new_port}")
        self.wait_until(lambda: connectable(socket.AF_INET, ("127.0.0.1", new_port)), "the resumed store")
        target.address = ("127.0.0.1", new_port)
        load.wait_for(before + 200)
        load.stop()
        load.check(self)
        self.assertEqual(set(load.servers), {"kv-store 1"})
        self.assertFalse(connectable(socket.AF_INET, ("127.0.0.1", port)))
        self.assertIsNone(q.poll(), self.output(q))

    def test_restart_with_patch_no_failed_request(self) -> None:
        port = free_port()
        p = self.start_store(port)
        load = Load(Target(socket.AF_INET, ("127.0.0.1", port)), threads=4, persistent=False, retry=False,
                    http=True)
        load.wait_for(300)
        new = self.restart(p.pid, "--patch", PATCH)
        switched_at, switched = time.monotonic(), load.total()
        load.wait_for(switched + 300)
        # The new process is itself a service under Stasis: it can be restarted again.
        newer = self.restart(new)
        load.wait_for(load.total() + 100)
        load.stop()
        self.assertEqual(load.failures, [], "requests failed during the restarts")
        load.check(self)
        self.assertEqual(set(load.servers), {"kv-store 1", "kv-store 2"})
        # Once the old process has gone, every reply comes from the new code.
        self.assertEqual({server for at, server in load.replies if at > switched_at}, {"kv-store 2"})
        self.assertTrue(alive(newer))

    def test_restart_with_kept_alive_connections(self) -> None:
        """Clients that keep their connections open, under load: each handler thread is in the
        middle of a request or waits for the next one in readline (BufferedReader calling
        SocketIO.readinto from C). The restart keeps every connection, with the bytes its reader had
        read ahead, and no request fails."""
        port = free_port()
        p = self.start_store(port)
        load = Load(Target(socket.AF_INET, ("127.0.0.1", port)), threads=4, persistent=True, retry=False,
                    http=True)
        load.wait_for(200)
        new = self.restart(p.pid, "--patch", PATCH)
        load.wait_for(load.total() + 300)
        load.stop()
        self.assertEqual(load.failures, [], "requests failed during the restart")
        load.check(self)
        self.assertIn("kv-store 2", load.servers)
        self.assertTrue(alive(new))

    def test_restart_with_an_idle_kept_alive_connection(self) -> None:
        """A client that keeps its connection open and sends nothing: the handler thread waits in
        SocketIO.readinto(b) under BufferedReader.readline, where `b` is a memoryview of the
        reader's own buffer. The frame is recorded without it and re-entered by calling readline
        again: the connection survives the restart, its next request served by the new process."""
        port = free_port()
        p = self.start_store(port)
        idle = self.idle_client(port)
        new = self.restart(p.pid, "--patch", PATCH, "--timeout", "20")
        idle.request("POST", "/incr/idle?client=idle&seq=1")
        reply = json.loads(idle.getresponse().read())
        self.assertEqual((reply["value"], reply["server"]), (2, "kv-store 2"))
        idle.close()
        self.assertTrue(alive(new))

    def test_failed_restart_keeps_the_old_process_serving(self) -> None:
        r = self.failed_takeover("from stasis.update import redefine\n"
                                 "redefine('__main__.server_name', 42)  # refused: not a function\n")
        self.assertEqual(r.returncode, 102, r.stderr)
        self.assertIn("redefine __main__.server_name", r.stderr)

    def test_suspend_with_an_idle_kept_alive_connection(self) -> None:
        """The same idle connection under `stasis suspend`: the program suspends (75) at once, and
        resumes with its store; the handler thread waiting on the connection is rebuilt in
        readline."""
        import http.client
        port = free_port()
        p = self.start_service(KV_STORE, f"127.0.0.1:{port}", options=["--safe-point-timeout", "5"],
                               ready="kv store serving")
        idle = self.idle_client(port)
        snapshot = self.suspend(p)
        idle.close()
        q = self.resume(snapshot)
        self.wait_until(lambda: connectable(socket.AF_INET, ("127.0.0.1", port)), "the resumed store")
        again = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        again.request("POST", "/incr/idle?client=idle&seq=1")
        self.assertEqual(json.loads(again.getresponse().read())["value"], 2)
        again.close()
        self.assertIsNone(q.poll(), self.output(q))
        self.assertNotIn("Traceback", self.output(q))

    def failed_takeover(self, patch: str, *options: str):
        """A restart whose new process never takes over, under load: the command fails, naming
        why; no request fails and the old process serves on, with its state."""
        port = free_port()
        p = self.start_store(port)
        bad = os.path.join(self.tmp, "patch.py")
        with open(bad, "w") as f:
            f.write(patch)
        load = Load(Target(socket.AF_INET, ("127.0.0.1", port)), threads=3, persistent=False, retry=False,
                    http=True)
        load.wait_for(100)
        r = self.stasis("restart", str(p.pid), "--patch", bad, *options)
        before = load.total()
        load.wait_for(before + 200)
        load.stop()
        self.assertEqual(load.failures, [])
        load.check(self)
        self.assertTrue(alive(p.pid))
        self.assertEqual(set(load.servers), {"kv-store 1"})
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("the old one goes on serving", r.stderr)
        return r

    def test_restart_whose_new_process_dies_keeps_the_old_process_serving(self) -> None:
        # The update module runs in the new process, after the load: it ends that process.
        r = self.failed_takeover("import os\nos._exit(7)\n")
        self.assertEqual(r.returncode, 105, r.stderr)  # TakeoverError, not an internal error (90)
        self.assertIn("the new process ended with status 7 before taking over", r.stderr)

    def test_restart_timeout_keeps_the_old_process_serving(self) -> None:
        r = self.failed_takeover("import time\ntime.sleep(60)\n", "--timeout", "3")
        self.assertEqual(r.returncode, 99, r.stderr)
        self.assertIn("the new process did not take over in time", r.stderr)

    def test_restart_refuses_a_patch_that_does_not_compile(self) -> None:
        port = free_port()
        p = self.start_store(port)
        bad = os.path.join(self.tmp, "syntax.py")
        with open(bad, "w") as f:
            f.write("def broken(:\n")
        r = self.stasis("restart", str(p.pid), "--patch", bad)
        self.assertEqual(r.returncode, 102, r.stderr)
        self.assertIn("is not valid Python", r.stderr)
        self.assertTrue(alive(p.pid))
        self.assertTrue(connectable(socket.AF_INET, ("127.0.0.1", port)))

    def test_restart_of_a_process_not_under_stasis(self) -> None:
        r = self.stasis("restart", str(os.getpid()))
        self.assertEqual(r.returncode, 103, r.stderr)
        self.assertIn("control socket", r.stderr)

    def test_bind_conflict_on_resume(self) -> None:
        port = free_port()
        p = self.start_store(port)
        snapshot = self.suspend(p)
        with open(snapshot, "rb") as f:
            original = f.read()
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        try:
            q = self.resume(snapshot)
            self.assertEqual(q.wait(60), 98)
            err = self.output(q)
            lines = [line for line in err.splitlines() if line.strip()]
            self.assertEqual(len(lines), 1, err)
            self.assertIn(f"cannot bind 127.0.0.1:{port}", lines[0])
            self.assertIn("Address already in use", lines[0])
            self.assertIn(f"--rebind 127.0.0.1:{port}=", lines[0])
            self.assertNotIn("Traceback", err)
            with open(snapshot, "rb") as f:
                self.assertEqual(f.read(), original)
            # A --rebind to a free port resumes the very same snapshot.
            new_port = free_port()
            self.resume(snapshot, "--rebind", f":{port}=:{new_port}")
            self.wait_until(lambda: connectable(socket.AF_INET, ("127.0.0.1", new_port)), "the resumed store")
        finally:
            blocker.close()

    def test_sample_client(self) -> None:
        """samples/kv_client.py against the store: --address-file wins over the address given (a
        test moving the service writes the new one there), --keep-alive and --retry run, and the
        report says every counter equals its successes."""
        import subprocess
        import sys
        port = free_port()
        self.start_store(port)
        where = os.path.join(self.tmp, "address")
        with open(where, "w") as f:
            f.write(f"127.0.0.1:{port}\n")
        r = subprocess.run([sys.executable, os.path.join(SAMPLES, "kv_client.py"), "127.0.0.1:1",
                            "--address-file", where, "--seconds", "1.5", "--threads", "2", "--keep-alive",
                            "--retry", "--json"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        self.assertEqual(report["mismatches"], {})
        self.assertEqual(report["failures"], 0)
        self.assertGreater(sum(report["successes"].values()), 10)
        self.assertEqual(set(report["servers"]), {"kv-store 1"})

    def test_rebind_usage_errors(self) -> None:
        for rule, why in (("8080", "OLD=NEW"), (":80=/tmp/x.sock", "Unix address"), (":99999=:1", "out of range"),
                          ("host:port=:1", "not a number")):
            r = self.stasis("resume", "nothing.snap", "--rebind", rule)
            self.assertEqual(r.returncode, 64, r.stderr)
            self.assertIn(why, r.stderr)


if __name__ == "__main__":
    unittest.main()

"""The per-user runtime directory (stasis/runtime_dir.py) cannot be pre-empted by another user and
never stops Stasis from running; stale sockets and records are cleaned; the control channel bounds
what a client can make the target hold: JSON nesting, request size, idle connections, connection
count (updater/channel.py, updater/control.py)."""
from __future__ import annotations

import json
import os
import pwd
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from stasis import runtime_dir
from stasis.updater import channel
from tests.updater.support import TargetTestCase


class RuntimeDir(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="stasis-rtd-")
        os.chmod(self.tmp, 0o755)
        self._saved = (runtime_dir._TMP, os.environ.pop("XDG_RUNTIME_DIR", None))
        runtime_dir._TMP = self.tmp
        self.shared = os.path.join(self.tmp, f"stasis-{os.getuid()}")

    def tearDown(self):
        runtime_dir._TMP = self._saved[0]
        if self._saved[1] is not None:
            os.environ["XDG_RUNTIME_DIR"] = self._saved[1]
        subprocess.run(["rm", "-rf", self.tmp])

    def test_the_shared_directory_is_made_private(self):
        d = runtime_dir.runtime_dir()
        self.assertEqual(d, self.shared)
        self.assertEqual(os.stat(d).st_mode & 0o777, 0o700)

    @unittest.skipUnless(os.getuid() == 0, "needs root to make a directory as another user")
    def test_a_directory_another_user_made_is_never_used(self):
        nobody = pwd.getpwnam("nobody")
        os.mkdir(self.shared, 0o777)
        os.chown(self.shared, nobody.pw_uid, nobody.pw_gid)
        d = runtime_dir.runtime_dir()
        self.assertNotEqual(d, self.shared)
        self.assertTrue(os.path.basename(d).startswith(f"stasis-{os.getuid()}-"))
        self.assertEqual(os.stat(d).st_mode & 0o777, 0o700)
        self.assertEqual(runtime_dir.runtime_dir(), d, "every process must find the same one")
        self.assertEqual(runtime_dir.candidates(), [d])

    def test_an_opened_up_or_linked_directory_is_never_used(self):
        os.mkdir(self.shared, 0o777)
        os.chmod(self.shared, 0o777)
        first = runtime_dir.runtime_dir()
        self.assertNotEqual(first, self.shared)
        os.rmdir(self.shared)
        os.symlink(first, self.shared)
        self.assertNotEqual(runtime_dir.runtime_dir(), self.shared)

    def test_xdg_runtime_dir_first(self):
        xdg = os.path.join(self.tmp, "xdg")
        os.mkdir(xdg, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = xdg
        try:
            self.assertEqual(runtime_dir.runtime_dir(), os.path.join(xdg, "stasis"))
            os.chmod(xdg, 0o777)  # a runtime dir others can write to is not one
            self.assertEqual(runtime_dir.runtime_dir(), self.shared)
        finally:
            del os.environ["XDG_RUNTIME_DIR"]

    def test_stale_sockets_and_records_of_dead_processes_are_removed(self):
        d = runtime_dir.runtime_dir()
        dead = subprocess.Popen(["true"])
        dead.wait()
        for name in (f"{dead.pid}.sock", f"{dead.pid}.txt", f"{os.getppid()}.sock", "notes.txt"):
            open(os.path.join(d, name), "w").close()
        self.assertEqual(runtime_dir.clean_stale(d), 2)
        self.assertEqual(sorted(os.listdir(d)), sorted([f"{os.getppid()}.sock", "notes.txt"]))

    @unittest.skipUnless(os.getuid() == 0, "needs root to make a directory as another user")
    def test_serving_updates_survives_a_pre_empted_directory(self):
        """`stasis run` of a victim whose /tmp/stasis-<uid> another user made: it still serves
        updates (from a private directory) and `stasis ctl` still finds it."""
        nobody = pwd.getpwnam("nobody")
        os.mkdir(self.shared, 0o777)
        os.chown(self.shared, nobody.pw_uid, nobody.pw_gid)
        code = textwrap.dedent(f'''
            import os, sys
            from stasis import runtime_dir
            runtime_dir._TMP = {self.tmp!r}
            os.environ.pop("STASIS_CONTROL_DIR", None)
            from stasis.updater import control, channel
            control.serve_updates()
            s = channel.connect(os.getpid(), timeout=10)
            print(os.path.dirname(channel.socket_path(os.getpid())), flush=True)
        ''')
        env = {k: v for k, v in os.environ.items() if k not in ("STASIS_CONTROL_DIR", "XDG_RUNTIME_DIR")}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        where = r.stdout.strip()
        self.assertNotEqual(where, self.shared)
        self.assertTrue(os.path.basename(where).startswith(f"stasis-{os.getuid()}-"), where)
        self.assertEqual(os.listdir(self.shared), [])


TARGET = '''
import sys, stasis
from stasis.updater import control
control.IDLE_TIMEOUT = float(sys.argv[1])
control.MAX_CONNECTIONS = int(sys.argv[2])
stasis.serve_updates()
print("ready", flush=True)
sys.stdin.read()
'''


class ChannelLimits(TargetTestCase):
    def target(self, idle: float = 60.0, connections: int = 16):
        p, line = self.start("target.py", TARGET, str(idle), str(connections))
        self.assertEqual(line.strip(), "ready")
        return p

    def ping(self, p) -> dict:
        with channel.connect(p.pid, timeout=10) as s:
            channel.send(s, {"op": "ping"})
            return channel.recv(s)

    def test_deeply_nested_json_is_refused_and_the_target_goes_on(self):
        p = self.target()
        body = b"[" * 100000 + b"]" * 100000
        with channel.connect(p.pid, timeout=10) as s:
            s.sendall(struct.pack(">I", len(body)) + body)
            reply = channel.recv(s)
        self.assertFalse(reply["ok"])
        self.assertIn(f"nested more than {channel.MAX_DEPTH} levels", reply["error"])
        self.assertTrue(self.ping(p)["ok"])
        p.stdin.close()
        self.assertEqual(p.wait(timeout=20), 0)
        self.assertNotIn("Traceback", p.stderr.read())

    def test_an_oversized_request_is_refused_before_it_is_read(self):
        p = self.target()
        with channel.connect(p.pid, timeout=10) as s:
            s.sendall(struct.pack(">I", 59 << 20))  # announces 59 MB, sends none of it
            reply = channel.recv(s)
        self.assertFalse(reply["ok"])
        self.assertIn(f"exceeds the limit of {channel.MAX_REQUEST}", reply["error"])

    def test_an_idle_connection_is_closed(self):
        p = self.target(idle=1.0)
        with channel.connect(p.pid, timeout=10) as s:
            s.sendall(struct.pack(">I", 100) + b"{")  # a partial message, then silence
            start = time.monotonic()
            reply = channel.recv(s)
            self.assertIsNone(channel.recv(s))  # then closed
        self.assertLess(time.monotonic() - start, 15)
        self.assertIn("no complete request within 1 s", reply["error"])

    def test_connections_beyond_the_cap_are_refused(self):
        p = self.target(connections=2)
        held = [channel.connect(p.pid, timeout=10) for _ in range(2)]
        try:
            time.sleep(0.5)
            with channel.connect(p.pid, timeout=10) as s:
                reply = channel.recv(s)
            self.assertFalse(reply["ok"])
            self.assertIn("2 connections are being served already", reply["error"])
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the held ones are released when they close
            try:
                if self.ping(p)["ok"]:
                    break
            except Exception:
                pass
            time.sleep(0.1)
        self.assertTrue(self.ping(p)["ok"])


if __name__ == "__main__":
    unittest.main()

"""The control channel refuses what it cannot trust: a control directory other users can enter
(both the server and `stasis ctl` refuse it), another UID (the directory keeps it out, and even
with the directory opened up the server's SO_PEERCRED check refuses it), and malformed messages."""
from __future__ import annotations

import os
import pwd
import socket
import struct
import subprocess
import sys
import unittest

from stasis.updater import channel
from stasis.updater.errors import ControlChannelError
from tests.updater.support import TargetTestCase

TARGET = '''
import sys, time, stasis
try:
    stasis.serve_updates()
except stasis.StasisError as e:
    print("refused: " + str(e), flush=True)
    sys.exit(3)
print("ready", flush=True)
sys.stdin.read()
'''

CLIENT_AS_NOBODY = '''
import os, socket, struct, sys
os.setgid({gid}); os.setuid({uid})
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect failed: " + e.__class__.__name__, flush=True)
    sys.exit(0)
data = b""  # the server answers a refused peer at once, before any request
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print("reply: " + data[4:].decode(errors="replace"), flush=True)
'''


class SecurityTest(TargetTestCase):
    def test_directory_with_wrong_permissions_is_refused(self) -> None:
        os.chmod(self.control_dir, 0o755)
        p, line = self.start("target.py", TARGET)
        self.assertTrue(line.startswith("refused: "), line)
        self.assertIn("mode 0755", line)
        self.assertEqual(p.wait(timeout=20), 3)
        _, _, err = self.ctl(os.getpid(), "list", expect=ControlChannelError.code)
        self.assertIn("must be 0700", err)

    def test_missing_socket_is_a_clear_error(self) -> None:
        _, _, err = self.ctl(999999, "list", expect=ControlChannelError.code)
        self.assertIn("has no control socket", err)

    def test_malformed_message_gets_an_error_reply(self) -> None:
        p, _ = self.start("target.py", TARGET)
        with channel.connect(p.pid, timeout=10) as s:
            s.sendall(struct.pack(">I", 5) + b"hello")
            reply = channel.recv(s)
        self.assertFalse(reply["ok"])
        self.assertIn("not JSON", reply["error"])
        with channel.connect(p.pid, timeout=10) as s:
            channel.send(s, {"op": "eval", "code": "1+1"})
            reply = channel.recv(s)
        self.assertEqual((reply["ok"], reply["kind"]), (False, "UpdateRefusedError"))
        self.assertIn("unknown operation 'eval'", reply["error"])

    @unittest.skipUnless(os.getuid() == 0, "needs root to run a client as another user")
    def test_other_uid_is_refused(self) -> None:
        nobody = pwd.getpwnam("nobody")
        p, _ = self.start("target.py", TARGET)
        path = channel.socket_path(p.pid)
        code = CLIENT_AS_NOBODY.format(uid=nobody.pw_uid, gid=nobody.pw_gid)
        run = lambda: subprocess.run([sys._base_executable, "-I", "-c", code, path], capture_output=True, text=True, timeout=30)
        # 1. The 0700 directory keeps other users out.
        r = run()
        self.assertEqual(r.stdout.strip(), "connect failed: PermissionError", r.stderr)
        # 2. With the directory and socket opened up (a misconfiguration), the server still refuses
        #    the peer by its credentials, and answers nothing else.
        os.chmod(self.tmp, 0o755)
        os.chmod(self.control_dir, 0o755)
        os.chmod(path, 0o777)
        r = run()
        self.assertIn("reply: ", r.stdout, r.stderr)
        self.assertIn(f"refused: peer uid {nobody.pw_uid}", r.stdout)
        self.assertNotIn("updates", r.stdout)


if __name__ == "__main__":
    unittest.main()

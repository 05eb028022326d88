"""A pre-fork server (a parent and three forked workers, each serving updates after fork) takes
one `stasis ctl --all-children PID apply` and reports per process; every worker then runs the
new code."""
from __future__ import annotations

import os
import re
import time
import unittest

from tests.updater.support import TargetTestCase

SERVER = '''
import os, sys, time, stasis

def version():
    return "v1"

stasis.serve_updates()
parent = os.getpid()
workers = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        # The child serves on its own socket (re-created after fork by stasis).
        while os.getppid() == parent:   # a worker ends with its parent, however the parent ends
            with open(os.path.join(sys.argv[1], f"{os.getpid()}.out"), "w") as f:
                f.write(version())
            time.sleep(0.02)
        os._exit(0)
    workers.append(pid)
socket_dir = os.environ["STASIS_CONTROL_DIR"]
while not all(os.path.exists(os.path.join(socket_dir, f"{w}.sock")) for w in workers):
    time.sleep(0.01)
print(" ".join(map(str, workers)), flush=True)
try:
    sys.stdin.read()
finally:
    for w in workers:
        os.kill(w, 9)
'''

UPDATE = '''
from stasis.update import redefine
def version():
    return "v2"
redefine("__main__.version", version)
'''


class PreforkTest(TargetTestCase):
    def test_broadcast_to_all_workers(self) -> None:
        out_dir = os.path.join(self.tmp, "out")
        os.mkdir(out_dir)
        proc, line = self.start("server.py", SERVER, out_dir)
        workers = [int(w) for w in line.split()]
        update = self.write("update.py", UPDATE)
        _, out, _ = self.ctl("--all-children", proc.pid, "apply", update)
        reported = {int(pid): rest for pid, rest in re.findall(r"\[pid (\d+)\] (.*)", out)}
        self.assertEqual(set(reported), {proc.pid, *workers}, out)
        self.assertTrue(all(r.startswith("update 1 applied") for r in reported.values()), out)
        # Each worker rewrites its file every 20 ms with version(): wait (bounded) for v2 everywhere.
        deadline = time.monotonic() + 20
        versions = {}
        while time.monotonic() < deadline:
            versions = {}
            for w in workers:
                try:
                    with open(os.path.join(out_dir, f"{w}.out")) as f:
                        versions[w] = f.read()
                except OSError:
                    pass
            if all(v == "v2" for v in versions.values()) and len(versions) == len(workers):
                break
            time.sleep(0.02)
        self.assertEqual(versions, {w: "v2" for w in workers})
        _, listing, _ = self.ctl("--all-children", proc.pid, "list")
        self.assertEqual(listing.count("applied"), 4, listing)
        # One profile across the server: folded stacks name each worker process.
        folded = os.path.join(self.tmp, "all.folded")
        _, out, _ = self.ctl("--all-children", proc.pid, "profile", "__main__.version", "--seconds", "0.3",
                             "--folded", folded)
        self.assertIn("__main__.version", out)
        with open(folded) as f:
            profiled = {int(m) for m in re.findall(r"^process (\d+);", f.read(), re.M)}
        self.assertEqual(profiled, set(workers))   # the parent never calls version()


if __name__ == "__main__":
    unittest.main()

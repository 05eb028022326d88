"""Under `stasis run`, the control channel holds no Python thread while idle: a program sees exactly
its own threads in sys._current_frames(), threading and _thread._count(), the same as under plain
python3, in the parent and in a forked child (CPython's test_threading
test_clear_threads_states_after_fork checks this); both still answer `stasis ctl`, and once a
request is served the program is back to its own threads. The threads serving a request are not
in the program's threading either."""
from __future__ import annotations

import os
import re
import unittest

from tests.updater.support import STASIS_RUN, TargetTestCase

TARGET = '''
import os, sys, threading, time, _thread

def state():
    frames = set(sys._current_frames())
    own = {t.ident for t in threading.enumerate()}
    return (f"{len(frames)} thread states, {'exactly' if frames == own else 'NOT'} the program's threads, "
            f"active_count {threading.active_count()}, _thread._count {_thread._count()}")

def settle(before):
    # A request is served by a thread of Stasis that ends just after its reply: wait (bounded).
    deadline = time.monotonic() + 10
    now = state()
    while now != before and time.monotonic() < deadline:
        time.sleep(0.01)
        now = state()
    return now

def tick():
    return threading.active_count()   # traced while a request is served

serving = sys.argv[1] == "serving"   # under `stasis run`: wait for the test's requests
release = threading.Event()

def work():
    while not release.wait(0.01):
        tick()

workers = [threading.Thread(target=work) for _ in range(3)]
for w in workers:
    w.start()
before = state()
rfd, wfd = os.pipe()
pid = os.fork()
if pid == 0:
    before = state()
    os.write(wfd, f"{os.getpid()} {before}\\n".encode())
    if serving:
        while not os.path.exists("child-go"):
            time.sleep(0.01)
        os.write(wfd, f"{settle(before)}\\n".encode())
    os._exit(0)
from_child = os.fdopen(rfd)
# One line per report (parent state | child pid and state): the test reads line by line.
print(f"{os.getpid()} {before} | {from_child.readline().strip()}", flush=True)
if serving:
    sys.stdin.readline()
    print(f"{settle(before)} | {from_child.readline().strip()}", flush=True)
os.waitpid(pid, 0)
release.set()
'''


class IdleThreadsTest(TargetTestCase):
    def test_only_the_programs_threads_in_parent_and_forked_child(self) -> None:
        plain_proc, plain = self.start("target.py", TARGET, "plain")
        self.assertEqual(plain_proc.wait(timeout=20), 0)
        proc, ran = self.start("target.py", TARGET, "serving", runner=STASIS_RUN)
        parent, parent_state, child, child_state = re.fullmatch(r"(\d+) (.*) \| (\d+) (.*)", ran).groups()
        _, plain_parent, _, plain_child = re.fullmatch(r"(\d+) (.*) \| (\d+) (.*)", plain).groups()
        self.assertEqual(parent_state, plain_parent, "parent: stasis run vs plain python3")
        self.assertEqual(child_state, plain_child, "forked child: stasis run vs plain python3")
        self.assertTrue(parent_state.startswith("4 thread states, exactly the program's threads,"), ran)
        self.assertTrue(child_state.startswith("1 thread states, exactly the program's threads,"), ran)

        _, out, _ = self.ctl(child, "ping")
        self.assertTrue(out.startswith(f"pid {child} (parent {parent})"), out)
        _, out, _ = self.ctl(parent, "ping")
        self.assertTrue(out.startswith(f"pid {parent} "), out)
        # While a streaming request is served (its connection, hang-up watcher and event sender
        # threads run), the program's threading still counts only its own 4 threads.
        _, out, _ = self.ctl(parent, "trace", "__main__.tick", "--seconds", "0.3")
        returned = re.findall(r"tick returned (\d+)", out)
        self.assertTrue(returned, out)
        self.assertEqual(set(returned), {"4"}, out)

        # Served: each is back to exactly its own threads.
        open(os.path.join(self.tmp, "child-go"), "w").close()
        proc.stdin.write("\n")
        proc.stdin.flush()
        self.assertEqual(self.readline(proc), f"{parent_state} | {child_state}")
        self.assertEqual(proc.wait(timeout=20), 0, proc.stderr.read())


if __name__ == "__main__":
    unittest.main()

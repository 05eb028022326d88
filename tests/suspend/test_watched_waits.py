"""A pending request does not stall a threaded program whose main thread runs code called from C
(a sort key: that thread cannot reach a safe point before the C call returns, snapshot/safe_point.h
"watching") while it waits for its worker threads: the workers must not park meanwhile, or nothing
moves until --safe-point-timeout. Once the C call has returned, every thread comes to a safe point
and the program is suspended; it resumes to the output of a plain run."""
import os
import sys
import re
import shutil
import subprocess
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")
PLAIN = os.path.realpath(sys.executable)  # the configured interpreter
TIMEOUT = 10  # --safe-point-timeout: a stall lasts that long, far above the bound checked

# The phase runs from sorted()'s key function; the program prints how long it took ("phase N s",
# measured before any suspension; left out of the compared output). A request that waited through
# the phase is honoured as soon as sorted() returns (at the call of print: replay issues it). With an argument, a worker asks for the suspension itself
# (stasis.suspend()) while the main thread is inside the key function.
PROLOGUE = """
import sys, threading, time
try:
    import stasis
except ImportError:
    stasis = None
ASK = len(sys.argv) > 1 and stasis is not None

def work(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
"""

EPILOGUE = """
ends = []
def timed(x):
    v = phase(x)
    ends.append(time.perf_counter())
    return v
t0 = time.perf_counter()
print(sorted([3, 1, 2], key=timed))
print("phase %.3f s" % (max(ends) - t0), flush=True)
for i in range(40):
    time.sleep(0.005)
    print("after", i, flush=True)
print("end", threading.active_count())
"""

# The key function starts workers and joins each.
JOIN = PROLOGUE + """
results = []
asked = []
def worker(k):
    if ASK and not asked:
        asked.append(1)
        stasis.suspend()
    results.append(work(800_000 + k))

def phase(x):
    for k in range(2):
        t = threading.Thread(target=worker, args=(k + 3 * x,))
        t.start()
        t.join()
    return -x
""" + EPILOGUE + """
print(sorted(results))
"""

# The key function hands jobs to two long-lived workers over a Queue and waits for each answer on
# a Condition; the workers are blocked in Queue.get between jobs.
HANDOFF = PROLOGUE + """
import queue
jobs = queue.Queue()
cond = threading.Condition()
answers = {}
asked = []

def worker():
    while True:
        job = jobs.get()
        if job is None:
            return
        if ASK and not asked:
            asked.append(1)
            stasis.suspend()
        value = work(400_000 + job)
        with cond:
            answers[job] = value
            cond.notify_all()

workers = [threading.Thread(target=worker, name="w%d" % i) for i in range(2)]
for t in workers:
    t.start()

def phase(x):
    for j in range(3):
        job = 10 * x + j
        jobs.put(job)
        with cond:
            cond.wait_for(lambda: job in answers)
    return answers[10 * x]
""" + EPILOGUE + """
for t in workers:
    jobs.put(None)
for t in workers:
    t.join()
print(sorted(answers.items()))
"""

# Two threads that spend nearly all their time computing in sort keys: each is watched most of the
# time, and only a thread held at its safe point while the other returns lets them meet. A
# watched thread that keeps running Python code is not waiting for anyone: the others stay parked.
BOTH_IN_KEYS = """
import threading, time
def key(x):
    s = 0
    for i in range(20_000):
        s += (i * x) % 7
    return s
def worker(out):
    for r in range(40):
        out.append(sorted(range(6), key=key)[0])
results = [[], []]
threads = [threading.Thread(target=worker, args=(results[i],)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print([len(r) for r in results], results[0][:3])
"""

PHASE = re.compile(r"^phase ([0-9.]+) s$", re.M)


class WatchedMainThread(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stasis-watched-")
        self.env = {**os.environ, "PYTHONHASHSEED": "5"}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def run_(self, cmd):
        return subprocess.run(cmd, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=300)

    def phase(self, out):
        m = PHASE.search(out)
        self.assertIsNotNone(m, out)
        return float(m.group(1))

    def check(self, text, *args):
        prog = self.write("prog.py", text)
        snap = os.path.join(self.dir, "prog.snap")
        plain = self.run_([PLAIN, prog])
        self.assertEqual(plain.returncode, 0, plain.stderr)
        if args:
            first = self.run_([STASIS, "run", "--safe-point-timeout", str(TIMEOUT), "--snapshot", snap, prog, *args])
        else:  # the quota's request comes while the phase (the program's first ~0.5 s) runs
            first = self.run_([STASIS, "run", "--quota", "0.1", "--safe-point-timeout", str(TIMEOUT), "--snapshot",
                               snap, prog])
        self.assertEqual(first.returncode, 75, first.stderr)
        self.assertNotIn("could not suspend", first.stderr)
        out, r = first.stdout, first
        for _ in range(10):
            if r.returncode != 75:
                break
            r = self.run_([STASIS, "resume", snap])
            out += r.stdout
        self.assertEqual(r.returncode, 0, r.stderr)
        # The phase ran at about its plain speed while the request waited (generous slack for a
        # loaded machine; a stall lasts TIMEOUT seconds).
        plain_s, waiting_s = self.phase(plain.stdout), self.phase(out)
        self.assertLess(waiting_s, 3 * plain_s + 1, (plain_s, waiting_s, first.stderr))
        self.assertEqual(PHASE.sub("phase", out), PHASE.sub("phase", plain.stdout))
        # Suspended after the phase, inside the loop that follows it.
        self.assertIn("after", out)
        self.assertNotIn("end", first.stdout)

    def test_a_sort_key_joining_workers_under_a_quota(self):
        self.check(JOIN)

    def test_a_worker_asking_while_the_sort_key_joins_it(self):
        self.check(JOIN, "ask")

    def test_a_queue_and_condition_handoff_under_a_quota(self):
        self.check(HANDOFF)

    def test_a_worker_asking_during_a_queue_and_condition_handoff(self):
        self.check(HANDOFF, "ask")


    def test_two_threads_computing_in_sort_keys_are_suspended(self):
        prog = self.write("both.py", BOTH_IN_KEYS)
        snap = os.path.join(self.dir, "both.snap")
        plain = self.run_([PLAIN, prog])
        first = self.run_([STASIS, "run", "--quota", "0.2", "--safe-point-timeout", str(TIMEOUT), "--snapshot", snap,
                           prog])
        self.assertEqual(first.returncode, 75, first.stderr)
        r = self.run_([STASIS, "resume", snap])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(first.stdout + r.stdout, plain.stdout)


if __name__ == "__main__":
    unittest.main()

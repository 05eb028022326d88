"""Every way to request a suspension, and the bad situations at resume time: each gets its exit
status and a one-line message, and the snapshot stays intact."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")
PLAIN = os.path.realpath(sys.executable)  # the configured interpreter (the build's bin/python links to it)

# Counts to a target, printing each step; one line of work per step keeps safe points frequent.
COUNTER = textwrap.dedent("""
    import sys, time
    def step(i):
        time.sleep(0.01)
        return i * i
    total = 0
    for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 200):
        total += step(i)
        print(i, total, flush=True)
    print("done", total)
""")


class StasisCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stasis-triggers-")
        self.prog = os.path.join(self.dir, "counter.py")
        with open(self.prog, "w") as f:
            f.write(COUNTER)
        self.snap = os.path.join(self.dir, "counter.snap")
        self.env = {**os.environ, "PYTHONHASHSEED": "11"}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_stasis(self, *args, timeout=120):
        return subprocess.run([STASIS, *args], cwd=self.dir, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def finish(self, first_stdout):
        """Resumes until exit 0; returns all stdout."""
        out = first_stdout
        for _ in range(20):
            r = self.run_stasis("resume", self.snap)
            out += r.stdout
            if r.returncode != 75:
                self.assertEqual(r.returncode, 0, r.stderr)
                return out
        self.fail("did not finish")

    def expected(self, n=200):
        r = subprocess.run([PLAIN, self.prog, str(n)], capture_output=True, text=True,
                           env=self.env)
        return r.stdout


class TriggerTest(StasisCase):
    def test_quota(self):
        r = self.run_stasis("run", "--quota", "0.5", "--snapshot", self.snap, self.prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(f"suspended into {self.snap}", r.stderr)
        self.assertEqual(self.finish(r.stdout), self.expected())

    def start_to_file(self, args, out_path):
        """Starts stasis with stdout to a file (a pipe read line by line would buffer more than a
        line, which communicate() then loses); returns once the program printed its first line."""
        out = open(out_path, "w")
        err = open(out_path + ".err", "w")
        p = subprocess.Popen([STASIS, *args], cwd=self.dir, env=self.env, stdout=out, stderr=err)
        out.close()
        err.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and os.path.getsize(out_path) == 0:
            time.sleep(0.01)
        return p

    def test_signal_and_stasis_suspend_pid(self):
        out1 = os.path.join(self.dir, "out1")
        p = self.start_to_file(["run", "--snapshot", self.snap, self.prog, "100000"], out1)
        r = self.run_stasis("suspend", str(p.pid), "--timeout", "30")
        p.wait(timeout=60)
        with open(out1 + ".err") as f:
            err = f.read()
        self.assertEqual(r.returncode, 0, r.stderr + err)
        self.assertEqual(p.returncode, 75, err)
        self.assertEqual(r.stdout.strip(), self.snap)
        # resume, then suspend again with the program's own signal (SIGUSR1), then compare
        out2 = os.path.join(self.dir, "out2")
        q = self.start_to_file(["resume", self.snap], out2)
        q.send_signal(signal.SIGUSR1)
        q.wait(timeout=60)
        self.assertEqual(q.returncode, 75)
        with open(out1) as f1, open(out2) as f2:
            lines = (f1.read() + f2.read()).splitlines()
        self.assertGreater(len(lines), 1)
        self.assertEqual(lines, [f"{i} {sum(k * k for k in range(i + 1))}" for i in range(len(lines))])

    def test_suspend_from_the_program(self):
        prog = os.path.join(self.dir, "self_suspend.py")
        with open(prog, "w") as f:
            f.write("import stasis\nvalues = []\nfor i in range(6):\n    values.append(i)\n"
                    "    if i == 2:\n        stasis.suspend()\n    print(i, values)\n")
        r = self.run_stasis("run", "--snapshot", self.snap, prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual(r.stdout, "0 [0]\n1 [0, 1]\n")
        out = self.finish(r.stdout)
        self.assertEqual(out.splitlines()[-1], "5 [0, 1, 2, 3, 4, 5]")
        self.assertEqual(len(out.splitlines()), 6)

    def test_checkpoint_returns_false_then_true(self):
        prog = os.path.join(self.dir, "ck.py")
        with open(prog, "w") as f:
            f.write("import stasis\nn = 41\nresumed = stasis.checkpoint('ck.snap')\nn += 1\n"
                    "print('resumed' if resumed else 'original', n)\n")
        r = self.run_stasis("run", prog)
        self.assertEqual((r.returncode, r.stdout), (0, "original 42\n"), r.stderr)
        for _ in range(2):  # the same checkpoint resumes identically, as often as wanted
            r = self.run_stasis("resume", "ck.snap")
            self.assertEqual((r.returncode, r.stdout), (0, "resumed 42\n"), r.stderr)

    def test_unsuspendable_stack_times_out_and_the_program_goes_on(self):
        prog = os.path.join(self.dir, "sorted_cb.py")
        with open(prog, "w") as f:
            f.write("import time\ndef key(x):\n    time.sleep(0.3)\n    return -x\n"
                    "print(sorted(range(8), key=key))\n")
        r = self.run_stasis("run", "--quota", "0.2", "--safe-point-timeout", "0.5", "--snapshot", self.snap, prog)
        self.assertIn("could not suspend within 0.5 s", r.stderr)
        self.assertIn("called from C", r.stderr)
        self.assertIn("key", r.stderr)
        self.assertEqual(r.stdout, "[7, 6, 5, 4, 3, 2, 1, 0]\n")
        self.assertFalse(os.path.exists(self.snap))

    def test_time_spent_rewriting_a_module_does_not_count_against_the_timeout(self):
        # A first run rewrites each imported module (a cold cache: numpy and pandas take 10 s and
        # more): a request that comes meanwhile waits for that import to end, whatever
        # --safe-point-timeout says; the wait is Stasis's, not the program's. Before, the request
        # failed for good (exit 104) with a diagnostic about Stasis's own rewriter frames.
        with open(os.path.join(self.dir, "big.py"), "w") as f:
            f.write("".join(f"def f{i}(x):\n    for k in range(3):\n        x = x + k * {i}\n    return x\n"
                            for i in range(6000)))
        prog = os.path.join(self.dir, "main.py")
        with open(prog, "w") as f:
            f.write("import big\ntotal = 0\nfor i in range(2000000):\n    total += i % 7\nprint(total, big.f3(1))\n")
        env = {**self.env, "STASIS_CACHE_DIR": os.path.join(self.dir, "cold-cache")}
        r = subprocess.run([STASIS, "run", "--quota", "0.05", "--safe-point-timeout", "0.3", "--snapshot", self.snap,
                            prog], cwd=self.dir, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 75, r.stderr)
        r2 = subprocess.run([STASIS, "resume", self.snap], cwd=self.dir, env=env, capture_output=True, text=True,
                            timeout=300)
        self.assertEqual((r2.returncode, r.stdout + r2.stdout), (0, "5999995 10\n"), r2.stderr)

    def test_a_stack_through_code_kept_plain_names_that_module_not_c(self):
        # The program's callback runs under a loop of a module kept plain (--no-rewrite): the
        # diagnostic names that module and how to add it, not "called from C".
        with open(os.path.join(self.dir, "plainloop.py"), "w") as f:
            f.write("def each(f, n):\n    out = []\n    for i in range(n):\n        out.append(f(i))\n"
                    "    return out\n")
        prog = os.path.join(self.dir, "main.py")
        with open(prog, "w") as f:
            f.write("import time\nimport plainloop\ndef work(i):\n    time.sleep(0.3)\n    return i\n"
                    "print(plainloop.each(work, 4))\n")
        r = self.run_stasis("run", "--no-rewrite", "plainloop", "--quota", "0.2", "--safe-point-timeout", "0.5",
                            "--snapshot", self.snap, prog)
        self.assertIn("could not suspend within 0.5 s", r.stderr)
        self.assertIn("each", r.stderr)
        self.assertIn("runs code that was not rewritten (module plainloop is not in the selection", r.stderr)
        self.assertNotIn("called from C", r.stderr)
        self.assertEqual(r.stdout, "[0, 1, 2, 3]\n")
        self.assertEqual(r.returncode, 104, r.stderr)  # asked to suspend, never could: SuspensionMissedError
        self.assertFalse(os.path.exists(self.snap))


class BadResume(StasisCase):
    def suspended(self):
        r = self.run_stasis("run", "--suspend-after", "30", "--snapshot", self.snap, self.prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        with open(self.snap, "rb") as f:
            return f.read()

    def assert_intact(self, before):
        with open(self.snap, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_object_snapshot_is_not_a_program(self):
        import stasis
        stasis.dump([1, 2], self.snap)
        r = self.run_stasis("resume", self.snap)
        self.assertEqual(r.returncode, 94)
        self.assertIn("stasis.load", r.stderr)

    def test_truncated_snapshot(self):
        data = self.suspended()
        with open(self.snap, "wb") as f:
            f.write(data[: len(data) // 2])
        r = self.run_stasis("resume", self.snap)
        self.assertEqual(r.returncode, 92, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_damaged_payload_anywhere(self):
        # A flipped byte in the compressed payload, near its start (where the program header
        # and its metadata are), in the middle, and near its end: always "corrupt", one line,
        # no program output, the file untouched.
        data = self.suspended()
        for at in (200, len(data) // 2, len(data) - 120):
            damaged = bytearray(data)
            damaged[at] ^= 0x5A
            with open(self.snap, "wb") as f:
                f.write(damaged)
            r = self.run_stasis("resume", self.snap)
            self.assertIn(r.returncode, (92, 93), (at, r.stderr))
            self.assertEqual(r.stdout, "", at)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, (at, r.stderr))
            self.assert_intact(bytes(damaged))

    def test_other_python_minor_version(self):
        sys.path.insert(0, os.path.join(HERE, "..", "format"))
        from snapfile import PY_HEXVERSION_AT, with_preamble_patch
        data = self.suspended()
        with open(self.snap, "wb") as f:
            f.write(with_preamble_patch(data, PY_HEXVERSION_AT, (0x030C00F0).to_bytes(4, "little")))
        r = self.run_stasis("resume", self.snap)
        self.assertEqual(r.returncode, 94, r.stderr)
        self.assertIn("CPython 3.12.x is needed", r.stderr)

    def test_program_modules_travel_in_the_snapshot(self):
        """A module of the program itself (under the script's directory) is captured by value:
        resuming needs no file of the program."""
        with open(os.path.join(self.dir, "mine.py"), "w") as f:
            f.write("def double(v):\n    return 2 * v\n")
        prog = os.path.join(self.dir, "uses_mine.py")
        with open(prog, "w") as f:
            f.write("import mine\nfor i in range(40):\n    print(mine.double(i))\n")
        r = self.run_stasis("run", "--suspend-after", "20", "--snapshot", self.snap, prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        os.remove(os.path.join(self.dir, "mine.py"))
        os.remove(prog)
        rest = self.run_stasis("resume", self.snap)
        self.assertEqual(rest.returncode, 0, rest.stderr)
        self.assertEqual((r.stdout + rest.stdout).split(), [str(2 * i) for i in range(40)])

    def test_missing_library_module(self):
        lib = tempfile.mkdtemp(prefix="stasis-lib-")
        self.addCleanup(shutil.rmtree, lib, True)
        with open(os.path.join(lib, "vanishing.py"), "w") as f:
            f.write("class Thing:\n    def __init__(self, v):\n        self.v = v\n")
        prog = os.path.join(self.dir, "uses_lib.py")
        with open(prog, "w") as f:
            f.write("import sys\nsys.path.append(%r)\nimport vanishing\nthings = []\n"
                    "for i in range(50):\n    things.append(vanishing.Thing(i))\n    print(i)\n" % lib)
        r = self.run_stasis("run", "--suspend-after", "20", "--snapshot", self.snap, prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        with open(self.snap, "rb") as f:
            before = f.read()
        shutil.rmtree(lib)
        r = self.run_stasis("resume", self.snap)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn("vanishing", r.stderr)
        self.assert_intact(before)



class ModuleMode(StasisCase):
    def test_dash_m_module_suspends_and_resumes(self):
        pkg = os.path.join(self.dir, "pkgx")
        os.makedirs(pkg)
        open(os.path.join(pkg, "__init__.py"), "w").close()
        shutil.copy(self.prog, os.path.join(pkg, "job.py"))
        r = self.run_stasis("run", "--suspend-after", "25", "--snapshot", self.snap, "-m", "pkgx.job", "40")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual(self.finish(r.stdout), self.expected(40))


class Debug(StasisCase):
    def test_debug_opens_pdb_at_the_suspension_point_every_time(self):
        r = self.run_stasis("run", "--suspend-after", "40", "--snapshot", self.snap, self.prog, "30")
        self.assertEqual(r.returncode, 75, r.stderr)
        done = len(r.stdout.splitlines())  # the loop index the program was in when suspended
        for _ in range(2):  # the snapshot is only read: both sessions start at the same point
            d = subprocess.run([STASIS, "debug", self.snap], input="p i\nc\n", cwd=self.dir, env=self.env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(d.returncode, 0, d.stderr)
            self.assertIn("(Pdb) %d" % done, d.stdout)
            self.assertIn("done", d.stdout)
        self.assertTrue(os.path.exists(self.snap))


class ChangedCode(StasisCase):
    def test_changed_library_code_is_refused_with_a_clear_error(self):
        lib = tempfile.mkdtemp(prefix="stasis-lib-")
        self.addCleanup(shutil.rmtree, lib, True)
        with open(os.path.join(lib, "mylib.py"), "w") as f:
            f.write("def apply_all(fn, items):\n    out = []\n    for x in items:\n"
                    "        out.append(fn(x))\n    return out\n")
        prog = os.path.join(self.dir, "prog.py")
        with open(prog, "w") as f:
            f.write("import sys\nsys.path.insert(0, %r)\nimport mylib\n"
                    "def sq(x):\n    print('sq', x)\n    return x * x\n"
                    "print(mylib.apply_all(sq, range(8)))\n" % lib)
        r = self.run_stasis("run", "--rewrite", "mylib", "--suspend-after", "12", "--snapshot", self.snap, prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        with open(self.snap, "rb") as f:
            before = f.read()
        with open(os.path.join(lib, "mylib.py"), "a") as f:
            f.write("\n")  # same code: still resumable
        ok = self.run_stasis("resume", self.snap)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        with open(self.snap, "wb") as f:
            f.write(before)
        with open(os.path.join(lib, "mylib.py"), "w") as f:
            f.write("def apply_all(fn, items):\n    out = [] ; extra = 1\n    for x in items:\n"
                    "        out.append(fn(x))\n    return out\n")
        r = self.run_stasis("resume", self.snap)
        self.assertEqual(r.returncode, 94, r.stderr)
        self.assertIn("the code of apply_all", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.stdout, "")


class Threads(StasisCase):
    def test_worker_pool_suspended_and_resumed_with_its_threads(self):
        prog = os.path.join(HERE, "..", "..", "samples", "worker_pool.py")
        plain = subprocess.run([PLAIN, prog], capture_output=True, text=True, timeout=300)
        r = self.run_stasis("run", "--suspend-after", "300", "--snapshot", self.snap, prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        out = self.finish(r.stdout)
        self.assertEqual(out, plain.stdout)

    def test_threads_under_a_short_quota_until_done(self):
        # Suspended wherever the quota falls: workers running, blocked in queue.get, finishing;
        # the main thread in put() or join(). Every round resumes all of them.
        # 5000 jobs take ~0.6 s plainly: the first quota always falls well before the end (with
        # the default 2000, a suspension that waited for a safe point ~0.2 s could miss it).
        prog = os.path.join(HERE, "..", "..", "samples", "worker_pool.py")
        plain = subprocess.run([PLAIN, prog, "5000"], capture_output=True, text=True, timeout=300)
        out, rounds = "", 0
        args = ["run", "--quota", "0.05", "--snapshot", self.snap, prog, "5000"]
        while rounds < 300:
            rounds += 1
            r = self.run_stasis(*args)
            out += r.stdout
            if r.returncode != 75:
                break
            args = ["resume", self.snap, "--quota", "0.05"]
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(out, plain.stdout)
        self.assertGreater(rounds, 1)

    def test_checkpoint_with_a_worker_thread(self):
        prog = os.path.join(self.dir, "ck_threads.py")
        with open(prog, "w") as f:
            f.write(textwrap.dedent("""
                import threading, queue, time, stasis
                q = queue.Queue()
                out = []
                def worker():
                    while True:
                        v = q.get()
                        if v is None:
                            return
                        out.append(v * 2)
                t = threading.Thread(target=worker, name="w")
                t.start()
                for i in range(5):
                    q.put(i)
                while len(out) < 5:
                    time.sleep(0.001)
                resumed = stasis.checkpoint("ck.snap")
                print("resumed" if resumed else "first", sorted(out), t.is_alive())
                for i in range(5, 8):
                    q.put(i)
                q.put(None)
                t.join()
                print("end", sorted(out), threading.active_count())
            """))
        first = self.run_stasis("run", prog)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertEqual(first.stdout, "first [0, 2, 4, 6, 8] True\nend [0, 2, 4, 6, 8, 10, 12, 14] 1\n")
        for _ in range(2):  # resumable as often as wanted, always from the same point
            again = self.run_stasis("resume", os.path.join(self.dir, "ck.snap"))
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(again.stdout, first.stdout.replace("first", "resumed"))

    def test_a_running_child_process_is_named_and_the_program_keeps_running(self):
        prog = os.path.join(self.dir, "child.py")
        with open(prog, "w") as f:
            f.write("import subprocess, time\np = subprocess.Popen(['sleep', '0.6'])\n"
                    "for i in range(20):\n    time.sleep(0.05)\np.wait()\nprint('done', p.returncode)\n")
        # The capture is tried again until --safe-point-timeout (the child lives 0.6 s); then the
        # program goes on, and its end says that the request was never honoured (104).
        r = self.run_stasis("run", "--suspend-after", "3", "--safe-point-timeout", "0.2", "--snapshot", self.snap,
                            prog)
        self.assertEqual((r.returncode, r.stdout), (104, "done 0\n"), r.stderr)
        self.assertIn("root['modules']['__main__']['p']: subprocess.Popen is not supported", r.stderr)
        self.assertIn("is still running", r.stderr)
        self.assertFalse(os.path.exists(self.snap))

    def test_a_thread_that_cannot_be_rebuilt_is_named_and_the_program_keeps_running(self):
        prog = os.path.join(self.dir, "raw_thread.py")
        with open(prog, "w") as f:
            f.write("import _thread, time\nstop = []\n_thread.start_new_thread(lambda: time.sleep(30), ())\n"
                    "for i in range(40):\n    time.sleep(0.01)\nprint('done')\n")
        r = self.run_stasis("run", "--suspend-after", "10", "--safe-point-timeout", "0.5",
                            "--snapshot", self.snap, prog)
        self.assertEqual(r.returncode, 104, r.stderr)  # the request was never honoured
        self.assertEqual(r.stdout, "done\n")
        self.assertIn("was not started by threading.Thread", r.stderr)
        self.assertIn("the program keeps running", r.stderr)
        self.assertFalse(os.path.exists(self.snap))


if __name__ == "__main__":
    unittest.main()

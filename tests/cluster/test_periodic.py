"""Periodic checkpoints (`--checkpoint-every`, `--keep`), `--resume-if-present` and several
`--signal`s: a program with threads, killed with SIGKILL at random moments, always resumes from
its newest complete checkpoint and ends with the uninterrupted run's output."""
import ctypes
import glob
import hashlib
import json
import os
import random
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

# Three threads: the main thread writes a line per step to result.txt (a buffered file: what it
# holds unwritten at a checkpoint must come back) and prints it; a worker hashes without pause
# (parks at safe points) and one sleeps between steps (blocked in C).
THREADED = textwrap.dedent("""
    import hashlib, sys, threading, time
    steps = int(sys.argv[1])
    results = {}
    def spin(name, rounds):
        h = name.encode()
        for i in range(rounds):
            h = hashlib.sha256(h).digest()
            if i % 2000 == 0:
                time.sleep(0.01)
        results[name] = h.hex()[:16]
    def nap(name, rounds):
        total = 0
        for i in range(rounds):
            time.sleep(0.004)
            total += i
        results[name] = total
    workers = [threading.Thread(target=spin, args=("spin", 1500000)), threading.Thread(target=nap, args=("nap", 2500))]
    for w in workers:
        w.start()
    out = open("result.txt", "w")
    acc = 0
    for i in range(steps):
        acc = (acc * 31 + i) % 1000003
        out.write(f"step {i} {acc}\\n")
        print(f"step {i} {acc}", flush=True)
        time.sleep(0.02)
    for w in workers:
        w.join()
    out.write(f"end {sorted(results.items())}\\n")
    out.close()
    print("done", acc, sorted(results.items()))
""")


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def become_subreaper():
    """Orphaned checkpoint writers of a killed run come to this process, which waits for them."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_orphans(timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def stitch(runs):
    """The output of a program killed and resumed, with what a resumed run does again (the steps
    after its checkpoint) taken once: each run continues from its first step line."""
    lines = []
    for text in runs:
        new = text.splitlines()
        steps = [l for l in new if l.startswith("step ")]
        if steps:
            first = int(steps[0].split()[1])
            lines = [l for l in lines if not (l.startswith("step ") and int(l.split()[1]) >= first)]
        lines += new
    return "\n".join(lines) + "\n"


class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stasis-periodic-")
        self.env = {**os.environ, "PYTHONHASHSEED": "7"}
        self.snap = os.path.join(self.dir, "job.snap")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def stasis(self, *args, timeout=120, env=None):
        return subprocess.run([STASIS, *args], cwd=self.dir, env=env or self.env, capture_output=True,
                              text=True, timeout=timeout)

    def plain(self, prog, *args):
        r = subprocess.run([PLAIN, prog, *args], cwd=self.dir, env=self.env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()


class KilledAtRandom(Case):
    def test_threads_checkpointed_every_0_2_s_killed_20_times(self):
        become_subreaper()
        prog = self.write("threaded.py", THREADED)
        expected = self.plain(prog, "700")
        expected_result = self.read("result.txt")
        os.unlink(os.path.join(self.dir, "result.txt"))
        log = os.path.join(self.dir, "checkpoints.jsonl")
        env = {**self.env, "STASIS_CHECKPOINT_LOG": log}
        rng = random.Random(int(os.environ.get("STASIS_TEST_SEED", "13")))
        command = [STASIS, "run", "--snapshot", self.snap, "--resume-if-present", "--checkpoint-every", "0.2",
                   prog, "700"]
        runs, kills, resumed, firsts = [], 0, 0, []
        for attempt in range(60):
            out_path = os.path.join(self.dir, f"out{attempt}")
            with open(out_path, "w") as out, open(out_path + ".err", "w") as err:
                p = subprocess.Popen(command, cwd=self.dir, env=env, stdout=out, stderr=err)
            killed = False
            if kills < 20:
                try:
                    p.wait(timeout=rng.uniform(0.3, 1.6))
                except subprocess.TimeoutExpired:
                    p.kill()
                    killed = True
            p.wait(timeout=300)
            reap_orphans()  # the killed run's writer dies with it (PDEATHSIG)
            runs.append(self.read(f"out{attempt}"))
            err_text = self.read(f"out{attempt}.err")
            self.assertNotIn("Traceback", err_text)
            self.assertNotIn("was not written", err_text)
            if f"from {self.snap}" in err_text:
                resumed += 1
            steps = [l for l in runs[-1].splitlines() if l.startswith("step ")]
            if steps and attempt:
                firsts.append(int(steps[0].split()[1]))
            if killed:
                kills += 1
                self.assertEqual(p.returncode, -signal.SIGKILL)
                if os.path.exists(self.snap):
                    # What a run killed at any moment leaves at PATH is a complete snapshot (the
                    # newest: checkpoints only ever replace it whole), and no partial file.
                    from stasis import _engine
                    header = _engine.payload_header(self.snap, verify=True)
                    self.assertEqual(header["kind"], "program")
                self.assertEqual(glob.glob(self.snap + ".ckpt-*"), [])
                continue
            self.assertEqual(p.returncode, 0, err_text)
            break
        else:
            self.fail("the program did not finish")
        self.assertGreaterEqual(kills, 20)
        self.assertGreaterEqual(resumed, 15, "most starts should resume a checkpoint")
        self.assertEqual(stitch(runs), expected)
        self.assertEqual(self.read("result.txt"), expected_result)
        self.assertEqual(glob.glob(self.snap + "*"), [], "with --resume-if-present a job that ended with 0 "
                         "leaves no snapshot behind: the same line starts it afresh")
        with open(log) as f:
            events = [json.loads(l) for l in f]
        written = [e for e in events if e["event"] == "written"]
        self.assertGreater(len(written), 20)
        for e in written:  # the program stood still for the freeze and the fork only
            self.assertLess(e["stopped_ms"], 1000)


class PeriodicOptions(Case):
    def test_keep_keeps_the_last_n_complete_checkpoints(self):
        prog = self.write("threaded.py", THREADED)
        p = subprocess.Popen([STASIS, "run", "--snapshot", self.snap, "--checkpoint-every", "0.15", "--keep", "3",
                              prog, "300"], cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not os.path.exists(self.snap + ".2"):
            time.sleep(0.05)
        time.sleep(0.3)
        p.kill()
        p.wait()
        from stasis import _engine
        kept = [self.snap, self.snap + ".1", self.snap + ".2"]
        times = []
        for path in kept:
            self.assertEqual(_engine.payload_header(path, verify=True)["kind"], "program", path)
            times.append(os.stat(path).st_mtime_ns)
        self.assertEqual(times, sorted(times, reverse=True))
        self.assertFalse(os.path.exists(self.snap + ".3"))
        # Three checkpoints, newest first; killed in the middle of a rotation, two adjacent names
        # may hold the same one for a moment (each name always holds a complete snapshot).
        self.assertGreaterEqual(len({hashlib.sha256(slurp(p)).hexdigest() for p in kept}), 2)
        # A damaged PATH: --resume-if-present takes the newest whole one, and says so.
        with open(self.snap, "rb") as f:
            half = f.read()[:os.path.getsize(self.snap) // 2]
        with open(self.snap + ".cut", "wb") as f:  # a file of its own (PATH.1 may be a link to PATH)
            f.write(half)
        os.replace(self.snap + ".cut", self.snap)
        r = self.stasis("run", "--snapshot", self.snap, "--resume-if-present", prog, "300", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{self.snap} is damaged", r.stderr)
        self.assertIn(f"resuming the older {self.snap}.1", r.stderr)
        self.assertTrue(r.stdout.endswith(self.plain(prog, "300").splitlines()[-1] + "\n"))

    def test_a_checkpoint_due_while_one_is_written_is_skipped(self):
        # A heap that takes a while to write, checkpoints asked for far more often.
        prog = self.write("big.py", textwrap.dedent("""
            import time
            heap = [{"k": i, "s": str(i) * 3} for i in range(400000)]
            t = time.monotonic()
            n = 0
            while time.monotonic() - t < 3:
                n += 1
            print("ok")
        """))
        log = os.path.join(self.dir, "log.jsonl")
        r = self.stasis("run", "--snapshot", self.snap, "--checkpoint-every", "0.02", prog,
                        env={**self.env, "STASIS_CHECKPOINT_LOG": log})
        self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)
        with open(log) as f:
            events = [json.loads(l) for l in f]
        written = [e for e in events if e["event"] == "written"]
        skipped = [e for e in events if e["event"] == "skipped"]
        self.assertGreater(len(written), 0)
        self.assertGreater(len(skipped), len(written))
        # Never two writers at once: each checkpoint starts after the previous one was collected.
        starts = [e for e in events if e["event"] in ("written", "failed", "dropped")]
        self.assertEqual(len({e["n"] for e in starts}), len(starts))
        for e in written:
            self.assertGreater(e["write_s"], 0.02)  # longer than the interval: the others were skipped

    def test_a_failed_writer_is_reported_and_the_program_goes_on(self):
        prog = self.write("child.py", textwrap.dedent("""
            import subprocess, time
            p = subprocess.Popen(["sleep", "30"])   # a running child cannot be in a snapshot
            for i in range(10):
                time.sleep(0.1)
            p.kill()
            print("done", p.wait())
        """))
        r = self.stasis("run", "--snapshot", self.snap, "--checkpoint-every", "0.3", prog)
        self.assertEqual((r.returncode, r.stdout), (0, "done -9\n"), r.stderr)
        self.assertIn(f"the checkpoint {self.snap} was not written", r.stderr)
        self.assertIn("the program goes on", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(glob.glob(self.snap + "*"), [])

    def test_a_child_that_ended_uncollected_keeps_its_status(self):
        # The writer is not the parent of the program's children: the status of one that has
        # ended (a zombie until the program polls) is read for it, not taken for 0.
        become_subreaper()
        prog = self.write("zombie.py", textwrap.dedent("""
            import subprocess, time
            p = subprocess.Popen(["sh", "-c", "exit 7"])
            for i in range(150):
                time.sleep(0.02)
                print(i, flush=True)
            print("status", p.poll())
        """))
        out_path = os.path.join(self.dir, "out")
        with open(out_path, "w") as o:
            p = subprocess.Popen([STASIS, "run", "--snapshot", self.snap, "--checkpoint-every", "0.2", prog],
                                 cwd=self.dir, env=self.env, stdout=o, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.read("out").count("\n") < 60:
            time.sleep(0.02)
        p.kill()
        p.wait()
        reap_orphans()
        r = self.stasis("resume", self.snap)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith("status 7\n"), r.stdout[-200:])

    def test_program_checkpoint_returns_before_the_writer_is_done_and_the_end_waits_for_it(self):
        # README: stasis.checkpoint(path) "returns once the writer is started; a program that ends
        # waits for it". A heap that takes a while to write: the call returns in a fraction of the
        # writer's time, and the file is complete when the program has ended.
        prog = self.write("ck.py", textwrap.dedent("""
            import sys, time, stasis
            heap = [{"k": i, "s": str(i) * 3} for i in range(400000)]
            t = time.monotonic()
            resumed = stasis.checkpoint("ck.snap")
            took = time.monotonic() - t
            if resumed:
                print("resumed", len(heap))
            else:
                print("took", took, file=sys.stderr)
                print("first", len(heap))
        """))
        log = os.path.join(self.dir, "log.jsonl")
        ck = os.path.join(self.dir, "ck.snap")
        r = self.stasis("run", prog, env={**self.env, "STASIS_CHECKPOINT_LOG": log})
        self.assertEqual((r.returncode, r.stdout), (0, "first 400000\n"), r.stderr)
        took = float(r.stderr.split("took ", 1)[1].split()[0])
        with open(log) as f:
            written = [e for e in map(json.loads, f) if e["event"] == "written"]
        self.assertEqual([e["path"] for e in written], [ck])
        self.assertLess(took, written[0]["write_s"] / 2, "stasis.checkpoint() waited for the write")
        from stasis import _engine
        self.assertEqual(_engine.payload_header(ck, verify=True)["kind"], "program")
        r = self.stasis("resume", ck)
        self.assertEqual((r.returncode, r.stdout), (0, "resumed 400000\n"), r.stderr)

    def test_resume_takes_checkpoint_every_and_keep_too(self):
        # `stasis resume SNAPSHOT --checkpoint-every S --keep N` (README's command line): the
        # resumed program checkpoints into its --snapshot path and keeps the previous ones.
        become_subreaper()
        prog = self.write("counter.py", ResumeIfPresent.COUNTER)
        r = self.stasis("run", "--snapshot", self.snap, "--quota", "0.5", prog, "400")
        self.assertEqual(r.returncode, 75, r.stderr)
        out = r.stdout
        ck = os.path.join(self.dir, "ck.snap")
        log = os.path.join(self.dir, "log.jsonl")
        out_path = os.path.join(self.dir, "out")
        with open(out_path, "w") as o:
            p = subprocess.Popen([STASIS, "resume", self.snap, "--snapshot", ck, "--checkpoint-every", "0.15",
                                  "--keep", "2"], cwd=self.dir, env={**self.env, "STASIS_CHECKPOINT_LOG": log},
                                 stdout=o, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not os.path.exists(ck + ".1"):
            time.sleep(0.02)
        p.kill()
        p.wait()
        reap_orphans()
        self.assertFalse(os.path.exists(ck + ".2"))
        from stasis import _engine
        for path in (ck, ck + ".1"):
            self.assertEqual(_engine.payload_header(path, verify=True)["kind"], "program", path)
        with open(log) as f:
            self.assertTrue(all(json.loads(l)["path"] == ck for l in f if '"written"' in l))
        r = self.stasis("resume", ck)
        self.assertEqual(r.returncode, 0, r.stderr)
        # What the run after the checkpoint printed is printed again by its resume: by line number.
        lines = {}
        for text in (out, self.read("out"), r.stdout):
            for line in text.splitlines():
                lines[line.split()[0]] = line
        self.assertEqual("".join(l + "\n" for l in lines.values()), self.plain(prog, "400"))

    def test_huge_pages_are_asked_for_unless_turned_off(self):
        prog = self.write("heap.py", "import time\nheap = [str(i) for i in range(300000)]\ntime.sleep(1.5)\n")
        counts = {}
        for setting in ("1", "0"):
            log = os.path.join(self.dir, f"log{setting}.jsonl")
            r = self.stasis("run", "--snapshot", self.snap, "--checkpoint-every", "0.3", prog,
                            env={**self.env, "STASIS_CHECKPOINT_LOG": log, "STASIS_CHECKPOINT_HUGEPAGES": setting})
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(log) as f:
                events = [json.loads(l) for l in f]
            self.assertTrue(any(e["event"] == "written" for e in events))
            counts[setting] = [e for e in events if e["event"] == "hugepages"]
        self.assertGreater(len(counts["1"]), 0)  # a pass before the checkpoints (what it did depends
        self.assertEqual(counts["0"], [])        # on the kernel: "unsupported" where it cannot)

    def test_bad_values_are_usage_errors(self):
        prog = self.write("p.py", "print(1)\n")
        for args in (["--checkpoint-every", "0"], ["--checkpoint-every", "x"], ["--keep", "2"],
                     ["--checkpoint-every", "1", "--keep", "0"], ["--checkpoint-every", "1", "--suspend-after", "3"],
                     ["--signal", "NOSUCH"]):
            with self.subTest(args=args):
                r = self.stasis("run", *args, prog)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)  # the error and the hint, one line


class ResumeIfPresent(Case):
    COUNTER = textwrap.dedent("""
        import sys, time
        total = 0
        for i in range(int(sys.argv[1])):
            total += i
            print(i, total, flush=True)
            time.sleep(0.01)
        print("done", total)
    """)

    def test_starts_then_resumes_then_refuses_another_programs_snapshot(self):
        prog = self.write("counter.py", self.COUNTER)
        line = ["run", "--snapshot", self.snap, "--resume-if-present", "--quota", "0.5", prog, "150"]
        first = self.stasis(*line)
        self.assertEqual(first.returncode, 75, first.stderr)
        self.assertIn(f"no snapshot at {self.snap}: starting {prog} 150", first.stderr)
        out = first.stdout
        for _ in range(20):
            again = self.stasis(*line)
            self.assertIn(f"resuming {prog} 150 from {self.snap}", again.stderr)
            out += again.stdout
            if again.returncode != 75:
                break
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(out, self.plain(prog, "150"))
        # The snapshot of `counter.py 150` is not resumed as `counter.py 151`: refused, kept.
        suspended = self.stasis(*line)
        self.assertEqual(suspended.returncode, 75)
        before = slurp(self.snap)
        other = self.stasis("run", "--snapshot", self.snap, "--resume-if-present", prog, "151")
        self.assertEqual(other.returncode, 94, other.stderr)
        self.assertIn(f"is a snapshot of `{prog} 150`, not of `{prog} 151`", other.stderr)
        self.assertEqual(len(other.stderr.strip().splitlines()), 1, other.stderr)
        self.assertEqual(slurp(self.snap), before)
        # Nor is an object graph.
        import stasis
        stasis.dump([1, 2], self.snap)
        r = self.stasis("run", "--snapshot", self.snap, "--resume-if-present", prog, "150")
        self.assertEqual(r.returncode, 94, r.stderr)
        self.assertIn("not a suspended program", r.stderr)


class SeveralSignals(Case):
    def test_term_and_usr1_both_suspend(self):
        prog = self.write("counter.py", ResumeIfPresent.COUNTER)
        expected = self.plain(prog, "400")
        out = ""
        line = ["run", "--snapshot", self.snap, "--resume-if-present", "--signal", "USR1", "--signal", "TERM",
                prog, "400"]
        for sig in (signal.SIGTERM, signal.SIGUSR1, None):
            out_path = os.path.join(self.dir, f"out-{sig}")
            with open(out_path, "w") as o, open(out_path + ".err", "w") as e:
                p = subprocess.Popen([STASIS, *line], cwd=self.dir, env=self.env, stdout=o, stderr=e)
            if sig is not None:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and os.path.getsize(out_path) < 200:
                    time.sleep(0.01)
                p.send_signal(sig)
            p.wait(timeout=120)
            self.assertEqual(p.returncode, 0 if sig is None else 75, self.read(f"out-{sig}.err"))
            out += self.read(f"out-{sig}")
            if sig is not None:  # the snapshot says which signal asked (a time limit, a preemption)
                r = self.stasis("inspect", "--json", self.snap)
                self.assertEqual(json.loads(r.stdout)["suspension"]["trigger"], f"signal {sig.name}", r.stderr)
        self.assertEqual(out, expected)

    def test_a_signal_while_stasis_starts_suspends_the_program(self):
        # A requeued batch job may get its time-limit warning while it is still resuming: the signal
        # must suspend the program once it runs again, not kill the process with USR1's default.
        prog = self.write("heap.py", textwrap.dedent("""
            import time
            heap = [str(i) * 4 for i in range(600000)]
            for i in range(300):
                time.sleep(0.01)
                print(i, flush=True)
        """))
        r = self.stasis("run", "--snapshot", self.snap, "--quota", "1.5", prog)
        self.assertEqual(r.returncode, 75, r.stderr)
        out = r.stdout
        # Started with another hash seed, `stasis resume` executes itself again with the snapshot's
        # (7): the signal comes while the new process starts, before the snapshot is loaded.
        p = subprocess.Popen([STASIS, "resume", self.snap], cwd=self.dir, env={**self.env, "PYTHONHASHSEED": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{p.pid}/environ", "rb") as f:
                    if b"PYTHONHASHSEED=7\0" in f.read():
                        break
            except OSError:
                pass
            time.sleep(0.001)
        p.send_signal(signal.SIGUSR1)
        more, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 75, err)
        self.assertIn("suspended into", err)
        r = self.stasis("inspect", self.snap)
        self.assertIn("suspended  by signal SIGUSR1", r.stdout)  # recorded while Stasis started
        r = self.stasis("resume", self.snap)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(out + more + r.stdout, self.plain(prog))

    def test_a_child_the_program_forks_does_not_suspend(self):
        # Slurm signals every process of a job: the program's own child dies of SIGTERM as it would
        # without Stasis, and only the program writes PATH.
        prog = self.write("forks.py", textwrap.dedent("""
            import os, time
            child = os.fork()
            if child == 0:
                time.sleep(30)
                os._exit(0)
            print("parent", flush=True)
            for i in range(3000):
                time.sleep(0.01)
            print("done")
        """))
        out_path = os.path.join(self.dir, "out")
        with open(out_path, "w") as o:
            p = subprocess.Popen([STASIS, "run", "--snapshot", self.snap, "--signal", "USR1,TERM", prog],
                                 cwd=self.dir, env=self.env, stdout=o, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and os.path.getsize(out_path) == 0:
            time.sleep(0.01)
        children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        self.assertEqual(len(children), 1)
        os.killpg(p.pid, signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 75, err)
        self.assertEqual(err.count("suspended into"), 1, err)
        def running(pid):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] != "Z"
            except OSError:
                return False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and running(children[0]):
            time.sleep(0.05)
        self.assertFalse(running(children[0]), "the program's child ended by SIGTERM")


class JobScript(Case):
    """samples/slurm/job.sh outside Slurm (a stand-in `scontrol` records what it is asked): the
    time-limit warning (USR1 to the script) suspends the program and the script requeues the job;
    with `$SNAP.stop` present (README, "Cancelling") it does not requeue and ends with 75."""
    JOB = os.path.join(HERE, "..", "..", "samples", "slurm", "job.sh")

    def run_job(self, stop):
        prog = self.write("counter.py", ResumeIfPresent.COUNTER)
        bin_dir = os.path.join(self.dir, "bin")
        os.mkdir(bin_dir)
        calls = os.path.join(self.dir, "scontrol.calls")
        self.write("bin/scontrol", f'#!/bin/sh\necho "$@" >> {calls}\n')
        os.chmod(os.path.join(bin_dir, "scontrol"), 0o755)
        if stop:
            self.write("job.snap.stop", "")
        env = {**self.env, "PATH": bin_dir + os.pathsep + self.env.get("PATH", ""), "STASIS": STASIS,
               "SNAP": self.snap, "PROGRAM": f"{prog} 3000", "SLURM_JOB_ID": "4242", "SLURM_CONF": "/nonexistent"}
        out_path = os.path.join(self.dir, "job.out")
        with open(out_path, "w") as o:
            p = subprocess.Popen(["bash", self.JOB], cwd=self.dir, env=env, stdout=o, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.read("job.out").count("\n") < 20:
            time.sleep(0.02)
        p.send_signal(signal.SIGUSR1)
        p.wait(timeout=120)
        log = self.read("job.out")
        self.assertIn("job 4242: USR1 (time limit near): suspending", log)
        self.assertEqual(_engine_kind(self.snap), "program")
        return p.returncode, log, self.read("scontrol.calls") if os.path.exists(calls) else ""

    def test_time_limit_warning_suspends_and_requeues(self):
        status, log, calls = self.run_job(stop=False)
        self.assertEqual(status, 0, log)
        self.assertIn(f"job 4242: suspended into {self.snap}; requeued", log)
        self.assertEqual(calls, "requeue 4242\n")

    def test_stop_file_ends_the_job_without_requeue(self):
        status, log, calls = self.run_job(stop=True)
        self.assertEqual(status, 75, log)
        self.assertIn("job 4242: ended with status 75", log)
        self.assertNotIn("requeued", log)
        self.assertEqual(calls, "")


def _engine_kind(path):
    from stasis import _engine
    return _engine.payload_header(path, verify=True)["kind"]


if __name__ == "__main__":
    unittest.main()

"""Batch jobs on a real single-node Slurm cluster (scripts/slurm-cluster.sh: Debian's slurm-wlm and
munge, slurmctld + slurmd on this machine) running samples/slurm/job.sh: a job that hits its time
limit and is requeued until done, a job preempted by a higher-priority one, a job whose processes
are all killed with SIGKILL (a lost node) and is requeued. In each case the job's results equal an
uninterrupted run's and its log shows every start (SLURM_RESTART_COUNT).

Skipped, with the reason printed, only where Slurm cannot start on this machine."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from tests.plain_python import PLAIN

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("STASIS_SOURCE_DIR") or os.path.join(HERE, "..", "..")
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(SOURCE, "build")
STASIS = os.path.abspath(os.path.join(BUILD, "bin", "stasis"))
CLUSTER = os.path.abspath(os.path.join(SOURCE, "scripts", "slurm-cluster.sh"))
JOB = os.path.abspath(os.path.join(SOURCE, "samples", "slurm", "job.sh"))
COMPUTATION = os.path.abspath(os.path.join(SOURCE, "samples", "slurm", "long_computation.py"))

_cluster_dir = None
_env = None


def setUpModule():
    global _cluster_dir, _env
    _cluster_dir = tempfile.mkdtemp(prefix="stasis-slurm-")
    r = subprocess.run([CLUSTER, "start", _cluster_dir], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        reason = (r.stderr.strip().splitlines() or ["slurm-cluster.sh failed"])[-1]
        subprocess.run([CLUSTER, "stop", _cluster_dir], capture_output=True, timeout=60)
        shutil.rmtree(_cluster_dir, ignore_errors=True)
        print(f"\nSKIPPED: Slurm cannot start here: {reason}", file=sys.stderr)
        raise unittest.SkipTest(f"Slurm cannot start here: {reason}")
    _env = {**os.environ, "SLURM_CONF": os.path.join(_cluster_dir, "slurm.conf"), "STASIS": STASIS,
            "PYTHONHASHSEED": "5"}


def tearDownModule():
    if _cluster_dir:
        subprocess.run([CLUSTER, "stop", _cluster_dir], capture_output=True, timeout=120)
        shutil.rmtree(_cluster_dir, ignore_errors=True)


class SlurmJob(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stasis-job-", dir=_cluster_dir)
        self.result = os.path.join(self.dir, "primes.txt")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_slurm(self, *args, check=True):
        r = subprocess.run(list(args), cwd=self.dir, env=_env, capture_output=True, text=True, timeout=60)
        if check:
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        return r.stdout

    def submit(self, computation_args, *sbatch_args, every=600):
        env = {**_env, "EVERY": str(every),
               "PROGRAM": f"{COMPUTATION} {computation_args} --out {self.result}"}
        r = subprocess.run(["sbatch", "--parsable", f"--chdir={self.dir}",
                            f"--output={self.dir}/job-%j.out", *sbatch_args, JOB],
                           cwd=self.dir, env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip().split(";")[0]

    def state(self, job):
        out = self.run_slurm("scontrol", "show", "job", job, "-o")
        fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
        return fields.get("JobState"), int(fields.get("Restarts", "0"))

    def wait_state(self, job, states, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, restarts = self.state(job)
            if state in states:
                return state, restarts
            time.sleep(0.5)
        self.fail(f"job {job} not in {states} within {timeout} s (now {self.state(job)}); log:\n{self.log(job)}")

    def log(self, job):
        try:
            with open(os.path.join(self.dir, f"job-{job}.out")) as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, job, text, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(job):
                return
            time.sleep(0.2)
        self.fail(f"job {job}: {text!r} not in its log within {timeout} s:\n{self.log(job)}")

    def plain(self, computation_args):
        out = os.path.join(self.dir, "plain.txt")
        r = subprocess.run([PLAIN, COMPUTATION, *computation_args.split(), "--out", out], capture_output=True,
                           text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            return r.stdout, f.read()

    def program_lines(self, log):
        return "".join(l + "\n" for l in log.splitlines() if l.startswith(("segment ", "done:")))

    def assert_results(self, job, computation_args, stitched=False):
        stdout, result = self.plain(computation_args)
        with open(self.result) as f:
            self.assertEqual(f.read(), result, "the results file differs from an uninterrupted run's")
        log = self.log(job)
        if stitched:  # resumed from a checkpoint: the segments after it were printed twice
            self.assertEqual(stitch(self.program_lines(log)), stdout)
        else:         # suspended each time: every line printed once
            self.assertEqual(self.program_lines(log), stdout)
        self.assertIn("ended with status 0", log)
        self.assertEqual([], [p for p in os.listdir(self.dir) if ".snap" in p], "a finished job leaves no snapshot")
        return log

    # --- the tests -------------------------------------------------------------------------------

    def test_time_limit_twice_then_done(self):
        # One minute per run; Slurm's warning (USR1, 59 s before the limit) comes on its 30 s timer,
        # so a run computes at most ~31 s: 65 s of work takes three runs or more.
        args = "--segments 650 --size 20000 --pace 0.1"
        job = self.submit(args, "--time=1", "--signal=B:USR1@59", every=600)
        state, restarts = self.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=400)
        log = self.log(job)
        self.assertEqual(state, "COMPLETED", log)
        self.assertGreaterEqual(restarts, 2, log)
        self.assertGreaterEqual(log.count("USR1 (time limit near): suspending"), 2, log)
        self.assertGreaterEqual(log.count("stasis: suspended into"), 2, log)
        for n in range(1, restarts + 1):
            self.assertIn(f"(SLURM_RESTART_COUNT={n})", log)
        self.assertEqual(log.count("stasis: resuming"), restarts, log)
        self.assert_results(job, args)

    def test_preempted_by_a_higher_priority_job_then_done(self):
        args = "--segments 150 --size 20000 --pace 0.1"
        job = self.submit(args, every=600)
        self.wait_log(job, "segment 40 of")
        urgent = self.run_slurm("sbatch", "--parsable", "-p", "high", "--exclusive", f"--chdir={self.dir}",
                                f"--output={self.dir}/urgent-%j.out", "--wrap", "echo urgent; sleep 3").strip()
        self.wait_state(urgent, ("COMPLETED",), timeout=120)
        state, restarts = self.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED"), timeout=300)
        log = self.log(job)
        self.assertEqual((state, restarts), ("COMPLETED", 1), log)
        self.assertIn("DUE TO PREEMPTION", log)
        self.assertIn("TERM (preemption or cancel): suspending", log)
        self.assertIn("(SLURM_RESTART_COUNT=1)", log)
        self.assertIn("stasis: resuming", log)
        self.assert_results(job, args)

    def test_killed_without_warning_resumes_from_the_last_periodic_checkpoint(self):
        # A node that dies takes every process of the job with it, without a signal to react to.
        args = "--segments 150 --size 20000 --pace 0.1"
        job = self.submit(args, every=1)
        self.wait_log(job, "segment 60 of")
        snap = os.path.join(self.dir, f"stasis-job-{job}.snap")
        self.assertTrue(os.path.exists(snap), "a periodic checkpoint was written")
        pids = [l.split()[0] for l in self.run_slurm("scontrol", "listpids", job).splitlines()[1:] if l.strip()]
        everything = set(pids)
        for pid in pids:  # and their descendants (the checkpoint writer)
            everything.update(descendants(pid))
        for pid in everything:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        self.wait_state(job, ("FAILED", "NODE_FAIL"), timeout=120)
        printed = self.program_lines(self.log(job))
        self.run_slurm("scontrol", "requeue", job)   # what Slurm does itself after a node failure
        state, restarts = self.wait_state(job, ("COMPLETED", "FAILED", "CANCELLED"), timeout=300)
        log = self.log(job)
        self.assertEqual((state, restarts), ("COMPLETED", 1), log)
        self.assertIn("(SLURM_RESTART_COUNT=1)", log)
        self.assertIn(f"stasis: resuming {COMPUTATION} {args} --out {self.result} from {snap}", log)
        resumed_at = int(self.program_lines(log)[len(printed):].split()[1])
        self.assertGreater(resumed_at, 0, "resumed from a checkpoint, not from the start")
        self.assert_results(job, args, stitched=True)


def descendants(pid):
    out = set()
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        out.add(child)
        out.update(descendants(child))
    return out


def stitch(text):
    """Output of a run resumed from a checkpoint, what was printed again taken once."""
    lines = []
    for line in text.splitlines():
        if line.startswith("segment "):
            k = int(line.split()[1].rstrip(":"))
            lines = [l for l in lines if not (l.startswith("segment ") and int(l.split()[1].rstrip(":")) >= k)]
        lines.append(line)
    return "".join(l + "\n" for l in lines)


if __name__ == "__main__":
    unittest.main()

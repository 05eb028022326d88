"""The oracle of whole-program suspension: every corpus program in tests/suspend/programs is run
(a) plainly by the configured interpreter (tests/plain_python.py) and (b) under Stasis, suspended at
its k-th safe point, resumed in a fresh process and suspended again after a growing number of safe
points, until it finishes.
The concatenated stdout of (b) must equal (a) byte for byte, for several k."""
import os
import subprocess
import sys
import tempfile
import unittest

from tests.plain_python import PLAIN

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "programs")
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")
SEED = "4242"
KS = (1, 4, 29)
MAX_ROUNDS = 40

# Programs whose kind of state is not suspendable yet: the reason is printed with the skip.
NOT_YET: dict = {}
HELPERS = {"helper_mod.py"}


def env():
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    e["PYTHONHASHSEED"] = SEED
    return e


def plain_output(program):
    r = subprocess.run([PLAIN, program], cwd=PROGRAMS, env=env(), capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def suspended_output(program, k, snapshot):
    """Runs `program` suspending at safe point k, then resumes with a doubling step until exit 0.
    Returns (stdout bytes, rounds, exit status, stderr of all rounds)."""
    out, err = b"", b""
    cmd = [STASIS, "run", "--suspend-after", str(k), "--snapshot", snapshot, program]
    step = k
    for rounds in range(1, MAX_ROUNDS + 1):
        r = subprocess.run(cmd, cwd=PROGRAMS, env=env(), capture_output=True, timeout=300)
        out += r.stdout
        err += r.stderr  # of every round: no round may report a suspension that failed
        if r.returncode != 75:
            return out, rounds, r.returncode, err.decode(errors="replace")
        step = max(step * 2, 8)
        cmd = [STASIS, "resume", snapshot, "--suspend-after", str(step)]
    raise AssertionError(f"{program} did not finish in {MAX_ROUNDS} rounds")


class Corpus(unittest.TestCase):
    maxDiff = None

    def test_every_program_at_several_k(self):
        programs = sorted(p for p in os.listdir(PROGRAMS) if p.endswith(".py") and p not in HELPERS)
        self.assertGreaterEqual(len(programs), 30)
        skipped = []
        with tempfile.TemporaryDirectory() as tmp:
            for program in programs:
                if program in NOT_YET:
                    skipped.append(f"{program}: {NOT_YET[program]}")
                    continue
                expected = plain_output(program)
                for k in KS:
                    with self.subTest(program=program, k=k):
                        snap = os.path.join(tmp, f"{program}.{k}.snap")
                        out, rounds, rc, err = suspended_output(program, k, snap)
                        self.assertEqual(rc, 0, f"{program} k={k} round {rounds}: exit {rc}\n{err}")
                        self.assertNotIn("could not suspend", err)
                        self.assertNotIn("cannot suspend", err)
                        self.assertEqual(out.decode(), expected.decode(), f"{program} k={k}")
                        self.assertGreater(rounds, 1, f"{program} k={k} was never suspended\n{err}")
        if skipped:
            sys.stderr.write("not yet suspendable (skipped):\n  " + "\n  ".join(skipped) + "\n")


if __name__ == "__main__":
    unittest.main()

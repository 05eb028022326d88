"""What real programs hold (issue 14): one program per kind of object in
tests/suspend/real_programs — numpy arrays and memory maps, pandas frames, sqlite3 connections and cursors, files
and csv readers being iterated, re.Match, json's scanner, __getnewargs_ex__ with keywords, a
finished child's unread pipe output, lru_cache contents, a handler the program registers itself.
Each is run plainly and under Stasis, suspended while the objects are alive at several points and
resumed in fresh processes until it finishes; stdout must be identical, and no round may report a
suspension that failed. Every run has a working directory of its own (the programs write files
there). Programs whose package is missing are skipped with the reason printed."""
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "real_programs")
BUILD = os.environ.get("STASIS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
STASIS = os.path.join(BUILD, "bin", "stasis")
PYTHON = os.path.join(BUILD, "bin", "python")  # the same interpreter, with stasis importable
SEED = "4242"
KS = (1, 5, 23)
MAX_ROUNDS = 60
NEEDS = {"numpy_arrays.py": "numpy", "pandas_frames.py": "pandas"}


def env():
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    e["PYTHONHASHSEED"] = SEED
    return e


def plain_output(program, cwd):
    r = subprocess.run([PYTHON, os.path.join(PROGRAMS, program)], cwd=cwd, env=env(),
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def suspended_output(program, k, cwd):
    out, err = b"", b""
    snapshot = os.path.join(cwd, "program.snap")
    cmd = [STASIS, "run", "--suspend-after", str(k), "--snapshot", snapshot, os.path.join(PROGRAMS, program)]
    step = k
    for rounds in range(1, MAX_ROUNDS + 1):
        r = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, timeout=300)
        out += r.stdout
        err += r.stderr
        if r.returncode != 75:
            return out, rounds, r.returncode, err.decode(errors="replace")
        step = max(step * 2, 8)
        cmd = [STASIS, "resume", snapshot, "--suspend-after", str(step)]
    raise AssertionError(f"{program} did not finish in {MAX_ROUNDS} rounds")


class RealObjects(unittest.TestCase):
    maxDiff = None

    def run_program(self, program):
        need = NEEDS.get(program)
        if need and importlib.util.find_spec(need) is None:
            sys.stderr.write(f"{program}: skipped, {need} is not installed (apt install python3-{need})\n")
            self.skipTest(f"{need} is not installed")
        with tempfile.TemporaryDirectory() as cwd:
            expected = plain_output(program, cwd)
        for k in KS:
            with self.subTest(program=program, k=k), tempfile.TemporaryDirectory() as cwd:
                out, rounds, rc, err = suspended_output(program, k, cwd)
                self.assertEqual(rc, 0, f"{program} k={k} round {rounds}: exit {rc}\n{err}")
                self.assertNotIn("cannot suspend", err)
                self.assertNotIn("could not suspend", err)
                self.assertEqual(out.decode(), expected.decode(), f"{program} k={k}")
                self.assertGreater(rounds, 1, f"{program} k={k} was never suspended\n{err}")

    def test_every_program_is_here(self):
        programs = sorted(p for p in os.listdir(PROGRAMS) if p.endswith(".py"))
        tested = sorted(name[len("test_"):] + ".py" for name in dir(self) if name.startswith("test_")
                        and name != "test_every_program_is_here")
        self.assertEqual(programs, tested)

    def test_numpy_arrays(self):
        self.run_program("numpy_arrays.py")

    def test_pandas_frames(self):
        self.run_program("pandas_frames.py")

    def test_sqlite_memory(self):
        self.run_program("sqlite_memory.py")

    def test_sqlite_file(self):
        self.run_program("sqlite_file.py")

    def test_text_and_csv(self):
        self.run_program("text_and_csv.py")

    def test_json_and_newobj(self):
        self.run_program("json_and_newobj.py")

    def test_subprocess_pipes(self):
        self.run_program("subprocess_pipes.py")

    def test_lru_cache_state(self):
        self.run_program("lru_cache_state.py")

    def test_own_handler(self):
        self.run_program("own_handler.py")


class NewcomerNumpyJob(unittest.TestCase):
    """samples/numpy_heat.py, as the README tells a newcomer to run it: `stasis run --quota`, then
    `stasis resume --quota` while the status is 75, with no PYTHONPATH or other set-up (numpy is
    Debian's python3-numpy); the output equals a plain run of the same interpreter."""

    def test_sample_runs_under_a_quota_chain_without_set_up(self):
        if importlib.util.find_spec("numpy") is None:
            sys.stderr.write("numpy_heat.py: skipped, numpy is not installed (apt install python3-numpy)\n")
            self.skipTest("numpy is not installed")
        sample = os.path.join(HERE, "..", "..", "samples", "numpy_heat.py")
        with tempfile.TemporaryDirectory() as cwd:
            plain = subprocess.run([PYTHON, sample], cwd=cwd, env=env(), capture_output=True,
                                   timeout=300)
            self.assertEqual(plain.returncode, 0, plain.stderr.decode())
            cmd = [STASIS, "run", "--quota", "0.3", sample]
            out, err = b"", b""
            for rounds in range(1, MAX_ROUNDS + 1):
                r = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, timeout=300)
                out += r.stdout
                err += r.stderr
                if r.returncode != 75:
                    break
                cmd = [STASIS, "resume", "--quota", "0.3", os.path.join(cwd, "numpy_heat.snap")]
            self.assertEqual(r.returncode, 0, err.decode(errors="replace"))
            self.assertGreater(rounds, 1, "never suspended: the quota did not bite\n" + err.decode())
            self.assertEqual(out.decode(), plain.stdout.decode())


if __name__ == "__main__":
    unittest.main()

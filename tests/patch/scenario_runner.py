"""Data-driven patch scenarios, written the way an outside tester writes them from README.md alone:
each directory under tests/patch/scenarios/<group>/<name>/ holds a small program (job.py and any
modules it imports), the user's edits (fix.py, update.py, ...) and scenario.toml, which lists the
commands a user types and what each must give. The whole directory is copied to a fresh temporary
directory, the steps run in order (no temporary snapshot file may be left behind), and the stdout of the steps marked `collect` (default: `run` and
`resume`), joined, must equal byte for byte the stdout of a plain python3.11 run of `expect` (the
fixed program, or a program that shows what old-then-new code prints).

scenario.toml:

    about = "what it checks"
    expect = "expected.py"            # plain run whose stdout the collected stdout must equal
    expect_rc = 0                     # (optional) that plain run's exit status

    [[step]]
    stasis = ["run", "--snapshot-on-crash", "job.py"]     # or python = [...]: a plain python3.11 run
    rc = 1                            # exit status (default 0)
    collect = true                    # add this step's stdout to the compared output
    stdin = "..."                     # piped to the command
    like_plain = "job.py"             # stdout, stderr (without Stasis's own "stasis: " lines) and exit
                                      # status equal to a plain run of that file (a crash ends as it would)
    stdout_has = ["..."]              # substrings ({dir} = the scenario's directory)
    stdout_lacks = ["..."]
    stderr_has = ["..."]
    stderr_lacks = ["..."]
    stderr_ends = "..."               # last line of stderr, stripped
    stderr_lines = 1                  # number of lines of stderr
    same_stdout_as = 2                # stdout identical to step 2's (1-based)
    same_stderr_as = 2
    same_traceback_as = 1             # stderr without Stasis's "stasis: " lines equal to step 1's

    [[step]]
    copy = ["fix.py", "job.py"]       # the user's edit: fix.py replaces job.py
    [[step]]
    remember = "job.snap"             # its bytes now ...
    [[step]]
    unchanged = "job.snap"            # ... and here must be the same; absent = "must not exist"
    [[step]]
    exists = "job.crash.snap"         # (or missing = "...")
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
import unittest
from typing import Any, Dict, List

from tests.patch.support import PLAIN, STASIS

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
TIMEOUT = 120


class Scenario:
    def __init__(self, directory: str):
        self.source = directory
        self.name = os.path.basename(directory)
        with open(os.path.join(directory, "scenario.toml"), "rb") as f:
            self.spec = tomllib.load(f)


def scenarios(group: str) -> List[Scenario]:
    root = os.path.join(HERE, group)
    return [Scenario(os.path.join(root, d)) for d in sorted(os.listdir(root))
            if os.path.exists(os.path.join(root, d, "scenario.toml"))]


def _run(argv: List[str], cwd: str, env: Dict[str, str], stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, input=stdin.encode(), capture_output=True, timeout=TIMEOUT)


def play(test: unittest.TestCase, scenario: Scenario) -> None:
    work = tempfile.mkdtemp(prefix=f"stasis-scenario-{scenario.name}-")
    try:
        _play(test, scenario, os.path.join(work, "s"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _play(test: unittest.TestCase, scenario: Scenario, d: str) -> None:
    shutil.copytree(scenario.source, d)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STASIS_KEY_FILE")}
    env["PYTHONHASHSEED"] = "1234"
    sub = (lambda s: s.replace("{dir}", d))
    collected: List[str] = []
    results: List[Any] = []
    remembered: Dict[str, bytes] = {}
    for n, step in enumerate(scenario.spec.get("step", []), 1):
        where = f"{scenario.name} step {n} {step}"
        results.append(None)
        if "copy" in step:
            src, dst = step["copy"]
            os.makedirs(os.path.dirname(os.path.join(d, dst)) or d, exist_ok=True)
            shutil.copyfile(os.path.join(d, src), os.path.join(d, dst))
            continue
        if "remember" in step:
            with open(os.path.join(d, step["remember"]), "rb") as f:
                remembered[step["remember"]] = f.read()
            continue
        if "unchanged" in step:
            with open(os.path.join(d, step["unchanged"]), "rb") as f:
                test.assertEqual(f.read(), remembered[step["unchanged"]], f"{where}: the file changed")
            continue
        if "exists" in step or "missing" in step:
            name = step.get("exists") or step.get("missing")
            test.assertEqual(os.path.exists(os.path.join(d, name)), "exists" in step, f"{where}: {sorted(os.listdir(d))}")
            continue
        if "stasis" in step:
            argv, collect = [STASIS, *[sub(a) for a in step["stasis"]]], step["stasis"][0] in ("run", "resume")
        else:
            argv, collect = [PLAIN, *[sub(a) for a in step["python"]]], False
        r = _run(argv, d, env, sub(step.get("stdin", "")))
        out, err = r.stdout.decode(), r.stderr.decode()
        results[-1] = (out, err)
        shown = f"{where}\n--- exit {r.returncode}\n--- stdout\n{out}--- stderr\n{err}"
        if "like_plain" in step:
            p = _run([PLAIN, step["like_plain"]], d, env, "")
            test.assertEqual(r.returncode, p.returncode, shown)
            test.assertEqual(out, p.stdout.decode(), shown)
            test.assertEqual(_without_stasis_lines(err), p.stderr.decode(), f"{shown}\n--- plain stderr\n{p.stderr.decode()}")
        else:
            test.assertEqual(r.returncode, step.get("rc", 0), shown)
        for s in step.get("stdout_has", []):
            test.assertIn(sub(s), out, shown)
        for s in step.get("stdout_lacks", []):
            test.assertNotIn(sub(s), out, shown)
        for s in step.get("stderr_has", []):
            test.assertIn(sub(s), err, shown)
        for s in step.get("stderr_lacks", []):
            test.assertNotIn(sub(s), err, shown)
        if "stderr_ends" in step:
            test.assertEqual(err.rstrip().splitlines()[-1] if err.strip() else "", sub(step["stderr_ends"]), shown)
        if "stderr_lines" in step:
            test.assertEqual(len(err.strip().splitlines()), step["stderr_lines"], shown)
        if "same_stdout_as" in step:
            test.assertEqual(out, results[step["same_stdout_as"] - 1][0], shown)
        if "same_stderr_as" in step:
            test.assertEqual(err, results[step["same_stderr_as"] - 1][1], shown)
        if "same_traceback_as" in step:
            mine, theirs = (_without_stasis_lines(e) for e in (err, results[step["same_traceback_as"] - 1][1]))
            test.assertEqual(mine, theirs, shown)
        if step.get("collect", collect):
            collected.append(out)
    left = [f for f in os.listdir(d) if f.endswith((".partial", ".patching"))]
    test.assertEqual(left, [], f"{scenario.name}: temporary files left behind")
    if "expect" in scenario.spec:
        p = _run([PLAIN, scenario.spec["expect"]], d, env, "")
        test.assertEqual(p.returncode, scenario.spec.get("expect_rc", 0), p.stderr.decode())
        test.assertEqual("".join(collected), p.stdout.decode(), f"{scenario.name}: output differs from a plain run "
                                                                 f"of {scenario.spec['expect']}")


def _without_stasis_lines(err: str) -> str:
    return "".join(line for line in err.splitlines(True) if not line.startswith("stasis: "))


def add_tests(cls: type, group: str) -> type:
    """One test method per scenario of `group`, so that each passes or fails by name."""
    for s in scenarios(group):
        def test(self: unittest.TestCase, s: Scenario = s) -> None:
            play(self, s)
        test.__doc__ = s.spec.get("about")
        setattr(cls, f"test_{s.name}", test)
    return cls

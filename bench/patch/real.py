"""What --snapshot-on-crash costs on real programs whose own code raises exceptions that callers
catch (README "Crash snapshots"): `stasis run PROGRAM` against `stasis run --snapshot-on-crash
PROGRAM`, CPU time (user + sys) of the whole run, median of interleaved rounds; an A/A pair of
runs without the option shows the noise. The programs are made from CPython's own library, copied
into a temporary directory so that they are the program's own code (the crash handlers are only
added to the program's own modules):

- test_json: CPython's test.test_json suite (168 tests) run by unittest — the test package and
  test.support copied beside the runner;
- email: the stdlib `email` package copied beside a script that parses address lists with
  email._header_value_parser, whose get_* functions raise HeaderParseError that their callers
  catch (a recursive-descent parser using exceptions to try alternatives).

Usage: bench/patch/real.py [BUILD_DIR] [ROUNDS]"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile

LIB = "/usr/lib/python3.11"

EMAIL_DRIVER = '''
import sys
from email import _header_value_parser as p

ADDRS = [
    'Fred Bloggs <fred@example.com>, "Smith, J." <js@example.org>',
    'undisclosed-recipients:;',
    '=?utf-8?q?J=C3=B6rg?= <joerg@example.de>, bob@[127.0.0.1]',
    'Group: a@b.c, "q\\\\"uote" <x@y.z>; d@e.f (comment)',
    'broken <@nope>, ok@fine.org',
]
total = 0
for i in range(int(sys.argv[1])):
    for a in ADDRS:
        al, rest = p.get_address_list(a)
        total += len(al.addresses)
print("addresses", total)
'''

JSON_DRIVER = '''
import sys
import unittest

suite = unittest.defaultTestLoader.loadTestsFromName("test.test_json")
result = unittest.TextTestRunner(stream=sys.stdout, verbosity=0).run(suite)
sys.exit(not result.wasSuccessful())
'''


def make_programs(root: str) -> dict:
    json_dir = os.path.join(root, "json")
    os.makedirs(os.path.join(json_dir, "test"))
    shutil.copy(os.path.join(LIB, "test", "__init__.py"), os.path.join(json_dir, "test"))
    for sub in ("support", "test_json"):
        shutil.copytree(os.path.join(LIB, "test", sub), os.path.join(json_dir, "test", sub))
    with open(os.path.join(json_dir, "run_json.py"), "w") as f:
        f.write(JSON_DRIVER)
    email_dir = os.path.join(root, "email")
    shutil.copytree(os.path.join(LIB, "email"), os.path.join(email_dir, "email"))
    with open(os.path.join(email_dir, "parse.py"), "w") as f:
        f.write(EMAIL_DRIVER)
    return {"test_json": (json_dir, ["run_json.py"]), "email parser": (email_dir, ["parse.py", "1500"])}


def cpu_of(argv: list, cwd: str) -> float:
    before = os.times()
    r = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    after = os.times()
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "build")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    stasis = os.path.abspath(os.path.join(build, "bin", "stasis"))
    root = tempfile.mkdtemp(prefix="stasis-bench-crash-")
    try:
        programs = make_programs(root)
        print("%-14s %10s %10s %8s %8s" % ("program", "cpu plain", "cpu crash", "ratio", "A/A"))
        for name, (cwd, args) in programs.items():
            for warm in (False, True):   # first run: bytecode caches of the copies are written
                cpu_of([stasis, "run", *args], cwd)
            plain, crash, again = [], [], []
            for _ in range(rounds):
                plain.append(cpu_of([stasis, "run", *args], cwd))
                crash.append(cpu_of([stasis, "run", "--snapshot-on-crash", *args], cwd))
                again.append(cpu_of([stasis, "run", *args], cwd))
            ratio = statistics.median(c / p for c, p in zip(crash, plain))
            aa = statistics.median(a / p for a, p in zip(again, plain))
            print("%-14s %9.2fs %9.2fs %8.3f %8.3f" % (name, statistics.median(plain), statistics.median(crash),
                                                      ratio, aa))
        print(f"cpu: user+sys of `stasis run` without / with --snapshot-on-crash, median of {rounds} interleaved "
              "rounds; ratio = with / without; A/A = without / without")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

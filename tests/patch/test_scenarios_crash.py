"""Patch scenarios of tests/patch/scenarios/crash/ (see scenario_runner.py), written from README.md
alone as an outside tester would: each a small program, a crash (--snapshot-on-crash),
the user's edit, and the output of a plain run of the fixed program to match byte for byte."""
import unittest

from tests.patch.scenario_runner import add_tests


class Scenarios(unittest.TestCase):
    maxDiff = None


add_tests(Scenarios, "crash")

if __name__ == "__main__":
    unittest.main()

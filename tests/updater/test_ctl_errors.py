"""Every `stasis ctl` request gets a result or a precise error with its own exit status, and a
failed update changes nothing."""
from __future__ import annotations

import unittest

from tests.updater.support import TargetTestCase

TARGET = '''
import sys, stasis
def greet(name):
    return "hello " + name
class Box:
    def __init__(self, size):
        self.size = size
BOXES = [Box(1), Box(0), Box(2)]
stasis.serve_updates()
print("ready", flush=True)
sys.stdin.read()
'''


class CtlErrorsTest(TargetTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.proc, _ = self.start("target.py", TARGET)

    def apply(self, name: str, text: str, expect: int) -> str:
        _, _, err = self.ctl(self.proc.pid, "apply", self.write(name, text), expect=expect)
        return err

    def test_errors(self) -> None:
        err = self.apply("syntax.py", "def greet(name:\n", 100)
        self.assertIn('syntax.py", line 1', err)
        self.assertNotIn("control.py", err)                 # no Stasis internals in the report
        err = self.apply("raises.py", "from stasis.update import redefine\nraise KeyError('x')\n", 100)
        self.assertIn('raises.py", line 2, in <module>', err)
        self.assertNotIn("api.py", err)
        err = self.apply("target.py_missing.py", "from stasis.update import redefine\n"
                         "redefine('__main__.nope.greet', len)\n", 102)
        self.assertIn("__main__ has no attribute 'nope'", err)
        err = self.apply("nothing.py", "x = 1\n", 102)
        self.assertIn("planned no change", err)
        # Atomic: the first redefine is fine, the second is refused, so neither is applied.
        err = self.apply("half.py", "from stasis.update import redefine\n"
                         "def greet(name):\n    return 'hi ' + name\n"
                         "redefine('__main__.greet', greet)\n"
                         "redefine('__main__.greet', 42)\n", 102)
        self.assertIn("must be functions or classes", err)
        _, listing, _ = self.ctl(self.proc.pid, "list")
        self.assertEqual(listing.strip(), "no updates")
        # A conversion that raises for some instances: applied, with a warning that counts them.
        _, out, err = self.ctl(self.proc.pid, "apply", self.write("fields.py",
                               "from stasis.update import add_field\n"
                               "add_field('__main__.Box.ratio', init=lambda box: 10 // box.size)\n"))
        self.assertRegex(out, r"update \d+ applied")   # failed updates used ids too
        self.assertIn("warning: add_field Box.ratio: init raised for 1 instance(s), first: ZeroDivisionError", err)
        _, _, err = self.ctl(self.proc.pid, "revert", "7", expect=102)
        self.assertIn("no update 7", err)
        _, _, err = self.ctl(self.proc.pid, "frobnicate", expect=64)
        self.assertIn("invalid choice", err)


if __name__ == "__main__":
    unittest.main()

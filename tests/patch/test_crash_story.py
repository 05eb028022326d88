"""samples/crash_story.sh (part of `make demo`): crash -> stasis debug -> stasis patch -> stasis resume
gives the fixed program's output byte for byte."""
import os
import subprocess
import unittest

from tests.patch.support import BUILD

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "samples")


class CrashStory(unittest.TestCase):
    def test_the_story_ends_with_the_fixed_programs_output(self):
        r = subprocess.run(["bash", os.path.join(SAMPLES, "crash_story.sh"), BUILD], capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("(Pdb) (40, 'lb')", r.stdout)              # the failing frame's locals
        self.assertIn("redefine __main__.to_kg", r.stdout)
        self.assertIn("byte-identical to the fixed program", r.stdout)


if __name__ == "__main__":
    unittest.main()

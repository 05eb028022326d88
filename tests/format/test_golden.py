"""Golden snapshot: the format of the current version is pinned by a committed file."""
import glob
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")
sys.path.insert(0, GOLDEN)

import stasis  # noqa: E402
from golden_values import golden_value  # noqa: E402

PREAMBLE_FIXED = 12


def payload_region(data: bytes) -> bytes:
    """The bytes after the preamble (payload + footer): independent of time and host."""
    body_len = int.from_bytes(data[10:12], "little")
    return data[PREAMBLE_FIXED + body_len + 4:]


class GoldenSnapshot(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(GOLDEN, f"objects_v{stasis.FORMAT_VERSION}.golden")
        if not os.path.exists(self.path):
            others = sorted(os.path.basename(p) for p in glob.glob(os.path.join(GOLDEN, "*.golden")))
            self.fail(f"no golden file for format version {stasis.FORMAT_VERSION} (found {others}): "
                      "run build/bin/python tests/golden/regen.py in the commit that bumps the version")

    def test_golden_file_loads_to_the_golden_value(self):
        loaded = stasis.load(self.path)
        expected = golden_value()
        self.assertIs(loaded["self"], loaded)
        self.assertIs(loaded["shared"][0], loaded["shared"][1])
        for key in expected:
            if key in ("self", "floats"):
                continue
            self.assertEqual(loaded[key], expected[key], key)
        self.assertEqual(math.copysign(1, loaded["floats"][1]), -1.0)
        self.assertEqual(loaded["floats"][3], math.inf)

    def test_schema_change_needs_a_version_bump(self):
        with open(self.path, "rb") as f:
            golden = f.read()
        today = stasis.dumps(golden_value())
        self.assertEqual(
            payload_region(today), payload_region(golden),
            f"dumping the golden value no longer gives the bytes of format version "
            f"{stasis.FORMAT_VERSION}: the schema changed. Bump kFormatVersion in format/schema.h, "
            "add a row to FORMAT.md's version history, and run tests/golden/regen.py")

    def test_only_the_current_version_is_kept(self):
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(GOLDEN, "*.golden")))
        self.assertEqual(files, [f"objects_v{stasis.FORMAT_VERSION}.golden"])


if __name__ == "__main__":
    unittest.main()

"""Golden snapshots: the format of the current version is pinned by committed files, and they
use every op of format/schema.h (so no op can change without a version bump going unnoticed)."""
import glob
import json
import math
import os
import re
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")
SCHEMA = os.path.join(HERE, "..", "..", "format", "schema.h")
sys.path.insert(0, GOLDEN)

import stasis  # noqa: E402
from stasis import _engine  # noqa: E402
from golden_values import golden_every_op, golden_program, golden_value  # noqa: E402
from regen import program_bytes  # noqa: E402

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
        v = stasis.FORMAT_VERSION
        self.assertEqual(files, [f"objects_v{v}.golden", f"ops_v{v}.golden", f"program_v{v}.golden"])


def schema_ops() -> dict:
    """{name: code} of every op in the op table (format/schema.h STASIS_OPS)."""
    with open(SCHEMA) as f:
        text = f.read()
    return {m.group(1): int(m.group(2), 16) for m in re.finditer(r"X\((\w+), 0x([0-9A-Fa-f]{2}),", text)}


class GoldenCoversEveryOp(unittest.TestCase):
    def setUp(self):
        v = stasis.FORMAT_VERSION
        self.ops_path = os.path.join(GOLDEN, f"ops_v{v}.golden")
        self.program_path = os.path.join(GOLDEN, f"program_v{v}.golden")

    def test_the_op_table_is_read(self):
        ops = schema_ops()
        self.assertEqual(len(ops), 48)
        self.assertEqual(ops["SetLayout"], 0x2F)

    def test_the_golden_file_uses_every_op(self):
        used = stasis.inspect(self.ops_path)["ops"]
        missing = sorted(set(schema_ops()) - set(used))
        self.assertEqual(missing, [], "ops the golden file does not use: extend golden_every_op() in "
                                      "tests/golden/golden_values.py and run tests/golden/regen.py")

    def test_every_op_golden_file_pins_the_bytes(self):
        with open(self.ops_path, "rb") as f:
            golden = f.read()
        self.assertEqual(payload_region(stasis.dumps(golden_every_op())), payload_region(golden),
                         "the op stream of the every-op value changed: bump kFormatVersion in "
                         "format/schema.h, add a row to FORMAT.md's version history, run tests/golden/regen.py")

    def test_every_op_golden_file_loads(self):
        v = stasis.load(self.ops_path)
        self.assertEqual(v["counter"](1), 13)
        self.assertEqual(v["local_instance"].double(), 42)
        self.assertEqual(list(v["generator"]), [1, 2, 3, 4])
        self.assertEqual(sorted(v["set"]), sorted(golden_every_op()["set"]))
        self.assertIs(v["loop"][0][0], v["loop"])
        self.assertIsInstance(v["error"].__cause__, KeyError)
        self.assertIsNone(v["dead"]())

    def test_program_payload_golden_file(self):
        with open(self.program_path, "rb") as f:
            golden = f.read()
        self.assertEqual(payload_region(program_bytes()), payload_region(golden),
                         "the program payload (header fields or root record) changed: bump the "
                         "version and run tests/golden/regen.py")
        header = _engine.payload_header(self.program_path)
        root, seed, meta = golden_program()
        self.assertEqual((header["kind"], header["hash_seed"]), ("program", seed))
        self.assertEqual(json.loads(header["meta"]), meta)
        self.assertEqual(_engine.load(self.program_path, kind="program"), root)


if __name__ == "__main__":
    unittest.main()

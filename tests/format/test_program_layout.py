"""The program payload's records: FORMAT.md "Program payloads" names exactly the fields that
format/program_schema.h defines (and the engine writes), and the typed records of
stasis/program/layout.py read what capture writes and refuse what does not fit."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import unittest

import stasis
from stasis import _engine
from stasis.program import layout

SOURCE = os.environ.get("STASIS_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def documented_fields(heading: str) -> set:
    """The backticked names in the first column of the table after `**heading` in FORMAT.md's
    program payload section."""
    with open(os.path.join(SOURCE, "FORMAT.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Program payloads"):]
    section = section[section.index(f"**{heading}"):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    names = set()
    for row in rows[2:]:  # header and separator first
        first = row.split("|")[1]
        names.update(re.findall(r"`([a-z_]+)`", first))
    return names


class ProgramLayoutDocumented(unittest.TestCase):
    def test_every_record_table_matches_the_schema(self):
        for heading, fields in (("Metadata", _engine.META_FIELDS), ("Root record", _engine.PROGRAM_FIELDS),
                                ("Thread record", _engine.THREAD_FIELDS), ("Frame record", _engine.FRAME_FIELDS)):
            with self.subTest(record=heading):
                self.assertEqual(documented_fields(heading), set(fields))

    def test_documented_layout_is_the_engines(self):
        with open(os.path.join(SOURCE, "FORMAT.md"), encoding="utf-8") as f:
            text = f.read()
        self.assertIn(f"`kProgramLayout` = {_engine.PROGRAM_LAYOUT}", text)
        self.assertIn(f"| `layout` | {_engine.PROGRAM_LAYOUT} |", text)


def sample(x):
    y = x + 1
    return sys._getframe()


CAPTURE = """
import sys
from stasis import _engine
from stasis.program import current
def inner(a):
    b = a * 2
    return _engine.capture_stack(sys._getframe(), current().base_code, True, False)
records = inner(20)
for r in records:
    print(sorted(r), r["code"].co_name, r["row"] is None, sorted(n for n in r["locals"] if n[0] != "."))
"""


class FrameRecordsByName(unittest.TestCase):
    def test_capture_writes_records_with_the_schema_fields(self):
        build = os.environ.get("STASIS_BUILD_DIR") or os.path.join(SOURCE, "build")
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(d, "capture.py")
            with open(script, "w") as f:
                f.write(CAPTURE)
            out = subprocess.run([os.path.join(build, "bin", "stasis"), "run", "--suspend-after", "1000000",
                                  script], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        fields = sorted(_engine.FRAME_FIELDS)
        self.assertEqual(out.stdout.splitlines(), [
            f"{fields} <module> False []",
            f"{fields} inner False ['a', 'b']"])
        typed = layout.FrameRecord.from_payload({"code": sample.__code__, "row": None, "offset": 0,
                                                 "locals": {"x": 1}, "stack": ()})
        self.assertEqual(typed.to_payload()["locals"], {"x": 1})

    def test_records_of_the_wrong_shape_are_corrupt(self):
        frame = sample(1)
        good = {"code": frame.f_code, "row": None, "offset": 0, "locals": {}, "stack": ()}
        for bad in ((frame.f_code, None, 0, {}, ()), {**good, "extra": 1},
                    {k: v for k, v in good.items() if k != "stack"}, {**good, "offset": "0"}):
            with self.subTest(bad=bad), self.assertRaises(stasis.CorruptSnapshotError):
                layout.FrameRecord.from_payload(bad)

    def test_another_layout_is_incompatible(self):
        with self.assertRaises(stasis.IncompatibleSnapshotError):
            layout.ProgramState.from_payload({"layout": layout.PROGRAM_LAYOUT - 1})

    def test_metadata_of_the_wrong_types_is_corrupt(self):
        good = {"modules": ["__main__"], "sys_path": ["/x"], "roots": ["/x"], "rewrite": [], "no_rewrite": [],
                "threads": 1, "handler_modules": [], "program": ["script", "/x/job.py", "--n", "3"]}
        self.assertEqual(layout.ProgramMeta.from_json(__import__("json").dumps(good)).threads, 1)
        for bad in ("{", "[]", '{"modules": []}', __import__("json").dumps({**good, "sys_path": "/x"}),
                    __import__("json").dumps({**good, "threads": "1"}),
                    __import__("json").dumps({**good, "program": "job.py"}), "[" * 100000):
            with self.subTest(bad=bad[:40]), self.assertRaises(stasis.CorruptSnapshotError):
                layout.ProgramMeta.from_json(bad)


if __name__ == "__main__":
    unittest.main()

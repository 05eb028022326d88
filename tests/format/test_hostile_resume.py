"""Hostile program snapshots for `stasis resume`, and hostile strings for the command line.

Resuming a program runs its code by design (FORMAT.md, "Threat model"), so what a crafted program
snapshot must not do is crash the resuming process, hang it, or end in a traceback of Stasis's own:
every bad record is a one-line `stasis: error:` with its exit status. The files are a real suspended
program's, with one record changed and written again with valid checksums. And a snapshot's strings
reach the terminal (`stasis inspect`, error messages): never as control characters."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stasis  # noqa: E402
import craft  # noqa: E402
from craft import NONE, Ops  # noqa: E402

STASIS = os.path.join(os.path.dirname(sys.executable), "stasis")
CORRUPT = stasis.CorruptSnapshotError.code

PROGRAM = textwrap.dedent('''
    import stasis, sys
    def work(n):
        total = 0
        for i in range(n):
            total += i
            if i == 3:
                stasis.suspend(sys.argv[1])
        return total
    print("result", work(10))
''')

# Runs in a child (a program payload is loaded with the program's trust, which creates modules):
# loads the snapshot argv[1], applies MUTATION to its root record, writes it to argv[2].
REWRITE = textwrap.dedent('''
    import json, sys, threading, types
    from stasis import _engine
    data = open(sys.argv[1], "rb").read()
    header = _engine.payload_header(data, verify=True)
    meta = json.loads(header["meta"])
    root = _engine.loads(data, kind="program")
    frames = root["threads"][0]["frames"]
    exec(sys.argv[3])
    _engine.dump(root, sys.argv[2], kind="program", hash_seed=header["hash_seed"], by_value=meta["modules"],
                 meta=json.dumps(meta))
''')


class ResumeRecords(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.script = os.path.join(cls.dir, "prog.py")
        with open(cls.script, "w") as f:
            f.write(PROGRAM)
        cls.snap = os.path.join(cls.dir, "prog.snap")
        r = subprocess.run([STASIS, "run", cls.script, cls.snap], capture_output=True, text=True, timeout=120,
                           cwd=cls.dir)
        assert r.returncode == stasis.EXIT_SUSPENDED, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def resume_changed(self, mutation: str, timeout: float = 60) -> subprocess.CompletedProcess:
        out = os.path.join(self.dir, "changed.snap")
        r = subprocess.run([sys.executable, "-c", REWRITE, self.snap, out, mutation], capture_output=True,
                           text=True, timeout=120, cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            return subprocess.run([STASIS, "resume", out], capture_output=True, text=True, timeout=timeout,
                                  cwd=self.dir)
        except subprocess.TimeoutExpired:
            self.fail(f"stasis resume did not end within {timeout} s")

    def refused(self, mutation: str, fragment: str) -> None:
        r = self.resume_changed(mutation)
        self.assertEqual(r.returncode, CORRUPT, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn(fragment, r.stderr)
        self.assertEqual(r.stdout, "")  # nothing of the program ran

    def test_the_unchanged_file_resumes(self):
        r = self.resume_changed("pass")
        self.assertEqual((r.returncode, r.stdout), (0, "result 45\n"), r.stderr)

    def test_a_stack_value_the_code_does_not_expect_there(self):
        # an int where FOR_ITER expects an iterator: the eval loop would call its NULL tp_iternext
        self.refused("frames[1]['stack'] = (5,)", "needs an iterator")

    def test_a_stack_shorter_than_the_code_expects(self):
        # FOR_ITER would read its iterator from below the frame's value stack
        self.refused("frames[1]['stack'] = ()", "saved value stack holds 0 values")

    def test_a_thread_record_without_its_thread(self):
        self.refused("root['threads'].append(dict(root['threads'][0], main=False, ident=5, thread=None))",
                     "has no Thread object")

    def test_base_code_that_is_not_code(self):
        self.refused("root['base_code'] = 5", "base code is not a code object")

    def test_recorded_sources_never_wait_on_a_fifo_or_read_a_device(self):
        fifo = os.path.join(self.dir, "fifo")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        for path in (fifo, "/dev/zero"):
            r = self.resume_changed(f"root['sources'] = {{'__main__': {{'path': {path!r}, 'source': b'x = 1\\n', "
                                    f"'sha256': '0'}}}}", timeout=60)
            self.assertEqual((r.returncode, r.stdout), (0, "result 45\n"), r.stderr)


class TerminalStrings(unittest.TestCase):
    """Strings of a snapshot reach the terminal only as printable text."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, data: bytes) -> str:
        path = os.path.join(self.tmp.name, "x.snap")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_a_preamble_field_with_control_characters_is_refused(self):
        real = craft._preamble("objects")
        host = b"\x1b]0;owned\x07\nsignature  signed"
        body = bytearray(real[12:-4])
        at, fields = 16, []
        for _ in range(5):
            n = int.from_bytes(body[at:at + 2], "little")
            fields.append(bytes(body[at + 2:at + 2 + n]))
            at += 2 + n
        fields[3] = host
        new = bytes(body[:16]) + b"".join(len(f).to_bytes(2, "little") + f for f in fields)
        head = real[:10] + len(new).to_bytes(2, "little") + new
        import zlib
        preamble = head + zlib.crc32(head).to_bytes(4, "little")
        original = craft._preamble
        craft._preamble = lambda kind: preamble
        try:
            path = self.write(craft.snapshot(Ops().op(NONE)))
        finally:
            craft._preamble = original
        for args in (["inspect", path], ["inspect", "--json", path]):
            r = subprocess.run([STASIS, *args], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, CORRUPT, r.stdout + r.stderr)
            self.assertIn("holds a control character", r.stderr)
            self.assertNotIn("\x1b", r.stdout + r.stderr)

    def test_error_messages_show_a_snapshots_strings_escaped(self):
        path = self.write(craft.snapshot(Ops().module("no\nsuch\x1b[2Jmodule")))
        code = "import stasis, sys; stasis.load(sys.argv[1])"
        r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
        self.assertIn("no\nsuch", r.stderr)  # the library's error keeps the name as it is
        program = craft.snapshot(Ops().module("no\nsuch\x1b[2Jmodule"), kind="program", meta=craft.program_meta())
        path = self.write(program)
        r = subprocess.run([STASIS, "resume", path], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertNotIn("\x1b", r.stderr)
        self.assertIn("no\\nsuch\\x1b[2Jmodule", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""stasis.dump/load/dumps/loads on the container: round trips of the basic types, every kind of
bad file with its own exception and message, atomic writes (a killed writer), and signatures."""
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stasis  # noqa: E402
from snapfile import (FORMAT_VERSION_AT, PY_HEXVERSION_AT, preamble_size,  # noqa: E402
                      with_preamble_patch)


class BasicTypesRoundTrip(unittest.TestCase):
    def roundtrip(self, value):
        return stasis.loads(stasis.dumps(value))

    def test_ints_of_any_size(self):
        values = [0, 1, -1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 10**400, -(10**400)]
        self.assertEqual(self.roundtrip(values), values)

    def test_floats_including_signed_zero_inf_nan(self):
        out = self.roundtrip([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 5e-324, 1.7e308])
        self.assertEqual(math.copysign(1.0, out[1]), -1.0)
        self.assertTrue(math.isnan(out[4]))
        self.assertEqual(out[5], 5e-324)

    def test_strings_of_every_kind(self):
        values = ["", "ascii", "é" * 3, "☃ snow", "🐍 astral", "\ud800 lone", "\udfff", "a\x00b"]
        self.assertEqual(self.roundtrip(values), values)

    def test_bytes_none_bool(self):
        values = [b"", bytes(range(256)), None, True, False]
        out = self.roundtrip(values)
        self.assertEqual(out, values)
        self.assertIs(out[3], True)

    def test_dict_order_and_nesting(self):
        d = {"z": 1, "a": [1, (2, 3)], 5: {"k": ()}, (1, 2): "tuple key"}
        out = self.roundtrip(d)
        self.assertEqual(out, d)
        self.assertEqual(list(out), list(d))

    def test_identity_and_cycles(self):
        shared = [1, 2]
        lst = [shared, shared]
        lst.append(lst)
        d = {"l": lst}
        d["d"] = d
        t = (lst, d)
        lst.append(t)  # a cycle through a tuple
        out = self.roundtrip(t)
        self.assertIs(out[0][0], out[0][1])
        self.assertIs(out[0][2], out[0])
        self.assertIs(out[1]["d"], out[1])
        self.assertIs(out[0][3], out)

    def test_large_container_spans_chunks(self):
        big = list(range(300_000))
        self.assertEqual(self.roundtrip(big), big)

    def test_dump_and_load_files(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.snap")
            stasis.dump({"a": 1}, path)
            self.assertEqual(stasis.load(path), {"a": 1})
            self.assertEqual(os.listdir(d), ["x.snap"])
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)


class Reopened:
    """Stands for an object whose loader has effects (as reopening a file has)."""

    def __init__(self, n):
        self.n = n


LOADED = []


def _load_reopened(n):
    LOADED.append(n)
    return Reopened(n)


stasis.register(Reopened, lambda r: r.n, _load_reopened, key="tests.format.Reopened")


class DamagedPayloadRunsNoLoader(unittest.TestCase):
    """load/loads decompress the payload once and verify it as they read it: plain values may be
    built meanwhile (and dropped), but no loader, import or call runs before the whole payload
    has passed zstd's checks, wherever the object is in the payload."""

    def setUp(self):
        LOADED.clear()

    def payloads(self):
        text = ["s%07d-%x" % (i, i * 2654435761 % 2**32) for i in range(300_000)]
        return {"first": [Reopened(1)] + text, "middle": text[:1000] + [Reopened(2)] + text,
                "last": text + [Reopened(3)]}

    def test_damaged_payload_calls_no_loader(self):
        for where, value in self.payloads().items():
            good = stasis.dumps(value)
            # the frame checksum, the last compressed block, the middle of the payload
            for at in (len(good) - 41, len(good) - 45, len(good) // 2):
                with self.subTest(where=where, at=at):
                    bad = bytearray(good)
                    bad[at] ^= 0x10
                    with self.assertRaises(stasis.CorruptSnapshotError) as cm:
                        stasis.loads(bytes(bad))
                    self.assertRegex(str(cm.exception), r"offset|damaged|checksum")
                    self.assertEqual(LOADED, [])

    def test_damaged_file_calls_no_loader(self):
        value = self.payloads()["middle"]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.snap")
            stasis.dump(value, path)
            with open(path, "r+b") as f:
                f.seek(-41, os.SEEK_END)
                b = f.read(1)
                f.seek(-41, os.SEEK_END)
                f.write(bytes([b[0] ^ 0x10]))
            with self.assertRaises(stasis.CorruptSnapshotError):
                stasis.load(path)
        self.assertEqual(LOADED, [])

    def test_intact_payload_calls_each_loader_once(self):
        for where, value in self.payloads().items():
            with self.subTest(where=where):
                LOADED.clear()
                out = stasis.loads(stasis.dumps(value))
                self.assertEqual(len(LOADED), 1)
                self.assertEqual(len(out), len(value))
                self.assertEqual([x.n for x in out if isinstance(x, Reopened)], LOADED)


class BadFiles(unittest.TestCase):
    """Each kind of bad file gets its own exception class and a message that says what is wrong."""

    @classmethod
    def setUpClass(cls):
        cls.good = stasis.dumps({"data": list(range(50_000)), "text": "x" * 10_000})

    def check(self, data, exc, fragment):
        with self.assertRaises(exc) as cm:
            stasis.loads(data)
        self.assertIn(fragment, str(cm.exception))
        self.assertIsInstance(cm.exception, stasis.SnapshotError)
        self.assertIsInstance(cm.exception, stasis.StasisError)

    def test_empty(self):
        self.check(b"", stasis.NotASnapshotError, "empty")

    def test_garbage(self):
        self.check(b"#!/usr/bin/env python3\nprint('hi')\n" * 10, stasis.NotASnapshotError, "magic")
        self.check(os.urandom(4096), stasis.NotASnapshotError, "magic")

    def test_truncated_at_many_offsets(self):
        size = len(self.good)
        cuts = sorted(set(list(range(1, 80)) + list(range(80, size, max(1, size // 97))) + [size - 1]))
        for cut in cuts:
            with self.subTest(cut=cut):
                self.check(self.good[:cut], stasis.TruncatedSnapshotError, "cut short")

    def test_flipped_bit_inside_compressed_payload(self):
        start = preamble_size(self.good)
        for at in (start + 3, start + 100, (start + len(self.good)) // 2, len(self.good) - 41):
            with self.subTest(at=at):
                bad = bytearray(self.good)
                bad[at] ^= 0x08
                with self.assertRaises(stasis.CorruptSnapshotError) as cm:
                    stasis.loads(bytes(bad))
                self.assertRegex(str(cm.exception), r"offset|damaged|checksum")

    def test_flipped_bit_in_preamble(self):
        bad = bytearray(self.good)
        bad[30] ^= 0x01
        self.check(bytes(bad), stasis.CorruptSnapshotError, "preamble checksum")

    def test_wrong_format_version(self):
        bad = with_preamble_patch(self.good, FORMAT_VERSION_AT, (stasis.FORMAT_VERSION + 7).to_bytes(2, "little"))
        with self.assertRaises(stasis.IncompatibleSnapshotError) as cm:
            stasis.loads(bad)
        msg = str(cm.exception)
        self.assertIn(f"format version {stasis.FORMAT_VERSION + 7} found", msg)
        self.assertIn(f"reads version {stasis.FORMAT_VERSION}", msg)

    def test_wrong_python_minor_version(self):
        bad = with_preamble_patch(self.good, PY_HEXVERSION_AT, (0x030C04F0).to_bytes(4, "little"))
        with self.assertRaises(stasis.IncompatibleSnapshotError) as cm:
            stasis.loads(bad)
        self.assertIn("CPython 3.12.x is needed", str(cm.exception))
        self.assertIn(f"this is CPython {sys.version_info.major}.{sys.version_info.minor}", str(cm.exception))


class Signatures(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.key = os.path.join(self.dir.name, "key")
        with open(self.key, "wb") as f:
            f.write(os.urandom(32))
        self.other = os.path.join(self.dir.name, "other")
        with open(self.other, "wb") as f:
            f.write(os.urandom(32))

    def tearDown(self):
        self.dir.cleanup()

    def test_signed_roundtrip_and_refusals(self):
        data = stasis.dumps([1, 2, 3], key_file=self.key)
        self.assertEqual(stasis.loads(data, key_file=self.key), [1, 2, 3])
        self.assertEqual(stasis.loads(data), [1, 2, 3])  # no key: the HMAC is not checked
        with self.assertRaisesRegex(stasis.SignatureError, "does not match"):
            stasis.loads(data, key_file=self.other)
        with self.assertRaisesRegex(stasis.SignatureError, "not signed"):
            stasis.loads(stasis.dumps([1]), key_file=self.key)
        tampered = bytearray(data)
        tampered[len(tampered) // 2] ^= 1
        with self.assertRaises(stasis.SignatureError):
            stasis.loads(bytes(tampered), key_file=self.key)

    def test_key_from_environment(self):
        old = os.environ.get("STASIS_KEY_FILE")
        os.environ["STASIS_KEY_FILE"] = self.key
        try:
            data = stasis.dumps({"k": 1})
            self.assertEqual(data[12] & 1, 1, "flag bit 0 (signed) is set")
            self.assertEqual(stasis.loads(data), {"k": 1})
        finally:
            if old is None:
                del os.environ["STASIS_KEY_FILE"]
            else:
                os.environ["STASIS_KEY_FILE"] = old
        with self.assertRaises(stasis.SignatureError):
            stasis.loads(data, key_file=self.other)

    def test_missing_or_empty_key_file(self):
        empty = os.path.join(self.dir.name, "empty")
        open(empty, "wb").close()
        with self.assertRaisesRegex(stasis.SnapshotIOError, "empty"):
            stasis.dumps(1, key_file=empty)
        with self.assertRaisesRegex(stasis.SnapshotIOError, "cannot read key file"):
            stasis.dumps(1, key_file=os.path.join(self.dir.name, "nope"))


WRITER = r"""
import sys, stasis
big = [("item%d" % i, i, i * 0.5) for i in range(3_000_000)]
print("writing", flush=True)
stasis.dump(big, sys.argv[1], level=19)
print("done", flush=True)
"""


class AtomicWrite(unittest.TestCase):
    def test_killed_writer_leaves_previous_snapshot_intact(self):
        with tempfile.TemporaryDirectory() as d:
            target = os.path.join(d, "job.snap")
            stasis.dump({"generation": 1}, target)
            with open(target, "rb") as f:
                before = f.read()
            proc = subprocess.Popen([sys.executable, "-c", WRITER, target], stdout=subprocess.PIPE, text=True)
            self.assertEqual(proc.stdout.readline().strip(), "writing")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until the temporary file is being written
                temps = [n for n in os.listdir(d) if n.startswith("job.snap.tmp-")]
                if temps and os.path.getsize(os.path.join(d, temps[0])) > 0:
                    break
                time.sleep(0.01)
            else:
                self.fail("the writer never started its temporary file")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            with open(target, "rb") as f:
                self.assertEqual(f.read(), before)
            self.assertEqual(stasis.load(target), {"generation": 1})

    def test_unsupported_object_writes_nothing(self):
        import select
        with tempfile.TemporaryDirectory() as d:
            target = os.path.join(d, "job.snap")
            stasis.dump([1], target)
            with select.epoll() as s:  # registrations that cannot be read back
                with self.assertRaises(stasis.UnsupportedObjectError) as cm:
                    stasis.dump({"outer": [0, {"inner": s}]}, target)
            self.assertIn("root['outer'][1]['inner']: select.epoll is not supported", str(cm.exception))
            self.assertEqual(stasis.load(target), [1])
            self.assertEqual(os.listdir(d), ["job.snap"])


if __name__ == "__main__":
    unittest.main()

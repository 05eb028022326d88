"""numpy in object snapshots (python/stasis/handlers/numpy_arrays.py): arrays of every dtype and
layout, views that stay views of their restored base, memory maps, scalars, ufuncs, generators."""
import mmap
import os
import pickle
import subprocess
import sys
import tempfile
import unittest

import stasis

from tests.handlers.support import optional, rt

np = optional("numpy", "test_numpy_arrays")


@unittest.skipIf(np is None, "numpy is not installed (apt install python3-numpy)")
class NumpyArrays(unittest.TestCase):
    def assertSameArray(self, a, b):
        self.assertIs(type(b), type(a))
        self.assertEqual((b.dtype, b.shape, b.strides), (a.dtype, a.shape, a.strides))
        self.assertEqual(b.flags.writeable, a.flags.writeable)
        if a.dtype == object:
            self.assertEqual(b.tolist(), a.tolist())
        else:
            self.assertEqual(b.tobytes(order="A"), a.tobytes(order="A"))

    def test_every_dtype_and_layout(self):
        base = np.arange(24.0).reshape(4, 6)
        ro = np.arange(3.0)
        ro.flags.writeable = False
        cases = {
            "C": base.copy(), "F": np.asfortranarray(base),
            "permuted": np.empty((2, 3, 4)).transpose(1, 0, 2).copy(order="K"),
            "int64": np.arange(10), "uint8": np.arange(10, dtype=np.uint8),
            "int16": np.arange(-5, 5, dtype=np.int16), "float32": np.linspace(0, 1, 33, dtype=np.float32),
            "float16": np.arange(7, dtype=np.float16), "longdouble": np.arange(3, dtype=np.longdouble),
            "complex128": np.arange(5) * (1 + 2j), "complex64": (np.arange(5) * (1 + 2j)).astype("c8"),
            "bool": np.array([True, False, True]),
            "datetime64": np.array(["2020-01-01", "2021-02-03"], dtype="M8[D]"),
            "timedelta64": np.array([1, 2], "m8[s]"),
            "unicode": np.array(["ab", "cdé"]), "bytes": np.array([b"x", b"yz"]),
            "structured": np.array([(1, (2.5, 3.5)), (4, (5.5, 6.5))], dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
            "0-d": np.array(3.5), "empty": np.zeros((0, 3)), "read-only": ro,
            "objects": np.array([[1, "a"], [None, [2]]], dtype=object),
            "big random": np.random.default_rng(0).standard_normal((300, 301)),
            "big smooth": np.sin(np.linspace(0, 30, 200_001)),
        }
        for name, a in cases.items():
            with self.subTest(name):
                self.assertSameArray(a, rt(a))

    def test_a_restored_array_is_writeable_memory_of_its_own(self):
        a = np.arange(1000.0)
        b = rt(a)
        b[0] = 42.0
        self.assertEqual(a[0], 0.0)
        self.assertIsInstance(b.base, bytearray)  # one buffer from the snapshot, no second copy

    def test_views_come_back_as_views_of_the_same_restored_base(self):
        base = np.arange(24.0).reshape(4, 6).copy()
        views = {"row": base[1], "column": base[:, 2], "reversed": base[::-1, ::-2], "T": base.T,
                 "reinterpreted": base.view(np.int64)[2:], "broadcast": np.broadcast_to(base[0], (3, 6))}
        r = rt({"base": base, **views})
        for name, v in views.items():
            with self.subTest(name):
                self.assertSameArray(v, r[name])
                self.assertIs(r[name].base, r["base"])
        r["column"][0] = 1000.0
        self.assertEqual(r["base"][0, 2], 1000.0)  # a write through the view is seen in the base
        r["base"][3, 1] = -1.0
        self.assertEqual(r["reversed"][0, 2], -1.0)

    def test_views_of_fortran_and_object_arrays(self):
        f = np.asfortranarray(np.arange(12.0).reshape(3, 4))
        r = rt({"b": f, "v": f[1:, ::2]})
        self.assertSameArray(f[1:, ::2], r["v"])
        self.assertIs(r["v"].base, r["b"])
        o = np.array([[1], "x", None, 4.5, 5], dtype=object)
        r = rt({"o": o, "v": o[1::2]})
        self.assertSameArray(o[1::2], r["v"])
        r["v"][0] = "changed"
        self.assertEqual(r["o"][1], "changed")

    def test_views_of_bytes_and_bytearray(self):
        raw = b"0123456789abcdef"
        a = np.frombuffer(raw, np.uint8)
        r = rt({"raw": raw, "a": a, "tail": a[2:]})
        self.assertSameArray(a[2:], r["tail"])
        self.assertIs(r["a"].base, r["raw"])
        self.assertFalse(r["a"].flags.writeable)
        ba = bytearray(16)
        r = rt({"ba": ba, "a": np.frombuffer(ba, np.int32)})
        r["a"][0] = 7
        self.assertEqual(r["ba"][0], 7)

    def test_subclasses(self):
        m = np.ma.array([1, 2, 3], mask=[0, 1, 0], fill_value=-9)
        r = rt(m)
        self.assertIsInstance(r, np.ma.MaskedArray)
        self.assertEqual(r.mask.tolist(), [False, True, False])
        self.assertEqual(r.fill_value, -9)
        self.assertIs(rt(np.ma.masked), np.ma.masked)
        mx = rt(np.matrix([[1, 2], [3, 4]]))
        self.assertIsInstance(mx, np.matrix)
        self.assertEqual((mx * mx).tolist(), [[7, 10], [15, 22]])
        ra = rt(np.rec.array([(1, 2.0)], dtype=[("x", int), ("y", float)]))
        self.assertIsInstance(ra, np.recarray)
        self.assertEqual(ra.y.tolist(), [2.0])

    def test_memmap_is_mapped_again_from_its_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "data.f32")
            mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(10,))
            mm[:] = np.arange(10)
            blob = stasis.dumps({"mm": mm, "v": mm[2:5]})
            mm[0] = 100.0  # written to the file after the snapshot: the map sees the file
            del mm
            r = stasis.loads(blob)
            self.assertIsInstance(r["mm"], np.memmap)
            self.assertEqual(r["mm"].mode, "w+")
            self.assertEqual(r["mm"][:3].tolist(), [100.0, 1.0, 2.0])
            self.assertIs(r["v"].base, r["mm"])
            r["v"][0] = 99.0
            r["mm"].flush()
            self.assertEqual(np.fromfile(path, np.float32)[2], 99.0)  # a shared map, not a copy
            del r
            cow = np.memmap(path, dtype=np.float32, mode="c", shape=(10,))
            cow[1] = -1.0  # private to the map: comes back from the snapshot, not from the file
            r = rt(cow)
            self.assertEqual((r.mode, r[1], np.fromfile(path, np.float32)[1]), ("c", -1.0, 1.0))
            blob = stasis.dumps(np.memmap(path, dtype=np.float32, mode="r"))
            os.unlink(path)
            with self.assertRaisesRegex(stasis.SnapshotIOError, "no longer exists"):
                stasis.loads(blob)

    def test_an_array_over_a_plain_mmap_is_refused_by_name(self):
        m = mmap.mmap(-1, 64)
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, r"root\['a'\].*numpy.memmap"):
            stasis.dumps({"a": np.frombuffer(m, np.uint8)})

    def test_structured_arrays_with_object_fields_are_refused_by_name(self):
        a = np.zeros(2, dtype=[("x", "i4"), ("o", object)])
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, r"root: numpy.ndarray.*object"):
            stasis.dumps(a)

    def test_scalars_ufuncs_and_dtypes(self):
        values = [np.float64(1.5), np.int32(-3), np.bool_(True), np.str_("hé"), np.bytes_(b"x"),
                  np.datetime64("2020-01-01"), np.complex64(1 + 2j), np.void(b"ab")]
        back = rt(values)
        for a, b in zip(values, back):
            self.assertIs(type(b), type(a))
            self.assertEqual(b.tobytes(), a.tobytes())
        self.assertIs(rt(np.add), np.add)
        self.assertIs(rt([np.sin])[0], np.sin)
        dt = np.dtype([("a", "<i4"), ("b", "<f8", (2,))])
        self.assertEqual(rt(dt), dt)

    def test_random_generators_continue_their_streams(self):
        rng = np.random.default_rng(42)
        rng.random(3)
        r = rt(rng)
        self.assertEqual(r.random(5).tolist(), rng.random(5).tolist())
        self.assertEqual(r.bit_generator.seed_seq.entropy if hasattr(r.bit_generator, "seed_seq")
                         else r.bit_generator._seed_seq.entropy, 42)
        rs = np.random.RandomState(3)
        rs.randn()  # leaves a cached gaussian: part of the state
        r = rt(rs)
        self.assertEqual(r.randn(5).tolist(), rs.randn(5).tolist())
        g = np.random.Generator(np.random.Philox(7))
        gens = rt([g, g.bit_generator])
        self.assertIs(gens[0].bit_generator, gens[1])
        self.assertEqual(gens[0].integers(0, 1000, 5).tolist(), g.integers(0, 1000, 5).tolist())
        self.assertIs(rt(np.random.mtrand._rand), np.random.mtrand._rand)

    def test_global_generator_is_module_state(self):
        np.random.seed(5)
        np.random.rand()
        state = stasis.module_state(np.random.mtrand)
        expected = np.random.rand(3).tolist()
        np.random.seed(99)
        stasis.restore_module_state(np.random.mtrand, stasis.loads(stasis.dumps(state)))
        self.assertEqual(np.random.rand(3).tolist(), expected)

    def test_large_arrays_are_compressed_without_a_python_copy(self):
        a = np.linspace(0.0, 1.0, 1 << 20)  # 8 MiB of smooth numbers
        blob = stasis.dumps(a)
        self.assertLess(len(blob), a.nbytes // 4)  # byte planes: the high bytes compress away
        self.assertSameArray(a, stasis.loads(blob))

    def test_incompressible_arrays_are_stored_raw_and_checked(self):
        """A large buffer whose planes do not compress goes into the file as it is (a buffer
        segment beside the zstd frames, with its XXH64); a compressible one next to it is
        compressed. Both come back equal, in one snapshot; a damaged raw byte is refused."""
        noise = np.random.default_rng(5).standard_normal(3 << 17)   # 3 MiB, incompressible
        smooth = np.linspace(-1.0, 1.0, 3 << 17)                   # 3 MiB, compressible
        small = np.random.default_rng(6).standard_normal(1000)     # stays in the op stream
        value = {"noise": noise, "smooth": smooth, "small": small, "noise_view": noise[10:20]}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "a.snap")
            stasis.dump(value, path)
            data = open(path, "rb").read()
            # one segment as it is: magic 0x184D2A5E, size, raw size, 1 plane, its length, the
            # array's bytes, their XXH64
            n = noise.nbytes
            head = (0x184D2A5E).to_bytes(4, "little") + (n + 17).to_bytes(4, "little") + n.to_bytes(4, "little")
            head += b"\x01" + n.to_bytes(4, "little")
            self.assertEqual(data.count(head), 1)
            at = data.index(head) + len(head)
            self.assertEqual(data[at:at + n], noise.tobytes())  # stored as it is
            self.assertLess(len(data), noise.nbytes + smooth.nbytes // 3)  # smooth compressed
            back = stasis.load(path)
            for k in ("noise", "smooth", "small"):
                self.assertSameArray(value[k], back[k])
            self.assertTrue(np.shares_memory(back["noise_view"], back["noise"]))
            self.assertSameArray(stasis.loads(data)["noise"], noise)
            for where in (at - 5, at, at + n // 2, at + n - 1, at + n + 3):
                damaged = bytearray(data)
                damaged[where] ^= 0x10
                with open(path, "wb") as f:
                    f.write(damaged)
                # a damaged header word (the plane count) is refused for what it says
                message = "buffer segment .* has 17 planes" if where == at - 5 else "buffer segment .* is damaged"
                with self.assertRaisesRegex(stasis.CorruptSnapshotError, message):
                    stasis.load(path)
                with self.assertRaisesRegex(stasis.CorruptSnapshotError, message):
                    stasis.loads(bytes(damaged))

    def test_a_buffer_longer_than_a_segment_takes_several(self):
        """Segments hold 8 MiB: a longer buffer is split over consecutive segments, each checked
        (read side by side on several threads); damage in the last one is found."""
        a = np.random.default_rng(7).integers(0, 2**32, ((16 << 20) + (3 << 20)) // 4, dtype=np.uint32)
        blob = stasis.dumps(a)
        head = (0x184D2A5E).to_bytes(4, "little")
        self.assertEqual(blob.count(head + ((8 << 20) + 17).to_bytes(4, "little")), 2)
        self.assertEqual(blob.count(head + ((3 << 20) + 17).to_bytes(4, "little")), 1)
        self.assertSameArray(a, stasis.loads(blob))
        for segment in (0, 2):
            damaged = bytearray(blob)
            damaged[[i for i in range(len(blob)) if blob.startswith(head, i)][segment] + 100] ^= 1
            with self.assertRaisesRegex(stasis.CorruptSnapshotError, "is damaged"):
                stasis.loads(bytes(damaged))

    @staticmethod
    def segments_of(blob):
        """(width, [plane length words]) of every buffer segment in snapshot bytes."""
        found, at = [], blob.find((0x184D2A5E).to_bytes(4, "little"))
        while at >= 0:
            size = int.from_bytes(blob[at + 4:at + 8], "little")
            width = blob[at + 12]
            if width in (1, 2, 4, 8) and 17 + 4 * (width - 1) <= size + 8 <= len(blob) - at:
                words = [int.from_bytes(blob[at + 13 + 4 * b:at + 17 + 4 * b], "little") for b in range(width)]
                found.append((width, words))
            at = blob.find((0x184D2A5E).to_bytes(4, "little"), at + 4)
        return found

    def test_shuffled_segments_round_trip_every_item_size(self):
        """Large arrays of items of 1, 2, 4, 8 and 16 bytes whose high bytes repeat are stored as
        byte planes with those planes compressed; lengths that end a segment short (and are odd),
        several segments, views, strides and Fortran order come back equal."""
        n = (9 << 20) + 8 * 3  # bytes: a full segment, then a short one
        cases = {
            "u1": np.tile(np.arange(7, dtype=np.uint8), (9 << 20) // 7 + 1)[:(9 << 20) + 3],  # odd length
            "i2": (np.arange(n // 2 + 1) % 300).astype(np.int16),                             # odd count
            "f4": np.linspace(0, 1, n // 4 + 1, dtype=np.float32),
            "f8": np.linspace(0, 1e3, n // 8),
            "c16": np.linspace(0, 1, n // 16) * (1 + 2j),
            "i8-2d-F": np.asfortranarray(np.arange(n // 8, dtype=np.int64).reshape(-1, 3)),
        }
        if np.dtype(np.longdouble).itemsize == 16:
            cases["g16"] = np.linspace(0, 1, n // 16, dtype=np.longdouble)
        for name, a in cases.items():
            with self.subTest(name):
                value = {"a": a, "view": a[1::3], "rev": a[::-1]}
                blob = stasis.dumps(value)
                back = stasis.loads(blob)
                for k in value:
                    self.assertSameArray(value[k], back[k])
                self.assertTrue(np.shares_memory(back["view"], back["a"]))
                self.assertLess(len(blob), a.nbytes // 2)
                shuffled = [s for s in self.segments_of(blob) if s[0] > 1]
                if a.itemsize > 1:
                    self.assertTrue(shuffled, "no segment stored as byte planes")
                    self.assertTrue(all(any(w & 0x80000000 for w in words) for _, words in shuffled))

    def test_a_damaged_shuffled_segment_is_refused(self):
        a = np.linspace(0, 1e3, 3 << 17)
        blob = stasis.dumps(a)
        head = (0x184D2A5E).to_bytes(4, "little")
        at = blob.index(head)
        self.assertEqual(blob[at + 12], 8)  # stored as 8 byte planes
        words = [int.from_bytes(blob[at + 13 + 4 * b:at + 17 + 4 * b], "little") for b in range(8)]
        first = at + 13 + 32
        last = first + sum(w & 0x7FFFFFFF for w in words) - 1
        for where, message in ((first + 10, "is damaged"), (last, "is damaged"), (last + 5, "is damaged"),
                               (at + 13, "has a plane of")):
            damaged = bytearray(blob)
            damaged[where] ^= 4
            with self.subTest(where=where - at):
                with self.assertRaisesRegex(stasis.CorruptSnapshotError, "buffer segment at payload byte [0-9]+ " + message):
                    stasis.loads(bytes(damaged))

    def test_loading_a_damaged_view_is_refused(self):
        from stasis.handlers import numpy_arrays
        state = numpy_arrays._save_array(np.arange(10.0)[2:])
        bad = state[:2] + (10_000,) + state[3:]  # an offset far outside its base
        with self.assertRaisesRegex(stasis.CorruptSnapshotError, "numpy array"):
            numpy_arrays._load_array(bad)
        o = np.array([1, 2, 3], dtype=object)
        state = numpy_arrays._save_array(o[1:])
        bad = state[:2] + (4000,) + state[3:]
        with self.assertRaisesRegex(stasis.CorruptSnapshotError, "outside its base"):
            numpy_arrays._load_array(bad)


class NumpyStaysOptional(unittest.TestCase):
    def test_stasis_never_imports_numpy_itself(self):
        code = ("import sys, stasis, pickle; stasis.loads(stasis.dumps([1, pickle.PickleBuffer(b'x')]));"
                "print('numpy' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "False")

    @unittest.skipIf(np is None, "numpy is not installed")
    def test_a_process_that_never_imported_numpy_loads_arrays(self):
        """As pickle does: the load imports numpy for the handler the snapshot names (numpy's
        import sets environment variables, which a load otherwise refuses), and a view comes
        back as a view of the restored base."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "arrays.snap")
            a = np.arange(24, dtype=np.float32).reshape(4, 6)
            stasis.dump({"a": a, "view": a[1:, ::2], "dtype": np.dtype("i2")}, path)
            code = ("import sys, stasis; x = stasis.load(sys.argv[1]); x['view'][0, 0] = -1;"
                    "import numpy; print(type(x['a']).__name__, x['a'][1, 0], numpy.shares_memory(x['view'], x['a']),"
                    "x['dtype'])")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
            out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, env=env)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.split(), ["ndarray", "-1.0", "True", "int16"])


if __name__ == "__main__":
    unittest.main()

"""UnsupportedObjectError names the type and the path from the root; nothing is written."""
import os
import select
import tempfile
import unittest

import stasis


class UnsupportedTest(unittest.TestCase):
    def test_path_and_type_in_message(self):
        s = select.epoll()  # its registrations cannot be read back (sockets have a handler)
        try:
            with self.assertRaises(stasis.UnsupportedObjectError) as e:
                stasis.dumps({"outer": [1, {"inner": s}]})
            self.assertIn("root['outer'][1]['inner']: select.epoll is not supported", str(e.exception))
        finally:
            s.close()

    def test_objects_of_c_extension_types_are_refused_not_faked(self):
        # Heap types of C extensions (_csv.writer was one, before csv got a handler) once passed
        # for plain Python classes (an instance written as an empty object, its class by value),
        # which wrote a snapshot that could not be loaded, or an object with its C state missing.
        import struct
        it = struct.iter_unpack("<i", bytes(8))
        self.assertTrue(type(it).__flags__ & (1 << 9))  # Py_TPFLAGS_HEAPTYPE
        for value, where in ((it, "root"), ([it.__next__], "root[0]"), ({"k": type(it)}, "root['k']")):
            with self.assertRaises(stasis.UnsupportedObjectError) as e:
                stasis.dumps(value)
            self.assertIn(where, str(e.exception))
            self.assertIn("_struct.unpack_iterator", str(e.exception))

    def test_path_through_instance(self):
        class Holder:
            pass
        h = Holder()
        h.conn = select.epoll()
        try:
            with self.assertRaises(stasis.UnsupportedObjectError) as e:
                stasis.dumps([h])
            self.assertIn("root[0].__dict__['conn']", str(e.exception))
        finally:
            h.conn.close()

    def test_existing_target_stays_intact(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "keep.snap")
            stasis.dump({"ok": 1}, path)
            with open(path, "rb") as f:
                before = f.read()
            s = select.epoll()
            try:
                with self.assertRaises(stasis.UnsupportedObjectError):
                    stasis.dump({"bad": s}, path)
            finally:
                s.close()
            with open(path, "rb") as f:
                self.assertEqual(f.read(), before)
            self.assertEqual(os.listdir(d), ["keep.snap"])
            self.assertEqual(stasis.load(path), {"ok": 1})

    def test_reducer_not_allowed(self):
        class Custom:
            def __reduce__(self):
                return (os.system, ("true",))
        with self.assertRaises(stasis.UnsupportedObjectError) as e:
            stasis.dumps(Custom())
        self.assertIn("which loading may not call", str(e.exception))


if __name__ == "__main__":
    unittest.main()

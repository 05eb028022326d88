"""Hostile snapshots (issue 18): files crafted with valid checksums (tests/format/craft.py), one per
finding. Each must fail with its Stasis error and leave no side effect: nothing created in a
marker directory, no process state changed, no code from the file run, no crash (each load runs in
a child process, so a crash is a failure of the test and not of the test run)."""
from __future__ import annotations

import json
import os
import subprocess
import struct
import sys
import tempfile
import textwrap
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stasis  # noqa: E402
from craft import (ADD_ITEMS, APPENDS, BUFFER, BUILD, CELL, CLASS, CLASS_STATE, CODE, DICT_ITEMS,  # noqa: E402
                   EMPTY_DICT, EMPTY_LIST, EMPTY_SET, FOOTER_SIZE, FUNCTION, FUNCTION_STATE, GENERATOR,
                   LIST_ITEMS, MEMO, NEW_OBJ, NONE, POP, REDUCE, REF, SET_ITEMS, SET_LAYOUT,
                   TUPLE, WEAK_REF, Ops, _compress, code_fields, footer, ops_of_code, program_meta, raw_segment,
                   segment, snapshot, snapshot_with_segments)

CORRUPT = stasis.CorruptSnapshotError.code

# Runs in a child: loads the file given as argv[1] and reports what happened as one JSON line,
# with the process state the hostile files target, so the parent can compare before and after.
CHILD = textwrap.dedent('''
    import builtins, json, os, sys, json as _json
    import stasis
    def state():
        import json as j
        return {"len": builtins.len is len, "environ": sorted(os.environ),
                "modules": sorted(k for k in sys.modules if k.startswith("stasis_victim")),
                "encoder": sorted(k for k in vars(j.JSONEncoder) if not k.startswith("__")),
                "makedirs": repr(os.makedirs.__defaults__)}
    before = state()
    result = {"ok": None}
    try:
        stasis.load(sys.argv[1])
        result = {"ok": True}
    except stasis.StasisError as e:
        result = {"ok": False, "kind": type(e).__name__, "code": e.code, "message": str(e)}
    except BaseException as e:
        result = {"ok": False, "kind": "NOT A STASIS ERROR: " + type(e).__name__, "message": str(e)}
    import gc; gc.collect()
    result["same_state"] = state() == before
    print(json.dumps(result), flush=True)
''')


class Hostile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.marker = os.path.join(self.tmp.name, "marker")
        os.mkdir(self.marker)

    def tearDown(self):
        self.tmp.cleanup()

    def load_in_child(self, data: bytes, timeout: float = 120) -> dict:
        path = os.path.join(self.tmp.name, "hostile.snap")
        with open(path, "wb") as f:
            f.write(data)
        r = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True,
                           timeout=timeout, cwd=self.tmp.name)
        self.assertEqual(r.returncode, 0, f"the loading process died (status {r.returncode}): {r.stderr[-2000:]}")
        result = json.loads(r.stdout.strip().splitlines()[-1])
        result["stderr"] = r.stderr
        return result

    def refused(self, data: bytes, *fragments: str, kind: str = "CorruptSnapshotError") -> dict:
        result = self.load_in_child(data)
        self.assertEqual(result.get("kind"), kind, result)
        for fragment in fragments:
            self.assertIn(fragment, result["message"])
        self.assertTrue(result["same_state"], "process state changed")
        self.assertEqual(os.listdir(self.marker), [], "the load created files")
        self.assertNotIn("Traceback", result["stderr"])
        return result

    # --- memory safety ---------------------------------------------------------------------------
    def test_additems_count_that_wraps_around(self):
        self.refused(snapshot(Ops().op(EMPTY_SET).op(ADD_ITEMS, 2**64 - 1)), "AddItems needs")

    def test_additems_wraparound_in_a_damaged_file_is_the_checksum_error(self):
        good = snapshot(Ops().op(EMPTY_SET).op(ADD_ITEMS, 2**64 - 1).op(POP, 0))
        damaged = bytearray(good)
        damaged[-45] ^= 0x55  # inside the compressed payload's last block: checksum fails
        result = self.load_in_child(bytes(damaged))
        self.assertFalse(result["ok"])
        self.assertTrue(result["kind"] in ("CorruptSnapshotError", "TruncatedSnapshotError"), result)

    def test_garbage_bytecode_with_generator_flag(self):
        def f():
            return 1
        fields = list(code_fields(f.__code__))
        fields[5] |= 0x20  # CO_GENERATOR
        fields[6] = bytes([100, 0xFF]) * 4 + bytes([144, 0x7F, 100, 0xFF, 83, 0])  # LOAD_CONST huge
        ops = ops_of_code(fields).module("builtins").str("f").str("f").op(NONE).op(FUNCTION).op(GENERATOR)
        self.refused(snapshot(ops), "Code refused")

    def test_code_with_a_stack_deeper_than_its_stacksize(self):
        def f():
            return 1
        fields = list(code_fields(f.__code__))
        fields[4] = 1  # co_stacksize
        fields[6] = bytes([151, 0]) + bytes([100, 0]) * 3 + bytes([83, 0])  # RESUME, 3 x LOAD_CONST, RETURN
        fields[14] = bytes([0x80 | (15 << 3) | 4])  # one location entry, no location, 5 units
        self.refused(snapshot(ops_of_code(fields)), "co_stacksize")

    # --- no code from the stream runs during load -------------------------------------------------
    def marker_code(self, name: str):
        """A function that, if it ever ran, would create a file in the marker directory."""
        src = f"def {name}(*a, **k):\n    open({os.path.join(self.marker, name)!r}, 'w').close()\n    yield 1\n"
        ns: dict = {}
        exec(compile(src, "<hostile>", "exec"), ns)
        return ns[name].__code__

    def test_non_generator_flagged_generator_runs_no_code(self):
        body = self.marker_code("flagged")
        # The same body without the generator prefix, still flagged CO_GENERATOR.
        plain = compile(f"def g():\n    open({os.path.join(self.marker, 'flagged')!r}, 'w').close()\n", "<h>", "exec")
        code = next(c for c in plain.co_consts if isinstance(c, types.CodeType))
        fields = list(code_fields(code))
        fields[5] |= 0x20
        ops = ops_of_code(fields).module("builtins").str("g").str("g").op(NONE).op(FUNCTION).op(GENERATOR)
        self.assertTrue(body)
        self.refused(snapshot(ops), "Code refused")

    def test_listitems_never_calls_an_append_attribute_set_by_build(self):
        # NewObj(types.SimpleNamespace-like plain class) + Build({"append": os.system}) + ListItems
        ops = (Ops().global_("argparse", "Namespace").op(TUPLE, 0).op(NEW_OBJ)
               .op(EMPTY_DICT).str("append").global_("posix", "system").op(SET_ITEMS, 1).op(BUILD)
               .str(f"touch {os.path.join(self.marker, 'pwned')}").op(LIST_ITEMS, 1))
        self.refused(snapshot(ops), "ListItems on a Namespace, which has no append")

    def test_by_value_class_init_and_setstate_do_not_run(self):
        init = self.marker_code("init")
        setstate = self.marker_code("setstate")
        # class C by value whose __init__ and __setstate__ are code from the file: Reduce(C, ()),
        # then NewObj(C) + Build(state).
        ops = Ops()
        ops.global_("builtins", "type").str("C").op(TUPLE, 0).op(EMPTY_DICT).str("__module__").str("x").op(SET_ITEMS, 1)
        ops.op(CLASS).op(MEMO)
        ops.op(EMPTY_DICT)
        for name, code in (("__init__", init), ("__setstate__", setstate)):
            ops.str(name).raw(ops_of_code(code_fields(code)).bytes()).module("builtins").str(name).str(name).op(NONE).op(FUNCTION)
        ops.op(SET_ITEMS, 2).op(CLASS_STATE)
        ops.op(TUPLE, 0).op(REDUCE)  # C(): a class from the file is not a value type
        self.refused(snapshot(ops), "Reduce refused")
        ops2 = Ops().raw(ops.bytes()[:-3]).op(TUPLE, 0).op(NEW_OBJ).op(EMPTY_DICT).op(BUILD)
        self.refused(snapshot(ops2), "never runs code from the snapshot")

    def test_popen_is_never_called(self):
        args = ["sh", "-c", f"touch {os.path.join(self.marker, 'popen')}"]
        ops = Ops().global_("subprocess", "Popen").value((args,)).op(REDUCE)
        self.refused(snapshot(ops), "Reduce refused", "not a value type")

    def test_partial_of_popen_is_never_called(self):
        args = ["sh", "-c", f"touch {os.path.join(self.marker, 'partial')}"]
        partial = Ops().global_("functools", "partial").global_("subprocess", "Popen").value(args).op(TUPLE, 2).op(REDUCE)
        # partial(Popen, args) is data; calling it (Reduce with it as the callable) is refused
        ops = Ops().raw(partial.bytes()).op(TUPLE, 0).op(REDUCE)
        self.refused(snapshot(ops), "Reduce refused")

    def test_file_handler_creates_no_file(self):
        path = os.path.join(self.marker, "created")
        state = ("file", path, "a", None, False, False, None, None, "BufferedWriter")
        ops = Ops().str("stasis.file").value(state).op(0x2B)  # Registered
        self.refused(snapshot(ops), "cannot reopen", kind="SnapshotIOError")

    def test_iter_with_a_sentinel_is_refused(self):
        ops = Ops().global_("builtins", "iter").global_("posix", "getpid").op(NONE).op(TUPLE, 2).op(REDUCE)
        self.refused(snapshot(ops), "iter needs exactly one argument")

    def test_weakref_callback_of_the_file_never_runs(self):
        code = self.marker_code("callback")
        ops = (Ops().op(EMPTY_SET)  # the referent: dies at the end of the load
               .raw(ops_of_code(code_fields(code)).bytes()).module("builtins").str("cb").str("cb").op(NONE).op(FUNCTION)
               .op(WEAK_REF))
        self.refused(snapshot(ops), "WeakRef with a callback")

    def test_tempfile_closer_never_unlinks(self):
        victim = os.path.join(self.tmp.name, "victim")
        open(victim, "w").close()
        state = {"file": None, "name": victim, "delete": True, "close_called": False}
        ops = Ops().global_("tempfile", "_TemporaryFileCloser").op(TUPLE, 0).op(NEW_OBJ).value(state).op(BUILD)
        self.refused(snapshot(ops), "finalizer")
        self.assertTrue(os.path.exists(victim))

    def test_modules_with_import_effects_are_not_imported(self):
        self.refused(snapshot(Ops().module("antigravity")), "never imports it")
        self.refused(snapshot(Ops().module("json.__main__")), "never imports it")

    # --- no process-wide state changed ------------------------------------------------------------
    def test_build_on_builtins(self):
        ops = Ops().module("builtins").value({"len": None}).op(BUILD)
        self.refused(snapshot(ops), "Build would change a module")

    def test_dictitems_into_os_environ(self):
        ops = (Ops().global_("builtins", "getattr").module("os").str("environ").op(TUPLE, 2).op(REDUCE)
               .str("STASIS_HOSTILE").str("1").op(DICT_ITEMS, 1))
        self.refused(snapshot(ops), "DictItems would change")

    def test_setitems_into_sys_modules(self):
        ops = (Ops().global_("builtins", "getattr").module("sys").str("modules").op(TUPLE, 2).op(REDUCE)
               .str("stasis_victim").op(NONE).op(SET_ITEMS, 1))
        self.refused(snapshot(ops), "SetItems would change")

    def test_classstate_on_a_library_class(self):
        ops = Ops().global_("json", "JSONEncoder").value({"hostile": 1}).op(CLASS_STATE)
        self.refused(snapshot(ops), "ClassState on JSONEncoder, a class this load did not make")

    def test_functionstate_on_a_library_function(self):
        ops = (Ops().global_("os", "makedirs").op(NONE).op(NONE).op(NONE).op(NONE).op(NONE).str("os")
               .op(FUNCTION_STATE))
        self.refused(snapshot(ops), "FunctionState on a function this load did not make")

    # --- bounded resources ------------------------------------------------------------------------
    def test_setlayout_of_a_huge_table(self):
        ops = Ops().op(EMPTY_SET).op(SET_LAYOUT, 2**30 - 1, 0, 0, 0)
        self.refused(snapshot(ops), "SetLayout of a table of 1073741824 slots")

    def test_flood_of_none(self):
        result = self.refused(snapshot(bytes([NONE]) * ((1 << 25) + 10)), "value stack holds")
        self.assertIn("op None", result["message"])

    def test_flood_of_memo(self):
        self.refused(snapshot(Ops().op(NONE).raw(bytes([MEMO]) * 1000).bytes()), "a second Memo")

    def test_bytes_of_a_size(self):
        self.refused(snapshot(Ops().global_("builtins", "bytes").value((10**12,)).op(REDUCE)), "with a size")

    def test_buffer_larger_than_the_payload(self):
        """Found by loads_fuzz (tests/fuzz/crashers/loads_fuzz-crash-91cf35...): the decoder allocated
        a Buffer op's declared size before any of its bytes arrived — 78 GiB from 37 bytes, an
        out-of-memory abort under ASan, and CPython's stray 'SystemError: deallocated bytearray'
        line on stderr when the allocation failed."""
        for n in (10**9, 83837531111):
            result = self.refused(snapshot(Ops().op(BUFFER, 0, 1, n).raw(b"abc")),
                                  f"Buffer op at op byte 0 claims {n} bytes, more than the whole payload")
            self.assertNotIn("SystemError", result["stderr"])

    def test_footer_claiming_a_raw_size_no_compression_reaches(self):
        """The footer's raw size bounds a Buffer op before the payload's end checks it: a crafted
        footer claiming 1 TB for a payload of a few hundred bytes is refused on opening."""
        data = snapshot(Ops().op(BUFFER, 0, 1, 10**9).raw(b"abc"))
        compressed, _raw, records = struct.unpack("<QQQ", data[-FOOTER_SIZE:-FOOTER_SIZE + 24])
        self.refused(data[:-FOOTER_SIZE] + footer(compressed, 10**12, records), "compressed bytes can hold")

    def test_a_failed_load_closes_no_generator_it_made(self):
        """Found by loads_fuzz (tests/fuzz/crashers/loads_fuzz-crash-dfe8c0...): a load that failed
        after making a generator freed it, and its finalizer close()d it — running the crafted
        frame with GeneratorExit, a SIGSEGV. The failed load's generators now end unrun."""
        path = os.path.join(HERE, "..", "fuzz", "crashers", "loads_fuzz-crash-dfe8c06e6e95d45469f03402742d39b05987ce1d")
        with open(path, "rb") as f:
            ops = f.read()
        self.refused(snapshot(ops), "Code refused")

    def test_list_of_a_huge_range(self):
        ops = (Ops().global_("builtins", "list").global_("builtins", "range").value((10**15,)).op(REDUCE)
               .op(TUPLE, 1).op(REDUCE))
        self.refused(snapshot(ops), "only plain values")

    # --- errors are Stasis errors -----------------------------------------------------------------
    def test_handler_errors_are_corrupt_snapshot_errors(self):
        ops = Ops().str("stasis.struct").value(12).op(0x2B)
        result = self.load_in_child(snapshot(ops))
        self.assertIn(result["kind"], ("CorruptSnapshotError", "IncompatibleSnapshotError"), result)

    def test_refused_constructor_value_is_a_corrupt_snapshot_error(self):
        self.refused(snapshot(Ops().global_("datetime", "date").value((b"xx",)).op(REDUCE)), "op Reduce")


class Verifier(unittest.TestCase):
    def test_every_standard_library_code_object_passes(self):
        """The verifier refuses what it cannot prove safe, and must not refuse the compiler's own
        output: every code object of the standard library round-trips (except* aside)."""
        root = os.path.dirname(os.__file__)
        checked = refused = 0
        failures = []
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in ("site-packages", "dist-packages", "test", "idlelib", "lib2to3")]
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(d, name)
                try:
                    with open(path, "rb") as f:
                        code = compile(f.read(), path, "exec")
                except (SyntaxError, ValueError):
                    continue
                try:
                    stasis.loads(stasis.dumps(code))
                    checked += 1
                except stasis.CorruptSnapshotError as e:
                    if "except*" not in str(e):
                        failures.append(f"{path}: {e}")
                    refused += 1
        self.assertEqual(failures, [])
        self.assertGreater(checked, 500)

    def test_loaded_functions_still_run(self):
        def outer(n):
            total = 0
            for i in range(n):
                try:
                    total += [j * 2 for j in range(i)][-1] if i else 0
                except IndexError:
                    pass
            return total
        self.assertEqual(stasis.loads(stasis.dumps(outer))(5), outer(5))



class RawSegments(unittest.TestCase):
    """Buffers stored out of line (FORMAT.md, "Raw segments"), crafted: the reader takes a
    segment of any size the op names, and refuses every inconsistency as a CorruptSnapshotError
    before the buffer is used."""
    DATA = bytes(range(256)) * 3 + b"tail"

    def crafted(self, segments: bytes, flags: int = 2, n: int = len(DATA), delta: int = 0) -> bytes:
        return snapshot_with_segments(segments, lambda at: Ops().op(BUFFER, flags, 1, n, at + delta))

    def test_a_crafted_segment_loads(self):
        back = stasis.loads(self.crafted(raw_segment(self.DATA)))
        self.assertEqual((type(back), back), (bytearray, bytearray(self.DATA)))
        back = stasis.loads(self.crafted(raw_segment(self.DATA), flags=3))
        self.assertEqual((type(back), back), (bytes, self.DATA))
        # the seed kept for loads_fuzz is this file
        seed = os.path.join(os.path.dirname(__file__), "..", "fuzz", "seeds", "raw_segment_v9.golden")
        with open(seed, "rb") as f:
            kept = f.read()
        made = self.crafted(raw_segment(self.DATA))
        skip = lambda d: d[12 + int.from_bytes(d[10:12], "little") + 4:]  # after the preamble
        self.assertEqual(skip(kept), skip(made))

    def test_shuffled_segments_load(self):
        """A segment stored as byte planes, some of them compressed, of every item width: joined
        back into the bytes, equal to what was crafted."""
        for width in (1, 2, 4):
            for compress in ((), (0,), tuple(range(width)), (width - 1,)):
                with self.subTest(width=width, compress=compress):
                    back = stasis.loads(self.crafted(segment(self.DATA, width, compress)))
                    self.assertEqual(back, bytearray(self.DATA))
        data = self.DATA[:768]
        back = stasis.loads(self.crafted(segment(data, 8, (0, 5, 7)), n=768))
        self.assertEqual(back, bytearray(data))

    def test_damaged_or_misplaced_segments_are_refused(self):
        cases = [
            (self.crafted(raw_segment(self.DATA, checksum=12345)), "is damaged"),
            (self.crafted(raw_segment(self.DATA), delta=1), "has no buffer segment header"),
            (self.crafted(raw_segment(self.DATA), delta=-3), "has no buffer segment header"),
            (self.crafted(raw_segment(self.DATA), delta=2**40), "lies outside the payload"),
            (self.crafted(raw_segment(self.DATA), n=len(self.DATA) + 1), "holds 772 bytes where 773"),
            (self.crafted(raw_segment(self.DATA), n=10**9), "more than the whole payload"),
            (self.crafted(raw_segment(self.DATA), flags=6), "flags must be 0 to 3"),
            (snapshot_with_segments(raw_segment(self.DATA),
                                    lambda at: Ops().op(BUFFER, 2, 8, 8, at)), "1 out of line"),
            (self.crafted(b"\x50\x2a\x4d\x18" + bytes(12)), "neither a zstd frame nor a buffer segment"),
            (self.crafted(raw_segment(self.DATA)[:-9]), "buffer segment"),
            # segments are full (64 MiB) but the last: a short one before it is not what was written
            (self.crafted(raw_segment(self.DATA[:100]) + raw_segment(self.DATA[100:])), "holds 100 bytes where"),
            # shuffled segments: planes that do not add up, a damaged plane, one that decompresses wrong
            (self.crafted(segment(self.DATA, 4, {1}, checksum=1)), "is damaged"),
            (self.crafted(segment(self.DATA, 3)), "has 3 planes for 772 bytes"),
            (self.crafted(segment(self.DATA, 4, planes=[self.DATA[0::4]] * 3 + [self.DATA[:10]])),
             "has a plane of 10 bytes for 193"),
            (self.crafted(segment(self.DATA, 4, {2}, planes=[self.DATA[b::4] for b in range(4)])),
             "has a plane of 193 compressed bytes for 193"),
            (self.crafted(segment(self.DATA, 4, {0}, planes=[_compress(self.DATA[0::4][:-1])] + [self.DATA[b::4] for b in (1, 2, 3)])),
             "has a plane that does not decompress to its 193 bytes"),
            (self.crafted(segment(self.DATA, 4, {0}, planes=[b"\x28\xb5\x2f\xfd" + bytes(12)] + [self.DATA[b::4] for b in (1, 2, 3)])),
             "has a plane that does not decompress"),
        ]
        for data, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(stasis.CorruptSnapshotError, message):
                    stasis.loads(data)

    def test_a_damaged_segment_no_op_reads_is_found_by_inspect(self):
        """stasis inspect checks the whole payload on opening: a raw segment's checksum too."""
        data = snapshot_with_segments(raw_segment(self.DATA, checksum=1) + raw_segment(self.DATA),
                                      lambda at: Ops().op(BUFFER, 2, 1, len(self.DATA), at + len(self.DATA) + 16))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.snap")
            with open(path, "wb") as f:
                f.write(data)
            out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "stasis"), "inspect", path], capture_output=True, text=True)
        self.assertEqual(out.returncode, CORRUPT, out.stderr)
        self.assertIn("is damaged", out.stderr)


STASIS = os.path.join(os.path.dirname(sys.executable), "stasis")


class Files(unittest.TestCase):
    """The file around the payload: what is read, how often, and what is reported."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def cli(self, *args, timeout=60):
        r = subprocess.run([STASIS, *args], capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        self.assertNotIn("Traceback", r.stderr)
        self.assertLessEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        return r

    def test_a_fifo_is_refused_not_waited_on(self):
        fifo = os.path.join(self.dir, "pipe.snap")
        os.mkfifo(fifo)
        with self.assertRaisesRegex(stasis.SnapshotIOError, "not a regular file"):
            stasis.load(fifo)
        for command in ("inspect", "resume"):
            r = self.cli(command, fifo, timeout=30)
            self.assertEqual(r.returncode, stasis.SnapshotIOError.code, r.stderr)
            self.assertIn("not a regular file", r.stderr)

    def test_nul_bytes_in_paths_raise_value_error(self):
        with self.assertRaises(ValueError):
            stasis.dump([1], os.path.join(self.dir, "y\0/etc/passwd"))
        with self.assertRaises(ValueError):
            stasis.load(os.path.join(self.dir, "y\0x"))
        self.assertEqual(os.listdir(self.dir), [])

    def test_bytes_after_a_signed_file_are_reported_as_such(self):
        key = os.path.join(self.dir, "key")
        with open(key, "wb") as f:
            f.write(b"secret")
        path = os.path.join(self.dir, "x.snap")
        stasis.dump({"a": 1}, path, key_file=key)
        with open(path, "ab") as f:
            f.write(b"trailing garbage")
        for k in (key, None):
            with self.assertRaisesRegex(stasis.CorruptSnapshotError, "16 bytes follow the end of the snapshot"):
                stasis.load(path, key_file=k)

    def test_temporary_files_of_killed_writers_are_removed(self):
        path = os.path.join(self.dir, "x.snap")
        dead = subprocess.Popen(["true"])
        dead.wait()
        stale = f"{path}.tmp-{dead.pid}-abcdefgh"
        alive = f"{path}.tmp-{os.getppid()}-abcdefgh"
        other = os.path.join(self.dir, "y.snap.tmp-1-abcdefgh")
        for p in (stale, alive, other):
            open(p, "w").close()
        stasis.dump([1], path)
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(["x.snap", os.path.basename(alive), "y.snap.tmp-1-abcdefgh"]))

    def program_snapshot(self, meta: str, damaged: bool = False) -> str:
        data = bytearray(snapshot(Ops().value({"layout": 0}), kind="program", meta=meta))
        if damaged:
            data[-45] ^= 0x55
        path = os.path.join(self.dir, "prog.snap")
        with open(path, "wb") as f:
            f.write(bytes(data))
        return path

    def test_resume_verifies_the_file_before_acting_on_its_metadata(self):
        """A damaged file naming a directory of its own in sys_path: nothing there is imported."""
        planted = os.path.join(self.dir, "planted")
        os.mkdir(planted)
        marker = os.path.join(self.dir, "imported")
        with open(os.path.join(planted, "subprocess.py"), "w") as f:
            f.write(f"open({marker!r}, 'w').close()\n")
        path = self.program_snapshot(program_meta(sys_path=[planted], handler_modules=["subprocess"]), damaged=True)
        r = self.cli("resume", path)
        self.assertIn(r.returncode, (stasis.CorruptSnapshotError.code, stasis.TruncatedSnapshotError.code), r.stderr)
        self.assertFalse(os.path.exists(marker))

    def test_malformed_metadata_is_a_corrupt_snapshot(self):
        path = self.program_snapshot(json.dumps({"modules": ["__main__"]}))
        r = self.cli("resume", path)
        self.assertEqual(r.returncode, CORRUPT, r.stderr)
        path = self.program_snapshot(program_meta(modules=["__main__", "os"]))
        r = self.cli("resume", path)
        self.assertEqual(r.returncode, CORRUPT, r.stderr)
        self.assertIn("would replace a module of this process", r.stderr)
        path = self.program_snapshot(program_meta(handler_modules=["antigravity"]))
        r = self.cli("resume", path)
        self.assertEqual(r.returncode, CORRUPT, r.stderr)

    def test_a_hash_seed_out_of_pythonhashseed_s_range_is_a_corrupt_snapshot(self):
        """The header's seed has 64 bits, PYTHONHASHSEED takes 0 .. 2^32-1: a crafted seed must not
        reach the re-exec, whose interpreter would die with a fatal error (exit 1)."""
        path = os.path.join(self.dir, "seed.snap")
        with open(path, "wb") as f:
            f.write(snapshot(Ops().value({"layout": 0}), kind="program", meta=program_meta(), hash_seed=2**40))
        for command in (["resume", path], ["debug", path],
                        ["run", "--snapshot", path, "--resume-if-present", "/srv/prog.py"]):
            r = subprocess.run([STASIS, *command], capture_output=True, text=True, timeout=60, cwd=self.dir,
                               stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "random"})
            self.assertNotIn("Fatal Python error", r.stderr, command)
            self.assertNotIn("Traceback", r.stderr, command)
            self.assertEqual(r.returncode, CORRUPT, (command, r.stderr))  # (run: the file is of /srv/prog.py)
            self.assertIn("hash seed 1099511627776 is out of range", r.stderr)

    def test_resume_restores_only_registered_library_states(self):
        code = textwrap.dedent('''
            import os, stasis
            from stasis.program import process_state
            before = os.sep
            try:
                process_state.restore_library_states({"os": ("user", "os", {"sep": "X"})})
            except stasis.CorruptSnapshotError as e:
                print("refused", "registered library state" in str(e), os.sep == before)
        ''')
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stdout.strip(), "refused True True", r.stderr)


class MakeFuzz(unittest.TestCase):
    @unittest.skipUnless(os.path.exists(os.path.join(os.environ.get("STASIS_BUILD_DIR", "build"), "fuzz", "loads_fuzz")),
                         "fuzz targets not built")
    def test_fuzz_seconds_bounds_each_target_and_reports_the_figures(self):
        """`make fuzz` runs tests/fuzz/run.sh with FUZZ_SECONDS; here 2 seconds per target."""
        build = os.environ.get("STASIS_BUILD_DIR", "build")
        src = os.path.join(HERE, "..", "..")
        env = dict(os.environ, FUZZ_SECONDS="2", FUZZ_JOBS="1")
        r = subprocess.run(["bash", os.path.join(src, "tests", "fuzz", "run.sh"), build], capture_output=True,
                           text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for target in ("loads_fuzz", "container_fuzz"):
            self.assertRegex(r.stdout, target + r": exit 0, [1-9][0-9]* executions .*edge coverage [1-9]")


class WriterAgrees(unittest.TestCase):
    """What loading an object graph refuses, dumping one refuses too: every snapshot written loads."""

    def test_a_weak_reference_with_a_callback(self):
        import weakref

        class Target:
            pass
        t = Target()
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, "weak reference with a callback"):
            stasis.dumps(weakref.ref(t, lambda r: None))

    def test_a_local_class_that_reduces_to_itself(self):
        class Local:
            def __reduce__(self):
                return (Local, ())
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, "which loading may not call"):
            stasis.dumps(Local())


if __name__ == "__main__":
    unittest.main()

"""Object snapshots of library objects real programs hold (python/stasis/handlers/): sqlite3,
text files iterated with next(), csv, re.Match, json's scanner, __getnewargs_ex__ keywords,
finished children's pipes, lru_cache, and handlers registered by a module of the program."""
import csv
import functools
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import unittest

import stasis
from stasis.handlers import sqlite as sqlite_handlers
from tests.handlers.support import rt




class TempDir(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)


class SQLite(TempDir):
    def setUp(self):
        super().setUp()
        sqlite_handlers.record_connections()  # what stasis run / resume do first

    def test_in_memory_database_keeps_rows_settings_and_functions(self):
        db = sqlite3.connect(":memory:", detect_types=sqlite3.PARSE_DECLTYPES)
        db.create_function("triple", 1, lambda v: 3 * v)
        db.create_collation("rev", lambda a, b: (a < b) - (a > b))
        db.execute("CREATE TABLE t (x INTEGER, s TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"s{i}") for i in range(5)])
        db.commit()
        db.row_factory = sqlite3.Row
        db.isolation_level = "IMMEDIATE"
        db.execute("PRAGMA foreign_keys = ON")
        r = rt(db)
        self.assertEqual([tuple(x) for x in r.execute("SELECT triple(x), s FROM t ORDER BY s COLLATE rev LIMIT 2")],
                         [(12, "s4"), (9, "s3")])
        self.assertEqual((r.isolation_level, r.row_factory), ("IMMEDIATE", sqlite3.Row))
        self.assertEqual(r.execute("PRAGMA foreign_keys").fetchone()[0], 1)

    def test_open_transaction_in_memory_is_kept_with_its_writes(self):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.execute("INSERT INTO t VALUES (1)")  # the implicit transaction stays open
        r = rt(db)
        self.assertTrue(r.in_transaction)
        self.assertEqual(r.execute("SELECT count(*) FROM t").fetchone()[0], 1)
        r.commit()
        self.assertFalse(r.in_transaction)
        r2 = rt(r)  # a database that was itself restored: a transaction's writes are seen too
        r2.execute("INSERT INTO t VALUES (2)")
        self.assertEqual(rt(r2).execute("SELECT count(*) FROM t").fetchone()[0], 2)

    def test_file_database_is_reopened_by_path(self):
        path = self.path("x.db")
        db = sqlite3.connect(path, timeout=2.5)
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (7)")
        db.commit()
        db.text_factory = bytes
        blob = stasis.dumps(db)
        db.execute("INSERT INTO t VALUES (8)")  # after the snapshot, in the file: the file is the truth
        db.commit()
        r = stasis.loads(blob)
        self.assertEqual(r.execute("SELECT sum(x) FROM t").fetchone()[0], 15)
        self.assertIs(r.text_factory, bytes)
        self.assertEqual(r.__dict__["_stasis_record"]["connect"][2]["timeout"], 2.5)
        r.close()
        db.close()
        os.unlink(path)
        with self.assertRaisesRegex(stasis.SnapshotIOError, "no longer exists"):
            stasis.loads(blob)

    def test_file_database_with_an_open_transaction_is_refused(self):
        db = sqlite3.connect(self.path("y.db"))
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.execute("INSERT INTO t VALUES (1)")
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, r"root: sqlite3.Connection .*open transaction.*commit"):
            stasis.dumps(db)
        db.commit()
        self.assertEqual(rt(db).execute("SELECT count(*) FROM t").fetchone()[0], 1)

    def test_cursor_continues_in_the_middle_of_its_rows(self):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
        cur = db.execute("SELECT x FROM t ORDER BY x DESC")
        cur.fetchmany(3)
        next(cur)
        r = rt({"db": db, "cur": cur})
        self.assertIs(r["cur"].connection, r["db"])
        self.assertEqual([x for (x,) in r["cur"]], [5, 4, 3, 2, 1, 0])
        write = db.execute("INSERT INTO t VALUES (99) RETURNING x")
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, "writes"):
            stasis.dumps(write)

    def test_rows_keep_names_and_values(self):
        db = sqlite3.connect(":memory:")
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT 1 AS a, 'x' AS b").fetchone()
        r = rt(row)
        self.assertEqual((r.keys(), tuple(r), r["b"]), (["a", "b"], (1, "x"), "x"))

    def test_connection_made_outside_stasis_run_with_functions_is_refused_by_name(self):
        db = sqlite3.Connection(":memory:")  # not through sqlite3.connect: nothing is recorded
        db.create_function("mine", 2, lambda a, b: a)
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, r"function mine/2.*stasis run"):
            stasis.dumps(db)
        plain = sqlite3.Connection(":memory:")
        self.assertEqual(rt(plain).execute("SELECT 41 + 1").fetchone()[0], 42)

    def test_temp_tables_are_refused(self):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TEMP TABLE t (x)")
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, "TEMP tables"):
            stasis.dumps(db)


class TextFilesAndCsv(TempDir):
    def test_a_file_iterated_with_next_continues_at_the_next_line(self):
        lines = [f"line {i} {'é' * (i % 3)}\n" for i in range(3000)]
        for newline, kwargs in ((None, {}), ("\r\n", {}), ("\r\n", {"newline": ""}),
                                (None, {"encoding": "utf-16"})):
            with self.subTest(written_with=newline, read_with=kwargs):
                path = self.path("lines.txt")
                with open(path, "w", newline=newline, encoding=kwargs.get("encoding")) as f:
                    f.writelines(lines)
                with open(path, **kwargs) as f:
                    for k in (1, 100, 2998):
                        while not next(f).startswith(f"line {k} "):
                            pass
                        with self.assertRaises(OSError):
                            f.tell()  # what made such files unsupported before
                        g = rt(f)
                        self.assertEqual(next(g), next(f))
                        self.assertEqual(g.newlines, f.newlines)
                        g.close()

    def test_csv_reader_writer_and_dict_variants(self):
        path = self.path("t.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f, delimiter=";", quoting=csv.QUOTE_NONNUMERIC)
            w.writerow(["k", "v"])
            for i in range(50):
                w.writerow([f"k{i}", "two\nlines" if i % 5 == 0 else i])
        f = open(path, newline="")
        reader = csv.DictReader(f, delimiter=";", quoting=csv.QUOTE_NONNUMERIC)
        for _ in range(7):
            next(reader)
        r = rt(reader)
        self.assertEqual((r.line_num, r.fieldnames), (reader.line_num, reader.fieldnames))
        self.assertEqual(list(r), list(reader))
        self.assertEqual(r.reader.dialect.delimiter, ";")
        f.close()
        out = io.StringIO()
        w = csv.writer(out, dialect="excel-tab")
        w2 = rt({"out": out, "w": w})
        w2["w"].writerow(["a", "b"])
        self.assertEqual(w2["out"].getvalue(), "a\tb\r\n")


class Values(unittest.TestCase):
    def test_re_match_is_found_again(self):
        s = "ab 123 cd 45x"
        matches = [re.search(r"(\d+)(x)?", s), re.match(r"a(b)", s), re.fullmatch(r"a|ab", "ab"),
                   list(re.finditer(r"(?P<n>\d)", s))[-1], re.compile(rb"\w+").search(b"  hey", 1)]
        for m, r in zip(matches, rt(matches)):
            self.assertEqual((r.groups(), r.span(), r.lastindex, r.lastgroup, r.pos, r.endpos, r.re),
                             (m.groups(), m.span(), m.lastindex, m.lastgroup, m.pos, m.endpos, m.re))

    def test_json_decoder_and_scanner(self):
        d = json.JSONDecoder(parse_float=str, object_pairs_hook=list)
        r = rt(d)
        self.assertEqual(r.decode('{"a": 1.5}'), [("a", "1.5")])
        self.assertEqual(rt(d.scan_once)("[1, 2.5]", 0), ([1, "2.5"], 8))

    def test_new_with_keyword_arguments(self):
        r = rt(KwNew("x", real=True))
        self.assertEqual((type(r), r.name, r.kw), (KwNew, "x", {"real": True}))

    def test_lru_cache_made_outside_stasis_run_restarts_empty(self):
        f = functools.lru_cache(maxsize=4)(abs)
        f(-3)
        r = rt(f)
        self.assertEqual((r(-3), r.cache_info().misses, r.cache_parameters()["maxsize"]), (3, 1, 4))

    def test_super_objects_stay_super_objects(self):
        """pickle's reduce of super(B, b) is b's own (super forwards the lookup): without the
        handler it came back as a new B instance."""
        b = SuperLeaf()
        bound, of_class, unbound = rt([super(SuperLeaf, b), super(SuperLeaf, SuperLeaf), super(SuperLeaf)])
        self.assertIs(type(bound), super)
        self.assertEqual((bound.__thisclass__, type(bound.__self__)), (SuperLeaf, SuperLeaf))
        self.assertEqual(bound.name(), "base")
        self.assertEqual(of_class.kind(), "SuperLeaf")
        self.assertIsNone(unbound.__self__)
        self.assertIs(unbound.__thisclass__, SuperLeaf)

    def test_xml_parsers_are_refused_with_the_reason(self):
        import xml.etree.ElementTree as ET
        parser = ET.XMLPullParser()
        parser.feed(b"<a><b>")
        with self.assertRaisesRegex(stasis.UnsupportedObjectError, r"XMLParser.*parse the whole document"):
            stasis.dumps(parser)


class SuperBase:
    def name(self):
        return "base"

    @classmethod
    def kind(cls):
        return cls.__name__


class SuperLeaf(SuperBase):
    def name(self):
        return "leaf"


class KwNew:
    def __new__(cls, name, **kw):
        self = object.__new__(cls)
        self.name, self.kw = name, kw
        return self

    def __getnewargs_ex__(self):
        return (self.name,), self.kw


class Subprocess(unittest.TestCase):
    def test_unread_output_of_a_finished_child_is_kept(self):
        p = subprocess.Popen([sys.executable, "-c", "import sys; print('out' * 1000); sys.stderr.write('err')"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.wait()
        first = p.stdout.read(10)
        r = rt(p)
        out, err = r.communicate()
        self.assertEqual((first + out, err, r.returncode), (b"out" * 1000 + b"\n", b"err", 0))
        self.assertEqual(p.communicate(), (out, err))  # the running program still reads them

    def test_a_running_child_is_refused_by_name(self):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            with self.assertRaisesRegex(stasis.UnsupportedObjectError, rf"child process {p.pid} is still running"):
                stasis.dumps(p)
        finally:
            p.kill()
            p.wait()


class ProgramHandlers(TempDir):
    """stasis.register in a module the program imports from elsewhere: resume imports it first."""

    def test_a_registering_module_outside_the_program_is_imported_on_resume(self):
        lib = os.path.join(self.tmp, "lib")
        prog = os.path.join(self.tmp, "prog")
        os.makedirs(lib)
        os.makedirs(prog)
        with open(os.path.join(lib, "devices.py"), "w") as f:
            f.write(textwrap.dedent("""
                import stasis
                class Device:
                    def __init__(self, n):
                        self.n = n
                    def __reduce_ex__(self, protocol):
                        raise TypeError("not picklable")
                stasis.register(Device, lambda d: d.n, Device)
            """))
        with open(os.path.join(prog, "main.py"), "w") as f:
            f.write(textwrap.dedent(f"""
                import sys
                sys.path.insert(0, {lib!r})
                import devices
                d = devices.Device(5)
                for i in range(20):
                    d.n += i
                print(d.n)
            """))
        build = os.environ.get("STASIS_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
        stasis_cli = os.path.join(build, "bin", "stasis")
        snap = os.path.join(self.tmp, "p.snap")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        r = subprocess.run([stasis_cli, "run", "--suspend-after", "6", "--snapshot", snap, "main.py"],
                           cwd=prog, env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 75, r.stderr)
        r = subprocess.run([stasis_cli, "resume", snap], cwd=prog, env=env, capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "195\n"), r.stderr)


class LibraryHandlersOnDemand(TempDir):
    """A snapshot of library objects loaded by a process that has not imported the library: the
    load imports it for the handler key the snapshot names (handlers.MODULE_OF_KEY)."""

    def test_the_key_table_matches_what_each_module_registers(self):
        from stasis import handlers
        registered = {}
        for module, make in handlers.MODULE_HANDLERS.items():
            try:
                made = make()
            except ImportError:  # numpy not installed: its keys are still in the table
                continue
            for key, *_ in made.values():
                registered[key] = module
        for key, module in registered.items():
            self.assertEqual(handlers.MODULE_OF_KEY.get(key), module, key)
        self.assertLessEqual(set(handlers.MODULE_OF_KEY.values()), set(handlers.MODULE_HANDLERS))

    def test_a_fresh_process_loads_sqlite_and_csv_objects(self):
        path = os.path.join(self.tmp, "objects.snap")
        db = sqlite3.connect(":memory:")
        db.execute("create table t (x)")
        db.execute("insert into t values (42)")
        db.commit()
        stasis.dump({"db": db, "dialect": csv.get_dialect("excel")}, path)
        code = ("import sys, stasis; assert 'sqlite3' not in sys.modules; x = stasis.load(sys.argv[1]);"
                "print(x['db'].execute('select x from t').fetchone()[0], x['dialect'].delimiter)")
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), ["42", ","])

    def test_a_key_of_no_library_module_is_still_refused(self):
        class Gadget:
            pass
        stasis.register(Gadget, lambda g: 1, lambda s: Gadget(), key="tests.gadget.unknown_elsewhere")
        path = os.path.join(self.tmp, "gadget.snap")
        stasis.dump(Gadget(), path)
        code = "import sys, stasis; stasis.load(sys.argv[1])"
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("no handler of that name is registered here", out.stderr)


if __name__ == "__main__":
    unittest.main()

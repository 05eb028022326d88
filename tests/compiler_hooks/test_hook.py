"""The import hook and `stasis run`: module selection, the rewrite cache (stale and foreign
entries never used), and a program's view of its run (argv, path, __main__, exit status,
traceback) identical to plain python3.11."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chsupport import REPO, cache, driver_cmd, hook, resume_points  # noqa: E402

PLAIN = os.path.realpath(sys.executable)  # the configured interpreter (the build's bin/python links to it)


class Selection(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def test_script_directory_and_globs(self) -> None:
        sel = hook.Selection([self.dir], rewrite=['pkg.*', 'json'], no_rewrite=['app.skip*', 'queue'])
        inside = os.path.join(self.dir, 'app', 'mod.py')
        self.assertTrue(sel.selects('app.mod', inside))
        self.assertFalse(sel.selects('app.skipme', inside))
        self.assertFalse(sel.selects('other', '/elsewhere/other.py'))
        self.assertTrue(sel.selects('pkg.sub', '/elsewhere/pkg/sub.py'))
        self.assertFalse(sel.selects('pkg', '/elsewhere/pkg/__init__.py'))
        self.assertTrue(sel.selects('json', '/usr/lib/python3.11/json/__init__.py'))
        self.assertTrue(sel.selects('threading', '/usr/lib/python3.11/threading.py'))
        self.assertTrue(sel.selects('asyncio.tasks', '/usr/lib/python3.11/asyncio/tasks.py'))
        self.assertFalse(sel.selects('queue', '/usr/lib/python3.11/queue.py'))   # --no-rewrite wins
        self.assertFalse(sel.selects('stasis.cli', inside))
        self.assertFalse(sel.selects('stasis', os.path.join(self.dir, 'stasis', '__init__.py')))

    def test_library_modules_are_selected_except_the_excluded_ones(self) -> None:
        import sysconfig
        stdlib = sysconfig.get_paths()['stdlib']
        sel = hook.Selection([self.dir])
        self.assertTrue(sel.selects('unittest.case', os.path.join(stdlib, 'unittest', 'case.py')))
        self.assertTrue(sel.selects('test.test_list', os.path.join(stdlib, 'test', 'test_list.py')))
        for name, path in (('logging', 'logging/__init__.py'), ('importlib.util', 'importlib/util.py'),
                           ('random', 'random.py'), ('encodings.idna', 'encodings/idna.py')):
            self.assertFalse(sel.selects(name, os.path.join(stdlib, path)), name)
        self.assertFalse(hook.Selection([self.dir], library=False).selects(
            'unittest.case', os.path.join(stdlib, 'unittest', 'case.py')))
        self.assertFalse(hook.Selection([self.dir], no_rewrite=['unittest.*']).selects(
            'unittest.case', os.path.join(stdlib, 'unittest', 'case.py')))

    def test_symlinked_root(self) -> None:
        real = os.path.join(self.dir, 'real')
        os.mkdir(real)
        link = os.path.join(self.dir, 'link')
        os.symlink(real, link)
        sel = hook.Selection([link])
        self.assertTrue(sel.selects('m', os.path.join(real, 'm.py')))

    def test_finder_only_takes_selected_source_modules(self) -> None:
        pkg = os.path.join(self.dir, 'sel_pkg')
        os.mkdir(pkg)
        for name in ('__init__', 'a', 'b'):
            with open(os.path.join(pkg, name + '.py'), 'w') as f:
                f.write('def f(x):\n    return len(str(x))\n')
        finder = hook.RewritingFinder(hook.Selection([], rewrite=['sel_pkg.a']))
        spec_a = finder.find_spec('sel_pkg.a', [pkg])
        self.assertIsInstance(spec_a.loader, hook.RewritingLoader)
        self.assertIsNone(finder.find_spec('sel_pkg.b', [pkg]))
        self.assertIsNone(finder.find_spec('math', None))          # builtin / extension
        with mock.patch.dict(os.environ, {'STASIS_CACHE_DIR': os.path.join(self.dir, 'c')}):
            code = spec_a.loader.get_code('sel_pkg.a')
        fn = next(c for c in code.co_consts if hasattr(c, 'co_code'))
        self.assertIsNotNone(resume_points.resume_table(fn))


class LazyRewriter(unittest.TestCase):
    """The rewriter's modules are imported only when a module has to be rewritten; the standard
    library modules they need are imported with the hook, before it is installed."""

    def test_the_hook_imports_every_standard_module_the_rewriter_needs(self) -> None:
        probe = textwrap.dedent(f'''
            import sys
            sys.path.insert(0, {REPO!r})
            try:
                from stasis.compiler_hooks import hook
                pkg = 'stasis.compiler_hooks'
            except ImportError:
                from compiler_hooks import hook
                pkg = 'compiler_hooks'
            before = set(sys.modules)
            parts = ('rewriter', 'lowering', 'scopes', 'sites', 'resume_points', 'bytecode', 'listing')
            print(sorted(m for m in set(sys.modules) if m.startswith(pkg + '.') and m.rsplit('.', 1)[1] in parts
                         and m not in (pkg + '.rewriter', pkg + '.bytecode')))
            import importlib
            for part in parts:
                importlib.import_module(pkg + '.' + part)
            print(sorted(m for m in set(sys.modules) - before if not m.startswith(pkg)))
        ''')
        out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, check=True).stdout
        loaded_with_hook, added_later = out.splitlines()
        self.assertEqual(loaded_with_hook, '[]')    # the rewriter's parts do not come with the hook
        self.assertEqual(added_later, '[]')         # and they need nothing the hook did not import


class Cache(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.src = os.path.join(self.dir, 'mod.py')
        self.write('def f(x):\n    return str(len(x))\n')
        env = mock.patch.dict(os.environ, {'XDG_CACHE_HOME': os.path.join(self.dir, 'xdg')})
        env.start()
        self.addCleanup(env.stop)
        os.environ.pop('STASIS_CACHE_DIR', None)
        dwb = mock.patch.object(sys, 'dont_write_bytecode', False)
        dwb.start()
        self.addCleanup(dwb.stop)

    def write(self, text: str) -> bytes:
        with open(self.src, 'w') as f:
            f.write(text)
        with open(self.src, 'rb') as f:
            return f.read()

    def test_roundtrip_and_location(self) -> None:
        data = self.write('def f(x):\n    return str(len(x))\n')
        code = hook.compile_cached(self.src, data)
        path = cache.cache_path(self.src)
        self.assertEqual(os.path.dirname(path), os.path.join(self.dir, '__pycache__'))
        self.assertTrue(os.path.exists(path))
        self.assertNotEqual(path, __import__('importlib.util').util.cache_from_source(self.src))
        again = cache.load(self.src, cache.source_key(self.src, data))
        self.assertEqual(again.co_consts[-1], code.co_consts[-1])

    def test_no_writing_into_source_trees_under_dont_write_bytecode(self) -> None:
        with mock.patch.object(sys, 'dont_write_bytecode', True):
            data = self.write('x = 1\n')
            hook.compile_cached(self.src, data)
            path = cache.cache_path(self.src)
            self.assertTrue(path.startswith(os.path.join(self.dir, 'xdg', 'stasis', 'rewrite')), path)
            self.assertTrue(os.path.exists(path))
            self.assertFalse(os.path.exists(os.path.join(self.dir, '__pycache__')))

    def test_another_rewriter_keeps_entries_of_its_own(self) -> None:
        """Two Stasis builds on one machine (another rewriter digest) do not share an entry's file:
        each would find the other's header and rewrite again at every start."""
        data = self.write('x = 1\n')
        hook.compile_cached(self.src, data)
        mine = cache.cache_path(self.src)

        clear = cache._suffix.cache_clear
        self.addCleanup(clear)
        clear()
        with mock.patch.object(cache, '_rewriter_digest', lambda: b'another build'):
            theirs = cache.cache_path(self.src)
            self.assertNotEqual(theirs, mine)
            self.assertIsNone(cache.load(self.src, cache.source_key(self.src, data)))
            hook.compile_cached(self.src, data)
        clear()
        self.assertTrue(os.path.exists(theirs))
        self.assertIsNotNone(cache.load(self.src, cache.source_key(self.src, data)))  # mine is still there

    def test_entries_another_build_left_long_ago_are_removed(self) -> None:
        """An upgrade leaves the old build's entries behind: an entry written for the same
        source is the moment to remove those not written for STALE_SECONDS; recent ones (a
        build used side by side) and other sources' stay."""
        data = self.write('x = 1\n')
        mine = cache.cache_path(self.src)
        directory = os.path.dirname(mine)
        os.makedirs(directory, exist_ok=True)
        stem = os.path.basename(self.src).rsplit('.', 1)[0]
        tag = sys.implementation.cache_tag
        old = os.path.join(directory, f'{stem}.{tag}.stasis1-00000.pyc')
        recent = os.path.join(directory, f'{stem}.{tag}.stasis1-11111.pyc')
        other_source = os.path.join(directory, f'{stem}x.{tag}.stasis1-00000.pyc')
        for path in (old, recent, other_source):
            with open(path, 'wb') as f:
                f.write(b'an entry of another build')
        long_ago = time.time() - cache.STALE_SECONDS - 3600
        os.utime(old, (long_ago, long_ago))
        os.utime(other_source, (long_ago, long_ago))
        hook.compile_cached(self.src, data)
        self.assertTrue(os.path.exists(mine))
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(recent))
        self.assertTrue(os.path.exists(other_source))

    def test_stdlib_goes_to_user_dir(self) -> None:
        with mock.patch.dict(os.environ, {'XDG_CACHE_HOME': self.dir}):
            os.environ.pop('STASIS_CACHE_DIR', None)
            p = cache.cache_path(os.path.join(os.path.dirname(os.__file__), 'threading.py'))
        self.assertTrue(p.startswith(os.path.join(self.dir, 'stasis', 'rewrite')), p)

    def test_stale_source_is_never_used(self) -> None:
        data1 = self.write('def f(x):\n    return 1\n')
        hook.compile_cached(self.src, data1)
        data2 = self.write('def f(x):\n    return 2\n')
        self.assertIsNone(cache.load(self.src, cache.source_key(self.src, data2)))
        ns: dict = {}
        exec(hook.compile_cached(self.src, data2), ns)
        self.assertEqual(ns['f'](0), 2)

    def test_other_rewriter_or_interpreter_is_never_used(self) -> None:
        data = self.write('def f(x):\n    return 1\n')
        key = cache.source_key(self.src, data)
        hook.compile_cached(self.src, data)
        self.assertIsNotNone(cache.load(self.src, key))
        with mock.patch.object(cache, 'REWRITER_VERSION', cache.REWRITER_VERSION + 1):
            self.assertIsNone(cache.load(self.src, key))
        with mock.patch.object(sys, 'version', sys.version + ' (another build)'):
            self.assertIsNone(cache.load(self.src, key))
        with mock.patch.object(cache, '_interpreter_id', lambda: b'x' * 16):
            self.assertIsNone(cache.load(self.src, key))

    def test_an_edit_to_any_module_of_the_rewriter_changes_the_key(self) -> None:
        """The key hashes every module of the package, not a list of names: an edit of any of
        them, a module added (a split of the rewriter) or removed each give entries a new key."""
        pkg = os.path.dirname(os.path.abspath(cache.__file__))
        copy = os.path.join(self.dir, 'pkg')
        shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns('__pycache__'))
        base = cache.package_digest(copy)
        self.assertEqual(base, cache.package_digest(pkg))
        self.assertEqual(cache._rewriter_digest(), cache.package_digest(pkg))
        modules = sorted(n for n in os.listdir(copy) if n.endswith('.py'))
        self.assertLessEqual({'rewriter.py', 'sites.py', 'scopes.py', 'lowering.py', 'resume_points.py',
                              'bytecode.py', 'listing.py'}, set(modules))
        seen = {base}
        for name in modules:
            path = os.path.join(copy, name)
            with open(path, 'rb') as f:
                original = f.read()
            with open(path, 'wb') as f:
                f.write(original.replace(b'\n', b'\n\n', 1))
            edited = cache.package_digest(copy)
            self.assertNotIn(edited, seen, name)
            seen.add(edited)
            with open(path, 'wb') as f:
                f.write(original)
        self.assertEqual(cache.package_digest(copy), base)
        with open(os.path.join(copy, 'new_part.py'), 'w') as f:
            f.write('X = 1\n')
        self.assertNotIn(cache.package_digest(copy), seen)
        os.unlink(os.path.join(copy, 'new_part.py'))
        os.unlink(os.path.join(copy, 'sites.py'))
        self.assertNotIn(cache.package_digest(copy), seen)
        # ... and an entry written under one digest is never read under another.
        data = self.write('def f(x):\n    return g(x)\n')
        key = cache.source_key(self.src, data)
        hook.compile_cached(self.src, data)
        self.assertIsNotNone(cache.load(self.src, key))
        with mock.patch.object(cache, '_rewriter_digest', lambda: b'an edited rewriter'):
            self.assertIsNone(cache.load(self.src, key))

    def test_the_rewriter_runs_no_stasis_module_from_outside_its_package(self) -> None:
        """What the key hashes (this package) is all of what produces cached code: the modules the
        rewriter imports, transitively, are modules of the package and nothing else of Stasis."""
        pkg = os.path.dirname(os.path.abspath(cache.__file__))
        todo, reached = ['rewriter'], set()
        while todo:
            name = todo.pop()
            if name in reached:
                continue
            reached.add(name)
            with open(os.path.join(pkg, name + '.py'), encoding='utf-8') as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    self.assertLessEqual(node.level, 1, f'{name}.py imports {node.module} from outside its package')
                    if node.level == 1:
                        todo.extend([node.module.split('.')[0]] if node.module else [a.name for a in node.names])
                    else:
                        self.assertFalse((node.module or '').startswith('stasis'), name)
                elif isinstance(node, ast.Import):
                    self.assertFalse(any(a.name.startswith('stasis') for a in node.names), name)
        self.assertLessEqual({'rewriter', 'sites', 'scopes', 'lowering', 'resume_points', 'bytecode'}, reached)

    def test_foreign_and_corrupt_entries(self) -> None:
        data = self.write('def f(x):\n    return 1\n')
        key = cache.source_key(self.src, data)
        path = cache.cache_path(self.src)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        import importlib.util
        import marshal
        # a plain .pyc's bytes at our path: different header -> ignored
        with open(path, 'wb') as f:
            f.write(importlib.util.MAGIC_NUMBER + b'\0' * 12 + marshal.dumps(compile(data, self.src, 'exec')))
        self.assertIsNone(cache.load(self.src, key))
        # right header, truncated body -> ignored
        hook.compile_cached(self.src, b'# other\n' + data)
        good = hook.compile_cached(self.src, data)
        with open(path, 'rb') as f:
            blob = f.read()
        with open(path, 'wb') as f:
            f.write(blob[:-20])
        self.assertIsNone(cache.load(self.src, key))
        self.assertEqual(hook.compile_cached(self.src, data).co_consts[-1], good.co_consts[-1])
        # same source bytes at another path: other key -> not shared
        other = os.path.join(self.dir, 'other.py')
        shutil.copy(self.src, other)
        self.assertNotEqual(cache.source_key(other, data), key)

    def test_rewriter_failure_falls_back_to_plain_code(self) -> None:
        data = self.write('def f(x):\n    return str(len(x))\n')
        err = __import__('io').StringIO()
        with mock.patch.object(hook, 'rewrite_module', side_effect=RuntimeError('bug')), \
                mock.patch.object(sys, 'stderr', err):
            code = hook.compile_cached(self.src, data)
        self.assertIsNone(resume_points.resume_table(code))
        self.assertIn('running it unrewritten', err.getvalue())
        bad = self.write('def f(:\n')
        with self.assertRaises(SyntaxError) as cm:
            hook.compile_cached(self.src, bad)
        self.assertEqual(cm.exception.lineno, 1)

    def test_read_only_directory_falls_back(self) -> None:
        ro = os.path.join(self.dir, 'ro')
        os.mkdir(ro)
        src = os.path.join(ro, 'm.py')
        with open(src, 'w') as f:
            f.write('x = 1\n')
        os.chmod(ro, 0o555)
        self.addCleanup(os.chmod, ro, 0o755)
        if os.access(ro, os.W_OK):
            self.skipTest('running as a user who can write anywhere (root)')
        with mock.patch.dict(os.environ, {'XDG_CACHE_HOME': os.path.join(self.dir, 'xdg')}):
            self.assertTrue(cache.cache_path(src).startswith(os.path.join(self.dir, 'xdg')))


PROGRAM = '''\
import sys, os
import helper
print(repr(sys.argv))
print(repr(sys.path[0]))
print(__name__, repr(__file__), __spec__, __package__, __cached__, type(__loader__).__name__)
print(helper.resumable())
print(repr(__doc__))
'''

HELPER = '''\
def resumable():
    from types import CodeType
    return any(type(c) is tuple and c and c[0] == '.stasis-resume-table' for c in resumable.__code__.co_consts)
'''


class Run(unittest.TestCase):
    """`stasis run` (or the runner when the CLI is not built) against the plain interpreter."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.env = dict(os.environ, STASIS_CACHE_DIR=os.path.join(self.dir, 'cache'), PYTHONHASHSEED='0')
        os.makedirs(os.path.join(self.dir, 'app'))
        self.put('app/prog.py', PROGRAM)
        self.put('app/helper.py', HELPER)

    def put(self, rel: str, text: str) -> str:
        path = os.path.join(self.dir, rel)
        with open(path, 'w') as f:
            f.write(textwrap.dedent(text))
        return path

    def both(self, args: list[str], cwd: str | None = None) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        kw = dict(capture_output=True, text=True, cwd=cwd or self.dir, env=self.env, timeout=120)
        plain = subprocess.run([PLAIN, *args], **kw)
        rewritten = subprocess.run([*driver_cmd(), *args], **kw)
        return plain, rewritten

    def test_script_view(self) -> None:
        plain, rw = self.both(['app/prog.py', 'a', '--flag', '-m', 'x'])
        self.assertEqual(plain.returncode, 0, plain.stderr)
        self.assertEqual(rw.returncode, 0, rw.stderr)
        p, r = plain.stdout.splitlines(), rw.stdout.splitlines()
        self.assertEqual(p[:3], r[:3])              # argv, sys.path[0], __main__ attributes
        self.assertEqual(p[4:], r[4:])
        self.assertEqual((p[3], r[3]), ('False', 'True'))   # helper: plain vs rewritten code
        self.assertEqual(rw.stderr, '')

    def test_module_view(self) -> None:
        self.put('app/mainmod.py', PROGRAM.replace('print(__name__, repr(__file__), __spec__', 'print(__name__, repr(__file__), __spec__.name'))
        plain, rw = self.both(['-m', 'mainmod', 'z'], cwd=os.path.join(self.dir, 'app'))
        self.assertEqual(plain.returncode, 0, plain.stderr)
        p, r = plain.stdout.splitlines(), rw.stdout.splitlines()
        self.assertEqual(p[:2], r[:2])
        self.assertEqual(p[2].split()[:4], r[2].split()[:4])
        self.assertEqual(r[3], 'True')

    def test_exit_statuses_and_tracebacks(self) -> None:
        cases = {
            'exit3.py': 'import sys\nsys.exit(3)\n',
            'exitstr.py': 'raise SystemExit("goodbye")\n',
            'exitnone.py': 'raise SystemExit\n',
            'uncaught.py': ('def f(d):\n    return d["a"] + len(str(d["missing"]))\n'
                            'def g():\n    return f({"a": 1}) * 2\n'
                            'try:\n    g()\nexcept KeyError as e:\n    raise ValueError(str(len(str(e)))) from e\n'),
            'syntax.py': 'def f(:\n    pass\n',
            'chained.py': 'try:\n    1/0\nexcept ZeroDivisionError:\n    print(undefined_name + str(1))\n',
        }
        for name, text in cases.items():
            with self.subTest(name):
                self.put(f'app/{name}', text)
                plain, rw = self.both([f'app/{name}'])
                self.assertEqual(rw.returncode, plain.returncode)
                self.assertEqual(rw.stdout, plain.stdout)
                self.assertEqual(rw.stderr, plain.stderr)

    def test_f_locals_never_shows_hidden_temporaries(self) -> None:
        # A callee reads its caller's f_locals in the middle of a lowered statement (a hidden
        # temporary is bound there); a tracer reads f_locals at every event and its write-back
        # (PyFrame_LocalsToFast) must not clear the temporaries; traceback captures locals.
        self.put('app/flocals.py', """
            import sys, traceback
            def peek():
                return sorted(sys._getframe(1).f_locals)
            def caller(x):
                y = [x]
                return [peek()] + [len(str(peek())), f(f(y) + f(peek()))]
            def f(a):
                return list(a)
            def capture(k):
                a = 1
                return traceback.StackSummary.extract(
                    traceback.walk_stack(None), capture_locals=True, limit=1)
            print(caller(1))
            print(capture(3).format())
            seen = set()
            def tracer(frame, event, arg):
                seen.update(frame.f_locals)
                return tracer
            sys.settrace(tracer)
            print(caller(2), capture(4)[0].locals)
            sys.settrace(None)
            print(sorted(n for n in seen if n.startswith('.')))
        """)
        plain, rw = self.both(['app/flocals.py'])
        self.assertEqual(plain.returncode, 0, plain.stderr)
        self.assertEqual((rw.returncode, rw.stdout, rw.stderr), (0, plain.stdout, ''))

    def test_prepare_rewrites_blocking_stdlib_imported_before_run(self) -> None:
        from chsupport import PACKAGE, REPO
        code = ('import sys; sys.path.insert(0, %r)\n'
                'from %s import runner, resume_points\n'
                'runner.prepare()\n'
                'import queue, json, logging\n'
                'print(resume_points.resume_table(queue.Queue.get.__code__) is not None,\n'
                '      resume_points.resume_table(json.dumps.__code__) is not None,\n'
                '      resume_points.resume_table(logging.getLogger.__code__) is not None)\n' % (REPO, PACKAGE))
        p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                           env=self.env, timeout=120)
        # Library modules are rewritten by default (json), except those of LIBRARY_EXCLUDED (logging).
        self.assertEqual(p.stdout.split(), ['True', 'True', 'False'], p.stderr)

    def test_missing_script(self) -> None:
        plain, rw = self.both(['app/nope.py'])
        self.assertEqual((plain.returncode, rw.returncode), (2, 2))
        self.assertIn("can't open file", rw.stderr)


if __name__ == '__main__':
    unittest.main()

"""stasis.update in one process: identity-keeping redefine (closures, decorator-held copies,
defaults), out-of-order revert, refused free-variable changes, classes updated in place, eager and
lazy field addition and conversion, instruments that keep tracebacks and line numbers."""
from __future__ import annotations

import sys
import traceback
import types
import unittest

from stasis import update
from stasis.updater import apply_file
from stasis.updater.errors import NotQuiescentError, UpdateRefusedError

SOURCE = '''
import functools

def helper(x, k=1):
    return x + k

def make(n):
    def scaled(x):
        return x * n
    return scaled

def deco(f):
    @functools.wraps(f)
    def wrapper(*a, **kw):
        return f(*a, **kw)
    return wrapper

@deco
def handler(x):
    return "v0:%d" % x

REGISTRY = {"h": handler}

class Shop:
    def __init__(self, name):
        self.name = name

    def hello(self):
        return "hello " + self.name

    def fail(self):
        x = 1
        return x / 0

def gen(n):
    yield n
    return "done"

async def coro(x):
    return x * 2

@functools.lru_cache(maxsize=None)
def square(x):
    return x * x
'''


class ApiTest(unittest.TestCase):
    def setUp(self) -> None:
        self.name = f"upd_app_{self.id().rsplit('.', 1)[-1]}"
        self.mod = types.ModuleType(self.name)
        self.mod.__file__ = f"<{self.name}>"
        sys.modules[self.name] = self.mod
        exec(compile(SOURCE, f"{self.name}.py", "exec"), self.mod.__dict__)

    def tearDown(self) -> None:
        sys.modules.pop(self.name, None)

    def test_redefine_keeps_identity_and_reaches_every_copy(self) -> None:
        m = self.mod
        f = m.helper
        copy = types.FunctionType(f.__code__, m.__dict__, "helper", f.__defaults__)
        closures = [m.make(2), m.make(3)]

        def helper(x, k=10):
            return x * 100 + k
        update.redefine(f"{self.name}.helper", helper)
        self.assertIs(m.helper, f)
        self.assertEqual((m.helper(1), copy(1)), (110, 110))

        def scaled(x):
            return x * n + 1  # noqa: F821  (n is the closure's free variable)
        n = 0  # noqa: F841  (makes n a free variable of scaled above)
        update.redefine(closures[0], scaled)
        self.assertEqual([c(10) for c in closures], [21, 31])   # every closure, each with its own cell

        def handler(x):
            return "v1:%d" % x
        update.redefine(f"{self.name}.handler", handler)
        self.assertEqual((m.handler(3), m.REGISTRY["h"](4)), ("v1:3", "v1:4"))

    def test_redefining_a_cached_function_empties_its_cache(self) -> None:
        # Results computed by the replaced code would outlive the fix: the update empties the cache.
        m = self.mod
        self.assertEqual([m.square(3), m.square(3)], [9, 9])
        self.assertEqual(m.square.cache_info().currsize, 1)

        def square(x):
            return x * x + 1
        update.redefine(f"{self.name}.square", square)
        self.assertEqual(m.square.cache_info().currsize, 0)
        self.assertEqual(m.square(3), 10)

    def test_out_of_order_revert(self) -> None:
        m = self.mod

        def handler(x):
            return "v1:%d" % x
        u1 = update.redefine(f"{self.name}.handler", handler)

        def handler(x):  # noqa: F811
            return "v2:%d" % x
        u2 = update.redefine(f"{self.name}.handler", handler)
        self.assertEqual(m.handler(1), "v2:1")
        update.revert(u1)
        self.assertEqual(m.handler(1), "v2:1")   # update 2 stays applied with its own code
        update.revert(u2)
        self.assertEqual(m.handler(1), "v0:1")
        with self.assertRaisesRegex(UpdateRefusedError, "reverted, not applied"):
            update.revert(u1)

    def test_check_function_safe_point(self) -> None:
        ready = {"now": False}

        def handler(x):
            return "v1:%d" % x
        with self.assertRaisesRegex(NotQuiescentError, "check function did not return True"):
            update.redefine(f"{self.name}.handler", handler, safepoint=lambda: ready["now"], timeout=0.05)
        self.assertEqual(self.mod.handler(1), "v0:1")
        ready["now"] = True
        update.redefine(f"{self.name}.handler", handler, safepoint=lambda: ready["now"], timeout=0.05)
        self.assertEqual(self.mod.handler(1), "v1:1")

    def test_added_free_variable_is_refused(self) -> None:
        secret = 5

        def helper(x, k=1):
            return x + secret
        with self.assertRaisesRegex(UpdateRefusedError, r"free variables \['secret'\]"):
            update.redefine(f"{self.name}.helper", helper)
        self.assertEqual(self.mod.helper(1), 2)   # unchanged

    def test_new_code_reading_a_global_the_module_lacks_is_refused(self) -> None:
        def helper(x, k=1):
            return only_in_update(x)  # noqa: F821
        with self.assertRaisesRegex(UpdateRefusedError, r"reads the globals \['only_in_update'\]"):
            update.redefine(f"{self.name}.helper", helper)

    def test_class_updated_in_place_with_fields_and_conversion(self) -> None:
        m = self.mod
        shop = m.Shop("a")
        cls = m.Shop

        class Shop:
            def __init__(self, name):
                self.name = name
                self.rating = 0

            def hello(self):
                return f"HELLO {self.name} {self.rating}"

            def bye(self):
                return "bye " + super().__repr__()[:1]
        u_cls = update.redefine(f"{self.name}.Shop", Shop)
        u_field = update.add_field(f"{self.name}.Shop.rating", init=lambda s: 5)
        self.assertIs(m.Shop, cls)
        self.assertEqual((shop.hello(), m.Shop("b").hello(), shop.bye()), ("HELLO a 5", "HELLO b 0", "bye <"))
        update.add_field(f"{self.name}.Shop.stars", init=lambda s: len(s.name) * 2, lazy=True)
        self.assertNotIn("stars", shop.__dict__)
        self.assertEqual(shop.stars, 2)
        self.assertIn("stars", shop.__dict__)
        lazy = m.Shop("lazy")
        update.convert(f"{self.name}.Shop", lambda s: setattr(s, "name", s.name.upper()), lazy=True,
                       undo=lambda s: setattr(s, "name", s.name.lower()))
        self.assertIsNot(type(lazy), cls)                 # pending until first touched
        self.assertEqual(lazy.name, "LAZY")
        self.assertIs(type(lazy), cls)
        update.revert(u_field)
        self.assertNotIn("rating", shop.__dict__)
        update.revert(u_cls)
        self.assertEqual(shop.hello(), "hello A")
        self.assertFalse(hasattr(shop, "bye"))

    def test_eager_conversion_to_a_new_class(self) -> None:
        m = self.mod
        shops = [m.Shop("a"), m.Shop("b")]

        class Store:
            def __convert__(self):
                self.name = "store " + self.name

            def hello(self):
                return "hi " + self.name
        update.convert(f"{self.name}.Shop", Store)
        self.assertEqual([type(s) for s in shops], [Store, Store])      # converted at once
        self.assertEqual([s.hello() for s in shops], ["hi store a", "hi store b"])

    def test_a_refused_attribute_rolls_the_whole_commit_back(self) -> None:
        import enum

        class Color(enum.Enum):
            RED = 1
        self.mod.Color = Color
        shop = self.mod.Shop("a")
        source = (f"from stasis.update import convert, redefine\n"
                  f"convert('{self.name}.Shop', lambda s: None, lazy=True, undo=lambda s: None)\n"
                  f"class Color:\n"
                  f"    RED = 2\n"                       # EnumType refuses to reassign a member
                  f"redefine('{self.name}.Color', Color)\n")
        before = len(update.list_updates())
        with self.assertRaisesRegex(AttributeError, "RED"):
            apply_file("<rollback test>", source)
        self.assertIs(type(shop), self.mod.Shop)            # the retyping was undone
        self.assertEqual(Color.RED.value, 1)
        self.assertEqual(len(update.list_updates()), before)

    def test_instrument_keeps_tracebacks_and_arguments_explicit(self) -> None:
        m = self.mod
        seen = []
        u = update.instrument(f"{self.name}.Shop.fail", before=lambda self: seen.append(("before", self.name)),
                              on_exception=lambda exception: seen.append(("exc", type(exception).__name__)))
        try:
            m.Shop("x").fail()
        except ZeroDivisionError:
            tb = traceback.extract_tb(sys.exc_info()[2])
        self.assertEqual([(f.name, f.lineno) for f in tb][-1], ("fail", 33))   # the target's own line
        self.assertEqual(len(tb), 2)                                          # no wrapper frame
        self.assertEqual(seen, [("before", "x"), ("exc", "ZeroDivisionError")])
        at_line = []
        update.instrument(f"{self.name}.Shop.fail", line=33, before=lambda x, self: at_line.append(x))
        with self.assertRaises(ZeroDivisionError):
            m.Shop("y").fail()
        self.assertEqual(at_line, [1])
        update.revert(u)

    def test_instrument_generators_and_coroutines(self) -> None:
        import asyncio
        m = self.mod
        seen = []
        update.instrument(f"{self.name}.gen", before=lambda n: seen.append(("gen", n)),
                          after=lambda return_value: seen.append(("gen done", return_value)))
        update.instrument(f"{self.name}.coro", before=lambda x: seen.append(("coro", x)),
                          after=lambda return_value: seen.append(("coro done", return_value)))
        self.assertEqual(list(m.gen(7)), [7])
        self.assertEqual(asyncio.run(m.coro(4)), 8)
        self.assertEqual(seen, [("gen", 7), ("gen done", "done"), ("coro", 4), ("coro done", 8)])
        with self.assertRaisesRegex(UpdateRefusedError, "generator or coroutine function.*line instruments"):
            update.instrument(f"{self.name}.gen", line=36, before=print)


if __name__ == "__main__":
    unittest.main()

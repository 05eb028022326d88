"""Identity, cycles of every kind, and unbounded depth (no recursion on the C stack)."""
import unittest

import stasis


def rt(x):
    return stasis.loads(stasis.dumps(x))


class Node:
    pass


class IdentityTest(unittest.TestCase):
    def test_shared_objects_stay_shared(self):
        shared = [1]
        s = "a string shared " * 3
        inst = Node()
        r = rt([shared, shared, s, s, inst, inst, (shared,), (shared,)])
        self.assertIs(r[0], r[1])
        self.assertIs(r[2], r[3])
        self.assertIs(r[4], r[5])
        self.assertIs(r[6][0], r[0])

    def test_cycle_through_list_dict(self):
        a = []
        a.append(a)
        r = rt(a)
        self.assertIs(r[0], r)
        d = {}
        d["self"] = d
        r = rt(d)
        self.assertIs(r["self"], r)

    def test_cycle_through_tuple(self):
        lst = []
        t = (lst, 1)
        lst.append(t)
        r = rt(t)
        self.assertIs(r[0][0], r)

    def test_cycle_through_frozenset(self):
        n = Node()
        fs = frozenset([n])
        n.fs = fs
        r = rt(fs)
        (m,) = r
        self.assertIs(m.fs, r)

    def test_cycle_through_instance_dict(self):
        a, b = Node(), Node()
        a.other, b.other = b, a
        ra = rt(a)
        self.assertIs(ra.other.other, ra)

    def test_cycle_through_closure(self):
        def make():
            def f():
                return f
            return f
        f = rt(make())
        self.assertIs(f(), f)

    def test_cycle_through_function_globals_by_value(self):
        g = {"__builtins__": __builtins__}
        exec("def make():\n"
             "    n = [0]\n"
             "    def inc():\n"
             "        n[0] += 1\n"
             "        return n[0]\n"
             "    def get():\n"
             "        return n[0]\n"
             "    return inc, get\n", g)
        inc, get = g["make"]()
        g["pair"] = (inc, get)  # the functions' own globals refer back to them
        inc2, get2 = rt((inc, get))
        inc2()
        self.assertEqual(get2(), 1)
        self.assertIs(inc2.__globals__, get2.__globals__)
        self.assertIs(inc2.__globals__["pair"][0], inc2)

    def test_instance_reached_through_its_by_value_class(self):
        def factory():
            class Local:
                pass
            Local.singleton = Local()
            return Local.singleton
        obj = rt(factory())
        self.assertIs(type(obj).singleton, obj)

    def test_deep_nesting_100000(self):
        deep = []
        cur = deep
        for _ in range(100_000):
            nxt = []
            cur.append(nxt)
            cur = nxt
        r = rt(deep)
        depth = 0
        while r:
            r = r[0]
            depth += 1
        self.assertEqual(depth, 100_000)
        deep_d = {}
        cur = deep_d
        for _ in range(100_000):
            cur["k"] = {}
            cur = cur["k"]
        rt(deep_d)
        t = ()
        for _ in range(100_000):
            t = (t,)
        rt(t)


if __name__ == "__main__":
    unittest.main()

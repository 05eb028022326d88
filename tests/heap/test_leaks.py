"""Repeated round trips leave the object count and the RSS flat."""
import gc
import resource
import unittest
import weakref

import stasis


class Node:
    def __init__(self, i):
        self.i = i
        self.items = [i, str(i), (i, 1.5)]


def sample():
    shared = Node(-1)
    def gen():
        x = yield 1
        yield x
    g = gen()
    next(g)
    d = {"nodes": [Node(i) for i in range(200)], "shared": [shared, shared], "s": {1, 2},
         "f": lambda v: v, "g": g, "w": weakref.ref(shared), "e": ValueError("x")}
    d["self"] = d
    return d


def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


class LeakTest(unittest.TestCase):
    def test_round_trips_do_not_leak(self):
        value = sample()
        for _ in range(20):  # warm up caches, interned strings, allocator pools
            stasis.loads(stasis.dumps(value))
        gc.collect()
        objects, rss = len(gc.get_objects()), rss_kb()
        for _ in range(300):
            stasis.loads(stasis.dumps(value))
        gc.collect()
        self.assertLess(len(gc.get_objects()) - objects, 50)
        self.assertLess(rss_kb() - rss, 4096)


if __name__ == "__main__":
    unittest.main()

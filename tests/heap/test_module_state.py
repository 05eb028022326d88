"""Module state for the whole-program snapshot: user modules keep all globals (module-level
classes and functions by reference), library modules only registered state."""
import random
import sys
import types
import unittest

import stasis


class ModuleStateTest(unittest.TestCase):
    def test_random_module_generator(self):
        random.seed(7)
        random.random()
        state = stasis.loads(stasis.dumps(stasis.module_state(random)))
        expected = [random.random() for _ in range(3)]
        random.seed(99)
        stasis.restore_module_state(random, state)
        self.assertEqual([random.random() for _ in range(3)], expected)

    def test_user_module_globals(self):
        me = sys.modules[__name__]
        kind, name, values = stasis.module_state(me)
        self.assertEqual((kind, name), ("user", __name__))
        self.assertIs(values["ModuleStateTest"], ModuleStateTest)
        data = stasis.dumps(stasis.module_state(me))
        globals()["COUNTER"] = 41
        state = stasis.loads(data)
        self.assertIs(state[2]["ModuleStateTest"], ModuleStateTest)  # by reference, not a copy
        stasis.restore_module_state(me, state)
        self.assertNotIn("COUNTER", state[2])

    def test_threading_counter(self):
        import threading
        threading.Thread(target=lambda: None).name  # advance the counter
        data = stasis.dumps(stasis.module_state(threading))
        expected = threading.Thread(target=lambda: None).name
        stasis.restore_module_state(threading, stasis.loads(data))
        self.assertEqual(threading.Thread(target=lambda: None).name, expected)

    def test_library_module_without_registration(self):
        import json
        self.assertEqual(stasis.module_state(json), ("library", "json", None))


if __name__ == "__main__":
    unittest.main()

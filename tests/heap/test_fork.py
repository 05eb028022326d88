"""dumps/loads keep working in a child made by fork() after the parent used them (the zstd context
cached per thread and its worker threads do not survive fork)."""
import os
import signal
import unittest

import stasis


class ForkTest(unittest.TestCase):
    def test_dump_and_load_in_forked_child(self):
        data = [i * 0.5 for i in range(300_000)]
        blob = stasis.dumps(data)  # the parent now holds a cached multi-threaded zstd context
        pid = os.fork()
        if pid == 0:  # child: must not hang on the parent's (absent) zstd worker threads
            signal.alarm(60)  # a hang kills the child, which fails the test
            ok = stasis.loads(stasis.dumps(data)) == data and stasis.loads(blob) == data
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(stasis.loads(stasis.dumps(data)), data)


if __name__ == "__main__":
    unittest.main()

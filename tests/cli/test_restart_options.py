"""`stasis restart PID` options checked by their effect on a running service (samples/kv_store.py):
--source and --update applied in the new process (its replies come from the new code, the
state is kept, the update module's data change is there), and --timeout (a switch that takes longer
is abandoned: exit 99, the old process goes on serving with its state)."""
import json
import os
import time
import urllib.request

from tests.services.support import SAMPLES, ServiceTestCase, alive, free_port

KV_STORE = os.path.join(SAMPLES, "kv_store.py")


class RestartOptions(ServiceTestCase):
    def start_store(self):
        port = free_port()
        p = self.start_service(KV_STORE, f"127.0.0.1:{port}", ready="kv store serving")
        return p, f"http://127.0.0.1:{port}"

    @staticmethod
    def call(url, method="GET"):
        req = urllib.request.Request(url, method=method, data=b"" if method != "GET" else None)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def test_source_and_update_are_applied_in_the_new_process(self):
        p, base = self.start_store()
        for seq in range(3):
            self.call(f"{base}/incr/a?client=t&seq={seq}", "POST")
        new_source = os.path.join(self.tmp, "v3", "kv_store.py")
        os.makedirs(os.path.dirname(new_source))
        with open(KV_STORE) as f:
            text = f.read()
        self.assertIn('return "kv-store 1"', text)
        with open(new_source, "w") as f:
            f.write(text.replace('return "kv-store 1"', 'return "kv-store 3"'))
        update = os.path.join(self.tmp, "seed.py")
        with open(update, "w") as f:
            f.write("import __main__\nwith __main__.lock:\n    __main__.store['seeded'] = 41\n")
        new = self.restart(p.pid, "--source", f"{new_source}=__main__", "--update", update)
        self.assertNotEqual(new, p.pid)
        stats = self.call(f"{base}/stats")
        self.assertEqual(stats["server"], "kv-store 3")   # --source: the new code runs
        self.assertEqual(stats["pid"], new)
        self.assertEqual(self.call(f"{base}/get/a")["value"], 3)        # the state was kept
        self.assertEqual(self.call(f"{base}/get/seeded")["value"], 41)  # --update ran

    def test_timeout_abandons_a_slow_switch_and_the_old_process_goes_on(self):
        p, base = self.start_store()
        self.call(f"{base}/incr/a?client=t&seq=0", "POST")
        started = time.monotonic()
        r = self.stasis("restart", str(p.pid), "--timeout", "0.05")
        self.assertEqual(r.returncode, 99, r.stderr)
        self.assertIn("did not take over in time", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertLess(time.monotonic() - started, 30)
        self.assertTrue(alive(p.pid))
        stats = self.call(f"{base}/stats")
        self.assertEqual((stats["pid"], stats["server"], stats["keys"]), (p.pid, "kv-store 1", 1))
        # and with time enough, the same service restarts
        new = self.restart(p.pid, "--timeout", "120")
        self.assertEqual(self.call(f"{base}/stats")["pid"], new)


if __name__ == "__main__":
    import unittest
    unittest.main()

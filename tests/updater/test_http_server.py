"""A threaded http.server serving a loop of client requests while a redefine, an eager and a lazy
field addition, an instrument and two (out-of-order) reverts are applied with `stasis ctl`:
no request fails, and responses change exactly when each command has returned."""
from __future__ import annotations

import http.client
import threading
import unittest

from tests.updater.support import TargetTestCase

SERVER = '''
import http.server, socketserver, stasis

HITS = []

class Item:
    def __init__(self, name, price):
        self.name = name
        self.price = price

ITEMS = [Item("a", 1), Item("b", 2)]

def render(item):
    return f"{item.name}:{item.price}"

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ";".join(render(i) for i in ITEMS).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Hits", str(len(HITS)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
stasis.serve_updates()
print(server.server_address[1], flush=True)
server.serve_forever()
'''

STEPS = {
    "redefine.py": '''
from stasis.update import redefine
def render(item):
    return f"{item.name}={item.price}"
redefine("__main__.render", render)
''',
    "eager.py": '''
from stasis.update import add_field, redefine
add_field("__main__.Item.stock", init=lambda item: 10 * item.price)
def render(item):
    return f"{item.name}={item.price}x{item.stock}"
redefine("__main__.render", render)
''',
    "lazy.py": '''
from stasis.update import add_field, redefine
add_field("__main__.Item.color", init=lambda item: "red" if item.name == "a" else "blue", lazy=True)
def render(item):
    return f"{item.name}={item.price}x{item.stock}/{item.color}"
redefine("__main__.render", render)
''',
    "instrument.py": '''
from stasis.update import instrument
from __main__ import HITS
instrument("__main__.render", after=lambda return_value: HITS.append(return_value))
''',
}

EXPECTED = {
    "base": "a:1;b:2",
    "redefine.py": "a=1;b=2",
    "eager.py": "a=1x10;b=2x20",
    "lazy.py": "a=1x10/red;b=2x20/blue",
}


class HttpServerUpdateTest(TargetTestCase):
    def test_updates_under_load(self) -> None:
        proc, port = self.start("server.py", SERVER)
        paths = {name: self.write(name, text) for name, text in STEPS.items()}
        # stage: 2k while nothing is being applied after command k; 2k+1 while command k+1 runs.
        stage = {"n": 0}
        log = []           # (stage at start, body, hits header, status, stage at end)
        stop = threading.Event()

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
            while not stop.is_set():
                started = stage["n"]
                try:
                    conn.request("GET", "/")
                    r = conn.getresponse()
                    body = r.read().decode()
                    log.append((started, body, int(r.getheader("X-Hits")), r.status, stage["n"]))
                except Exception as e:  # a failed request is a test failure, recorded and asserted below
                    log.append((started, "error", repr(e), 0, stage["n"]))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
            conn.close()

        clients = [threading.Thread(target=client) for _ in range(3)]
        for t in clients:
            t.start()

        def advance(*argv: str) -> str:
            stage["n"] += 1
            _, out, _ = self.ctl(proc.pid, *argv)
            stage["n"] += 1
            # Let a few requests run entirely in the new stage (bounded: the clients never stop).
            for _ in range(2000):
                if len([r for r in log if r[0] == r[4] == stage["n"]]) >= 5 or proc.poll() is not None:
                    break
                threading.Event().wait(0.005)
            return out

        try:
            advance("list")                                        # stage 1: base
            self.assertIn("update 1 applied", advance("apply", paths["redefine.py"]))  # stage 2
            self.assertIn("update 2 applied", advance("apply", paths["eager.py"]))     # stage 3
            self.assertIn("update 3 applied", advance("apply", paths["lazy.py"]))      # stage 4
            self.assertIn("update 4 applied", advance("apply", paths["instrument.py"]))  # stage 5
            self.assertIn("update 3 reverted", advance("revert", "3"))                  # stage 6
            self.assertIn("update 1 reverted", advance("revert", "1"))                  # stage 7
            _, listing, _ = self.ctl(proc.pid, "list")
        finally:
            stop.set()
            for t in clients:
                t.join(timeout=20)

        errors = [r for r in log if r[1] == "error" or r[3] != 200]
        self.assertEqual(errors, [], "failed requests")
        expected_by_stage = {0: EXPECTED["base"], 1: EXPECTED["base"], 2: EXPECTED["redefine.py"], 3: EXPECTED["eager.py"],
                             4: EXPECTED["lazy.py"], 5: EXPECTED["lazy.py"],
                             6: EXPECTED["eager.py"],   # lazy field update reverted: its render layer goes
                             7: EXPECTED["eager.py"]}   # update 1 reverted out of order: update 2's code stays
        for st, body in expected_by_stage.items():
            if st == 0:
                continue  # before the first command: clients may not have started yet
            bodies = {r[1] for r in log if r[0] == r[4] == 2 * st}
            self.assertTrue(bodies, f"no request ran entirely in stage {st}")
            self.assertEqual(bodies, {body}, f"stage {st}")
        for r in log:  # a request overlapping commands sees one of the versions of its span
            allowed = {expected_by_stage[st] for st in range(r[0] // 2, r[4] // 2 + 1)}
            if r[4] % 2:
                allowed.add(expected_by_stage.get(r[4] // 2 + 1, ""))
            self.assertIn(r[1], allowed, f"request spanning stages {r[0]}..{r[4]}")
        hits = {st: [r[2] for r in log if r[0] == r[4] == 2 * st] for st in range(1, 8)}
        self.assertTrue(all(h == 0 for st in (1, 2, 3, 4) for h in hits[st]), "instrument ran before it was applied")
        self.assertTrue(all(h > 0 for st in (6, 7) for h in hits[st]), "instrument not running after apply")
        self.assertIn("reverted", listing)
        self.assertRegex(listing, r"4 applied .*instrument __main__.render")


if __name__ == "__main__":
    unittest.main()

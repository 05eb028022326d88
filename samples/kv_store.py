"""A key-value store over HTTP whose whole state is in memory: the service of the migration and
restart examples (README "Services"). Under `stasis run` it can be suspended on one host and
resumed on another (`stasis suspend PID`, then `stasis resume kv_store.snap --rebind OLD=NEW`), or
restarted into new code without a failed request (`stasis restart PID --patch kv_store_v2.py`).

  kv_store.py [HOST:]PORT [MEGABYTES]

  GET  /get/KEY                     {"key", "value"}        (404 when absent)
  PUT  /set/KEY  (body: the value)  {"key", "value"}
  POST /incr/KEY?client=C&seq=N     {"key", "value"}: adds 1. A client numbers its requests; a
                                    request repeated with the same (client, seq) -- a retry after a
                                    lost reply -- gets the first reply again and is not counted twice.
  GET  /stats                       {"keys", "requests", "ballast_bytes", "server"}
Every reply also says which process sent it ("pid").

MEGABYTES fills the state with that much more data, as entries of 1 KiB of random bytes (for the
restart benchmark). Each request is served by a thread (http.server.ThreadingHTTPServer).
"""
import http.server
import json
import os
import sys
import threading
import urllib.parse

store = {}            # key -> value
last_applied = {}     # client -> (seq, reply): the last counted request of each client
requests_served = 0
lock = threading.Lock()
ballast = {}          # MEGABYTES of 1 KiB entries


def server_name():
    return "kv-store 1"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/stats":
            with lock:
                reply = {"keys": len(store), "requests": requests_served,
                         "ballast_bytes": 1024 * len(ballast), "server": server_name()}
            return self.reply(200, reply)
        if url.path.startswith("/get/"):
            key = url.path[len("/get/"):]
            with lock:
                if key not in store:
                    return self.reply(404, {"key": key, "error": "no such key"})
                return self.reply(200, {"key": key, "value": store[key], "server": server_name()})
        self.reply(404, {"error": "unknown path"})

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not url.path.startswith("/set/"):
            return self.reply(404, {"error": "unknown path"})
        key = url.path[len("/set/"):]
        with lock:
            store[key] = body.decode()
            self.count()
        self.reply(200, {"key": key, "value": store[key], "server": server_name()})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not url.path.startswith("/incr/"):
            return self.reply(404, {"error": "unknown path"})
        key = url.path[len("/incr/"):]
        query = urllib.parse.parse_qs(url.query)
        client, seq = query.get("client", [""])[0], int(query.get("seq", ["-1"])[0])
        with lock:
            previous = last_applied.get(client)
            if client and previous is not None and previous[0] == seq:
                reply = previous[1]          # a retry of a request already counted
            else:
                store[key] = int(store.get(key, 0)) + 1
                reply = {"key": key, "value": store[key], "server": server_name()}
                if client:
                    last_applied[client] = (seq, reply)
                self.count()
        self.reply(200, reply)

    def count(self):
        global requests_served
        requests_served += 1

    def reply(self, status, obj):
        body = json.dumps(dict(obj, pid=os.getpid())).encode()   # the process that answered
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def main():
    where = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"
    host, _, port = where.rpartition(":")
    megabytes = float(sys.argv[2]) if len(sys.argv) > 2 else 0
    for i in range(int(megabytes * 1024)):
        ballast[f"entry-{i}"] = os.urandom(1024)
    server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    print(f"kv store serving on {server.server_address[0]}:{server.server_address[1]}", flush=True)
    server.serve_forever()


main()

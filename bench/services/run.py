"""`stasis restart` switch-over of an HTTP service holding state, next to a plain restart.

The service is samples/kv_store.py holding 1 MB, 100 MB and 1 GB of state (entries of 1 KiB of
random bytes) beside its counters, under load from 4 client threads (a connection per request).
* stasis restart --patch samples/kv_store_v2.py: the switch-over is the longest time no reply came
  (from the last reply before the switch to the first after it); the state is kept and no
  request fails;
* the peer, a plain restart that loses the state: the old process is killed and the same script
  started again without its data (python3 kv_store.py), switch-over measured the same way (the
  gap between replies); its clients see refused connections meanwhile.
For each: the switch-over, the longest time one request waited, failed requests. Medians of 3 runs
(1 for 1 GB).
"""
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
STASIS = os.path.join(BUILD, "bin", "stasis")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STORE = os.path.join(ROOT, "samples", "kv_store.py")
PATCH = os.path.join(ROOT, "samples", "kv_store_v2.py")
PLAIN = "/usr/bin/python3.11"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clients:
    """4 threads posting increments, recording (time of reply, server) and each request's wait."""

    def __init__(self, port):
        self.port, self.stop, self.lock = port, threading.Event(), threading.Lock()
        self.replies, self.waits, self.failures = [], [], 0
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(4)]
        for t in self.threads:
            t.start()

    def run(self, i):
        seq = 0
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                conn.request("POST", f"/incr/k{i}?client=b{i}&seq={seq}", headers={"Connection": "close"})
                body = json.loads(conn.getresponse().read())
                conn.close()
                now = time.monotonic()
                with self.lock:
                    self.replies.append((now, body["pid"]))
                    self.waits.append(now - began)
            except (OSError, ValueError, http.client.HTTPException):
                with self.lock:
                    self.failures += 1
                time.sleep(0.001)
            seq += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def switch(self):
        """The longest time no reply came at all: from the last reply before the switch to the
        first after it. (Not by the PID a reply names: a request the old process had begun is
        finished by the new one, with the body the old one had made.)"""
        times = sorted(t for t, _ in self.replies)
        return max(b - a for a, b in zip(times, times[1:]))


def wait_ready(proc, port, timeout=900):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the service ended with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the service did not start")


def warm(clients, n=200):
    end = time.monotonic() + 60
    while len(clients.replies) < n and time.monotonic() < end:
        time.sleep(0.01)


def stasis_restart(megabytes, work):
    port = free_port()
    env = dict(os.environ, STASIS_CONTROL_DIR=os.path.join(work, "control"))
    os.makedirs(env["STASIS_CONTROL_DIR"], mode=0o700, exist_ok=True)
    old = subprocess.Popen([STASIS, "run", STORE, f"127.0.0.1:{port}", str(megabytes)], cwd=work, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(old, port)
    clients = Clients(port)
    warm(clients)
    r = subprocess.run([STASIS, "restart", str(old.pid), "--patch", PATCH, "--timeout", "900"], cwd=work, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        clients.finish()
        old.kill()
        raise RuntimeError(f"stasis restart failed: {r.stderr.strip()}")
    new_pid = int(r.stdout)
    end = time.monotonic() + 60
    while not any(s == new_pid for _, s in clients.replies) and time.monotonic() < end:
        time.sleep(0.01)
    n = len(clients.replies)
    while len(clients.replies) < n + 200 and time.monotonic() < end:
        time.sleep(0.01)
    clients.finish()
    os.kill(new_pid, signal.SIGKILL)
    old.wait()
    return clients.switch(), max(clients.waits), clients.failures


def plain_restart(megabytes, work):
    port = free_port()
    old = subprocess.Popen([PLAIN, STORE, f"127.0.0.1:{port}", str(megabytes)], cwd=work,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(old, port)
    clients = Clients(port)
    warm(clients)
    old.kill()
    old.wait()
    new = subprocess.Popen([PLAIN, STORE, f"127.0.0.1:{port}"], cwd=work, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    wait_ready(new, port)
    n = len(clients.replies)
    end = time.monotonic() + 60
    while len(clients.replies) < n + 200 and time.monotonic() < end:
        time.sleep(0.01)
    clients.finish()
    new.kill()
    new.wait()
    return clients.switch(), max(clients.waits), clients.failures


def main():
    sizes = [(1, 3), (100, 3), (1024, 1)] if len(sys.argv) < 2 else [(int(a), 1) for a in sys.argv[1:]]
    print(f"{'state':>8} | {'stasis restart: switch':>22} {'max wait':>9} {'failed':>6} | "
          f"{'plain restart (state lost): switch':>34} {'max wait':>9} {'failed':>6} | ratio")
    with tempfile.TemporaryDirectory(prefix="stasis-bench-svc-") as work:
        for megabytes, runs in sizes:
            s = [stasis_restart(megabytes, work) for _ in range(runs)]
            p = [plain_restart(megabytes, work) for _ in range(runs)]
            ss, sw, sf = (statistics.median(x[i] for x in s) for i in range(3))
            ps, pw, pf = (statistics.median(x[i] for x in p) for i in range(3))
            label = f"{megabytes} MB" if megabytes < 1024 else f"{megabytes // 1024} GB"
            print(f"{label:>8} | {ss * 1000:>19.0f} ms {sw * 1000:>6.0f} ms {sf:>6.0f} | "
                  f"{ps * 1000:>31.0f} ms {pw * 1000:>6.0f} ms {pf:>6.0f} | {ss / ps:5.1f}x", flush=True)


if __name__ == "__main__":
    main()

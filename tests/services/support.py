"""Shared helpers of the service tests: services started under `stasis run` as real processes,
`stasis suspend` / `resume` / `restart` run as a user runs them, and client load: threads that each
increment a counter of their own over and over (the line protocol of tests/services/programs/, or
HTTP for samples/kv_store.py), check every reply, and count successes and failures.

Every request carries (client, seq); a request repeated after a failure (retry=True) is answered
again by the service without being counted, so after any number of failures each counter in the
service must equal the number of success replies its thread saw: nothing lost, nothing twice."""
from __future__ import annotations

import http.client
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Callable, Dict, List, Optional, Sequence, Tuple

BIN = os.path.dirname(sys.executable)
STASIS = os.path.join(BIN, "stasis")
SOURCE = os.environ.get("STASIS_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PROGRAMS = os.path.join(SOURCE, "tests", "services", "programs")
SAMPLES = os.path.join(SOURCE, "samples")
READY_TIMEOUT = 30.0


def free_port(family: int = socket.AF_INET, type_: int = socket.SOCK_STREAM) -> int:
    """A free port below the kernel's ephemeral range: the clients' own connections (one per
    request, thousands of ephemeral ports) cannot take it before the service binds it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError):
        low = 32768
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(family, type_) as s:
            try:
                s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ServiceTestCase(unittest.TestCase):
    """A temp dir and control directory per test; every process a test started (directly, or as
    the new process of a restart) is killed by its PID at the end."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="stasis-svc-")
        control = os.path.join(self.tmp, "control")
        os.mkdir(control, 0o700)
        self.env = dict(os.environ, STASIS_CONTROL_DIR=control, PYTHONUNBUFFERED="1")
        self.procs: List[subprocess.Popen] = []
        self.pids: List[int] = []
        self.lines: Dict[int, "queue.Queue[str]"] = {}

    def tearDown(self) -> None:
        result = getattr(self, "_outcome", None)
        if result is not None and not result.success:
            for p in self.procs:  # what the services said, for the failure's diagnosis
                sys.stderr.write(f"--- output of {' '.join(p.args[-3:])} (pid {p.pid}):\n{self.output(p)}")
        for pid in self.pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- processes ---------------------------------------------------------------------------------

    def spawn(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        p = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.tmp, env=self.env, **kwargs)
        self.procs.append(p)
        self.pids.append(p.pid)
        q: "queue.Queue[str]" = queue.Queue()
        self.lines[p.pid] = q
        for stream, tag in ((p.stdout, ""), (p.stderr, "stderr: ")):
            threading.Thread(target=self._pump, args=(stream, q, tag), daemon=True).start()
        return p

    @staticmethod
    def _pump(stream, q: "queue.Queue[str]", tag: str) -> None:
        try:
            for text in iter(stream.readline, ""):
                q.put(tag + text)
        except ValueError:
            pass

    def expect_line(self, p: subprocess.Popen, prefix: str, timeout: float = READY_TIMEOUT,
                    contains: bool = False) -> str:
        """The first line of p's output (stdout, or stderr marked "stderr: ") starting with prefix
        (with `contains`, holding it anywhere)."""
        end = time.monotonic() + timeout
        seen = []
        while time.monotonic() < end:
            try:
                line = self.lines[p.pid].get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(line)
            if line.startswith(prefix) or (contains and prefix in line):
                return line.strip()
        self.fail(f"no line starting with {prefix!r} within {timeout} s; saw {seen!r}")

    def output(self, p: subprocess.Popen) -> str:
        """Everything p has printed so far (stdout and stderr, marked)."""
        out = []
        q = self.lines[p.pid]
        while True:
            try:
                out.append(q.get_nowait())
            except queue.Empty:
                return "".join(out)

    def start_service(self, program: str, *args: str, options: Sequence[str] = (),
                      ready: str = "serving") -> subprocess.Popen:
        """`stasis run [options] program args`, once it has printed a line starting with `ready`."""
        path = program if os.path.isabs(program) else os.path.join(PROGRAMS, program)
        p = self.spawn([STASIS, "run", *options, path, *args])
        self.expect_line(p, ready)
        return p

    def stasis(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run([STASIS, *args], capture_output=True, text=True, cwd=self.tmp, env=self.env,
                              timeout=timeout)

    def suspend(self, p: subprocess.Popen) -> str:
        r = self.stasis("suspend", str(p.pid))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(p.wait(60), 75, self.output(p))
        return r.stdout.strip()

    def resume(self, snapshot: str, *options: str) -> subprocess.Popen:
        return self.spawn([STASIS, "resume", snapshot, *options])

    def restart(self, pid: int, *options: str) -> int:
        r = self.stasis("restart", str(pid), *options)
        self.assertEqual(r.returncode, 0, f"stasis restart: {r.stderr}")
        new = int(r.stdout.strip())
        self.pids.append(new)
        self.assertFalse(alive(pid), "the old process did not end after the handover")
        return new

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if check():
                return
            time.sleep(0.02)
        self.fail(f"timed out waiting for {what}")


def connectable(family: int, address) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(address)
        return True
    except OSError:
        return False


# --- client load ------------------------------------------------------------------------------------

class Target:
    """Where the clients send their requests; a test moves it when the service moves."""

    def __init__(self, family: int, address, type_: int = socket.SOCK_STREAM) -> None:
        self.family, self.address, self.type = family, address, type_


class Load:
    """`threads` client threads, each incrementing its own counter `prefix<i>` continuously.
    persistent: one connection per thread, reused (else one per request); retry: a failed
    request is sent again (same seq) until it succeeds. After stop(): successes per counter,
    failures, the longest wait of a request (first try to success), the servers that answered."""

    def __init__(self, target: Target, threads: int = 4, persistent: bool = True, retry: bool = True,
                 prefix: str = "c", http: bool = False, timeout: float = 30.0) -> None:
        self.target, self.persistent, self.retry, self.http = target, persistent, retry, http
        self.prefix, self.timeout = prefix, timeout
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.successes: Dict[str, int] = {}
        self.failures: List[Tuple[float, str]] = []
        self.servers: Dict[str, int] = {}
        self.max_wait = 0.0
        self.waits: List[Tuple[float, float]] = []   # (time of success, wait)
        self.replies: List[Tuple[float, str]] = []   # (time of success, server that answered)
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def total(self) -> int:
        with self.lock:
            return sum(self.successes.values())

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while self.total() < n and time.monotonic() < end:
            time.sleep(0.01)
        if self.total() < n:
            raise AssertionError(f"only {self.total()} successful requests within {timeout} s "
                                 f"(failures: {self.failures[-5:]})")

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(self.timeout + 10)

    def _run(self, i: int) -> None:
        key = f"{self.prefix}{i}"
        client = f"{self.prefix}-{os.getpid()}-{i}"
        seq, conn = 0, None
        with self.lock:
            self.successes[key] = 0
        while not self.stop_event.is_set():
            began, settling = time.monotonic(), False
            while True:
                try:
                    if conn is None:
                        conn = self._connect()
                    server = self._request(conn, key, client, seq)
                    if not self.persistent:
                        self._close(conn)
                        conn = None
                    break
                except Exception as e:  # every failure is counted; the connection is dropped
                    with self.lock:
                        self.failures.append((round(time.monotonic() - self.started, 3), f"{type(e).__name__}: {e}"))
                    if conn is not None:
                        self._close(conn)
                        conn = None
                    server = None
                    if not self.retry or settling:
                        break
                    # Stopped meanwhile: one more try settles a request the service counted but
                    # whose reply was lost (a connection reset while the client's link was down).
                    settling = self.stop_event.is_set()
                    time.sleep(0.01)
            if server is not None:
                now = time.monotonic()
                with self.lock:
                    self.successes[key] += 1
                    self.servers[server] = self.servers.get(server, 0) + 1
                    self.max_wait = max(self.max_wait, now - began)
                    self.waits.append((now, now - began))
                    self.replies.append((now, server))
            seq += 1
        if conn is not None:
            self._close(conn)

    def _connect(self):
        t = self.target
        if self.http:
            host, port = t.address[:2]
            return http.client.HTTPConnection(host, port, timeout=self.timeout)
        s = socket.socket(t.family, t.type)
        s.settimeout(min(self.timeout, 3.0))  # an address that moved away: try the new one soon
        try:
            s.connect(t.address)
        except OSError:
            s.close()
            raise
        s.settimeout(self.timeout)
        return s

    @staticmethod
    def _close(conn) -> None:
        try:
            conn.close()
        except OSError:
            pass

    def _request(self, conn, key: str, client: str, seq: int) -> str:
        if self.http:
            headers = {} if self.persistent else {"Connection": "close"}
            conn.request("POST", f"/incr/{key}?client={client}&seq={seq}", headers=headers)
            response = conn.getresponse()
            body = json.loads(response.read())
            if response.status != 200 or body.get("key") != key:
                raise RuntimeError(f"HTTP {response.status}: {body}")
            return body["server"]
        words = self._line(conn, f"incr {key} {client} {seq}\n".encode())
        if words[0] != key:
            raise RuntimeError(f"reply for {words[0]!r}, not {key!r}")
        return words[2]

    def _line(self, conn, request: bytes) -> List[str]:
        conn.sendall(request)
        if self.target.type == socket.SOCK_DGRAM:
            return conn.recv(4096).decode().split()
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                raise ConnectionError("the service closed the connection")
            data += chunk
        return data.decode().split()

    def counters(self) -> Dict[str, int]:
        """Each counter as the service has it now (one request per counter)."""
        out = {}
        for key in self.successes:
            if self.http:
                conn = self._connect()
                conn.request("GET", f"/get/{key}")
                response = conn.getresponse()
                body = json.loads(response.read())
                out[key] = body.get("value", 0) if response.status == 200 else 0
                conn.close()
                continue
            for attempt in range(20):
                conn = self._connect()
                try:
                    words = self._line(conn, f"get {key}\n".encode())
                    out[key] = int(words[1])
                    break
                except OSError:
                    if attempt == 19:
                        raise
                finally:
                    conn.close()
        return out

    def check(self, case: unittest.TestCase) -> None:
        """Every counter of the service equals its thread's successes."""
        case.assertEqual(self.counters(), self.successes,
                         f"counters differ from the successes seen ({len(self.failures)} failures: first "
                         f"{self.failures[:5]}, last {self.failures[-5:]})")

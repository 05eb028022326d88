"""Load for kv_store.py: threads that each increment their own counter as fast as the store
answers, counting successes and failures, and the longest time a request waited.

  kv_client.py HOST:PORT [--threads N] [--seconds S] [--keep-alive] [--retry] [--address-file F]
                         [--prefix P] [--json]

Each thread numbers its requests (client, seq), so with --retry a request whose reply was lost is
sent again, and the store counts it once. --address-file F: read HOST:PORT from F before each
connection (a test moves the service and writes its new address there). Stops after --seconds, or
on SIGINT/SIGTERM; then prints per-counter successes, failures, the servers that answered and the
longest wait (with --json: one JSON object), and checks each counter against the store.
"""
import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("address")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--keep-alive", action="store_true", help="one connection per thread, reused")
    p.add_argument("--retry", action="store_true", help="send a failed request again until it succeeds")
    p.add_argument("--address-file", help="read HOST:PORT from this file before each connection")
    p.add_argument("--prefix", default="counter")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lock = threading.Lock()
    report = {"successes": {}, "failures": 0, "errors": {}, "servers": {}, "max_wait": 0.0,
              "first_failure": None, "last_failure": None}
    started = time.monotonic()

    def address():
        text = args.address
        if args.address_file:
            try:
                with open(args.address_file) as f:
                    text = f.read().strip() or text
            except OSError:
                pass
        host, _, port = text.rpartition(":")
        return host.strip("[]"), int(port)

    def worker(i):
        key = f"{args.prefix}{i}"
        client = f"{args.prefix}-{os.getpid()}-{i}"
        seq, conn, done = 0, None, 0
        while not stop.is_set():
            began = time.monotonic()
            while True:  # one request, and its retries with --retry
                try:
                    if conn is None:
                        host, port = address()
                        conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
                    headers = {} if args.keep_alive else {"Connection": "close"}
                    conn.request("POST", f"/incr/{key}?client={client}&seq={seq}", headers=headers)
                    response = conn.getresponse()
                    body = json.loads(response.read())
                    if response.status != 200 or body.get("key") != key:
                        raise RuntimeError(f"HTTP {response.status}: {body}")
                    if not args.keep_alive:
                        conn.close()
                        conn = None
                    break
                except Exception as e:  # any failure of this request: counted, connection dropped
                    now = time.monotonic() - started
                    with lock:
                        report["failures"] += 1
                        name = type(e).__name__
                        report["errors"][name] = report["errors"].get(name, 0) + 1
                        report["first_failure"] = report["first_failure"] or round(now, 3)
                        report["last_failure"] = round(now, 3)
                    if conn is not None:
                        conn.close()
                        conn = None
                    if not args.retry or stop.is_set():
                        body = None
                        break
                    time.sleep(0.02)
            if body is not None:
                done += 1
                waited = time.monotonic() - began
                with lock:
                    report["max_wait"] = max(report["max_wait"], waited)
                    report["servers"][body["server"]] = report["servers"].get(body["server"], 0) + 1
            seq += 1
        if conn is not None:
            conn.close()
        with lock:
            report["successes"][key] = done

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    stop.wait(args.seconds)
    stop.set()
    for t in threads:
        t.join()

    # Each counter in the store against the successes this client saw.
    host, port = address()
    conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
    mismatches = {}
    for key, n in report["successes"].items():
        conn.request("GET", f"/get/{key}")
        response = conn.getresponse()
        value = json.loads(response.read()).get("value", 0) if response.status == 200 else 0
        if value != n:
            mismatches[key] = {"store": value, "successes": n}
    conn.close()
    report["mismatches"] = mismatches
    report["max_wait"] = round(report["max_wait"], 4)
    if args.json:
        print(json.dumps(report))
    else:
        total = sum(report["successes"].values())
        print(f"{total} successful requests, {report['failures']} failed; longest wait "
              f"{report['max_wait']:.3f} s; servers {report['servers']}")
        print("every counter equals its successes" if not mismatches else f"MISMATCH: {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

"""A counter service with a thread per connection, each blocked in conn.recv() between requests,
and the main thread blocked in accept(). Line protocol (tests/services/support.py):
"incr KEY CLIENT SEQ" -> "KEY VALUE NAME", "get KEY" -> "KEY VALUE NAME"; a request repeated with
the same CLIENT and SEQ is answered again without being counted.  threaded_server.py HOST PORT"""
import socket
import sys
import threading

counters = {}
last = {}
lock = threading.Lock()


def name():
    return "threaded"


def answer(line):
    words = line.decode().split()
    with lock:
        if words[0] == "incr":
            key, client, seq = words[1], words[2], int(words[3])
            previous = last.get(client)
            if previous is not None and previous[0] == seq:
                return previous[1]
            counters[key] = counters.get(key, 0) + 1
            reply = f"{key} {counters[key]} {name()}\n".encode()
            last[client] = (seq, reply)
            return reply
        return f"{words[1]} {counters.get(words[1], 0)} {name()}\n".encode()


def serve(conn):
    pending = b""
    while True:
        data = conn.recv(4096)
        if not data:
            conn.close()
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            reply = answer(line)
            conn.sendall(reply)


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(64)
print("serving", listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(conn,), daemon=True).start()

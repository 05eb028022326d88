"""The counter service (see threaded_server.py) on a Unix-domain stream socket, a thread per
connection (blocked in recv between requests).  unix_server.py PATH"""
import os
import socket
import sys
import threading

counters = {}
last = {}
lock = threading.Lock()


def name():
    return "unix"


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
            conn.sendall(answer(line))


listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(64)
print("serving", sys.argv[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()

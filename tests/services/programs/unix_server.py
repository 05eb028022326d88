"""The counter service (counter.py) on a Unix-domain stream socket, a thread per
connection (blocked in recv between requests).  unix_server.py PATH"""
import counter
import socket
import sys
import threading

counter.NAME = "unix"
answer = counter.answer


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

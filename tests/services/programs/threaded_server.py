"""A counter service with a thread per connection, each blocked in conn.recv() between requests,
and the main thread blocked in accept(). The counter
protocol: counter.py.  threaded_server.py HOST PORT"""
import counter
import socket
import sys
import threading

counter.NAME = "threaded"
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

"""The counter service (counter.py) in one thread around a selectors.DefaultSelector
(epoll): non-blocking sockets, a buffer per connection.  selector_server.py HOST PORT"""
import counter
import selectors
import socket
import sys

counter.NAME = "selector"
buffers = {}      # connection -> bytes received and not yet answered
answer = counter.answer


def on_readable(conn):
    try:
        data = conn.recv(4096)
    except ConnectionError:
        data = b""
    if not data:
        forget(conn)
        return
    pending = buffers[conn] + data
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        conn.setblocking(True)
        try:
            conn.sendall(answer(line))
        except ConnectionError:  # the client left (a connection reset by the migration)
            forget(conn)
            return
        conn.setblocking(False)
    buffers[conn] = pending


def forget(conn):
    selector.unregister(conn)
    buffers.pop(conn, None)
    conn.close()


selector = selectors.DefaultSelector()
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(64)
listener.setblocking(False)
selector.register(listener, selectors.EVENT_READ, "listener")
print("serving", listener.getsockname()[1], flush=True)
while True:
    for key, _events in selector.select():
        if key.data == "listener":
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            conn.setblocking(False)
            buffers[conn] = b""
            selector.register(conn, selectors.EVENT_READ, "conn")
        else:
            on_readable(key.fileobj)

"""The counter service (see threaded_server.py) in one thread around a selectors.DefaultSelector
(epoll): non-blocking sockets, a buffer per connection.  selector_server.py HOST PORT"""
import selectors
import socket
import sys

counters = {}
last = {}
buffers = {}


def name():
    return "selector"


def answer(line):
    words = line.decode().split()
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


def on_readable(conn):
    try:
        data = conn.recv(4096)
    except ConnectionError:
        data = b""
    if not data:
        selector.unregister(conn)
        buffers.pop(conn, None)
        conn.close()
        return
    pending = buffers[conn] + data
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        conn.setblocking(True)
        conn.sendall(answer(line))
        conn.setblocking(False)
    buffers[conn] = pending


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

"""A thread blocked in conn.recv(), and a request that arrives after its stack was captured:
between the freeze of a `stasis restart` and the hold of the blocked readers' sockets (ReadGuard),
or while a suspension writes its snapshot (run with --tcp-established, the connection is saved by
TCP repair). The program wraps ReadGuard.hold or Session.write_snapshot so that, the first time, a
line is sent to one of its own connections and the reader's recv returns in that window. The line
must be printed, by the old process or the new one: a capture taken before it came is stale.
recv_in_window.py HOST PORT restart|suspend"""
import socket
import sys
import threading
import time

import stasis.handover as handover
import stasis.program.session as session


def serve(conn):
    while True:
        data = conn.recv(4096)
        if not data:
            conn.close()
            return
        print("got", data.decode().strip(), flush=True)


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(8)
window_client = socket.create_connection(listener.getsockname())
conn, _ = listener.accept()
threading.Thread(target=serve, args=(conn,), daemon=True).start()

_sent = []


def in_window(original):
    def wrapper(*args, **kwargs):
        if not _sent:
            _sent.append(True)
            window_client.sendall(b"in-window\n")
            time.sleep(0.3)  # the reader's recv returns, it takes the GIL and parks (frozen)
        return original(*args, **kwargs)
    return wrapper


if sys.argv[3] == "restart":
    handover.ReadGuard.hold = in_window(handover.ReadGuard.hold)
else:
    session.Session.write_snapshot = in_window(session.Session.write_snapshot)
print("serving", listener.getsockname()[1], flush=True)
while True:
    time.sleep(0.05)

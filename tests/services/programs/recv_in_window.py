"""A thread per connection blocked in conn.recv(), and a request that arrives in the window between
the freeze of a `stasis restart` and the hold of the blocked readers' sockets (ReadGuard): the
program wraps ReadGuard.hold so that, the first time, a line is sent to one of its own connections
and the reader's recv returns before the hold. That line must be answered, by the old process or
the new one: a capture taken before it arrived is stale.  recv_in_window.py HOST PORT"""
import socket
import sys
import threading
import time

import stasis.handover as handover


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

_hold = handover.ReadGuard.hold
_sent = []


def hold(guard):
    if not _sent:
        _sent.append(True)
        window_client.sendall(b"in-window\n")
        time.sleep(0.3)  # the reader's recv returns, it takes the GIL and parks (frozen)
    return _hold(guard)


handover.ReadGuard.hold = hold
print("serving", listener.getsockname()[1], flush=True)
while True:
    time.sleep(0.05)

"""The counter protocol the service programs here share (tests/services/support.py is the
client): "incr KEY CLIENT SEQ" -> "KEY VALUE NAME" adds 1 to KEY, "get KEY" -> "KEY VALUE NAME".
A request repeated with the same CLIENT and SEQ (a retry after a lost reply) is answered again
without being counted. NAME says which program answered. The state is this module's (a module of
the program: its globals are in the snapshot)."""
import threading

NAME = "?"
counters = {}
last = {}       # client -> (seq, reply) of its last counted request
lock = threading.Lock()


def answer(line):
    words = line.decode().split()
    with lock:
        if words[0] == "incr":
            key, client, seq = words[1], words[2], int(words[3])
            previous = last.get(client)
            if previous is not None and previous[0] == seq:
                return previous[1]
            counters[key] = counters.get(key, 0) + 1
            reply = f"{key} {counters[key]} {NAME}\n".encode()
            last[client] = (seq, reply)
            return reply
        return f"{words[1]} {counters.get(words[1], 0)} {NAME}\n".encode()

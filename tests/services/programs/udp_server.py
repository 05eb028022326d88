"""The counter service (see threaded_server.py) over UDP: one datagram per request and per reply,
the main thread blocked in recvfrom().  udp_server.py HOST PORT"""
import socket
import sys

counters = {}
last = {}


def name():
    return "udp"


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


sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
print("serving", sock.getsockname()[1], flush=True)
while True:
    data, peer = sock.recvfrom(4096)
    sock.sendto(answer(data.strip()), peer)

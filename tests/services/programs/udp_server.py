"""The counter service (counter.py) over UDP: one datagram per request and per reply,
the main thread blocked in recvfrom().  udp_server.py HOST PORT"""
import counter
import socket
import sys

counter.NAME = "udp"
answer = counter.answer


sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
print("serving", sock.getsockname()[1], flush=True)
while True:
    data, peer = sock.recvfrom(4096)
    sock.sendto(answer(data.strip()), peer)

"""The counter service (see threaded_server.py) on asyncio: asyncio.start_server, a StreamReader /
StreamWriter per connection, open across requests; SIGUSR2 (loop.add_signal_handler) prints the
counters.  asyncio_server.py HOST PORT"""
import asyncio
import signal
import sys

counters = {}
last = {}


def name():
    return "asyncio"


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


async def serve(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            writer.close()
            return
        writer.write(answer(line))
        await writer.drain()


def report():
    print("counters", sorted(counters.items()), flush=True)


async def main():
    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, report)
    print("serving", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())

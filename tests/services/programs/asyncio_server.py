"""The counter service (counter.py) on asyncio: asyncio.start_server, a StreamReader /
StreamWriter per connection, open across requests; SIGUSR2 (loop.add_signal_handler) prints the
counters.  asyncio_server.py HOST PORT"""
import counter
import asyncio
import signal
import sys

counter.NAME = "asyncio"
answer = counter.answer


async def serve(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            writer.close()
            return
        writer.write(answer(line))
        await writer.drain()


def report():
    print("counters", sorted(counter.counters.items()), flush=True)


async def main():
    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, report)
    print("serving", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())

"""An asyncio client: keeps one connection (asyncio.open_connection) to a backend and sends
"ping N" lines on it, N counting up across connections, reading each echo; reconnects when the
connection ends.  asyncio_client.py HOST PORT"""
import asyncio
import sys

sent = 0


async def main():
    global sent
    print("serving", flush=True)
    while True:
        try:
            reader, writer = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))
            while True:
                sent += 1
                writer.write(f"ping {sent}\n".encode())
                await writer.drain()
                line = await reader.readline()
                if line != f"ping {sent}\n".encode():
                    raise ConnectionError(f"echo {line!r}")
                await asyncio.sleep(0.002)
        except (ConnectionError, OSError):
            sent -= 1  # not echoed: sent again on the next connection
            await asyncio.sleep(0.05)


asyncio.run(main())

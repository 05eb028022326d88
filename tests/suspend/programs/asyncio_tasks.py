"""asyncio: tasks made with create_task and gather, an asyncio.Queue between a producer and two
consumers, an asyncio.Lock, timers (asyncio.sleep with delays), an async generator, wait_for,
a contextvar set inside a task. Suspended between two callbacks of the loop or while the loop
waits for its next timer."""
import asyncio
import contextvars

request_id = contextvars.ContextVar("request_id", default="-")
log = []


async def ticker(n):
    for i in range(n):
        yield i
        await asyncio.sleep(0.001)


async def producer(q, n):
    async for i in ticker(n):
        await q.put(i)
    for _ in range(2):
        await q.put(None)


async def consumer(name, q, lock, totals):
    request_id.set(name)
    while True:
        item = await q.get()
        if item is None:
            return name
        async with lock:
            totals[name] = totals.get(name, 0) + item * item
            log.append((request_id.get(), item % 3))
        await asyncio.sleep(0)


async def slow(x):
    await asyncio.sleep(0.002 * x)
    return x * 10


async def main():
    q = asyncio.Queue(maxsize=5)
    lock = asyncio.Lock()
    totals = {}
    tasks = [asyncio.create_task(consumer(f"c{i}", q, lock, totals)) for i in range(2)]
    await producer(q, 60)
    names = await asyncio.gather(*tasks)
    results = await asyncio.gather(*(slow(x) for x in range(5)))
    try:
        await asyncio.wait_for(slow(50), timeout=0.01)
    except asyncio.TimeoutError:
        results.append("timeout")
    print(sorted(names), sum(totals.values()), len(log), sorted(set(log))[:4])
    print(results, request_id.get())


asyncio.run(main())

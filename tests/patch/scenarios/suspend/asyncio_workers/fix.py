# asyncio: two worker tasks consume a queue; suspended while both are waiting; the coroutine
# helper that scores an item changes (coroutines already running finish on their code; the
# helper they await next time runs the new code).
import asyncio

import stasis


async def score(item):
    await asyncio.sleep(0)
    return len(item) * 100


async def worker(name, queue, results):
    while True:
        item = await queue.get()
        if item is None:
            queue.task_done()
            return
        s = await score(item)
        results.append((name, item, s))
        print(name, item, s)
        if len(results) == 3:
            stasis.suspend()
        queue.task_done()


async def main():
    queue = asyncio.Queue()
    results = []
    for item in ["ab", "cde", "f", "ghij", "kl", "mnopq"]:
        queue.put_nowait(item)
    workers = [asyncio.create_task(worker(f"w{i}", queue, results)) for i in range(2)]
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    print("total", sum(s for _, _, s in results))


asyncio.run(main())

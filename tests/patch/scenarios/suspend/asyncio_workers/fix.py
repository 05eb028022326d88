# asyncio: worker tasks consume a queue in two rounds (two asyncio.run calls); the program is
# suspended between them, holding a coroutine it made but has not awaited yet. The coroutine
# function that scores an item changes: the second round's new coroutines run the new code, the
# coroutine made before the patch finishes on its old code.
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
        queue.task_done()


async def round_(items, results):
    queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    workers = [asyncio.create_task(worker(f"w{i}", queue, results)) for i in range(2)]
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return sum(s for _, _, s in results)


async def finish(coro):
    return await coro


results = []
print("round 1", asyncio.run(round_(["ab", "cde", "f", "ghij"], results)))
early = score("made-before")
stasis.suspend()
print("round 2", asyncio.run(round_(["kl", "mnopq", "rs"], results)))
print("early", asyncio.run(finish(early)))

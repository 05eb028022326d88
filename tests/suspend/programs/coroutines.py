import asyncio


async def produce(n, out):
    for i in range(n):
        await asyncio.sleep(0)
        out.append(i * 10)


async def main():
    out = []
    await asyncio.gather(produce(5, out), produce(3, out))
    print(sorted(out))
    total = 0
    for v in out:
        total += v
        print("running", total)


asyncio.run(main())

import asyncio
def f(x): return x
async def asynciter(xs):
    for x in xs:
        yield x
async def t():
    return [[i + f(f(j)) async for i in asynciter([1, 2])] for j in [10, 20]]
result = asyncio.run(t())

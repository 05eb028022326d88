import asyncio
def f(x): return x
def gen(n):
    for i in range(f(n)):
        x = yield f(i) * 2
        y = yield from inner(f(x))
def inner(x):
    yield x
    return x
async def co(x):
    await asyncio.sleep(0)
    return f(await other(f(x))) + 1
async def other(x):
    return x
async def agen():
    for i in range(3):
        yield f(i)
async def main():
    r = [await co(1)]
    async for v in agen():
        r.append(f(v))
    r.append([v async for v in agen()])
    return r
g = gen(3)
result = [next(g), g.send(5), g.send(6), asyncio.run(main())]
def cl():
    class A:
        def m(self): return 'A'
    class B(A):
        def m(self): return f(super().m()) + 'B'
    return B().m(), B.m.__qualname__
result.append(cl())
def deco(x):
    def d(fn): fn.tag = f(x); return fn
    return d
@deco(f(3))
def h(a=f(1), *, b=f(2)): return a + b
result.append((h(), h.tag, h.__name__, h.__code__.co_varnames[:2]))
def m(v):
    match f(v):
        case [a, b] if f(a) > f(b): return f('gt')
        case {'k': x}: return f(x)
        case _: return f('other')
result.append([m([2,1]), m([1,2]), m({'k': 5})])
def w():
    n = 0
    def inc():
        nonlocal n
        n = f(n) + 1
        return n
    inc(); inc()
    return (y := f(n)), y
result.append(w())

import functools
@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
@functools.lru_cache(maxsize=None)
def fib2(n):   # the new code, from an empty cache (a patch empties the lru_cache of a function it redefines)
    return -n if n < 2 else fib2(n - 1) - fib2(n - 2)
for i in range(4):
    c = i * 30 - 40
    if i <= 1:
        print(i, i * (i + 1), fib(i + 10), max(-50, min(50, c)), "C", "area")
    else:
        print(i, i * (i + 1) + 1000, fib2(i + 10), max(-10, min(10, c)) * 2, "c!", "area")
print(4, "area")

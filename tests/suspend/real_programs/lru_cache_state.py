"""functools.lru_cache and functools.cache keep their contents and statistics."""
import functools


@functools.lru_cache(maxsize=16)
def square(n):
    return n * n


@functools.cache
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Grid:
    @functools.lru_cache(maxsize=None)
    def cell(self, i):
        return i * 7 % 5


g = Grid()
total = 0
for step in range(50):
    total += square(step % 24) + fib(step) + g.cell(step % 6)
    print(step, total, square.cache_info(), fib.cache_info(), Grid.cell.cache_info())
print(square.cache_parameters(), square.__wrapped__(3), fib.__name__)

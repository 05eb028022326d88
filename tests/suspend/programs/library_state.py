"""Library state a program sets up and relies on: logging configured by basicConfig (handlers,
format, levels; loggers kept in globals), the decimal context (precision 50, a context variable of
the main thread), and a raised recursion limit that a deep call needs."""
import logging, sys, decimal, warnings
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s", stream=sys.stdout)
log = logging.getLogger("job")
child = log.getChild("part")
decimal.getcontext().prec = 50
sys.setrecursionlimit(5000)
def deep(n):
    return 0 if n == 0 else 1 + deep(n - 1)
total = decimal.Decimal(0)
for i in range(40):
    total += decimal.Decimal(1) / decimal.Decimal(i + 3)
    if i % 10 == 0:
        log.info("step %d total %s", i, total)
        child.warning("depth %d", deep(3000))
print(total, sys.getrecursionlimit())

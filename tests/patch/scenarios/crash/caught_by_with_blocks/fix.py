# Exceptions that leave frames and are swallowed by `with` blocks further out: contextlib.suppress,
# a @contextmanager that catches, an ExitStack holding one, a class whose __exit__ decides. None
# is a crash: the program goes on and no snapshot is left. Then a real crash inside a `with`
# whose __exit__ lets it through is captured, and fixed.
import contextlib


class Retry:
    def __init__(self):
        self.failures = 0

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is KeyError:
            self.failures += 1
            return True
        return False


@contextlib.contextmanager
def tolerant(log):
    try:
        yield
    except LookupError as e:
        log.append(type(e).__name__)


def lookup(d, k):
    return d[k[0] if isinstance(k, list) else k]


def deep(d, k):
    return lookup(d, k) + 1


log = []
retry = Retry()
for i in range(60):
    with contextlib.suppress(KeyError):
        deep({}, i)
    with tolerant(log):
        deep([], i)
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.suppress(ZeroDivisionError))
        deep({i: 0}, i) / 0
    with retry:
        deep({}, -i)
print("swallowed", len(log), retry.failures)

prices = {"tea": 2, "jam": 3, "cake": 5}
with retry:
    for item in ["tea", "jam", ["cake"]]:
        print(item, deep(prices, item) * 10)
print("end")

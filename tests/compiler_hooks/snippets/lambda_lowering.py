import inspect
def f(x): return x
def t(xs, k=3):
    key = lambda v, w=k: f(f(v)) * w + f(-v)
    plain = lambda v: f(v)
    out = sorted(xs, key=key)
    both = [(lambda: f(f(1)))(), (lambda: f(f(2)))()]
    names = sorted(locals())
    return (out, both, names, key.__name__, key.__qualname__, key.__doc__, key.__code__.co_firstlineno,
            key.__code__.co_varnames[:2], key.__defaults__, inspect.getsource(key).strip(), plain(5))
result = t([3, 1, 2])

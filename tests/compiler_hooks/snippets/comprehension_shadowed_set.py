set = None
def f(x): return x
def t(xs):
    return {f(f(x)) for x in xs}
result = t([1,2])

def f(x): return x
def t(xs):
    a = [f(f(x)) for x in xs if f(x) and f(f(x))]
    b = {f(k): f(f(v)) for k, v in zip(xs, xs)}
    c = {f(f(x)) for x in xs for y in range(f(2)) if y}
    try:
        [f(f(x)) for x in 5]
    except TypeError as e:
        d = str(e)
    return a, b, c, d, sorted(locals())
result = t([1, 2, 0])

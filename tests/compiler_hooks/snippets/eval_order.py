log = []
def f(x): log.append(('f', x)); return x
class O:
    def __init__(self): self.v = 1
    def m(self, *a, **k): log.append(('m', a, k)); return a
    def __getattr__(self, n): log.append(('ga', n)); return n
o = O()
def t():
    r = []
    r.append(f(1) + f(2) * f(3))
    r.append(o.m(f(4), *[f(5)], k=f(6), **{'z': f(7)}))
    r.append(o.zz + f(8))
    r.append([f(9), f(10)][f(0)])
    r.append(f(0) and f(11) or f(12) and f(13))
    r.append(f(1) < f(2) < f(0) < f(99))
    r.append(f(1) < f(2) < f(3) < f(4))
    r.append(f"{f(1)!r:>{f(4)}}{f('x')}")
    d = {f('a'): f(1), **{f('b'): f(2)}}
    r.append(d)
    r.append(f(1) if f(0) else f(2))
    r.append(f(f(1)) if f(1) else f(f(2)))
    x = [1, 2]
    x[f(0)] += f(5)
    o.v += f(3)
    r.append((x, o.v))
    a, *b = f([1, 2, 3])
    r.append((a, b))
    r.append({f(k): f(v) for k, v in [(1, 2)]})
    r.append(sum(f(i) for i in f(range(3))))
    r.append((lambda q=f(7): q)())
    r.append(-f(3) ** f(2))
    r.append(f(None) or f(0) or f(0))
    s = [1,2,3]
    r.append(s[f(0):f(2):f(1)])
    while f(len(s)) > f(1):
        s.pop()
    else:
        r.append('else')
    assert f(1), f('msg')
    return r
result = (t(), log)

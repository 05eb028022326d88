def f(x): return x
def t():
    a = 1
    return set(vars()) == set(dir()), f(f(len(locals())))
result = t()

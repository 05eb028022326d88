import sys
def f(x): 
    if x == 'boom': raise ValueError(x)
    return x
def t():
    out = []
    try:
        f(f('boom'))
    except ValueError as e:
        out.append((str(e), sys.exc_info()[0].__name__, f(1)))
    try:
        try:
            f(len(f('boom')))
        finally:
            out.append(f('fin'))
    except ValueError:
        out.append('caught')
    try:
        [f(x) for x in [f('boom')]]
    except ValueError as e:
        out.append(e.__traceback__.tb_lineno)
    return out
result = t()
def g():
    return 1 + f(f('boom'))
g()

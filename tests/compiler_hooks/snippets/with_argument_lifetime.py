import weakref, gc
from contextlib import contextmanager
out = []
class A: pass
@contextmanager
def woohoo(a, b):
    a = weakref.ref(a); b = weakref.ref(b)
    gc.collect()
    out.append((a(), b()))
    yield
def t():
    with woohoo(A(), b=A()):
        out.append(len(str(out)))
    return out
result = t()

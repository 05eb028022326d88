def make_point_class(dims):
    names = ["x", "y", "z"][:dims]

    class Point:
        __slots__ = names

        def __init__(self, *values):
            for n, v in zip(names, values):
                setattr(self, n, v)

        def norm1(self):
            return sum(abs(getattr(self, n)) for n in names)
    Point.__name__ = "Point%d" % dims
    return Point


Kinds = [make_point_class(d) for d in (2, 3)]
Extra = type("Extra", (object,), {"scale": 2, "apply": lambda self, v: v * self.scale})
e = Extra()
for i in range(8):
    p = Kinds[i % 2](*range(i, i + 3))
    print(i, type(p).__name__, p.norm1(), e.apply(i))

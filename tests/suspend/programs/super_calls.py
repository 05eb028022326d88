"""Methods reached through super() that run long enough to be suspended inside: the super object
the caller holds (the rewriter keeps `super()` in a temporary) must come back as that super
object, not as an instance of the class."""


class Base:
    def total(self, n):
        t = 0
        for i in range(n):
            t += i * self.weight
        return t

    @classmethod
    def build(cls, n):
        parts = []
        for i in range(n):
            parts.append(i % 3)
        return cls(sum(parts))


class Middle(Base):
    def total(self, n):
        return super().total(n) + 1


class Leaf(Middle):
    weight = 2

    def __init__(self, seed=0):
        super().__init__()
        self.seed = seed

    def total(self, n):
        return super(Leaf, self).total(n) * 10

    @classmethod
    def build(cls, n):
        made = super().build(n)
        made.seed += 100
        return made


class Mixin:
    def describe(self, n):
        words = []
        for i in range(n):
            words.append(str(i % 10))
        return "".join(words)


class Diamond(Mixin, Leaf):
    def describe(self, n):
        inner = super().describe(n)
        return f"{self.seed}:{inner[:12]}:{len(inner)}"


leaf = Leaf(3)
for n in (5, 50, 300):
    print(n, leaf.total(n))
print(Leaf.build(40).seed)
print(Diamond.build(25).describe(120))

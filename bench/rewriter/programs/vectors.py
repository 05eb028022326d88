"""Operator overloading: a tiny ray/vector library with dunder methods and properties."""
from bm_common import main


class Vec:
    __slots__ = ('x', 'y', 'z')

    def __init__(self, x, y, z):
        self.x, self.y, self.z = x, y, z

    def __add__(self, o):
        return Vec(self.x + o.x, self.y + o.y, self.z + o.z)

    def __sub__(self, o):
        return Vec(self.x - o.x, self.y - o.y, self.z - o.z)

    def scale(self, k):
        return Vec(self.x * k, self.y * k, self.z * k)

    def dot(self, o):
        return self.x * o.x + self.y * o.y + self.z * o.z

    @property
    def length(self):
        return self.dot(self) ** 0.5

    def normalized(self):
        return self.scale(1.0 / self.length)


def hit_sphere(center, radius, origin, direction):
    oc = origin - center
    b = oc.dot(direction)
    c = oc.dot(oc) - radius * radius
    disc = b * b - c
    if disc < 0:
        return -1.0
    return -b - disc ** 0.5


def work(n):
    eye = Vec(0.0, 0.0, -5.0)
    spheres = [(Vec(i * 0.7 - 1.0, (i % 3) * 0.5, i * 0.3), 0.6 + 0.05 * i) for i in range(5)]
    hits = 0
    for py in range(n):
        for px in range(n):
            d = Vec(px / n - 0.5, py / n - 0.5, 1.0).normalized()
            best = min((t for t in (hit_sphere(c, r, eye, d) for c, r in spheres) if t > 0), default=None)
            if best is not None:
                hits += 1 + int(best * 10) % 3
    return hits


if __name__ == '__main__':
    main(work, 170)

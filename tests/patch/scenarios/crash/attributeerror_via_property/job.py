# Shapes with a computed `area` property; the property calls a method that reads a misspelt field.
import math


class Circle:
    def __init__(self, r):
        self.r = r

    def compute_area(self):
        return math.pi * self.radius ** 2

    @property
    def area(self):
        return round(self.compute_area(), 2)


class Square:
    def __init__(self, side):
        self.side = side

    @property
    def area(self):
        return self.side * self.side


def total_area(shapes):
    total = 0
    for s in shapes:
        a = s.area
        total += a
        print(type(s).__name__, a, "->", round(total, 2))
    return round(total, 2)


shapes = [Square(2), Square(3), Circle(1), Square(1), Circle(2)]
print("total", total_area(shapes))

# A route planner: geo.py and __main__ both change, and an update module adds a field; all three
# given to one `stasis resume --patch A B C` (and, the same, with --patch repeated).
import stasis

import geo


class Leg:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def length(self):
        return geo.distance(self.a, self.b)


POINTS = [(0, 0), (3, 4), (6, 8), (6, 0), (0, 0)]
LEGS = [Leg(p, q) for p, q in zip(POINTS, POINTS[1:])]

total = 0
for i, leg in enumerate(LEGS):
    total += leg.length()
    print(f"leg {i}: {leg.length():.2f} total {total:.2f}")
    if i == 1:
        stasis.suspend()

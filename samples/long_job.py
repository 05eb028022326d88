"""A long computation for time-quota execution: a deterministic particle simulation that prints
a progress line per epoch. Run it under a quota and resume it until it finishes:

    stasis run --quota 1 samples/long_job.py        # exits 75 with long_job.snap
    stasis resume --quota 1 long_job.snap           # repeat while the status is 75

The concatenated output equals an uninterrupted run's, byte for byte.
"""
import math
import random


class Particle:
    def __init__(self, rng):
        self.x = rng.uniform(-1.0, 1.0)
        self.y = rng.uniform(-1.0, 1.0)
        self.vx = rng.uniform(-0.01, 0.01)
        self.vy = rng.uniform(-0.01, 0.01)

    def step(self, dt):
        # a soft pull towards the centre, and bounces off the walls of the box
        r = math.hypot(self.x, self.y) + 1e-9
        self.vx -= dt * self.x / r * 0.001
        self.vy -= dt * self.y / r * 0.001
        self.x += self.vx * dt
        self.y += self.vy * dt
        if abs(self.x) > 1.0:
            self.vx = -self.vx
        if abs(self.y) > 1.0:
            self.vy = -self.vy


def energy(particles):
    return sum(p.vx * p.vx + p.vy * p.vy for p in particles) / 2


def simulate(epochs, steps, n):
    rng = random.Random(2026)
    particles = [Particle(rng) for _ in range(n)]
    history = []
    for epoch in range(epochs):
        for _ in range(steps):
            for p in particles:
                p.step(1.0)
        e = energy(particles)
        history.append(e)
        print(f"epoch {epoch:3d}  energy {e:.12f}  centre ({sum(p.x for p in particles) / n:+.6f}, "
              f"{sum(p.y for p in particles) / n:+.6f})", flush=True)
    return history


if __name__ == "__main__":
    result = simulate(epochs=24, steps=400, n=400)
    print(f"done: mean energy {sum(result) / len(result):.12f}")

"""A newcomer's numpy job: heat spreading over a plate, with noise, for a few thousand steps.

Run it under a time quota; each time the quota is spent it is suspended into a snapshot and
resumed, arrays and all, with no set-up:

    stasis run --quota 1 samples/numpy_heat.py     # exits 75 with numpy_heat.snap
    stasis resume --quota 1 numpy_heat.snap        # repeat while the exit status is 75
"""
import numpy as np

rng = np.random.default_rng(2024)
plate = np.zeros((160, 160))
inner = plate[1:-1, 1:-1]          # views of the plate: the update writes through them
edge = plate[0]                     # the heated edge
history = []
for step in range(3000):
    edge[:] = 100.0
    neighbours = plate[:-2, 1:-1] + plate[2:, 1:-1] + plate[1:-1, :-2] + plate[1:-1, 2:]
    inner += 0.2 * (neighbours - 4 * inner) + rng.normal(0.0, 0.01, inner.shape)
    if step % 300 == 0:
        history.append(float(plate.mean()))
        print(f"step {step:5d}  mean {plate.mean():9.5f}  centre {plate[80, 80]:9.5f}")
print("means:", " ".join(f"{m:.3f}" for m in history))

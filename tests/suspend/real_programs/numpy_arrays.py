"""numpy arrays alive across suspensions: views written through, every dtype, generators."""
import numpy as np

rng = np.random.default_rng(7)
grid = np.zeros((40, 50))
row = grid[3]                      # views: writes through them must reach grid after a resume
col = grid[:, 7]
corner = grid[::-2, ::-3]
fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
objects = np.array([None, "a", [1]], dtype=object)
records = np.zeros(4, dtype=[("i", "i4"), ("x", "f8")])
stamps = np.array(["2024-01-01"], dtype="M8[D]")
frozen = np.arange(5)
frozen.flags.writeable = False
ops = [np.add, np.multiply]
legacy = np.random.RandomState(11)
mapped = np.memmap("field.f64", dtype=np.float64, mode="w+", shape=(6, 5))  # in the working directory
band = mapped[2]                   # a view of the map: writes reach the file
np.random.seed(3)
total = 0.0
for step in range(30):
    grid += rng.standard_normal(grid.shape) * 0.01
    row[step % 50] = step
    col[:] += 1
    corner[0, 0] = -step
    fortran.T[1] *= 1.5
    records["i"][step % 4] += step
    records["x"] = ops[step % 2](records["x"], 0.5)
    objects[2].append(step)
    stamps += np.timedelta64(1, "D")
    band[step % 5] += step
    total += float(grid.sum()) + np.random.rand() + legacy.randn()
    print(step, round(total, 6), row[:3].tolist(), col[:2].round(6).tolist(), corner[0, 0],
          records["i"].tolist(), records["x"].tolist(), fortran[:, 1].tolist(), str(stamps[0]),
          len(objects[2]), mapped.sum())
mapped.flush()
print(np.fromfile("field.f64")[10:15].tolist(), round(float(grid.sum()), 6), np.shares_memory(row, grid), np.shares_memory(col, grid),
      grid[3, :3].tolist(), grid[-1, 0] == corner[0, 0], frozen.flags.writeable, rng.integers(0, 100, 3).tolist())

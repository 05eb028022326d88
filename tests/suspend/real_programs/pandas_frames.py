"""A small pandas job (Debian's python3-pandas): frames built, concatenated, grouped in a loop, with
categorical, float and time-zone-aware datetime columns."""
import numpy as np
import pandas as pd

rng = np.random.default_rng(3)
frames = []
for day in range(12):
    df = pd.DataFrame({
        "station": rng.choice(["north", "south", "east"], size=300),
        "temp": rng.normal(10 + day, 2, size=300).round(3),
        "when": pd.date_range("2024-01-01", periods=300, freq="min", tz="Europe/Paris") + pd.Timedelta(days=day),
    })
    df["cat"] = df["station"].astype("category")
    frames.append(df)
    total = pd.concat(frames, ignore_index=True)
    means = total.groupby("cat", observed=True)["temp"].mean().round(3)
    hourly = total.groupby(total["when"].dt.hour)["temp"].count()
    print(day, means.to_dict(), int(hourly.sum()), total["when"].iloc[-1].isoformat())

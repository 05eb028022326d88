"""pandas in object snapshots (python/stasis/handlers/pandas_frames.py): frames with every kind of
column, indexes, scalars, offsets and pytz zones come back equal; each load function refuses what
its save function never writes. Skipped, with the reason printed, without python3-pandas."""
import os
import subprocess
import sys
import tempfile
import unittest

import stasis

from tests.handlers.support import optional, rt

pd = optional("pandas", "test_pandas_frames")
np = optional("numpy", "test_pandas_frames") if pd is not None else None


@unittest.skipIf(pd is None, "pandas is not installed")
class PandasObjects(unittest.TestCase):
    def frame(self):
        rng = np.random.default_rng(7)
        df = pd.DataFrame({"s": rng.choice(["n", "s"], size=50), "t": rng.normal(size=50),
                           "w": pd.date_range("2024-01-01", periods=50, freq="min", tz="Europe/Paris"),
                           "u": pd.date_range("2024-01-01", periods=50, freq="h"),
                           "d": pd.to_timedelta(np.arange(50), unit="s"), "i": np.arange(50)})
        df["c"] = df["s"].astype("category")
        return df

    def test_frames_series_and_indexes_come_back_equal(self):
        df = self.frame()
        objs = {"df": df, "g": df.groupby("c", observed=True)["t"].agg(["mean", "std"]),
                "r": df.set_index("u")["t"].rolling("6h").mean(), "mi": df.set_index(["s", "i"]),
                "ser": df["t"], "p": pd.period_range("2024-01", periods=3, freq="M"),
                "ps": pd.Series(pd.period_range("2024-01", periods=3, freq="M"))}
        back = rt(objs)
        for name, obj in objs.items():
            self.assertTrue(obj.equals(back[name]), name)
            self.assertIs(type(back[name]), type(obj), name)
        self.assertEqual(back["df"].dtypes.to_dict(), df.dtypes.to_dict())
        self.assertEqual(back["df"]["w"].iloc[3], df["w"].iloc[3])

    def test_scalars_offsets_and_zones(self):
        import pytz
        values = [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-06-01 12:00", tz="Europe/Paris"),
                  pd.Timedelta(days=1, seconds=5), pd.offsets.MonthEnd(2), pd.offsets.Week(weekday=6),
                  pytz.utc, pytz.timezone("America/New_York")]
        import datetime
        zones = [pytz.utc, pytz.timezone("EST"), pytz.timezone("Europe/Paris"),
                 pytz.timezone("Europe/Paris").localize(datetime.datetime(2024, 6, 1)).tzinfo]
        back = rt(values)
        self.assertEqual(back[:5], values[:5])
        self.assertIs(back[5], pytz.utc)
        self.assertEqual(str(back[6]), "America/New_York")
        for zone, loaded in zip(zones, rt(zones)):  # pytz keeps one object per zone and variant
            self.assertIs(loaded, zone)

    def test_load_functions_refuse_what_save_never_writes(self):
        from stasis.handlers import pandas_frames as h
        with self.assertRaises(TypeError):
            h._load_block((object(), slice(0, 1), 2))
        with self.assertRaises(TypeError):
            h._load_index((dict, {}))          # not a pandas Index class
        with self.assertRaises(TypeError):
            h._load_backed((list, ()))         # not a pandas array class
        with self.assertRaises(TypeError):
            h._load_offset((pd.offsets.Day, (os.system,), None))
        with self.assertRaises(TypeError):
            h._load_block_manager(((object(),), []))
        with self.assertRaises(ValueError):
            h._load_pytz(("Not/AZone", None))

    def test_a_process_that_never_imported_pandas_loads_a_frame(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "frame.snap")
            stasis.dump(self.frame(), path)
            code = ("import sys, stasis; assert 'pandas' not in sys.modules; df = stasis.load(sys.argv[1]);"
                    "print(type(df).__name__, df.shape, str(df['w'].dt.tz))")
            out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.strip(), "DataFrame (50, 7) Europe/Paris")


if __name__ == "__main__":
    unittest.main()

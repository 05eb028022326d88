# A worker thread converts temperature readings; one reading is "n/a" and the thread dies with a
# ValueError (reported by threading.excepthook). The main thread waits for it and checks.
import threading

READINGS = ["21.5", "22.0", "n/a", "23.25", "19.75"]
converted = []


def to_fahrenheit(text):
    if text == "n/a":
        return None
    return round(float(text) * 9 / 5 + 32, 2)


def convert_all(readings):
    for i, r in enumerate(readings):
        f = to_fahrenheit(r)
        converted.append(f)
        print("reading", i, r, "->", f, flush=True)


t = threading.Thread(target=convert_all, args=(READINGS,), name="converter")
t.start()
t.join()
if len(converted) != len(READINGS):
    raise SystemExit(f"converter failed after {len(converted)} readings")
print("all", converted)

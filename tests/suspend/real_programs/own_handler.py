"""A program that teaches Stasis its own type (stasis.register) and resumes without set-up."""
import stasis

SCALE = 10

class Meter:
    """Refuses pickling: only the registered handler can capture it."""
    def __init__(self, reading):
        self.reading = reading
    def __reduce_ex__(self, protocol):
        raise TypeError("Meter objects hold a device handle")

def make(reading):
    return Meter(reading * SCALE // SCALE)

def save_meter(m):
    return m.reading

def load_meter(reading):
    return make(reading)

stasis.register(Meter, save_meter, load_meter)
meters = [Meter(i) for i in range(3)]
total = 0
for step in range(40):
    meters[step % 3].reading += step
    total += sum(m.reading for m in meters)
    print(step, total, [m.reading for m in meters])

# Formatters made by a factory (closures over `unit` and `digits`) live in a table; the inner
# function's body changes; the closures already made get the new code with their own cells.
import stasis


def make_formatter(unit, digits):
    def fmt(value):
        return f"{value:.{digits}f}{unit}"
    return fmt


TABLE = {"temp": make_formatter("C", 1), "dist": make_formatter("km", 3)}


def show(readings):
    for i, (kind, value) in enumerate(readings):
        print(i, TABLE[kind](value))
        if i == 1:
            stasis.suspend()


show([("temp", 21.456), ("dist", 3.5), ("temp", -4.25), ("dist", 12.0)])
TABLE["mass"] = make_formatter("kg", 2)
print(TABLE["mass"](1.5))

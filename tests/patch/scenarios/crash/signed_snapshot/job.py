# Unit conversion table; an unknown unit raises in the lookup helper.
FACTORS = {"km": 1000.0, "m": 1.0, "cm": 0.01}


def factor(unit):
    return FACTORS[unit]


def to_metres(value, unit):
    return value * factor(unit)


for value, unit in [(1.5, "km"), (20, "cm"), (3, "mi"), (7, "m")]:
    print(value, unit, "=", round(to_metres(value, unit), 3), "m")

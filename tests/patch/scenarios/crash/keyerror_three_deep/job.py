# A stock report: one product code is missing from the catalogue, three calls down.
CATALOGUE = {"A1": ("bolt", 0.25), "B2": ("nut", 0.10), "C3": ("washer", 0.05)}


def unit_price(code):
    name, price = CATALOGUE[code]
    return price


def line_value(code, qty):
    return round(unit_price(code) * qty, 2)


def summarize(lines):
    total = 0.0
    for n, (code, qty) in enumerate(lines):
        value = line_value(code, qty)
        total = round(total + value, 2)
        print(f"{n:02d} {code:>3} x{qty:<4} {value:8.2f} total {total:8.2f}")
    return total


ORDERS = [("A1", 100), ("B2", 250), ("C3", 40), ("Z9", 7), ("A1", 3), ("B2", 1)]
print("report")
print("grand", summarize(ORDERS))

# Inventory moves: a move takes more than is in stock and the check raises.
class OutOfStock(Exception):
    pass


STOCK = {"pens": 10, "pads": 4, "ink": 2}


def take(item, n):
    if STOCK[item] < n:
        raise OutOfStock(f"{item}: want {n}, have {STOCK[item]}")
    STOCK[item] -= n


def apply(moves):
    for i, (item, n) in enumerate(moves):
        take(item, n)
        print(i, item, n, STOCK[item])


apply([("pens", 3), ("pads", 1), ("ink", 2), ("pads", 5), ("pens", 1)])

# A shop's price list; the pricing module (shop/pricing.py, imported) changes its labels and
# its rounding while the program is suspended in a loop of __main__.
import stasis
from shop import pricing

ITEMS = [("tea", 3.0), ("cake", 4.15), ("jam", 2.5), ("bread", 1.99)]

for i, (name, net) in enumerate(ITEMS):
    print(pricing.label(name, net))
    if i == 1:
        stasis.suspend()

# Invoices in several currencies; lower-case currency codes are not found.
from lib.money import parse_amount, to_eur


def invoice_total(items):
    total = 0.0
    for text in items:
        amount, cur = parse_amount(text)
        total = round(total + to_eur(amount, cur), 2)
        print(f"{text!r:16} -> {total:.2f}")
    return total


print("total EUR", invoice_total(["10 EUR", "20 usd", "5 GBP", "7 usd", "1 EUR"]))

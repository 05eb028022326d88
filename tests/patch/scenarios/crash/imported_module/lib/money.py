RATES = {"EUR": 1.0, "USD": 0.9, "GBP": 1.15}


def to_eur(amount, currency):
    return round(amount * RATES[currency], 2)


def parse_amount(text):
    number, currency = text.split()
    return float(number), currency

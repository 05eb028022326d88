VAT = 0.2


def gross(net):
    return round(net * (1 + VAT), 1)


def label(name, net):
    return f"{name.upper():6}|{gross(net):>6}|"

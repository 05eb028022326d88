VAT = 0.2


def gross(net):
    return round(net * (1 + VAT), 2)


def label(name, net):
    return f"{name}: {gross(net)}"

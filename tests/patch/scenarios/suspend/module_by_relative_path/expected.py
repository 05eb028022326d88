ITEMS = [("tea", 3.0), ("cake", 4.15), ("jam", 2.5), ("bread", 1.99)]
for i, (name, net) in enumerate(ITEMS):
    if i <= 1:
        print(f"{name}: {round(net * 1.2, 2)}")
    else:
        print(f"{name.upper():6}|{round(net * 1.2, 1):>6}|")

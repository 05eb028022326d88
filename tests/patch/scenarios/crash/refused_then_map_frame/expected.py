print("debug: 4.00")
print("debug: 2.00")
print("normalized", [0.5, 0.25, None, 1.0])

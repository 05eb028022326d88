print("order 1: 1 items shipped")             # before the crash: the old method
print("order 2: cancelled, skipped")          # the fixed statement
print("order 3: 0 items shipped (fast)")      # the new method, the added field
print("shipped 3", ["shipped", "cancelled", "shipped"])

# Nothing is printed before the suspension (leaf3 suspends before its print); after it, every
# frame runs the new code.
print("      -leaf3", 1, "kids", 0)
print("      -leaf4", 1, "kids", 0)
print("    -b", 3, "kids", 2)
print("    -c", 1, "kids", 0)
print("  -a", 5, "kids", 2)
print("  -d", 1, "kids", 0)
print("-root", 7, "kids", 2)
print("size", 7)

import sys
import os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helper_mod  # noqa: E402

for i in range(8):
    helper_mod.record(i)
    print(i, helper_mod.summary(), helper_mod.square_all([i, i + 1]))

"""Regenerates tests/golden/objects_v<N>.golden for the current format version.

Run it (build/bin/python tests/golden/regen.py) in the same commit that bumps kFormatVersion in
format/schema.h, and delete the golden file of the old version.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stasis  # noqa: E402
from golden_values import golden_value  # noqa: E402

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"objects_v{stasis.FORMAT_VERSION}.golden")
with open(path, "wb") as f:
    f.write(stasis.dumps(golden_value()))
print("wrote", path)

"""Objects a library module binds as its own globals and compares by identity (sentinels such as
dataclasses.MISSING, numpy's errstate _Unspecified): held by the program across a suspension, they
must still be the module's own objects, not copies."""
import dataclasses
import re


def fill(defaults, n):
    marker = dataclasses.MISSING
    out = []
    for i in range(n):
        value = defaults.get(i, marker)
        out.append("-" if value is dataclasses.MISSING else value)
    return out, marker


held = {"missing": dataclasses.MISSING, "flag": re.IGNORECASE}
for round_ in range(4):
    row, marker = fill({1: "a", 3: "b"}, 6 + round_)
    print(round_, "".join(row), marker is dataclasses.MISSING, held["missing"] is dataclasses.MISSING,
          held["flag"] is re.IGNORECASE)

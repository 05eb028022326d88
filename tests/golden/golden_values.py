"""The object graph stored in the golden snapshot of the current format version.

tests/golden/regen.py writes it; tests/format/test_golden.py checks that (a) the golden file still
loads to this value and (b) dumping this value today produces the same payload bytes — so a
schema change without a format-version bump fails the tests. Extend the value when a format
version adds types (and regenerate in the same commit as the bump).
"""


def golden_value():
    shared = ["shared", 1]
    value = {
        "none": None, "bools": [True, False],
        "ints": [0, 1, -1, 2**62, -2**63, 2**64, -2**200, 12345678901234567890],
        "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e-310],
        "strs": ["", "ascii", "latin-1 é", "bmp ☃", "astral 🐍", "lone \ud800 surrogate"],
        "bytes": [b"", b"\x00\xff" * 3],
        "tuples": [(), (1,), (1, (2, (3,)))],
        "nested": {"a": {"b": {"c": []}}},
        "shared": [shared, shared],
    }
    value["self"] = value
    return value

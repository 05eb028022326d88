"""Regenerates the golden files of the current format version (tests/golden/*_v<N>.golden):
objects (the basic value), ops (a value that uses every op) and program (a program payload's
deterministic parts).

Run it (build/bin/python tests/golden/regen.py) in the same commit that bumps kFormatVersion in
format/schema.h, and delete the golden files of the old version.
"""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stasis  # noqa: E402
from stasis import _engine  # noqa: E402
from golden_values import golden_every_op, golden_program, golden_value  # noqa: E402


def program_bytes() -> bytes:
    root, seed, meta = golden_program()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "program.snap")
        _engine.dump(root, path, kind="program", hash_seed=seed, by_value=["__main__"],
                     meta=json.dumps(meta, sort_keys=True))
        with open(path, "rb") as f:
            return f.read()


def payload_region(data: bytes) -> bytes:
    """The bytes after the preamble (payload + footer): independent of time and host."""
    return data[12 + int.from_bytes(data[10:12], "little") + 4:]


def write_all() -> None:
    v = stasis.FORMAT_VERSION
    for name, data in ((f"objects_v{v}.golden", stasis.dumps(golden_value())),
                       (f"ops_v{v}.golden", stasis.dumps(golden_every_op())),
                       (f"program_v{v}.golden", program_bytes())):
        path = os.path.join(HERE, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                old = f.read()
            if payload_region(old) == payload_region(data):
                print("unchanged", path)  # only the preamble's time and host would differ
                continue
        with open(path, "wb") as f:
            f.write(data)
        print("wrote", path)


if __name__ == "__main__":
    write_all()

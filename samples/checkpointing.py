"""A program that saves its own progress with stasis.checkpoint(): after each stage it writes a
snapshot and goes on. If the machine dies, `stasis resume stage.snap` continues right after the
last completed stage; checkpoint() returns True there, so the program can tell.

    stasis run samples/checkpointing.py
    stasis resume stage.snap                  # continues after the last stage written
"""
import hashlib

import stasis


def stage(data, rounds):
    digest = data
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


state = b"seed"
for number in range(1, 6):
    state = stage(state, 20000)
    print(f"stage {number}: {state.hex()[:16]}", flush=True)
    if stasis.checkpoint("stage.snap"):
        print(f"(resumed from the checkpoint after stage {number})", flush=True)
print("final", state.hex()[:32])

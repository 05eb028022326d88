"""Client load as a process of its own, for a client in another network namespace. Commands on
stdin, one per line: "start FAMILY HOST PORT PERSISTENT RETRY" (FAMILY inet, PERSISTENT and RETRY
0 or 1), "target HOST PORT", "wait N" (answers "reached N" once N requests succeeded), "stop"
(answers one JSON line: successes, counters, failures, servers, max_wait)."""
import json
import os
import socket
import sys

sys.path.insert(0, os.environ["STASIS_SOURCE_DIR"])
from tests.services.support import Load, Target  # noqa: E402

load = None
target = None
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "start":
        target = Target(socket.AF_INET, (words[2], int(words[3])))
        load = Load(target, threads=4, persistent=words[4] == "1", retry=words[5] == "1")
    elif words[0] == "target":
        target.address = (words[1], int(words[2]))
    elif words[0] == "wait":
        try:
            load.wait_for(int(words[1]), timeout=60)
            print("reached", load.total(), flush=True)
        except AssertionError as e:
            print("stuck", str(e).replace("\n", " "), flush=True)
    elif words[0] == "total":
        print("total", load.total(), flush=True)
    elif words[0] == "stop":
        load.stop()
        print(json.dumps({"successes": load.successes, "counters": load.counters(), "failures": load.failures,
                          "servers": load.servers, "max_wait": load.max_wait}), flush=True)
        break

# Documented limit (README "Crash snapshots"): a loop cannot be rebuilt while it fetches its next
# item, so the crash is captured in the caller of scan(), whose statement runs again from its start
# with the fixed generator: the lines printed before the crash are printed again.
LOG = ["INFO: started", "WARN: disk 80%", "malformed line", "INFO: done"]
print("0 INFO STARTED {'INFO': 1}")
print("1 WARN DISK 80% {'INFO': 1, 'WARN': 1}")
exec(open("fix.py").read())

done = []
for job in ["a", "bb", "c", " ", "dddd"]:
    new = job not in ("a", "bb", "c")
    if new:
        print("job", repr(job))
        print("trying")
    print("begin", job)
    if new:
        print("in section")
    n = len(job.strip())
    if n == 0:
        print("end", job, "ZeroDivisionError")
        print("empty job skipped")
        done.append(None)
    else:
        value = (100 if job == "c" or new else 10) // n
        if job == "c" or new:
            print("value", value)
        done.append(value)
        print("end", job, "")
    print("after", repr(job))
    if job == "c" or new:
        print("next")
print(done)

# Parsing key=value settings; two different bad lines, found one crash at a time.
LINES = ["retries=3", "timeout=2.5", "verbose", "name=svc", "ports=80,443", "debug=yes=no"]


def parse(line):
    if "=" not in line:
        line += "=true"
    key, value = line.split("=")
    return key, value


def load(lines):
    settings = {}
    for line in lines:
        k, v = parse(line)
        settings[k] = v
        print("set", k, "=", v)
    return settings


print(load(LINES))

"""A finished child's unread output: still readable after a resume."""
import subprocess
import sys



def spawn(i):
    p = subprocess.Popen([sys.executable, "-c", f"import sys; print('child {i}' * 20); "
                          f"sys.stderr.write('warn {i}\\n'); sys.exit({i})"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=(i % 2 == 1))
    p.wait()
    return p


# Called by map (from C): no suspension while a child runs (a running child is refused).
children = list(map(spawn, range(3)))
total = 0
for step in range(30):
    total += step * step
    print(step, total, [c.returncode for c in children])
# communicate() of a finished child still polls its pipes (a selector cannot be captured): called
# from C (map), so that no suspension falls inside it.
for c, (out, err) in zip(children, map(subprocess.Popen.communicate, children)):
    print(c.args[-1][:20], len(out), out[:16], err)

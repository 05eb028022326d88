# Per-team completion rates; one team has no tasks yet.
TEAMS = {
    "red": [1, 1, 0, 1],
    "blue": [0, 1],
    "green": [],
    "gold": [1, 1, 1],
}


def ratio(done, total):
    return done / total if total else 0.0


def rate(tasks):
    return round(100 * ratio(sum(tasks), len(tasks)), 1)


def report(teams):
    seen = []
    for name, tasks in teams.items():
        r = rate(tasks)
        seen.append(name)
        print(f"{name:6} {r:5.1f}%  ({len(seen)} teams so far)")
    return seen


print("teams:", report(TEAMS))

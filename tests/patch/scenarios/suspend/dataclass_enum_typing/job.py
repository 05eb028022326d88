# A task board with dataclasses, an Enum and typing annotations; a method of the dataclass and a
# function with a typed signature change; the instances stay.
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Dict, List, Optional

import stasis


class Priority(Enum):
    LOW = auto()
    HIGH = auto()


@dataclass(order=True)
class Task:
    rank: int
    title: str = field(compare=False)
    priority: Priority = field(default=Priority.LOW, compare=False)
    tags: List[str] = field(default_factory=list, compare=False)

    def badge(self) -> str:
        return f"[{self.priority.name[0]}] {self.title}"


def summary(tasks: List[Task], limit: Optional[int] = None) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for t in sorted(tasks)[:limit]:
        counts[t.priority.name] = counts.get(t.priority.name, 0) + 1
    return counts


TASKS = [Task(3, "write docs"), Task(1, "fix bug", Priority.HIGH, ["urgent"]), Task(2, "review")]

for round_ in range(4):
    TASKS[round_ % 3].rank += 5
    print(round_, [t.badge() for t in sorted(TASKS)], summary(TASKS, 2))
    if round_ == 1:
        stasis.suspend()

# Orders as dataclasses with an Enum status; shipping a cancelled order raises.
from dataclasses import dataclass, field
from enum import Enum
from typing import List


class Status(Enum):
    NEW = "new"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"


@dataclass
class Order:
    oid: int
    items: List[str] = field(default_factory=list)
    status: Status = Status.NEW

    def ship(self) -> str:
        if self.status is Status.CANCELLED:
            raise RuntimeError(f"order {self.oid} is cancelled")
        self.status = Status.SHIPPED
        return f"order {self.oid}: {len(self.items)} items shipped"


def ship_all(orders: List[Order]) -> int:
    shipped = 0
    for o in orders:
        print(o.ship())
        shipped += 1
    return shipped


orders = [Order(1, ["pen"]), Order(2, ["ink", "pad"], Status.CANCELLED), Order(3)]
print("shipped", ship_all(orders), [o.status.value for o in orders])

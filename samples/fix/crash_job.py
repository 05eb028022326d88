"""samples/crash_job.py with its bug fixed: pounds are converted too (a new module-level constant and
a changed to_kg). Given to `stasis patch --source` as the new source of the crashed job."""

SHIPMENTS = [
    ("bolts", 1200, "g"), ("plates", 3, "t"), ("cable", 48, "kg"), ("rivets", 850, "g"),
    ("beams", 2, "t"), ("paint", 40, "lb"), ("glass", 75, "kg"), ("sand", 1, "t"),
]
TO_KG = {"g": 0.001, "kg": 1.0, "t": 1000.0}
KG_PER_LB = 0.45359237


def to_kg(amount, unit):
    factor = KG_PER_LB if unit == "lb" else TO_KG[unit]
    return amount * factor


def weigh(shipment):
    name, amount, unit = shipment
    return round(to_kg(amount, unit), 3)


def bill(shipment, rate):
    kg = weigh(shipment)
    return kg, round(kg * rate, 2)


def main():
    total_kg, total_cost = 0.0, 0.0
    for i, shipment in enumerate(SHIPMENTS):
        kg, cost = bill(shipment, 0.85)
        total_kg += kg
        total_cost += cost
        print(f"{i}: {shipment[0]:<7} {kg:>9.3f} kg  {cost:>8.2f}")
    print(f"total: {total_kg:.3f} kg, {total_cost:.2f}")


main()

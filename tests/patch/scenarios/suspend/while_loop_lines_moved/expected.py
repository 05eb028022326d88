log = [1, 2, 4]
print("attempt", 1, "delay", 1)
print("attempt", 2, "delay", 2)
print("attempt", 3, "delay", 4)
log.append(-4)
delay, attempt = 12, 3
while delay < 100:
    attempt += 1
    print("attempt", attempt, "delay", delay)
    log.append(-delay)
    delay *= 3
print("stopped at", delay, "after", attempt, "attempts")
print(log)

# A retry/backoff loop (while) suspended inside its body; the new version removes a statement
# before the resume point, inserts one after it, and changes the loop's exit message.
import stasis


def backoff(limit):
    delay = 1
    attempt = 0
    log = []
    while delay < limit:
        attempt += 1
        log.append(delay)
        if attempt == 3:
            stasis.suspend()
        print("attempt", attempt, "delay", delay)
        delay *= 2
    print("gave up after", attempt, "attempts")
    return log


print(backoff(100))

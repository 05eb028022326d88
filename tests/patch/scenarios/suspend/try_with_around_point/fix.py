# The resume point sits inside a with block, inside try/except/finally, inside a for loop; the new
# version inserts statements in each of those blocks and changes the except clause's body.
import stasis


class Section:
    depth = 0

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        print("  " * Section.depth + "begin", self.name)
        Section.depth += 1
        return self

    def __exit__(self, kind, value, tb):
        Section.depth -= 1
        print("  " * Section.depth + "end", self.name, kind.__name__ if kind else "")
        return False


def process(jobs):
    done = []
    for job in jobs:
        print("job", repr(job))
        try:
            print("trying")
            with Section(job):
                print("in section")
                if job == "c":
                    stasis.suspend()
                value = 100 // len(job.strip())
                print("value", value)
                done.append(value)
        except ZeroDivisionError:
            print("empty job skipped")
            done.append(None)
        finally:
            print("after", repr(job))
        print("next")
    return done


print(process(["a", "bb", "c", " ", "dddd"]))

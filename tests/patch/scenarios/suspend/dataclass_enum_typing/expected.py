# job.py's rounds 0-1 with the old code, rounds 2-3 with the new code, on the same instances.
src = open("original.py").read().replace("import stasis\n", "").replace("    if round_ == 1:\n        stasis.suspend()\n", "")
NEW = False
src = src.replace('    def badge(self) -> str:\n',
                  '    def badge(self) -> str:\n'
                  '        if NEW:\n'
                  '            mark = "!" * (self.priority.value) if self.tags else ""\n'
                  '            return f"{self.title.upper()}{mark}#{self.rank}"\n')
src = src.replace("    for t in sorted(tasks)[:limit]:\n", "    for t in sorted(tasks, reverse=NEW)[:limit]:\n")
src = src.replace("    print(round_,", "    NEW = round_ >= 2\n    print(round_,")
exec(src)

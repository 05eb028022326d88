# Running statistics over batches; stats.py (imported) gets a median and a fixed spread, given as
# a file of another name with --source PATH=MODULE.
import stasis

import stats

BATCHES = [[3, 1, 2], [10, 20, 30, 40], [5, 5, 6], [9, 1, 4, 7]]

for n, b in enumerate(BATCHES):
    print(n, stats.mean(b), stats.spread(b))
    if n == 1:
        stasis.suspend()

import stats_new
BATCHES = [[3, 1, 2], [10, 20, 30, 40], [5, 5, 6], [9, 1, 4, 7]]
for n, b in enumerate(BATCHES):
    if n <= 1:
        print(n, sum(b) / len(b), max(b) - min(b))
    else:
        print(n, stats_new.mean(b), stats_new.spread(b))

"""List manipulation and comparisons: pure-Python merge sort, quicksort and heap operations."""
from bm_common import main


def merge_sort(a):
    if len(a) <= 1:
        return a
    mid = len(a) // 2
    left = merge_sort(a[:mid])
    right = merge_sort(a[mid:])
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def quicksort(a, lo, hi):
    while lo < hi:
        p = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < p:
                i += 1
            while a[j] > p:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if j - lo < hi - i:
            quicksort(a, lo, j)
            lo = i
        else:
            quicksort(a, i, hi)
            hi = j


def sift_down(h, i, n):
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and h[c + 1] > h[c]:
            c += 1
        if h[i] >= h[c]:
            return
        h[i], h[c] = h[c], h[i]
        i = c


def heap_sort(a):
    n = len(a)
    for i in range(n // 2 - 1, -1, -1):
        sift_down(a, i, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        sift_down(a, 0, end)
    return a


def work(n):
    data = [(i * 7919) % 10007 for i in range(n)]
    a = merge_sort(data)
    b = list(data)
    quicksort(b, 0, len(b) - 1)
    c = heap_sort(list(data))
    return (a == b == c) + sum(a[::97])


if __name__ == '__main__':
    main(work, 40000)

#!/usr/bin/env python3
"""topword reducer, keyed by word: count each word, keep the best word per
letter in memory and print them all at the end.

The bug this example exists for: it assumes one reducer sees every word. With
several reducers each one prints its own best word per letter, so a letter
gets several lines."""
import sys

best = {}
current, total = None, 0


def keep(word, n):
    cur = best.get(word[0])
    if cur is None or n > cur[1] or (n == cur[1] and word < cur[0]):
        best[word[0]] = (word, n)


for line in sys.stdin:
    word, n = line.rstrip("\n").split("\t")
    if word != current:
        if current is not None:
            keep(current, total)
        current, total = word, 0
    total += int(n)
if current is not None:
    keep(current, total)
for letter in sorted(best):
    print(f"{letter}\t{best[letter][0]}\t{best[letter][1]}")

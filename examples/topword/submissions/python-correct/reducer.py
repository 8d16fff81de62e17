#!/usr/bin/env python3
"""topword reducer: input is grouped by letter; per letter, count each word and
print the most frequent one (ties: the alphabetically smallest)."""
import collections
import sys


def emit(letter, counts):
    word, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    print(f"{letter}\t{word}\t{n}")


current, counts = None, collections.Counter()
for line in sys.stdin:
    letter, word, n = line.rstrip("\n").split("\t")
    if letter != current:
        if current is not None:
            emit(current, counts)
        current, counts = letter, collections.Counter()
    counts[word] += int(n)
if current is not None:
    emit(current, counts)

#!/usr/bin/env python3
"""topword combiner, keyed by word: sum the counts of each word."""
import collections
import sys

counts = collections.Counter()
for line in sys.stdin:
    word, n = line.rstrip("\n").split("\t")
    counts[word] += int(n)
for word, n in counts.items():
    print(f"{word}\t{n}")

#!/usr/bin/env python3
"""topword combiner: sum the counts of each (letter, word) in this map output."""
import collections
import sys

counts = collections.Counter()
for line in sys.stdin:
    letter, word, n = line.rstrip("\n").split("\t")
    counts[(letter, word)] += int(n)
for (letter, word), n in counts.items():
    print(f"{letter}\t{word}\t{n}")

#!/usr/bin/env python3
"""topword mapper with in-mapper combining over a list instead of a dict.

The bug this example exists for: every word is looked up by a linear scan, so
the mapper is quadratic in the number of distinct words. It is right, and
fast enough on small inputs, but it runs out of time on the large data set."""
import re
import sys

WORD = re.compile(r"[a-z]+")

pairs = []  # [word, count], searched linearly
for line in sys.stdin:
    for word in WORD.findall(line.lower()):
        for pair in pairs:
            if pair[0] == word:
                pair[1] += 1
                break
        else:
            pairs.append([word, 1])
for word, n in pairs:
    print(f"{word[0]}\t{word}\t{n}")

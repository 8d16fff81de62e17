#!/usr/bin/env python3
"""Word count reducer that needs a package only the extra runtime image has
(sortedcontainers): it sums the counts per word in a SortedDict."""
import sys

from sortedcontainers import SortedDict

totals = SortedDict()
for line in sys.stdin:
    word, _, count = line.rstrip("\n").partition("\t")
    totals[word] = totals.get(word, 0) + int(count)
for word, total in totals.items():
    print(f"{word}\t{total}")

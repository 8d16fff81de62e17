#!/usr/bin/env python3
"""Word count mapper: emit "word<TAB>1" for each maximal run of a-z after lowercasing."""
import re
import sys

WORD = re.compile(r"[a-z]+")

for line in sys.stdin:
    for word in WORD.findall(line.lower()):
        print(f"{word}\t1")

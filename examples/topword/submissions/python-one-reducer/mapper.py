#!/usr/bin/env python3
"""topword mapper, keyed by word: "word<TAB>1"."""
import re
import sys

WORD = re.compile(r"[a-z]+")

for line in sys.stdin:
    for word in WORD.findall(line.lower()):
        print(f"{word}\t1")

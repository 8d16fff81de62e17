#!/usr/bin/env python3
"""Word count mapper (WRONG on purpose: forgets to lowercase, so "The" and "the" differ)."""
import re
import sys

WORD = re.compile(r"[A-Za-z]+")

for line in sys.stdin:
    for word in WORD.findall(line):
        print(f"{word}\t1")

#!/usr/bin/env python3
"""Word count mapper with a syntax error (missing colon after the for statement)."""
import re
import sys

WORD = re.compile(r"[a-z]+")

for line in sys.stdin
    for word in WORD.findall(line.lower()):
        print(f"{word}\t1")

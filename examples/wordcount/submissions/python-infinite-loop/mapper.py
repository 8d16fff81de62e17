#!/usr/bin/env python3
"""Word count mapper that never terminates: it reads its input, then spins forever."""
import re
import sys

WORD = re.compile(r"[a-z]+")

for line in sys.stdin:
    for word in WORD.findall(line.lower()):
        print(f"{word}\t1")
sys.stdout.flush()
while True:
    pass

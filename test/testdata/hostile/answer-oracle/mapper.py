#!/usr/bin/env python3
"""Hostile: uses the grader as an oracle. It echoes every input line as
output, so that a diff excerpt would show the input (its own "unexpected"
lines) and the expected lines it missed. The feedback must quote neither."""
import sys

for line in sys.stdin:
    line = line.strip()
    if line:
        print(f"{line}\t1")

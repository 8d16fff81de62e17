#!/usr/bin/env python3
"""Hostile: prints the hidden input and the container's mount table to
stderr, then fails with an exception whose message is an input line. The
feedback must show none of it."""
import sys

lines = sys.stdin.read().splitlines()
sys.stderr.write("\n".join(lines) + "\n")
try:
    with open("/proc/self/mountinfo") as f:
        sys.stderr.write(f.read())
except OSError:
    pass
print('Traceback (most recent call last):\n  File "' + lines[0] + '", line 1\nValueError: ' + lines[1], file=sys.stderr)
raise ValueError(lines[0] + " | " + lines[-1])

#!/usr/bin/env python3
"""Hostile: writes to its working directory until the disk is full, then
keeps the task alive. The scratch tmpfs must contain it (no host disk)."""
import sys
import time

sys.stdin.read()
block = b"x" * (1 << 20)
try:
    with open("fill.bin", "wb") as f:
        while True:
            f.write(block)
except OSError as e:
    print(f"disk full as designed: {e}", file=sys.stderr)
    sys.exit(1)

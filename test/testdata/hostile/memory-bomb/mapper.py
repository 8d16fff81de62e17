#!/usr/bin/env python3
"""Hostile: allocates memory without end. The memory limit must contain it."""
import sys

sys.stdin.read()
hoard = []
while True:
    hoard.append(bytearray(64 << 20))

#!/usr/bin/env python3
"""Hostile: reaches for the C module behind subprocess."""
import re
import sys

import _posixsubprocess  # noqa: F401
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

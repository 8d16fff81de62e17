#!/usr/bin/env python3
"""Hostile: imports a module shipped only as a sourceless .pyc."""
import re
import sys

import helper  # noqa: F401
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

#!/usr/bin/env python3
"""Hostile: puts a zip on sys.path and imports code from it."""
import re
import sys

sys.path.insert(0, "lib.zip")
import zmod  # noqa: F401,E402
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

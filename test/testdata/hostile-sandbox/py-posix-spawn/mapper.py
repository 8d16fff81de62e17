#!/usr/bin/env python3
"""Hostile: starts a process with os.posix_spawn (os is allowed)."""
import os
import re
import sys

os.posix_spawn("/bin/sh", ["sh", "-c", "echo spawned >&2"], dict(os.environ))
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

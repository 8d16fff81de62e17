#!/usr/bin/env python3
"""Hostile: imports a forbidden module through __builtins__.__import__,
which the static check does not see. The run-time guard refuses it."""
import re
import sys

sp = __builtins__.__import__("subprocess")
sp.run(["true"])
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

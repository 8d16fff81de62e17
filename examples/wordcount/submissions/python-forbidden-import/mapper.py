#!/usr/bin/env python3
"""Word count mapper that imports a forbidden module (subprocess)."""
import re
import subprocess
import sys

WORD = re.compile(r"[a-z]+")

subprocess.run(["uname", "-a"], stdout=sys.stderr)
for line in sys.stdin:
    for word in WORD.findall(line.lower()):
        print(f"{word}\t1")

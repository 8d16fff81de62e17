"""mapper.py: build-time sample streaming mapper (AppCDS training only)."""
import re
import sys

for line in sys.stdin:
    for w in re.findall(r"[a-z]+", line.lower()):
        print(f"{w}\t1")

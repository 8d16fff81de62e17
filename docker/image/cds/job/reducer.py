"""reducer.py: build-time sample streaming reducer/combiner (AppCDS training only)."""
import sys

cur, n = None, 0
for line in sys.stdin:
    w, _, c = line.rstrip("\n").partition("\t")
    if w != cur:
        if cur is not None:
            print(f"{cur}\t{n}")
        cur, n = w, 0
    n += int(c)
if cur is not None:
    print(f"{cur}\t{n}")

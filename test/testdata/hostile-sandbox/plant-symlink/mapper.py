#!/usr/bin/env python3
"""Hostile: plants symlinks where the runner writes its result and among the
job's output files, then does its job. The runner neither follows nor ships
them: the grade is a plain pass."""
import os
import re
import sys

for target, link in (("/dev/zero", "/scratch/.gradeflow/result/result.json"),
                     ("/etc/passwd", "/scratch/out/part-99999"),
                     ("/dev/zero", "/scratch/.gradeflow/result/result.json.tmp")):
    try:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(target, link)
    except OSError:
        pass
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

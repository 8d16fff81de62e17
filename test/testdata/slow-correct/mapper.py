#!/usr/bin/env python3
"""Correct word-count mapper whose first map task sleeps, so tests can act mid-job."""
import os
import re
import sys
import time

if os.environ.get("mapreduce_task_partition", "0") == "0":
    time.sleep(8)
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

#!/usr/bin/env python3
"""Hostile: looks for other submissions' files and the host's secrets. If it
finds any, the job fails; a correct grade proves it found nothing."""
import os
import re
import sys

leaks = []
for path in ["/etc/shadow", "/root/.bash_history", "/var/run/docker.sock"]:
    try:
        with open(path, "rb") as f:
            f.read(1)
        leaks.append(path)
    except OSError:
        pass
for top in ["/", "/job", "/input", "/tmp", "/scratch"]:
    for root, dirs, files in os.walk(top):
        if root.startswith(("/proc", "/sys", "/dev", "/usr", "/opt", "/etc", "/var/lib", "/lib")):
            dirs[:] = []
            continue
        for name in dirs + files:
            if name.startswith(("gradeflow-", "submissions")) or "-execute-a" in name:
                leaks.append(os.path.join(root, name))
if sorted(os.listdir("/job")) != ["mapper.py", "reducer.py"]:
    leaks.append("/job has " + ",".join(os.listdir("/job")))
if leaks:
    print("leaked: " + ", ".join(leaks), file=sys.stderr)
    sys.exit(3)
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

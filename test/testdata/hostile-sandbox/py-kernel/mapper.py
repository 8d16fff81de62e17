#!/usr/bin/env python3
"""Hostile: defeats the Python-level import policy (drops the guard's
finder, loads the C cores through importlib's internals) and then tries to
start a process and open a socket. The kernel (seccomp) refuses both; the
mapper then does its job, so a correct grade proves both were refused. Had
either worked, the job would fail with exit 3."""
import os
import re
import sys

sys.meta_path.pop(0)
import importlib._bootstrap as b  # noqa: E402

try:
    p = b._gcd_import("_posixsubprocess")
    r, w = os.pipe()
    p.fork_exec(["/bin/true"], [b"/bin/true"], True, (), None, None, -1, -1, -1, -1, -1, -1,
                r, w, False, False, -1, None, None, -1, -1, None, True)
    print("process started", file=sys.stderr)
    sys.exit(3)
except PermissionError:
    pass
try:
    s = b._gcd_import("_socket")
    s.socket(2, 1)
    print("socket opened", file=sys.stderr)
    sys.exit(3)
except PermissionError:
    pass
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

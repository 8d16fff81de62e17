#!/usr/bin/env python3
"""Hostile: emits far more output than the job may keep (about 20 MB of
distinct keys). The output cap must stop it from reaching the worker."""
import sys

sys.stdin.read()
line = "x" * 20000
for i in range(1_000):
    print(f"{line}{i}\t1")

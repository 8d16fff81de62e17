#!/usr/bin/env python3
"""Hostile: imports socket through an aliased importlib."""
import importlib as il
import re
import sys

s = il.import_module("so" + "cket")
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

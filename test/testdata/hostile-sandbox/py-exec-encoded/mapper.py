#!/usr/bin/env python3
"""Hostile: runs an encoded import of subprocess with exec."""
import base64
import re
import sys

exec(base64.b64decode(b"aW1wb3J0IHN1YnByb2Nlc3M7IHN1YnByb2Nlc3MucnVuKFsidHJ1ZSJdKQ=="))
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

#!/usr/bin/env python3
"""Hostile: floods stderr forever. The worker keeps only a capped head and
tail of it, and the time limit ends the job."""
import sys

sys.stdin.read()
while True:
    sys.stderr.write("spam " * 200 + "\n")

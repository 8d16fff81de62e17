#!/usr/bin/env python3
"""Hostile: forks without end. The pids limit must contain it."""
import os
import sys

sys.stdin.read()
while True:
    os.fork()

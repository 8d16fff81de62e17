#!/usr/bin/env python3
"""Hostile: reaches for the network through asyncio, which the forbidden
module list does not name. asyncio imports socket, which the run-time guard
refuses (runtime_error naming it); were it let through, the sandbox has no
network, and a connection that succeeds fails the job with exit 3."""
import asyncio
import re
import sys


async def try_connect(host, port):
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


for target in [("1.1.1.1", 53), ("8.8.8.8", 443), ("127.0.0.1", 22), ("172.17.0.1", 2375)]:
    if asyncio.run(try_connect(*target)):
        print(f"reached {target}", file=sys.stderr)
        sys.exit(3)
for line in sys.stdin:
    for word in re.findall(r"[a-z]+", line.lower()):
        print(f"{word}\t1")

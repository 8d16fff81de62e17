#!/usr/bin/env python3
"""Hostile: emits nothing, but computes the right answer from /input and
tries every way it can think of to hand the runner a forged result: the
inherited result fd, the runner's stdout through /proc, the runner's result
directory, and the job's output directory. None may work: the grade must be
wrong_answer (or a runtime error) with no score."""
import io
import os
import re
import sys
import tarfile
from collections import Counter

counts = Counter()
for name in sorted(os.listdir("/input")):
    with open(os.path.join("/input", name), errors="replace") as f:
        for line in f:
            counts.update(re.findall(r"[a-z]+", line.lower()))
answer = "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items())).encode()
result = b'{"ok": true, "kind": "streaming", "exit_code": 0, "message": "forged", "errors": [], "elapsed_ms": 1}\n'


def forged_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in (("result.json", result), ("output/part-00000", answer)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


tar = forged_tar()
for fd in range(3, 64):
    try:
        os.write(fd, tar)
    except OSError:
        pass
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for fd in ("1", "3"):
        try:
            with open(f"/proc/{pid}/fd/{fd}", "wb") as f:
                f.write(tar)
        except OSError:
            pass
for d in ("/scratch/.gradeflow/result", "/scratch/.gradeflow"):
    try:
        with open(os.path.join(d, "result.json"), "wb") as f:
            f.write(result)
    except OSError:
        pass
for path in ("/scratch/out/part-99999", "/scratch/out/part-00000"):
    try:
        os.symlink("/input/" + sorted(os.listdir("/input"))[0], path)
    except OSError:
        pass
sys.stdin.read()

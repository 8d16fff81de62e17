#!/usr/bin/env python3
"""Generate the topword assignment's large test data set (never committed).

Usage: generate.py OUT_DIR [MEGABYTES]

Writes OUT_DIR/input/part-NN.txt (about MEGABYTES MB of text in all, default
12) and OUT_DIR/expected/part-00000, the reference answer (reference.py).
The text is deterministic: pseudo-words made of syllables, drawn with a
Zipf-like distribution from a vocabulary of 40,000 words, so the same
arguments always give byte-identical files (and one content hash).
"""
import os
import random
import subprocess
import sys

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qua", "bri", "dho",
             "fen", "gor", "hap", "jin", "wex", "yul", "cra", "pli", "ost", "umb", "ex", "ic"]


def vocabulary(rng, n):
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def main(out, megabytes):
    rng = random.Random(20261202)
    vocab = vocabulary(rng, 40000)
    rng.shuffle(vocab)
    cum, total = [], 0.0
    for rank in range(len(vocab)):
        total += 1.0 / (rank + 1)
        cum.append(total)
    inp = os.path.join(out, "input")
    exp = os.path.join(out, "expected")
    os.makedirs(inp, exist_ok=True)
    os.makedirs(exp, exist_ok=True)
    files = 8
    per_file = megabytes * 1_000_000 // files
    for i in range(files):
        path = os.path.join(inp, f"part-{i:02d}.txt")
        size = 0
        with open(path, "w", encoding="utf-8") as f:
            while size < per_file:
                words = rng.choices(vocab, cum_weights=cum, k=12)
                line = " ".join(w.capitalize() if j == 0 else w for j, w in enumerate(words)) + ".\n"
                f.write(line)
                size += len(line)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(exp, "part-00000"), "w", encoding="utf-8") as f:
        subprocess.run([sys.executable, os.path.join(here, "reference.py"), inp], stdout=f, check=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 12)

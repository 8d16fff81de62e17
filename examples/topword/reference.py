#!/usr/bin/env python3
"""Reference answer for the topword assignment, computed without MapReduce.

Usage: reference.py INPUT_DIR > part-00000

For each letter a-z that starts at least one word, print
"letter<TAB>word<TAB>count": the most frequent word starting with that
letter, ties broken by the alphabetically smallest word. A word is a maximal
run of a-z after lowercasing (as in the wordcount assignment).
"""
import collections
import os
import re
import sys

WORD = re.compile(r"[a-z]+")


def main(input_dir):
    counts = collections.Counter()
    for name in sorted(os.listdir(input_dir)):
        with open(os.path.join(input_dir, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                counts.update(WORD.findall(line.lower()))
    best = {}
    for word, n in counts.items():
        cur = best.get(word[0])
        if cur is None or n > cur[1] or (n == cur[1] and word < cur[0]):
            best[word[0]] = (word, n)
    for letter in sorted(best):
        word, n = best[letter]
        print(f"{letter}\t{word}\t{n}")


if __name__ == "__main__":
    main(sys.argv[1])

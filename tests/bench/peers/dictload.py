#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Workload (a) of the peers benchmark: a python3 process holding one large dict.

Usage: dictload.py MIB PERCENT SEED

Builds {int: bytearray} until the process's resident set reaches MIB MiB, prints
"ready PID ENTRIES", then serves commands on stdin, one per line:
  m  rewrite, in place, the values of about PERCENT % of the entries and print "ok N"
     (the entries touched: a few runs of neighbouring keys, whose values sit side by side in
     memory, plus a sprinkle of single keys, so a few % of the pages change)
  c  recompute the checksum of every value and print "sum HEX" (the state check)
  q  exit
Values are text-like (hex digits with a key prefix): compressible, like most heap data.
"""
import os
import random
import sys
import zlib


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def value(rng, key):
    return bytearray(b"%010d:" % key + rng.randbytes(28).hex().encode())


def main():
    mib, percent, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    table = {}
    key = 0
    while True:
        for _ in range(50000):
            table[key] = value(rng, key)
            key += 1
        if rss_mib() >= mib:
            break
    n = len(table)
    print("ready %d %d" % (os.getpid(), n), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "m":
            want = max(1, int(n * percent / 100))
            runs = 8
            run_len = max(1, want * 9 // 10 // runs)
            touched = 0
            for _ in range(runs):
                start = rng.randrange(0, max(1, n - run_len))
                for k in range(start, min(n, start + run_len)):
                    table[k][11:] = rng.randbytes(28).hex().encode()
                    touched += 1
            while touched < want:
                table[rng.randrange(n)][11:] = rng.randbytes(28).hex().encode()
                touched += 1
            print("ok %d" % touched, flush=True)
        elif cmd == "c":
            s = 0
            for k in range(n):
                s = zlib.crc32(table[k], s)
            print("sum %08x" % s, flush=True)
        elif cmd == "q":
            return
        else:
            print("error unknown command %r" % cmd, flush=True)


if __name__ == "__main__":
    main()

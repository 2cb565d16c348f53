#!/usr/bin/env python3
# A hook that races the guard: two processes, one swapping what a name is, the other changing the
# name, until a deadline. Used by test/races.test.ts; prints one JSON line of counts.
#
#   racer.py exchange NAME OTHER SECONDS   swaps NAME and OTHER with RENAME_EXCHANGE while the
#                                          other process appends to, chmods and truncates NAME
#   racer.py listing DIR SECONDS OBJECT    lists DIR while copy-ups run, and renames a link of
#                                          OBJECT over every guard temporary it sees
import ctypes
import json
import os
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(a, b):
    return libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE)


def race_exchange(name, other, seconds):
    deadline = time.monotonic() + seconds
    pid = os.fork()
    if pid == 0:
        while time.monotonic() < deadline:
            exchange(name, other)
        os._exit(0)
    counts = {'written': 0, 'refused': 0, 'other': 0}
    i = 0
    while time.monotonic() < deadline:
        i += 1
        try:
            if i % 3 == 0:
                os.chmod(name, 0o600 if i % 2 else 0o644)
            elif i % 3 == 1:
                fd = os.open(name, os.O_WRONLY | os.O_APPEND)
                os.write(fd, b'RACED\n')
                os.close(fd)
            else:
                os.truncate(name, 0)
            counts['written'] += 1
        except OSError as e:
            counts['refused' if e.errno == 30 else 'other'] += 1
    os.waitpid(pid, 0)
    return counts


def race_listing(directory, seconds, obj):
    deadline = time.monotonic() + seconds
    counts = {'seen': 0, 'swapped': 0, 'listings': 0}
    spare = os.path.join(directory, 'spare-link')
    while time.monotonic() < deadline:
        counts['listings'] += 1
        for n in os.listdir(directory):
            if not n.startswith('.rofiles-guard-copyup.'):
                continue
            counts['seen'] += 1
            try:
                if not os.path.exists(spare):
                    os.link(obj, spare)
                os.rename(spare, os.path.join(directory, n))
                counts['swapped'] += 1
            except OSError:
                pass
    return counts


def main():
    kind = sys.argv[1]
    if kind == 'exchange':
        out = race_exchange(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif kind == 'listing':
        out = race_listing(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit('racer.py: unknown race ' + kind)
    print(json.dumps(out))


main()

# SPDX-License-Identifier: MIT
"""mkdb.py FILE ROWS SEED: what tests/cli_programs.sh serves to sqlite3.

A SQLite database of one table t(id, k, v, s) of ROWS rows (k a random 40-bit
integer, v a random float, s 48 random hex digits, from Python's seeded
generator) and an index t_k on k.
"""
import random
import sqlite3
import sys


def main():
    path, rows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v REAL NOT NULL, s TEXT NOT NULL)"
    )
    db.executemany(
        "INSERT INTO t(k, v, s) VALUES (?, ?, ?)",
        ((rng.randrange(1 << 40), rng.random(), rng.randbytes(24).hex()) for _ in range(rows)),
    )
    db.execute("CREATE INDEX t_k ON t(k)")
    db.commit()
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

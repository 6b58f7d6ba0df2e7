"""`jwtctl user import` of plain-password users against hashing them one by one.

    .venv/bin/python bench/bulk_import.py [--users 2000] [--rounds 10]

Times the whole `jwtctl user import FILE` process (2,000 users with plain passwords, bcrypt cost
10, a fresh SQLite store) and, in the same run, 2,000 `bcrypt.hashpw` calls at the same cost on
one thread; prints both and the speed-up (target: at least 1.7x on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10, help="bcrypt cost (default 10)")
    args = parser.parse_args()
    jwtctl = str(Path(sys.executable).parent / "jwtctl")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "users.jsonl"
        with source.open("w") as fh:
            for i in range(args.users):
                fh.write(json.dumps({"username": f"user{i:05d}", "email": f"user{i}@example.com",
                                     "fullName": f"User {i}", "password": f"password {i:05d}"}) + "\n")  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("JWTCTL_")}
        env.update(JWTCTL_HOME=tmp, JWTCTL_BCRYPT_ROUNDS=str(args.rounds))
        t0 = time.perf_counter()
        run = subprocess.run(
            [jwtctl, "user", "import", str(source), "--json"],
            env=env,
            capture_output=True,
            check=False,
            text=True,
        )
        imported = time.perf_counter() - t0
        summary = json.loads(run.stdout)
        if run.returncode != 0 or summary["created"] != args.users:
            raise SystemExit(f"import failed: {run.returncode} {run.stderr} {summary}")
    t0 = time.perf_counter()
    for i in range(args.users):
        bcrypt.hashpw(f"password {i:05d}".encode(), bcrypt.gensalt(args.rounds))
    serial = time.perf_counter() - t0
    cores = os.cpu_count() or 1
    print(f"{args.users} users, bcrypt cost {args.rounds}, SQLite, {cores} cores")
    print(
        f"  jwtctl user import (whole process):  {imported:7.1f} s  {args.users / imported:7.1f} users/s"
    )
    print(
        f"  bcrypt.hashpw, one thread:           {serial:7.1f} s  {args.users / serial:7.1f} hashes/s"
    )
    print(f"  speed-up: {serial / imported:.2f}x (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()

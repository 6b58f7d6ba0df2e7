"""Refresh-token rotations per second through the core, on each store, 1 and 8 threads.

    .venv/bin/python bench/rotation.py [--seconds 3] [--mongo URI]

Each thread owns one session and rotates its own chain (verify the refresh token, compare-and-set
the session, sign a new access and refresh token). The baseline, measured in the same run, is one
raw pyjwt ``jwt.encode`` + ``jwt.decode`` (HS256) on one thread; the ratio says how many such
encode+decode pairs one rotation costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import mongo_server
from jwtctl.auth import Auth
from jwtctl.config import default_settings
from jwtctl.keys import open_keyring
from jwtctl.store import open_store


def raw_pyjwt(seconds: float) -> float:
    import jwt

    secret = b"s" * 32
    now = int(time.time())
    payload = {
        "sub": "u",
        "sid": "s",
        "jti": "j",
        "iat": now,
        "exp": now + 600,
        "iss": "jwtctl",
        "aud": "jwtctl",
    }
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        token = jwt.encode(payload, secret, algorithm="HS256")
        jwt.decode(token, secret, algorithms=["HS256"], audience="jwtctl")
        n += 1
    return n / (time.perf_counter() - t0)


def rotations(url: str, home: Path, threads: int, seconds: float) -> float:
    settings = default_settings(home=home, db=url, bcrypt_rounds=4, login_max_failures=10**6)
    store = open_store(url)
    store.init()
    auth = Auth(settings, store, open_keyring(settings))
    name = f"bench{threads}x{int(time.time() * 1000) % 10**8}"
    auth.users.create(username=name, email=f"{name}@example.com", password="benchmark password")
    tokens = [auth.login(name, "benchmark password").refresh_token for _ in range(threads)]
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = time.perf_counter() + seconds + 3600

    def work(i: int) -> None:
        token = tokens[i]
        barrier.wait()
        while time.perf_counter() < stop:
            token = auth.sessions.refresh(token).refresh_token
            counts[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    stop = t0 + seconds
    for t in pool:
        t.join()
    rate = sum(counts) / (time.perf_counter() - t0)
    store.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    parser.add_argument("--mongo", help="MongoDB URI (default: start SecantusDB from .venv-mongo)")
    args = parser.parse_args()
    baseline = raw_pyjwt(args.seconds)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, mongo_server(args.mongo) as mongo_uri:
        base, _, query = mongo_uri.partition("?")
        stores = {
            "memory": "memory:",
            "sqlite": f"sqlite:///{str(Path(tmp) / 'bench.db').lstrip('/')}",
            "mongodb (SecantusDB)"
            if not args.mongo
            else "mongodb": f"{base.rstrip('/')}/jwtctl_bench?{query}",
        }
        for name, url in stores.items():
            for threads in (1, 8):
                rows.append((name, threads, rotations(url, Path(tmp), threads, args.seconds)))
        baseline_again = raw_pyjwt(args.seconds)
    raw = (baseline + baseline_again) / 2
    print(f"raw pyjwt HS256 encode+decode, 1 thread: {raw:,.0f}/s "
          f"(measured before and after: {baseline:,.0f}, {baseline_again:,.0f})")  # fmt: skip
    header = ("store", "threads", "rotations/s", "us/rotation", "x raw encode+decode")
    print(f"{header[0]:<22} {header[1]:>7} {header[2]:>12} {header[3]:>12} {header[4]:>20}")
    for name, threads, rate in rows:
        print(f"{name:<22} {threads:>7} {rate:>12,.0f} {1e6 / rate:>12,.0f} {raw / rate:>20.1f}")


if __name__ == "__main__":
    main()

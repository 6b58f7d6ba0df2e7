"""`jwtctl serve` against the Express design, loaded by wrk in one run.

    .venv/bin/python bench/serve_vs_express.py [--rounds 3] [--duration 5] [--connections 32]

Needs wrk (Debian: `apt-get install wrk`) and node; installs the reference app's packages with
`npm ci` into bench/express on first use. Starts three servers on free loopback ports: the
Express reference (bench/express/app.js: express, jsonwebtoken, cookie-parser, native bcrypt; an
in-memory map for MongoDB), `jwtctl serve --store memory`, and `jwtctl serve` on a SQLite file;
all with bcrypt cost 10. Each round loads every server in turn (the order alternates) with
`wrk -t2 -c32 -d5s --latency` on:

* GET  /api/v1/users/current-user  (one Bearer token)
* POST /api/v1/users/refresh-token (a pool of 64 sessions' refresh tokens per server, each
  answer's successor put back: bench/wrk/refresh.lua)
* POST /api/v1/users/login         (one user, bcrypt cost 10)

and prints requests/s, p50 and p99 (medians over the rounds), non-2xx answers, and the median
of the per-round jwtctl/Express ratios. Each run starts after the previous server has worked off
what was still queued (2.5 s after a login run), so runs do not overlap on the machine's cores.
Login is also compared with what bcrypt allows on this machine: `bcrypt.checkpw` at cost 10 on
one thread per core, measured before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
JWTCTL = str(Path(sys.executable).parent / "jwtctl")
PASSWORD = "benchmark password"
USERS = 64
ROUNDS_COST = 10
ENDPOINTS = ("current-user", "refresh-token", "login")


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    bearer: str = ""
    refresh_pool: list[str] = field(default_factory=list)


def http(url: str, body: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            cookies = {}
            for value in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";", 1)[0]
            return resp.status, cookies, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {}, exc.read()


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            http(url + "/api/v1/users/current-user")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start_servers(tmp: Path) -> list[Server]:
    secrets = {
        "ACCESS_TOKEN_SECRET": "bench-access-secret-" + "a" * 24,
        "REFRESH_TOKEN_SECRET": "bench-refresh-secret-" + "r" * 24,
    }
    servers = []
    port = free_port()
    env = {**os.environ, **secrets, "PORT": str(port), "BCRYPT_ROUNDS": str(ROUNDS_COST)}
    node = subprocess.Popen(
        ["node", str(BENCH / "express" / "app.js")], env=env, stderr=subprocess.DEVNULL
    )
    servers.append(Server("express", f"http://127.0.0.1:{port}", node))
    for name, store in (
        ("jwtctl memory", "memory"),
        ("jwtctl sqlite", f"sqlite:///{str(tmp / 'bench.db').lstrip('/')}"),
    ):
        port = free_port()
        jenv = {k: v for k, v in os.environ.items() if not k.startswith("JWTCTL_")}
        jenv.update(
            JWTCTL_HOME=str(tmp / name.replace(" ", "-")), JWTCTL_BCRYPT_ROUNDS=str(ROUNDS_COST)
        )
        proc = subprocess.Popen(
            [JWTCTL, "serve", "--store", store, "--port", str(port)],
            env=jenv,
            stderr=subprocess.DEVNULL,
        )
        servers.append(Server(name, f"http://127.0.0.1:{port}", proc))
    for s in servers:
        wait_ready(s.url, s.proc)
    return servers


def prepare(server: Server) -> None:
    """Register the users (once) and log each in, for a fresh pool of refresh tokens."""

    def one(i: int) -> str:
        name = f"bench{i:02d}"
        body = {
            "username": name,
            "email": f"{name}@example.com",
            "fullName": name,
            "password": PASSWORD,
        }
        http(server.url + "/api/v1/users/register", body)
        status, cookies, raw = http(
            server.url + "/api/v1/users/login", {"username": name, "password": PASSWORD}
        )
        if status != 200:
            raise SystemExit(f"{server.name}: login failed ({status}): {raw[:200]!r}")
        if i == 0:
            server.bearer = json.loads(raw)["data"]["accessToken"]
        return cookies["refreshToken"]

    with ThreadPoolExecutor(8) as pool:
        server.refresh_pool = list(pool.map(one, range(USERS)))


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(server: Server, endpoint: str, args: argparse.Namespace, tmp: Path) -> Result:
    cmd = [
        "wrk",
        "-t2",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    url = f"{server.url}/api/v1/users/{endpoint}"
    if endpoint == "current-user":
        cmd += ["-H", f"Authorization: Bearer {server.bearer}", url]
    elif endpoint == "refresh-token":
        pools = tmp / f"pool-{server.name.replace(' ', '-')}"
        pools.mkdir(exist_ok=True)
        half = len(server.refresh_pool) // 2
        for n, part in enumerate((server.refresh_pool[:half], server.refresh_pool[half:])):
            (pools / f"tokens-{n}.txt").write_text("\n".join(part) + "\n")
        cmd += ["-s", str(BENCH / "wrk" / "refresh.lua"), url, "--", str(pools)]
    else:
        cmd += ["-s", str(BENCH / "wrk" / "login.lua"), url, "--", "bench00", PASSWORD]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    # The server just loaded may still be working off requests queued when wrk stopped (up to
    # 32 bcrypt checks after a login run): let it finish before the next run starts.
    time.sleep(2.5 if endpoint == "login" else 0.5)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Result(rps, p50, p99, int(bad.group(1)) if bad else 0)


def bcrypt_capacity(seconds: float) -> float:
    """bcrypt.checkpw at the configured cost per second, one thread per core."""
    import bcrypt

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(ROUNDS_COST))
    cores = os.cpu_count() or 1
    counts = [0] * cores
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            bcrypt.checkpw(PASSWORD.encode(), hashed)
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(cores)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for tool in ("wrk", "node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (wrk: apt-get install wrk)")
    if not (BENCH / "express" / "node_modules" / "express").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(BENCH / "express"), "--no-audit", "--no-fund"], check=True
        )
    capacity_before = bcrypt_capacity(3)
    results: dict[tuple[str, str], list[Result]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        servers = start_servers(tmp)
        try:
            for rnd in range(args.rounds):
                order = servers if rnd % 2 == 0 else servers[::-1]
                for server in order:
                    prepare(server)
                for endpoint in ENDPOINTS:
                    for server in order:
                        results.setdefault((server.name, endpoint), []).append(
                            wrk(server, endpoint, args, tmp)
                        )
                print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for s in servers:
                s.proc.terminate()
                s.proc.wait(10)
    capacity = (capacity_before + bcrypt_capacity(3)) / 2
    report(results, [s.name for s in servers], capacity, args)


def report(
    results: dict[tuple[str, str], list[Result]],
    names: list[str],
    capacity: float,
    args: argparse.Namespace,
) -> None:
    cores = os.cpu_count() or 1
    print(f"wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, medians; "
          f"bcrypt cost {ROUNDS_COST}; {cores} cores; Python {sys.version.split()[0]}")  # fmt: skip
    columns = ("endpoint", "server", "req/s", "p50 ms", "p99 ms", "non-2xx", "x express")
    print("{:<14} {:<14} {:>9} {:>8} {:>8} {:>8} {:>10}".format(*columns))
    for endpoint in ENDPOINTS:
        base = results[("express", endpoint)]
        for name in names:
            runs = results[(name, endpoint)]
            ratio = statistics.median(r.rps / b.rps for r, b in zip(runs, base, strict=True))
            rps = statistics.median(r.rps for r in runs)
            p50 = statistics.median(r.p50_ms for r in runs)
            p99 = statistics.median(r.p99_ms for r in runs)
            bad = sum(r.non_2xx for r in runs)
            print(
                f"{endpoint:<14} {name:<14} {rps:>9,.0f} {p50:>8.1f} {p99:>8.1f} {bad:>8} "
                f"{ratio:>10.2f}"
            )
    login = statistics.median(r.rps for r in results[("jwtctl memory", "login")])
    print(
        f"bcrypt.checkpw cost {ROUNDS_COST}, {cores} threads: {capacity:,.1f}/s; "
        f"jwtctl memory login: {login:,.1f}/s = {login / capacity:.0%} of it"
    )


if __name__ == "__main__":
    main()

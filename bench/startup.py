"""Cold start of whole processes: jwtctl commands against the Typer floor, measured in one run.

    .venv/bin/python bench/startup.py [--runs 21]

Prints the median wall time of each command over ``--runs`` runs (the commands interleaved, so
machine noise hits all of them alike) and each one's ratio to the Typer floor: a one-command
Typer app taking one string argument, which is the least any Typer CLI can cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR_APP = """
import typer

app = typer.Typer()


@app.command()
def main(name: str) -> None:
    print(name)


app()
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    result = subprocess.run(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()

    bindir = Path(sys.executable).parent
    jwtctl = str(bindir / "jwtctl")
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JWTCTL_")}
        env.update(JWTCTL_HOME=tmp, JWTCTL_BCRYPT_ROUNDS="4", NO_COLOR="1")
        create = [jwtctl, "user", "create", "alice", "--email", "a@example.com", "--password-stdin"]
        subprocess.run(
            create, input=b"correct horse battery\n", env=env, check=True, capture_output=True
        )
        token = subprocess.run(
            [jwtctl, "token", "issue", "alice"], env=env, check=True, capture_output=True
        )
        tok = token.stdout.decode().strip()
        floor = Path(tmp) / "floor.py"
        floor.write_text(FLOOR_APP)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "Typer floor (1 command, 1 str arg)": [sys.executable, str(floor), "x"],
            "jwtctl --help": [jwtctl, "--help"],
            "jwtctl token decode T": [jwtctl, "token", "decode", tok],
            "jwtctl token verify T (HS256, keyring+store)": [jwtctl, "token", "verify", tok],
            "jwtctl token verify T --offline": [jwtctl, "token", "verify", tok, "--offline"],
        }
        for cmd in cases.values():  # warm the OS caches and .pyc files
            timed(cmd, env)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, cmd in cases.items():
                samples[name].append(timed(cmd, env))

    medians = {name: statistics.median(s) for name, s in samples.items()}
    floor_t = medians["Typer floor (1 command, 1 str arg)"]
    targets = {
        "jwtctl --help": 1.3,
        "jwtctl token decode T": 1.15,
        "jwtctl token verify T (HS256, keyring+store)": 1.6,
    }
    version = sys.version.split()[0]
    print(f"cold start, median of {args.runs} runs each, interleaved (Python {version})")
    print(f"{'command':<46} {'median ms':>10} {'x floor':>8}  target")
    for name, t in medians.items():
        target = targets.get(name)
        verdict = (
            ""
            if target is None
            else f"<= {target:.2f}x  {'ok' if t / floor_t <= target else 'MISSED'}"
        )
        print(f"{name:<46} {t * 1000:>10.1f} {t / floor_t:>8.2f}  {verdict}")


if __name__ == "__main__":
    main()

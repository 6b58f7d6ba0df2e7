"""`jwtctl user import` and `jwtctl user export`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest

from jwtctl.bulk import export_users, import_users, read_rows
from jwtctl.store import Store, open_store
from jwtctl.users import Users
from tests.helpers import jwtctl

PW = "correct horse battery"
EXPRESS_HASH = bcrypt.hashpw(b"made by express", bcrypt.gensalt(4)).decode()
JWTCTL = shutil.which("jwtctl", path=str(Path(sys.executable).parent)) or "jwtctl"


@pytest.fixture
def url(persistent_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("JWTCTL_DB", persistent_url)
    return persistent_url


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


CSV = f"""username,email,fullName,password,passwordHash,roles
alice,alice@example.com,Alice,{PW},,admin;ops
bob,BOB@example.com,Bob,,{EXPRESS_HASH},
bad user,bad@example.com,Bad,{PW},,
carol,not-an-email,Carol,{PW},,
dave,dave@example.com,Dave,short,,
erin,erin@example.com,Erin,,$2b$10$nothash,
"""


def test_csv_import_keeps_hashes_hashes_passwords_and_reports_bad_rows(
    url: str, tmp_path: Path
) -> None:
    run = jwtctl("user", "import", write(tmp_path, "users.csv", CSV), "--json")
    assert run.exit_code == 1  # some rows failed
    doc = run.json()
    assert (doc["created"], doc["updated"], doc["skipped"], doc["failed"], doc["dryRun"]) == (
        2,
        0,
        0,
        4,
        False,
    )
    assert [(e["line"], e["reason"].split(":")[0]) for e in doc["errors"]] == [
        (4, "invalid username"), (5, "invalid email"), (6, "invalid password"), (7, "invalid passwordHash"),
    ]  # fmt: skip
    store = open_store(url)
    users = Users(store, rounds=4)
    assert users.authenticate("alice", PW).roles == ("admin", "ops")
    bob = users.authenticate("bob@example.com", "made by express")
    assert bob.password_hash == EXPRESS_HASH  # kept exactly
    store.close()


def test_jsonl_import_with_ids_and_mongoexport_shape(url: str, tmp_path: Path) -> None:
    lines: list[object] = [
        {"username": "alice", "email": "a@example.com", "fullName": "A", "password": PW, "disabled": True},
        # what mongoexport prints for the Express design's users: password is the hash
        {"_id": {"$oid": "65f1c0ffee0123456789abcd"}, "username": "bob", "email": "b@example.com",
         "fullName": "B", "password": EXPRESS_HASH, "__v": 0, "refreshToken": "x"},
        "not json",
    ]  # fmt: skip
    text = "\n".join(json.dumps(x) if isinstance(x, dict) else str(x) for x in lines) + "\n"
    run = jwtctl("user", "import", "-", "--json", input=text)
    doc = run.json()
    assert (doc["created"], doc["failed"]) == (2, 1)
    assert doc["errors"][0]["line"] == 3 and "not valid JSON" in doc["errors"][0]["reason"]
    shown = jwtctl("user", "show", "65f1c0ffee0123456789abcd", "--json").json()
    assert shown["username"] == "bob"
    assert jwtctl("user", "show", "alice", "--json").json()["disabled"] is True


def test_dry_run_writes_nothing(url: str, tmp_path: Path) -> None:
    csv_file = write(
        tmp_path,
        "u.csv",
        f"username,email,password\nalice,a@example.com,{PW}\nalice,b@example.com,{PW}\n",
    )
    doc = jwtctl("user", "import", csv_file, "--dry-run", "--json").json()
    assert (doc["dryRun"], doc["created"], doc["skipped"]) == (True, 1, 1)
    assert jwtctl("user", "list", "--json").json() == []


def test_on_conflict_skip_update_fail(url: str, tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "a.jsonl",
        json.dumps({"username": "alice", "email": "a@example.com", "password": PW}) + "\n",
    )
    assert jwtctl("user", "import", first).exit_code == 0
    changed = {
        "username": "alice",
        "email": "a2@example.com",
        "fullName": "New",
        "passwordHash": EXPRESS_HASH,
    }
    second = write(
        tmp_path,
        "b.jsonl",
        json.dumps(changed)
        + "\n"
        + json.dumps({"username": "zed", "email": "z@example.com", "password": PW})
        + "\n",
    )
    skipped = jwtctl("user", "import", second, "--json").json()
    assert (skipped["created"], skipped["skipped"]) == (1, 1)
    assert jwtctl("user", "show", "alice", "--json").json()["email"] == "a@example.com"
    updated = jwtctl("user", "import", second, "--on-conflict", "update", "--json").json()
    assert updated["updated"] == 2
    assert jwtctl("user", "show", "alice", "--json").json()["fullName"] == "New"
    failed = jwtctl("user", "import", second, "--on-conflict", "fail")
    assert failed.exit_code == 5 and "line 1" in failed.stderr
    assert jwtctl("user", "import", second, "--on-conflict", "maybe").exit_code == 2


def test_import_input_errors(url: str, tmp_path: Path) -> None:
    assert jwtctl("user", "import", str(tmp_path / "missing.csv")).exit_code == 2
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    run = jwtctl("user", "import", str(binary))
    assert run.exit_code == 2 and "not UTF-8" in run.stderr
    no_header = write(tmp_path, "h.csv", "alice,a@example.com,pw\n")
    assert jwtctl("user", "import", no_header, "--json").json()["errors"][0]["line"] == 1


def test_export_round_trip_and_file_mode(url: str, tmp_path: Path) -> None:
    jwtctl("user", "import", write(tmp_path, "u.csv", CSV))
    out = tmp_path / "export.jsonl"
    assert jwtctl("user", "export", "--output", str(out)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["username"] for r in rows] == ["alice", "bob"]
    assert all(r["passwordHash"].startswith("$2") and "password" not in r for r in rows)
    assert PW not in out.read_text()
    csv_text = jwtctl("user", "export", "--format", "csv").stdout
    assert csv_text.splitlines()[0] == "username,email,fullName,passwordHash,roles,disabled,_id"
    assert ",admin;ops,false," in csv_text
    fresh = f"sqlite:///{str(tmp_path / 'fresh.db').lstrip('/')}"
    again = jwtctl("--db", fresh, "user", "import", str(out), "--json").json()
    assert again["created"] == 2
    store = open_store(fresh)
    assert Users(store, rounds=4).authenticate("bob", "made by express").id == rows[1]["_id"]
    store.close()


def test_export_streams_in_pages(store: Store) -> None:
    text = "\n".join(
        json.dumps(
            {"username": f"user{i}", "email": f"u{i}@example.com", "passwordHash": EXPRESS_HASH}
        )
        for i in range(7)
    )
    import io

    summary = import_users(store, read_rows(io.StringIO(text), "jsonl"), rounds=4)
    assert summary.created == 7
    out = io.StringIO()
    assert export_users(store, out, "jsonl", page=2) == 7
    assert [json.loads(line)["username"] for line in out.getvalue().splitlines()] == [
        f"user{i}" for i in range(7)
    ]


def test_killed_import_leaves_whole_rows_and_a_rerun_finishes(tmp_path: Path) -> None:
    """SIGKILL in the middle of an import: every row is either fully written (a user whose
    password verifies) or absent, and running the same import again completes it."""
    n = 120
    source = tmp_path / "many.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "username": f"u{i:03d}",
                    "email": f"u{i}@example.com",
                    "password": f"password {i:03d}",
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    db = f"sqlite:///{str(tmp_path / 'kill.db').lstrip('/')}"
    env = {**os.environ, "JWTCTL_DB": db, "JWTCTL_BCRYPT_ROUNDS": "10"}
    proc = subprocess.Popen(
        [JWTCTL, "user", "import", str(source)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = open_store(db)
    deadline = time.monotonic() + 60
    while store.count_users() < 10 and time.monotonic() < deadline:  # let it write part of it
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    partial = store.list_users(limit=None)
    assert 0 < len(partial) < n
    for user in partial:
        i = int(user.username[1:])
        assert user.email == f"u{i}@example.com"
        assert bcrypt.checkpw(f"password {i:03d}".encode(), user.password_hash.encode())
    rerun = subprocess.run(
        [JWTCTL, "user", "import", str(source), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    doc = json.loads(rerun.stdout)
    assert (doc["created"] + doc["skipped"], doc["skipped"], doc["failed"]) == (n, len(partial), 0)
    assert store.count_users() == n
    store.close()

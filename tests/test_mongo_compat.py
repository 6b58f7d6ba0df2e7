"""Compatibility with the Express design's Mongoose `User` model, in both directions, against the
MongoDB test server: users jwtctl creates look like the model's documents, and documents the
model wrote are listed, shown, authenticated and changed by jwtctl without losing fields."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import bcrypt
import pymongo
import pytest
from bson import ObjectId

from jwtctl.store import open_store
from jwtctl.users import Users
from tests.helpers import create_user, jwtctl

pytestmark = pytest.mark.mongo


@pytest.fixture
def mongo(
    mongo_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pymongo.database.Database[Any]]:
    monkeypatch.setenv("JWTCTL_DB", mongo_db_url)
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_db_url, tz_aware=True)
    yield client.get_default_database()
    client.close()


def mongoose_user(name: str, password: str, prefix: bytes = b"$2b$") -> dict[str, Any]:
    """A document as the Express design's model saves it (bcrypt cost 10, __v, refreshToken)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10, prefix=prefix[1:3]))
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    return {
        "_id": ObjectId(),
        "username": name,
        "email": f"{name}@example.com",
        "fullName": name.title() + " Example",
        "avatar": "https://res.cloudinary.com/demo/image/upload/sample.jpg",
        "watchHistory": [],
        "password": hashed.decode(),
        "createdAt": now,
        "updatedAt": now,
        "__v": 0,
        "refreshToken": "eyJhbGciOiJIUzI1NiJ9.e30.sig",
    }


def test_jwtctl_users_look_like_mongoose_documents(mongo: pymongo.database.Database[Any]) -> None:
    create_user("alice", "correct horse battery", "--full-name", "Alice L")
    doc = mongo["users"].find_one({"username": "alice"})
    assert doc is not None
    assert isinstance(doc["_id"], ObjectId)
    assert {"username", "email", "fullName", "password", "createdAt", "updatedAt", "__v"} <= set(
        doc
    )
    assert (doc["email"], doc["fullName"], doc["__v"]) == ("alice@example.com", "Alice L", 0)
    assert isinstance(doc["createdAt"], datetime) and isinstance(doc["updatedAt"], datetime)
    # a $2b$ hash that bcrypt (the Express design's library) verifies as it is
    assert doc["password"].startswith("$2b$04$")
    assert bcrypt.checkpw(b"correct horse battery", doc["password"].encode())


@pytest.mark.parametrize("prefix", [b"$2b$", b"$2a$"])
def test_mongoose_documents_are_usable(
    mongo: pymongo.database.Database[Any], mongo_db_url: str, prefix: bytes
) -> None:
    doc = mongoose_user("bob", "hunter2hunter2", prefix)
    mongo["users"].insert_one(doc)
    listed = jwtctl("user", "list", "--json").json()
    assert [u["username"] for u in listed] == ["bob"]
    shown = jwtctl("user", "show", "bob", "--json").json()
    assert shown == {
        "_id": str(doc["_id"]),
        "username": "bob",
        "email": "bob@example.com",
        "fullName": "Bob Example",
        "roles": [],
        "disabled": False,
        "createdAt": "2025-03-01T12:00:00Z",
        "updatedAt": "2025-03-01T12:00:00Z",
    }
    store = open_store(mongo_db_url)
    users = Users(store, rounds=10)
    assert users.authenticate("bob@example.com", "hunter2hunter2").id == str(doc["_id"])
    store.close()


def test_changes_keep_the_models_other_fields(mongo: pymongo.database.Database[Any]) -> None:
    doc = mongoose_user("carol", "hunter2hunter2")
    mongo["users"].insert_one(doc)
    assert (
        jwtctl("user", "passwd", "carol", "--password-stdin", input="a new password\n").exit_code
        == 0
    )
    assert jwtctl("user", "disable", "carol").exit_code == 0
    after = mongo["users"].find_one({"_id": doc["_id"]})
    assert after is not None
    for field in ("avatar", "watchHistory", "__v", "fullName", "createdAt"):
        assert after[field] == doc[field], field
    assert after["disabled"] is True
    assert bcrypt.checkpw(b"a new password", after["password"].encode())
    assert after["updatedAt"] > doc["updatedAt"]


def test_indexes_made_by_mongoose_are_accepted(mongo: pymongo.database.Database[Any]) -> None:
    mongo["users"].create_index("username", unique=True, background=True)
    mongo["users"].create_index("email", unique=True, background=True)
    run = jwtctl("db", "init", "--json")
    assert run.exit_code == 0, run.stderr
    indexes = {i["name"]: i["present"] for i in run.json()["indexes"]}
    assert indexes["username_1"] and indexes["email_1"] and indexes["endsAt_1"]


def test_db_status_reports_version_counts_and_indexes(
    mongo: pymongo.database.Database[Any],
) -> None:
    before = jwtctl("db", "status", "--json").json()
    assert before["kind"] == "mongodb" and before["reachable"] is True
    assert before["version"].startswith("MongoDB ")
    create_user("alice")
    after = jwtctl("db", "status", "--json").json()
    assert after["counts"]["users"] == 1
    assert all(i["present"] for i in after["indexes"])

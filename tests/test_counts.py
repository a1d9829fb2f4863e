"""The maintained figures (``sync.counts``): every device's
``pending_changes`` and every user's quota usage are kept as changes commit
and as devices ack, and after every kind of change, ack, purge, device
deletion, restore and migration they equal a recount of the tables. A
request reads them instead of counting the library: the cost of ``GET
/devices`` does not grow with it (measured in SQLite instructions, not time)."""

import dataclasses
import os
import sqlite3

import pytest

from sync import backup, counts, cursors, janitor, migrations
from sync.db import database, init_db, write

from . import seed
from .helpers import CHUNK, assert_error, other_app, send_chunk, sha256, start_upload, upload

DAY = 86400


def recount(rt):
    """{device id: pending changes} and {user id: bytes}, counted the slow way."""
    conn = sqlite3.connect(rt.config.path("sync.sqlite3"))
    try:
        pending = dict(conn.execute(
            "SELECT d.id, (SELECT COUNT(*) FROM entries e WHERE e.user_id = d.user_id "
            "AND e.rev > COALESCE(d.acked_rev, -1)) FROM devices d"))
        usage = {user_id: bytes_ for user_id, _, bytes_, *_ in conn.execute(counts.RECOUNT_USERS)}
        return pending, usage
    finally:
        conn.close()


def differences(config):
    conn = sqlite3.connect(config.path("sync.sqlite3"), isolation_level=None)
    try:
        conn.execute("BEGIN")
        return counts.differences(conn)
    finally:
        conn.close()


def assert_counts(rt, api):
    """What the API answers equals a recount, and check finds nothing wrong."""
    pending, usage = recount(rt)
    listed = {d["id"]: d["pending_changes"] for d in api.get("/devices").json["devices"]}
    assert listed == {k: v for k, v in pending.items() if k in listed}
    for device_id in listed:
        assert api.get(f"/devices/{device_id}").json["pending_changes"] == pending[device_id]
    with database.connection_context():
        assert {u: counts.usage(u) for u in usage} == usage
    assert differences(rt.config) == []
    return pending


@pytest.fixture
def phone(api):
    return api.post("/devices", {"name": "Phone"}).json


@pytest.fixture
def kobo(api):
    return api.post("/devices", {"name": "Kobo"}).json


def report(dev, *items):
    return dev.post("/report", {"changes": list(items)}).json["results"]


def head(dev):
    return dev.get("/changes?limit=1000").json["cursor"]


def test_every_kind_of_change_and_ack_keeps_the_counts(rt, api, dev, device, phone, kobo):
    one, two, three = b"one" * 10, b"two" * 20, b"three" * 30
    assert assert_counts(rt, api)[device["id"]] == 0
    seed.put(rt, device, "a.txt", one)                        # a new path
    seed.put(rt, device, "b.txt", one)                        # the same content again
    assert_counts(rt, api)
    dev.post("/ack", {"cursor": head(dev)})                 # the laptop is up to date
    assert assert_counts(rt, api)[device["id"]] == 0
    seed.put(rt, device, "a.txt", two, base_rev=1)            # a modification
    assert assert_counts(rt, api)[device["id"]] == 1
    [moved] = report(dev, {"op": "move", "path": "b.txt", "to": "c.txt", "base_rev": 2})
    assert moved["status"] == "applied"
    assert assert_counts(rt, api)[device["id"]] == 3       # a.txt, b.txt gone, c.txt
    [deleted] = report(dev, {"op": "delete", "path": "c.txt", "base_rev": moved["rev"]})
    assert deleted["status"] == "applied"
    assert_counts(rt, api)
    # every kind of conflict
    seed.put(rt, device, "a.txt", three, base_rev=1)          # modify_modify
    report(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})  # delete_modify
    report(dev, {"op": "move", "path": "a.txt", "to": "d.txt", "base_rev": 1})  # move
    seed.put(rt, device, "A.TXT", one)                        # case_clash
    assert_counts(rt, api)
    # an upload completing
    data = b"x" * (CHUNK + 5)
    assert upload(dev, "big.bin", data)["status"] == "applied"
    assert_counts(rt, api)
    dev.post("/ack", {"cursor": head(dev)})
    conflicts = {c["kind"]: c["id"] for c in api.get("/conflicts").json["conflicts"]}
    assert set(conflicts) == {"modify_modify", "delete_modify", "move", "case_clash"}
    for kind, resolution in (("modify_modify", "keep_both"), ("delete_modify", "keep_client"),
                             ("move", "keep_server"), ("case_clash", "keep_client")):
        api.post(f"/conflicts/{conflicts[kind]}/resolve", {"resolution": resolution})
        assert_counts(rt, api)
    # the phone acks halfway through a listing, then at the head
    phone_api = api.as_(phone["token"])
    page = phone_api.get("/changes?limit=2").json
    phone_api.post("/ack", {"cursor": page["cursor"]})
    assert assert_counts(rt, api)[phone["id"]] > 0
    phone_api.post("/ack", {"cursor": head(phone_api)})
    pending = assert_counts(rt, api)
    assert pending[phone["id"]] == 0 and pending[kobo["id"]] == len(dev.get(
        "/changes?limit=1000").json["changes"])


def test_an_ack_far_behind_or_far_ahead_counts_right(rt, api, dev, device, phone):
    """Large enough that the ack's bounded counts need more than one round."""
    for n in range(3):
        report(dev, *({"op": "put", "path": f"{n}/{i}", "sha256": sha256(b"c"), "size": 1,
                       "mtime": 0, "base_rev": None} for i in range(1000))) if n else None
        if not n:
            seed.put(rt, device, "seed", b"c")
    phone_api = api.as_(phone["token"])
    first = phone_api.get("/changes?limit=5").json["cursor"]
    phone_api.post("/ack", {"cursor": first})
    assert assert_counts(rt, api)[phone["id"]] == 2001 - 5
    cursor = first
    for _ in range(3):
        cursor = phone_api.get(f"/changes?limit=1000&cursor={cursor}").json["cursor"]
    phone_api.post("/ack", {"cursor": cursor})
    assert assert_counts(rt, api)[phone["id"]] == 0
    dev.post("/ack", {"cursor": phone_api.get("/changes?limit=1000").json["cursor"]})
    assert assert_counts(rt, api)[device["id"]] == 2001 - 1000


def test_purge_and_device_deletion_keep_the_counts(rt, api, dev, device, phone, clock):
    seed.put(rt, device, "a", b"1")
    seed.put(rt, device, "b", b"2")
    report(dev, {"op": "delete", "path": "b", "base_rev": 2})
    dev.post("/ack", {"cursor": head(dev)})
    clock.advance(31 * DAY)
    janitor.run_once(rt)
    assert recount(rt)[0][device["id"]] == 0  # nothing purged: the phone never acked
    assert_counts(rt, api)
    api.delete(f"/devices/{phone['id']}", status=204)
    assert_counts(rt, api)
    assert janitor.run_once(rt)["tombstones"] == 1
    assert_counts(rt, api)
    kobo = api.post("/devices", {"name": "Kobo"}).json  # after the purge: 1 entry left
    assert kobo["pending_changes"] == 1
    assert assert_counts(rt, api)[kobo["id"]] == 1


def test_a_purge_in_batches(rt, api, dev, device, clock, monkeypatch):
    from sync import feed
    monkeypatch.setattr(feed, "PURGE_BATCH", 7)
    for i in range(20):
        seed.put(rt, device, f"f{i}", b"x")
    report(dev, *({"op": "delete", "path": f"f{i}", "base_rev": i + 1} for i in range(20)))
    dev.post("/ack", {"cursor": head(dev)})
    clock.advance(31 * DAY)
    assert janitor.run_once(rt)["tombstones"] == 20
    assert_counts(rt, api)
    assert dev.get("/changes").json["changes"] == []


def test_counts_survive_backup_and_restore(rt, api, dev, device, phone, tmp_path):
    seed.put(rt, "alice", "a", b"1", device["id"])  # with their blob files
    seed.put(rt, "alice", "b", b"2", device["id"])
    dev.post("/ack", {"cursor": head(dev)})
    seed.put(rt, "alice", "a", b"3", device["id"])
    before = assert_counts(rt, api)
    backup.backup(rt.config, str(tmp_path / "bk"))
    target = seed.config_for(tmp_path / "restored")
    backup.restore(target, str(tmp_path / "bk"))
    assert differences(target) == []
    problems, lines = seed.run_check(target)
    assert problems == 0, lines
    conn = sqlite3.connect(target.path("sync.sqlite3"))
    try:
        restored = dict(conn.execute(
            f"SELECT d.id, {counts.PENDING_SQL} FROM devices d"))
    finally:
        conn.close()
    assert restored == before


def test_check_finds_wrong_counts_and_repair_rewrites_them(rt, api, dev, device, phone):
    seed.put(rt, "alice", "a", b"1", device["id"])
    seed.put(rt, "alice", "b", b"22", device["id"])
    dev.post("/ack", {"cursor": head(dev)})
    with database.connection_context():
        database.execute_sql("UPDATE device_counts SET acked_entries = 7")
        database.execute_sql("UPDATE user_counts SET bytes = bytes + 100")
    problems, lines = seed.run_check(rt.config)
    assert problems == 2, lines
    assert [line for line in lines if line.startswith("PROBLEM")] == [
        "PROBLEM user 1: bytes held (quota usage) is 103, a recount says 3 (--repair fixes it)",
        f"PROBLEM device {device['id']}: pending_changes is -5, a recount says 0 "
        f"(--repair fixes it)"]
    problems, lines = seed.run_check(rt.config, repair=True)
    assert problems == 0 and any(line.startswith("fixed device") for line in lines), lines
    assert seed.run_check(rt.config) == (0, seed.run_check(rt.config)[1])
    assert ("counts: pending changes, quota usage, files and open conflicts match a recount"
            in seed.run_check(rt.config)[1])
    assert_counts(rt, api)


def test_a_version_1_database_gets_its_counts_and_queues_its_blobs(tmp_path):
    path = seed.oldest(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    sha = "ab" * 32
    conn.executescript(f"""
        UPDATE meta SET value = '4' WHERE key = 'rev';
        INSERT INTO devices (id, user_id, name, created_at, acked_rev)
            VALUES ('d2', 1, 'P', 'x', 2);
        INSERT INTO entries (user_id, path, fold, rev, deleted, size, sha256, changed_at)
            VALUES (1, 'a', 'a', 1, 0, 10, '{sha}', 'x'), (1, 'b', 'b', 2, 0, 10, '{sha}', 'x'),
                   (1, 'c', 'c', 3, 1, NULL, NULL, 'x'), (1, 'd', 'd', 4, 0, 5, '{"cd" * 32}', 'x');
        INSERT INTO conflicts (id, user_id, path, kind, created_at, client_op, client_sha256,
            client_size) VALUES ('k', 1, 'a', 'modify_modify', 'x', 'put', '{"ef" * 32}', 7);
        INSERT INTO blobs (sha256, size, created_at)
            VALUES ('{sha}', 10, 'x'), ('{"00" * 32}', 3, 'x');
    """)
    conn.close()
    init_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute(f"SELECT d.id, {counts.PENDING_SQL} FROM devices d "
                            "ORDER BY d.id").fetchall() == [("d1", 4), ("d2", 2)]
        assert conn.execute("SELECT entries, bytes FROM user_counts").fetchall() == [(4, 22)]
        assert sorted(r[0] for r in conn.execute("SELECT sha256 FROM blob_queue")) == [
            "00" * 32, sha]
        conn.execute("BEGIN")
        assert counts.differences(conn) == []
    finally:
        conn.close()


def test_a_version_6_database_gets_its_live_files_and_open_conflicts_counted(tmp_path):
    """Schema 7 keeps the web page's overview figures; the step fills them
    from a recount of a database the previous version wrote."""
    path = seed.oldest(tmp_path)
    init_db(path, steps=[s for s in migrations.STEPS if s.version <= 6])
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("PRAGMA user_version").fetchone() == (6,)
    sha = "ab" * 32
    conn.executescript(f"""
        INSERT INTO users (name, created_at) VALUES ('bob', 'x'), ('carol', 'x');
        INSERT INTO entries (user_id, path, fold, rev, deleted, size, sha256, changed_at)
            VALUES (1, 'a', 'a', 1, 0, 10, '{sha}', 'x'), (1, 'b', 'b', 2, 0, 10, '{sha}', 'x'),
                   (1, 'c', 'c', 3, 1, NULL, NULL, 'x'), (2, 'd', 'd', 4, 0, 10, '{sha}', 'x');
        INSERT INTO conflicts (id, user_id, path, kind, created_at, client_op, resolved_at)
            VALUES ('k1', 1, 'a', 'delete_modify', 'x', 'delete', NULL),
                   ('k2', 1, 'b', 'delete_modify', 'x', 'delete', 'x'),
                   ('k3', 3, 'e', 'delete_modify', 'x', 'delete', NULL);
        INSERT OR REPLACE INTO user_counts (user_id, entries, bytes) VALUES (1, 3, 10), (2, 1, 10);
    """)
    conn.close()
    init_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("SELECT user_id, entries, bytes, files, open_conflicts "
                            "FROM user_counts ORDER BY user_id").fetchall() == [
            (1, 3, 10, 2, 1), (2, 1, 10, 1, 0), (3, 0, 0, 0, 1)]
        conn.execute("BEGIN")
        assert counts.differences(conn) == []
    finally:
        conn.close()


def test_check_recounts_live_files_and_open_conflicts(rt, api, dev):
    seed.put(rt, "alice", "a.txt", b"a")
    seed.put(rt, "alice", "b.txt", b"b")
    with database.connection_context(), write():
        database.execute_sql("UPDATE user_counts SET files = 7, open_conflicts = 3")
    problems, lines = seed.run_check(rt.config)
    assert problems == 2 and [line for line in lines if line.startswith("PROBLEM")] == [
        "PROBLEM user 1: live files is 7, a recount says 2 (--repair fixes it)",
        "PROBLEM user 1: open conflicts is 3, a recount says 0 (--repair fixes it)"]
    assert seed.run_check(rt.config, repair=True)[0] == 0
    assert seed.run_check(rt.config)[0] == 0
    with database.connection_context():
        assert counts.figures(1) == {"files": 2, "bytes": 2, "open_conflicts": 0}


# -- the quota counts unresolved conflicts ------------------------------------

@pytest.fixture
def quota_app(tmp_path, clock):
    return other_app(tmp_path, clock, quota=10_000)


def usage(rt):
    with database.connection_context():
        return counts.usage(1)


def test_conflicts_client_content_counts_towards_the_quota(quota_app):
    """A stale base_rev cannot park content beyond the quota in conflicts."""
    rt, dev = quota_app
    live = upload(dev, "a.bin", b"L" * 9000)
    assert usage(rt) == 9000
    first = upload(dev, "a.bin", b"1" * 1000, base_rev=live["rev"] - 1)
    assert first["status"] == "conflict"
    assert usage(rt) == 10_000
    resp = start_upload(dev, "a.bin", b"2" * 1000, base_rev=live["rev"] - 1, status=507)
    assert_error(resp, 507, "quota_exceeded")
    # the same content again costs nothing: it is held already
    assert upload(dev, "a.bin", b"1" * 1000, base_rev=live["rev"] - 1)["status"] == "conflict"
    [conflict] = dev.get("/conflicts").json["conflicts"]
    resolved = dev.post(f"/conflicts/{conflict['id']}/resolve", {"resolution": "keep_both"})
    assert len(resolved.json["results"]) == 1
    assert usage(rt) == 10_000


def test_a_resolution_over_the_quota_is_507_and_the_conflict_stays_open(quota_app):
    rt, dev = quota_app
    live = upload(dev, "a.bin", b"L" * 6000)
    upload(dev, "copy.bin", b"L" * 6000)  # keep_client frees nothing either
    upload(dev, "a.bin", b"1" * 3000, base_rev=live["rev"] - 1)
    [conflict] = dev.get("/conflicts").json["conflicts"]
    # The quota is lowered (a restart with a smaller --quota): 9,000 bytes held.
    rt.config = dataclasses.replace(rt.config, quota=8000)
    feed = dev.get("/changes").json
    for resolution in ("keep_both", "keep_client"):
        resp = dev.post(f"/conflicts/{conflict['id']}/resolve", {"resolution": resolution},
                        status=507)
        assert_error(resp, 507, "quota_exceeded")
        assert [c["id"] for c in dev.get("/conflicts").json["conflicts"]] == [conflict["id"]]
        assert dev.get("/changes").json == feed
        assert usage(rt) == 9000
    dev.post(f"/conflicts/{conflict['id']}/resolve", {"resolution": "keep_server"})
    assert dev.get("/conflicts").json["conflicts"] == []
    assert usage(rt) == 6000


def test_keep_client_that_frees_space_is_allowed_over_the_quota(quota_app):
    rt, dev = quota_app
    live = upload(dev, "a.bin", b"L" * 6000)
    upload(dev, "a.bin", b"1" * 3000, base_rev=live["rev"] - 1)
    [conflict] = dev.get("/conflicts").json["conflicts"]
    rt.config = dataclasses.replace(rt.config, quota=2000)
    dev.post(f"/conflicts/{conflict['id']}/resolve", {"resolution": "keep_client"})
    assert usage(rt) == 3000
    assert dev.get("/download/a.bin").body == b"1" * 3000


def test_an_open_session_counts_until_it_is_cancelled(quota_app):
    rt, dev = quota_app
    session = start_upload(dev, "a.bin", b"x" * 6000).json
    assert_error(start_upload(dev, "b.bin", b"y" * 6000, status=507), 507, "quota_exceeded")
    dev.delete(f"/upload/{session['id']}", status=204)
    session = start_upload(dev, "b.bin", b"y" * 6000).json
    send_chunk(dev, session["id"], 0, b"y" * 6000)
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert usage(rt) == 6000


# -- the cost of a request does not grow with the library ---------------------

class Steps:
    """SQLite virtual-machine instructions run on this thread's connection."""

    def __init__(self):
        self.n = 0

    def __enter__(self):
        database.connect(reuse_if_open=True)
        database.connection().set_progress_handler(self._tick, 10)
        return self

    def _tick(self):
        self.n += 10
        return 0

    def __exit__(self, *exc):
        database.connection().set_progress_handler(None, 10)


def grow(dev, device, rt, start_at, count):
    seed.put(rt, device, "seed", b"c")
    for first in range(start_at, start_at + count, 1000):
        report(dev, *({"op": "put", "path": f"p/{i}", "sha256": sha256(b"c"), "size": 1,
                       "mtime": 0, "base_rev": None}
                      for i in range(first, min(first + 1000, start_at + count))))


def test_device_listing_costs_the_same_at_any_library_size(rt, api, dev, device):
    """SPEC §6: never-acked devices among them (many devices: the listing
    once cost devices × entries)."""
    others = [api.post("/devices", {"name": f"d{i}"}).json for i in range(40)]
    dev.post("/ack", {"cursor": head(dev)})
    grow(dev, device, rt, 0, 20)

    def cost():
        with Steps() as listing:
            api.get("/devices")
        with Steps() as one:
            api.get(f"/devices/{others[0]['id']}")
        return listing.n, one.n

    small = cost()
    grow(dev, device, rt, 20, 3000)
    large = cost()
    assert large[0] <= small[0] * 1.1 + 100, (small, large)
    assert large[1] <= small[1] * 1.1 + 100, (small, large)
    assert assert_counts(rt, api)[others[0]["id"]] == 3021


def test_an_upload_with_a_quota_costs_the_same_at_any_library_size(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock, quota=10 ** 12)
    device = dev.get("/devices/" + dev.post("/ack", {"cursor": cursors.encode(rt.db_id, 0)})
                     .json["device_id"]).json
    grow(dev, device, rt, 0, 20)

    def cost(n):
        with Steps() as steps:
            start_upload(dev, f"new{n}.bin", os.urandom(100))
        return steps.n

    small = cost(1)
    grow(dev, device, rt, 20, 3000)
    assert cost(2) <= small * 1.1 + 100

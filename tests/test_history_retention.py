"""History (SPEC §8): every change is a revision, written with the change;
retention thins it by the injected clock; content a kept revision names is
never collected; a version-1 data directory is brought forward."""

import dataclasses
import os
import shutil

import pytest

from sync import backup, blobs, history, janitor
from sync.db import SCHEMA_VERSION, database
from sync.wsgi import open_runtime

from . import seed
from .helpers import START, Ids, sha256

HOUR, DAY = 3600, 86400
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def revisions(path=None):
    """``[(rev, op, sha256, device_id, changed_at, replaced_at), ...]`` in rev order."""
    with database.connection_context():
        return [(rev, "delete" if deleted else "put", sha, device, changed, replaced)
                for rev, deleted, sha, device, changed, replaced in database.execute_sql(
                    "SELECT rev, deleted, sha256, device_id, changed_at, replaced_at "
                    "FROM revisions WHERE ? IS NULL OR path = ? ORDER BY rev", (path, path))]


def kept_shas(path):
    return [r[2] for r in revisions(path)]


def expire(rt):
    with database.connection_context():
        return history.expire(rt)


def at(rt, clock, seconds_after_start):
    clock.now = START + seconds_after_start


def report(dev, *items):
    return dev.post("/report", {"changes": list(items)}).json["results"]


# -- recording -----------------------------------------------------------------

def test_every_kind_of_change_is_a_revision_with_its_device_and_time(rt, api, dev, device,
                                                                     clock):
    seed.put(rt, device, "a.txt", b"one")
    one = sha256(b"one")
    clock.advance(60)
    [moved] = report(dev, {"op": "move", "path": "a.txt", "to": "b.txt", "base_rev": 1})
    clock.advance(60)
    [deleted] = report(dev, {"op": "delete", "path": "b.txt", "base_rev": moved["rev"]})
    feed = {c["rev"]: c for c in dev.get("/changes").json["changes"]}
    rows = revisions()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, "put", one, device["id"]), (2, "delete", None, device["id"]),
        (3, "put", one, device["id"]), (4, "delete", None, device["id"])]
    assert [r[4] for r in rows] == ["2026-11-27T00:00:00Z", "2026-11-27T00:01:00Z",
                                    "2026-11-27T00:01:00Z", "2026-11-27T00:02:00Z"]
    # Each replaced revision knows when; the heads do not.
    assert [r[5] for r in rows] == ["2026-11-27T00:01:00Z", None, "2026-11-27T00:02:00Z", None]
    assert deleted["rev"] == 4 and set(feed) == {2, 4}
    with database.connection_context():
        assert database.execute_sql(
            "SELECT moved_to, moved_from FROM revisions ORDER BY rev").fetchall() == [
            (None, None), ("b.txt", None), (None, "a.txt"), (None, None)]


def test_a_resolution_is_a_revision(rt, api, dev, device):
    seed.put(rt, device, "a.txt", b"server")
    seed.put(rt, "alice", "other.txt", b"client")  # content the server holds
    [conflict] = report(dev, {"op": "put", "path": "a.txt", "sha256": sha256(b"client"),
                              "size": 6, "mtime": 5, "base_rev": None})
    assert conflict["status"] == "conflict"
    answer = api.post(f"/conflicts/{conflict['conflict_id']}/resolve",
                      {"resolution": "keep_both"}).json
    [put] = answer["results"]
    assert revisions(put["path"])[0][:4] == (put["rev"], "put", sha256(b"client"), device["id"])


def test_two_changes_to_one_path_in_one_report_are_both_kept(rt, dev, device):
    seed.put(rt, "alice", "one.txt", b"one")
    seed.put(rt, "alice", "two.txt", b"two")
    results = report(
        dev, {"op": "put", "path": "a.txt", "sha256": sha256(b"one"), "size": 3, "mtime": 1,
              "base_rev": None},
        {"op": "put", "path": "a.txt", "sha256": sha256(b"two"), "size": 3, "mtime": 2,
         "base_rev": 3})
    assert [r["status"] for r in results] == ["applied", "applied"]
    rows = revisions("a.txt")
    assert [(r[0], r[2]) for r in rows] == [(3, sha256(b"one")), (4, sha256(b"two"))]
    assert rows[0][5] is not None and rows[1][5] is None


# -- retention -----------------------------------------------------------------

def versions(rt, clock, path, moments):
    """Put a new content at ``path`` at each of ``moments`` (seconds after
    START); returns the sha256 of each."""
    shas = []
    for i, moment in enumerate(moments):
        at(rt, clock, moment)
        data = f"version {i} of {path}".encode()
        seed.put(rt, "alice", path, data)
        shas.append(sha256(data))
    return shas


def test_everything_younger_than_a_day_is_kept(rt, clock):
    shas = versions(rt, clock, "a.txt", [0, 60, 120, 180, 240])
    at(rt, clock, 60 + DAY - 1)
    assert expire(rt) == 0
    assert kept_shas("a.txt") == shas


def test_after_a_day_the_newest_of_each_utc_hour_is_kept(rt, clock):
    # 00:05, 00:30 | 01:10, 01:20 (head)
    shas = versions(rt, clock, "a.txt", [300, 1800, HOUR + 600, HOUR + 1200])
    at(rt, clock, HOUR + 1200 + DAY)
    assert expire(rt) == 2
    assert kept_shas("a.txt") == [shas[1], shas[3]]


def test_after_a_week_the_newest_of_each_utc_day_is_kept(rt, clock):
    # day 0: 01:00, 05:00 | day 1: 02:00, 03:00 (head)
    shas = versions(rt, clock, "a.txt", [HOUR, 5 * HOUR, DAY + 2 * HOUR, DAY + 3 * HOUR])
    at(rt, clock, DAY + 3 * HOUR + DAY + 1)
    expire(rt)
    assert kept_shas("a.txt") == shas  # each is the newest of its hour
    at(rt, clock, DAY + 3 * HOUR + 7 * DAY + 1)
    expire(rt)
    assert kept_shas("a.txt") == [shas[1], shas[3]]


def test_after_history_days_only_the_head_is_left_however_old(rt, clock):
    shas = versions(rt, clock, "a.txt", [0, 2 * DAY])
    at(rt, clock, 2 * DAY + 30 * DAY - 1)
    expire(rt)
    assert kept_shas("a.txt") == shas
    at(rt, clock, 2 * DAY + 30 * DAY)
    expire(rt)
    at(rt, clock, 400 * DAY)
    expire(rt)
    assert kept_shas("a.txt") == [shas[1]]


def test_a_version_counts_its_age_from_when_it_was_replaced(rt, clock):
    """A file untouched for two months and overwritten today keeps its old
    content for the whole period: that is the version a user wants back."""
    shas = versions(rt, clock, "a.txt", [0, 60 * DAY])
    at(rt, clock, 60 * DAY + 29 * DAY)
    expire(rt)
    assert kept_shas("a.txt") == shas
    at(rt, clock, 60 * DAY + 30 * DAY)
    expire(rt)
    assert kept_shas("a.txt") == [shas[1]]


def test_a_deleted_file_leaves_the_trash_on_time(rt, clock):
    versions(rt, clock, "a.txt", [0])
    at(rt, clock, 10 * DAY)
    seed.delete(rt, "alice", "a.txt")
    at(rt, clock, 10 * DAY + 30 * DAY - 1)
    expire(rt)
    assert [r[1] for r in revisions("a.txt")] == ["put", "delete"]
    with database.connection_context():
        assert [e["path"] for e in history.trash(rt, 1)["entries"]] == ["a.txt"]
    at(rt, clock, 10 * DAY + 30 * DAY)
    expire(rt)
    assert revisions("a.txt") == []
    with database.connection_context():
        assert history.trash(rt, 1)["entries"] == []


def test_a_shorter_history_days_applies_to_what_was_kept_before(rt, clock, monkeypatch):
    shas = versions(rt, clock, "a.txt", [0, DAY, 2 * DAY])
    at(rt, clock, 10 * DAY)
    expire(rt)
    assert kept_shas("a.txt") == shas
    monkeypatch.setattr(rt, "config", dataclasses.replace(rt.config, history_days=7))
    expire(rt)
    assert kept_shas("a.txt") == [shas[2]]


def test_history_days_0_keeps_only_the_heads(rt, clock, monkeypatch):
    monkeypatch.setattr(rt, "config", dataclasses.replace(rt.config, history_days=0))
    shas = versions(rt, clock, "a.txt", [0, 60])
    versions(rt, clock, "b.txt", [120])
    seed.delete(rt, "alice", "b.txt")
    expire(rt)
    assert kept_shas("a.txt") == [shas[1]]
    assert revisions("b.txt") == []


# -- content -------------------------------------------------------------------

def blob_exists(rt_or_config, sha):
    config = getattr(rt_or_config, "config", rt_or_config)
    return os.path.exists(blobs.blob_path(config, sha))


def test_content_of_a_kept_revision_is_never_collected(rt, clock):
    old, new = versions(rt, clock, "a.txt", [0, DAY])
    at(rt, clock, DAY + 29 * DAY)
    janitor.run_once(rt)
    assert blob_exists(rt, old) and blob_exists(rt, new)
    at(rt, clock, DAY + 30 * DAY)
    janitor.run_once(rt)
    assert not blob_exists(rt, old) and blob_exists(rt, new)
    assert seed.run_check(rt.config)[0] == 0


def test_content_another_entry_still_names_survives_its_revisions(rt, clock):
    old, _ = versions(rt, clock, "a.txt", [0, 60])
    seed.put(rt, "alice", "copy.txt", b"version 0 of a.txt")
    at(rt, clock, 31 * DAY)
    janitor.run_once(rt)
    assert kept_shas("a.txt")[0] != old and blob_exists(rt, old)


def test_history_days_0_collects_old_content_as_version_1_did(rt, clock, monkeypatch):
    monkeypatch.setattr(rt, "config", dataclasses.replace(rt.config, history_days=0))
    old, new = versions(rt, clock, "a.txt", [0, 60])
    janitor.run_once(rt)
    assert not blob_exists(rt, old) and blob_exists(rt, new)


def test_backups_carry_the_history_and_check_verifies_it(rt, clock, tmp_path):
    old, new = versions(rt, clock, "a.txt", [0, 60])
    dest = seed.config_for(tmp_path / "backup")
    backup.backup(rt.config, dest.data_dir)
    assert blob_exists(dest, old) and blob_exists(dest, new)
    assert seed.run_check(dest)[0] == 0
    os.unlink(blobs.blob_path(rt.config, old))
    count, lines = seed.run_check(rt.config)
    assert count == 1
    assert (f"PROBLEM blob {old} named in blobs, revisions is missing; "
            "used by alice: a.txt (an older version)") in lines


# -- migration from version 1 --------------------------------------------------

@pytest.fixture
def v1_dir(tmp_path):
    """A copy of tests/data/v1, written by the version-1 server (schema 1)."""
    target = tmp_path / "v1"
    shutil.copytree(os.path.join(DATA, "v1"), target)
    return target


def test_a_version_1_data_directory_is_brought_forward(v1_dir, clock):
    import sqlite3
    before = sqlite3.connect(v1_dir / "sync.sqlite3")
    live = before.execute("SELECT rev, user_id, path, sha256, size, mtime, device_id, "
                          "moved_from, changed_at FROM entries WHERE deleted = 0 "
                          "ORDER BY rev").fetchall()
    assert before.execute("PRAGMA user_version").fetchone() == (1,)
    before.close()
    config = seed.config_for(v1_dir)
    rt = open_runtime(config, clock=clock, idgen=Ids())
    with database.connection_context():
        assert database.execute_sql("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        heads = database.execute_sql(
            "SELECT rev, user_id, path, sha256, size, mtime, device_id, moved_from, "
            "changed_at FROM revisions WHERE deleted = 0 AND replaced_at IS NULL "
            "ORDER BY rev").fetchall()
        assert database.execute_sql("SELECT COUNT(*) FROM revisions").fetchone() == (len(live),)
    assert heads == live and len(live) == 4
    assert os.path.exists(config.path("sync.sqlite3.v1.bak"))
    assert seed.run_check(config)[0] == 0
    # The next change replaces the migrated head and keeps it.
    path, old_sha = live[0][2], live[0][3]
    seed.put(rt, "alice", path, b"after the upgrade")
    assert [r[2] for r in revisions(path)] == [old_sha, sha256(b"after the upgrade")]


def test_a_revision_replaced_in_the_second_of_a_pass_is_seen_by_the_next(rt, clock,
                                                                       monkeypatch):
    monkeypatch.setattr(rt, "config", dataclasses.replace(rt.config, history_days=0))
    versions(rt, clock, "a.txt", [0])
    expire(rt)
    seed.put(rt, "alice", "a.txt", b"new")  # the same second, after the pass
    new = sha256(b"new")
    at(rt, clock, 1)
    assert expire(rt) == 1
    assert kept_shas("a.txt") == [new]


def test_check_finds_a_current_version_missing_from_the_history(rt, clock):
    versions(rt, clock, "a.txt", [0])
    count, lines = seed.run_check(rt.config)
    assert count == 0 and "history: 1 revision(s) kept" in lines
    with database.connection_context():
        database.execute_sql("DELETE FROM revisions")
    count, lines = seed.run_check(rt.config)
    assert count == 1
    assert "PROBLEM history: the current version of alice's 'a.txt' (rev 1) is missing " \
           "from its history (a restore or rewind cannot bring it back)" in lines


def test_expired_content_an_open_upload_names_waits_for_the_session(rt, clock, dev):
    old, _ = versions(rt, clock, "a.txt", [0, DAY])
    data = b"version 0 of a.txt"
    at(rt, clock, DAY + 30 * DAY)
    session = dev.post("/upload", {"path": "again.txt", "size": len(data),
                                   "sha256": sha256(data), "base_rev": None}).json
    janitor.run_once(rt)
    assert kept_shas("a.txt") != [] and old not in kept_shas("a.txt")
    assert blob_exists(rt, old)  # the session still names it
    dev.delete(f"/upload/{session['id']}", status=204)
    janitor.run_once(rt)
    assert not blob_exists(rt, old)

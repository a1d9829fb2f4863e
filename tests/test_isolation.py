"""Isolation (SPEC §6): a second user aims every endpoint at the first
user's ids and paths and sees nothing, changes nothing.

Devices of another user answer 403 (SPEC §5 Devices); every other object
of another user is invisible (404).
"""

import pytest

from .helpers import CHUNK, rejected_unchanged, sha256


@pytest.fixture
def alice(api, dev, device):
    """Alice with one device that has been seen."""
    dev.get("/devices")
    return {"device": device}


@pytest.fixture
def mallory(bob):
    """Bob with a device of his own: his user token and his device token."""
    device = bob.post("/devices", {"name": "Mallory"}).json
    as_device = bob.as_(device["token"])
    as_device.get("/devices")
    return {"user": bob, "dev": as_device, "device": device}


def test_devices_of_another_user_are_403_and_unlisted(rt, alice, mallory):
    target = alice["device"]["id"]
    for caller in (mallory["user"], mallory["dev"]):
        assert [d["id"] for d in caller.get("/devices").json["devices"]] == [
            mallory["device"]["id"]]
        calls = [("GET", f"/devices/{target}", None), ("PUT", f"/devices/{target}", {"name": "x"}),
                 ("DELETE", f"/devices/{target}", None), ("POST", f"/devices/{target}/token", None)]
        for method, path, body in calls:
            resp = rejected_unchanged(rt, lambda: caller.request(method, path, body, status="*"))
            assert resp.status_int == 403, (method, path, resp.json)


def test_another_users_device_cannot_be_acted_for(rt, alice, mallory):
    """Bob's user token with Alice's device id in X-Device-Id: 403."""
    bob_as_alice = mallory["user"].as_(mallory["user"].token, alice["device"]["id"])
    for method, path, body in [("GET", "/changes", None), ("POST", "/ack", {"cursor": "x"}),
                               ("POST", "/report", {"changes": [
                                   {"op": "delete", "path": "a", "base_rev": None}]}),
                               ("POST", "/upload", {"path": "a", "size": 0})]:
        resp = rejected_unchanged(rt, lambda: bob_as_alice.request(method, path, body, status="*"))
        if resp.status_int != 405:
            assert resp.status_int == 403, (method, path, resp.json)


def user_rows(rt, name):
    """Every row that belongs to user ``name``, and its spool files."""
    import os
    import sqlite3
    con = sqlite3.connect(rt.config.path("sync.sqlite3"))
    try:
        uid = con.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()[0]
        rows = {t: sorted(con.execute(f"SELECT * FROM {t} WHERE user_id = ?", (uid,)).fetchall(),
                          key=repr)
                for t in ("devices", "entries", "conflicts", "uploads")}
        rows["users"] = con.execute("SELECT * FROM users WHERE id = ?", (uid,)).fetchall()
        rows["upload_chunks"] = sorted(con.execute(
            "SELECT c.* FROM upload_chunks c JOIN uploads u ON u.id = c.upload_id "
            "WHERE u.user_id = ?", (uid,)).fetchall())
        spool = sorted(f for f in os.listdir(rt.config.path("spool"))
                       if f in {r[0] for r in rows["uploads"]})
    finally:
        con.close()
    return rows, spool


@pytest.fixture
def library(alice, dev):
    """Alice's library: a file, a conflict, an acked cursor and an open upload."""
    data = b"alice's secret diary " * 20000
    session = dev.post("/upload", {"path": "diary/2026.txt", "size": len(data),
                                   "sha256": sha256(data), "base_rev": None,
                                   "chunk_size": CHUNK}).json
    for index in range(session["chunk_count"]):
        dev.put(f"/upload/{session['id']}/chunks/{index}",
                raw=data[index * CHUNK:(index + 1) * CHUNK])
    rev = dev.post(f"/upload/{session['id']}/complete").json["rev"]
    conflict = dev.post("/report", {"changes": [{"op": "move", "path": "gone.txt",
                                                 "to": "x.txt", "base_rev": None}]}
                        ).json["results"][0]["conflict_id"]
    feed = dev.get("/changes").json
    dev.post("/ack", {"cursor": feed["cursor"]})
    other = data[::-1]
    open_session = dev.post("/upload", {"path": "diary/draft.txt", "size": len(other),
                                        "sha256": sha256(other), "base_rev": None,
                                        "chunk_size": CHUNK}).json
    dev.put(f"/upload/{open_session['id']}/chunks/0", raw=other[:CHUNK])
    return {"data": data, "rev": rev, "conflict": conflict, "cursor": feed["cursor"],
            "upload": session["id"], "open": open_session["id"], "sha": sha256(data)}


def test_another_user_sees_and_changes_nothing_of_the_library(rt, alice, library, mallory):
    """Bob aims every endpoint at Alice's ids and paths: 404s, an empty
    library of his own, and not one of Alice's rows or files changed."""
    before = user_rows(rt, "alice")
    bob, sid, open_sid = mallory["dev"], library["upload"], library["open"]
    for method, path, body, raw in [
        ("GET", "/download/diary/2026.txt", None, None),
        ("HEAD", "/download/diary/2026.txt", None, None),
        ("GET", f"/upload/{sid}", None, None),
        ("GET", f"/upload/{open_sid}", None, None),
        ("PUT", f"/upload/{open_sid}/chunks/1", None, b"x" * (len(library["data"]) - CHUNK)),
        ("PUT", f"/upload/{open_sid}/chunks/0", None, b"x" * CHUNK),
        ("POST", f"/upload/{open_sid}/complete", None, None),
        ("POST", f"/upload/{sid}/complete", None, None),
        ("DELETE", f"/upload/{open_sid}", None, None),
        ("POST", f"/conflicts/{library['conflict']}/resolve", {"resolution": "keep_client"}, None),
    ]:
        for caller in (bob, mallory["user"].as_(mallory["user"].token,
                                                 mallory["device"]["id"])):
            resp = caller.request(method, path, body, raw=raw, status="*")
            assert resp.status_int == 404, (method, path, resp.status)
    assert bob.get("/changes").json["changes"] == []
    assert bob.get("/conflicts").json == {"conflicts": []}
    assert mallory["user"].get("/conflicts").json == {"conflicts": []}
    resp = bob.get("/changes?cursor=" + library["cursor"]).json
    assert resp["changes"] == []
    assert user_rows(rt, "alice") == before


def test_another_user_cannot_claim_content_by_its_hash(rt, alice, library, mallory):
    """Knowing the sha256 of Alice's file gives Bob nothing: no instant
    upload, no instant report, no download."""
    before = user_rows(rt, "alice")
    bob = mallory["dev"]
    size = len(library["data"])
    item = {"op": "put", "path": "stolen.txt", "sha256": library["sha"], "size": size,
            "mtime": 0, "base_rev": None}
    result = bob.post("/report", {"changes": [item]}).json["results"][0]
    assert result["status"] == "upload_required"
    session = bob.post("/upload", {"path": "stolen.txt", "size": size, "sha256": library["sha"],
                                   "base_rev": None, "chunk_size": CHUNK}).json
    assert session["received"] == []
    bob.post(f"/upload/{session['id']}/complete", status=400)
    bob.get("/download/stolen.txt", status=404)
    bob.delete(f"/upload/{session['id']}", status=204)
    assert user_rows(rt, "alice") == before


def test_writes_by_another_user_to_the_same_paths_stay_in_his_library(rt, alice, library,
                                                                      mallory, dev):
    before = user_rows(rt, "alice")
    bob = mallory["dev"]
    results = bob.post("/report", {"changes": [
        {"op": "delete", "path": "diary/2026.txt", "base_rev": library["rev"]},
        {"op": "move", "path": "diary/2026.txt", "to": "mine.txt", "base_rev": library["rev"]},
    ]}).json["results"]
    assert results[0]["status"] == "unchanged"
    assert results[1]["status"] == "conflict"
    data = b"bob's own file"
    session = bob.post("/upload", {"path": "diary/2026.txt", "size": len(data),
                                   "sha256": sha256(data), "base_rev": library["rev"]}).json
    bob.put(f"/upload/{session['id']}/chunks/0", raw=data)
    assert bob.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert bob.get("/download/diary/2026.txt").body == data
    after = user_rows(rt, "alice")
    assert after == before
    assert dev.get("/download/diary/2026.txt").body == library["data"]

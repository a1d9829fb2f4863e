"""``GET /history/{path}``, ``GET``/``HEAD /download/{path}?rev=R``,
``POST /restore``, ``GET /trash`` and ``POST /rewind`` (SPEC §8): answers,
every error, both prefixes, and isolation between users."""

import base64
import hashlib

import pytest

from sync import counts
from sync.db import database

from . import seed
from .helpers import assert_error, other_app, sha256

DAY = 86400


def put(rt, path, data, device=None):
    """Seed ``data`` at ``path`` for alice (as ``device``); its sha256."""
    seed.put(rt, device or "alice", path, data, mtime=0)
    return sha256(data)


def report(dev, *items):
    return dev.post("/report", {"changes": list(items)}).json["results"]


def head_rev(path):
    with database.connection_context():
        return seed.head_rev(1, path)


def delete(dev, path):
    [result] = report(dev, {"op": "delete", "path": path, "base_rev": head_rev(path)})
    assert result["status"] == "applied", result
    return result["rev"]


def feed(dev):
    return dev.get("/changes?limit=1000").json["changes"]


def library(dev):
    """``{path: sha256}`` of the live entries, from the feed."""
    return {c["path"]: c["sha256"] for c in feed(dev) if c["op"] == "put"}


def unchanged_by(action, dev, *paths):
    """Run ``action`` and check the feed and the history of ``paths`` did not move."""
    before = (feed(dev), [dev.get(f"/history/{p}", status="*").json for p in paths])
    result = action()
    assert (feed(dev), [dev.get(f"/history/{p}", status="*").json for p in paths]) == before
    return result


# -- GET /history/{path} -------------------------------------------------------

@pytest.mark.parametrize("prefix", ["/api/v1/sync", "/api/sync"])
def test_history_lists_every_revision_newest_first_with_its_device(rt, api, dev, device,
                                                                  clock, prefix):
    one = put(rt, "a.txt", b"one", device)
    clock.advance(60)
    two = put(rt, "a.txt", b"two")
    clock.advance(60)
    delete(dev, "a.txt")
    body = api.as_(api.token, prefix=prefix).get("/history/a.txt").json
    assert body == {"path": "a.txt", "cursor": None, "has_more": False, "revisions": [
        {"rev": 3, "op": "delete", "sha256": None, "size": None, "mtime": None,
         "device_id": device["id"], "device_name": "Laptop",
         "changed_at": "2026-11-27T00:02:00Z"},
        {"rev": 2, "op": "put", "sha256": two, "size": 3, "mtime": 0, "device_id": None,
         "device_name": None, "changed_at": "2026-11-27T00:01:00Z"},
        {"rev": 1, "op": "put", "sha256": one, "size": 3, "mtime": 0,
         "device_id": device["id"], "device_name": "Laptop",
         "changed_at": "2026-11-27T00:00:00Z"}]}


def test_history_marks_both_halves_of_a_move(rt, dev, device):
    put(rt, "a.txt", b"one", device)
    report(dev, {"op": "move", "path": "a.txt", "to": "b/a.txt", "base_rev": 1})
    assert dev.get("/history/a.txt").json["revisions"][0]["moved_to"] == "b/a.txt"
    assert dev.get("/history/b/a.txt").json["revisions"][0]["moved_from"] == "a.txt"


def test_a_deleted_device_leaves_its_id_without_a_name(rt, api, device):
    put(rt, "a.txt", b"one", device)
    api.delete(f"/devices/{device['id']}", status=204)
    [revision] = api.get("/history/a.txt").json["revisions"]
    assert (revision["device_id"], revision["device_name"]) == (device["id"], None)


def test_history_pages_with_limit_and_cursor(rt, api):
    for i in range(5):
        put(rt, "a.txt", f"v{i}".encode())
    first = api.get("/history/a.txt?limit=2").json
    assert [r["rev"] for r in first["revisions"]] == [5, 4] and first["has_more"]
    second = api.get(f"/history/a.txt?limit=2&cursor={first['cursor']}").json
    assert [r["rev"] for r in second["revisions"]] == [3, 2] and second["has_more"]
    last = api.get(f"/history/a.txt?limit=2&cursor={second['cursor']}").json
    assert [r["rev"] for r in last["revisions"]] == [1]
    assert not last["has_more"] and last["cursor"] is None
    assert len(api.get("/history/a.txt").json["revisions"]) == 5  # default 100


@pytest.mark.parametrize("query,code", [
    ("limit=0", "limit_invalid"), ("limit=1001", "limit_invalid"), ("limit=x", "limit_invalid"),
    ("cursor=garbage", "cursor_invalid"), ("cursor=ZmVlZGMwZGVmZWVkYzBkZS4x", "cursor_invalid"),
])
def test_history_refuses_a_bad_limit_or_cursor(rt, api, query, code):
    put(rt, "a.txt", b"one")
    assert_error(api.get(f"/history/a.txt?{query}", status=400), 400, code)


def test_history_of_an_invalid_path_is_path_invalid(api):
    assert_error(api.get("/history/%2e%2e/secret", status=400), 400, "path_invalid")
    assert_error(api.get("/history/a%00b", status=400), 400, "path_invalid")
    url = "/api/v1/sync/history/a%2Fb"  # waitress passes the raw target as REQUEST_URI
    resp = api.testapp.get(url, headers=api.headers(), expect_errors=True,
                           extra_environ={"REQUEST_URI": url})
    assert_error(resp, 400, "path_invalid")


def test_history_of_an_unknown_path_or_another_users_is_404(rt, api, bob):
    put(rt, "a.txt", b"one")
    assert_error(api.get("/history/nothing.txt", status=404), 404, "not_found")
    assert_error(bob.get("/history/a.txt", status=404), 404, "not_found")


def test_history_normalizes_the_path(rt, api):
    put(rt, "caf\u00e9.txt", b"one")
    assert api.get("/history/cafe%CC%81.txt").json["path"] == "caf\u00e9.txt"


# -- GET /download/{path}?rev=R ------------------------------------------------

def test_an_old_revision_downloads_with_every_header(rt, api):
    old = b"the first version, long enough for a range"
    put(rt, "a.txt", old)
    put(rt, "a.txt", b"the second")
    resp = api.get("/download/a.txt?rev=1")
    assert resp.body == old
    assert resp.headers["ETag"] == f'"{sha256(old)}"'
    assert resp.headers["Repr-Digest"] == \
        "sha-256=:" + base64.b64encode(hashlib.sha256(old).digest()).decode() + ":"
    assert resp.headers["Content-Type"].startswith("text/plain")
    ranged = api.get("/download/a.txt?rev=1", headers={"Range": "bytes=4-8"}, status=206)
    assert ranged.body == old[4:9]
    assert ranged.headers["Content-Range"] == f"bytes 4-8/{len(old)}"
    head = api.head("/download/a.txt?rev=1")
    assert head.headers["Content-Length"] == str(len(old)) and head.body == b""
    api.get("/download/a.txt?rev=1", headers={"If-None-Match": f'"{sha256(old)}"'}, status=304)
    assert api.get("/download/a.txt").body == b"the second"
    assert api.as_(api.token, prefix="/api/sync").get("/download/a.txt?rev=1").body == old


def test_a_deleted_files_content_downloads_by_rev(rt, dev):
    put(rt, "a.txt", b"gone soon")
    delete(dev, "a.txt")
    dev.get("/download/a.txt", status=404)
    assert dev.get("/download/a.txt?rev=1").body == b"gone soon"


@pytest.mark.parametrize("rev", ["2", "3", "99", "-1"])
def test_a_rev_that_is_not_a_kept_put_of_the_path_is_404(rt, dev, rev):
    put(rt, "a.txt", b"one")
    delete(dev, "a.txt")  # rev 2: a delete
    put(rt, "b.txt", b"other")  # rev 3: another path
    assert_error(dev.get(f"/download/a.txt?rev={rev}", status=404), 404, "not_found")
    dev.head(f"/download/a.txt?rev={rev}", status=404)


@pytest.mark.parametrize("rev", ["x", "1.5", "1e3", "0x1"])
def test_a_rev_that_is_not_an_integer_is_rev_invalid(rt, api, rev):
    put(rt, "a.txt", b"one")
    assert_error(api.get(f"/download/a.txt?rev={rev}", status=400), 400, "rev_invalid")


def test_another_users_revision_is_404(rt, bob):
    put(rt, "a.txt", b"one")
    assert_error(bob.get("/download/a.txt?rev=1", status=404), 404, "not_found")


# -- POST /restore -------------------------------------------------------------

def test_restore_brings_an_old_version_back_as_a_new_revision(rt, api, dev, device):
    one = put(rt, "a.txt", b"one")
    put(rt, "a.txt", b"two")
    assert dev.post("/restore", {"path": "a.txt", "rev": 1}).json == {
        "path": "a.txt", "status": "applied", "rev": 3}
    assert feed(dev)[-1] == {"path": "a.txt", "op": "put", "rev": 3, "size": 3,
                             "sha256": one, "mtime": 0, "device_id": device["id"]}
    assert [r["rev"] for r in api.get("/history/a.txt").json["revisions"]] == [3, 2, 1]
    # Again: the head already is that content.
    assert dev.post("/restore", {"path": "a.txt", "rev": 1}).json == {
        "path": "a.txt", "status": "unchanged", "rev": 3}


def test_restore_with_a_user_token_carries_no_device(rt, api, device):
    put(rt, "a.txt", b"one")
    put(rt, "a.txt", b"two")
    api.post("/restore", {"path": "a.txt", "rev": 1})
    assert api.get("/history/a.txt").json["revisions"][0]["device_id"] is None
    api.as_(api.token, device_id=device["id"]).post("/restore", {"path": "a.txt", "rev": 2})
    assert api.get("/history/a.txt").json["revisions"][0]["device_id"] == device["id"]


def test_restore_of_a_delete_deletes_and_of_a_deleted_path_brings_it_back(rt, api, dev):
    put(rt, "a.txt", b"one")
    delete(dev, "a.txt")
    put(rt, "a.txt", b"back")
    assert api.post("/restore", {"path": "a.txt", "rev": 2}).json == {
        "path": "a.txt", "status": "applied"}
    assert "a.txt" not in library(dev)
    assert api.post("/restore", {"path": "a.txt", "rev": 2}).json == {
        "path": "a.txt", "status": "unchanged"}
    assert api.post("/restore", {"path": "a.txt", "rev": 1}).json["status"] == "applied"
    assert library(dev)["a.txt"] == sha256(b"one")


@pytest.mark.parametrize("body", [
    {}, {"path": "a.txt"}, {"rev": 1}, {"path": 5, "rev": 1}, {"path": "a.txt", "rev": "1"},
    {"path": "a.txt", "rev": True}, {"path": "a.txt", "rev": 1.0}, {"path": "a.txt", "rev": -1},
])
def test_restore_with_a_missing_or_mistyped_field_is_body_invalid(rt, dev, body):
    put(rt, "a.txt", b"one")
    resp = unchanged_by(lambda: dev.post("/restore", body, status=400), dev, "a.txt")
    assert_error(resp, 400, "body_invalid")


def test_restore_of_an_invalid_path_is_path_invalid(dev):
    assert_error(dev.post("/restore", {"path": "../a", "rev": 1}, status=400), 400,
                 "path_invalid")


def test_restore_of_a_revision_that_is_not_the_paths_is_404(rt, dev, bob):
    put(rt, "a.txt", b"one")
    put(rt, "b.txt", b"two")
    for body in ({"path": "a.txt", "rev": 2}, {"path": "a.txt", "rev": 99},
                 {"path": "c.txt", "rev": 1}):
        resp = unchanged_by(lambda: dev.post("/restore", body, status=404), dev, "a.txt")
        assert_error(resp, 404, "not_found")
    resp = unchanged_by(lambda: bob.post("/restore", {"path": "a.txt", "rev": 1}, status=404),
                        dev, "a.txt")
    assert_error(resp, 404, "not_found")


def test_restore_onto_a_case_clash_is_409_and_changes_nothing(rt, dev):
    put(rt, "Notes.txt", b"one")
    delete(dev, "Notes.txt")
    put(rt, "notes.txt", b"other")
    resp = unchanged_by(lambda: dev.post("/restore", {"path": "Notes.txt", "rev": 1},
                                         status=409), dev, "Notes.txt", "notes.txt")
    assert_error(resp, 409, "case_clash")


def test_restore_leaves_an_open_conflict_open(rt, api, dev, device):
    put(rt, "a.txt", b"one")
    put(rt, "a.txt", b"two")
    put(rt, "c.txt", b"client")
    [conflict] = report(dev, {"op": "put", "path": "a.txt", "sha256": sha256(b"client"),
                              "size": 6, "mtime": 0, "base_rev": 1})
    api.post("/restore", {"path": "a.txt", "rev": 1})
    assert [c["id"] for c in api.get("/conflicts").json["conflicts"]] == [
        conflict["conflict_id"]]


# -- the quota -------------------------------------------------------------------

@pytest.fixture
def over_quota(tmp_path, clock):
    """alice with --quota 10000: a.bin was 6,000 bytes until her laptop made
    it 3,000, b.bin holds 5,000 (8,000 in use: versions do not count), and
    gone.bin (4,000) went to the trash from the laptop. Bringing back either
    old content would take her over the quota."""
    rt, dev = other_app(tmp_path, clock, quota=10_000)
    [laptop] = dev.get("/devices").json["devices"]
    put(rt, "a.bin", b"A" * 6000)  # rev 1
    put(rt, "gone.bin", b"G" * 4000)  # rev 2
    clock.advance(60)
    put(rt, "a.bin", b"a" * 3000, laptop)  # rev 3
    put(rt, "b.bin", b"B" * 5000)  # rev 4
    delete(dev, "gone.bin")  # rev 5
    return rt, dev


def quota_state(rt, dev):
    """Everything a refused change must leave as it was: the feed, the
    tree with its contents, each path's history, the trash and the usage."""
    with database.connection_context():
        used = counts.usage(1)
    tree = {p: dev.get(f"/download/{p}").body for p in library(dev)}
    histories = [dev.get(f"/history/{p}").json for p in ("a.bin", "b.bin", "gone.bin")]
    return feed(dev), tree, histories, dev.get("/trash").json, used


@pytest.mark.parametrize("body", [{"path": "a.bin", "rev": 1}, {"path": "gone.bin", "rev": 2}])
def test_a_restore_over_the_quota_is_507_and_changes_nothing(over_quota, body):
    rt, dev = over_quota
    before = quota_state(rt, dev)
    assert before[-1] == 8000
    resp = dev.post("/restore", body, status=507)
    assert_error(resp, 507, "quota_exceeded")
    assert "quota of 10000 bytes" in resp.json["description"]
    assert quota_state(rt, dev) == before


def test_a_restore_that_fits_the_quota_or_frees_space_is_applied(over_quota):
    rt, dev = over_quota
    report(dev, {"op": "delete", "path": "b.bin", "base_rev": head_rev("b.bin")})
    assert dev.post("/restore", {"path": "a.bin", "rev": 1}).json["status"] == "applied"
    with database.connection_context():
        assert counts.usage(1) == 6000


def test_a_rewind_over_the_quota_is_507_and_changes_nothing(over_quota):
    rt, dev = over_quota
    [laptop] = dev.get("/devices").json["devices"]
    undo = {"rev": 2, "device_id": laptop["id"]}  # a.bin and gone.bin come back
    before = quota_state(rt, dev)
    assert dev.post("/rewind", dict(undo, dry_run=True)).json["count"] == 2  # only reads
    resp = dev.post("/rewind", undo, status=507)
    assert_error(resp, 507, "quota_exceeded")
    assert quota_state(rt, dev) == before


# -- GET /trash ----------------------------------------------------------------

def test_trash_lists_deleted_files_most_recent_first(rt, api, dev, device, clock):
    put(rt, "books/a.epub", b"a")
    put(rt, "books/b.epub", b"b1")
    put(rt, "books/b.epub", b"b2")
    put(rt, "c.txt", b"c")
    put(rt, "live.txt", b"stays")
    clock.advance(60)
    delete(dev, "books/b.epub")
    clock.advance(60)
    api.post("/restore", {"path": "c.txt", "rev": 2}, status=404)  # not c.txt's revision
    delete(dev, "c.txt")
    delete(dev, "books/a.epub")
    body = api.get("/trash").json
    assert body == {"cursor": None, "has_more": False, "entries": [
        {"path": "books/a.epub", "deleted_rev": 8, "deleted_at": "2026-11-27T00:02:00Z",
         "device_id": device["id"], "device_name": "Laptop", "rev": 1, "sha256": sha256(b"a"),
         "size": 1, "mtime": 0},
        {"path": "c.txt", "deleted_rev": 7, "deleted_at": "2026-11-27T00:02:00Z",
         "device_id": device["id"], "device_name": "Laptop", "rev": 4, "sha256": sha256(b"c"),
         "size": 1, "mtime": 0},
        {"path": "books/b.epub", "deleted_rev": 6, "deleted_at": "2026-11-27T00:01:00Z",
         "device_id": device["id"], "device_name": "Laptop", "rev": 3,
         "sha256": sha256(b"b2"), "size": 2, "mtime": 0}]}
    assert [e["path"] for e in api.get("/trash?prefix=books").json["entries"]] == [
        "books/a.epub", "books/b.epub"]
    assert [e["path"] for e in api.get("/trash?prefix=books/").json["entries"]] == [
        "books/a.epub", "books/b.epub"]
    assert api.get("/trash?prefix=book").json["entries"] == []
    # Restoring from the trash takes it out.
    api.post("/restore", {"path": "c.txt", "rev": 4})
    assert [e["path"] for e in api.get("/trash").json["entries"]] == [
        "books/a.epub", "books/b.epub"]
    assert api.as_(api.token, prefix="/api/sync").get("/trash").json["entries"][0]["path"] == \
        "books/a.epub"


def test_trash_pages(rt, api, dev):
    for i in range(5):
        put(rt, f"{i}.txt", b"x%d" % i)
    for i in range(5):
        delete(dev, f"{i}.txt")
    first = api.get("/trash?limit=2").json
    assert [e["path"] for e in first["entries"]] == ["4.txt", "3.txt"] and first["has_more"]
    rest = api.get(f"/trash?limit=3&cursor={first['cursor']}").json
    assert [e["path"] for e in rest["entries"]] == ["2.txt", "1.txt", "0.txt"]
    assert not rest["has_more"] and rest["cursor"] is None


@pytest.mark.parametrize("query,code", [
    ("limit=0", "limit_invalid"), ("limit=abc", "limit_invalid"),
    ("cursor=nonsense", "cursor_invalid"), ("prefix=../x", "path_invalid"),
])
def test_trash_refuses_bad_parameters(api, query, code):
    assert_error(api.get(f"/trash?{query}", status=400), 400, code)


def test_another_users_trash_is_empty(rt, dev, bob):
    put(rt, "a.txt", b"one")
    delete(dev, "a.txt")
    assert bob.get("/trash").json == {"entries": [], "cursor": None, "has_more": False}


# -- POST /rewind --------------------------------------------------------------

@pytest.fixture
def damaged(rt, api, clock):
    """Alice's library of 6 files from the Laptop; then the device X
    overwrites 3, deletes 2 and adds 1; then the Laptop edits one more.
    Returns (laptop, x, originals, point)."""
    laptop = api.post("/devices", {"name": "Laptop"}).json
    x = api.post("/devices", {"name": "X"}).json
    originals = {f"f{i}.txt": put(rt, f"f{i}.txt", f"original {i}".encode(), laptop)
                 for i in range(6)}
    point = 6
    clock.advance(3600)
    for i in range(3):
        put(rt, f"f{i}.txt", f"encrypted {i}".encode(), x)
    xdev = api.as_(x["token"])
    for i in (3, 4):
        delete(xdev, f"f{i}.txt")
    put(rt, "ransom.txt", b"pay up", x)
    clock.advance(60)
    put(rt, "f5.txt", b"laptop's own later edit", laptop)
    return laptop, x, originals, point


def test_rewind_of_a_device_undoes_its_changes_and_leaves_the_others(rt, api, damaged):
    laptop, x, originals, point = damaged
    dev = api.as_(laptop["token"])
    answer = api.post("/rewind", {"rev": point, "device_id": x["id"]}).json
    assert answer == {"dry_run": False, "count": 6, "changes": [
        {"path": "f0.txt", "op": "put", "from_rev": 1, "rev": answer["changes"][0]["rev"]},
        {"path": "f1.txt", "op": "put", "from_rev": 2, "rev": answer["changes"][1]["rev"]},
        {"path": "f2.txt", "op": "put", "from_rev": 3, "rev": answer["changes"][2]["rev"]},
        {"path": "f3.txt", "op": "put", "from_rev": 4, "rev": answer["changes"][3]["rev"]},
        {"path": "f4.txt", "op": "put", "from_rev": 5, "rev": answer["changes"][4]["rev"]},
        {"path": "ransom.txt", "op": "delete", "from_rev": None,
         "rev": answer["changes"][5]["rev"]}]}
    assert sorted(c["rev"] for c in answer["changes"]) == list(range(14, 20))
    expected = dict(originals, **{"f5.txt": sha256(b"laptop's own later edit")})
    assert library(dev) == expected
    # Rewinding again changes nothing.
    assert api.post("/rewind", {"rev": point, "device_id": x["id"]}).json == {
        "dry_run": False, "count": 0, "changes": []}


def test_rewind_of_a_deleted_device_still_works(rt, api, damaged):
    laptop, x, originals, point = damaged
    api.delete(f"/devices/{x['id']}", status=204)
    assert api.post("/rewind", {"rev": point, "device_id": x["id"]}).json["count"] == 6
    assert library(api.as_(laptop["token"]))["f0.txt"] == originals["f0.txt"]


def test_rewind_of_everything_also_undoes_the_other_devices_changes(rt, api, damaged):
    laptop, x, originals, point = damaged
    answer = api.post("/rewind", {"rev": point}).json
    assert answer["count"] == 7
    assert library(api.as_(laptop["token"])) == originals


def test_rewind_by_time_and_under_a_prefix(rt, api, clock):
    put(rt, "a/1.txt", b"1")
    put(rt, "b/1.txt", b"1")
    clock.advance(3600)
    put(rt, "a/1.txt", b"2")
    put(rt, "b/1.txt", b"2")
    answer = api.post("/rewind", {"at": "2026-11-27T00:30:00Z", "prefix": "a/"}).json
    assert [(c["path"], c["from_rev"]) for c in answer["changes"]] == [("a/1.txt", 1)]
    assert api.post("/rewind", {"at": "2026-11-27T00:30:00+00:00", "prefix": "a",
                                "dry_run": True}).json["count"] == 0
    with database.connection_context():
        assert seed.live_entries(rt.config)[("alice", "b/1.txt")] == sha256(b"2")
        assert seed.live_entries(rt.config)[("alice", "a/1.txt")] == sha256(b"1")


def test_a_dry_run_changes_nothing(rt, api, dev, damaged):
    laptop, x, originals, point = damaged
    answer = unchanged_by(lambda: api.post("/rewind", {"rev": point, "dry_run": True}), dev,
                          "f0.txt", "ransom.txt")
    assert answer.json["dry_run"] is True and answer.json["count"] == 7
    assert all("rev" not in c for c in answer.json["changes"])


def test_rewind_lists_at_most_1000_changes(rt, api, dev, device):
    items = [{"op": "put", "path": f"{i:04}.txt", "sha256": sha256(b"x"), "size": 1,
              "mtime": 0, "base_rev": None} for i in range(1000)]
    put(rt, "seed.txt", b"x")
    report(dev, *items)
    report(dev, *[dict(i, path="more/" + i["path"]) for i in items[:5]])
    answer = api.post("/rewind", {"rev": 1, "dry_run": True}).json
    assert answer["count"] == 1005 and len(answer["changes"]) == 1000
    assert answer["changes"][0]["path"] == "0000.txt"
    applied = api.post("/rewind", {"rev": 1}).json
    assert applied["count"] == 1005 and len(applied["changes"]) == 1000
    assert set(library(dev)) == {"seed.txt"}


def test_rewind_leaves_open_conflicts_open(rt, api, dev):
    put(rt, "a.txt", b"one")
    put(rt, "a.txt", b"two")
    put(rt, "c.txt", b"client")
    [conflict] = report(dev, {"op": "put", "path": "a.txt", "sha256": sha256(b"client"),
                              "size": 6, "mtime": 0, "base_rev": 1})
    api.post("/rewind", {"rev": 1})
    assert [c["id"] for c in api.get("/conflicts").json["conflicts"]] == [
        conflict["conflict_id"]]


@pytest.mark.parametrize("body", [
    {}, {"rev": 1, "at": "2026-11-27T00:00:00Z"}, {"rev": "1"}, {"rev": True}, {"rev": -1},
    {"at": "yesterday"}, {"at": 5}, {"rev": 1, "dry_run": "yes"}, {"rev": 1, "device_id": 7},
    {"rev": 1, "prefix": 7},
])
def test_rewind_with_a_bad_body_is_body_invalid_and_changes_nothing(rt, api, dev, body):
    put(rt, "a.txt", b"one")
    put(rt, "a.txt", b"two")
    resp = unchanged_by(lambda: api.post("/rewind", body, status=400), dev, "a.txt")
    assert_error(resp, 400, "body_invalid")


def test_rewind_under_an_invalid_prefix_is_path_invalid(api):
    assert_error(api.post("/rewind", {"rev": 0, "prefix": "../x"}, status=400), 400,
                 "path_invalid")


def test_a_point_older_than_history_days_is_rewind_too_old(rt, api, dev, clock):
    put(rt, "a.txt", b"one")
    clock.advance(31 * DAY)
    put(rt, "a.txt", b"two")
    clock.advance(31 * DAY)
    put(rt, "a.txt", b"three")
    resp = unchanged_by(lambda: api.post("/rewind", {"rev": 1}, status=400), dev, "a.txt")
    assert_error(resp, 400, "rewind_too_old")
    assert_error(api.post("/rewind", {"at": "2026-11-28T00:00:00Z"}, status=400), 400,
                 "rewind_too_old")
    # A point whose next change is recent is fine, however old the point itself.
    assert api.post("/rewind", {"rev": 2, "dry_run": True}).json["count"] == 1


def test_another_users_rewind_changes_nothing_of_alices(rt, api, dev, bob, damaged):
    laptop, x, originals, point = damaged
    answer = unchanged_by(lambda: bob.post("/rewind", {"rev": point}), dev, "f0.txt")
    assert answer.json == {"dry_run": False, "count": 0, "changes": []}
    answer = bob.post("/rewind", {"rev": point, "device_id": x["id"]}).json
    assert answer["count"] == 0


def test_a_rewind_reaches_devices_through_the_feed(rt, api, damaged):
    laptop, x, originals, point = damaged
    dev = api.as_(laptop["token"])
    cursor = dev.get("/changes").json["cursor"]
    api.post("/rewind", {"rev": point, "device_id": x["id"]})
    changes = dev.get(f"/changes?cursor={cursor}").json["changes"]
    assert sorted(c["path"] for c in changes) == [
        "f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "ransom.txt"]
    assert all(c["device_id"] is None for c in changes)


def test_restore_and_rewind_as_another_users_device_are_403(rt, api, dev, bob):
    put(rt, "a.txt", b"one")
    put(rt, "a.txt", b"two")
    bobs = bob.post("/devices", {"name": "Bob's"}).json
    as_bobs = api.as_(api.token, device_id=bobs["id"])
    for path, body in (("/restore", {"path": "a.txt", "rev": 1}), ("/rewind", {"rev": 1})):
        resp = unchanged_by(lambda: as_bobs.post(path, body, status=403), dev, "a.txt")
        assert_error(resp, 403, "forbidden")


def _write_during_the_plan(monkeypatch, write):
    """Run ``write`` (in another thread, with its own connection) while the
    rewind plans, between its reads and its write transaction."""
    import threading

    from sync import history

    plan = history._Rewind.plan
    done = []

    def planning(self):
        if not done:
            done.append(True)
            thread = threading.Thread(target=write)
            thread.start()
            thread.join()
        return plan(self)

    monkeypatch.setattr(history._Rewind, "plan", planning)


def test_another_users_write_during_the_plan_only_moves_the_revisions(rt, api, monkeypatch,
                                                                      damaged):
    laptop, x, originals, point = damaged
    _write_during_the_plan(monkeypatch, lambda: seed.put(rt, "bob", "b.txt", b"bob's", mtime=0))
    answer = api.post("/rewind", {"rev": point, "device_id": x["id"]}).json
    revs = sorted(c["rev"] for c in answer["changes"])
    assert revs == list(range(15, 21))  # 14 went to bob
    dev = api.as_(laptop["token"])
    assert library(dev) == dict(originals, **{"f5.txt": sha256(b"laptop's own later edit")})
    assert {c["rev"] for c in feed(dev)} >= set(revs)
    assert seed.run_check(rt.config)[0] == 0


def test_the_same_users_write_during_the_plan_is_taken_in(rt, api, monkeypatch, damaged):
    laptop, x, originals, point = damaged

    def more_damage():
        seed.put(rt, x, "f0.txt", b"encrypted again", mtime=0)
        seed.put(rt, x, "ransom2.txt", b"pay more", mtime=0)

    _write_during_the_plan(monkeypatch, more_damage)
    answer = api.post("/rewind", {"rev": point, "device_id": x["id"]}).json
    assert answer["count"] == 7
    dev = api.as_(laptop["token"])
    assert library(dev) == dict(originals, **{"f5.txt": sha256(b"laptop's own later edit")})
    assert seed.run_check(rt.config)[0] == 0

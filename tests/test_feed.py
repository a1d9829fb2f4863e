"""``GET /changes`` (SPEC §5 Changes feed): pages, cursors, limits, the
order of changes, and the query plan that keeps pages cheap."""

import pytest

from sync import cursors, feed
from sync.db import database

from . import seed
from .helpers import assert_error, sha256

OTHER_DB = "0123456789abcdef"


def read_all(dev, limit, cursor=None):
    """Every page from ``cursor``; (changes, last cursor, pages)."""
    got, pages = [], 0
    while True:
        query = f"/changes?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = dev.get(query).json
        got += page["changes"]
        cursor = page["cursor"]
        pages += 1
        if not page["has_more"]:
            return got, cursor, pages


def test_empty_feed(rt, dev):
    page = dev.get("/changes").json
    assert page == {"changes": [], "cursor": page["cursor"], "has_more": False}
    assert cursors.decode(rt.db_id, page["cursor"]) == 0
    assert dev.get(f"/changes?cursor={page['cursor']}").json["changes"] == []


def test_empty_cursor_lists_from_the_beginning(rt, dev, device):
    seed.put(rt, device, "a", b"1")
    assert [c["path"] for c in dev.get("/changes?cursor=").json["changes"]] == ["a"]


def test_pages_in_rev_order_with_has_more(rt, dev, device):
    for i in range(5):
        seed.put(rt, device, f"f{i}", str(i).encode())
    first = dev.get("/changes?limit=2").json
    assert [c["path"] for c in first["changes"]] == ["f0", "f1"] and first["has_more"]
    second = dev.get(f"/changes?limit=2&cursor={first['cursor']}").json
    assert [c["rev"] for c in second["changes"]] == [3, 4] and second["has_more"]
    third = dev.get(f"/changes?limit=2&cursor={second['cursor']}").json
    assert [c["rev"] for c in third["changes"]] == [5] and not third["has_more"]
    empty = dev.get(f"/changes?limit=2&cursor={third['cursor']}").json
    assert empty == {"changes": [], "cursor": third["cursor"], "has_more": False}


def test_limit_exactly_the_rest_has_no_more(rt, dev, device):
    for i in range(3):
        seed.put(rt, device, f"f{i}", str(i).encode())
    assert dev.get("/changes?limit=3").json["has_more"] is False


def test_default_limit_is_100(rt, dev, device):
    dev.post("/report", {"changes": [{"op": "delete", "path": "x", "base_rev": 1}]})
    seed.put(rt, device, "seed", b"s")
    items = [{"op": "put", "path": f"p{i}", "sha256": sha256(b"s"), "size": 1, "mtime": 1,
              "base_rev": None} for i in range(120)]
    dev.post("/report", {"changes": items})
    page = dev.get("/changes").json
    assert len(page["changes"]) == 100 and page["has_more"]


def test_entry_appears_once_at_its_latest_rev(rt, dev, device):
    seed.put(rt, device, "a", b"1")
    seed.put(rt, device, "b", b"2")
    seed.put(rt, device, "a", b"3", base_rev=1)
    assert [(c["path"], c["rev"], c["sha256"]) for c in dev.get("/changes").json["changes"]] == [
        ("b", 2, sha256(b"2")), ("a", 3, sha256(b"3"))]


def test_entry_changed_during_the_read_shows_up_again(rt, dev, device):
    for name in "abcd":
        seed.put(rt, device, name, name.encode())
    first = dev.get("/changes?limit=2").json  # a@1, b@2
    seed.put(rt, device, "a", b"A", base_rev=1)  # a@5
    seed.put(rt, device, "c", b"C", base_rev=3)  # c@6, moved behind the cursor's future
    rest, _, _ = read_all(dev, 2, first["cursor"])
    assert [(c["path"], c["rev"]) for c in rest] == [("d", 4), ("a", 5), ("c", 6)]


def test_full_listing_includes_deletions(rt, dev, device):
    seed.put(rt, device, "a", b"1")
    dev.post("/report", {"changes": [{"op": "delete", "path": "a", "base_rev": 1}]})
    assert [(c["op"], c["size"], c["sha256"], c["mtime"]) for c in
            dev.get("/changes").json["changes"]] == [("delete", None, None, None)]


def test_feed_is_scoped_to_the_user(rt, dev, device, bob):
    seed.put(rt, device, "a", b"1")
    phone = bob.post("/devices", {"name": "Phone"}).json
    assert bob.as_(phone["token"]).get("/changes").json["changes"] == []


def test_feed_under_the_alias_prefix(rt, dev, device):
    seed.put(rt, device, "a", b"1")
    alias = dev.as_(dev.token, prefix="/api/sync")
    assert [c["path"] for c in alias.get("/changes").json["changes"]] == ["a"]


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", "1e3", " 5", "99999999"])
def test_bad_limit_is_400(rt, dev, device, limit):
    seed.put(rt, device, "a", b"1")
    assert_error(dev.get(f"/changes?limit={limit}", status=400), 400, "limit_invalid")


@pytest.mark.parametrize("limit", ["1", "1000"])
def test_limit_bounds_are_accepted(dev, limit):
    dev.get(f"/changes?limit={limit}")


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "a" * 100, "MTIz",
                                    cursors.encode("0123456789abcdef", 1) + "x"])
def test_garbled_cursor_is_400(dev, cursor):
    assert_error(dev.get(f"/changes?cursor={cursor}", status=400), 400, "cursor_invalid")


def test_cursor_never_issued_is_400(rt, dev, device):
    seed.put(rt, device, "a", b"1")
    cursor = cursors.encode(rt.db_id, 2)
    assert_error(dev.get(f"/changes?cursor={cursor}", status=400), 400, "cursor_invalid")


def test_cursor_of_another_database_is_expired(rt, dev):
    cursor = cursors.encode(OTHER_DB, 0)
    assert_error(dev.get(f"/changes?cursor={cursor}", status=400), 400, "cursor_expired")


def test_feed_needs_a_device(api):
    assert_error(api.get("/changes", status=400), 400, "device_required")


def test_feed_with_user_token_and_device_header(rt, api, device):
    seed.put(rt, device, "a", b"1")
    as_device = api.as_(api.token, device_id=device["id"])
    assert len(as_device.get("/changes").json["changes"]) == 1


def test_feed_query_walks_the_user_rev_index(rt):
    """The page query seeks (user_id, rev) and reads forward: no scan, no sort,
    so a page costs the same at any position in the feed."""
    with database.connection_context():
        plan = database.execute_sql("EXPLAIN QUERY PLAN " + feed.FEED_SQL,
                                    {"user_id": 1, "after": 0, "limit": 101}).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "USING INDEX entries_user_rev (user_id=? AND rev>?)" in details
    assert "TEMP B-TREE" not in details and "SCAN" not in details

"""``POST /ack`` (SPEC §5 Ack) and the purge of acknowledged tombstones
behind the horizon that expires old cursors."""

import pytest

from sync import cursors, janitor

from . import seed
from .helpers import assert_error

OTHER_DB = "0123456789abcdef"
DAY = 86400


def delete(dev, path, base_rev):
    return dev.post("/report", {"changes": [{"op": "delete", "path": path,
                                             "base_rev": base_rev}]}).json["results"][0]


def test_ack_records_the_cursor(rt, api, dev, device, clock):
    seed.put(rt, device, "a", b"1")
    seed.put(rt, device, "b", b"2")
    page = dev.get("/changes?limit=1").json
    clock.advance(5)
    assert dev.post("/ack", {"cursor": page["cursor"]}).json == {
        "device_id": device["id"], "acked_cursor": page["cursor"],
        "acked_at": "2026-11-27T00:00:05Z"}
    record = api.get(f"/devices/{device['id']}").json
    assert record["acked_cursor"] == page["cursor"] and record["pending_changes"] == 1


def test_ack_only_moves_forward(rt, dev, device, clock):
    seed.put(rt, device, "a", b"1")
    first = dev.get("/changes?limit=1").json["cursor"]
    seed.put(rt, device, "b", b"2")
    latest = dev.get("/changes").json["cursor"]
    dev.post("/ack", {"cursor": latest})
    clock.advance(60)
    assert dev.post("/ack", {"cursor": first}).json == {
        "device_id": device["id"], "acked_cursor": latest, "acked_at": "2026-11-27T00:00:00Z"}


def test_ack_with_user_token_and_device_header(rt, api, device):
    cursor = api.as_(api.token, device_id=device["id"]).get("/changes").json["cursor"]
    got = api.as_(api.token, device_id=device["id"]).post("/ack", {"cursor": cursor}).json
    assert got["device_id"] == device["id"]


@pytest.mark.parametrize("cursor", ["garbage", "", cursors.encode(OTHER_DB, 0)[:-1]])
def test_garbled_cursor_is_400_and_nothing_changes(api, dev, device, cursor):
    assert_error(dev.post("/ack", {"cursor": cursor}, status=400), 400, "cursor_invalid")
    assert api.get(f"/devices/{device['id']}").json["acked_cursor"] is None


def test_cursor_never_issued_is_400(rt, api, dev, device):
    resp = dev.post("/ack", {"cursor": cursors.encode(rt.db_id, 5)}, status=400)
    assert_error(resp, 400, "cursor_invalid")
    assert api.get(f"/devices/{device['id']}").json["acked_cursor"] is None


def test_cursor_of_another_database_is_expired(api, dev, device):
    resp = dev.post("/ack", {"cursor": cursors.encode(OTHER_DB, 0)}, status=400)
    assert_error(resp, 400, "cursor_expired")
    assert api.get(f"/devices/{device['id']}").json["acked_cursor"] is None


@pytest.mark.parametrize("body", [{}, {"cursor": None}, {"cursor": 3}, {"cursor": ["x"]}])
def test_missing_or_mistyped_cursor_is_body_invalid(api, dev, device, body):
    assert_error(dev.post("/ack", body, status=400), 400, "body_invalid")
    assert api.get(f"/devices/{device['id']}").json["acked_cursor"] is None


def test_ack_needs_a_device(rt, api, device):
    cursor = cursors.encode(rt.db_id, 0)
    assert_error(api.post("/ack", {"cursor": cursor}, status=400), 400, "device_required")
    assert api.get(f"/devices/{device['id']}").json["acked_cursor"] is None


def test_ack_for_another_users_device_is_403(rt, api, bob, device):
    resp = bob.as_(bob.token, device_id=device["id"]).post(
        "/ack", {"cursor": cursors.encode(rt.db_id, 0)}, status=403)
    assert_error(resp, 403, "forbidden")
    assert api.get(f"/devices/{device['id']}").json["acked_cursor"] is None


def test_ack_of_a_malformed_body_is_400(api, dev, device):
    resp = dev.post("/ack", raw=b"{nope", content_type="application/json", status=400)
    assert_error(resp, 400, "body_invalid")
    assert api.get(f"/devices/{device['id']}").json["acked_cursor"] is None


# -- tombstones ----------------------------------------------------------------

@pytest.fixture
def deleted(rt, dev, device, clock):
    """a (rev 1) and b (rev 2) held, b deleted at rev 3; the feed cursor at 3."""
    seed.put(rt, device, "a", b"1")
    seed.put(rt, device, "b", b"2")
    delete(dev, "b", 2)
    return dev.get("/changes").json["cursor"]


def test_tombstone_purged_after_ack_and_grace(rt, dev, clock, deleted):
    old = cursors.encode(rt.db_id, 1)
    dev.post("/ack", {"cursor": deleted})
    clock.advance(rt.config.tombstone_grace + 1)
    janitor.run_once(rt)
    assert [c["path"] for c in dev.get("/changes").json["changes"]] == ["a"]
    assert_error(dev.get(f"/changes?cursor={old}", status=400), 400, "cursor_expired")
    assert dev.get(f"/changes?cursor={deleted}").json["changes"] == []


def test_tombstone_kept_during_grace(rt, dev, clock, deleted):
    dev.post("/ack", {"cursor": deleted})
    clock.advance(rt.config.tombstone_grace - DAY)
    janitor.run_once(rt)
    assert [c["op"] for c in dev.get("/changes").json["changes"]] == ["put", "delete"]
    dev.get(f"/changes?cursor={cursors.encode(rt.db_id, 1)}")


def test_tombstone_kept_until_every_device_acked(rt, api, dev, clock, deleted):
    other = api.post("/devices", {"name": "Phone"}).json
    dev.post("/ack", {"cursor": deleted})
    clock.advance(rt.config.tombstone_grace + 1)
    janitor.run_once(rt)
    assert len(dev.get("/changes").json["changes"]) == 2
    behind = cursors.encode(rt.db_id, 2)
    api.as_(other["token"]).post("/ack", {"cursor": behind})
    janitor.run_once(rt)
    assert len(dev.get("/changes").json["changes"]) == 2
    api.as_(other["token"]).post("/ack", {"cursor": deleted})
    janitor.run_once(rt)
    assert len(dev.get("/changes").json["changes"]) == 1


def test_listing_from_the_beginning_pages_past_the_horizon(rt, dev, clock, deleted):
    dev.post("/ack", {"cursor": deleted})
    clock.advance(rt.config.tombstone_grace + 1)
    janitor.run_once(rt)
    first = dev.get("/changes?limit=1").json
    assert [c["path"] for c in first["changes"]] == ["a"] and not first["has_more"]
    # The listing ended below the horizon; its cursor must not be expired.
    assert dev.get(f"/changes?cursor={first['cursor']}").json["changes"] == []
    dev.post("/ack", {"cursor": first["cursor"]})


def test_paging_a_listing_below_the_horizon(rt, device, dev, clock):
    for name in "abc":
        seed.put(rt, device, name, name.encode())
    seed.put(rt, device, "x", b"x")
    delete(dev, "x", 4)
    dev.post("/ack", {"cursor": dev.get("/changes").json["cursor"]})
    clock.advance(rt.config.tombstone_grace + 1)
    janitor.run_once(rt)
    got, cursor, pages = [], None, 0
    while pages < 10:
        page = dev.get("/changes?limit=1" + (f"&cursor={cursor}" if cursor else "")).json
        got += [c["path"] for c in page["changes"]]
        cursor, pages = page["cursor"], pages + 1
        if not page["has_more"]:
            break
    assert got == ["a", "b", "c"]
    seed.put(rt, device, "d", b"d")
    assert [c["path"] for c in dev.get(f"/changes?cursor={cursor}").json["changes"]] == ["d"]

"""``GET /conflicts`` and ``POST /conflicts/{id}/resolve`` (SPEC §5
Conflicts): listing, the three resolutions for every kind, conflict names,
and the 4xx answers that change nothing."""

import pytest

from . import seed
from .helpers import assert_error, sha256

ONE, TWO, THREE = b"one", b"two", b"three"


def feed(dev):
    return dev.get("/changes?limit=1000").json["changes"]


def heads(dev):
    return {c["path"]: c["sha256"] for c in feed(dev) if c["op"] == "put"}


def report(dev, *items):
    return dev.post("/report", {"changes": list(items)}).json["results"]


def modify_modify(rt, device, path="a.txt"):
    """``path`` at TWO (rev 2) and a conflicting client version THREE; its id."""
    seed.put(rt, device, path, ONE)
    seed.put(rt, device, path, TWO, base_rev=1)
    return seed.put(rt, device, path, THREE, base_rev=1)["conflict_id"]


def resolve(who, cid, resolution, status=200):
    return who.post(f"/conflicts/{cid}/resolve", {"resolution": resolution}, status=status)


def test_list_shows_unresolved_conflicts_of_the_user(rt, api, dev, device, bob):
    cid = modify_modify(rt, device)
    [conflict] = api.get("/conflicts").json["conflicts"]
    assert set(conflict) == {"id", "path", "kind", "created_at", "server", "client"}
    assert conflict["id"] == cid and conflict["created_at"] == "2026-11-27T00:00:00Z"
    assert dev.get("/conflicts").json["conflicts"] == [conflict]  # a device token may list
    assert bob.get("/conflicts").json == {"conflicts": []}
    resolve(api, cid, "keep_server")
    assert api.get("/conflicts").json == {"conflicts": []}


def test_keep_server_leaves_the_library(rt, api, dev, device, clock):
    cid = modify_modify(rt, device)
    clock.advance(30)
    before = feed(dev)
    got = resolve(dev, cid, "keep_server").json  # a device token may resolve
    assert got["results"] == []
    assert got["conflict"]["resolution"] == "keep_server"
    assert got["conflict"]["resolved_at"] == "2026-11-27T00:00:30Z"
    assert got["conflict"]["id"] == cid and got["conflict"]["kind"] == "modify_modify"
    assert feed(dev) == before


def test_keep_client_makes_the_client_version_the_head(rt, api, dev, device):
    cid = modify_modify(rt, device)
    got = resolve(api, cid, "keep_client").json
    assert got["results"] == [{"path": "a.txt", "op": "put", "rev": 3, "size": 5,
                               "sha256": sha256(THREE), "mtime": 1700000000,
                               "device_id": device["id"]}]
    assert feed(dev)[-1] == got["results"][0]


def test_keep_both_saves_the_client_version_beside(rt, api, dev, device):
    cid = modify_modify(rt, device, "books/Dune.epub")
    got = resolve(api, cid, "keep_both").json
    [change] = got["results"]
    assert change["path"] == "books/Dune (conflict Laptop 2026-11-27).epub"
    assert heads(dev) == {"books/Dune.epub": sha256(TWO), change["path"]: sha256(THREE)}


def test_keep_both_numbers_a_taken_name(rt, api, dev, device):
    seed.put(rt, device, "Dune (conflict Laptop 2026-11-27).epub", b"x")
    seed.put(rt, device, "Dune (conflict Laptop 2026-11-27 2).epub", b"y")
    cid = modify_modify(rt, device, "Dune.epub")
    [change] = resolve(api, cid, "keep_both").json["results"]
    assert change["path"] == "Dune (conflict Laptop 2026-11-27 3).epub"


def test_keep_both_a_deleted_name_is_free(rt, api, dev, device):
    seed.put(rt, device, "Dune (conflict Laptop 2026-11-27).epub", b"x")
    report(dev, {"op": "delete", "path": "Dune (conflict Laptop 2026-11-27).epub",
                 "base_rev": 1})
    cid = modify_modify(rt, device, "Dune.epub")
    [change] = resolve(api, cid, "keep_both").json["results"]
    assert change["path"] == "Dune (conflict Laptop 2026-11-27).epub"


@pytest.mark.parametrize("path,expected", [
    ("archive.tar.gz", "archive.tar (conflict Laptop 2026-11-28).gz"),
    (".bashrc", ".bashrc (conflict Laptop 2026-11-28)"),
    ("notes", "notes (conflict Laptop 2026-11-28)"),
    ("a.b/c", "a.b/c (conflict Laptop 2026-11-28)"),
])
def test_keep_both_splits_like_splitext_with_the_utc_date(rt, api, device, clock,
                                                          path, expected):
    cid = modify_modify(rt, device, path)
    clock.advance(86400 + 5)
    assert resolve(api, cid, "keep_both").json["results"][0]["path"] == expected


def test_keep_both_names_with_the_client_device(rt, api, device):
    kobo = api.post("/devices", {"name": "Kobo/Libra"}).json
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "a.txt", TWO, base_rev=1)
    cid = seed.put(rt, kobo, "a.txt", THREE, base_rev=1)["conflict_id"]
    [change] = resolve(api, cid, "keep_both").json["results"]
    assert change["path"] == "a (conflict Kobo-Libra 2026-11-27).txt"
    assert change["device_id"] == kobo["id"]


@pytest.fixture
def delete_modify(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "a.txt", TWO, base_rev=1)
    return report(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})[0]["conflict_id"]


def test_delete_modify_keep_client_deletes(api, dev, device, delete_modify):
    [change] = resolve(api, delete_modify, "keep_client").json["results"]
    assert change == {"path": "a.txt", "op": "delete", "rev": 3, "size": None,
                      "sha256": None, "mtime": None, "device_id": device["id"]}
    assert heads(dev) == {}


@pytest.mark.parametrize("resolution", ["keep_server", "keep_both"])
def test_delete_modify_keep_server_or_both_keep_the_edit(api, dev, delete_modify, resolution):
    before = feed(dev)
    got = resolve(api, delete_modify, resolution).json
    assert got["results"] == [] and got["conflict"]["resolution"] == resolution
    assert feed(dev) == before


@pytest.fixture
def move_onto_live(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "b.txt", TWO)
    return report(dev, {"op": "move", "path": "a.txt", "to": "b.txt",
                        "base_rev": 1})[0]["conflict_id"]


def test_move_keep_client_replaces_the_target(api, dev, move_onto_live):
    results = resolve(api, move_onto_live, "keep_client").json["results"]
    assert [(c["path"], c["op"], c.get("moved_from")) for c in results] == [
        ("a.txt", "delete", None), ("b.txt", "put", "a.txt")]
    assert heads(dev) == {"b.txt": sha256(ONE)}


def test_move_keep_both_moves_to_the_targets_conflict_name(api, dev, move_onto_live):
    results = resolve(api, move_onto_live, "keep_both").json["results"]
    assert [c["path"] for c in results] == ["a.txt", "b (conflict Laptop 2026-11-27).txt"]
    assert heads(dev) == {"b.txt": sha256(TWO),
                          "b (conflict Laptop 2026-11-27).txt": sha256(ONE)}


def test_move_keep_server_leaves_the_library(api, dev, move_onto_live):
    before = feed(dev)
    assert resolve(api, move_onto_live, "keep_server").json["results"] == []
    assert feed(dev) == before


def test_move_of_a_changed_source_keep_client_moves_the_current_source(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "a.txt", TWO, base_rev=1)
    cid = report(dev, {"op": "move", "path": "a.txt", "to": "b.txt",
                       "base_rev": 1})[0]["conflict_id"]
    resolve(api, cid, "keep_client")
    assert heads(dev) == {"b.txt": sha256(TWO)}


@pytest.mark.parametrize("resolution", ["keep_server", "keep_client", "keep_both"])
def test_move_whose_source_is_gone_leaves_the_library(api, dev, move_onto_live, resolution):
    report(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})
    before = feed(dev)
    got = resolve(api, move_onto_live, resolution).json
    assert got["results"] == [] and got["conflict"]["resolution"] == resolution
    assert feed(dev) == before


@pytest.fixture
def case_clash(rt, dev, device):
    seed.put(rt, device, "Dune.epub", ONE)
    return seed.put(rt, device, "DUNE.epub", TWO)["conflict_id"]


def test_case_clash_keep_client_puts_the_new_path_beside(api, dev, case_clash):
    [change] = resolve(api, case_clash, "keep_client").json["results"]
    assert change["path"] == "DUNE.epub"
    assert heads(dev) == {"Dune.epub": sha256(ONE), "DUNE.epub": sha256(TWO)}


def test_case_clash_keep_both_uses_the_new_paths_name(api, dev, case_clash):
    [change] = resolve(api, case_clash, "keep_both").json["results"]
    assert change["path"] == "DUNE (conflict Laptop 2026-11-27).epub"


def test_case_clash_keep_server(api, dev, case_clash):
    assert resolve(api, case_clash, "keep_server").json["results"] == []
    assert heads(dev) == {"Dune.epub": sha256(ONE)}


def test_resolving_twice_is_400(rt, api, dev, device):
    cid = modify_modify(rt, device)
    resolve(api, cid, "keep_client")
    before = feed(dev)
    assert_error(resolve(api, cid, "keep_both", status=400), 400, "already_resolved")
    assert feed(dev) == before


@pytest.mark.parametrize("resolution", ["keep_neither", "", "KEEP_SERVER"])
def test_unknown_resolution_is_400_and_changes_nothing(rt, api, dev, device, resolution):
    cid = modify_modify(rt, device)
    before = feed(dev)
    assert_error(resolve(api, cid, resolution, status=400), 400, "resolution_invalid")
    assert feed(dev) == before and len(api.get("/conflicts").json["conflicts"]) == 1


@pytest.mark.parametrize("body", [{}, {"resolution": None}, {"resolution": 1}])
def test_missing_resolution_is_body_invalid(rt, api, device, body):
    cid = modify_modify(rt, device)
    resp = api.post(f"/conflicts/{cid}/resolve", body, status=400)
    assert_error(resp, 400, "body_invalid")
    assert len(api.get("/conflicts").json["conflicts"]) == 1


def test_resolve_malformed_json_is_400(rt, api, device):
    cid = modify_modify(rt, device)
    resp = api.post(f"/conflicts/{cid}/resolve", raw=b"{nope", content_type="application/json",
                    status=400)
    assert_error(resp, 400, "body_invalid")


def test_unknown_or_other_users_conflict_is_404(rt, api, bob, dev, device):
    cid = modify_modify(rt, device)
    assert_error(resolve(api, "nope", "keep_server", status=404), 404, "not_found")
    assert_error(resolve(bob, cid, "keep_client", status=404), 404, "not_found")
    assert len(api.get("/conflicts").json["conflicts"]) == 1
    assert heads(dev) == {"a.txt": sha256(TWO)}


def test_resolution_appears_in_the_feed_after_the_cursor(rt, api, dev, device):
    cid = modify_modify(rt, device)
    cursor = dev.get("/changes").json["cursor"]
    resolve(api, cid, "keep_both")
    assert [c["path"] for c in dev.get(f"/changes?cursor={cursor}").json["changes"]] == [
        "a (conflict Laptop 2026-11-27).txt"]


def test_conflict_keeps_its_content_held_until_resolved(rt, api, dev, device):
    cid = modify_modify(rt, device)
    put = {"op": "put", "path": "copy.txt", "sha256": sha256(THREE), "size": 5,
           "mtime": 1, "base_rev": None}
    assert report(dev, put)[0]["status"] == "applied"
    deleted = report(dev, {"op": "delete", "path": "copy.txt", "base_rev": 3})
    assert deleted[0]["status"] == "applied"
    resolve(api, cid, "keep_server")
    assert report(dev, put)[0]["status"] == "upload_required"


def test_keep_both_shortens_a_name_to_fit_a_segment(rt, api, device):
    kobo = api.post("/devices", {"name": "é" * 100}).json
    path = "books/" + "x" * 245 + ".epub"
    seed.put(rt, device, path, ONE)
    seed.put(rt, device, path, TWO, base_rev=1)
    cid = seed.put(rt, kobo, path, THREE, base_rev=1)["conflict_id"]
    [change] = resolve(api, cid, "keep_both").json["results"]
    segment = change["path"].split("/")[-1]
    assert len(segment.encode("utf-8")) <= 255
    assert segment.startswith("x") and segment.endswith(
        f" (conflict {'é' * 50} 2026-11-27).epub")


def test_keep_both_without_room_for_a_name_is_400(rt, api, dev, device):
    path = "a." + "e" * 250
    cid = modify_modify(rt, device, path)
    before = feed(dev)
    assert_error(resolve(api, cid, "keep_both", status=400), 400, "resolution_invalid")
    assert feed(dev) == before and len(api.get("/conflicts").json["conflicts"]) == 1


def test_the_conflict_listing_is_streamed_item_by_item():
    """A long listing leaves in blocks, pulling conflicts from the database
    as it goes, and the blocks join into the one JSON document."""
    import json

    from sync.resources.common import STREAM_BLOCK, json_list_stream
    pulled = []

    def conflicts():
        for i in range(2000):
            pulled.append(i)
            yield {"id": f"{i:06d}", "path": "p" * 100 + "\u00e9"}

    stream = json_list_stream("conflicts", conflicts())
    first = next(stream)
    assert len(first) >= STREAM_BLOCK and len(pulled) < 2000
    body = first + b"".join(stream)
    assert body.isascii()
    assert json.loads(body) == {"conflicts": [{"id": f"{i:06d}", "path": "p" * 100 + "\u00e9"}
                                              for i in range(2000)]}


def test_an_empty_conflict_listing_is_an_empty_list(api):
    assert api.get("/conflicts").json == {"conflicts": []}

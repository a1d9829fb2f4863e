"""``POST /report`` (SPEC §5 Report): statuses, conflict rules, moves, case
clashes, per-item rejection, and malformed bodies that change nothing."""

import pytest

from . import seed
from .helpers import assert_error, sha256

ONE, TWO, THREE = b"one", b"two", b"three"


def put(path, data, base_rev=None, mtime=1700000000, size=None):
    return {"op": "put", "path": path, "sha256": sha256(data),
            "size": len(data) if size is None else size, "mtime": mtime, "base_rev": base_rev}


def report(dev, *items, status=200):
    return dev.post("/report", {"changes": list(items)}, status=status)


def results(dev, *items):
    return report(dev, *items).json["results"]


def feed(dev):
    return dev.get("/changes?limit=1000").json["changes"]


def test_put_of_unknown_content_needs_an_upload(dev):
    assert results(dev, put("a.txt", ONE)) == [{"path": "a.txt", "status": "upload_required"}]
    assert feed(dev) == []


def test_instant_upload_of_held_content(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    [result] = results(dev, put("copy/a.txt", ONE, mtime=1234))
    assert result == {"path": "copy/a.txt", "status": "applied", "rev": 2}
    change = feed(dev)[-1]
    assert change == {"path": "copy/a.txt", "op": "put", "rev": 2, "size": 3,
                      "sha256": sha256(ONE), "mtime": 1234, "device_id": device["id"]}


def test_put_with_matching_base_rev_of_held_content_is_applied(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "b.txt", TWO)
    assert results(dev, put("a.txt", TWO, base_rev=1)) == [
        {"path": "a.txt", "status": "applied", "rev": 3}]


def test_same_content_is_unchanged_whatever_the_base_rev(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    assert results(dev, put("a.txt", ONE, base_rev=None), put("a.txt", ONE, base_rev=1),
                   put("a.txt", ONE, base_rev=7, mtime=5)) == [
        {"path": "a.txt", "status": "unchanged", "rev": 1}] * 3
    assert [c["rev"] for c in feed(dev)] == [1]


def test_stale_put_of_held_content_is_modify_modify(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "a.txt", TWO, base_rev=1)
    seed.put(rt, device, "b.txt", THREE)
    [result] = results(dev, put("a.txt", THREE, base_rev=1, mtime=99))
    assert result["status"] == "conflict" and result["rev"] == 2
    [conflict] = api.get("/conflicts").json["conflicts"]
    assert conflict["id"] == result["conflict_id"]
    assert conflict["kind"] == "modify_modify" and conflict["path"] == "a.txt"
    assert conflict["server"] == {"rev": 2, "op": "put", "sha256": sha256(TWO), "size": 3,
                                  "mtime": 1700000000, "device_id": device["id"]}
    assert conflict["client"] == {"op": "put", "sha256": sha256(THREE), "size": 5,
                                  "mtime": 99, "device_id": device["id"]}
    assert feed(dev)[0]["sha256"] == sha256(TWO)  # the head stays


def test_stale_put_of_unknown_content_needs_an_upload(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "a.txt", TWO, base_rev=1)
    assert results(dev, put("a.txt", b"new", base_rev=1)) == [
        {"path": "a.txt", "status": "upload_required"}]
    assert api.get("/conflicts").json["conflicts"] == []


def test_creating_an_existing_path_is_a_conflict(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "b.txt", TWO)
    [result] = results(dev, put("a.txt", TWO, base_rev=None))
    assert result["status"] == "conflict"


def test_retried_conflict_is_recorded_once(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "b.txt", TWO)
    first = results(dev, put("a.txt", TWO, base_rev=None))[0]
    again = results(dev, put("a.txt", TWO, base_rev=None))[0]
    assert first["conflict_id"] == again["conflict_id"]
    assert len(api.get("/conflicts").json["conflicts"]) == 1


def test_edit_beats_a_concurrent_delete(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "b.txt", TWO)
    assert results(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})[0]["status"] == "applied"
    [result] = results(dev, put("a.txt", TWO, base_rev=1))
    assert result == {"path": "a.txt", "status": "applied", "rev": 4}
    assert feed(dev)[-1]["op"] == "put"


def test_put_with_a_base_rev_on_a_path_never_seen_is_applied(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    assert results(dev, put("new.txt", ONE, base_rev=42))[0]["status"] == "applied"


def test_delete(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    assert results(dev, {"op": "delete", "path": "a.txt", "base_rev": 1}) == [
        {"path": "a.txt", "status": "applied", "rev": 2}]
    assert feed(dev) == [{"path": "a.txt", "op": "delete", "rev": 2, "size": None,
                          "sha256": None, "mtime": None, "device_id": device["id"]}]


def test_delete_of_a_deleted_or_unknown_path_is_unchanged(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    results(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})
    assert results(dev, {"op": "delete", "path": "a.txt", "base_rev": 1},
                   {"op": "delete", "path": "never.txt", "base_rev": None}) == [
        {"path": "a.txt", "status": "unchanged"}, {"path": "never.txt", "status": "unchanged"}]
    assert [c["rev"] for c in feed(dev)] == [2]


def test_stale_delete_is_delete_modify_and_the_edit_stays(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "a.txt", TWO, base_rev=1)
    [result] = results(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})
    assert result["status"] == "conflict" and result["rev"] == 2
    [conflict] = api.get("/conflicts").json["conflicts"]
    assert conflict["kind"] == "delete_modify"
    assert conflict["client"]["op"] == "delete" and conflict["client"]["sha256"] is None
    assert feed(dev)[-1]["op"] == "put"


def test_move(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE, mtime=77)
    assert results(dev, {"op": "move", "path": "a.txt", "to": "dir/b.txt", "base_rev": 1}) == [
        {"path": "a.txt", "status": "applied", "rev": 3}]
    assert feed(dev) == [
        {"path": "a.txt", "op": "delete", "rev": 2, "size": None, "sha256": None,
         "mtime": None, "device_id": device["id"]},
        {"path": "dir/b.txt", "op": "put", "rev": 3, "size": 3, "sha256": sha256(ONE),
         "mtime": 77, "device_id": device["id"], "moved_from": "a.txt"}]


def test_case_only_rename_by_move_is_applied(rt, dev, device):
    seed.put(rt, device, "readme.txt", ONE)
    [result] = results(dev, {"op": "move", "path": "readme.txt", "to": "README.txt",
                             "base_rev": 1})
    assert result["status"] == "applied"
    assert [(c["path"], c["op"]) for c in feed(dev)] == [("readme.txt", "delete"),
                                                          ("README.txt", "put")]


def test_put_after_a_move_clears_moved_from(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "x.txt", TWO)
    results(dev, {"op": "move", "path": "a.txt", "to": "b.txt", "base_rev": 1})
    results(dev, put("b.txt", TWO, base_rev=4))
    assert "moved_from" not in feed(dev)[-1]


def test_move_of_a_changed_source_is_a_move_conflict(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "a.txt", TWO, base_rev=1)
    [result] = results(dev, {"op": "move", "path": "a.txt", "to": "b.txt", "base_rev": 1})
    assert result["status"] == "conflict" and result["rev"] == 2
    [conflict] = api.get("/conflicts").json["conflicts"]
    assert conflict["kind"] == "move" and conflict["path"] == "a.txt"
    assert conflict["client"]["to"] == "b.txt" and conflict["client"]["op"] == "move"
    assert conflict["server"]["rev"] == 2
    assert [c["path"] for c in feed(dev)] == ["a.txt"]


def test_move_of_a_deleted_source_is_a_move_conflict(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    results(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})
    [result] = results(dev, {"op": "move", "path": "a.txt", "to": "b.txt", "base_rev": 1})
    assert result["status"] == "conflict" and "rev" not in result
    assert api.get("/conflicts").json["conflicts"][0]["server"]["op"] == "delete"


def test_move_onto_a_live_target_is_a_move_conflict(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "b.txt", TWO)
    [result] = results(dev, {"op": "move", "path": "a.txt", "to": "b.txt", "base_rev": 1})
    assert result["status"] == "conflict"
    [conflict] = api.get("/conflicts").json["conflicts"]
    assert conflict["kind"] == "move" and conflict["server"]["rev"] == 2
    assert [c["rev"] for c in feed(dev)] == [1, 2]


def test_move_onto_a_case_variant_of_another_file_is_case_clash(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    seed.put(rt, device, "B.txt", TWO)
    [result] = results(dev, {"op": "move", "path": "a.txt", "to": "b.txt", "base_rev": 1})
    assert result["status"] == "conflict"
    [conflict] = api.get("/conflicts").json["conflicts"]
    assert conflict["kind"] == "case_clash"
    assert conflict["path"] == "a.txt" and conflict["client"]["to"] == "b.txt"


@pytest.mark.parametrize("new", ["DUNE.epub", "dune.EPUB", "Dune.Epub"])
def test_put_differing_only_by_case_is_case_clash(rt, api, dev, device, new):
    seed.put(rt, device, "Dune.epub", ONE)
    seed.put(rt, device, "x", TWO)
    [result] = results(dev, put(new, TWO))
    assert result["status"] == "conflict" and "rev" not in result
    [conflict] = api.get("/conflicts").json["conflicts"]
    assert conflict["kind"] == "case_clash" and conflict["path"] == new
    assert conflict["server"]["rev"] == 1
    assert [c["path"] for c in feed(dev)] == ["Dune.epub", "x"]


def test_case_clash_uses_unicode_case_folding(rt, api, dev, device):
    seed.put(rt, device, "straße.txt", ONE)
    seed.put(rt, device, "x", TWO)
    assert results(dev, put("STRASSE.txt", TWO))[0]["status"] == "conflict"


def test_recreating_a_deleted_case_variant_is_no_clash(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    results(dev, {"op": "delete", "path": "a.txt", "base_rev": 1})
    assert results(dev, put("A.txt", ONE))[0]["status"] == "upload_required"
    seed.put(rt, device, "x", TWO)
    assert results(dev, put("A.txt", TWO))[0]["status"] == "applied"


def test_paths_are_normalized_to_nfc(rt, dev, device):
    seed.put(rt, device, "caf\u00e9.txt", ONE)
    assert results(dev, put("cafe\u0301.txt", ONE)) == [
        {"path": "caf\u00e9.txt", "status": "unchanged", "rev": 1}]


def test_items_apply_in_order_within_one_report(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    got = results(dev, put("b.txt", ONE), {"op": "delete", "path": "b.txt", "base_rev": 2},
                  put("b.txt", ONE), {"op": "move", "path": "b.txt", "to": "c.txt",
                                      "base_rev": 4})
    assert [(r["status"], r.get("rev")) for r in got] == [
        ("applied", 2), ("applied", 3), ("applied", 4), ("applied", 6)]
    assert [(c["path"], c["op"], c["rev"]) for c in feed(dev)] == [
        ("a.txt", "put", 1), ("b.txt", "delete", 5), ("c.txt", "put", 6)]


BAD_ITEMS = [
    ({"op": "copy", "path": "x"}, "op"),
    ("not an object", "object"),
    ({"op": "put", "path": "../x", "sha256": "0" * 64, "size": 1, "mtime": 1,
      "base_rev": None}, "'..'"),
    ({"op": "put", "path": "/abs", "sha256": "0" * 64, "size": 1, "mtime": 1,
      "base_rev": None}, "relative"),
    ({"op": "put", "path": "a\\b", "sha256": "0" * 64, "size": 1, "mtime": 1,
      "base_rev": None}, "backslash"),
    ({"op": "put", "path": "", "sha256": "0" * 64, "size": 1, "mtime": 1,
      "base_rev": None}, "empty"),
    ({"op": "put", "path": "a\x00b", "sha256": "0" * 64, "size": 1, "mtime": 1,
      "base_rev": None}, "control"),
    ({"op": "put", "path": "x" * 256, "sha256": "0" * 64, "size": 1, "mtime": 1,
      "base_rev": None}, "255"),
    ({"op": "put", "path": 5, "sha256": "0" * 64, "size": 1, "mtime": 1,
      "base_rev": None}, "string"),
    ({"op": "put", "path": "x", "sha256": "xyz", "size": 1, "mtime": 1, "base_rev": None},
     "sha256"),
    ({"op": "put", "path": "x", "sha256": "0" * 64 + "\n", "size": 1, "mtime": 1,
      "base_rev": None}, "sha256"),
    ({"op": "put", "path": "x", "sha256": None, "size": 1, "mtime": 1, "base_rev": None},
     "sha256"),
    ({"op": "put", "path": "x", "sha256": "0" * 64, "size": "1", "mtime": 1,
      "base_rev": None}, "size"),
    ({"op": "put", "path": "x", "sha256": "0" * 64, "size": -1, "mtime": 1,
      "base_rev": None}, "size"),
    ({"op": "put", "path": "x", "sha256": "0" * 64, "size": 1, "mtime": 1.5,
      "base_rev": None}, "mtime"),
    ({"op": "put", "path": "x", "sha256": "0" * 64, "size": 1, "mtime": True,
      "base_rev": None}, "mtime"),
    ({"op": "put", "path": "x", "sha256": "0" * 64, "size": 1, "mtime": 1}, "base_rev"),
    ({"op": "delete", "path": "x", "base_rev": "3"}, "base_rev"),
    ({"op": "move", "path": "x", "base_rev": 1}, "'to'"),
    ({"op": "move", "path": "x", "to": "x", "base_rev": 1}, "same"),
    ({"op": "move", "path": "x", "to": "a//b", "base_rev": 1}, "empty"),
]


@pytest.mark.parametrize("item,why", BAD_ITEMS)
def test_invalid_item_is_rejected_and_others_still_run(rt, dev, device, item, why):
    seed.put(rt, device, "a.txt", ONE)
    got = results(dev, item, put("b.txt", ONE))
    assert got[0]["status"] == "rejected" and why in got[0]["error"]
    assert set(got[0]) <= {"path", "status", "error"}
    assert got[1] == {"path": "b.txt", "status": "applied", "rev": 2}
    assert [c["rev"] for c in feed(dev)] == [1, 2]


def test_sha256_in_upper_case_is_the_same_content(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    item = dict(put("a.txt", ONE), sha256=sha256(ONE).upper())
    assert results(dev, item) == [{"path": "a.txt", "status": "unchanged", "rev": 1}]


def test_put_whose_size_contradicts_held_content_is_rejected(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    [result] = results(dev, put("b.txt", ONE, size=10))
    assert result["status"] == "rejected" and "3 bytes" in result["error"]
    assert len(feed(dev)) == 1


@pytest.mark.parametrize("body", [
    {}, {"changes": None}, {"changes": {}}, {"changes": "x"}, {"changes": []},
    {"changes": [{"op": "delete", "path": "a.txt", "base_rev": 1}] * 1001}])
def test_malformed_report_is_400_and_applies_nothing(rt, dev, device, body):
    seed.put(rt, device, "a.txt", ONE)
    assert_error(dev.post("/report", body, status=400), 400, "body_invalid")
    assert feed(dev)[0]["op"] == "put"


def test_report_of_1000_items_is_accepted(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    got = results(dev, *[put(f"d/{i}.txt", ONE) for i in range(1000)])
    assert {r["status"] for r in got} == {"applied"}
    assert [r["rev"] for r in got] == list(range(2, 1002))


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b""])
def test_report_not_json_is_400(dev, raw):
    resp = dev.post("/report", raw=raw, content_type="application/json", status=400)
    assert_error(resp, 400, "body_invalid")


def test_report_needs_a_device(rt, api, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    resp = api.post("/report", {"changes": [{"op": "delete", "path": "a.txt", "base_rev": 1}]},
                    status=400)
    assert_error(resp, 400, "device_required")
    assert feed(dev)[0]["op"] == "put"


def test_report_for_another_users_device_is_403(rt, bob, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    resp = bob.as_(bob.token, device_id=device["id"]).post(
        "/report", {"changes": [{"op": "delete", "path": "a.txt", "base_rev": 1}]}, status=403)
    assert_error(resp, 403, "forbidden")
    assert feed(dev)[0]["op"] == "put"


def test_report_with_user_token_and_device_header(rt, api, device):
    seed.put(rt, device, "a.txt", ONE)
    as_device = api.as_(api.token, device_id=device["id"])
    assert results(as_device, put("b.txt", ONE))[0]["status"] == "applied"


def test_libraries_are_isolated(rt, api, dev, device, bob):
    seed.put(rt, device, "a.txt", ONE)
    phone = bob.post("/devices", {"name": "Phone"}).json
    bob_dev = bob.as_(phone["token"])
    assert results(bob_dev, put("a.txt", ONE)) == [{"path": "a.txt", "status": "upload_required"}]
    assert results(bob_dev, {"op": "delete", "path": "a.txt", "base_rev": 1}) == [
        {"path": "a.txt", "status": "unchanged"}]
    assert feed(bob_dev) == []
    assert feed(dev)[0]["op"] == "put"


def test_content_of_another_user_is_not_held(rt, api, dev, device, bob):
    phone = bob.post("/devices", {"name": "Phone"}).json
    seed.put(rt, phone, "secret.txt", ONE)
    assert results(dev, put("guess.txt", ONE)) == [
        {"path": "guess.txt", "status": "upload_required"}]


def test_report_under_the_alias_prefix(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    alias = dev.as_(dev.token, prefix="/api/sync")
    assert results(alias, put("b.txt", ONE))[0]["status"] == "applied"


def test_every_control_character_is_rejected(dev):
    import sys
    import unicodedata

    from sync import paths
    controls = [chr(c) for c in range(sys.maxunicode + 1)
                if unicodedata.category(chr(c)) == "Cc"]
    assert all(paths._CONTROL.fullmatch(ch) for ch in controls) and len(controls) == 65
    got = results(dev, *[{"op": "delete", "path": f"a{ch}b", "base_rev": None}
                         for ch in controls])
    assert {r["status"] for r in got} == {"rejected"}
    assert all("control character" in r["error"] for r in got)


def test_path_with_a_lone_surrogate_is_rejected_without_echo(rt, dev, device):
    seed.put(rt, device, "a.txt", ONE)
    raw = ('{"changes": [{"op": "delete", "path": "a\\ud800b", "base_rev": null}, '
           '{"op": "move", "path": "a.txt", "to": "\\udfff", "base_rev": 1}]}')
    got = dev.post("/report", raw=raw.encode(), content_type="application/json").json
    assert [(r["status"], r["path"]) for r in got["results"]] == [
        ("rejected", None), ("rejected", "a.txt")]
    assert len(feed(dev)) == 1

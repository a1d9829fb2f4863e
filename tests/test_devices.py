"""The device endpoints (SPEC §5 Devices) and device-token permissions."""

import pytest

from .helpers import assert_error

DEVICE_KEYS = {"id", "name", "platform", "created_at", "last_seen_at", "acked_cursor",
               "pending_changes", "app_password"}


def test_register_returns_device_and_token_once(api, device):
    assert set(device) == DEVICE_KEYS | {"token"}
    assert device["name"] == "Laptop" and device["platform"] == "linux"
    assert device["created_at"] == "2026-11-27T00:00:00Z"
    assert device["last_seen_at"] is None
    assert device["acked_cursor"] is None
    assert device["pending_changes"] == 0
    listed = api.get("/devices").json["devices"]
    assert [set(d) for d in listed] == [DEVICE_KEYS]
    assert "token" not in api.get(f"/devices/{device['id']}").json


def test_platform_is_optional(api):
    assert api.post("/devices", {"name": "Kobo"}).json["platform"] is None


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": 5},
                                  {"name": None}, {"name": "ok", "platform": 3},
                                  {"name": "bad\nname"}])
def test_register_invalid_body_is_400_and_creates_nothing(api, body):
    assert_error(api.post("/devices", body, status=400), 400, "body_invalid")
    assert api.get("/devices").json == {"devices": []}


def test_name_of_100_characters_is_accepted(api):
    assert api.post("/devices", {"name": "é" * 100}).json["name"] == "é" * 100


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b"", b"null"])
def test_register_malformed_json_is_400(api, raw):
    resp = api.post("/devices", raw=raw, content_type="application/json", status=400)
    assert_error(resp, 400, "body_invalid")
    assert api.get("/devices").json == {"devices": []}


def test_json_body_over_2_mib_is_413(api):
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = api.post("/devices", raw=big, content_type="application/json", status=413)
    assert_error(resp, 413, "body_too_large")
    assert api.get("/devices").json == {"devices": []}


def test_list_shows_only_own_devices(api, bob, device):
    bob.post("/devices", {"name": "Bob's phone"})
    assert [d["id"] for d in api.get("/devices").json["devices"]] == [device["id"]]
    assert [d["name"] for d in bob.get("/devices").json["devices"]] == ["Bob's phone"]


def test_get_device(api, device):
    assert api.get(f"/devices/{device['id']}").json["name"] == "Laptop"


def test_get_unknown_device_is_404(api):
    assert_error(api.get("/devices/nope", status=404), 404, "not_found")


def test_other_users_device_is_403_everywhere(api, bob, device):
    did = device["id"]
    assert_error(bob.get(f"/devices/{did}", status=403), 403, "forbidden")
    assert_error(bob.put(f"/devices/{did}", {"name": "mine"}, status=403), 403, "forbidden")
    assert_error(bob.delete(f"/devices/{did}", status=403), 403, "forbidden")
    assert_error(bob.post(f"/devices/{did}/token", status=403), 403, "forbidden")
    after = api.get(f"/devices/{did}").json
    assert after["name"] == "Laptop"
    api.as_(device["token"]).get("/devices")  # its token still works


def test_update_name_and_platform(api, device):
    did = device["id"]
    assert api.put(f"/devices/{did}", {"name": "Work laptop"}).json["name"] == "Work laptop"
    resp = api.put(f"/devices/{did}", {"platform": "macos"}).json
    assert resp["name"] == "Work laptop" and resp["platform"] == "macos"
    assert api.put(f"/devices/{did}", {}).json["name"] == "Work laptop"


def test_update_invalid_is_400_and_changes_nothing(api, device):
    did = device["id"]
    assert_error(api.put(f"/devices/{did}", {"name": ""}, status=400), 400, "body_invalid")
    assert_error(api.put(f"/devices/{did}", {"name": "ok", "platform": ["x"]}, status=400),
                 400, "body_invalid")
    assert api.get(f"/devices/{did}").json["name"] == "Laptop"


def test_update_unknown_is_404(api):
    assert_error(api.put("/devices/nope", {"name": "x"}, status=404), 404, "not_found")


def test_delete_then_404(api, device):
    did = device["id"]
    api.delete(f"/devices/{did}", status=204)
    assert_error(api.get(f"/devices/{did}", status=404), 404, "not_found")
    assert_error(api.delete(f"/devices/{did}", status=404), 404, "not_found")
    assert_error(api.post(f"/devices/{did}/token", status=404), 404, "not_found")


def test_regenerate_unknown_is_404(api):
    assert_error(api.post("/devices/nope/token", status=404), 404, "not_found")


def test_device_token_may_list_and_read_update_itself(dev, device):
    assert [d["id"] for d in dev.get("/devices").json["devices"]] == [device["id"]]
    assert dev.get(f"/devices/{device['id']}").json["id"] == device["id"]
    assert dev.put(f"/devices/{device['id']}", {"name": "Renamed"}).json["name"] == "Renamed"


def test_device_token_may_not_manage_devices(api, dev, device):
    other = api.post("/devices", {"name": "Phone"}).json
    assert_error(dev.post("/devices", {"name": "x"}, status=403), 403, "forbidden")
    assert_error(dev.delete(f"/devices/{device['id']}", status=403), 403, "forbidden")
    assert_error(dev.post(f"/devices/{device['id']}/token", status=403), 403, "forbidden")
    assert_error(dev.get(f"/devices/{other['id']}", status=403), 403, "forbidden")
    assert_error(dev.put(f"/devices/{other['id']}", {"name": "y"}, status=403), 403, "forbidden")
    assert_error(dev.delete(f"/devices/{other['id']}", status=403), 403, "forbidden")
    assert len(api.get("/devices").json["devices"]) == 2
    assert api.get(f"/devices/{other['id']}").json["name"] == "Phone"


def test_last_seen_at_set_by_device_token(api, dev, device, clock):
    assert api.get(f"/devices/{device['id']}").json["last_seen_at"] is None
    clock.advance(120)
    dev.get("/devices")
    assert api.get(f"/devices/{device['id']}").json["last_seen_at"] == "2026-11-27T00:02:00Z"


def test_last_seen_at_set_by_x_device_id(api, device, clock):
    clock.advance(60)
    api.as_(api.token, device["id"]).get("/devices")
    assert api.get(f"/devices/{device['id']}").json["last_seen_at"] == "2026-11-27T00:01:00Z"


def test_last_seen_at_not_set_by_another_users_x_device_id(api, bob, device):
    bob.as_(bob.token, device["id"]).get("/devices")
    assert api.get(f"/devices/{device['id']}").json["last_seen_at"] is None


def test_alias_prefix_behaves_the_same(api, device):
    alias = api.as_(api.token, prefix="/api/sync")
    assert alias.get("/devices").json == api.get("/devices").json
    created = alias.post("/devices", {"name": "Via alias"}).json
    assert api.get(f"/devices/{created['id']}").json["name"] == "Via alias"
    assert_error(alias.get("/devices/nope", status=404), 404, "not_found")
    assert_error(alias.as_(None).get("/devices", status=401), 401, "unauthorized")
    alias.delete(f"/devices/{created['id']}", status=204)


def test_trailing_slash_is_the_same_route(api, device):
    assert api.get("/devices/").json == api.get("/devices").json

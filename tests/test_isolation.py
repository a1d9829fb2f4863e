"""Isolation (SPEC §6): a second user aims every endpoint at the first
user's ids and paths and sees nothing, changes nothing.

Devices of another user answer 403 (SPEC §5 Devices); every other object
of another user is invisible (404).
"""

import pytest

from .state import assert_4xx, snapshot


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


def unchanged(rt, call):
    before = snapshot(rt.config)
    resp = call()
    assert_4xx(resp)
    assert snapshot(rt.config) == before
    return resp


def test_devices_of_another_user_are_403_and_unlisted(rt, alice, mallory):
    target = alice["device"]["id"]
    for caller in (mallory["user"], mallory["dev"]):
        assert [d["id"] for d in caller.get("/devices").json["devices"]] == [
            mallory["device"]["id"]]
        calls = [("GET", f"/devices/{target}", None), ("PUT", f"/devices/{target}", {"name": "x"}),
                 ("DELETE", f"/devices/{target}", None), ("POST", f"/devices/{target}/token", None)]
        for method, path, body in calls:
            resp = unchanged(rt, lambda: caller.request(method, path, body, status="*"))
            assert resp.status_int == 403, (method, path, resp.json)


def test_another_users_device_cannot_be_acted_for(rt, alice, mallory):
    """Bob's user token with Alice's device id in X-Device-Id: 403."""
    bob_as_alice = mallory["user"].as_(mallory["user"].token, alice["device"]["id"])
    for method, path, body in [("GET", "/changes", None), ("POST", "/ack", {"cursor": "x"}),
                               ("POST", "/report", {"changes": [{"op": "delete", "path": "a", "base_rev": None}]}),
                               ("POST", "/upload", {"path": "a", "size": 0})]:
        resp = unchanged(rt, lambda: bob_as_alice.request(method, path, body, status="*"))
        if resp.status_int != 405:
            assert resp.status_int == 403, (method, path, resp.json)

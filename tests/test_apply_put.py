"""``library.apply_put`` and ``library.holds_content``: the interface an
upload completes through, checked against the feed."""

from sync import library
from sync.db import database
from sync.models import Device

from . import seed
from .helpers import sha256


def _holds(device, data):
    with database.connection_context():
        return library.holds_content(Device.get_by_id(device["id"]).user_id, sha256(data))


def test_apply_put_creates_then_is_unchanged(rt, device):
    first = seed.put(rt, device, "a.txt", b"one")
    assert first == {"status": "applied", "rev": 1}
    assert seed.put(rt, device, "a.txt", b"one") == {"status": "unchanged", "rev": 1}
    assert seed.put(rt, device, "a.txt", b"two", base_rev=1) == {"status": "applied", "rev": 2}


def test_apply_put_stale_base_rev_is_a_conflict(rt, device):
    seed.put(rt, device, "a.txt", b"one")
    seed.put(rt, device, "a.txt", b"two", base_rev=1)
    result = seed.put(rt, device, "a.txt", b"three", base_rev=1)
    assert result["status"] == "conflict" and result["rev"] == 2
    assert isinstance(result["conflict_id"], str)
    assert _holds(device, b"three")


def test_apply_put_case_clash_has_no_head(rt, device):
    seed.put(rt, device, "Dune.epub", b"one")
    result = seed.put(rt, device, "DUNE.epub", b"two")
    assert result["status"] == "conflict" and result["rev"] is None


def test_holds_content(rt, device):
    assert not _holds(device, b"one")
    seed.put(rt, device, "a.txt", b"one")
    assert _holds(device, b"one")
    assert not _holds(device, b"two")


def test_holds_content_is_per_user(rt, bob, device):
    phone = bob.post("/devices", {"name": "Phone"}).json
    seed.put(rt, phone, "a.txt", b"one")
    assert _holds(phone, b"one") and not _holds(device, b"one")

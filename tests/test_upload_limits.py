"""Limits on uploads (SPEC §5, §6 v2): open sessions per user, the declared
size of an instant upload, any chunk count, failed completions, and the
disk reserve."""

import pytest

from sync import auth

from .helpers import Api, assert_error, sha256
from .test_uploads import CHUNK, DAY, content, count, other_app, send, spool_files, start


def body(n, size=10):
    return {"path": f"f{n}.bin", "size": size, "sha256": f"{n:064x}", "base_rev": None}


# -- --max-open-uploads -------------------------------------------------------------

def test_the_next_session_past_the_limit_is_429_and_leaves_nothing(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock, max_open_uploads=3)
    sessions = [dev.post("/upload", body(i)).json for i in range(3)]
    before = (count("uploads"), spool_files(rt))
    resp = dev.post("/upload", body(3), status=429)
    assert_error(resp, 429, "too_many_uploads")
    assert "cancel" in resp.json["description"]
    assert (count("uploads"), spool_files(rt)) == before
    # Another user is not limited by alice's sessions.
    bob = Api(dev.testapp, auth.issue_user_token(rt, "bob"))
    bob = bob.as_(bob.post("/devices", {"name": "Phone"}).json["token"])
    bob.post("/upload", body(4))
    # Cancelling or completing one makes room; so does one expiring.
    dev.delete(f"/upload/{sessions[0]['id']}", status=204)
    dev.post("/upload", body(5))
    dev.post("/upload", body(6), status=429)
    dev.post(f"/upload/{sessions[1]['id']}/complete", status=400)  # not all sent: still open
    dev.post("/upload", body(7), status=429)
    data = content(10)
    dev.delete(f"/upload/{sessions[2]['id']}", status=204)
    done = start(dev, "real.bin", data).json
    send(dev, done["id"], 0, data)
    dev.post(f"/upload/{done['id']}/complete")
    dev.post("/upload", body(9))
    clock.advance(DAY)
    dev.post("/upload", body(8))


def test_the_default_is_a_hundred_per_user(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock)
    assert rt.config.max_open_uploads == 100
    for i in range(100):
        dev.post("/upload", body(i, size=0))
    assert_error(dev.post("/upload", body(100, size=0), status=429), 429, "too_many_uploads")

"""``POST /changes/wait`` (SPEC §9) through WebTest, with the real
notification path: waiters in threads of their own, woken by the commits of
reports, upload completions and resolutions; the cap and its backoff; the
errors, which change nothing."""

import base64
import os
import threading
import time

import pytest
import webtest

from sync import auth, cursors, janitor
from sync.config import Config
from sync.wsgi import create_app, open_runtime

from . import seed
from .helpers import Api, Browser, Ids, assert_error, sha256

OTHER_DB = "0123456789abcdef"
CHUNK = 256 * 1024
# Generous bounds for a loaded machine; bench/live.py measures precisely.
PROMPT_S = 2.0


def head_cursor(dev):
    """The feed's cursor once the device has read everything."""
    cursor = None
    while True:
        page = dev.get("/changes?limit=1000" + (f"&cursor={cursor}" if cursor else "")).json
        cursor = page["cursor"]
        if not page["has_more"]:
            return cursor


class Waiter(threading.Thread):
    """``POST /changes/wait`` in a thread of its own; ``answer`` and
    ``elapsed`` once it returns."""

    def __init__(self, who, body):
        super().__init__(daemon=True)
        self.who, self.body = who, body
        self.answer = self.status = self.elapsed = None
        self.start()

    def run(self):
        started = time.monotonic()
        resp = self.who.post("/changes/wait", self.body, status="*")
        self.elapsed = time.monotonic() - started
        self.status, self.answer = resp.status_int, resp.json

    def result(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), "the wait did not return"
        return self.answer


def waiting(rt, count, timeout=5.0):
    """Block until ``count`` requests hold a waiter's place."""
    deadline = time.monotonic() + timeout
    while rt.waiters.count != count:
        assert time.monotonic() < deadline, f"{rt.waiters.count} waiters, not {count}"
        time.sleep(0.01)


@pytest.fixture
def phone(api):
    """A second device of alice, the one that makes the changes."""
    return api.as_(api.post("/devices", {"name": "Phone"}).json["token"])


def test_answers_at_once_when_the_library_already_changed(rt, dev, device):
    before = head_cursor(dev)
    seed.put(rt, device, "a.txt", b"one")
    waiter = Waiter(dev, {"cursor": before, "timeout": 30})
    assert waiter.result() == {"changes": True}
    assert waiter.elapsed < PROMPT_S
    assert rt.waiters.count == 0


def test_no_change_answers_false_after_the_timeout(rt, dev):
    waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 1})
    assert waiter.result() == {"changes": False}
    assert 1 <= waiter.elapsed < 1 + PROMPT_S
    assert rt.waiters.count == 0


def test_a_report_of_another_device_wakes_the_waiter(rt, dev, device, phone):
    seed.put(rt, device, "a.txt", b"one")
    cursor = head_cursor(dev)
    waiter = Waiter(dev, {"cursor": cursor, "timeout": 30})
    waiting(rt, 1)
    committed = time.monotonic()
    results = phone.post("/report", {"changes": [
        {"op": "move", "path": "a.txt", "to": "b.txt", "base_rev": 1}]}).json["results"]
    assert results[0]["status"] == "applied"
    assert waiter.result() == {"changes": True}
    assert time.monotonic() - committed < PROMPT_S
    assert [c["path"] for c in dev.get(f"/changes?cursor={cursor}").json["changes"]] == \
        ["a.txt", "b.txt"]


def test_upload_completion_wakes_the_waiter(rt, dev, phone):
    cursor = head_cursor(dev)
    waiter = Waiter(dev, {"cursor": cursor, "timeout": 30})
    waiting(rt, 1)
    data = os.urandom(CHUNK + 10)
    session = phone.post("/upload", {"path": "big.bin", "size": len(data),
                                     "sha256": sha256(data), "base_rev": None,
                                     "chunk_size": CHUNK}).json
    for index in range(2):
        phone.put(f"/upload/{session['id']}/chunks/{index}",
                  raw=data[index * CHUNK:(index + 1) * CHUNK])
    assert waiter.is_alive()  # chunks are not changes of the library
    assert phone.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert waiter.result() == {"changes": True}
    [change] = dev.get(f"/changes?cursor={cursor}").json["changes"]
    assert change["path"] == "big.bin" and change["sha256"] == sha256(data)


@pytest.fixture
def conflict_id(rt, device):
    """An open conflict on ``a.txt``: two edits of its first version."""
    seed.put(rt, device, "a.txt", b"one")
    seed.put(rt, device, "a.txt", b"two", base_rev=1)
    return seed.put(rt, device, "a.txt", b"three", base_rev=1)["conflict_id"]


def test_a_resolution_wakes_the_waiter(rt, api, dev, conflict_id):
    waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 30})
    waiting(rt, 1)
    api.post(f"/conflicts/{conflict_id}/resolve", {"resolution": "keep_client"})
    assert waiter.result() == {"changes": True}


def test_a_resolution_that_changes_nothing_does_not_wake(rt, api, dev, conflict_id):
    waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 2})
    waiting(rt, 1)
    api.post(f"/conflicts/{conflict_id}/resolve", {"resolution": "keep_server"})
    assert waiter.result() == {"changes": False}
    assert waiter.elapsed >= 2


def test_changes_of_another_user_do_not_wake(rt, dev, bob):
    bobs = bob.as_(bob.post("/devices", {"name": "Bob's"}).json["token"])
    waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 2})
    waiting(rt, 1)
    seed.put(rt, bobs.get("/devices").json["devices"][0], "bob.txt", b"bob")
    assert waiter.result() == {"changes": False}
    assert waiter.elapsed >= 2


def test_many_waiters_of_one_user_all_wake(rt, dev, phone, device):
    cursor = head_cursor(dev)
    waiters = [Waiter(dev, {"cursor": cursor, "timeout": 30}) for _ in range(5)]
    waiting(rt, 5)
    seed.put(rt, device, "a.txt", b"one")
    assert [w.result() for w in waiters] == [{"changes": True}] * 5
    assert rt.waiters.count == 0


def test_a_cursor_behind_a_listing_page_answers_at_once(rt, dev, device):
    for i in range(3):
        seed.put(rt, device, f"{i}.txt", str(i).encode())
    first_page = dev.get("/changes?limit=1").json
    assert first_page["has_more"]
    assert Waiter(dev, {"cursor": first_page["cursor"]}).result() == {"changes": True}


def test_the_alias_prefix_and_a_user_token_with_x_device_id(rt, api, device):
    alias = api.as_(api.token, device_id=device["id"], prefix="/api/sync")
    cursor = head_cursor(alias)
    waiter = Waiter(alias, {"cursor": cursor, "timeout": 30})
    waiting(rt, 1)
    seed.put(rt, device, "a.txt", b"one")
    assert waiter.result() == {"changes": True}


def test_waiting_writes_nothing_to_the_database(rt, api, dev, device):
    cursor = head_cursor(dev)  # this call records last_seen_at
    files = [rt.config.path(name) for name in ("sync.sqlite3", "sync.sqlite3-wal")]

    def snapshot():
        found = []
        for name in files:
            with open(name, "rb") as f:
                found.append(sha256(f.read()))
        return found

    seen = api.get(f"/devices/{device['id']}").json["last_seen_at"]
    before = snapshot()
    assert Waiter(dev, {"cursor": cursor, "timeout": 2}).result() == {"changes": False}
    assert snapshot() == before
    assert api.get(f"/devices/{device['id']}").json["last_seen_at"] == seen


# -- the cap -------------------------------------------------------------------

def capped_app(tmp_path, max_waiters):
    config = Config.build(data_dir=str(tmp_path / "capped"), access_log=False,
                          max_waiters=max_waiters)
    rt = open_runtime(config, idgen=Ids())
    api = Api(webtest.TestApp(create_app(rt)), auth.issue_user_token(rt, "alice"))
    return rt, api.as_(api.post("/devices", {"name": "Laptop"}).json["token"])


def test_past_max_waiters_the_answer_comes_at_once_with_a_backoff(tmp_path):
    rt, dev = capped_app(tmp_path, max_waiters=2)
    cursor = head_cursor(dev)
    first = [Waiter(dev, {"cursor": cursor, "timeout": 3}) for _ in range(2)]
    waiting(rt, 2)
    late = Waiter(dev, {"cursor": cursor, "timeout": 30})
    answer = late.result()
    assert late.elapsed < PROMPT_S
    assert answer["changes"] is False and isinstance(answer["backoff"], int)
    assert answer["backoff"] >= 1 and set(answer) == {"changes", "backoff"}
    assert [w.result() for w in first] == [{"changes": False}] * 2
    # The places are free again.
    assert Waiter(dev, {"cursor": cursor, "timeout": 1}).result() == {"changes": False}


def test_past_the_cap_a_change_already_there_is_still_told(tmp_path):
    rt, dev = capped_app(tmp_path, max_waiters=0)
    cursor = head_cursor(dev)
    assert Waiter(dev, {"cursor": cursor, "timeout": 5}).result()["backoff"] >= 1
    device = dev.get("/devices").json["devices"][0]
    seed.put(rt, device, "a.txt", b"one")
    assert Waiter(dev, {"cursor": cursor, "timeout": 5}).result() == {"changes": True}


def test_a_disconnect_check_ends_the_wait(rt, dev):
    """What waitress's ``client_disconnected`` turns on (the real socket is
    tested in test_wait_server.py)."""
    cursor = head_cursor(dev)
    gone = threading.Event()
    resp_box = []

    def run():
        resp_box.append(dev.testapp.post_json(
            "/api/v1/sync/changes/wait", {"cursor": cursor, "timeout": 55},
            headers=dev.headers(), extra_environ={
                "waitress.client_disconnected": gone.is_set}))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    waiting(rt, 1)
    started = time.monotonic()
    gone.set()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert resp_box[0].json == {"changes": False}
    assert rt.waiters.count == 0


# -- errors --------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {}, {"cursor": None}, {"cursor": 3}, {"cursor": ["x"]}, {"timeout": 10},
])
def test_a_missing_or_mistyped_cursor_is_body_invalid(dev, body):
    assert_error(dev.post("/changes/wait", body, status=400), 400, "body_invalid")


@pytest.mark.parametrize("timeout", [0, 56, -1, 1.5, "30", True, None, [30]])
def test_a_bad_timeout_is_body_invalid(dev, timeout):
    body = {"cursor": head_cursor(dev), "timeout": timeout}
    resp = dev.post("/changes/wait", body, status=400)
    assert_error(resp, 400, "body_invalid")
    assert "timeout" in resp.json["description"]


def test_timeout_bounds_are_accepted(rt, dev):
    cursor = head_cursor(dev)
    assert Waiter(dev, {"cursor": cursor, "timeout": 1}).result() == {"changes": False}
    seed.put(rt, dev.get("/devices").json["devices"][0], "a.txt", b"x")
    assert Waiter(dev, {"cursor": cursor, "timeout": 55}).result() == {"changes": True}


def test_a_body_that_is_not_json_is_body_invalid(dev):
    resp = dev.post("/changes/wait", raw=b"{nope", content_type="application/json", status=400)
    assert_error(resp, 400, "body_invalid")


@pytest.mark.parametrize("cursor", ["", "garbage", "!!!", "x" * 65])
def test_a_garbled_cursor_is_cursor_invalid(dev, cursor):
    assert_error(dev.post("/changes/wait", {"cursor": cursor}, status=400), 400,
                 "cursor_invalid")


def test_a_cursor_the_server_never_issued_is_cursor_invalid(rt, dev):
    ahead = cursors.encode(rt.db_id, 10_000)
    assert_error(dev.post("/changes/wait", {"cursor": ahead}, status=400), 400,
                 "cursor_invalid")


def test_a_cursor_of_another_database_is_expired(dev):
    other = cursors.encode(OTHER_DB, 0)
    assert_error(dev.post("/changes/wait", {"cursor": other}, status=400), 400,
                 "cursor_expired")


def test_a_cursor_behind_the_tombstone_horizon_is_expired(rt, dev, device, clock):
    seed.put(rt, device, "a", b"1")
    seed.put(rt, device, "b", b"2")
    dev.post("/report", {"changes": [{"op": "delete", "path": "b", "base_rev": 2}]})
    dev.post("/ack", {"cursor": head_cursor(dev)})
    clock.advance(rt.config.tombstone_grace + 1)
    janitor.run_once(rt)
    old = cursors.encode(rt.db_id, 1)
    assert_error(dev.post("/changes/wait", {"cursor": old}, status=400), 400, "cursor_expired")


def test_a_user_token_without_a_device_is_device_required(rt, api):
    cursor = cursors.encode(rt.db_id, 0)
    assert_error(api.post("/changes/wait", {"cursor": cursor}, status=400), 400,
                 "device_required")


def test_another_users_device_is_403(rt, bob, device):
    resp = bob.as_(bob.token, device_id=device["id"]).post(
        "/changes/wait", {"cursor": cursors.encode(rt.db_id, 0)}, status=403)
    assert_error(resp, 403, "forbidden")


def test_no_token_is_401(rt, anon):
    resp = anon.post("/changes/wait", {"cursor": cursors.encode(rt.db_id, 0)}, status=401)
    assert_error(resp, 401, "unauthorized")


def test_only_post(dev):
    assert_error(dev.get("/changes/wait", status=405), 405, "method_not_allowed")


# -- writers that came later: nothing of theirs knows about waiters ------------

def test_a_restore_wakes_the_waiter(rt, api, dev, device):
    seed.put(rt, device, "a.txt", b"one")
    seed.put(rt, device, "a.txt", b"two", base_rev=1)
    waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 30})
    waiting(rt, 1)
    assert api.post("/restore", {"path": "a.txt", "rev": 1}).json["status"] == "applied"
    assert waiter.result() == {"changes": True}


def test_a_rewind_wakes_the_waiter_and_a_dry_run_does_not(rt, api, dev, device):
    seed.put(rt, device, "a.txt", b"one")
    seed.put(rt, device, "b.txt", b"two")
    waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 30})
    waiting(rt, 1)
    assert api.post("/rewind", {"rev": 1, "dry_run": True}).json["count"] == 1
    time.sleep(0.5)
    assert waiter.is_alive()
    assert api.post("/rewind", {"rev": 1}).json["count"] == 1
    assert waiter.result() == {"changes": True}


@pytest.mark.filterwarnings("ignore::webtest.lint.WSGIWarning")
def test_webdav_writes_wake_the_waiter(rt, api, dev, testapp):
    kobo = api.post("/devices", {"name": "Kobo"}).json
    password = api.post(f"/devices/{kobo['id']}/app-password").json["app_password"]
    basic = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    for method, body, status in (("PUT", b"from the e-reader", 201), ("DELETE", b"", 204)):
        waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 30})
        waiting(rt, 1)
        resp = testapp.request("/dav/files/alice/notes.txt", method=method, body=body,
                               headers={"Authorization": basic}, expect_errors=True)
        assert resp.status_int == status, resp
        assert waiter.result() == {"changes": True}, method


def test_a_deletion_on_the_web_page_wakes_the_waiter(rt, dev, device, testapp):
    seed.add_user(rt, "alice")
    browser = Browser(testapp.app)
    browser.login("alice")
    seed.put(rt, device, "a.txt", b"one")
    waiter = Waiter(dev, {"cursor": head_cursor(dev), "timeout": 30})
    waiting(rt, 1)
    browser.get("/files/delete?path=a.txt")
    browser.post("/files/delete", {"path": "a.txt", "rev": "1"})
    assert waiter.result() == {"changes": True}
    assert dev.get("/changes?limit=1000").json["changes"][0]["op"] == "delete"

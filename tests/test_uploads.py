"""Chunked, resumable uploads (SPEC §5 Uploads) through HTTP: sessions,
chunks, completion, cancellation, expiry, quota and the disk."""

import base64
import dataclasses
import io
import os
import resource
import signal
import threading

import pytest

from sync import auth, blobs, errors, history, janitor, uploads
from sync.db import database

from .helpers import (
    CHUNK,
    DAY,
    Api,
    assert_error,
    content,
    count,
    digest_header,
    other_app,
    send_chunk,
    sha256,
    spool_files,
    start_upload,
    upload,
)


def sweep(rt):
    """One clean-up pass: what it removed."""
    result = janitor.run_once(rt)
    return {"uploads": result["uploads"], "blobs": result["blobs"]}


# Creating a session


def test_create_answers_the_session_and_reserves_the_spool_file(rt, dev, clock):
    data = content(CHUNK * 2 + 5)
    resp = dev.post("/upload", {"path": "books/Dune.epub", "size": len(data),
                                "sha256": sha256(data), "base_rev": None, "mtime": 1700000000})
    session = resp.json
    assert session["path"] == "books/Dune.epub"
    assert session["size"] == len(data)
    assert session["chunk_size"] == 8 * 1024 * 1024
    assert session["chunk_count"] == 1
    assert session["received"] == []
    assert session["state"] == "open"
    assert session["expires_at"] == "2026-11-28T00:00:00Z"
    assert all(c in "0123456789abcdef" for c in session["id"])
    spool = rt.config.path("spool", session["id"])
    assert os.path.getsize(spool) == len(data)


@pytest.mark.parametrize("size,chunk_count", [(0, 0), (1, 1), (CHUNK, 1), (CHUNK + 1, 2),
                                              (CHUNK * 5 // 2, 3)])
def test_chunk_count_is_size_over_chunk_size_rounded_up(dev, size, chunk_count):
    session = dev.post("/upload", {"path": "a", "size": size, "sha256": "0" * 64,
                                   "base_rev": None, "chunk_size": CHUNK}).json
    assert session["chunk_count"] == chunk_count


GOOD = {"path": "a.txt", "size": 10, "sha256": "a" * 64, "base_rev": None}


@pytest.mark.parametrize("change,status,code", [
    ({"path": "../etc/passwd"}, 400, "path_invalid"),
    ({"path": "/abs"}, 400, "path_invalid"),
    ({"path": "a//b"}, 400, "path_invalid"),
    ({"path": 5}, 400, "path_invalid"),
    ({"path": None}, 400, "path_invalid"),
    ({"size": -1}, 400, "body_invalid"),
    ({"size": "10"}, 400, "body_invalid"),
    ({"size": True}, 400, "body_invalid"),
    ({"size": 1.5}, 400, "body_invalid"),
    ({"size": 64 * 1024 ** 3 + 1}, 413, "file_too_large"),
    ({"sha256": "A" * 64}, 400, "body_invalid"),
    ({"sha256": "a" * 63}, 400, "body_invalid"),
    ({"sha256": None}, 400, "body_invalid"),
    ({"base_rev": "3"}, 400, "body_invalid"),
    ({"base_rev": -1}, 400, "body_invalid"),
    ({"base_rev": 2 ** 63}, 400, "body_invalid"),
    ({"mtime": 2 ** 64}, 400, "body_invalid"),
    ({"mtime": "yesterday"}, 400, "body_invalid"),
    ({"mtime": 1.5}, 400, "body_invalid"),
    ({"chunk_size": CHUNK - 1}, 400, "body_invalid"),
    ({"chunk_size": 64 * 1024 * 1024 + 1}, 400, "body_invalid"),
    ({"chunk_size": "8MiB"}, 400, "body_invalid"),
])
def test_create_rejects_bad_fields_and_stores_nothing(rt, dev, change, status, code):
    body = dict(GOOD, **change)
    assert_error(dev.post("/upload", body, status=status), status, code)
    assert count("uploads") == 0
    assert spool_files(rt) == []


@pytest.mark.parametrize("field", ["path", "size", "sha256", "base_rev"])
def test_create_requires_each_field(rt, dev, field):
    body = {k: v for k, v in GOOD.items() if k != field}
    assert_error(dev.post("/upload", body, status=400), 400, "body_invalid")
    assert count("uploads") == 0


def test_create_rejects_a_body_that_is_not_json(rt, dev):
    resp = dev.post("/upload", raw=b"{nope", content_type="application/json", status=400)
    assert_error(resp, 400, "body_invalid")
    assert count("uploads") == 0


def test_chunk_size_is_capped_by_max_chunk_size(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock, max_chunk_size="1MiB")
    ok = dev.post("/upload", dict(GOOD, size=3 * 1024 * 1024)).json
    assert ok["chunk_size"] == 1024 * 1024  # the default 8 MiB does not fit
    resp = dev.post("/upload", dict(GOOD, chunk_size=2 * 1024 * 1024), status=400)
    assert_error(resp, 400, "body_invalid")


def test_every_upload_call_needs_a_device(api, dev):
    session = start_upload(dev, "a.txt", b"hello").json
    assert_error(api.post("/upload", GOOD, status=400), 400, "device_required")
    for method, path in [("GET", f"/upload/{session['id']}"),
                         ("PUT", f"/upload/{session['id']}/chunks/0"),
                         ("POST", f"/upload/{session['id']}/complete"),
                         ("DELETE", f"/upload/{session['id']}")]:
        assert_error(api.request(method, path, status=400), 400, "device_required")
    assert dev.get(f"/upload/{session['id']}").json["received"] == []


def test_user_token_with_x_device_id_acts_for_that_device(api, device):
    as_device = api.as_(api.token, device_id=device["id"])
    session = start_upload(as_device, "a.txt", b"hi").json
    assert session["device_id"] == device["id"]


# Chunks


def test_chunks_in_any_order_then_complete_gives_the_library_the_bytes(rt, dev):
    data = content(CHUNK * 3 + 100)
    session = start_upload(dev, "music/song.flac", data, mtime=1600000000).json
    assert session["chunk_count"] == 4
    answers = [send_chunk(dev, session["id"], i, data).json for i in (3, 1, 0, 2)]
    assert answers[0] == {"index": 3, "received": 1, "bytes_received": 100}
    assert answers[-1] == {"index": 2, "received": 4, "bytes_received": len(data)}
    status = dev.get(f"/upload/{session['id']}").json
    assert status["received"] == [0, 1, 2, 3]
    assert status["bytes_received"] == len(data)
    result = dev.post(f"/upload/{session['id']}/complete").json
    assert result["status"] == "applied"
    assert isinstance(result["rev"], int)
    assert dev.get("/download/music/song.flac").body == data
    assert spool_files(rt) == []
    assert os.path.exists(blobs.blob_path(rt.config, sha256(data)))


def test_content_digest_is_checked(rt, dev):
    data = content(CHUNK + 10)
    session = start_upload(dev, "a.bin", data).json
    first = data[:CHUNK]
    send_chunk(dev, session["id"], 0, data, headers={"Content-Digest": digest_header(first)})
    other = "sha-512=:" + base64.b64encode(b"x" * 64).decode() + ":, " + digest_header(data[CHUNK:])
    send_chunk(dev, session["id"], 1, data, headers={"Content-Digest": other})
    assert dev.get(f"/upload/{session['id']}").json["received"] == [0, 1]


def test_a_chunk_that_does_not_match_its_digest_is_not_counted(dev):
    data = content(CHUNK * 2)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    send_chunk(dev, session["id"], 1, data)
    wrong = digest_header(b"something else")
    resp = send_chunk(dev, session["id"], 0, data, status=400, headers={"Content-Digest": wrong})
    assert_error(resp, 400, "chunk_invalid")
    assert dev.get(f"/upload/{session['id']}").json["received"] == [1]
    assert_error(dev.post(f"/upload/{session['id']}/complete", status=400), 400, "chunks_missing")


@pytest.mark.parametrize("header", ["sha-256=abc", "sha-256=:not base64!:", "sha-256=:YWJj:",
                                    "garbage", "sha-256=:" + "A" * 44 + ":,,"])
def test_a_malformed_content_digest_is_rejected_and_changes_nothing(dev, header):
    data = content(CHUNK * 2)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    resp = send_chunk(dev, session["id"], 0, data, status=400, headers={"Content-Digest": header})
    assert_error(resp, 400, "chunk_invalid")
    assert dev.get(f"/upload/{session['id']}").json["received"] == [0]


@pytest.mark.parametrize("index", ["2", "-1", "abc", "1.0", "+1", " 1", "99999999999999"])
def test_an_index_out_of_range_or_not_an_integer_is_chunk_invalid(dev, index):
    data = content(CHUNK * 2)
    session = start_upload(dev, "a.bin", data).json
    resp = dev.put(f"/upload/{session['id']}/chunks/{index}", raw=data[:CHUNK], status=400)
    assert_error(resp, 400, "chunk_invalid")
    assert dev.get(f"/upload/{session['id']}").json["received"] == []


def test_no_index_is_valid_for_an_empty_file(dev):
    session = start_upload(dev, "empty", b"").json
    resp = dev.put(f"/upload/{session['id']}/chunks/0", raw=b"", status=400)
    assert_error(resp, 400, "chunk_invalid")
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert dev.get("/download/empty").body == b""


@pytest.mark.parametrize("index,length", [(0, CHUNK - 1), (0, CHUNK + 1), (1, 9), (1, 11), (0, 0)])
def test_a_chunk_of_the_wrong_length_is_chunk_invalid(dev, index, length):
    data = content(CHUNK + 10)
    session = start_upload(dev, "a.bin", data).json
    resp = dev.put(f"/upload/{session['id']}/chunks/{index}", raw=b"x" * length, status=400)
    assert_error(resp, 400, "chunk_invalid")
    assert dev.get(f"/upload/{session['id']}").json["bytes_received"] == 0


def test_a_short_body_under_a_correct_length_is_not_counted(rt, dev):
    """Through the service: a stream that ends early (a dropped connection)."""
    data = content(CHUNK * 2)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    stream = io.BytesIO(data[:1000])
    with database.connection_context():
        user = auth.authenticate(rt, f"Bearer {dev.token}").user
        with pytest.raises(errors.SyncError) as info:
            uploads.put_chunk(rt, user, session["id"], "0", stream.read, CHUNK, None)
    assert info.value.code == "chunk_invalid"
    assert dev.get(f"/upload/{session['id']}").json["received"] == []


def test_a_resent_chunk_replaces_the_bad_one(dev):
    data = content(CHUNK * 2)
    session = start_upload(dev, "a.bin", data).json
    dev.put(f"/upload/{session['id']}/chunks/0", raw=b"\0" * CHUNK)
    send_chunk(dev, session["id"], 1, data)
    resp = dev.post(f"/upload/{session['id']}/complete", status=400)
    assert_error(resp, 400, "digest_mismatch")
    assert dev.get(f"/upload/{session['id']}").json["state"] == "open"
    dev.get("/download/a.bin", status=404)
    assert send_chunk(dev, session["id"], 0, data).json["received"] == 2
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert dev.get("/download/a.bin").body == data


def test_parallel_chunks_of_one_session(rt, dev):
    data = content(CHUNK * 6)
    session = start_upload(dev, "p.bin", data).json
    failures = []

    def put(index):
        try:
            send_chunk(dev, session["id"], index, data)
        except Exception as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert dev.get("/download/p.bin").body == data


def test_a_chunk_being_received_is_not_complete_and_cannot_be_sent_twice(dev):
    """A request still writing chunk 0 (held open here through the gate the
    service uses) makes complete list 0 as missing, and a second request
    for the same chunk is turned away."""
    data = content(CHUNK * 2)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    send_chunk(dev, session["id"], 1, data)
    with uploads._gate.chunk(session["id"], 0):
        resp = dev.post(f"/upload/{session['id']}/complete", status=400)
        assert_error(resp, 400, "chunks_missing")
        assert resp.json["missing"] == [0]
        assert_error(send_chunk(dev, session["id"], 0, data, status=409), 409, "upload_busy")
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"


def test_no_chunk_is_written_while_the_session_is_being_completed(dev):
    data = content(CHUNK * 2)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    with uploads._gate.closing(session["id"]):
        assert_error(send_chunk(dev, session["id"], 1, data, status=409), 409, "upload_busy")
    assert dev.get(f"/upload/{session['id']}").json["received"] == [0]


# Completing


def test_complete_with_missing_chunks_lists_them(rt, dev):
    data = content(CHUNK * 4)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 1, data)
    resp = dev.post(f"/upload/{session['id']}/complete", status=400)
    assert_error(resp, 400, "chunks_missing")
    assert resp.json["missing"] == [0, 2, 3]
    assert count("entries") == 0
    assert dev.get(f"/upload/{session['id']}").json["state"] == "open"


def test_a_second_complete_replays_the_answer(rt, dev):
    data = content(100)
    session = start_upload(dev, "a.txt", data).json
    send_chunk(dev, session["id"], 0, data)
    first = dev.post(f"/upload/{session['id']}/complete").json
    again = dev.post(f"/upload/{session['id']}/complete").json
    assert again == first
    state = dev.get(f"/upload/{session['id']}").json
    assert state["state"] == "completed" and state["received"] == [0]
    resp = send_chunk(dev, session["id"], 0, data, status=409)
    assert_error(resp, 409, "upload_completed")


def test_complete_without_mtime_uses_the_completion_time(dev, clock):
    data = content(10)
    clock.advance(3600)
    upload(dev, "t.txt", data)
    resp = dev.get("/download/t.txt")
    assert resp.headers["Last-Modified"] == "Fri, 27 Nov 2026 01:00:00 GMT"


def test_complete_after_a_crash_between_rename_and_commit(rt, dev):
    """The spool file was moved into blobs/ but the library did not change:
    a retried complete finds the blob, checks it, and completes."""
    data = content(CHUNK + 7)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    send_chunk(dev, session["id"], 1, data)
    blobs.store_spool(rt.config, session["id"], sha256(data))
    assert spool_files(rt) == []
    assert count("entries") == 0
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert dev.get("/download/a.bin").body == data


def test_identical_content_from_two_sessions_keeps_one_blob(rt, dev):
    data = content(300)
    one = start_upload(dev, "one.txt", data).json
    two = start_upload(dev, "two.txt", data).json
    send_chunk(dev, one["id"], 0, data)
    send_chunk(dev, two["id"], 0, data)
    assert dev.post(f"/upload/{one['id']}/complete").json["status"] == "applied"
    assert dev.post(f"/upload/{two['id']}/complete").json["status"] == "applied"
    assert spool_files(rt) == []
    assert dev.get("/download/two.txt").body == data


def test_instant_upload_of_content_the_library_holds(rt, dev):
    data = content(CHUNK * 2)
    upload(dev, "first.bin", data)
    session = start_upload(dev, "copy.bin", data).json
    assert session["received"] == [0, 1]
    assert session["bytes_received"] == len(data)
    assert spool_files(rt) == []
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert dev.get("/download/copy.bin").body == data


def test_the_change_carries_the_device_that_created_the_session(api, dev, device):
    data = content(50)
    session = start_upload(dev, "a.txt", data).json
    send_chunk(dev, session["id"], 0, data)
    laptop2 = api.post("/devices", {"name": "Phone"}).json
    phone = api.as_(laptop2["token"])
    assert phone.get(f"/upload/{session['id']}").json["device_id"] == device["id"]
    assert phone.post(f"/upload/{session['id']}/complete").json["status"] == "applied"


# Isolation, cancelling, expiry


def test_another_users_session_is_404(bob, dev, rt):
    data = content(100)
    session = start_upload(dev, "a.txt", data).json
    bob_dev = bob.as_(bob.post("/devices", {"name": "B"}).json["token"])
    sid = session["id"]
    assert_error(bob_dev.get(f"/upload/{sid}", status=404), 404, "not_found")
    assert_error(send_chunk(bob_dev, sid, 0, data, status=404), 404, "not_found")
    assert_error(bob_dev.post(f"/upload/{sid}/complete", status=404), 404, "not_found")
    assert_error(bob_dev.delete(f"/upload/{sid}", status=404), 404, "not_found")
    assert dev.get(f"/upload/{sid}").json["received"] == []
    assert spool_files(rt) == [sid]


def test_cancel_removes_the_session_and_its_spool_file(rt, dev):
    data = content(CHUNK + 1)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    dev.delete(f"/upload/{session['id']}", status=204)
    assert spool_files(rt) == []
    for method, path in [("GET", f"/upload/{session['id']}"),
                         ("PUT", f"/upload/{session['id']}/chunks/1"),
                         ("POST", f"/upload/{session['id']}/complete"),
                         ("DELETE", f"/upload/{session['id']}")]:
        assert_error(dev.request(method, path, status=404), 404, "not_found")


def test_deleting_the_device_cancels_its_sessions(rt, api, dev, device):
    data = content(CHUNK + 1)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    phone = api.as_(api.post("/devices", {"name": "Phone"}).json["token"])
    api.delete(f"/devices/{device['id']}", status=204)
    assert spool_files(rt) == []
    assert_error(phone.get(f"/upload/{session['id']}", status=404), 404, "not_found")


def test_an_untouched_session_expires(rt, dev, clock):
    data = content(CHUNK + 1)
    session = start_upload(dev, "a.bin", data).json
    clock.advance(DAY - 10)
    send_chunk(dev, session["id"], 0, data)  # touching it restarts the period
    clock.advance(DAY - 10)
    assert dev.get(f"/upload/{session['id']}").json["expires_at"] == "2026-11-28T23:59:50Z"
    clock.advance(10)
    assert_error(dev.get(f"/upload/{session['id']}", status=404), 404, "not_found")
    assert_error(send_chunk(dev, session["id"], 1, data, status=404), 404, "not_found")
    assert sweep(rt)["uploads"] == 1
    assert spool_files(rt) == []


# The janitor


def test_sweep_removes_orphan_spools_and_keeps_what_is_used(rt, dev, clock):
    """A spool file without a session goes; a blob file nothing names and
    nothing queued is left to ``check`` (the pass never lists the store)."""
    kept = content(100, seed=1)
    upload(dev, "kept.txt", kept)
    pending = content(CHUNK + 1, seed=2)
    session = start_upload(dev, "pending.bin", pending).json
    send_chunk(dev, session["id"], 0, pending)
    send_chunk(dev, session["id"], 1, pending)
    blobs.store_spool(rt.config, session["id"], sha256(pending))  # renamed, not committed
    orphan_spool = rt.config.path("spool", "ab" * 12)
    open(orphan_spool, "wb").close()
    orphan = content(10, seed=3)
    orphan_path = blobs.blob_path(rt.config, sha256(orphan))
    os.makedirs(os.path.dirname(orphan_path), exist_ok=True)
    with open(orphan_path, "wb") as f:
        f.write(orphan)
    assert sweep(rt) == {"uploads": 0, "blobs": 0}
    assert not os.path.exists(orphan_spool)
    assert os.path.exists(orphan_path)
    assert os.path.exists(blobs.blob_path(rt.config, sha256(pending)))
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert dev.get("/download/kept.txt").body == kept
    assert dev.get("/download/pending.bin").body == pending


def test_sweep_removes_the_blob_of_an_abandoned_completion(rt, dev, clock):
    data = content(CHUNK + 1)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    send_chunk(dev, session["id"], 1, data)
    blobs.store_spool(rt.config, session["id"], sha256(data))
    clock.advance(DAY)
    assert sweep(rt) == {"uploads": 1, "blobs": 1}
    assert count("uploads") == 0
    assert not os.path.exists(blobs.blob_path(rt.config, sha256(data)))


# Storage limits


def test_quota_exceeded_is_507_and_leaves_nothing(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock, quota=CHUNK * 3)
    held = content(CHUNK * 2, seed=1)
    upload(dev, "held.bin", held)
    open_one = start_upload(dev, "open.bin", content(CHUNK // 2, seed=2)).json
    resp = start_upload(dev, "big.bin", content(CHUNK // 2 + 1, seed=3), status=507)
    assert_error(resp, 507, "quota_exceeded")
    assert spool_files(rt) == [open_one["id"]]
    assert count("uploads") == 2  # the completed one and the open one
    # content already held costs nothing more
    assert start_upload(dev, "copy.bin", held).json["received"] == [0, 1]
    dev.delete(f"/upload/{open_one['id']}", status=204)
    start_upload(dev, "big.bin", content(CHUNK // 2 + 1, seed=3))


def test_a_file_larger_than_the_free_disk_is_507_and_leaves_nothing(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock, max_file_size="1024TiB")
    free = blobs.free_bytes(rt.config.path("spool"))
    body = dict(GOOD, size=free + 1024 ** 4)
    assert_error(dev.post("/upload", body, status=507), 507, "insufficient_storage")
    assert spool_files(rt) == []
    assert count("uploads") == 0


# With the library


def test_the_upload_required_flow_ends_in_the_feed(dev, device):
    data = content(CHUNK + 3)
    item = {"op": "put", "path": "docs/a.pdf", "sha256": sha256(data), "size": len(data),
            "mtime": 1600000000, "base_rev": None}
    result = dev.post("/report", {"changes": [item]}).json["results"][0]
    assert result["status"] == "upload_required"
    answer = upload(dev, "docs/a.pdf", data, mtime=1600000000)
    assert answer["status"] == "applied"
    change = dev.get("/changes").json["changes"][-1]
    assert change == {"path": "docs/a.pdf", "op": "put", "rev": answer["rev"],
                      "size": len(data), "sha256": sha256(data), "mtime": 1600000000,
                      "device_id": device["id"]}


def test_complete_on_a_path_changed_meanwhile_is_a_conflict(api, dev):
    ours = content(100, seed=1)
    theirs = content(100, seed=2)
    session = start_upload(dev, "a.txt", ours).json
    send_chunk(dev, session["id"], 0, ours)
    head = upload(dev, "a.txt", theirs)  # another version lands first
    answer = dev.post(f"/upload/{session['id']}/complete").json
    assert answer["status"] == "conflict"
    assert answer["rev"] == head["rev"]
    conflicts = api.get("/conflicts").json["conflicts"]
    assert [c["id"] for c in conflicts] == [answer["conflict_id"]]
    assert dev.post(f"/upload/{session['id']}/complete").json == answer
    assert dev.get("/download/a.txt").body == theirs


def test_the_blob_of_an_unresolved_conflict_survives_the_sweep(rt, dev, clock):
    ours = content(100, seed=1)
    session = start_upload(dev, "a.txt", ours).json
    send_chunk(dev, session["id"], 0, ours)
    upload(dev, "a.txt", content(100, seed=2))
    dev.post(f"/upload/{session['id']}/complete")
    clock.advance(DAY)
    sweep(rt)
    assert os.path.exists(blobs.blob_path(rt.config, sha256(ours)))


def test_sweep_removes_the_blob_of_a_deleted_file_without_history(rt, dev, clock, monkeypatch):
    monkeypatch.setattr(rt, "config", dataclasses.replace(rt.config, history_days=0))
    data = content(100)
    rev = upload(dev, "a.txt", data)["rev"]
    dev.post("/report", {"changes": [{"op": "delete", "path": "a.txt", "base_rev": rev}]})
    clock.advance(DAY)
    with database.connection_context():
        history.expire(rt)
    assert sweep(rt) == {"uploads": 1, "blobs": 1}
    assert not os.path.exists(blobs.blob_path(rt.config, sha256(data)))
    assert count("blobs") == 0


def test_a_reservation_the_filesystem_refuses_is_507_and_leaves_nothing(rt, dev):
    """posix_fallocate itself fails (EFBIG under a file size limit, the way
    ENOSPC does on a full disk): the spool file is removed again."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024 * 1024, hard))
    try:
        resp = dev.post("/upload", dict(GOOD, size=32 * 1024 * 1024), status=507)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert_error(resp, 507, "insufficient_storage")
    assert spool_files(rt) == []
    assert count("uploads") == 0


def test_another_users_device_id_is_403_on_every_session_call(testapp, rt, dev, device):
    """Bob with his own user token but alice's device in X-Device-Id."""
    data = content(CHUNK + 10)
    session = start_upload(dev, "a.bin", data).json
    send_chunk(dev, session["id"], 0, data)
    intruder = Api(testapp, auth.issue_user_token(rt, "bob"), device_id=device["id"])
    sid = session["id"]
    assert_error(intruder.get(f"/upload/{sid}", status=403), 403, "forbidden")
    assert_error(intruder.delete(f"/upload/{sid}", status=403), 403, "forbidden")
    assert_error(intruder.put(f"/upload/{sid}/chunks/1", raw=data[CHUNK:], status=403),
                 403, "forbidden")
    assert_error(intruder.post(f"/upload/{sid}/complete", status=403), 403, "forbidden")
    after = dev.get(f"/upload/{sid}").json
    assert after["received"] == [0] and after["state"] == "open"


def test_complete_after_the_received_bytes_are_lost_is_409(rt, dev):
    """The spool file vanished (a disk swapped, a hand clean-up): 409 upload_lost,
    and the library is not touched."""
    data = content(CHUNK + 10)
    session = start_upload(dev, "a.bin", data).json
    for index in range(session["chunk_count"]):
        send_chunk(dev, session["id"], index, data)
    os.unlink(blobs.spool_path(rt.config, session["id"]))
    assert_error(dev.post(f"/upload/{session['id']}/complete", status=409), 409, "upload_lost")
    assert dev.get("/changes").json["changes"] == []

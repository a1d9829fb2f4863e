"""A full disk (SPEC §6 v2): uploads never take the last --min-free bytes;
when the disk fills anyway every write is 507 insufficient_storage, never
500; reads keep working; DELETE /upload works; the server recovers by
itself. The real thing runs on a small tmpfs (mounting needs root; skipped
elsewhere); --min-free near the free space and RLIMIT_FSIZE need no root."""

import base64
import errno
import io
import os
import sqlite3
import subprocess

import pytest
import webtest

from sync import auth, blobs
from sync.config import Config
from sync.db import database
from sync.wsgi import create_app, open_runtime

from .helpers import (
    CHUNK,
    Api,
    Clock,
    Ids,
    assert_error,
    content,
    count,
    sha256,
    spool_files,
    upload,
)
from .helpers import start_upload as start

MIB = 1024 * 1024


def app_over(data_dir, clock=None, **settings):
    config = Config.build(data_dir=str(data_dir), access_log=False, **settings)
    rt = open_runtime(config, clock=clock or Clock(), idgen=Ids())
    api = Api(webtest.TestApp(create_app(rt)), auth.issue_user_token(rt, "alice"))
    device = api.post("/devices", {"name": "Laptop"}).json
    return rt, api, api.as_(device["token"]), device


def test_an_upload_that_would_eat_into_the_reserve_is_507(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    free = blobs.free_bytes(str(data_dir))
    reserve = free - 64 * MIB  # 64 MiB may be taken, give or take other programs
    rt, api, dev, _ = app_over(data_dir, min_free=reserve)
    resp = dev.post("/upload", {"path": "big.bin", "size": 128 * MIB, "sha256": "a" * 64,
                                "base_rev": None}, status=507)
    assert_error(resp, 507, "insufficient_storage")
    assert "keeps" in resp.json["description"]
    assert spool_files(rt) == [] and count("uploads") == 0
    # What fits beside the reserve is fine, and instant uploads take nothing.
    data = content(CHUNK)
    upload(dev, "small.bin", data)
    assert dev.post("/upload", {"path": "copy.bin", "size": CHUNK, "sha256": sha256(data),
                                "base_rev": None}).json["received"] == [0]


def test_the_default_reserve_is_one_gib(tmp_path):
    assert Config.build(data_dir=str(tmp_path)).min_free == 1024 ** 3


# -- a real full disk ----------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs, mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs",
                             str(mount)], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder):
    """Write a file until the disk is full; returns its path."""
    path = os.path.join(folder, "filler")
    block = b"\0" * MIB
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return path


def test_a_full_disk_is_507_for_writes_200_for_reads_and_heals(small_disk):
    clock = Clock()
    rt, api, dev, device = app_over(small_disk / "data", clock=clock, min_free=0)
    data = content(CHUNK + 10)
    upload(dev, "books/a.txt", data)
    session = start(dev, "open.bin", content(2 * CHUNK)).json
    held = dev.post("/report", {"changes": [{"op": "put", "path": "x.txt", "sha256": "b" * 64,
                                             "size": 1, "mtime": 0, "base_rev": None}]})
    # The WAL emptied, so that the next write needs new blocks.
    con = sqlite3.connect(rt.config.path("sync.sqlite3"))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    filler = fill(str(small_disk))
    clock.advance(120)  # every device is due for its last_seen_at

    refused = [
        dev.post("/upload", {"path": "new.bin", "size": CHUNK, "sha256": "c" * 64,
                             "base_rev": None}, status=507),
        dev.post("/report", {"changes": [{"op": "put", "path": "books/b.txt",
                                          "sha256": sha256(data), "size": len(data),
                                          "mtime": 1, "base_rev": None}]}, status=507),
        api.post("/devices", {"name": "Phone"}, status=507),
    ]
    for resp in refused:
        assert_error(resp, 507, "insufficient_storage")
    # A chunk into the reserved spool file may land; recording it may not.
    resp = dev.put(f"/upload/{session['id']}/chunks/0", raw=content(2 * CHUNK)[:CHUNK],
                   status="*")
    assert resp.status_int in (200, 507), resp
    # Reads keep working, the touch of a device that is due included.
    assert dev.get("/download/books/a.txt").body == data
    dev.get("/changes")
    dev.get("/conflicts")
    api.get("/devices")
    dev.get(f"/upload/{session['id']}")
    # The attacker's own session can be cancelled: its file is the room.
    dev.delete(f"/upload/{session['id']}", status=204)
    dev.get(f"/upload/{session['id']}", status=404)

    fill(str(small_disk))  # the room it freed is taken again by someone else
    os.unlink(filler)
    # Space is back: everything works again, without a restart.
    result = dev.post("/report", {"changes": [{"op": "put", "path": "books/b.txt",
                                               "sha256": sha256(data), "size": len(data),
                                               "mtime": 1, "base_rev": None}]}).json
    assert result["results"][0]["status"] == "applied"
    api.post("/devices", {"name": "Phone"})
    upload(dev, "books/c.txt", content(CHUNK, seed=9))
    assert held.json["results"][0]["status"] == "upload_required"


def test_a_reservation_that_fills_the_disk_exactly_is_507_not_500(small_disk):
    rt, api, dev, _ = app_over(small_disk / "data", min_free=0)
    free = blobs.free_bytes(str(small_disk))
    resp = dev.post("/upload", {"path": "all.bin", "size": free, "sha256": "d" * 64,
                                "base_rev": None}, status="*")
    assert resp.status_int in (200, 507), resp
    if resp.status_int == 200:  # it fit, to the byte: the next write meets a full disk
        other = api.post("/devices", {"name": "Tablet"}, status="*")
        assert other.status_int in (200, 507), other
        dev.delete(f"/upload/{resp.json['id']}", status=204)
    api.post("/devices", {"name": "Phone"})


# -- WebDAV on a full disk -------------------------------------------------------------

def dav_caller(api, device):
    """``call(method, path, body=b"", length=True, **headers)`` through /dav/ as
    ``device``; ``length=False`` sends the body without a Content-Length, as
    a chunked request reaches the app."""
    password = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    authorization = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    testapp = api.testapp

    def call(method, path, body=b"", length=True, **headers):
        request = webtest.TestRequest.blank(f"/dav/files/alice/{path}", method=method,
                                            headers={"Authorization": authorization, **headers})
        request.body = body
        if not length:
            request.body_file_raw = io.BytesIO(body)
            request.environ.pop("CONTENT_LENGTH", None)
        return testapp.do_request(request, status=None, expect_errors=True)
    return call


def library_state(rt, dev):
    """What a refused write must leave as it was: the feed, the folders
    WebDAV made, the blob files and the spool directory."""
    with database.connection_context():
        folders = database.execute_sql("SELECT path FROM dav_folders ORDER BY path").fetchall()
    return (dev.get("/changes").json["changes"], folders, sorted(blobs.blob_files(rt.config)),
            spool_files(rt))


def assert_507(what, resp):
    assert resp.status_int == 507, (what, resp.status, resp.body[:300])
    assert b"disk" in resp.body, (what, resp.body[:300])


def refill(folder, leave):
    """Fill the disk, then free ``leave`` bytes of the filler again."""
    path = fill(folder)
    os.truncate(path, os.path.getsize(path) - leave)
    return path


PROPERTY_UPDATE = (b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">'
                   b'<D:set><D:prop><Z:shelf>sf</Z:shelf></D:prop></D:set></D:propertyupdate>')


@pytest.mark.filterwarnings("ignore::webtest.lint.WSGIWarning")
def test_webdav_writes_on_a_full_disk_are_507_and_leave_nothing(small_disk):
    rt, api, dev, device = app_over(small_disk / "data", min_free=0)
    dav = dav_caller(api, device)
    data = content(CHUNK + 10)
    assert dav("PUT", "a.txt", data).status_int == 201
    assert dav("MKCOL", "books").status_int == 201
    con = sqlite3.connect(rt.config.path("sync.sqlite3"))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next write needs new blocks
    con.close()
    filler = fill(str(small_disk))
    before = library_state(rt, dev)

    copy_target = "http://localhost/dav/files/alice/books/a copy.txt"
    for what, resp in {
        "PUT": dav("PUT", "b.txt", content(3 * CHUNK, seed=2)),
        "PUT without a length": dav("PUT", "c.txt", content(CHUNK, seed=3), length=False),
        "PUT over a file": dav("PUT", "a.txt", content(CHUNK, seed=4)),
        "MKCOL": dav("MKCOL", "music"),
        "COPY": dav("COPY", "a.txt", Destination=copy_target),
    }.items():
        assert_507(what, resp)
    proppatch = dav("PROPPATCH", "a.txt", PROPERTY_UPDATE, **{"Content-Type": "application/xml"})
    assert proppatch.status_int == 207 and b"HTTP/1.1 507" in proppatch.body, proppatch.body
    assert library_state(rt, dev) == before
    # Reads keep working.
    assert dav("GET", "a.txt").body == data
    assert dav("PROPFIND", "", Depth="1").status_int == 207

    # Room for the body but not for the database: the body went into the
    # blob store, and is taken out again.
    os.unlink(filler)
    filler = refill(str(small_disk), leave=CHUNK)
    assert_507("PUT with room for the body only", dav("PUT", "d.txt", content(CHUNK, seed=5)))
    assert library_state(rt, dev) == before

    os.unlink(filler)  # space is back: no restart needed
    assert dav("PUT", "b.txt", content(3 * CHUNK, seed=2)).status_int == 201
    assert dav("PUT", "c.txt", content(CHUNK, seed=3), length=False).status_int == 201
    assert dav("MKCOL", "music").status_int == 201
    assert dav("COPY", "a.txt", Destination=copy_target).status_int == 201
    assert dav("GET", "books/a copy.txt").body == data
    proppatch = dav("PROPPATCH", "a.txt", PROPERTY_UPDATE, **{"Content-Type": "application/xml"})
    assert b"HTTP/1.1 200" in proppatch.body, proppatch.body
    assert dav("GET", "c.txt").body == content(CHUNK, seed=3)

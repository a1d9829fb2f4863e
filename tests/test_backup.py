"""``app.py backup`` beside a live server and ``app.py restore``: the copy is
consistent (no row without its blob), a restored database has a new id so
old cursors expire, and restore refuses to run under a server."""

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import webtest

from sync import auth, backup, blobs, cursors, datadir, errors, janitor
from sync.db import database, write
from sync.wsgi import create_app, open_runtime

from . import seed
from .helpers import Api, assert_error, run_app
from .helpers import sha256 as digest_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def content(i, size=3000):
    return (f"file {i} ".encode() * size)[:size]


@pytest.fixture
def live(rt):
    """A data directory with two users' files, a deletion, an unresolved
    conflict, an instant upload and an upload still receiving chunks."""
    for i in range(5):
        seed.put(rt, "alice", f"books/{i}.epub", content(i, 1000 * (i + 1)))
    seed.put(rt, "bob", "notes.txt", b"bob's notes")
    seed.put(rt, "alice", "gone.txt", b"deleted soon")
    seed.delete(rt, "alice", "gone.txt")
    client = seed.store_blob(rt.config, b"the client's side of a conflict")
    with database.connection_context(), write():
        database.execute_sql(
            "INSERT INTO devices (id, user_id, name, created_at) VALUES ('dev1', 1, 'Kobo', 'x')")
        database.execute_sql(
            "INSERT INTO conflicts (id, user_id, path, kind, created_at, client_op, "
            "client_sha256, client_size) VALUES ('c1', 1, 'books/0.epub', 'modify_modify', "
            "'x', 'put', ?, 31)", (client,))
        for upload_id, instant, sha256 in (("0123456789ab", 0, "0" * 64),
                                           ("ba9876543210", 1, seed.live_entries(rt.config)[
                                               ("alice", "books/1.epub")])):
            database.execute_sql(
                "INSERT INTO uploads (id, user_id, device_id, path, size, sha256, chunk_size, "
                "chunk_count, instant, created_at, touched_at) VALUES (?, 1, 'dev1', 'up', "
                "2000, ?, 262144, 1, ?, 'x', 'x')", (upload_id, sha256, instant))
        database.execute_sql(
            "INSERT INTO upload_chunks (upload_id, idx, size) VALUES ('0123456789ab', 0, 2000)")
    with open(blobs.spool_path(rt.config, "0123456789ab"), "wb") as f:
        f.write(b"\0" * 2000)
    seed.recount(rt.config)
    return rt


def same_bytes(config_a, config_b, sha256):
    with open(blobs.blob_path(config_a, sha256), "rb") as a, \
            open(blobs.blob_path(config_b, sha256), "rb") as b:
        return a.read() == b.read()


def rows(config, query):
    conn = datadir.open_existing(config.path("sync.sqlite3"), readonly=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_backup_of_a_live_data_dir(live, tmp_path):
    dest = seed.config_for(tmp_path / "backup")
    result = backup.backup(live.config, dest.data_dir)
    assert result["blobs"] == 8 and result["linked"] == 8 and result["copied"] == 0
    assert result["uploads_left_out"] == 1 and result["attempts"] == 1
    library = seed.live_entries(live.config)
    assert seed.live_entries(dest) == library and len(library) == 6
    for sha256 in set(library.values()):
        path = blobs.blob_path(dest, sha256)
        assert os.stat(path).st_ino == os.stat(blobs.blob_path(live.config, sha256)).st_ino
    conflict_blob = rows(dest, "SELECT client_sha256 FROM conflicts")[0][0]
    assert same_bytes(live.config, dest, conflict_blob)
    # The spooled session is left out with its chunks; the instant one stays.
    assert rows(dest, "SELECT id FROM uploads") == [("ba9876543210",)]
    assert rows(dest, "SELECT count(*) FROM upload_chunks") == [(0,)]
    assert os.listdir(dest.path("spool")) == []
    assert rows(dest, "PRAGMA journal_mode") == [("delete",)]
    assert seed.db_id(dest) != live.db_id
    assert os.stat(dest.path("secret.key")).st_mode & 0o777 == 0o600
    with open(dest.path("secret.key"), "rb") as f:
        assert f.read().strip() == live.secret
    assert sorted(os.listdir(dest.data_dir)) == ["blobs", "secret.key", "spool", "sync.sqlite3"]
    assert seed.run_check(dest)[0] == 0  # the backup is a sound data directory itself
    assert seed.run_check(live.config)[0] == 0  # and the live one is untouched


@pytest.fixture
def other_fs(live):
    """A directory on another filesystem than the data directory (a RAM disk)."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    root = tempfile.mkdtemp(dir="/dev/shm")
    try:
        if os.stat(root).st_dev == os.stat(live.config.data_dir).st_dev:
            pytest.skip("/dev/shm is on the same filesystem")
        yield root
    finally:
        shutil.rmtree(root)


def test_backup_to_another_filesystem_copies(live, other_fs):
    dest = seed.config_for(os.path.join(other_fs, "backup"))
    result = backup.backup(live.config, dest.data_dir)
    assert result["copied"] == 8 and result["linked"] == 0
    for sha256 in set(seed.live_entries(dest).values()):
        assert os.stat(blobs.blob_path(dest, sha256)).st_nlink == 1
        assert same_bytes(live.config, dest, sha256)
    assert seed.run_check(dest)[0] == 0


def test_a_blob_collected_after_the_snapshot_is_never_missing(live, tmp_path, monkeypatch):
    """The clean-up may remove a blob between the database snapshot and the
    blob pass (a newer write stopped using it; without history, the old
    content goes at once): the backup takes a newer snapshot instead of
    keeping a row without its file."""
    monkeypatch.setattr(live, "config", dataclasses.replace(live.config, history_days=0))
    snapshot = backup._snapshot
    old = seed.live_entries(live.config)[("alice", "books/2.epub")]
    collected = []

    def snapshot_then_overwrite(src, dst):
        left_out = snapshot(src, dst)
        if not collected:
            seed.put(live, "alice", "books/2.epub", b"rewritten after the snapshot")
            collected.extend(seed.collect_garbage(live))
        return left_out

    monkeypatch.setattr(backup, "_snapshot", snapshot_then_overwrite)
    dest = seed.config_for(tmp_path / "backup")
    result = backup.backup(live.config, dest.data_dir)
    assert old in collected and result["attempts"] == 2
    assert seed.live_entries(dest) == seed.live_entries(live.config)
    assert seed.live_entries(dest)[("alice", "books/2.epub")] != old
    for sha256 in collected:  # gone from the live directory, absent from the backup
        assert not os.path.exists(blobs.blob_path(dest, sha256))
    assert seed.run_check(dest)[0] == 0


def test_backup_during_a_stream_of_writes(rt, tmp_path):
    """Backups taken while another thread keeps replacing files and
    collecting the old content are each complete and exact."""
    seed.put(rt, "alice", "seed.txt", b"seed")
    stop = threading.Event()
    written = []

    def writer():
        for i in range(400):
            if stop.is_set():
                return
            seed.put(rt, "alice", f"f{i % 7}.txt", content(i, 5000 + i))
            written.append(i)
            if i % 5 == 4:
                seed.collect_garbage(rt)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        dests = []
        deadline = time.monotonic() + 20
        for n in range(3):
            while len(written) < 10 * (n + 1) and thread.is_alive():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            dest = seed.config_for(tmp_path / f"backup{n}")
            backup.backup(rt.config, dest.data_dir)
            dests.append(dest)
    finally:
        stop.set()
        thread.join(30)
    assert len(written) >= 30
    for dest in dests:
        library = seed.live_entries(dest)
        assert ("alice", "seed.txt") in library
        for sha256 in library.values():
            assert blobs.hash_file(blobs.blob_path(dest, sha256))[1] == sha256
        assert seed.run_check(dest)[0] == 0


def test_backup_refuses_a_bad_destination(live, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    with pytest.raises(datadir.DataDirError, match="not empty"):
        backup.backup(live.config, str(busy))
    with pytest.raises(datadir.DataDirError, match="inside the data directory"):
        backup.backup(live.config, live.config.path("backups"))
    assert not os.path.exists(live.config.path("backups"))
    result = run_app("backup", str(tmp_path / "b"), "--data-dir", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no database" in result.stderr


def test_backup_command(live, tmp_path):
    result = run_app("backup", str(tmp_path / "b"), "--data-dir", live.config.data_dir)
    assert result.returncode == 0, result.stderr
    assert "upload sessions in progress left out: 1" in result.stdout
    assert "8 hard-linked" in result.stdout
    assert seed.live_entries(seed.config_for(tmp_path / "b")) == seed.live_entries(live.config)


@pytest.fixture
def saved(live, tmp_path):
    """A backup of ``live`` and the cursor a device held when it was taken."""
    dest = seed.config_for(tmp_path / "backup")
    backup.backup(live.config, dest.data_dir)
    with database.connection_context():
        rev = int(database.execute_sql("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0])
    return dest, cursors.encode(live.db_id, rev)


def test_restore_into_a_new_data_dir(live, saved, tmp_path, clock):
    dest, cursor = saved
    target = seed.config_for(tmp_path / "restored")
    result = backup.restore(target, dest.data_dir)
    assert result["blobs"] == 8 and result["linked"] == 8
    assert seed.live_entries(target) == seed.live_entries(live.config)
    for sha256 in set(seed.live_entries(target).values()):
        assert same_bytes(live.config, target, sha256)
    restored = open_runtime(target, clock=clock)
    assert restored.db_id not in (live.db_id, seed.db_id(dest))
    assert restored.secret == live.secret  # tokens issued before stay valid
    with pytest.raises(errors.SyncError) as exc:
        cursors.decode(restored.db_id, cursor)
    assert exc.value.code == errors.CURSOR_EXPIRED
    assert seed.run_check(target)[0] == 0


def test_restore_refuses_a_non_empty_data_dir_unless_forced(live, saved):
    dest, _ = saved
    seed.put(live, "alice", "after-the-backup.txt", b"newer than the backup")
    before = seed.live_entries(live.config)
    with pytest.raises(datadir.DataDirError, match="not empty; add --force"):
        backup.restore(live.config, dest.data_dir)
    assert seed.live_entries(live.config) == before and seed.db_id(live.config) == live.db_id

    backup.restore(live.config, dest.data_dir, force=True)
    assert seed.live_entries(live.config) == seed.live_entries(dest)
    assert ("alice", "after-the-backup.txt") not in seed.live_entries(live.config)
    assert seed.db_id(live.config) not in (live.db_id, seed.db_id(dest))
    assert seed.run_check(live.config)[0] == 0
    assert seed.live_entries(dest) != before  # the backup itself is left as it was


def test_restore_refuses_while_a_server_holds_the_data_dir(live, saved):
    dest, _ = saved
    lock = datadir.lock_data_dir(live.config)
    try:
        with pytest.raises(datadir.DataDirError, match="stop it first"):
            backup.restore(live.config, dest.data_dir, force=True)
    finally:
        os.close(lock)
    assert seed.db_id(live.config) == live.db_id


def test_restore_refuses_a_broken_or_newer_backup(saved, tmp_path):
    dest, _ = saved
    target = seed.config_for(tmp_path / "restored")
    sha256 = seed.live_entries(dest)[("alice", "books/3.epub")]
    os.rename(blobs.blob_path(dest, sha256), str(tmp_path / "aside"))
    with pytest.raises(datadir.DataDirError, match=f"incomplete: blob {sha256} is missing"):
        backup.restore(target, dest.data_dir)
    assert not os.path.exists(target.data_dir)
    os.rename(str(tmp_path / "aside"), blobs.blob_path(dest, sha256))

    conn = sqlite3.connect(dest.path("sync.sqlite3"), isolation_level=None)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(datadir.DataDirError, match="newer version"):
        backup.restore(target, dest.data_dir)
    assert not os.path.exists(target.data_dir)


def test_restore_command_refuses_under_a_running_server(saved, tmp_path):
    dest, _ = saved
    data = tmp_path / "served"
    server = subprocess.Popen(
        [sys.executable, "app.py", "--data-dir", str(data), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "listening" in server.stdout.readline()
        result = run_app("restore", dest.data_dir, "--force", "--data-dir", str(data))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"a server (pid {server.pid}) is using" in result.stderr
    finally:
        server.terminate()
        server.wait(10)
    result = run_app("restore", dest.data_dir, "--force", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert "new database id" in result.stdout


def test_link_dest_reuses_the_blobs_of_an_earlier_backup(live, other_fs):
    root = other_fs
    first = seed.config_for(os.path.join(root, "first"))
    assert backup.backup(live.config, first.data_dir)["copied"] == 8
    seed.put(live, "alice", "new.txt", b"written after the first backup")
    new = digest_of(b"written after the first backup")
    second = seed.config_for(os.path.join(root, "second"))
    result = backup.backup(live.config, second.data_dir, link_dest=first.data_dir)
    assert result["reused"] == 8 and result["copied"] == 1
    for sha256 in set(seed.live_entries(first).values()):
        assert os.stat(blobs.blob_path(first, sha256)).st_ino == \
            os.stat(blobs.blob_path(second, sha256)).st_ino
    assert same_bytes(live.config, second, new)
    assert seed.live_entries(second) == seed.live_entries(live.config)
    with pytest.raises(datadir.DataDirError, match="not on the filesystem"):
        backup.backup(live.config, os.path.join(root, "third"),
                      link_dest=live.config.data_dir)


def test_the_nightly_backup_script(live, tmp_path):
    """docs/deploy/sync-backup.sh: a new dated backup linked to the newest
    earlier one, then only the newest KEEP kept."""
    root = tmp_path / "backups"
    earlier = root / "2000-01-01T000000Z"
    backup.backup(live.config, str(earlier))
    result = subprocess.run(
        ["sh", os.path.join(ROOT, "docs", "deploy", "sync-backup.sh"), str(root), "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, SYNC_DATA_DIR=live.config.data_dir, PYTHON=sys.executable))
    assert result.returncode == 0, result.stderr
    assert "8 linked from the earlier backup" in result.stdout
    [kept] = os.listdir(root)
    assert kept > earlier.name
    assert seed.live_entries(seed.config_for(root / kept)) == seed.live_entries(live.config)


CHUNK = 256 * 1024


def http_upload(dev, path, data, base_rev, chunks=None):
    """Upload ``data`` through the API (``chunks``: send only that many).
    Returns the session and, when completed, complete's answer."""
    session = dev.post("/upload", {"path": path, "size": len(data), "sha256": digest_of(data),
                                   "base_rev": base_rev, "mtime": 1, "chunk_size": CHUNK}).json
    for index in range(session["chunk_count"] if chunks is None else chunks):
        dev.put(f"/upload/{session['id']}/chunks/{index}",
                raw=data[index * CHUNK:(index + 1) * CHUNK])
    if chunks is not None:
        return session, None
    return session, dev.post(f"/upload/{session['id']}/complete").json


def library_over_http(dev):
    """{path: sha256} of the live entries, read through the feed page by page."""
    found, cursor = {}, None
    for _ in range(100):
        page = dev.get("/changes?limit=7" + (f"&cursor={cursor}" if cursor else "")).json
        for change in page["changes"]:
            if change["op"] == "put":
                found[change["path"]] = change["sha256"]
            else:
                found.pop(change["path"], None)
        cursor = page["cursor"]
        if not page["has_more"]:
            return found
    raise AssertionError("the feed never ended")


def test_backup_during_uploads_then_restore(rt, tmp_path):
    """Back up while a device uploads through the HTTP API and the clean-up
    collects replaced content; restore the last backup into a new data
    directory: every entry downloads with its exact bytes, the device's
    token still works, and its old cursor is cursor_expired."""
    api = Api(webtest.TestApp(create_app(rt)), auth.issue_user_token(rt, "alice"))
    device = api.post("/devices", {"name": "Laptop", "platform": "linux"}).json
    dev = api.as_(device["token"])
    pending, _ = http_upload(dev, "half.bin", content(99, 2 * CHUNK), None, chunks=1)
    sent, done, stop = {}, [], threading.Event()

    def uploader():
        http = Api(webtest.TestApp(create_app(rt)), device["token"])
        revs = {}
        for i in range(60):
            if stop.is_set():
                return
            path = f"books/{i % 5}.epub"
            data = content(i, CHUNK + 1000 * i)  # two chunks
            sent.setdefault(path, {})[digest_of(data)] = data
            _, result = http_upload(http, path, data, revs.get(path))
            assert result["status"] == "applied", result
            revs[path] = result["rev"]
            done.append(i)
            if i % 3 == 2:
                janitor.run_once(rt)  # collects the content just replaced

    thread = threading.Thread(target=uploader)
    thread.start()
    try:
        dests, deadline = [], time.monotonic() + 60
        for n in range(3):
            while len(done) < 6 * (n + 1) and thread.is_alive():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            dest = seed.config_for(tmp_path / f"backup{n}")
            assert backup.backup(rt.config, dest.data_dir)["uploads_left_out"] >= 1
            dests.append(dest)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive() and len(done) >= 18
    old_cursor = dev.get("/changes").json["cursor"]
    for dest in dests:
        assert seed.run_check(dest)[0] == 0

    target = seed.config_for(tmp_path / "restored")
    backup.restore(target, dests[-1].data_dir)
    restored = open_runtime(target)
    new = Api(webtest.TestApp(create_app(restored)), device["token"])
    assert new.get(f"/devices/{device['id']}").json["name"] == "Laptop"
    assert_error(new.get(f"/changes?cursor={old_cursor}", status=400), 400,
                 errors.CURSOR_EXPIRED)
    # The session still receiving chunks was left out: the device starts again.
    assert_error(new.get(f"/upload/{pending['id']}", status=404), 404, errors.NOT_FOUND)
    entries = library_over_http(new)
    assert len(entries) == 5
    for path, digest in entries.items():
        body = new.get(f"/download/{path}").body
        assert digest_of(body) == digest and body == sent[path][digest]

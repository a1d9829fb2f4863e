"""Seeding a data directory without HTTP, the way the server writes it: a
blob file is fsync-renamed into place before the row that names it commits,
and the library changes through ``sync.library`` (the path an upload's
completion takes); users with a password for the web page. Also reading a
data directory back for the assertions of the backup, restore and check
tests."""

import os
import sqlite3

from sync import auth, blobs, check, counts, datadir, janitor, library
from sync.config import Config
from sync.db import database, write
from sync.models import Device

from .helpers import PASSWORD, sha256

HEAD = object()  # base_rev: the rev of the path's live head, whatever it is now
V1_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "schema-v1.sql")


def oldest(tmp_path):
    """A database at the oldest schema (1, as version 1 of the server wrote
    it), with a user and a device in it; returns its path."""
    path = str(tmp_path / "sync.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    with open(V1_SCHEMA, encoding="utf-8") as f:
        conn.executescript(f.read())
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO meta (key, value) VALUES ('db_id', 'feedc0de'), ('rev', '0')")
    conn.execute("INSERT INTO users (name, created_at) VALUES ('alice', 'x')")
    conn.execute("INSERT INTO devices (id, user_id, name, created_at) "
                 "VALUES ('d1', 1, 'Kobo', 'x')")
    conn.close()
    return path


def store_blob(config, data):
    """Write ``data`` to ``blobs/ab/<sha256>`` (temporary name, fsync,
    rename) and return its sha256."""
    digest = sha256(data)
    path = blobs.blob_path(config, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return digest


def add_user(rt, name, password=PASSWORD):
    """A user who can log in to the web page."""
    with database.connection_context():
        auth.add_user(rt, name, password)


def user_id(rt, name):
    """The id of user ``name`` (created when new)."""
    with database.connection_context():
        return auth.ensure_user(rt, name).id


def _blob_row(rt, digest, size):
    """The row of a blob file already in place (inside the write transaction)."""
    database.execute_sql(
        "INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)",
        (digest, size, rt.now()))


def head_rev(user_id, path):
    row = database.execute_sql(
        "SELECT rev FROM entries WHERE user_id = ? AND path = ? AND deleted = 0",
        (user_id, path)).fetchone()
    return row[0] if row else None


def _caller(rt, who):
    """(user id, device id) of ``who``: a device JSON record, or a user name
    (created when new) acting without a device."""
    if isinstance(who, str):
        return auth.ensure_user(rt, who).id, None
    return Device.get_by_id(who["id"]).user_id, who["id"]


def put(rt, who, path, data=b"content", base_rev=HEAD, mtime=1700000000):
    """Put ``data`` at ``path`` as a completed upload does: the blob file,
    then in one transaction its row and ``library.apply_put``. ``who`` is a
    device JSON record or a user name; ``base_rev`` defaults to the rev of
    the path's head (the put then applies, or is unchanged). Returns
    apply_put's answer."""
    with database.connection_context():
        user_id, device_id = _caller(rt, who)
        digest = store_blob(rt.config, data)
        with write():
            if base_rev is HEAD:
                base_rev = head_rev(user_id, path)
            _blob_row(rt, digest, len(data))
            return library.apply_put(rt, user_id, device_id, path, digest, len(data), mtime,
                                     base_rev)


def put_files(rt, name, files, device_id=None):
    """Files (path -> bytes) in ``name``'s library, each put as ``put`` does
    (by the device ``device_id`` if given), with mtime 0."""
    for path, data in files.items():
        put(rt, {"id": device_id} if device_id else name, path, data, mtime=0)


def put_many(rt, name, paths, data=b"x"):
    """Many new paths of the same content in one transaction (for listings)."""
    digest = store_blob(rt.config, data)
    with database.connection_context():
        uid = auth.ensure_user(rt, name).id
        with write():
            _blob_row(rt, digest, len(data))
            for path in paths:
                library.apply_put(rt, uid, None, path, digest, len(data), 1700000000, None)


def delete(rt, who, path):
    """Delete ``path`` through a report, leaving a tombstone."""
    with database.connection_context():
        user_id, device_id = _caller(rt, who)
        result = library.report(rt, user_id, device_id, {"changes": [
            {"op": "delete", "path": path, "base_rev": head_rev(user_id, path)}]})
    assert result["results"][0]["status"] == "applied", result


def collect_garbage(rt):
    """Run the clean-up (``sync.janitor``); returns the sha256s of the blob
    files it removed."""
    before = set(blobs.blob_files(rt.config))
    janitor.run_once(rt)
    return sorted(before - set(blobs.blob_files(rt.config)))


def live_entries(config):
    """``{(user, path): sha256}`` of the live entries of the database in ``config``."""
    conn = datadir.open_existing(config.path(datadir.DB_NAME), readonly=True)
    try:
        return {(user, path): sha256 for user, path, sha256 in conn.execute(
            "SELECT users.name, path, sha256 FROM entries JOIN users ON users.id = user_id "
            "WHERE deleted = 0")}
    finally:
        conn.close()


def db_id(config):
    conn = datadir.open_existing(config.path(datadir.DB_NAME), readonly=True)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'db_id'").fetchone()[0]
    finally:
        conn.close()


def config_for(path):
    return Config.build(data_dir=str(path), access_log=False)


def run_check(config, repair=False):
    """``sync.check.check`` with its findings captured: (problems, lines)."""
    lines = []
    problems = check.check(config, repair=repair, out=lines.append)
    return problems, lines


def recount(config):
    """Rewrite the maintained counts from the tables, as the server would
    have kept them, after a test wrote rows directly."""
    conn = datadir.open_existing(config.path(datadir.DB_NAME))
    try:
        check.with_transaction(conn, [(statement, ()) for statement in counts.REWRITE])
    finally:
        conn.close()

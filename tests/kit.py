"""Seeding a data directory the way the server writes it, for the tests of
backup, restore and check: a blob file is fsync-renamed into place before
the row that names it commits, and the library changes through
``sync.library``."""

import hashlib
import os

from sync import auth, blobs, check, counts, datadir, janitor
from sync import library as engine
from sync.config import Config
from sync.db import database, write


def store_blob(config, data):
    """Write ``data`` to ``blobs/ab/<sha256>`` (temporary name, fsync,
    rename) and return its sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    path = blobs.blob_path(config, sha256)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return sha256


def head_rev(user_id, path):
    row = database.execute_sql(
        "SELECT rev FROM entries WHERE user_id = ? AND path = ? AND deleted = 0",
        (user_id, path)).fetchone()
    return row[0] if row else None


def put(rt, user, path, data, device_id=None):
    """Store ``data`` at ``path`` in ``user``'s library as a new revision,
    as a completed upload does: blob file, then in one transaction its row
    and ``library.apply_put``. Returns the sha256."""
    with database.connection_context():
        user_id = auth.ensure_user(rt, user).id
        sha256 = store_blob(rt.config, data)
        with write():
            database.execute_sql(
                "INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)",
                (sha256, len(data), rt.now()))
            result = engine.apply_put(rt, user_id, device_id, path, sha256, len(data), 0,
                                       head_rev(user_id, path))
    assert result["status"] in ("applied", "unchanged"), result
    return sha256


def delete(rt, user, path):
    """Delete ``path`` through a report, leaving a tombstone."""
    with database.connection_context():
        user_id = auth.ensure_user(rt, user).id
        result = engine.report(rt, user_id, None, {"changes": [
            {"op": "delete", "path": path, "base_rev": head_rev(user_id, path)}]})
    assert result["results"][0]["status"] == "applied", result


def collect_garbage(rt):
    """Run the clean-up (``sync.janitor``); returns the sha256s of the blob
    files it removed."""
    before = set(blobs.blob_files(rt.config))
    janitor.run_once(rt)
    return sorted(before - set(blobs.blob_files(rt.config)))


def library(config):
    """``{(user, path): sha256}`` of the live entries of the database in ``config``."""
    conn = datadir.open_existing(config.path("sync.sqlite3"), readonly=True)
    try:
        return {(user, path): sha256 for user, path, sha256 in conn.execute(
            "SELECT users.name, path, sha256 FROM entries JOIN users ON users.id = user_id "
            "WHERE deleted = 0")}
    finally:
        conn.close()


def db_id(config):
    conn = datadir.open_existing(config.path("sync.sqlite3"), readonly=True)
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
    conn = datadir.open_existing(config.path("sync.sqlite3"))
    try:
        check.with_transaction(conn, [(statement, ()) for statement in counts.REWRITE])
    finally:
        conn.close()

"""Seeding a data directory the way the server writes it, for the tests of
backup, restore and check: a blob file is fsync-renamed into place before
the row that names it commits."""

import hashlib
import os

from sync import auth, backup, blobs
from sync.config import Config
from sync.db import database, next_revs, write


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


def put(rt, user, path, data, device_id=None):
    """Store ``data`` at ``path`` in ``user``'s library as a new revision.
    Returns the sha256."""
    with database.connection_context():
        user_id = auth.ensure_user(rt, user).id
        sha256 = store_blob(rt.config, data)
        with write():
            database.execute_sql(
                "INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)",
                (sha256, len(data), rt.now()))
            rev = next_revs()
            database.execute_sql(
                "INSERT INTO entries (user_id, path, fold, rev, deleted, size, sha256, mtime, "
                "device_id, changed_at) VALUES (?, ?, ?, ?, 0, ?, ?, 0, ?, ?) "
                "ON CONFLICT (user_id, path) DO UPDATE SET rev = excluded.rev, deleted = 0, "
                "size = excluded.size, sha256 = excluded.sha256, changed_at = excluded.changed_at",
                (user_id, path, path.casefold(), rev, len(data), sha256, device_id, rt.now()))
    return sha256


def delete(rt, user, path):
    """Turn ``path`` into a tombstone."""
    with database.connection_context(), write():
        database.execute_sql(
            "UPDATE entries SET deleted = 1, size = NULL, sha256 = NULL, mtime = NULL, rev = ? "
            "WHERE path = ? AND user_id = (SELECT id FROM users WHERE name = ?)",
            (next_revs(), path, user))


def collect_garbage(rt):
    """Remove blobs no row names any more, row first, then file (as the
    clean-up does). Returns the sha256s removed."""
    with database.connection_context():
        with write():
            names = backup.referenced(database.connection())
            unused = [sha for sha, ref in names.items() if ref["tables"] == {"blobs"}]
            for sha256 in unused:
                database.execute_sql("DELETE FROM blobs WHERE sha256 = ?", (sha256,))
    for sha256 in unused:
        os.unlink(blobs.blob_path(rt.config, sha256))
    return unused


def library(config):
    """``{(user, path): sha256}`` of the live entries of the database in ``config``."""
    conn = backup.open_existing(config.path("sync.sqlite3"), readonly=True)
    try:
        return {(user, path): sha256 for user, path, sha256 in conn.execute(
            "SELECT users.name, path, sha256 FROM entries JOIN users ON users.id = user_id "
            "WHERE deleted = 0")}
    finally:
        conn.close()


def db_id(config):
    conn = backup.open_existing(config.path("sync.sqlite3"), readonly=True)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'db_id'").fetchone()[0]
    finally:
        conn.close()


def config_for(path):
    return Config.build(data_dir=str(path), access_log=False)


def run_check(config, repair=False):
    """``backup.check`` with its report captured: (problems, lines)."""
    lines = []
    problems = backup.check(config, repair=repair, out=lines.append)
    return problems, lines

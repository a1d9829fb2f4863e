"""Schema migrations: ordered steps that bring an older database file up to
the schema this server knows.

A database records its schema version in ``PRAGMA user_version``; a new one
is created from ``schema.sql`` at ``SCHEMA_VERSION`` (see ``sync.db``).
``STEPS`` lists one ``Step`` per later version, in order: step N upgrades a
version N-1 database to version N. ``upgrade`` first copies the file through
SQLite's online backup API to ``<database>.v<old>.bak``, then applies every
pending step and the new ``user_version`` in ONE transaction, so a failing
step leaves the database exactly at its old version. Foreign-key enforcement
is off during the steps (a step may rebuild a table the way SQLite documents)
and ``PRAGMA foreign_key_check`` must pass before the commit.

To change the schema: edit ``schema.sql`` and ``sync/models.py``, raise
``sync.db.SCHEMA_VERSION`` and append the step that turns the previous
version into the new one (``Step(2, "why", sql("ALTER TABLE ..."))``).
"""

import os
import sqlite3
from collections import namedtuple

from .fsutil import fsync_path

Step = namedtuple("Step", "version description apply")
Step.__doc__ = """One upgrade: ``apply(conn)`` turns version ``version - 1`` into
``version``; it runs inside the migration transaction and must not commit."""

class MigrationError(Exception):
    """A migration step failed; the database is still at its old version."""


def sql(script):
    """A step body that runs the statements of ``script`` one by one
    (``executescript`` would commit the migration transaction)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]!r}")

    def apply(conn):
        for statement in statements:
            conn.execute(statement)
    return apply


_WEBDAV = """
ALTER TABLE devices ADD COLUMN app_password_hash TEXT;
CREATE UNIQUE INDEX devices_app_password ON devices (app_password_hash);
CREATE TABLE dav_folders (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, path)
) WITHOUT ROWID;
CREATE TABLE dav_properties (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path    TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (user_id, path, name)
) WITHOUT ROWID;
"""

# -- history (schema 3) --------------------------------------------------------
# The DDL as it was when schema 3 was made (schema.sql moves on; a step does not).
_REVISIONS_V3 = """
CREATE TABLE revisions (
    rev         INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    size        INTEGER,
    sha256      TEXT,
    mtime       INTEGER,
    device_id   TEXT,
    moved_from  TEXT,
    moved_to    TEXT,
    changed_at  TEXT NOT NULL,
    replaced_at TEXT
);
CREATE INDEX revisions_user_path ON revisions (user_id, path, rev);
CREATE INDEX revisions_sha256 ON revisions (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX revisions_aging ON revisions (COALESCE(replaced_at, changed_at))
    WHERE replaced_at IS NOT NULL OR deleted = 1;
CREATE INDEX revisions_trash ON revisions (user_id, rev)
    WHERE deleted = 1 AND replaced_at IS NULL;
-- Nothing older was kept: each live entry's head becomes its first revision.
INSERT INTO revisions (rev, user_id, path, deleted, size, sha256, mtime, device_id,
                       moved_from, changed_at)
    SELECT rev, user_id, path, 0, size, sha256, mtime, device_id, moved_from, changed_at
    FROM entries WHERE deleted = 0;
"""

# -- schema 4: maintained counts and the clean-up queue -----------------------

def _counts_step(conn):
    """Figures that requests used to count are kept as changes commit (filled
    here by a recount); the clean-up works from a queue of content that may
    have lost its last reference, so every blob of the old database is
    queued once."""
    sql("""
CREATE TABLE user_counts (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    entries INTEGER NOT NULL DEFAULT 0,
    bytes   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE device_counts (
    device_id     TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    acked_entries INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE blob_queue (
    sha256    TEXT PRIMARY KEY,
    queued_at TEXT NOT NULL
) WITHOUT ROWID;
DROP INDEX IF EXISTS entries_user_sha256;
CREATE INDEX entries_sha256 ON entries (sha256, user_id);
CREATE INDEX entries_tombstones ON entries (user_id, rev) WHERE deleted = 1;
CREATE INDEX conflicts_client_sha256 ON conflicts (client_sha256, user_id)
    WHERE resolved_at IS NULL;
CREATE INDEX conflicts_server_sha256 ON conflicts (server_sha256) WHERE resolved_at IS NULL;
CREATE INDEX uploads_open ON uploads (user_id) WHERE state = 'open';
CREATE INDEX uploads_sha256 ON uploads (sha256);
INSERT INTO blob_queue (sha256, queued_at) SELECT sha256, created_at FROM blobs;
INSERT INTO user_counts (user_id, entries, bytes)
    SELECT u.id, (SELECT COUNT(*) FROM entries e WHERE e.user_id = u.id),
           (SELECT COALESCE(SUM(size), 0) FROM (
                SELECT sha256, size FROM entries WHERE user_id = u.id AND deleted = 0
                AND sha256 IS NOT NULL
                UNION SELECT client_sha256, client_size FROM conflicts WHERE user_id = u.id
                AND resolved_at IS NULL AND client_sha256 IS NOT NULL))
    FROM users u;
INSERT INTO device_counts (device_id, acked_entries)
    SELECT d.id, (SELECT COUNT(*) FROM entries e WHERE e.user_id = d.user_id
                  AND e.rev <= d.acked_rev) FROM devices d;
""")(conn)


_WEB_PAGE = """
CREATE TABLE IF NOT EXISTS web_sessions (
    id         TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    flash      TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user_id);
CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions (expires_at);
CREATE TABLE IF NOT EXISTS web_devices (
    user_id   INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL UNIQUE REFERENCES devices (id) ON DELETE CASCADE
);
"""


# -- schema 6: user revoke ------------------------------------------------------
_REVOKE = """
ALTER TABLE users ADD COLUMN tokens_revoked_at REAL;
"""

# -- schema 7: the overview's figures, maintained ---------------------------------
_OVERVIEW_COUNTS = """
ALTER TABLE user_counts ADD COLUMN files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_counts ADD COLUMN open_conflicts INTEGER NOT NULL DEFAULT 0;
INSERT OR IGNORE INTO user_counts (user_id)
    SELECT user_id FROM entries WHERE deleted = 0
    UNION SELECT user_id FROM conflicts WHERE resolved_at IS NULL;
UPDATE user_counts SET
    files = (SELECT COUNT(*) FROM entries e
              WHERE e.user_id = user_counts.user_id AND e.deleted = 0),
    open_conflicts = (SELECT COUNT(*) FROM conflicts c
                       WHERE c.user_id = user_counts.user_id AND c.resolved_at IS NULL);
"""

STEPS = (
    Step(2, "WebDAV: app passwords, empty folders, dead properties", sql(_WEBDAV)),
    Step(3, "history: the revisions of every path", sql(_REVISIONS_V3)),
    Step(4, "maintained counts and the clean-up queue", _counts_step),
    Step(5, "web page sessions and the web page's device", sql(_WEB_PAGE)),
    Step(6, "user revoke: user tokens issued before a moment are refused", sql(_REVOKE)),
    Step(7, "the web page's overview: live files and open conflicts counted as they change",
         sql(_OVERVIEW_COUNTS)),
)


def latest(steps, base):
    """The version a database reaches through ``steps`` from ``base``."""
    return max([base] + [step.version for step in steps])


def check_steps(steps, base):
    """The steps must follow ``base`` one version at a time."""
    for expected, step in enumerate(steps, start=base + 1):
        if step.version != expected:
            raise ValueError(f"migration steps out of order: expected version "
                             f"{expected}, found {step.version}")


def backup_path(path, version):
    return f"{path}.v{version}.bak"


def copy_database(conn, target_path, fsync=True):
    """A consistent copy of the open database ``conn`` at ``target_path``
    through the online backup API, written under a temporary name and renamed
    into place, as one self-contained file (rollback journal, not WAL)."""
    tmp = target_path + ".tmp"
    for leftover in (tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    target = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.backup(target)
        target.execute("PRAGMA journal_mode = DELETE")
    finally:
        target.close()
    if fsync:
        fsync_path(tmp)
    os.replace(tmp, target_path)
    if fsync:
        fsync_path(os.path.dirname(os.path.abspath(target_path)))


def upgrade(conn, path, steps=STEPS, fsync=True):
    """Apply the steps newer than the database's ``user_version``.

    ``conn`` is an open sqlite3 connection to ``path`` in autocommit mode with
    no transaction open. Returns ``(old_version, new_version)``. Raises
    ``MigrationError`` (database unchanged, backup kept) when a step fails.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    pending = [step for step in steps if step.version > version]
    if not pending:
        return version, version
    check_steps(pending, version)
    copy_database(conn, backup_path(path, version), fsync=fsync)
    foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for step in pending:
                try:
                    step.apply(conn)
                except Exception as exc:
                    raise MigrationError(
                        f"migrating {path} to schema {step.version} ({step.description}) "
                        f"failed: {exc}. The database is unchanged at schema {version}; "
                        f"a copy taken before is at {backup_path(path, version)}") from exc
            violations = conn.execute("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise MigrationError(
                    f"migrating {path} to schema {pending[-1].version} broke "
                    f"{len(violations)} foreign key(s) (first: {violations[0]}). The "
                    f"database is unchanged at schema {version}")
            conn.execute(f"PRAGMA user_version = {int(pending[-1].version)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")
    return version, pending[-1].version

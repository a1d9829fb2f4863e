"""Keeping a data directory for years: ``backup`` and ``restore``.

``restore`` takes the data directory's lock (``sync.datadir``) and refuses
while a server holds it. ``backup`` runs beside a live server: it copies the
database through SQLite's online backup API (one consistent snapshot), then
the blobs that snapshot references, so the copy never has a row without its
file. Upload sessions still receiving chunks are left out (their spool files
are not copied; the devices start those uploads again), and the copy gets a
new database id, as a restored database does, so that no client cursor is
ever accepted by a database with another history.
"""

import errno
import os
import secrets
import shutil
import sqlite3

from . import blobs, migrations
from .datadir import (
    BLOBS_DIR,
    DB_NAME,
    LOCK_NAME,
    SECRET_NAME,
    SPOOL_DIR,
    DataDirError,
    lock_data_dir,
    open_existing,
)
from .db import SCHEMA_VERSION
from .fsutil import fsync_path
from .references import MENTIONS_SQL, REVISION_MENTIONS_SQL

SNAPSHOT_ATTEMPTS = 5
BLOCK = 1024 * 1024

# Sessions whose bytes live in a spool file.
SPOOLED_SESSIONS = "SELECT id FROM uploads WHERE state = 'open' AND instant = 0"
# Content an open session may already have moved into blobs/ before the
# completion's transaction commits (or before a crash cut it short): not an
# orphan, but not required either.
COMPLETING = "SELECT sha256 FROM uploads WHERE state = 'open' AND instant = 0"
# A backup's copy of the database keeps no session that needs a spool file,
# and gets a database id of its own.
DROP_SESSION_CHUNKS_SQL = "DELETE FROM upload_chunks WHERE upload_id = :id"
DROP_SESSION_SQL = "DELETE FROM uploads WHERE id = :id"
SET_DB_ID_SQL = "UPDATE meta SET value = :db_id WHERE key = 'db_id'"
DB_ID_SQL = "SELECT value FROM meta WHERE key = 'db_id'"
# Whether the database has a history (schema 5 on).
HAS_REVISIONS_SQL = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'revisions'"
# ``{mentions}``: the rows that name content (``_mentions``).
REFERENCED_SIZES_SQL = """
    SELECT m.sha256, MIN(m.size), MAX(m.size) FROM ({mentions}) AS m GROUP BY m.sha256
"""


# -- shared helpers -----------------------------------------------------------

def _mentions(conn):
    """``references.MENTIONS_SQL`` for the tables the database ``conn`` has."""
    has_history = conn.execute(HAS_REVISIONS_SQL).fetchone()
    return MENTIONS_SQL + (REVISION_MENTIONS_SQL if has_history else "")


def referenced(conn):
    """``{sha256: size}`` for every blob a row of ``conn`` names; the size is
    None when the rows disagree on it. SQLite does the grouping, so memory
    holds one small entry per blob, not one per row."""
    return {sha256: (low if low == high else None) for sha256, low, high in conn.execute(
        REFERENCED_SIZES_SQL.format(mentions=_mentions(conn)))}


def _blob_rel(sha256):
    return os.path.join(BLOBS_DIR, sha256[:2], sha256)


def _place(src, dst, link, fsync):
    """Put the file ``src`` at ``dst`` (a hard link if ``link``, else a copy
    written under a temporary name and renamed). Returns ``"linked"`` or
    ``"copied"``. Raises ``FileNotFoundError`` when ``src`` is gone."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return "linked"
        except FileExistsError:
            os.unlink(dst)
            os.link(src, dst)
            return "linked"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                                 errno.EACCES):
                raise
    tmp = dst + ".tmp"
    # Opened before the copy starts, the source survives being unlinked meanwhile.
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, BLOCK)
        fout.flush()
        if fsync:
            os.fsync(fout.fileno())
    os.replace(tmp, dst)
    return "copied"


def _copy_secret(src_dir, dst_dir, fsync):
    src = os.path.join(src_dir, SECRET_NAME)
    if not os.path.isfile(src):
        return False
    dst = os.path.join(dst_dir, SECRET_NAME)
    tmp = dst + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    with open(src, "rb") as fin:
        data = fin.read()
    # Created 0600 (a umask can only take bits away); no chmod afterwards,
    # which a FAT backup disk would refuse.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fout:
        fout.write(data)
        fout.flush()
        if fsync:
            os.fsync(fout.fileno())
    os.replace(tmp, dst)
    return True


def _snapshot(src_conn, dst_path):
    """Copy the database behind ``src_conn`` to ``dst_path`` through the
    online backup API, then make the copy stand on its own: a new database
    id, no upload sessions that need a spool file, one file (no WAL).
    Returns the number of upload sessions left out."""
    for leftover in (dst_path, dst_path + "-journal", dst_path + "-wal", dst_path + "-shm"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    dst = sqlite3.connect(dst_path, isolation_level=None)
    try:
        src_conn.backup(dst)  # pages=-1: one step, one read snapshot
        dst.execute("PRAGMA journal_mode = DELETE")
        dst.execute("BEGIN IMMEDIATE")
        spooled = [row[0] for row in dst.execute(SPOOLED_SESSIONS)]
        dst.executemany(DROP_SESSION_CHUNKS_SQL, [{"id": i} for i in spooled])
        dst.executemany(DROP_SESSION_SQL, [{"id": i} for i in spooled])
        dst.execute(SET_DB_ID_SQL, {"db_id": secrets.token_hex(8)})
        dst.execute("COMMIT")
    finally:
        dst.close()
    return len(spooled)


def _snapshot_between_writes(db_path, src_conn, dst_path):
    """``_snapshot`` while a second connection holds the write lock: a
    writer that removes blob files before its commit (the clean-up) has
    finished, and none starts until the copy is taken. (The lock cannot be
    held on ``src_conn`` itself: the backup API refuses a source connection
    with a write transaction open.)"""
    gate = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, isolation_level=None,
                           timeout=60)
    try:
        gate.execute("BEGIN IMMEDIATE")
        return _snapshot(src_conn, dst_path)
    finally:
        if gate.in_transaction:
            gate.execute("ROLLBACK")
        gate.close()


# The rows that may name a blob ``:sha256`` at a size, with whose and
# where, for messages.
_NAMING_ROWS = (
    ("""
     SELECT u.name, e.path, e.size FROM entries e JOIN users u ON u.id = e.user_id
     WHERE e.sha256 = :sha256 AND e.deleted = 0
     """, "{}'s file {!r} says {} bytes"),
    ("""
     SELECT u.name, c.path, c.client_size FROM conflicts c JOIN users u ON u.id = c.user_id
     WHERE c.client_sha256 = :sha256 AND c.resolved_at IS NULL
     """, "{}'s conflict on {!r} (the device's side) says {} bytes"),
    ("""
     SELECT u.name, c.path, c.server_size FROM conflicts c JOIN users u ON u.id = c.user_id
     WHERE c.server_sha256 = :sha256 AND c.resolved_at IS NULL
     """, "{}'s conflict on {!r} (the server's side) says {} bytes"),
    ("""
     SELECT u.name, s.path, s.size FROM uploads s JOIN users u ON u.id = s.user_id
     WHERE s.sha256 = :sha256 AND s.instant = 1 AND s.state = 'open'
     """, "{}'s upload session for {!r} says {} bytes"),
    ("""
     SELECT u.name, r.path, r.size FROM revisions r JOIN users u ON u.id = r.user_id
     WHERE r.sha256 = :sha256
     """, "{}'s revision of {!r} says {} bytes"),
)


def blobs_path_in(root, sha256):
    """``root/blobs/ab/<sha256>``, or None for a name that is no sha256."""
    return os.path.join(root, _blob_rel(sha256)) if blobs.is_sha256(sha256) else None


def wrong_rows(conn, sha256, actual):
    """Sentences naming each row (user and path) that gives the blob
    ``sha256`` another size than its file's ``actual`` one."""
    found = []
    for query, sentence in _NAMING_ROWS:
        try:
            rows = conn.execute(query, {"sha256": sha256}).fetchall()
        except sqlite3.Error:
            continue
        found += [sentence.format(name, path, size) for name, path, size in rows
                  if size != actual]
    return found


def blob_intact(path, sha256):
    """Whether the file's content hashes to its name (then a size that
    disagrees is the rows' fault, not the file's)."""
    try:
        return blobs.hash_file(path)[1] == sha256
    except OSError:
        return False


def _place_blobs(refs, src_dir, dst_dir, link, fsync, stats, reuse_dir=None):
    """Place every referenced blob not yet at ``dst_dir``, hard-linking it
    from ``reuse_dir`` (an earlier backup on the same filesystem) when that
    holds it at the right size; returns the sha256s whose source file is
    missing. Size mismatches go to ``stats["wrong_size"]``."""
    missing = []
    touched_dirs = set()
    for sha256, size in sorted(refs.items()):
        if not blobs.is_sha256(sha256):
            stats["wrong_size"].append((sha256, "not a sha256 digest"))
            continue
        src = os.path.join(src_dir, _blob_rel(sha256))
        dst = os.path.join(dst_dir, _blob_rel(sha256))
        try:
            if os.stat(dst).st_size == size:
                continue
        except FileNotFoundError:
            pass
        if reuse_dir is not None and _reuse(os.path.join(reuse_dir, _blob_rel(sha256)), dst, size):
            stats["reused"] += 1
            touched_dirs.add(os.path.dirname(dst))
            continue
        try:
            how = _place(src, dst, link, fsync)
        except FileNotFoundError:
            missing.append(sha256)
            continue
        stats[how] += 1
        actual = os.stat(dst).st_size
        stats["bytes"] += actual
        if size is None:
            stats["wrong_size"].append((sha256, "the rows disagree on its size"))
        elif actual != size:
            stats["wrong_size"].append((sha256, f"{actual} bytes, the rows say {size}"))
        touched_dirs.add(os.path.dirname(dst))
    if fsync:
        for path in sorted(touched_dirs):
            fsync_path(path)
    return missing


def _reuse(earlier, dst, size):
    """Hard-link ``earlier`` to ``dst`` when it exists with ``size`` bytes."""
    try:
        if size is None or os.stat(earlier).st_size != size:
            return False
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.link(earlier, dst)
    except FileExistsError:
        os.unlink(dst)
        return _reuse(earlier, dst, size)
    except OSError:
        return False
    return True


def _drop_unreferenced(refs, dst_dir):
    """Remove blobs placed by an earlier attempt that the final snapshot does not name."""
    root = os.path.join(dst_dir, BLOBS_DIR)
    for prefix in os.listdir(root) if os.path.isdir(root) else ():
        folder = os.path.join(root, prefix)
        for name in os.listdir(folder):
            if name not in refs:
                os.unlink(os.path.join(folder, name))


def _same_filesystem(a, b):
    return _device(a) == _device(b)


def _device(path):
    """The filesystem of ``path``, or of its nearest existing parent."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return os.stat(path).st_dev


def _empty_or_absent(path, ignore=()):
    if not os.path.exists(path):
        return True
    if not os.path.isdir(path):
        raise DataDirError(f"{path} exists and is not a directory")
    return not [name for name in os.listdir(path) if name not in ignore]


# -- backup -------------------------------------------------------------------

def backup(config, dest, link_dest=None, fsync=True):
    """Copy the data directory to ``dest`` (absent or empty) while the server
    may be running; blobs an earlier backup ``link_dest`` on the same
    filesystem as ``dest`` holds are hard-linked from there instead of copied.
    Returns a dict of figures; raises ``DataDirError``."""
    src_db = config.path(DB_NAME)
    dest = os.path.abspath(dest)
    if dest == config.data_dir or dest.startswith(config.data_dir + os.sep):
        raise DataDirError(f"the backup cannot go inside the data directory {config.data_dir}")
    if not _empty_or_absent(dest):
        raise DataDirError(f"{dest} is not empty; back up into a new directory")
    if link_dest is not None and not os.path.isdir(os.path.join(link_dest, BLOBS_DIR)):
        raise DataDirError(f"--link-dest {link_dest} is not a backup (it has no blobs directory)")
    if link_dest is not None and not _same_filesystem(link_dest, dest):
        raise DataDirError(f"--link-dest {link_dest} is not on the filesystem of {dest}")
    link = _same_filesystem(config.data_dir, dest)
    src = open_existing(src_db)
    try:
        os.makedirs(os.path.join(dest, BLOBS_DIR), exist_ok=True)
        stats = {"linked": 0, "copied": 0, "reused": 0, "bytes": 0, "wrong_size": []}
        tmp_db = os.path.join(dest, DB_NAME + ".partial")
        for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
            if attempt == 1:
                left_out = _snapshot(src, tmp_db)
            else:
                left_out = _snapshot_between_writes(src_db, src, tmp_db)
            copy = open_existing(tmp_db, readonly=True)
            try:
                refs = referenced(copy)
            finally:
                copy.close()
            missing = _place_blobs(refs, config.data_dir, dest, link, fsync, stats, link_dest)
            if not missing:
                break
            # A blob the snapshot names was removed since (the clean-up
            # collected it once a later write stopped using it, deleting
            # the file before its transaction commits): a newer snapshot,
            # taken between writes, no longer names it. One that stays
            # missing is lost in the data directory itself.
        else:
            raise DataDirError(
                f"{len(missing)} blob(s) named by the database are missing from "
                f"{config.data_dir}/blobs (first: {missing[0]}); run `app.py check`. "
                f"The incomplete backup is in {dest}")
    finally:
        src.close()
    _drop_unreferenced(refs, dest)
    os.makedirs(os.path.join(dest, SPOOL_DIR), exist_ok=True)
    secret = _copy_secret(config.data_dir, dest, fsync)
    if fsync:
        fsync_path(tmp_db)
    # The database goes in last: a directory with one is a complete backup.
    os.replace(tmp_db, os.path.join(dest, DB_NAME))
    if fsync:
        fsync_path(os.path.join(dest, BLOBS_DIR))
        fsync_path(dest)
    return {"dest": dest, "blobs": len(refs), "linked": stats["linked"],
            "copied": stats["copied"], "reused": stats["reused"], "bytes": stats["bytes"],
            "attempts": attempt,
            "uploads_left_out": left_out, "secret": secret,
            "wrong_size": stats["wrong_size"],
            "db_bytes": os.path.getsize(os.path.join(dest, DB_NAME))}


# -- restore ------------------------------------------------------------------

def restore(config, src, force=False, fsync=True):
    """Make ``src`` (a backup) the data directory. The server must be
    stopped; a non-empty data directory is replaced only with ``force``.
    The restored database gets a new id, so every cursor issued before is
    answered ``cursor_expired``. Returns a dict of figures; raises ``DataDirError``."""
    src = os.path.abspath(src)
    if src == config.data_dir or src.startswith(config.data_dir + os.sep):
        raise DataDirError(f"the backup {src} is inside the data directory {config.data_dir}; "
                       f"move it elsewhere first")
    conn = open_existing(os.path.join(src, DB_NAME), readonly=True)
    try:
        result = conn.execute("PRAGMA quick_check").fetchall()
        if result != [("ok",)]:
            raise DataDirError(f"the database in {src} is damaged: {result[0][0]}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        known = migrations.latest(migrations.STEPS, SCHEMA_VERSION)
        if version > known:
            raise DataDirError(f"the backup in {src} was made by a newer version of the "
                           f"server (schema {version}; this one knows {known})")
        refs = referenced(conn)
    finally:
        conn.close()
    wrong_rows_found = []
    for sha256, size in refs.items():
        path = os.path.join(src, _blob_rel(sha256)) if blobs.is_sha256(sha256) else None
        if path is None or not os.path.isfile(path):
            raise DataDirError(f"the backup in {src} is incomplete: blob {sha256} is missing")
        if os.path.getsize(path) != size:
            if not blob_intact(path, sha256):
                raise DataDirError(f"the backup in {src} is damaged: blob {sha256} has the "
                                   f"wrong size")
            # The file is whole; a row claims another size (an old server
            # trusted a declared size): restore it, and say which rows.
            conn = open_existing(os.path.join(src, DB_NAME), readonly=True)
            try:
                named = wrong_rows(conn, sha256, os.path.getsize(path))
            finally:
                conn.close()
            wrong_rows_found.append((sha256, named))

    lock = lock_data_dir(config)
    try:
        if not _empty_or_absent(config.data_dir, ignore=(LOCK_NAME,)):
            if not force:
                raise DataDirError(f"the data directory {config.data_dir} is not empty; "
                               f"add --force to replace what it holds")
            _clear(config)
        dest = config.data_dir
        os.makedirs(os.path.join(dest, BLOBS_DIR), exist_ok=True)
        os.makedirs(os.path.join(dest, SPOOL_DIR), exist_ok=True)
        stats = {"linked": 0, "copied": 0, "reused": 0, "bytes": 0, "wrong_size": []}
        _place_blobs(refs, src, dest, _same_filesystem(src, dest), fsync, stats)
        secret = _copy_secret(src, dest, fsync)
        tmp_db = os.path.join(dest, DB_NAME + ".partial")
        conn = open_existing(os.path.join(src, DB_NAME), readonly=True)
        try:
            left_out = _snapshot(conn, tmp_db)
        finally:
            conn.close()
        if fsync:
            fsync_path(tmp_db)
        # The database goes in last: a restore cut short leaves no database,
        # never one whose blobs are not all there yet.
        os.replace(tmp_db, config.path(DB_NAME))
        if fsync:
            fsync_path(os.path.join(dest, BLOBS_DIR))
            fsync_path(dest)
        check_conn = open_existing(config.path(DB_NAME), readonly=True)
        try:
            db_id = check_conn.execute(DB_ID_SQL).fetchone()[0]
        finally:
            check_conn.close()
    finally:
        os.close(lock)
    return {"blobs": len(refs), "linked": stats["linked"], "copied": stats["copied"],
            "bytes": stats["bytes"], "secret": secret, "uploads_left_out": left_out,
            "db_id": db_id, "schema": version, "wrong_rows": wrong_rows_found}


def _clear(config):
    """Remove what a data directory holds (for ``restore --force``)."""
    for name in os.listdir(config.data_dir):
        if name == LOCK_NAME:
            continue
        path = config.path(name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)

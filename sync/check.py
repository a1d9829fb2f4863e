"""``check``: verify a data directory (the database's integrity, the
maintained counts against a recount, every blob a row names, by size and
sha256) and, with ``repair``, rewrite wrong counts and remove what nothing
names: orphan files under ``blobs/`` and ``spool/``, and upload sessions whose
spool file is gone, and queue for the clean-up the blob rows nothing refers
to that it would otherwise never look at. ``repair`` takes the data
directory's lock and refuses while a server runs.
"""

import json
import os
import shutil
import sqlite3
import time

from . import blobs, counts, references
from .backup import (
    COMPLETING,
    HAS_REVISIONS_SQL,
    SPOOLED_SESSIONS,
    _mentions,
    referenced,
    wrong_rows,
)
from .datadir import BLOBS_DIR, DB_NAME, SPOOL_DIR, lock_data_dir, open_existing, server_running
from .runtime import iso


def check(config, repair=False, out=None):
    """Check the database and every blob it names; list (and with
    ``repair`` remove) files nothing names. Each finding goes to ``out``
    (a callable taking one line) as it is found; returns the number of
    problems that remain."""
    out = out or (lambda line: None)
    lock = lock_data_dir(config) if repair else None
    try:
        return _check(config, repair, out)
    finally:
        if lock is not None:
            os.close(lock)


def _check(config, repair, out):
    problems = 0

    def problem(text):
        nonlocal problems
        problems += 1
        out(f"PROBLEM {text}")

    if not repair and server_running(config):
        out("note: a server is running; a file being stored right now can show as an orphan")
    conn = open_existing(config.path(DB_NAME))
    try:
        try:
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            # Without a readable database nothing can be called an orphan.
            problem(f"database: cannot be read ({exc}); restore a backup")
            return problems
        if integrity == ["ok"]:
            out("database: integrity ok")
        for line in integrity if integrity != ["ok"] else ():
            problem(f"database: {line}")
        if integrity != ["ok"]:
            out("the database is damaged: blobs and orphans are not checked; restore a backup")
            return problems
        for row in conn.execute("PRAGMA foreign_key_check"):
            problem(f"database: foreign key broken in {row[0]} (rowid {row[1]} -> {row[2]})")
        _check_counts(conn, repair, out, problem)
        _check_history(conn, out, problem)
        refs = referenced(conn)
        spooled = {row[0] for row in conn.execute(SPOOLED_SESSIONS)}

        checked = total = 0
        for sha256, named_size in sorted(refs.items()):
            rows = mentions(conn, sha256) if named_size is None else ()
            if not blobs.is_sha256(sha256):
                problem(f"blob {sha256!r} named in {_tables(conn, sha256)} is not a sha256 digest")
                continue
            path = blobs.blob_path(config, sha256)
            if not os.path.isfile(path):
                problem(f"blob {sha256} named in {_tables(conn, sha256)} is missing"
                        f"{_used_by(conn, sha256)}")
                continue
            size, digest = blobs.hash_file(path)
            # An intact file with rows that disagree: the rows are wrong (an
            # older server trusted a declared size); say whose and which.
            wrong = wrong_rows(conn, sha256, size) if digest == sha256 else []
            if wrong and (named_size is None or size != named_size):
                problem(f"blob {sha256} is {size} bytes, but {'; '.join(wrong)}")
            elif named_size is None:
                problem(f"blob {sha256}: the rows disagree on its size: {rows}")
            elif size != named_size:
                problem(f"blob {sha256} is {size} bytes, {_tables(conn, sha256)} say {named_size}"
                        f"{_used_by(conn, sha256)}")
            if digest != sha256:
                problem(f"blob {sha256} is damaged: its content hashes to {digest}"
                        f"{_used_by(conn, sha256)}")
            checked += 1
            total += size
        out(f"blobs: {checked} of {len(refs)} checked, {total} bytes")
        _check_unreferenced(conn, repair, out, problem)

        completing = {row[0] for row in conn.execute(COMPLETING)}
        orphans = _orphan_files(config, refs.keys() | completing, spooled)
        for upload_id in sorted(spooled):
            if not os.path.isfile(blobs.spool_path(config, upload_id)):
                if repair:
                    with_transaction(conn, [
                        ("DELETE FROM upload_chunks WHERE upload_id = ?", (upload_id,)),
                        ("DELETE FROM uploads WHERE id = ?", (upload_id,))])
                    out(f"removed upload session {upload_id} (its spool file was gone)")
                else:
                    problem(f"upload session {upload_id} has no spool file "
                            f"(--repair cancels it; the device uploads again)")
    finally:
        conn.close()

    for path in orphans:
        rel = os.path.relpath(path, config.data_dir)
        if repair:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            out(f"removed orphan {rel}")
        else:
            problem(f"orphan {rel} (nothing names it; --repair removes it)")
    out("no problems" if not problems else f"{problems} problem(s)")
    return problems


def _check_counts(conn, repair, out, problem):
    """The maintained figures (pending changes, quota usage, files, open
    conflicts) against a recount."""
    conn.execute("BEGIN")
    try:
        wrong = counts.differences(conn)
    finally:
        conn.execute("COMMIT")
    if not wrong:
        out("counts: pending changes, quota usage, files and open conflicts match a recount")
        return
    for what, stored, real in wrong:
        if repair:
            out(f"fixed {what}: was {stored}, is {real}")
        else:
            problem(f"{what} is {stored}, a recount says {real} (--repair fixes it)")
    if repair:
        with_transaction(conn, [(statement, ()) for statement in counts.REWRITE])


KEPT_REVISIONS_SQL = "SELECT COUNT(*) FROM revisions"
# Live files whose current version is not their newest revision (the first 100).
HEADS_MISSING_FROM_HISTORY_SQL = """
    SELECT u.name, e.path, e.rev
    FROM entries e JOIN users u ON u.id = e.user_id
    LEFT JOIN revisions r ON r.rev = e.rev
    WHERE e.deleted = 0 AND (r.rev IS NULL OR r.user_id != e.user_id OR r.path != e.path
                             OR r.sha256 IS NOT e.sha256 OR r.replaced_at IS NOT NULL)
    ORDER BY e.user_id, e.path LIMIT 100
"""


def _check_history(conn, out, problem):
    """Every live file's current version is its newest revision in the
    history (the revisions' content is checked with the other blobs)."""
    if conn.execute(HAS_REVISIONS_SQL).fetchone() is None:
        return
    kept = conn.execute(KEPT_REVISIONS_SQL).fetchone()[0]
    out(f"history: {kept} revision(s) kept")
    for user, path, rev in conn.execute(HEADS_MISSING_FROM_HISTORY_SQL):
        problem(f"history: the current version of {user}'s {path!r} (rev {rev}) is missing "
                f"from its history (a restore or rewind cannot bring it back)")


# Blob rows the clean-up will not look at (it only takes queued content), read
# in batches of this many.
UNQUEUED_BLOBS_SQL = """
    SELECT sha256, size FROM blobs b
     WHERE NOT EXISTS (SELECT 1 FROM blob_queue q WHERE q.sha256 = b.sha256)
     ORDER BY sha256
"""
UNREFERENCED_BATCH = 500


def _check_unreferenced(conn, repair, out, problem):
    """Blob rows that nothing refers to (``references.CONTENT_REFERENCED_SQL``)
    and that are not queued for the clean-up: they and their files would
    stay for ever. ``repair`` queues them; the server's next clean-up pass
    removes them (checking again that nothing refers to them)."""
    stray = []
    conn.execute("BEGIN")  # one snapshot, as a running server changes the tables
    try:
        rows = conn.execute(UNQUEUED_BLOBS_SQL)
        while batch := rows.fetchmany(UNREFERENCED_BATCH):
            used = {row[0] for row in conn.execute(
                references.CONTENT_REFERENCED_SQL, {"shas": json.dumps([r[0] for r in batch])})}
            stray.extend(row for row in batch if row[0] not in used)
    finally:
        conn.execute("COMMIT")
    if repair and stray:
        now = iso(time.time())
        with_transaction(conn, [
            ("INSERT OR IGNORE INTO blob_queue (sha256, queued_at) VALUES (?, ?)", (sha256, now))
            for sha256, _ in stray])
    for sha256, size in stray:
        if repair:
            out(f"queued blob {sha256} for clean-up (nothing refers to it)")
        else:
            problem(f"blob {sha256} ({size} bytes): no entry, revision, conflict or upload "
                    f"refers to it and it is not queued for clean-up (--repair queues it)")


def with_transaction(conn, statements):
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _orphan_files(config, named, spooled):
    """Paths under ``blobs/`` and ``spool/`` that no row names."""
    orphans = []
    root = config.path(BLOBS_DIR)
    for prefix in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        folder = os.path.join(root, prefix)
        if not os.path.isdir(folder) or os.path.islink(folder):
            orphans.append(folder)
            continue
        for name in sorted(os.listdir(folder)):
            if not (name in named and blobs.is_sha256(name) and name[:2] == prefix):
                orphans.append(os.path.join(folder, name))
    root = config.path(SPOOL_DIR)
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        if name not in spooled:
            orphans.append(os.path.join(root, name))
    return orphans


USED_BY_SHOWN = 5
# The library paths, live (``now``) or kept in the history, whose content is ``:sha256``.
USED_BY_SQL = """
    SELECT u.name, e.path, 'now' FROM entries e JOIN users u ON u.id = e.user_id
    WHERE e.sha256 = :sha256 AND e.deleted = 0
    UNION
    SELECT u.name, r.path, 'history' FROM revisions r JOIN users u ON u.id = r.user_id
    WHERE r.sha256 = :sha256
    ORDER BY 3 DESC, 1, 2
"""
# ``{mentions}``: the rows that name content (``sync.backup._mentions``).
MENTIONS_OF_SQL = "SELECT t, size FROM ({mentions}) AS m WHERE m.sha256 = :sha256"


def _used_by(conn, sha256):
    """'; used by alice: books/Dune.epub, ...': the library paths (live, or
    kept in the history) whose content is this blob, so a person knows which
    files to bring back from a device or a backup."""
    rows = conn.execute(USED_BY_SQL, {"sha256": sha256}).fetchall()
    seen, shown = set(), []
    for name, path, when in rows:
        if (name, path) in seen:
            continue
        seen.add((name, path))
        shown.append(f"{name}: {path}" + (" (an older version)" if when == "history" else ""))
    if not shown:
        return ""
    more = f" and {len(shown) - USED_BY_SHOWN} more" if len(shown) > USED_BY_SHOWN else ""
    return "; used by " + ", ".join(shown[:USED_BY_SHOWN]) + more


def _tables(conn, sha256):
    return ", ".join(sorted({table for table, _ in mentions(conn, sha256)}))


def mentions(conn, sha256):
    """``[(table, size), ...]``: the rows that name one blob (for messages)."""
    return sorted(set(conn.execute(
        MENTIONS_OF_SQL.format(mentions=_mentions(conn)), {"sha256": sha256})))

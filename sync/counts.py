"""Figures maintained as changes commit, so that no request counts the
library: each user's number of entries and bytes of content (the quota's
usage), live files and open conflicts (the web page's overview), and each
device's number of acknowledged entries (its ``pending_changes`` is the
user's entries minus those).

Every function here that writes must be called inside the write
transaction of the change that moves the figure (the library's unit of
work, an ack, a purge), so that a crash never leaves a figure wrong.
``recount`` computes the same figures from the tables, for ``app.py check``.
"""

import bisect
import json

from . import references
from .db import database

# The ack of a device that holds no copy of the library (the web page's,
# ``sync.web.views``): past every revision, so it is never behind and every
# entry counts as acknowledged, the new ones included.
ALWAYS_ACKED = 10 ** 17 - 1

ADD_USER_SQL = """
    INSERT INTO user_counts (user_id, entries, bytes, files, open_conflicts)
    VALUES (:user_id, :entries, :bytes, :files, :open_conflicts)
    ON CONFLICT (user_id) DO UPDATE SET entries = entries + excluded.entries,
                                        bytes = bytes + excluded.bytes,
                                        files = files + excluded.files,
                                        open_conflicts = open_conflicts + excluded.open_conflicts
"""
# New entries count as acknowledged by the devices that hold no copy (ALWAYS_ACKED).
ACK_NEW_ROWS_SQL = """
    UPDATE device_counts SET acked_entries = acked_entries + :rows
    WHERE device_id IN (SELECT id FROM devices WHERE user_id = :user_id AND acked_rev >= :acked)
"""
ACKED_BETWEEN_SQL = """
    SELECT id, acked_rev FROM devices
    WHERE user_id = :user_id AND acked_rev >= :low AND acked_rev < :below
"""
ADD_ACKED_SQL = """
    INSERT INTO device_counts (device_id, acked_entries) VALUES (:device_id, :acked)
    ON CONFLICT (device_id) DO UPDATE SET acked_entries = acked_entries + excluded.acked_entries
"""
SET_ACKED_SQL = """
    INSERT INTO device_counts (device_id, acked_entries) VALUES (:device_id, :acked)
    ON CONFLICT (device_id) DO UPDATE SET acked_entries = excluded.acked_entries
"""
STORED_FIGURES_SQL = """
    SELECT COALESCE((SELECT entries FROM user_counts WHERE user_id = :user_id), 0),
           COALESCE((SELECT acked_entries FROM device_counts WHERE device_id = :device_id), 0)
"""
# Entries counted up to ``:limit`` (an ack counts whichever side is smaller).
ENTRIES_AFTER_SQL = """
    SELECT COUNT(*) FROM (SELECT 1 FROM entries WHERE user_id = :user_id AND rev > :rev
                          LIMIT :limit)
"""
ENTRIES_BETWEEN_SQL = """
    SELECT COUNT(*) FROM (SELECT 1 FROM entries
                          WHERE user_id = :user_id AND rev > :low AND rev <= :high
                          LIMIT :limit)
"""
USAGE_SQL = "SELECT bytes FROM user_counts WHERE user_id = :user_id"
OVERVIEW_FIGURES_SQL = """
    SELECT files, bytes, open_conflicts FROM user_counts WHERE user_id = :user_id
"""
USER_ENTRIES_SQL = "SELECT entries FROM user_counts WHERE user_id = :user_id"


def held(user_id, shas):
    """The subset of ``shas`` the user's library holds (for the quota):
    ``references.HELD_SQL``. Versions and trash do not count."""
    shas = list(shas)
    if not shas:
        return set()
    return {row[0] for row in database.execute_sql(
        references.HELD_SQL, {"user_id": user_id, "shas": json.dumps(shas)})}


def add_user(user_id, entries=0, bytes_=0, files=0, open_conflicts=0):
    if entries or bytes_ or files or open_conflicts:
        database.execute_sql(ADD_USER_SQL, {
            "user_id": user_id, "entries": entries, "bytes": bytes_, "files": files,
            "open_conflicts": open_conflicts})


def entries_changed(user_id, old_revs, new_rows):
    """Entries of the user got new revisions: ``old_revs`` the revisions the
    changed rows had before (existing rows only), ``new_rows`` how many rows
    are new. A device that had acknowledged an old revision has one
    acknowledged entry fewer (the entry is pending again)."""
    add_user(user_id, entries=new_rows)
    _unack(user_id, old_revs, below=ALWAYS_ACKED)
    if new_rows:
        database.execute_sql(
            ACK_NEW_ROWS_SQL, {"rows": new_rows, "user_id": user_id, "acked": ALWAYS_ACKED})


def entries_removed(user_id, revs):
    """Rows of the user were deleted from ``entries`` (purged tombstones)."""
    if revs:
        add_user(user_id, entries=-len(revs))
        _unack(user_id, revs)


def _unack(user_id, revs, below=None):
    if not revs:
        return
    revs = sorted(revs)
    updates = []
    for device_id, acked_rev in database.execute_sql(
            ACKED_BETWEEN_SQL, {"user_id": user_id, "low": revs[0],
                                "below": below or ALWAYS_ACKED + 1}):
        n = bisect.bisect_right(revs, acked_rev)
        if n:
            updates.append({"device_id": device_id, "acked": -n})
    if updates:
        database.cursor().executemany(ADD_ACKED_SQL, updates)


def _count(sql, params):
    return database.execute_sql(sql, params).fetchone()[0]


def acked(user_id, device_id, old_rev, new_rev):
    """The device's acked cursor moved from ``old_rev`` (None: never acked)
    to ``new_rev``. Counts whichever is smaller, the entries the ack passed
    or those still after it, so an ack at the head of the feed costs what
    changed since, and one halfway through a listing what it passed."""
    row = database.execute_sql(
        STORED_FIGURES_SQL, {"user_id": user_id, "device_id": device_id}).fetchone()
    total, before = row
    low = -1 if old_rev is None else old_rev
    limit = 1024
    while True:
        after = _count(ENTRIES_AFTER_SQL, {"user_id": user_id, "rev": new_rev, "limit": limit})
        if after < limit:
            value = total - after
            break
        passed = _count(ENTRIES_BETWEEN_SQL, {"user_id": user_id, "low": low, "high": new_rev,
                                              "limit": limit})
        if passed < limit:
            value = before + passed
            break
        limit *= 8
    database.execute_sql(SET_ACKED_SQL, {"device_id": device_id, "acked": value})


# A device ``d``'s pending_changes, as an expression over ``devices d``.
PENDING_SQL = """
    COALESCE((SELECT entries FROM user_counts WHERE user_id = d.user_id), 0)
    - COALESCE((SELECT acked_entries FROM device_counts WHERE device_id = d.id), 0)
"""
DEVICE_PENDING_SQL = f"SELECT {PENDING_SQL} FROM devices d WHERE d.id = :device_id"
USER_DEVICES_PENDING_SQL = f"SELECT d.id, {PENDING_SQL} FROM devices d WHERE d.user_id = :user_id"


def pending_changes(device_id):
    row = database.execute_sql(DEVICE_PENDING_SQL, {"device_id": device_id}).fetchone()
    return row[0] if row else 0


def usage(user_id):
    """Bytes of distinct content the user's library holds (the quota's usage)."""
    row = database.execute_sql(USAGE_SQL, {"user_id": user_id}).fetchone()
    return row[0] if row else 0


def figures(user_id):
    """``{"files", "bytes", "open_conflicts"}``: the user's live files, the
    quota's usage and unresolved conflicts, as maintained (one row read)."""
    row = database.execute_sql(OVERVIEW_FIGURES_SQL,
                               {"user_id": user_id}).fetchone() or (0, 0, 0)
    return dict(zip(("files", "bytes", "open_conflicts"), row))


# -- recount (for check) -------------------------------------------------------

# What a user's library holds, summed (``references.HELD_SQL``, for every user).
RECOUNT_USERS = """
    SELECT u.id,
           (SELECT COUNT(*) FROM entries e WHERE e.user_id = u.id),
           (SELECT COALESCE(SUM(size), 0) FROM (
                SELECT sha256, size FROM entries
                WHERE user_id = u.id AND deleted = 0 AND sha256 IS NOT NULL
                UNION
                SELECT client_sha256, client_size FROM conflicts
                WHERE user_id = u.id AND resolved_at IS NULL AND client_sha256 IS NOT NULL)),
           (SELECT COUNT(*) FROM entries e WHERE e.user_id = u.id AND e.deleted = 0),
           (SELECT COUNT(*) FROM conflicts c WHERE c.user_id = u.id AND c.resolved_at IS NULL)
    FROM users u ORDER BY u.id
"""
RECOUNT_DEVICES = """
    SELECT d.id, d.user_id,
           (SELECT COUNT(*) FROM entries e WHERE e.user_id = d.user_id AND e.rev <= d.acked_rev)
    FROM devices d ORDER BY d.id
"""
STORED_USERS = """
    SELECT u.id, COALESCE(c.entries, 0), COALESCE(c.bytes, 0), COALESCE(c.files, 0),
           COALESCE(c.open_conflicts, 0)
    FROM users u LEFT JOIN user_counts c ON c.user_id = u.id ORDER BY u.id
"""
STORED_DEVICES = """
    SELECT d.id, d.user_id, COALESCE(c.acked_entries, 0)
    FROM devices d LEFT JOIN device_counts c ON c.device_id = d.id ORDER BY d.id
"""
REWRITE = (
    "DELETE FROM user_counts",
    f"INSERT INTO user_counts (user_id, entries, bytes, files, open_conflicts) {RECOUNT_USERS}",
    "DELETE FROM device_counts",
    """
    INSERT INTO device_counts (device_id, acked_entries)
    SELECT id, n FROM (SELECT d.id AS id,
                              (SELECT COUNT(*) FROM entries e
                               WHERE e.user_id = d.user_id AND e.rev <= d.acked_rev) AS n
                       FROM devices d)
    """,
)


USER_FIGURES = ("entries", "bytes held (quota usage)", "live files", "open conflicts")


def differences(conn):
    """``[(what, stored, recounted), ...]`` for every maintained figure that
    disagrees with a recount of the tables. ``conn`` is an sqlite3
    connection; the caller holds one read transaction around the call."""
    found = []
    users = {row[0]: row[1:] for row in conn.execute(RECOUNT_USERS)}
    for user_id, *stored in conn.execute(STORED_USERS):
        for what, value, real in zip(USER_FIGURES, stored, users[user_id]):
            if value != real:
                found.append((f"user {user_id}: {what}", value, real))
    devices = {row[0]: row[2] for row in conn.execute(RECOUNT_DEVICES)}
    for device_id, user_id, acked_entries in conn.execute(STORED_DEVICES):
        real = devices[device_id]
        if acked_entries != real:
            total = users[user_id][0]
            found.append((f"device {device_id}: pending_changes",
                          users_stored_entries(conn, user_id) - acked_entries, total - real))
    return found


def users_stored_entries(conn, user_id):
    row = conn.execute(USER_ENTRIES_SQL, {"user_id": user_id}).fetchone()
    return row[0] if row else 0

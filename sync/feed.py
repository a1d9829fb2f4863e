"""The changes feed (SPEC §5, Changes feed and Ack): pages of a user's
entries in revision order behind an opaque cursor, acknowledgements, and the
purge of tombstones every device has acknowledged.

Each entry row holds its latest state and a server-wide revision, so a page
is one seek on the ``(user_id, rev)`` index; deletions stay as tombstones
until every device of the user has acknowledged past them and the grace
period is over (``users.horizon_rev`` then records the newest purged one).
"""

import json
import re
import time
from datetime import datetime, timezone

from . import counts, cursors, errors
from .db import current_rev, database, write
from .library import MAX_INT
from .models import Device

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# A cursor handed out while a listing from the beginning is still below the
# user's tombstone horizon carries this offset: it continues that listing and
# is not expired by the horizon, unlike an ordinary cursor that old.
LISTING_OFFSET = 10 ** 17


def change_json(entry):
    """An entry as a change of the feed."""
    change = {"path": entry["path"], "op": "delete" if entry["deleted"] else "put",
              "rev": entry["rev"], "size": entry["size"], "sha256": entry["sha256"],
              "mtime": entry["mtime"], "device_id": entry["device_id"]}
    if entry["moved_from"] is not None:
        change["moved_from"] = entry["moved_from"]
    return change


# The page query: a seek on the (user_id, rev) index, then a forward read.
# SQLite renders each change as JSON: the feed is the hot path of every sync.
_CHANGE_FIELDS = """'path', path, 'op', CASE WHEN deleted THEN 'delete' ELSE 'put' END,
                    'rev', rev, 'size', size, 'sha256', sha256, 'mtime', mtime,
                    'device_id', device_id"""
FEED_SQL = f"""
    SELECT rev, CASE WHEN moved_from IS NULL THEN json_object({_CHANGE_FIELDS})
                     ELSE json_object({_CHANGE_FIELDS}, 'moved_from', moved_from) END
      FROM entries
     WHERE user_id = :user_id AND rev > :after
     ORDER BY rev LIMIT :limit
"""

# A purge batch: the user's horizon and whether every device has acknowledged.
HORIZON_SQL = "SELECT horizon_rev FROM users WHERE id = :user_id"
SET_HORIZON_SQL = "UPDATE users SET horizon_rev = :horizon WHERE id = :user_id"
USER_IDS_SQL = "SELECT id FROM users"
# Whether the user's library changed after revision ``:rev``.
CHANGED_AFTER_SQL = "SELECT 1 FROM entries WHERE user_id = :user_id AND rev > :rev LIMIT 1"
PURGE_STATE_SQL = """
    SELECT horizon_rev,
           (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id AND d.acked_rev IS NULL),
           (SELECT MIN(d.acked_rev) FROM devices d WHERE d.user_id = u.id)
      FROM users u WHERE u.id = :user_id
"""
# The user's oldest tombstones every device has acknowledged, in revision order.
PURGE_CANDIDATES_SQL = """
    SELECT rev, changed_at FROM entries
     WHERE user_id = :user_id AND deleted = 1 AND rev <= :upto
     ORDER BY rev LIMIT :limit
"""
PURGE_SQL = """
    DELETE FROM entries
     WHERE user_id = :user_id AND deleted = 1 AND rev <= :last
       AND rev IN (SELECT value FROM json_each(:revs))
"""


def _parse_limit(limit):
    if limit is None:
        return DEFAULT_LIMIT
    if not isinstance(limit, str) or not re.fullmatch(r"[0-9]{1,7}", limit) \
            or not 1 <= int(limit) <= MAX_LIMIT:
        raise errors.bad_request(errors.LIMIT_INVALID,
                                 f"'limit' must be an integer from 1 to {MAX_LIMIT}.")
    return int(limit)


def decode_cursor(rt, cursor):
    """(rev, listing) of a cursor this server issued; 400 ``cursor_invalid`` else."""
    rev = cursors.decode(rt.db_id, cursor)
    listing = rev >= LISTING_OFFSET
    if listing:
        rev -= LISTING_OFFSET
    if rev > current_rev():
        raise errors.bad_request(errors.CURSOR_INVALID, "The cursor is not one this server issued.")
    return rev, listing


def changes(rt, user_id, cursor=None, limit=None):
    """A page of the feed as JSON text: the user's entries changed after
    ``cursor`` in rev order, each at its latest state (``cursor`` None lists
    from the beginning), the next cursor and ``has_more``."""
    limit = _parse_limit(limit)
    with database.atomic():  # one snapshot: the horizon and the page agree
        horizon = database.execute_sql(HORIZON_SQL, {"user_id": user_id}).fetchone()[0]
        if not cursor:  # absent or empty (`?cursor=`): from the beginning
            after, listing = 0, True
        else:
            after, listing = decode_cursor(rt, cursor)
            if not listing and after < horizon:
                raise errors.bad_request(
                    errors.CURSOR_EXPIRED,
                    "Deletions after this cursor have been purged: list the library "
                    "again from the beginning.")
        rows = database.execute_sql(
            FEED_SQL, {"user_id": user_id, "after": after, "limit": limit + 1}).fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1][0] if rows else after
    if has_more and listing and last < horizon:
        next_rev = LISTING_OFFSET + last
    elif has_more:
        next_rev = last
    else:
        # Nothing of the user's lies after `last`, and revisions up to the
        # horizon are never handed out again.
        next_rev = max(last, horizon)
    return ('{"changes": [' + ", ".join(row[1] for row in rows) + '], "cursor": '
            + json.dumps(cursors.encode(rt.db_id, next_rev)) + ', "has_more": '
            + ("true" if has_more else "false") + "}")


def ack(rt, device_id, body):
    """Record that the device applied everything up to ``body["cursor"]``;
    acks only move forward."""
    cursor = body.get("cursor")
    if not isinstance(cursor, str):
        raise errors.bad_request(errors.BODY_INVALID, "'cursor' must be a string.")
    with write():
        rev, _ = decode_cursor(rt, cursor)
        device = Device.get_or_none(Device.id == device_id)
        if device is None:  # deleted since the request was authenticated
            raise errors.not_found("This device no longer exists.")
        acked_rev, acked_at = device.acked_rev, device.acked_at
        if acked_rev is None or rev > acked_rev:
            counts.acked(device.user_id, device_id, acked_rev, rev)
            acked_rev, acked_at = rev, rt.now()
            Device.update(acked_rev=acked_rev, acked_at=acked_at).where(
                Device.id == device_id).execute()
    return {"device_id": device_id, "acked_cursor": cursors.encode(rt.db_id, acked_rev),
            "acked_at": acked_at}


PURGE_BATCH = 1000


def purge_tombstones(rt, pause=None):
    """Remove tombstones every device of their user has acknowledged past,
    once the grace period has passed since they were written; each user's
    ``horizon_rev`` records the newest purged one. Works in batches of at
    most ``PURGE_BATCH`` rows, one write transaction each (``pause()`` runs
    between them), walking each user's tombstones in revision order from
    the horizon: a pass costs what it purges, not the size of the library.
    Returns ``(rows purged, longest transaction in seconds)``."""
    cutoff = datetime.fromtimestamp(int(rt.clock() - rt.config.tombstone_grace),
                                    timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    purged, longest = 0, 0.0
    for (user_id,) in database.execute_sql(USER_IDS_SQL).fetchall():
        while True:
            started = time.monotonic()
            with write():
                n = _purge_batch(user_id, cutoff)
            longest = max(longest, time.monotonic() - started)
            purged += n
            if n < PURGE_BATCH:
                break
            if pause is not None:
                pause()
    return purged, longest


def _purge_batch(user_id, cutoff):
    horizon, unacked, min_acked = database.execute_sql(
        PURGE_STATE_SQL, {"user_id": user_id}).fetchone()
    if unacked:
        return 0
    upto = MAX_INT if min_acked is None else min_acked
    # In revision order: the walk stops at the first tombstone whose grace
    # period has not passed (the later ones are younger).
    rows = database.execute_sql(
        PURGE_CANDIDATES_SQL, {"user_id": user_id, "upto": upto, "limit": PURGE_BATCH}).fetchall()
    revs = []
    for rev, changed_at in rows:
        if changed_at > cutoff:
            break
        revs.append(rev)
    if not revs:
        return 0
    database.execute_sql(
        PURGE_SQL, {"user_id": user_id, "last": revs[-1], "revs": json.dumps(revs)})
    database.execute_sql(SET_HORIZON_SQL,
                         {"horizon": max(horizon, revs[-1]), "user_id": user_id})
    counts.entries_removed(user_id, revs)
    return len(revs)

"""History, trash, restore and rewind (SPEC §8).

Every change to a library is also a row of ``revisions``, written by the
library's unit of work (``sync.library.Library.flush``) in the same
transaction as the change, whatever made it. This module reads that history
and writes through the same unit of work, so a restore or a rewind reaches
every device through the feed like any other change. Nothing here imports
Falcon: the resources and the web page call these functions.

Retention (``expire``, run by the janitor): the head of a live path is never
dropped. Any other revision is kept for 24 hours, then while it is the
newest of its UTC hour until 7 days, then while it is the newest of its UTC
day until ``--history-days``. A revision's age counts from the moment a
newer revision of its path replaced it (from its own time for a deletion
nothing replaced), so the version a device overwrote today stays for the
whole period however old it was. Each pass looks only at the revisions
whose age crossed one of those limits since the previous pass.
"""

import json
import math
import re
from datetime import datetime, timezone

from . import cursors, errors, paths
from .db import current_rev, database, meta_get, write
from .feed import CHANGED_AFTER_SQL, _parse_limit
from .library import Library
from .runtime import iso, parse_iso

HOUR = 3600
DAY = 24 * HOUR
KEEP_ALL_S = DAY
HOURLY_S = 7 * DAY
MAX_CHANGES_LISTED = 1000
EXPIRE_BATCH = 500
_SQL_CHUNK = 500
_SWEPT_KEY = "history_swept"
_END = 2 ** 63 - 1  # above every revision
_INT = re.compile(r"-?[0-9]{1,19}")

# The queries below that take a folder have an ``{under}`` slot: empty, or
# ``_UNDER_SQL`` for one column (``_under``); the folder itself is a parameter.
# '0' follows '/' in code point order: [folder/, folder0) is the folder.
_UNDER_SQL = "AND {column} >= :folder_low AND {column} < :folder_high"

# A page of a path's kept revisions, newest first, with the name of the
# device that made each.
HISTORY_PAGE_SQL = """
    SELECT r.rev, r.deleted, r.sha256, r.size, r.mtime, r.device_id, d.name,
           r.changed_at, r.moved_from, r.moved_to
    FROM revisions r LEFT JOIN devices d ON d.id = r.device_id AND d.user_id = r.user_id
    WHERE r.user_id = :user_id AND r.path = :path AND r.rev < :before
    ORDER BY r.rev DESC LIMIT :limit
"""
HAS_HISTORY_SQL = "SELECT 1 FROM revisions WHERE user_id = :user_id AND path = :path LIMIT 1"
KEPT_PUT_SQL = """
    SELECT sha256, size, mtime, changed_at FROM revisions
    WHERE user_id = :user_id AND path = :path AND rev = :rev AND deleted = 0
"""
# The trash: the paths whose head is a deletion (``t``) and no live entry,
# with the newest put before it (``p``) and who deleted it.
TRASH_PAGE_SQL = """
    SELECT t.rev, t.path, t.changed_at, t.device_id, d.name,
           p.rev, p.sha256, p.size, p.mtime
    FROM revisions t
    JOIN revisions p ON p.rev = (SELECT MAX(rev) FROM revisions
                                 WHERE user_id = t.user_id AND path = t.path AND deleted = 0
                                   AND rev < t.rev)
    LEFT JOIN devices d ON d.id = t.device_id AND d.user_id = t.user_id
    WHERE t.user_id = :user_id AND t.deleted = 1 AND t.replaced_at IS NULL AND t.rev < :before
          {under}
      AND NOT EXISTS (SELECT 1 FROM entries e
                      WHERE e.user_id = t.user_id AND e.path = t.path AND e.deleted = 0)
    ORDER BY t.rev DESC LIMIT :limit
"""
REVISION_SQL = """
    SELECT deleted, sha256, size, mtime FROM revisions
    WHERE user_id = :user_id AND path = :path AND rev = :rev
"""
# The first revision (of anyone) from ``:rev`` on: rewind's search by time.
FIRST_REVISION_FROM_SQL = """
    SELECT rev, changed_at FROM revisions WHERE rev >= :rev ORDER BY rev LIMIT 1
"""
NEXT_CHANGE_AT_SQL = """
    SELECT changed_at FROM revisions WHERE rev > :rev AND user_id = :user_id ORDER BY rev LIMIT 1
"""
# ``{by_device}``: empty, or ``AND device_id = :device_id``.
CHANGED_PATHS_SQL = """
    SELECT DISTINCT path FROM revisions
    WHERE rev > :after AND rev <= :upto AND user_id = :user_id {under} {by_device}
"""
_BY_DEVICE_SQL = "AND device_id = :device_id"
# The newest kept revision at or before ``:rev`` of each of ``:paths`` (a JSON array).
STATES_AT_SQL = """
    SELECT r.path, r.rev, r.deleted, r.sha256, r.size, r.mtime
    FROM json_each(:paths) j
    JOIN revisions r ON r.rev = (SELECT MAX(rev) FROM revisions
                                 WHERE user_id = :user_id AND path = j.value AND rev <= :rev)
"""


def revision_json(row):
    rev, deleted, sha256, size, mtime, device_id, device_name, changed_at, moved_from, \
        moved_to = row
    revision = {"rev": rev, "op": "delete" if deleted else "put", "sha256": sha256,
                "size": size, "mtime": mtime, "device_id": device_id,
                "device_name": device_name, "changed_at": changed_at}
    if moved_from is not None:
        revision["moved_from"] = moved_from
    if moved_to is not None:
        revision["moved_to"] = moved_to
    return revision


def _decode_cursor(rt, cursor):
    """The revision a page cursor carries; 400 ``cursor_invalid`` otherwise
    (also for a cursor of another database: a page cursor is not a feed
    position, so there is nothing to start again from)."""
    try:
        return cursors.decode(rt.db_id, cursor)
    except errors.SyncError:
        raise errors.bad_request(errors.CURSOR_INVALID,
                                 "The cursor is not one this server issued.") from None


def _page(rt, rows, limit):
    has_more = len(rows) > limit
    rows = rows[:limit]
    cursor = cursors.encode(rt.db_id, rows[-1][0]) if has_more else None
    return rows, cursor, has_more


# -- reading -------------------------------------------------------------------

def history(rt, user_id, path, cursor=None, limit=None):
    """A page of the kept revisions of ``path`` (already normalized), newest
    first. 404 when the path has no kept revision."""
    limit = _parse_limit(limit)
    before = _decode_cursor(rt, cursor) if cursor else _END
    rows = database.execute_sql(HISTORY_PAGE_SQL, {
        "user_id": user_id, "path": path, "before": before, "limit": limit + 1}).fetchall()
    if not rows and database.execute_sql(
            HAS_HISTORY_SQL, {"user_id": user_id, "path": path}).fetchone() is None:
        raise errors.not_found(f"No history is kept for {path!r}.")
    rows, next_cursor, has_more = _page(rt, rows, limit)
    return {"path": path, "revisions": [revision_json(r) for r in rows],
            "cursor": next_cursor, "has_more": has_more}


def revision_content(user_id, path, rev_text):
    """``(sha256, size, mtime, changed_at)`` of the kept put revision
    ``rev_text`` of ``path``; 400 ``rev_invalid`` when it is not an integer,
    None when there is no such put."""
    if not isinstance(rev_text, str) or not _INT.fullmatch(rev_text.strip()):
        raise errors.bad_request(errors.REV_INVALID, "'rev' must be an integer.")
    return database.execute_sql(
        KEPT_PUT_SQL, {"user_id": user_id, "path": path, "rev": int(rev_text)}).fetchone()


def _parse_prefix(prefix, field="prefix"):
    """A folder as a normalized path without its trailing '/', or None."""
    if prefix is None or prefix == "":
        return None
    if not isinstance(prefix, str):
        raise errors.bad_request(errors.BODY_INVALID, f"'{field}' must be a string.")
    return paths.normalize(prefix[:-1] if prefix.endswith("/") else prefix)


def _under(prefix, column="path"):
    """The ``{under}`` slot and its parameters selecting the paths under
    folder ``prefix`` (everything when it is None)."""
    if prefix is None:
        return "", {}
    return (_UNDER_SQL.format(column=column),
            {"folder_low": prefix + "/", "folder_high": prefix + "0"})


def trash(rt, user_id, prefix=None, cursor=None, limit=None):
    """A page of the paths whose head is a deletion and whose content is
    still kept, most recently deleted first; each item names who deleted it
    and the newest kept put, the one a restore brings back."""
    limit = _parse_limit(limit)
    prefix = _parse_prefix(prefix)
    before = _decode_cursor(rt, cursor) if cursor else _END
    under, params = _under(prefix, "t.path")
    rows = database.execute_sql(TRASH_PAGE_SQL.format(under=under), {
        "user_id": user_id, "before": before, "limit": limit + 1, **params}).fetchall()
    rows, next_cursor, has_more = _page(rt, rows, limit)
    entries = [{"path": path, "deleted_rev": deleted_rev, "deleted_at": deleted_at,
                "device_id": device_id, "device_name": device_name, "rev": rev,
                "sha256": sha256, "size": size, "mtime": mtime}
               for deleted_rev, path, deleted_at, device_id, device_name, rev, sha256, size,
               mtime in rows]
    return {"entries": entries, "cursor": next_cursor, "has_more": has_more}


# -- restore -------------------------------------------------------------------

def _check_int(body, key):
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 63:
        raise errors.bad_request(errors.BODY_INVALID, f"'{key}' must be an integer.")
    return value


def _check_path(body, key="path"):
    value = body.get(key)
    if not isinstance(value, str):
        raise errors.bad_request(errors.BODY_INVALID, f"'{key}' must be a string.")
    return paths.normalize(value)


def restore(rt, user_id, device_id, body):
    """Make revision ``body["rev"]`` of ``body["path"]`` the head again, as a
    new revision made by ``device_id`` (None: no device)."""
    path = _check_path(body)
    rev = _check_int(body, "rev")
    with write():
        row = database.execute_sql(
            REVISION_SQL, {"user_id": user_id, "path": path, "rev": rev}).fetchone()
        if row is None:
            raise errors.not_found(f"{path!r} has no kept revision {rev}.")
        deleted, sha256, size, mtime = row
        library = Library(rt, user_id)
        library.load([path], conflicts=False)
        head = library.head(path)
        if deleted:
            if head is None:
                return {"path": path, "status": "unchanged"}
            library.delete(path, device_id)
            library.flush()
            return {"path": path, "status": "applied"}
        if head is not None and head["sha256"] == sha256:
            return {"path": path, "status": "unchanged", "rev": head["rev"]}
        other = library.clash(path)
        if other is not None:
            raise errors.SyncError(
                409, errors.CASE_CLASH,
                f"{other['path']!r} differs from {path!r} only by case, and devices that "
                f"ignore case cannot hold both: rename or delete it first.")
        entry = library.put(path, device_id, sha256, size, mtime)
        library.flush()
        library.check_quota("delete files first, then restore this one.")
    return {"path": path, "status": "applied", "rev": entry["rev"]}


# -- rewind --------------------------------------------------------------------

def _parse_time(value):
    """Epoch seconds of an ISO 8601 time (UTC when it names no offset)."""
    if not isinstance(value, str) or len(value) > 64:
        raise errors.bad_request(errors.BODY_INVALID, "'at' must be an ISO 8601 time.")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise errors.bad_request(
            errors.BODY_INVALID,
            f"'at' is not an ISO 8601 time such as 2026-11-27T04:32:41Z: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _parse_rewind(body):
    if ("rev" in body) == ("at" in body):
        raise errors.bad_request(errors.BODY_INVALID,
                                 "Give exactly one of 'rev' (an integer) and 'at' (a time).")
    point = ("rev", _check_int(body, "rev")) if "rev" in body \
        else ("at", _parse_time(body["at"]))
    prefix = _parse_prefix(body.get("prefix"))
    device = body.get("device_id")
    if device is not None and not isinstance(device, str):
        raise errors.bad_request(errors.BODY_INVALID, "'device_id' must be a string.")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise errors.bad_request(errors.BODY_INVALID, "'dry_run' must be true or false.")
    return point, prefix, device, dry_run


def _rev_at(moment_text):
    """The last revision made at or before ``moment_text`` (revisions are
    numbered in the order they are made): a binary search on the rev key."""
    lo, hi = 0, current_rev()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        row = database.execute_sql(FIRST_REVISION_FROM_SQL, {"rev": mid}).fetchone()
        if row is None or row[1] > moment_text:
            hi = mid - 1
        else:
            lo = row[0]
    return lo


def _too_old(rt, moment):
    limit = rt.clock() - rt.config.history_days * DAY
    if moment < limit:
        raise errors.bad_request(
            errors.REWIND_TOO_OLD,
            f"That point is more than {rt.config.history_days} days ago "
            f"(--history-days): the history before {iso(limit)} is no longer kept.")


def _point_rev(rt, user_id, point):
    """The revision number of the point, after checking it is not too old.
    A ``rev`` point lasts until the user's next change: it is too old when
    that change is."""
    kind, value = point
    if kind == "at":
        _too_old(rt, value)
        return _rev_at(iso(math.floor(value)))
    row = database.execute_sql(
        NEXT_CHANGE_AT_SQL, {"rev": value, "user_id": user_id}).fetchone()
    if row is not None:
        _too_old(rt, parse_iso(row[0]))
    return value


def _changed_paths(user_id, after, upto, prefix, device):
    """The paths with a revision in (after, upto] (by ``device`` if given)."""
    under, params = _under(prefix)
    by_device = "" if device is None else _BY_DEVICE_SQL
    sql = CHANGED_PATHS_SQL.format(under=under, by_device=by_device)
    params = {"after": after, "upto": upto, "user_id": user_id, "device_id": device, **params}
    return [row[0] for row in database.execute_sql(sql, params)]


def _states_at(user_id, path_list, rev):
    """``{path: (rev, deleted, sha256, size, mtime)}``: the newest kept
    revision at or before ``rev`` of each path that had one."""
    states = {}
    for i in range(0, len(path_list), _SQL_CHUNK):
        chunk = path_list[i:i + _SQL_CHUNK]
        for path, *state in database.execute_sql(
                STATES_AT_SQL, {"paths": json.dumps(chunk), "user_id": user_id, "rev": rev}):
            states[path] = tuple(state)
    return states


class _Rewind:
    """The paths to put back and the state each goes back to, read in
    batches before the write transaction; ``refresh`` brings in what was
    changed between the reads and the write lock."""

    def __init__(self, rt, user_id, point_rev, prefix, device):
        self.user_id = user_id
        self.point_rev = point_rev
        self.prefix = prefix
        self.device = device
        self.library = Library(rt, user_id)
        self.states = {}
        self.paths = set()
        self.read_upto = 0

    def read(self, upto):
        """Take in the revisions in (read_upto, upto]."""
        after = max(self.point_rev, self.read_upto)
        new = _changed_paths(self.user_id, after, upto, self.prefix, self.device)
        self.read_upto = upto
        fresh = [p for p in new if p not in self.paths]
        self.paths.update(fresh)
        self.states.update(_states_at(self.user_id, fresh, self.point_rev))
        return new

    def refresh(self):
        """Inside the write transaction: take in the revisions made since
        ``read`` (the library is loaded afresh after this)."""
        upto = current_rev()
        if upto > self.read_upto:
            self.read(upto)

    def plan(self):
        """``[(path, op, from_rev, state)]`` for every path not already in
        its state at the point, by path; deletions are applied first."""
        library = self.library
        deletes, puts = [], []
        for path in sorted(self.paths):
            state = self.states.get(path)
            head = library.head(path)
            if state is None or state[1]:
                if head is not None:
                    deletes.append((path, "delete", state[0] if state else None, state))
            elif head is None or head["sha256"] != state[2]:
                puts.append((path, "put", state[0], state))
        return deletes, puts


def rewind(rt, user_id, device_id, body):
    """Put the paths changed after a point back as they were at it, in one
    transaction (or, with ``dry_run``, only say what would change).

    Everything is read and planned from one snapshot before the write lock
    is taken; holding it, the planned changes only get their revision
    numbers and are written. Only when the same user's library changed in
    between is the plan made again, inside the transaction."""
    point, prefix, only_device, dry_run = _parse_rewind(body)
    with database.atomic():  # one read snapshot for the plan
        point_rev = _point_rev(rt, user_id, point)
        work = _Rewind(rt, user_id, point_rev, prefix, only_device)
        work.read(current_rev())
        work.library.load(sorted(work.paths), conflicts=False)
        changes = _unclashed(work.library, *work.plan(), apply=not dry_run,
                             device_id=device_id)
    if dry_run:
        return _answer(True, changes)
    with write():
        if _changed_since(user_id, work.read_upto):
            again = _Rewind(rt, user_id, point_rev, prefix, only_device)
            again.paths, again.states, again.read_upto = work.paths, work.states, work.read_upto
            again.refresh()
            again.library.load(sorted(again.paths), conflicts=False)
            work = again
            changes = _unclashed(work.library, *work.plan(), apply=True, device_id=device_id)
        else:
            work.library.renumber(current_rev() + 1)
        work.library.flush()
        work.library.check_quota("rewind a smaller part (a folder, one device), or delete "
                                 "files first.")
    return _answer(False, changes)


def _changed_since(user_id, rev):
    return database.execute_sql(
        CHANGED_AFTER_SQL, {"user_id": user_id, "rev": rev}).fetchone() is not None


def _unclashed(library, deletes, puts, apply, device_id=None):
    """The changes of the plan, applied to ``library`` (in memory) when
    ``apply``: ``[(path, op, from_rev, entry or None)]``. A put that would
    clash by case with a live path outside the rewind is left out."""
    done = []
    for path, op, from_rev, _ in deletes:
        done.append((path, op, from_rev, library.delete(path, device_id) if apply else None))
    removed = {path for path, *_ in deletes}
    for path, op, from_rev, state in puts:
        if library.clash(path, ignore=() if apply else removed) is not None:
            continue
        entry = library.put(path, device_id, state[2], state[3], state[4]) if apply else None
        done.append((path, op, from_rev, entry))
    return done


def _answer(dry_run, changes):
    changes.sort(key=lambda c: c[0])
    listed = []
    for path, op, from_rev, entry in changes[:MAX_CHANGES_LISTED]:
        change = {"path": path, "op": op, "from_rev": from_rev}
        if not dry_run:
            change["rev"] = entry["rev"]
        listed.append(change)
    return {"dry_run": dry_run, "count": len(changes), "changes": listed}


# -- retention -----------------------------------------------------------------

def kept(row, now, days):
    """Whether retention keeps a revision that is not a live head:
    ``row`` = (changed_at, replaced_at) as ISO text, ``now`` epoch seconds."""
    changed_at, replaced_at = row
    if days <= 0:
        return False
    made = parse_iso(changed_at)
    replaced = parse_iso(replaced_at) if replaced_at is not None else None
    age = now - (replaced if replaced is not None else made)
    if age < KEEP_ALL_S:
        return True
    if age >= days * DAY:
        return False
    # The newest of its UTC hour (day) among its path's revisions: the one
    # that replaced it was made in another hour (day), or none did.
    newest_of_hour = replaced is None or made // HOUR != replaced // HOUR
    newest_of_day = replaced is None or made // DAY != replaced // DAY
    if age < HOURLY_S and newest_of_hour:
        return True
    return newest_of_day


def _limits(days):
    """The ages at which retention may drop a revision it kept until then."""
    if days <= 0:
        return (0,)
    return tuple(sorted({KEEP_ALL_S, min(HOURLY_S, days * DAY), days * DAY}))


# The revisions that age (replaced, or deletions), by the time their age
# counts from, from the position ``(:after_age, :after_rev)`` on.
AGING_SQL = """
    SELECT COALESCE(replaced_at, changed_at), rev, changed_at, replaced_at, sha256
    FROM revisions
    WHERE (replaced_at IS NOT NULL OR deleted = 1)
      AND COALESCE(replaced_at, changed_at) <= :high
      AND COALESCE(replaced_at, changed_at) >= :after_age
      AND (COALESCE(replaced_at, changed_at), rev) > (:after_age, :after_rev)
    ORDER BY COALESCE(replaced_at, changed_at), rev LIMIT :limit
"""
DROP_REVISION_SQL = "DELETE FROM revisions WHERE rev = :rev"
SET_SWEPT_SQL = "INSERT OR REPLACE INTO meta (key, value) VALUES (:key, :value)"


def expire(rt, batch=EXPIRE_BATCH, on_dropped=None):
    """Drop the revisions retention no longer keeps, in short write
    transactions of at most ``batch`` revisions. Only revisions whose age
    crossed a limit since the previous pass are looked at (all of them on
    the first pass, or when ``--history-days`` changed). ``on_dropped`` is
    called inside each transaction with the sha256 values whose revisions
    were dropped (content that may have lost its last reference).
    Returns the number of revisions dropped."""
    now = rt.clock()
    days = rt.config.history_days
    swept = json.loads(meta_get(_SWEPT_KEY) or "null")
    last = swept["at"] if swept and swept.get("days") == days else None
    dropped = 0
    for limit in _limits(days):
        # The previous pass's last second again: revisions of that second
        # may have been written after it ran (times are whole seconds).
        low = "" if last is None else iso(last - limit - 1)
        high = iso(now - limit)
        if low >= high:
            continue
        position = (low, _END)
        while True:
            with write():
                rows = database.execute_sql(AGING_SQL, {
                    "high": high, "after_age": position[0], "after_rev": position[1],
                    "limit": batch}).fetchall()
                if not rows:
                    break
                position = (rows[-1][0], rows[-1][1])
                gone = [(rev, sha256) for _, rev, changed_at, replaced_at, sha256 in rows
                        if not kept((changed_at, replaced_at), now, days)]
                if gone:
                    database.connection().executemany(
                        DROP_REVISION_SQL, [{"rev": rev} for rev, _ in gone])
                    if on_dropped is not None:
                        on_dropped({sha for _, sha in gone if sha is not None})
                dropped += len(gone)
            if len(rows) < batch:
                break
    with write():
        database.execute_sql(
            SET_SWEPT_SQL, {"key": _SWEPT_KEY, "value": json.dumps({"at": now, "days": days})})
    return dropped

"""Conflicts (SPEC §5, Conflicts): the listing of a user's unresolved
conflicts, their resolution, and the names ``keep_both`` gives the copy it
keeps beside the server's version.

A resolution is one unit of work of ``sync.library.Library``: its changes get
new revisions and append to the feed in the same transaction that marks the
conflict resolved.
"""

import json
import os
import re
from datetime import datetime, timezone

from . import cursors, errors, paths
from .db import database, write
from .feed import change_json
from .library import Library
from .models import Device

RESOLUTIONS = ("keep_server", "keep_client", "keep_both")
MAX_CONFLICT_SUFFIX = 10000
MAX_DEVICE_NAME_BYTES = 100

_CONFLICT_COLUMNS = ("id", "path", "kind", "created_at", "server_rev", "server_op",
                     "server_sha256", "server_size", "server_mtime", "server_device_id",
                     "client_op", "client_sha256", "client_size", "client_mtime",
                     "client_device_id", "client_to", "resolution", "resolved_at")

# A page of a user's unresolved conflicts, oldest first (the rowid orders them).
CONFLICTS_PAGE_SQL = f"""
    SELECT rowid, {", ".join(_CONFLICT_COLUMNS)} FROM conflicts
    WHERE user_id = :user_id AND resolved_at IS NULL AND rowid > :after
    ORDER BY rowid LIMIT :limit
"""
CONFLICT_SQL = f"""
    SELECT {", ".join(_CONFLICT_COLUMNS)} FROM conflicts WHERE id = :id AND user_id = :user_id
"""
# Which of the ``:paths`` (a JSON array) are live files of the user.
LIVE_AMONG_SQL = """
    SELECT path FROM entries
    WHERE user_id = :user_id AND deleted = 0 AND path IN (SELECT value FROM json_each(:paths))
"""


def conflict_json(row):
    conflict = {
        "id": row["id"], "path": row["path"], "kind": row["kind"],
        "created_at": row["created_at"],
        "server": {"rev": row["server_rev"], "op": row["server_op"],
                   "sha256": row["server_sha256"], "size": row["server_size"],
                   "mtime": row["server_mtime"], "device_id": row["server_device_id"]},
        "client": {"op": row["client_op"], "sha256": row["client_sha256"],
                   "size": row["client_size"], "mtime": row["client_mtime"],
                   "device_id": row["client_device_id"]},
    }
    if row["client_to"] is not None:
        conflict["client"]["to"] = row["client_to"]
    if row["resolved_at"] is not None:
        conflict["resolved_at"] = row["resolved_at"]
        conflict["resolution"] = row["resolution"]
    return conflict


DEFAULT_PAGE = MAX_PAGE = 1000
_CURSOR_MARK = "c"  # a conflicts cursor is not a feed cursor


def _page_limit(limit):
    if limit is None:
        return DEFAULT_PAGE
    if not isinstance(limit, str) or not re.fullmatch(r"[0-9]{1,7}", limit) \
            or not 1 <= int(limit) <= MAX_PAGE:
        raise errors.bad_request(errors.LIMIT_INVALID,
                                 f"'limit' must be an integer from 1 to {MAX_PAGE}.")
    return int(limit)


def _page_after(rt, cursor):
    if not cursor:
        return 0
    if not cursor.startswith(_CURSOR_MARK):
        raise errors.bad_request(errors.CURSOR_INVALID, "The cursor is not one this server issued.")
    try:
        return cursors.decode(rt.db_id, cursor[len(_CURSOR_MARK):])
    except errors.SyncError:
        raise errors.bad_request(errors.CURSOR_INVALID,
                                 "The cursor is not one this server issued.") from None


def list_conflicts(rt, user_id, cursor=None, limit=None):
    """A page of the user's unresolved conflicts, oldest first:
    ``{"conflicts", "cursor", "has_more"}`` (the last two when ``cursor``
    or ``limit`` is given, or when more than a page is left). The page (at most 1,000) is read
    whole before the answer is sent, so a client that never reads its answer
    holds no read transaction (which would keep SQLite from checkpointing
    its WAL) and, the answer being small, no worker thread either."""
    limit_given = limit is not None
    limit = _page_limit(limit)
    after = _page_after(rt, cursor)
    rows = database.execute_sql(
        CONFLICTS_PAGE_SQL, {"user_id": user_id, "after": after, "limit": limit + 1}).fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1][0] if rows else after
    page = {"conflicts": [conflict_json(dict(zip(_CONFLICT_COLUMNS, r[1:]))) for r in rows]}
    if cursor is not None or limit_given or has_more:
        # Paging in use (or needed: more than a page without `limit`): the
        # version 1 answer otherwise, `{"conflicts": [...]}` alone.
        page["cursor"] = _CURSOR_MARK + cursors.encode(rt.db_id, last)
        page["has_more"] = has_more
    return page


def iter_conflicts(rt, user_id):
    """Every unresolved conflict of the user, oldest first, a page at a time
    (for callers inside the server, such as the web page)."""
    cursor = None
    while True:
        page = list_conflicts(rt, user_id, cursor)
        yield from page["conflicts"]
        if not page.get("has_more"):
            return
        cursor = page["cursor"]


def _device_name(device_id):
    device = Device.get_or_none(Device.id == device_id)
    # A name goes into a path segment: no folder separators in it.
    name = (device.name if device else "unknown device").replace("/", "-").replace("\\", "-")
    name = "".join(ch for ch in name if ch.isprintable()) or "device"
    # Room for the name and extension within a 255-byte segment.
    return name.encode("utf-8")[:MAX_DEVICE_NAME_BYTES].decode("utf-8", "ignore")


NAME_BATCH = 500  # candidate names looked up per query


def _candidates(path, device_name, date):
    """``name (conflict <device> <date>[ n]).ext`` beside ``path`` for n = 1,
    2, ... ``MAX_CONFLICT_SUFFIX``, normalized (until the extension leaves no
    room in a segment)."""
    folder, _, base = path.rpartition("/")
    stem, ext = os.path.splitext(base)
    for n in range(1, MAX_CONFLICT_SUFFIX + 1):
        tag = f" (conflict {device_name} {date}{'' if n == 1 else f' {n}'})"
        room = paths.MAX_SEGMENT_BYTES - len((tag + ext).encode("utf-8"))
        short = stem.encode("utf-8")[:max(room, 0)].decode("utf-8", "ignore")
        try:
            yield paths.normalize((folder + "/" if folder else "") + short + tag + ext)
        except paths.PathError:
            return  # later names are longer still


def _conflict_name(library, path, device_name, date):
    """The first free conflict name beside ``path``; only a live entry makes
    a name taken. The candidates are looked up ``NAME_BATCH`` at a time, one
    indexed query each (at most 20 for the 10,000 names), against what the
    unit of work has changed first: the cost never depends on how much of the
    library it has loaded (10,000 one-by-one tries that each rescanned every
    loaded row held the write lock for 107 s)."""
    batch = []
    for candidate in _candidates(path, device_name, date):
        batch.append(candidate)
        if len(batch) == NAME_BATCH:
            found = _first_free(library, batch)
            if found is not None:
                return found
            batch = []
    found = _first_free(library, batch) if batch else None
    if found is not None:
        return found
    raise errors.bad_request(errors.RESOLUTION_INVALID,
                             "No free name is left beside this path for keep_both.")


def _first_free(library, names):
    unknown = [name for name in names if name not in library.entries]
    live = set()
    if unknown:
        live = {row[0] for row in database.execute_sql(
            LIVE_AMONG_SQL, {"user_id": library.user_id, "paths": json.dumps(unknown)})}
    for name in names:
        taken = library.head(name) is not None if name in library.entries else name in live
        if not taken:
            library.load([name])
            return name
    return None


def _resolve_changes(rt, library, row, resolution):
    """Apply ``resolution`` to the library; the entries it changed."""
    if resolution == "keep_server" or row["client_op"] == "delete" and resolution == "keep_both":
        return []
    path, device_id = row["path"], row["client_device_id"]
    date = datetime.fromtimestamp(rt.clock(), timezone.utc).strftime("%Y-%m-%d")
    if row["client_op"] == "delete":
        library.load([path])
        return [library.delete(path, device_id)] if library.head(path) else []
    if row["client_op"] == "move":
        target = row["client_to"]
        library.load([path, target])
        if library.head(path) is None:
            return []  # the source is gone: nothing left to move
        if resolution == "keep_both":
            target = _conflict_name(library, target, _device_name(device_id), date)
        put = library.move(path, target, device_id)
        return [library.entries[path], put]
    library.load([path])
    if resolution == "keep_both":
        path = _conflict_name(library, path, _device_name(device_id), date)
    head = library.head(path)
    if head is not None and head["sha256"] == row["client_sha256"]:
        return []
    return [library.put(path, device_id, row["client_sha256"], row["client_size"],
                        row["client_mtime"])]


def resolve(rt, user_id, conflict_id, body):
    """Settle one of the user's conflicts with ``keep_server``, ``keep_client``
    or ``keep_both``; the resolution's changes append to the feed."""
    resolution = body.get("resolution")
    if not isinstance(resolution, str):
        raise errors.bad_request(errors.BODY_INVALID, "'resolution' must be a string.")
    with write():
        found = database.execute_sql(
            CONFLICT_SQL, {"id": conflict_id, "user_id": user_id}).fetchone()
        if found is None:
            raise errors.not_found(f"No conflict {conflict_id!r}.")
        row = dict(zip(_CONFLICT_COLUMNS, found))
        if resolution not in RESOLUTIONS:
            raise errors.bad_request(
                errors.RESOLUTION_INVALID,
                f"'resolution' must be one of {', '.join(RESOLUTIONS)}.")
        if row["resolved_at"] is not None:
            raise errors.bad_request(errors.ALREADY_RESOLVED,
                                     f"This conflict was resolved with {row['resolution']}.")
        library = Library(rt, user_id)
        changed = _resolve_changes(rt, library, row, resolution)
        library.resolve_conflict(row, resolution)
        library.flush()
        if resolution != "keep_server":  # which only ever frees space
            library.check_quota("resolve with keep_server, or delete files first.")
    return {"conflict": conflict_json(row), "results": [change_json(e) for e in changed]}


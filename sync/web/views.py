"""What the pages read: a folder's listing, page by page; the overview's
figures; one path's head; and the device the web page acts for. Plain
queries scoped to one user; every change to the library goes through the
same service functions as the JSON API."""

import dataclasses

from .. import counts, devices
from ..auth import Principal
from ..db import database, named_list, write
from ..models import Device

PAGE_SIZE = 200
WEB_DEVICE_NAME = "Web page"
WEB_PLATFORM = "web"
# The web page holds no copy of the library, so it is never behind: its ack
# is past every revision.
WEB_DEVICE_ACK = counts.ALWAYS_ACKED

_FILE_COLUMNS = "e.path, e.rev, e.size, e.mtime, e.changed_at, e.device_id, d.name"

# Live files in path order from ``:position`` on: ``{after}`` is ``>=`` or
# ``>``, ``{below}`` empty or ``AND e.path < :upper``.
FILES_FROM_SQL = f"""
    SELECT {_FILE_COLUMNS} FROM entries e LEFT JOIN devices d ON d.id = e.device_id
    WHERE e.user_id = :user_id AND e.path {{after}} :position AND e.deleted = 0 {{below}}
    ORDER BY e.path LIMIT :limit
"""
_BELOW_SQL = "AND e.path < :upper"
FOLDER_HOLDS_SQL = """
    SELECT 1 FROM entries
    WHERE user_id = :user_id AND path > :low AND path < :high AND deleted = 0 LIMIT 1
"""
HEAD_SQL = f"""
    SELECT {_FILE_COLUMNS} FROM entries e LEFT JOIN devices d ON d.id = e.device_id
    WHERE e.user_id = :user_id AND e.path = :path AND e.deleted = 0
"""
# The user's devices but the web page's own.
DEVICE_COUNT_SQL = """
    SELECT COUNT(*) FROM devices
    WHERE user_id = :user_id
      AND id NOT IN (SELECT device_id FROM web_devices WHERE user_id = :user_id)
"""
LATEST_CHANGES_SQL = """
    SELECT e.path, e.deleted, e.rev, e.changed_at, e.moved_from, d.name
    FROM entries e LEFT JOIN devices d ON d.id = e.device_id
    WHERE e.user_id = :user_id ORDER BY e.rev DESC LIMIT :limit
"""
DEVICE_NAMES_SQL = "SELECT id, name FROM devices WHERE user_id = :user_id"
WEB_DEVICE_SQL = "SELECT device_id FROM web_devices WHERE user_id = :user_id"
ADD_WEB_DEVICE_SQL = "INSERT INTO web_devices (user_id, device_id) VALUES (:user_id, :device_id)"
# ``{revs}``: the placeholders of an IN list (``db.named_list``).
CHANGED_AT_SQL = "SELECT rev, changed_at FROM entries WHERE user_id = :user_id AND rev IN ({revs})"


@dataclasses.dataclass
class Item:
    """One row of a folder: a file, or a folder holding files."""

    name: str
    path: str
    is_folder: bool
    rev: int = None
    size: int = None
    mtime: int = None
    changed_at: str = None
    device_id: str = None
    device_name: str = None


def _file(row, prefix):
    path, rev, size, mtime, changed_at, device_id, device_name = row
    return Item(path[len(prefix):], path, False, rev, size, mtime, changed_at, device_id,
                device_name)


def list_folder(user_id, folder, start=None, inclusive=False, limit=PAGE_SIZE):
    """One page of ``folder`` ('' for the top): its files and sub-folders in
    path order, from ``start`` on (after it, or from it when ``inclusive``).
    Returns ``(items, next_start, next_inclusive)``; ``next_start`` is None on
    the last page.

    Reads the (user_id, path) index in ranges: the files of the folder one
    after another, and each sub-folder by one row, skipping what lies inside
    it, so a page costs its own rows, not the size of the folder or library.
    """
    prefix = folder + "/" if folder else ""
    # Every path inside ``prefix`` sorts below this ('0' follows '/').
    upper = prefix[:-1] + "0" if prefix else None
    position, include = (start, inclusive) if start else (prefix, False)
    items = []
    while len(items) <= limit:
        rows = _range(user_id, position, include, upper, limit + 1 - len(items))
        if not rows:
            break
        for row in rows:
            rest = row[0][len(prefix):]
            if "/" in rest:
                name = rest.split("/", 1)[0]
                items.append(Item(name, prefix + name, True))
                position, include = prefix + name + "0", True
                break  # continue after this folder's contents
            items.append(_file(row, prefix))
            position, include = row[0], False
            if len(items) > limit:
                break
    if len(items) > limit:
        last = items[limit - 1]
        items = items[:limit]
        if last.is_folder:
            return items, last.path + "0", True
        return items, last.path, False
    return items, None, False


def _range(user_id, position, inclusive, upper, count):
    sql = FILES_FROM_SQL.format(after=">=" if inclusive else ">",
                                below="" if upper is None else _BELOW_SQL)
    return database.execute_sql(sql, {"user_id": user_id, "position": position,
                                      "upper": upper, "limit": count}).fetchall()


def folder_exists(user_id, folder):
    """Whether any live file lies under ``folder``."""
    row = database.execute_sql(FOLDER_HOLDS_SQL, {
        "user_id": user_id, "low": folder + "/", "high": folder + "0"}).fetchone()
    return row is not None


def head(user_id, path):
    """The live head of ``path`` as an ``Item``, or None."""
    row = database.execute_sql(HEAD_SQL, {"user_id": user_id, "path": path}).fetchone()
    if row is None:
        return None
    item = _file(row, "")
    item.name = path.rpartition("/")[2]
    return item


def overview(user_id, latest=10):
    """The overview's figures: files, bytes, devices, open conflicts, and the
    latest changes (newest first) with the device that made each. The
    figures are those maintained as changes commit (``sync.counts``), so the
    page costs the same for any size of library."""
    figures = counts.figures(user_id)  # bytes: what the quota counts, each content once
    device_count = database.execute_sql(DEVICE_COUNT_SQL, {"user_id": user_id}).fetchone()[0]
    changes = [
        {"path": path, "op": "delete" if deleted else "put", "rev": rev,
         "changed_at": changed_at, "moved_from": moved_from, "device_name": name}
        for path, deleted, rev, changed_at, moved_from, name in database.execute_sql(
            LATEST_CHANGES_SQL, {"user_id": user_id, "limit": latest})]
    return {"files": figures["files"], "bytes": figures["bytes"], "devices": device_count,
            "conflicts": figures["open_conflicts"], "changes": changes}


def device_names(user_id):
    """{device id: name} of the user's devices."""
    return dict(database.execute_sql(DEVICE_NAMES_SQL, {"user_id": user_id}).fetchall())


def web_device_id(user_id):
    row = database.execute_sql(WEB_DEVICE_SQL, {"user_id": user_id}).fetchone()
    return row[0] if row else None


def web_device(rt, user):
    """The device the web page acts for, registered on first use (one per user)."""
    device_id = web_device_id(user.id)
    if device_id is None:
        with write():
            device_id = web_device_id(user.id)
            if device_id is None:
                device_id = devices.register(
                    rt, Principal(user), {"name": WEB_DEVICE_NAME, "platform": WEB_PLATFORM})["id"]
                Device.update(acked_rev=WEB_DEVICE_ACK, acked_at=rt.now()).where(
                    Device.id == device_id).execute()
                counts.acked(user.id, device_id, None, WEB_DEVICE_ACK)
                database.execute_sql(ADD_WEB_DEVICE_SQL,
                                     {"user_id": user.id, "device_id": device_id})
    return Device.get_by_id(device_id)


def changed_at(user_id, revs):
    """{rev: when it was made} for those of ``revs`` still the head of a path."""
    revs = [r for r in set(revs) if r is not None]
    if not revs:
        return {}
    marks, params = named_list("rev", revs)
    return dict(database.execute_sql(CHANGED_AT_SQL.format(revs=marks),
                                     {"user_id": user_id, **params}).fetchall())

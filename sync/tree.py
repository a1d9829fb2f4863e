"""Whole files and whole folders of a library, as WebDAV changes them (SPEC §10).

Every change here goes through the library's unit of work (``sync.library``'s
``Library``): a file put, a file delete, a move (a delete and a put with
``moved_from``). A folder DELETE, MOVE or COPY is one such unit for every file
under it, in one transaction, so the feed shows one change per file and a
crash leaves all of it or none. A PUT body is streamed once into a spool file,
hashed on the way, fsync-renamed into the blob store like a completed upload,
and only then applied.

The library holds files only: a folder exists while a live file is under it,
or while a row of ``dav_folders`` (an empty folder made with MKCOL) says so.
Dead properties (``dav_properties``) follow their file or folder here.
Paths are library paths (``sync.paths``), already normalized; the empty path
is the root of the library.
"""

import contextlib
import functools

from . import blobs, errors, paths
from .db import database, named_list, write
from .library import Library, content_referenced, holds_content
from .models import Blob
from .uploads import held_bytes

_SQL_CHUNK = 500


def _disk_full_is_507(function):
    """A full disk met by a write (SQLITE_FULL, or ENOSPC, EDQUOT, EFBIG from
    any open, write or fsync) refuses it as the sync API does: 507
    ``insufficient_storage``. Its transaction has rolled back; the server
    recovers by itself once space returns."""
    @functools.wraps(function)
    def refused_when_full(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except errors.SyncError:
            raise
        except Exception as exc:
            if not blobs.is_disk_full(exc):
                raise
            raise errors.SyncError(
                507, errors.INSUFFICIENT_STORAGE,
                "The server's disk is full; try again later (reading still works).") from exc
    return refused_when_full


class Precondition(errors.SyncError):
    """An ``If-Match`` or ``If-None-Match`` (or ``Overwrite: F``) that does not hold: 412."""

    def __init__(self, description):
        super().__init__(412, errors.PRECONDITION_FAILED, description)


def library_path(path):
    """``path`` checked and normalized (SPEC §4); 400 ``path_invalid`` when
    the library cannot hold it."""
    try:
        return paths.normalize(path)
    except paths.PathError as exc:
        raise errors.bad_request(errors.PATH_INVALID, str(exc)) from None


def _conflict(description):
    return errors.SyncError(409, errors.PATH_CONFLICT, description)


def _prefix_range(path):
    """(low, high) bounds of the paths strictly under folder ``path``:
    ``'/'`` is followed by ``'0'`` in code point order."""
    return (path + "/", path + "0") if path else ("", None)


# The queries below that take a folder have a slot filled with fixed text:
# ``{under}`` the paths under it (``_under``), ``{at_or_under}`` the folder
# and the paths under it (``_at_or_under``); "1" for the root. The folder
# itself is bound (``:folder``, ``:low``, ``:high``).
_UNDER_SQL = "path >= :low AND path < :high"
_AT_OR_UNDER_SQL = "(path = :folder OR (path >= :low AND path < :high))"


def _under(path):
    """The ``{under}`` slot and its parameters for folder ``path``."""
    low, high = _prefix_range(path)
    if high is None:
        return "1", {}
    return _UNDER_SQL, {"low": low, "high": high}


def _at_or_under(path):
    """The ``{at_or_under}`` slot and its parameters for folder ``path``."""
    if not path:
        return "1", {}
    low, high = _prefix_range(path)
    return _AT_OR_UNDER_SQL, {"folder": path, "low": low, "high": high}


FILE_COLUMNS = "path, sha256, size, mtime, changed_at, rev"

FILE_SQL = f"""
    SELECT {FILE_COLUMNS} FROM entries WHERE user_id = :user_id AND path = :path AND deleted = 0
"""
MADE_FOLDER_SQL = "SELECT created_at FROM dav_folders WHERE user_id = :user_id AND path = :path"
HOLDS_A_FILE_SQL = """
    SELECT 1 FROM entries WHERE user_id = :user_id AND deleted = 0 AND {under} LIMIT 1
"""
# A batch of the live files from ``:bound`` on, in path order: ``{after}`` is
# ``>=`` or ``>``; ``{below}`` empty (the root) or ``_BELOW_SQL``.
FILES_FROM_SQL = f"""
    SELECT {FILE_COLUMNS} FROM entries
    WHERE user_id = :user_id AND deleted = 0 AND path {{after}} :bound {{below}}
    ORDER BY path LIMIT :limit
"""
_BELOW_SQL = "AND path < :high"
MADE_FOLDERS_UNDER_SQL = """
    SELECT path, created_at FROM dav_folders WHERE user_id = :user_id AND {under}
"""
PROPERTIES_SQL = """
    SELECT path, name, value FROM dav_properties WHERE user_id = :user_id AND path IN ({paths})
"""
DROP_PROPERTY_SQL = """
    DELETE FROM dav_properties WHERE user_id = :user_id AND path = :path AND name = :name
"""
SET_PROPERTY_SQL = """
    INSERT INTO dav_properties (user_id, path, name, value)
    VALUES (:user_id, :path, :name, :value)
    ON CONFLICT (user_id, path, name) DO UPDATE SET value = excluded.value
"""
FILE_AMONG_SQL = """
    SELECT path FROM entries WHERE user_id = :user_id AND deleted = 0 AND path IN ({paths})
    LIMIT 1
"""
FILES_UNDER_SQL = """
    SELECT path FROM entries WHERE user_id = :user_id AND deleted = 0 AND {under} ORDER BY path
"""
FOLDERS_AT_OR_UNDER_SQL = """
    SELECT path, created_at FROM dav_folders WHERE user_id = :user_id AND {at_or_under}
    ORDER BY path
"""
DROP_FOLDERS_SQL = "DELETE FROM dav_folders WHERE user_id = :user_id AND {at_or_under}"
DROP_PROPERTIES_SQL = "DELETE FROM dav_properties WHERE user_id = :user_id AND {at_or_under}"
DROP_PATH_PROPERTIES_SQL = "DELETE FROM dav_properties WHERE user_id = :user_id AND path = :path"
MAKE_FOLDER_SQL = """
    INSERT INTO dav_folders (user_id, path, created_at) VALUES (:user_id, :path, :created_at)
"""
KEEP_FOLDER_SQL = """
    INSERT OR IGNORE INTO dav_folders (user_id, path, created_at)
    VALUES (:user_id, :path, :created_at)
"""
COPY_PROPERTY_SQL = """
    INSERT OR REPLACE INTO dav_properties (user_id, path, name, value)
    VALUES (:user_id, :path, :name, :value)
"""
# A move of a folder: ``:target`` replaces the first ``:keep_from - 1``
# characters (the source folder) of each path at or under it.
MOVE_ROWS_SQL = {
    table: f"""
    UPDATE {table} SET path = :target || substr(path, :keep_from)
    WHERE user_id = :user_id AND {{at_or_under}}
    """
    for table in ("dav_folders", "dav_properties")}


# -- reading -------------------------------------------------------------------

def file_at(user_id, path):
    """``(path, sha256, size, mtime, changed_at, rev)`` of the live file at ``path``, or None."""
    if not path:
        return None
    return database.execute_sql(FILE_SQL, {"user_id": user_id, "path": path}).fetchone()


def folder_at(user_id, path):
    """``(exists, created_at)`` of the folder ``path``: the root always
    exists; another folder while it holds a live file or was made empty."""
    if not path:
        return True, None
    row = database.execute_sql(MADE_FOLDER_SQL, {"user_id": user_id, "path": path}).fetchone()
    if row is not None:
        return True, row[0]
    under, params = _under(path)
    held = database.execute_sql(HOLDS_A_FILE_SQL.format(under=under),
                                {"user_id": user_id, **params}).fetchone()
    return held is not None, None


def children(user_id, path, batch=1000):
    """The members of folder ``path``: ``(files, folders)``, files as rows of
    ``file_at``, folders as ``{name: created_at or None}``."""
    files, folders = [], {}
    for kind, *member in iter_children(user_id, path, batch):
        if kind == "file":
            files.append(member[0])
        else:
            folders[member[0]] = member[1]
    return files, folders


def iter_children(user_id, path, batch=1000):
    """The members of folder ``path``, read ``batch`` entries at a time:
    ``("file", row)`` (a row of ``file_at``), and ``("folder", name,
    created_at or None)`` once for each folder. The live entries under the
    folder are read in path order, skipping each subfolder's contents with
    one seek, so a folder costs its own members, not its depth."""
    low, high = _prefix_range(path)
    made = {}  # folders kept in dav_folders: name -> created_at (None: only deeper ones)
    under, params = _under(path)
    for folder, created_at in database.execute_sql(
            MADE_FOLDERS_UNDER_SQL.format(under=under), {"user_id": user_id, **params}):
        name, _, deeper = folder[len(low):].partition("/")
        if deeper:
            made.setdefault(name, None)
        else:
            made[name] = created_at
    bound, inclusive = low, True
    while True:
        sql = FILES_FROM_SQL.format(after=">=" if inclusive else ">",
                                    below="" if high is None else _BELOW_SQL)
        rows = database.execute_sql(sql, {"user_id": user_id, "bound": bound, "high": high,
                                          "limit": batch}).fetchall()
        for row in rows:
            rest = row[0][len(low):]
            if "/" in rest:
                name = rest.split("/", 1)[0]
                yield "folder", name, made.pop(name, None)
                bound, inclusive = low + name + "0", True
                break
            yield "file", row
        else:
            if len(rows) < batch:
                break
            bound, inclusive = rows[-1][0], False
    for name, created_at in made.items():
        yield "folder", name, created_at


def usage(rt, user_id):
    """``(used, available)`` bytes for the quota properties (RFC 4331):
    the user's content against the quota, or against the free disk."""
    used = held_bytes(user_id)
    free = blobs.free_bytes(rt.config.path("blobs"))
    available = free if not rt.config.quota else max(min(rt.config.quota - used, free), 0)
    return used, available


# -- dead properties ---------------------------------------------------------------

def properties(user_id, path_list):
    """``{path: {name: value}}`` of the dead properties of ``path_list``."""
    found = {p: {} for p in path_list}
    path_list = list(found)
    for i in range(0, len(path_list), _SQL_CHUNK):
        chunk = path_list[i:i + _SQL_CHUNK]
        marks, params = named_list("path", chunk)
        for path, name, value in database.execute_sql(
                PROPERTIES_SQL.format(paths=marks), {"user_id": user_id, **params}):
            found[path][name] = value
    return found


@_disk_full_is_507
def set_property(user_id, path, name, value):
    """Set (``value`` text) or remove (``value`` None) one dead property."""
    with write():
        params = {"user_id": user_id, "path": path, "name": name, "value": value}
        database.execute_sql(DROP_PROPERTY_SQL if value is None else SET_PROPERTY_SQL, params)


# -- checks inside a write transaction -----------------------------------------------

def _ancestor_file(user_id, path):
    """A live file that is one of ``path``'s ancestors, or None."""
    parts = path.split("/")[:-1]
    ancestors = ["/".join(parts[:i + 1]) for i in range(len(parts))]
    if not ancestors:
        return None
    marks, params = named_list("path", ancestors)
    row = database.execute_sql(FILE_AMONG_SQL.format(paths=marks),
                               {"user_id": user_id, **params}).fetchone()
    return row[0] if row else None


def _check_target(library, user_id, path, replacing=(), what="A file"):
    """409 when ``path`` is inside a file, or differs only by case from a
    live file other than those in ``replacing``."""
    inside = _ancestor_file(user_id, path)
    if inside is not None:
        raise _conflict(f"{inside!r} is a file: nothing can be put inside it.")
    other = library.clash(path, ignore=replacing)
    if other is not None:
        raise _conflict(f"{what} {path!r} would differ only by case from {other['path']!r}, "
                        f"which devices that ignore case cannot hold beside it.")


def _files_under(user_id, path):
    under, params = _under(path)
    return [r[0] for r in database.execute_sql(
        FILES_UNDER_SQL.format(under=under), {"user_id": user_id, **params})]


def _folders_at_or_under(user_id, path):
    at_or_under, params = _at_or_under(path)
    return database.execute_sql(FOLDERS_AT_OR_UNDER_SQL.format(at_or_under=at_or_under),
                                {"user_id": user_id, **params}).fetchall()


def _drop_folders_and_properties(user_id, path):
    at_or_under, params = _at_or_under(path)
    params["user_id"] = user_id
    database.execute_sql(DROP_FOLDERS_SQL.format(at_or_under=at_or_under), params)
    database.execute_sql(DROP_PROPERTIES_SQL.format(at_or_under=at_or_under), params)


def _is_folder(user_id, path):
    return folder_at(user_id, path)[0]


# -- writes ------------------------------------------------------------------------

@contextlib.contextmanager
def received_body(rt, read, length, spooled=None):
    """Stream a request body into a new spool file, hashing it on the way
    (every byte is written once, and made durable), and yield ``(spool_id,
    sha256, size)`` for ``put_file``; the spool file is gone afterwards.
    ``length`` is the announced size (None when the body is chunked).
    ``spooled``: the ``blobs.SpoolWriter`` the body was already written
    into while it arrived (``sync.bodygate``), taken over instead.
    413 over the largest file, 400 on a short body, 507 when the disk has
    no room."""
    limit = rt.config.max_file_size
    if length is not None and length > limit:
        raise errors.SyncError(413, errors.FILE_TOO_LARGE, f"Files are limited to {limit} bytes.")
    if spooled is not None:
        spool_id, digest = spooled.spool_id, spooled.digest
    else:
        spool_id, digest = rt.idgen(), blobs.BackgroundHash()
        blobs.receiving(spool_id)
    try:
        if spooled is not None:
            count, more = _disk_full_is_507(spooled.finish)(), False
        else:
            try:
                blobs.reserve_spool(rt.config, spool_id, length or 0)
            except blobs.NoSpace:
                raise errors.SyncError(507, errors.INSUFFICIENT_STORAGE,
                                       f"The server's disk has no room for {length} bytes."
                                       ) from None
            expected = limit + 1 if length is None else length
            count, more = _disk_full_is_507(blobs.write_at)(rt.config, spool_id, 0, read,
                                                             expected, digest)
        if count > limit:
            raise errors.SyncError(413, errors.FILE_TOO_LARGE,
                                   f"Files are limited to {limit} bytes.")
        if length is not None and (count != length or more):
            raise errors.bad_request(errors.BODY_INVALID,
                                     f"The body had {count} bytes, not the {length} announced.")
        yield spool_id, digest.hexdigest(), count
    finally:
        digest.close()
        blobs.remove_spool(rt.config, spool_id)
        blobs.receiving(spool_id, active=False)


def check_quota(rt, user_id, size, sha256=None):
    """507 ``quota_exceeded`` when ``size`` more bytes would pass the quota
    (content the library already holds costs nothing)."""
    quota = rt.config.quota
    if not quota or (sha256 is not None and _holds(user_id, sha256)):
        return
    if held_bytes(user_id) + size > quota:
        raise errors.SyncError(507, errors.QUOTA_EXCEEDED,
                               f"This file would take your storage over its quota of "
                               f"{quota} bytes.")


def _holds(user_id, sha256):
    return holds_content(user_id, sha256)


def put_file(rt, user_id, device_id, path, sha256, size, mtime, if_match=None,
             if_none_match=None, spool_id=None):
    """Make the content ``sha256`` the head of ``path``, replacing what is
    there; the old content stays in the history. ``spool_id`` (from
    ``received_body``) is moved into the blob store inside the transaction,
    so the clean-up never sees the blob before the entry that refers to it.
    ``if_match``/``if_none_match`` are lists of ETags (sha256 values, or
    ``*``) checked against the head inside the transaction (412).
    Returns ``{"created": bool, "rev", "status": "applied"|"unchanged"}``."""
    try:
        return _disk_full_is_507(_put_file)(rt, user_id, device_id, path, sha256, size, mtime,
                                            if_match, if_none_match, spool_id)
    except errors.SyncError:
        if spool_id is not None:
            _drop_unreferenced(rt, sha256)
        raise


def _drop_unreferenced(rt, sha256):
    """After a refused put whose body was already moved into the blob store:
    remove that file again unless a row names the content or something
    refers to it, checked under the write lock as the clean-up does. It
    writes nothing to the database, so it works on a full disk too."""
    with write():
        named = Blob.select().where(Blob.sha256 == sha256).exists()
        if not named and not content_referenced([sha256]):
            blobs.remove_blob(rt.config, sha256)


def _put_file(rt, user_id, device_id, path, sha256, size, mtime, if_match, if_none_match,
              spool_id):
    with write():
        if spool_id is not None:
            # A copy of content the store holds already stays a spool file
            # until received_body removes it, after the commit.
            blobs.store_spool(rt.config, spool_id, sha256, drop_duplicate=False)
        library = Library(rt, user_id)
        library.load([path], [sha256])
        head = library.head(path)
        _check_preconditions(head, if_match, if_none_match)
        if head is None:
            if _is_folder(user_id, path):
                raise _conflict(f"{path!r} is a folder: a file cannot replace it.")
            _check_target(library, user_id, path)
        if head is not None and head["sha256"] == sha256 and head["mtime"] == mtime:
            return {"created": False, "rev": head["rev"], "status": "unchanged"}
        check_quota(rt, user_id, size, sha256)
        Blob.insert(sha256=sha256, size=size, created_at=rt.now()).on_conflict_ignore().execute()
        entry = library.put(path, device_id, sha256, size, mtime)
        library.flush()
        if head is None:
            database.execute_sql(DROP_PATH_PROPERTIES_SQL, {"user_id": user_id, "path": path})
    return {"created": head is None, "rev": entry["rev"], "status": "applied"}


def _check_preconditions(head, if_match, if_none_match):
    current = head["sha256"] if head is not None else None
    if if_match is not None:
        if current is None or ("*" not in if_match and current not in if_match):
            raise Precondition("If-Match does not match the file's current ETag; "
                               "read it again before changing it.")
    if if_none_match is not None and current is not None:
        if "*" in if_none_match or current in if_none_match:
            raise Precondition("If-None-Match matches the file's current ETag.")


@_disk_full_is_507
def make_folder(rt, user_id, path):
    """MKCOL: an empty folder ``path`` (its parent exists). 405 when a file
    or folder is already there, 409 inside a file or on a case clash."""
    with write():
        library = Library(rt, user_id)
        library.load([path])
        if library.head(path) is not None or _is_folder(user_id, path):
            raise errors.SyncError(405, errors.METHOD_NOT_ALLOWED, f"{path!r} already exists.")
        _check_target(library, user_id, path, what="A folder")
        database.execute_sql(MAKE_FOLDER_SQL,
                             {"user_id": user_id, "path": path, "created_at": rt.now()})
        database.execute_sql(DROP_PATH_PROPERTIES_SQL, {"user_id": user_id, "path": path})


@_disk_full_is_507
def delete(rt, user_id, device_id, path):
    """DELETE: the file at ``path``, or every file under the folder ``path``
    with its empty folders and dead properties, in one transaction. Returns
    the number of files deleted (404 when nothing is there)."""
    with write():
        count = _delete(rt, user_id, device_id, path)
    return count


def _delete(rt, user_id, device_id, path):
    library = Library(rt, user_id)
    library.load([path])
    if library.head(path) is not None:
        targets = [path]
    elif _is_folder(user_id, path):
        targets = _files_under(user_id, path)
    else:
        raise errors.not_found(f"Nothing is at {path!r}.")
    library.load(targets, conflicts=False)
    for target in targets:
        library.delete(target, device_id)
    library.flush()
    _drop_folders_and_properties(user_id, path)
    return len(targets)


def _remove_target(rt, user_id, device_id, target, overwrite):
    """Make room at ``target`` for a MOVE or COPY: 412 when something is
    there and ``overwrite`` is false; else delete it (file or folder)."""
    exists = file_at(user_id, target) is not None or _is_folder(user_id, target)
    if not exists:
        return False
    if not overwrite:
        raise Precondition(f"{target!r} exists and Overwrite is F.")
    _delete(rt, user_id, device_id, target)
    return True


def _plan(user_id, source, target):
    """``(is_file, [(from, to)], folders)`` of a MOVE or COPY of ``source``."""
    head = file_at(user_id, source)
    if head is not None:
        return True, [(source, target)], []
    if not _is_folder(user_id, source):
        raise errors.not_found(f"Nothing is at {source!r}.")
    pairs = [(p, target + p[len(source):]) for p in _files_under(user_id, source)]
    return False, pairs, _folders_at_or_under(user_id, source)


def _check_pairs(library, user_id, pairs, replacing):
    for _, to in pairs:
        if library_path(to) != to:
            raise errors.bad_request(errors.PATH_INVALID, f"{to!r} is not a valid path.")
    if pairs:
        _check_target(library, user_id, pairs[0][1], replacing)
        for _, to in pairs[1:]:
            other = library.clash(to, ignore=replacing)
            if other is not None:
                raise _conflict(f"{to!r} would differ only by case from {other['path']!r}.")


@_disk_full_is_507
def move(rt, user_id, device_id, source, target, overwrite=True):
    """MOVE a file (a move in the feed) or a folder (a move of every file
    under it) to ``target``, replacing what is there when ``overwrite``; one
    transaction. Dead properties and empty folders go along. Returns
    ``{"created": bool, "count"}``."""
    _check_target_path(source, target)
    with write():
        replaced = _remove_target(rt, user_id, device_id, target, overwrite)
        is_file, pairs, folders = _plan(user_id, source, target)
        library = Library(rt, user_id)
        library.load([p for pair in pairs for p in pair], conflicts=False)
        _check_pairs(library, user_id, pairs, replacing={f for f, _ in pairs})
        for old, new in pairs:
            library.move(old, new, device_id)
        library.flush()
        _move_rows("dav_folders", user_id, source, target)
        _move_rows("dav_properties", user_id, source, target)
    return {"created": not replaced, "count": len(pairs)}


def _keep_folder(rt, user_id, target, has_files):
    """A moved or copied folder that held no file stays a folder at ``target``."""
    if not has_files:
        database.execute_sql(KEEP_FOLDER_SQL,
                             {"user_id": user_id, "path": target, "created_at": rt.now()})


def _move_rows(table, user_id, source, target):
    at_or_under, params = _at_or_under(source)
    database.execute_sql(MOVE_ROWS_SQL[table].format(at_or_under=at_or_under), {
        "target": target, "keep_from": len(source) + 1, "user_id": user_id, **params})


@_disk_full_is_507
def copy(rt, user_id, device_id, source, target, overwrite=True, depth_infinity=True):
    """COPY a file (a put of the same content at ``target``: no bytes are
    copied) or a folder (of every file under it; with ``Depth: 0`` only the
    folder itself), replacing what is there when ``overwrite``; one
    transaction. Dead properties and empty folders are copied too."""
    _check_target_path(source, target)
    with write():
        replaced = _remove_target(rt, user_id, device_id, target, overwrite)
        is_file, pairs, folders = _plan(user_id, source, target)
        if not is_file and not depth_infinity:
            pairs, folders = [], [(source, None)]
        library = Library(rt, user_id)
        library.load([p for pair in pairs for p in pair], conflicts=False)
        _check_pairs(library, user_id, pairs, replacing=())
        for old, new in pairs:
            head = library.head(old)
            library.put(new, device_id, head["sha256"], head["size"], head["mtime"])
        library.flush()
        now = rt.now()
        for folder, _ in folders:
            database.execute_sql(KEEP_FOLDER_SQL, {
                "user_id": user_id, "path": target + folder[len(source):], "created_at": now})
        if not is_file and not pairs:
            _keep_folder(rt, user_id, target, False)
        copied = [source] + [f for f, _ in pairs] + [f for f, _ in folders]
        if not depth_infinity:
            copied = [source]
        for old, props in properties(user_id, copied).items():
            for name, value in props.items():
                database.execute_sql(COPY_PROPERTY_SQL, {
                    "user_id": user_id, "path": target + old[len(source):], "name": name,
                    "value": value})
    return {"created": not replaced, "count": len(pairs)}


def _check_target_path(source, target):
    if not target or source.startswith(target + "/"):
        raise errors.forbidden(f"{target or 'The root'!r} holds {source!r}: it cannot be "
                               f"replaced by it.")
    if library_path(target) != target:
        raise errors.bad_request(errors.PATH_INVALID, f"{target!r} is not a valid path.")

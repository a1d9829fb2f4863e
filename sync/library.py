"""The library: the unit of work every change to a user's files goes
through, the report (SPEC §4, §5 Report), ``apply_put`` for a completed
upload, and which content a user's library holds.

A user's library is the ``entries`` table: one row per path holding its
latest state (a tombstone once deleted) and a server-wide revision. Writes
go through ``Library``, which loads the rows a batch of changes touches in
a few queries, applies the rules of the spec in memory item by item, and
writes every changed row and new conflict at once, all inside the caller's
write transaction. Conflicts are decided by ``base_rev`` and content hash,
never by clocks. The feed (``sync.feed``) and conflicts (``sync.conflicts``)
build on it.
"""

import functools
import json
import re

from . import counts, errors, paths, references
from .db import after_commit, current_rev, database, named_list, next_revs, write

MAX_REPORT_ITEMS = 1000
MAX_INT = 2 ** 63 - 1

_SQL_CHUNK = 500
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_COLUMNS = ("path", "fold", "rev", "deleted", "size", "sha256", "mtime", "device_id",
            "moved_from", "changed_at")
_SELECT = ", ".join(_COLUMNS)
_CONFLICT_KEY = ("path", "kind", "server_rev", "client_op", "client_sha256", "client_to",
                 "client_device_id")


# One entry at its new state, written over the row of its path if there is one.
UPSERT_ENTRY_SQL = """
    INSERT INTO entries (user_id, path, fold, rev, deleted, size, sha256, mtime, device_id,
                         moved_from, changed_at)
    VALUES (:user_id, :path, :fold, :rev, :deleted, :size, :sha256, :mtime, :device_id,
            :moved_from, :changed_at)
    ON CONFLICT (user_id, path) DO UPDATE SET
        fold = excluded.fold, rev = excluded.rev, deleted = excluded.deleted,
        size = excluded.size, sha256 = excluded.sha256, mtime = excluded.mtime,
        device_id = excluded.device_id, moved_from = excluded.moved_from,
        changed_at = excluded.changed_at
"""
# ``{paths}``, ``{folds}``: the placeholders of an IN list (``db.named_list``).
ENTRIES_AT_SQL = f"SELECT {_SELECT} FROM entries WHERE user_id = :user_id AND path IN ({{paths}})"
LIVE_ENTRIES_FOLDED_SQL = f"""
    SELECT {_SELECT} FROM entries WHERE user_id = :user_id AND deleted = 0 AND fold IN ({{folds}})
"""
OPEN_CONFLICTS_AT_SQL = f"""
    SELECT id, {", ".join(_CONFLICT_KEY)} FROM conflicts
    WHERE user_id = :user_id AND resolved_at IS NULL AND path IN ({{paths}})
"""
_NEW_CONFLICT_COLUMNS = (
    "id", "user_id", "created_at", "kind", "path", "server_rev", "server_op", "server_sha256",
    "server_size", "server_mtime", "server_device_id", "client_op", "client_sha256",
    "client_size", "client_mtime", "client_device_id", "client_to")
INSERT_CONFLICT_SQL = f"""
    INSERT INTO conflicts ({", ".join(_NEW_CONFLICT_COLUMNS)})
    VALUES ({", ".join(":" + c for c in _NEW_CONFLICT_COLUMNS)})
"""
RESOLVE_CONFLICT_SQL = """
    UPDATE conflicts SET resolution = :resolution, resolved_at = :resolved_at WHERE id = :id
"""
INSERT_REVISION_SQL = """
    INSERT INTO revisions (rev, user_id, path, deleted, size, sha256, mtime, device_id,
                           moved_from, moved_to, changed_at, replaced_at)
    VALUES (:rev, :user_id, :path, :deleted, :size, :sha256, :mtime, :device_id,
            :moved_from, :moved_to, :changed_at, :replaced_at)
"""
REPLACED_SQL = "UPDATE revisions SET replaced_at = :replaced_at WHERE rev = :rev"
QUEUE_CONTENT_SQL = """
    INSERT OR IGNORE INTO blob_queue (sha256, queued_at) VALUES (:sha256, :queued_at)
"""
HEAD_CONTENT_SQL = """
    SELECT sha256, size, mtime, changed_at FROM entries
    WHERE user_id = :user_id AND path = :path AND deleted = 0 AND sha256 IS NOT NULL
"""


def _chunks(items):
    items = list(items)
    for i in range(0, len(items), _SQL_CHUNK):
        yield items[i:i + _SQL_CHUNK]


def _live(entry):
    return entry if entry is not None and not entry["deleted"] else None


class Library:
    """One user's library inside a write transaction.

    ``entries`` maps each loaded path to its row (None: no row), ``live_by_fold``
    each loaded case-fold key to the live paths under it, ``held`` each loaded
    sha256 the library references to its size. Changes update these in memory
    and are written by ``flush``; revisions are numbered in order of the changes.
    """

    def __init__(self, rt, user_id):
        self.rt = rt
        self.user_id = user_id
        self.now = rt.now()
        self.entries = {}
        self.live_by_fold = {}
        self.held = {}
        self.checked_shas = set()
        self.open_conflicts = {}
        self.loaded_conflict_paths = set()
        self.dirty = {}
        self.new_conflicts = []
        self.resolved = []
        self.first_rev = None
        self.revs_used = 0
        # path -> (rev, sha256 or None, size) as the database holds it, None
        # for no row: what the maintained counts are adjusted from.
        self.original = {}
        self.bytes_delta = 0
        # History: every revision made here, in order, and the revisions of
        # rows loaded from the database that they replace.
        self.revisions = []
        self.replaced = []
        self._made = {}

    # -- loading ------------------------------------------------------------

    def load(self, path_list=(), shas=(), conflicts=True):
        """Load the rows of ``path_list``, the live rows sharing their case
        folds, the unresolved conflicts on them (unless ``conflicts`` is
        false), and which of ``shas`` are held."""
        uid = self.user_id
        new_paths = [p for p in set(path_list) if p not in self.entries]
        for chunk in _chunks(new_paths):
            marks, params = named_list("path", chunk)
            for row in database.execute_sql(ENTRIES_AT_SQL.format(paths=marks),
                                            {"user_id": uid, **params}):
                self.entries[row[0]] = entry = dict(zip(_COLUMNS, row))
                self.original[row[0]] = _original(entry)
        for p in new_paths:
            self.entries.setdefault(p, None)
            self.original.setdefault(p, None)
        self._load_folds({paths.fold(p) for p in path_list})
        if conflicts:
            self._load_conflicts(path_list)
        self._load_held(shas)

    def _load_folds(self, folds):
        new_folds = {f for f in folds if f not in self.live_by_fold}
        for chunk in _chunks(new_folds):
            marks, params = named_list("fold", chunk)
            for row in database.execute_sql(LIVE_ENTRIES_FOLDED_SQL.format(folds=marks),
                                            {"user_id": self.user_id, **params}):
                entry = dict(zip(_COLUMNS, row))
                self.entries.setdefault(entry["path"], entry)
                self.original.setdefault(entry["path"], _original(entry))
        # The rows in memory are newer than the database for paths changed here.
        for f in new_folds:
            self.live_by_fold[f] = set()
        for path, entry in self.entries.items():
            if entry is not None and entry["fold"] in new_folds and not entry["deleted"]:
                self.live_by_fold[entry["fold"]].add(path)

    def _load_conflicts(self, path_list):
        new_paths = [p for p in set(path_list) if p not in self.loaded_conflict_paths]
        self.loaded_conflict_paths.update(new_paths)
        for chunk in _chunks(new_paths):
            marks, params = named_list("path", chunk)
            for row in database.execute_sql(OPEN_CONFLICTS_AT_SQL.format(paths=marks),
                                            {"user_id": self.user_id, **params}):
                self.open_conflicts[tuple(row[1:])] = row[0]

    def _load_held(self, shas):
        new = [s for s in set(shas) if s not in self.checked_shas]
        self.checked_shas.update(new)
        for chunk in _chunks(new):
            for sha, size in database.execute_sql(
                    references.HELD_SIZES_SQL,
                    {"user_id": self.user_id, "shas": json.dumps(chunk)}):
                if size is not None:
                    self.held[sha] = size

    # -- changing -----------------------------------------------------------

    def head(self, path):
        return _live(self.entries.get(path))

    def clash(self, path, ignore=()):
        """A live entry whose path differs from ``path`` only by case."""
        live = self.live_by_fold.get(paths.fold(path))
        if not live:
            return None
        others = sorted(p for p in live if p != path and p not in ignore)
        return self.entries[others[0]] if others else None

    def renumber(self, first_rev):
        """Give the changes made so far revisions from ``first_rev`` on: for
        changes planned outside the write transaction, once it holds the
        lock (other users' writes took the revisions planned on)."""
        if self.first_rev is None or first_rev == self.first_rev:
            return
        delta = first_rev - self.first_rev
        for revision in self.revisions:  # every changed entry is one of them
            revision["rev"] += delta
        self.first_rev = first_rev

    def _next_rev(self):
        if self.first_rev is None:
            self.first_rev = current_rev() + 1
        rev = self.first_rev + self.revs_used
        self.revs_used += 1
        return rev

    def _set(self, path, device_id, sha256=None, size=None, mtime=None, moved_from=None,
             moved_to=None):
        deleted = sha256 is None
        entry = {"path": path, "fold": paths.fold(path), "rev": self._next_rev(),
                 "deleted": 1 if deleted else 0, "size": size, "sha256": sha256,
                 "mtime": mtime, "device_id": device_id, "moved_from": moved_from,
                 "changed_at": self.now}
        self._record(path, entry, moved_to)
        self.entries[path] = entry
        self.dirty[path] = entry
        live = self.live_by_fold.setdefault(entry["fold"], set())
        if deleted:
            live.discard(path)
        else:
            live.add(path)
            self.held[sha256] = size
        return entry

    def _record(self, path, entry, moved_to):
        """Keep ``entry`` as a revision, and mark the one it replaces."""
        earlier = self._made.get(path)
        if earlier is not None:
            earlier["replaced_at"] = self.now
        elif self.entries.get(path) is not None:
            self.replaced.append({"replaced_at": self.now, "rev": self.entries[path]["rev"]})
        # The entry itself is the revision (a new dict for every change).
        entry["moved_to"], entry["replaced_at"] = moved_to, None
        self._made[path] = entry
        self.revisions.append(entry)

    def put(self, path, device_id, sha256, size, mtime, moved_from=None):
        return self._set(path, device_id, sha256, size, mtime, moved_from)

    def delete(self, path, device_id, moved_to=None):
        return self._set(path, device_id, moved_to=moved_to)

    def move(self, source, target, device_id):
        """Tombstone ``source`` and put its content at ``target``; the put's entry."""
        entry = self.head(source)
        self.delete(source, device_id, moved_to=target)
        return self.put(target, device_id, entry["sha256"], entry["size"], entry["mtime"],
                        moved_from=source)

    def conflict(self, kind, path, server, client):
        """Record a conflict (or find the same unresolved one); its id."""
        row = {"path": path, "kind": kind,
               "server_rev": server["rev"] if server else None,
               "server_op": (None if server is None
                             else "delete" if server["deleted"] else "put"),
               "server_sha256": server["sha256"] if server else None,
               "server_size": server["size"] if server else None,
               "server_mtime": server["mtime"] if server else None,
               "server_device_id": server["device_id"] if server else None,
               "client_op": client["op"], "client_sha256": client.get("sha256"),
               "client_size": client.get("size"), "client_mtime": client.get("mtime"),
               "client_device_id": client["device_id"], "client_to": client.get("to")}
        key = tuple(row[k] for k in _CONFLICT_KEY)
        existing = self.open_conflicts.get(key)
        if existing is not None:
            return existing
        row["id"] = self.rt.idgen()
        row["created_at"] = self.now
        self.new_conflicts.append(row)
        self.open_conflicts[key] = row["id"]
        if row["client_sha256"] is not None:
            self.held[row["client_sha256"]] = row["client_size"]
        return row["id"]

    def resolve_conflict(self, row, resolution):
        """Mark the conflict ``row`` resolved (written by ``flush``)."""
        row["resolution"], row["resolved_at"] = resolution, self.now
        self.resolved.append(row)

    def _originals(self):
        """The database's rows of the changed paths, for the counts."""
        missing = [p for p in self.dirty if p not in self.original]
        for chunk in _chunks(missing):
            marks, params = named_list("path", chunk)
            for row in database.execute_sql(ENTRIES_AT_SQL.format(paths=marks),
                                            {"user_id": self.user_id, **params}):
                self.original[row[0]] = _original(dict(zip(_COLUMNS, row)))
        return {p: self.original.get(p) for p in self.dirty}

    def flush(self):
        """Write the changed rows, new conflicts and resolutions, and adjust
        the maintained counts and the queue of content that may have lost its
        last reference (inside the caller's transaction). Every change of a
        library passes here: once the transaction commits, the requests
        waiting for this user's changes wake (``sync.wait``)."""
        originals = self._originals()
        sizes = {}  # content whose holders may change -> its size
        dropped = set()  # content a row stopped referring to
        for path, old in originals.items():
            new = self.dirty[path]
            if old is not None and old[1] is not None:
                sizes[old[1]] = old[2]
                if old[1] != new["sha256"]:
                    dropped.add(old[1])
            if new["sha256"] is not None:
                sizes[new["sha256"]] = new["size"]
        for row in self.new_conflicts:
            if row["client_sha256"] is not None:
                sizes[row["client_sha256"]] = row["client_size"]
        for row in self.resolved:
            if row["client_sha256"] is not None:
                sizes[row["client_sha256"]] = row["client_size"]
                dropped.add(row["client_sha256"])
            if row["server_sha256"] is not None:
                dropped.add(row["server_sha256"])
        before = counts.held(self.user_id, sizes)
        if self.revs_used:
            first = next_revs(self.revs_used)
            if first != self.first_rev:
                raise RuntimeError("revisions were taken by another writer in this transaction")
            after_commit(functools.partial(self.rt.waiters.notify, self.user_id))
        cursor = database.cursor()
        if self.dirty:
            cursor.executemany(UPSERT_ENTRY_SQL,
                               [dict(e, user_id=self.user_id) for e in self.dirty.values()])
        if self.new_conflicts:
            cursor.executemany(INSERT_CONFLICT_SQL, [dict(row, user_id=self.user_id)
                                                     for row in self.new_conflicts])
        if self.resolved:
            cursor.executemany(RESOLVE_CONFLICT_SQL, self.resolved)
        after = counts.held(self.user_id, sizes)
        self.bytes_delta = (sum(sizes[s] or 0 for s in after - before)
                            - sum(sizes[s] or 0 for s in before - after))
        files = sum((not new["deleted"]) - (old is not None and old[1] is not None)
                    for new, old in ((self.dirty[p], o) for p, o in originals.items()))
        counts.add_user(self.user_id, bytes_=self.bytes_delta, files=files,
                        open_conflicts=len(self.new_conflicts) - len(self.resolved))
        counts.entries_changed(self.user_id,
                               [old[0] for old in originals.values() if old is not None],
                               sum(1 for old in originals.values() if old is None))
        queue_content(dropped - after, self.now)
        for path, entry in self.dirty.items():
            self.original[path] = _original(entry)
        if self.revisions:
            cursor.executemany(INSERT_REVISION_SQL, (dict(r, user_id=self.user_id)
                                                     for r in self.revisions))
        if self.replaced:
            cursor.executemany(REPLACED_SQL, self.replaced)
        self.dirty = {}
        self.new_conflicts = []
        self.resolved = []
        self.first_rev = None
        self.revs_used = 0
        self.revisions = []
        self.replaced = []
        self._made = {}

    def check_quota(self, advice):
        """After ``flush``, inside the caller's transaction: 507
        ``quota_exceeded`` when the user's content is now over ``--quota``
        and these changes freed none of it. The caller's transaction then
        rolls back, so nothing changes. ``advice`` says what to do instead."""
        quota = self.rt.config.quota
        if quota and self.bytes_delta >= 0 and counts.usage(self.user_id) > quota:
            raise errors.SyncError(
                507, errors.QUOTA_EXCEEDED,
                f"Your content would be over its quota of {quota} bytes: {advice}")

    # -- the rules of a report ----------------------------------------------

    def report_put(self, device_id, path, sha256, size, mtime, base_rev, held):
        """A put; ``held``: the server holds this content for the user."""
        head = self.head(path)
        if head is not None and head["sha256"] == sha256:
            return _result("unchanged", head["rev"])
        if not held:
            return _result("upload_required")
        client = {"op": "put", "sha256": sha256, "size": size, "mtime": mtime,
                  "device_id": device_id}
        if head is not None:
            if base_rev == head["rev"]:
                return _result("applied", self.put(path, device_id, sha256, size, mtime)["rev"])
            return _result("conflict", head["rev"],
                           self.conflict("modify_modify", path, head, client))
        other = self.clash(path)
        if other is not None:
            return _result("conflict", None, self.conflict("case_clash", path, other, client))
        # The head is a deletion or there is none: an edit beats a delete.
        return _result("applied", self.put(path, device_id, sha256, size, mtime)["rev"])

    def report_delete(self, device_id, path, base_rev):
        head = self.head(path)
        if head is None:
            return _result("unchanged")
        if base_rev == head["rev"]:
            return _result("applied", self.delete(path, device_id)["rev"])
        return _result("conflict", head["rev"], self.conflict(
            "delete_modify", path, head, {"op": "delete", "device_id": device_id}))

    def report_move(self, device_id, source, target, base_rev):
        head = self.head(source)
        client = {"op": "move", "device_id": device_id, "to": target}
        if head is None or base_rev != head["rev"]:
            server = head or self.entries.get(source)
            return _result("conflict", head and head["rev"],
                           self.conflict("move", source, server, client))
        target_head = self.head(target)
        if target_head is not None:
            return _result("conflict", head["rev"],
                           self.conflict("move", source, target_head, client))
        other = self.clash(target, ignore=(source,))
        if other is not None:
            return _result("conflict", head["rev"],
                           self.conflict("case_clash", source, other, client))
        return _result("applied", self.move(source, target, device_id)["rev"])


def _original(entry):
    return (entry["rev"], None if entry["deleted"] else entry["sha256"], entry["size"])


def _result(status, rev=None, conflict_id=None):
    result = {"status": status, "rev": rev}
    if conflict_id is not None:
        result["conflict_id"] = conflict_id
    return result


# -- content and uploads -------------------------------------------------------

def content_referenced(shas):
    """The subset of ``shas`` that something still refers to
    (``references.CONTENT_REFERENCED_SQL``)."""
    found = set()
    for chunk in _chunks(shas):
        found.update(row[0] for row in database.execute_sql(
            references.CONTENT_REFERENCED_SQL, {"shas": json.dumps(chunk)}))
    return found


def queue_content(shas, now):
    """Queue content that may have lost its last reference for the clean-up
    (inside the write transaction that dropped the reference)."""
    shas = [s for s in shas if s is not None]
    if shas:
        database.cursor().executemany(
            QUEUE_CONTENT_SQL, [{"sha256": s, "queued_at": now} for s in shas])


def holds_content(user_id, sha256):
    """Whether the user's library references this content: a live entry with
    that sha256, or the client side of one of the user's unresolved conflicts
    (``references.HOLDS_CONTENT_SQL``)."""
    row = database.execute_sql(references.HOLDS_CONTENT_SQL,
                               {"user_id": user_id, "sha256": sha256}).fetchone()
    return row is not None


def head_content(user_id, path):
    """``(sha256, size, mtime, changed_at)`` of the live head of a user's
    ``path`` (already normalized), or None for an unknown or deleted path."""
    return database.execute_sql(
        HEAD_CONTENT_SQL, {"user_id": user_id, "path": path}).fetchone()


def apply_put(rt, user_id, device_id, path, sha256, size, mtime, base_rev):
    """Apply a put whose content the server holds, by the rules of a report.

    Must be called inside ``sync.db.write()``; ``path`` is already normalized.
    Returns ``{"status": "applied"|"unchanged"|"conflict", "rev", "conflict_id"?}``
    where ``rev`` is the applied rev, or the head's rev (None without a live head).
    """
    library = Library(rt, user_id)
    library.load([path], [sha256])
    result = library.report_put(device_id, path, sha256, size, mtime, base_rev, held=True)
    library.flush()
    return result






# -- reports -------------------------------------------------------------------

class _Rejected(Exception):
    """An invalid report item; the message says why."""


def _check_int(item, key, minimum=None, nullable=False):
    value = item.get(key)
    if value is None and nullable and key in item:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an integer or null" if nullable else "an integer"
        raise _Rejected(f"'{key}' must be {kind}.")
    if not (minimum if minimum is not None else -MAX_INT) <= value <= MAX_INT:
        raise _Rejected(f"'{key}' is out of range.")
    return value


def _check_path(item, key):
    if key not in item:
        raise _Rejected(f"'{key}' is required.")
    try:
        return paths.normalize(item[key])
    except paths.PathError as exc:
        raise _Rejected(str(exc)) from None


def _parse_item(item):
    """(op, path, args) of a report item, or ``_Rejected``."""
    if not isinstance(item, dict):
        raise _Rejected("An item must be a JSON object.")
    op = item.get("op")
    if op not in ("put", "delete", "move"):
        raise _Rejected("'op' must be 'put', 'delete' or 'move'.")
    path = _check_path(item, "path")
    base_rev = _check_int(item, "base_rev", minimum=0, nullable=True)
    if op == "put":
        sha = item.get("sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise _Rejected("'sha256' must be 64 hexadecimal digits.")
        return op, path, (sha.lower(), _check_int(item, "size", minimum=0),
                          _check_int(item, "mtime"), base_rev)
    if op == "delete":
        return op, path, (base_rev,)
    target = _check_path(item, "to")
    if target == path:
        raise _Rejected("'to' is the same path as 'path'.")
    return op, path, (target, base_rev)


def _echo_path(item):
    """The ``path`` of a rejected item as sent, when it can be sent back."""
    path = item.get("path") if isinstance(item, dict) else None
    if not isinstance(path, str):
        return None
    try:
        path.encode("utf-8")  # a lone surrogate from JSON cannot be
    except UnicodeError:
        return None
    return path


def _parse_report(body):
    items = body.get("changes")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_REPORT_ITEMS:
        raise errors.bad_request(
            errors.BODY_INVALID,
            f"'changes' must be a list of 1 to {MAX_REPORT_ITEMS} items.")
    return items


def report(rt, user_id, device_id, body):
    """Apply a device's report: every item by the rules of the spec, each
    atomically, all in one write transaction. One result per item, in order."""
    items = _parse_report(body)
    parsed = []
    for item in items:
        try:
            parsed.append(_parse_item(item))
        except _Rejected as exc:
            parsed.append(("rejected", _echo_path(item), str(exc)))
    touched, shas = [], []
    for op, path, args in parsed:
        if op != "rejected":
            touched.append(path)
        if op == "move":
            touched.append(args[0])
        elif op == "put":
            shas.append(args[0])
    results = []
    with write():
        library = Library(rt, user_id)
        library.load(touched, shas)
        for op, path, args in parsed:
            if op == "rejected":
                result = {"status": "rejected", "error": args}
            elif op == "put":
                sha, size, mtime, base_rev = args
                held_size = library.held.get(sha)
                if held_size is not None and held_size != size:
                    result = {"status": "rejected",
                              "error": f"'size' is {size} but the content with this "
                                       f"sha256 has {held_size} bytes."}
                else:
                    result = library.report_put(device_id, path, sha, size, mtime, base_rev,
                                                held=held_size is not None)
            elif op == "delete":
                result = library.report_delete(device_id, path, *args)
            else:
                result = library.report_move(device_id, path, *args)
            if result.get("rev") is None:
                result.pop("rev", None)
            results.append({"path": path, **result})
        library.flush()
    return {"results": results}

"""A sync folder's own state in ``FOLDER/.sync/`` (mode 0700, files 0600):
``config.json`` (server address, device id and name), ``token`` (the device
token) and ``state.sqlite3`` with the tables ``synced`` (per path, the rev,
sha256, size and local mtime at which the local file last matched the
server: the base of both sides), ``remote`` (the server's live heads as
read from the feed, with the cursor in ``meta``), ``hashes`` (a cache of
local hashes by size and mtime), ``uploads`` (sessions in progress, so an
interrupted upload resumes) and ``conflicts`` (this device's open ones,
whose paths are left alone)."""

import json
import os
import sqlite3
import sys
import threading
from collections import namedtuple

SYNC_DIR = ".sync"
CONFIG = "config.json"
TOKEN = "token"
DATABASE = "state.sqlite3"
TMP_DIR = "tmp"

Synced = namedtuple("Synced", "path rev sha256 size mtime_ns")
Remote = namedtuple("Remote", "path rev sha256 size mtime moved_from")
Upload = namedtuple("Upload", "path upload_id sha256 size base_rev")
Conflict = namedtuple("Conflict", "id path kind to client_op client_sha256")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS synced (
    path TEXT PRIMARY KEY, rev INTEGER NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS remote (
    path TEXT PRIMARY KEY, rev INTEGER NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, mtime INTEGER, moved_from TEXT);
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    path TEXT PRIMARY KEY, upload_id TEXT NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, base_rev INTEGER);
CREATE TABLE IF NOT EXISTS conflicts (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT, to_path TEXT,
    client_op TEXT, client_sha256 TEXT);
"""

# A newly attached device keeps what the folder knows, not the old device's
# conflicts, sessions and ack.
FORGET_DEVICE_SQL = (
    "DELETE FROM conflicts",
    "DELETE FROM uploads",
    "DELETE FROM meta WHERE key = 'acked'",
)
GET_SQL = "SELECT value FROM meta WHERE key = :key"
PUT_SQL = "INSERT OR REPLACE INTO meta (key, value) VALUES (:key, :value)"
DROP_SQL = "DELETE FROM meta WHERE key = :key"
SYNCED_SQL = "SELECT path, rev, sha256, size, mtime_ns FROM synced"
SET_SYNCED_SQL = """
    INSERT OR REPLACE INTO synced (path, rev, sha256, size, mtime_ns)
    VALUES (:path, :rev, :sha256, :size, :mtime_ns)
"""
DROP_SYNCED_SQL = "DELETE FROM synced WHERE path = :path"
REMOTE_SQL = "SELECT path, rev, sha256, size, mtime, moved_from FROM remote"
REMOTE_ENTRY_SQL = REMOTE_SQL + " WHERE path = :path"
SET_REMOTE_SQL = """
    INSERT OR REPLACE INTO remote (path, rev, sha256, size, mtime, moved_from)
    VALUES (:path, :rev, :sha256, :size, :mtime, :moved_from)
"""
DROP_REMOTE_SQL = "DELETE FROM remote WHERE path = :path"
DROP_ALL_REMOTE_SQL = "DELETE FROM remote"
CACHED_HASH_SQL = """
    SELECT sha256 FROM hashes WHERE path = :path AND size = :size AND mtime_ns = :mtime_ns
"""
REMEMBER_HASH_SQL = """
    INSERT OR REPLACE INTO hashes (path, size, mtime_ns, sha256)
    VALUES (:path, :size, :mtime_ns, :sha256)
"""
HASHED_PATHS_SQL = "SELECT path FROM hashes"
FORGET_HASH_SQL = "DELETE FROM hashes WHERE path = :path"
UPLOADS_SQL = "SELECT path, upload_id, sha256, size, base_rev FROM uploads"
UPLOAD_SQL = UPLOADS_SQL + " WHERE path = :path"
SET_UPLOAD_SQL = """
    INSERT OR REPLACE INTO uploads (path, upload_id, sha256, size, base_rev)
    VALUES (:path, :upload_id, :sha256, :size, :base_rev)
"""
DROP_UPLOAD_SQL = "DELETE FROM uploads WHERE path = :path"
CONFLICTS_SQL = "SELECT id, path, kind, to_path, client_op, client_sha256 FROM conflicts"
ADD_CONFLICT_SQL = """
    INSERT OR REPLACE INTO conflicts (id, path, kind, to_path, client_op, client_sha256)
    VALUES (:id, :path, :kind, :to, :client_op, :client_sha256)
"""
DROP_CONFLICT_SQL = "DELETE FROM conflicts WHERE id = :id"


def _by_path(kind, rows):
    """``{path: kind(*row)}``; the path and sha256 strings are interned, so the
    views of one pass (the scan, synced, remote) share one copy of each: at
    100,000 files that is tens of MiB."""
    intern = sys.intern
    found = {}
    for row in rows:
        path = intern(row[0])
        found[path] = kind(path, row[1], intern(row[2]), *row[3:])
    return found


class FolderError(Exception):
    """The folder is not a usable sync folder (the message says why)."""


def sync_dir(folder):
    return os.path.join(folder, SYNC_DIR)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)


def enclosing_sync_folder(folder):
    """The sync folder ``folder`` lies inside, or None."""
    parent = os.path.dirname(os.path.abspath(folder))
    while True:
        if os.path.isdir(sync_dir(parent)):
            return parent
        up = os.path.dirname(parent)
        if up == parent:
            return None
        parent = up


def contained_sync_folder(folder):
    """A sync folder somewhere under ``folder`` (not ``folder`` itself), or None."""
    for root, dirs, _files in os.walk(folder):
        if root != folder and SYNC_DIR in dirs:
            return root
        dirs[:] = sorted(d for d in dirs if d != SYNC_DIR)
    return None


def nesting_problem(folder):
    """Why ``folder`` cannot become a sync folder because of another one, or None."""
    outer = enclosing_sync_folder(folder)
    if outer is not None:
        return (f"{folder} is inside the sync folder {outer}: choose a folder outside it "
                "(its files would be synced twice, and this folder's token sent to the server)")
    inner = contained_sync_folder(folder)
    if inner is not None:
        return (f"{folder} holds the sync folder {inner}: choose a folder that does not "
                "contain another sync folder")
    return None


def init_folder(folder, server, device, token, ca_bundle=None):
    """Create ``FOLDER/.sync/`` for a freshly registered ``device``."""
    os.makedirs(folder, exist_ok=True)
    base = sync_dir(folder)
    if os.path.exists(base):
        raise FolderError(f"{base} already exists: this folder is already a sync folder")
    os.mkdir(base, 0o700)
    os.chmod(base, 0o700)
    config = {"server": server, "device_id": device["id"], "device_name": device["name"]}
    if ca_bundle:
        config["ca_bundle"] = ca_bundle
    _write_private(os.path.join(base, TOKEN), token + "\n")
    write_config(folder, config)
    State.open(folder).close()


def read_config(folder):
    """``config.json`` as it is (an empty dict when it cannot be read)."""
    try:
        with open(os.path.join(sync_dir(folder), CONFIG), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def write_config(folder, config):
    config = {k: v for k, v in config.items() if k != "token"}
    _write_private(os.path.join(sync_dir(folder), CONFIG), json.dumps(config, indent=2) + "\n")


def reattach_folder(folder, server, device, token, ca_bundle=None):
    """Give an existing sync folder a newly registered ``device``. What the
    folder knows (the bases, the server's heads, the cursor) stays, so files
    are matched by content and nothing is sent or fetched again; the old
    device's open conflicts and upload sessions are its own, and are
    forgotten; the new device acknowledges the feed afresh."""
    base = sync_dir(folder)
    os.makedirs(base, mode=0o700, exist_ok=True)
    config = read_config(folder)
    config.update({"server": server, "device_id": device["id"], "device_name": device["name"]})
    if ca_bundle:
        config["ca_bundle"] = ca_bundle
    _write_private(os.path.join(base, TOKEN), token + "\n")
    write_config(folder, config)
    state = State.open(folder)
    try:
        with state.transaction():
            for statement in FORGET_DEVICE_SQL:
                state.conn.execute(statement)
    finally:
        state.close()


def load_config(folder):
    """The folder's config dict with its ``token``; ``FolderError`` when the
    folder has no ``.sync/`` (the client never runs on such a folder: an
    unmounted or emptied folder must not read as 'delete everything')."""
    base = sync_dir(folder)
    if not os.path.isdir(folder):
        raise FolderError(f"{folder} is not a directory")
    if not os.path.isdir(base):
        raise FolderError(f"{base} is missing: not a sync folder (run init first); "
                          "refusing to run")
    try:
        with open(os.path.join(base, CONFIG), encoding="utf-8") as f:
            config = json.load(f)
        with open(os.path.join(base, TOKEN), encoding="utf-8") as f:
            config["token"] = f.read().strip()
    except (OSError, ValueError) as exc:
        raise FolderError(f"{base} is damaged ({exc}): run `init FOLDER --reattach --server URL "
                          "--token USER_TOKEN` to register it again") from None
    return config


def _locked(method):
    def locked(self, *args, **kw):
        with self.lock:
            return method(self, *args, **kw)
    locked.__name__ = method.__name__
    locked.__doc__ = method.__doc__
    return locked


class State:
    """The folder's SQLite state database: one connection, shared by the
    transfer threads under one lock (a transaction holds it throughout)."""

    def __init__(self, conn):
        self.conn = conn
        self.lock = threading.RLock()

    @classmethod
    def open(cls, folder):
        path = os.path.join(sync_dir(folder), DATABASE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("PRAGMA synchronous=normal")
        conn.executescript(SCHEMA)
        return cls(conn)

    def close(self):
        self.conn.close()

    def transaction(self):
        return _Transaction(self.conn, self.lock)

    # meta
    @_locked
    def get(self, key, default=None):
        row = self.conn.execute(GET_SQL, {"key": key}).fetchone()
        return row[0] if row else default

    @_locked
    def put(self, key, value):
        self.conn.execute(DROP_SQL if value is None else PUT_SQL, {"key": key, "value": value})

    # synced
    @_locked
    def synced(self):
        return _by_path(Synced, self.conn.execute(SYNCED_SQL))

    @_locked
    def set_synced(self, path, rev, sha256, size, mtime_ns):
        self.conn.execute(SET_SYNCED_SQL, {"path": path, "rev": rev, "sha256": sha256,
                                           "size": size, "mtime_ns": mtime_ns})

    @_locked
    def drop_synced(self, path):
        self.conn.execute(DROP_SYNCED_SQL, {"path": path})

    @_locked
    def replace_synced(self, before, after):
        """Write the difference between two ``synced()`` views."""
        for path in before:
            if path not in after:
                self.drop_synced(path)
        for path, s in after.items():
            if before.get(path) != s:
                self.set_synced(*s)

    # remote
    @_locked
    def remote(self):
        return _by_path(Remote, self.conn.execute(REMOTE_SQL))

    @_locked
    def remote_entry(self, path):
        row = self.conn.execute(REMOTE_ENTRY_SQL, {"path": path}).fetchone()
        return Remote(*row) if row else None

    @_locked
    def set_remote(self, path, rev, sha256, size, mtime, moved_from=None):
        self.conn.execute(SET_REMOTE_SQL, {"path": path, "rev": rev, "sha256": sha256,
                                           "size": size, "mtime": mtime,
                                           "moved_from": moved_from})

    @_locked
    def drop_remote(self, path):
        self.conn.execute(DROP_REMOTE_SQL, {"path": path})

    @_locked
    def apply_feed(self, changes, cursor, relisted):
        """Record a whole feed read in one transaction: the heads it carries
        and the cursor after them. A relist replaces every remote head."""
        with self.transaction():
            if relisted:
                self.conn.execute(DROP_ALL_REMOTE_SQL)
            for change in changes:
                if change["op"] == "delete":
                    self.drop_remote(change["path"])
                else:
                    self.set_remote(change["path"], change["rev"], change["sha256"],
                                    change["size"], change.get("mtime"),
                                    change.get("moved_from"))
            self.put("cursor", cursor)

    # hashes
    @_locked
    def cached_hash(self, path, size, mtime_ns):
        row = self.conn.execute(
            CACHED_HASH_SQL, {"path": path, "size": size, "mtime_ns": mtime_ns}).fetchone()
        return row[0] if row else None

    @_locked
    def remember_hash(self, path, size, mtime_ns, sha256):
        self.conn.execute(REMEMBER_HASH_SQL, {"path": path, "size": size,
                                              "mtime_ns": mtime_ns, "sha256": sha256})

    @_locked
    def forget_hashes(self, keep):
        """Drop cached hashes of paths not in ``keep`` (files gone from disk)."""
        stale = [r[0] for r in self.conn.execute(HASHED_PATHS_SQL) if r[0] not in keep]
        with self.transaction():
            for path in stale:
                self.conn.execute(FORGET_HASH_SQL, {"path": path})

    # uploads
    @_locked
    def upload(self, path):
        row = self.conn.execute(UPLOAD_SQL, {"path": path}).fetchone()
        return Upload(*row) if row else None

    @_locked
    def uploads(self):
        return [Upload(*r) for r in self.conn.execute(UPLOADS_SQL)]

    @_locked
    def set_upload(self, path, upload_id, sha256, size, base_rev):
        self.conn.execute(SET_UPLOAD_SQL, {"path": path, "upload_id": upload_id,
                                           "sha256": sha256, "size": size,
                                           "base_rev": base_rev})

    @_locked
    def drop_upload(self, path):
        self.conn.execute(DROP_UPLOAD_SQL, {"path": path})

    # conflicts
    @_locked
    def conflicts(self):
        return {r[0]: Conflict(*r) for r in self.conn.execute(CONFLICTS_SQL)}

    @_locked
    def add_conflict(self, conflict):
        self.conn.execute(ADD_CONFLICT_SQL, Conflict(*conflict)._asdict())

    @_locked
    def drop_conflict(self, conflict_id):
        self.conn.execute(DROP_CONFLICT_SQL, {"id": conflict_id})


class _Transaction:
    def __init__(self, conn, lock):
        self.conn = conn
        self.lock = lock

    def __enter__(self):
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


class FolderLock:
    """An exclusive lock on the folder for one pass: two clients syncing one
    folder at once would each act on a stale view of the other's work."""

    def __init__(self, folder):
        self.path = os.path.join(sync_dir(folder), "lock")
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; run one client at a time
            return self
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise FolderError("another sync of this folder is running") from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

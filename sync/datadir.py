"""The data directory (SPEC §2): the names of the files in it, creating its
layout, the lock a server holds on it, whether a server is running on it,
and opening the database file of an existing one.

``serve`` holds an exclusive ``flock`` on ``DATA_DIR/server.lock`` for its
whole life; ``restore`` and ``check --repair`` take the same lock and refuse
while a server holds it.
"""

import fcntl
import os
import sqlite3

from .fsutil import make_private_dir

DB_NAME = "sync.sqlite3"
SECRET_NAME = "secret.key"
LOCK_NAME = "server.lock"
BLOBS_DIR = "blobs"
SPOOL_DIR = "spool"


class DataDirError(Exception):
    """The data directory cannot be used for what was asked; the message says why."""


def prepare(config):
    """Create the data directory and its ``blobs/`` and ``spool/`` folders (0700)."""
    make_private_dir(config.data_dir)
    for sub in (BLOBS_DIR, SPOOL_DIR):
        make_private_dir(config.path(sub))


def lock_data_dir(config):
    """Take the data directory's exclusive lock and return its file
    descriptor (the lock lasts until it is closed or the process exits).
    Raises ``DataDirError`` when a server (or a restore) holds it."""
    path = config.path(LOCK_NAME)
    try:
        make_private_dir(config.data_dir)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError as exc:
        raise DataDirError(f"the data directory {config.data_dir} is not writable "
                           f"({exc.strerror}: {exc.filename})") from None
    except OSError as exc:
        raise DataDirError(f"cannot open the data directory {config.data_dir}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataDirError(f"a server (pid {holder}) is using {config.data_dir}; stop it "
                           f"first (systemctl stop sync-server)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def server_running(config):
    """Whether a process holds the data directory's lock (without taking it)."""
    path = config.path(LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def open_existing(path, readonly=False):
    """An autocommit sqlite3 connection to a database file that must exist."""
    if not os.path.isfile(path):
        raise DataDirError(f"there is no database at {path}")
    mode = "ro" if readonly else "rw"
    try:
        conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True,
                               isolation_level=None, timeout=30)
        conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise DataDirError(f"cannot read the database {path}: {exc}") from None
    return conn

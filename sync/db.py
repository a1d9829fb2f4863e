"""The SQLite database: deferred initialisation, pragmas, schema, writes.

``database`` is created unbound at import; ``init_db(path)`` binds it to the
file, applies ``schema.sql`` to a new database and checks the schema
version. Writers wrap their work in ``write()`` (``BEGIN IMMEDIATE``: the
write lock is taken at the start, so two writers queue on the busy timeout
instead of failing with "database is locked" when one upgrades a read).
"""

import contextlib
import os
import secrets
import threading

import peewee

from . import assets, migrations
from .datadir import DB_NAME, DataDirError, open_existing, server_running

SCHEMA_VERSION = 7
SCHEMA_PATH = assets.path("schema.sql")
BUSY_TIMEOUT_S = 30

META_SQL = "SELECT value FROM meta WHERE key = :key"
# A new database's id (random) and revision counter, kept once set.
INIT_META_SQL = """
    INSERT OR IGNORE INTO meta (key, value) VALUES ('db_id', :db_id), ('rev', '0')
"""
# Reserve ``:count`` revisions: the counter after them.
NEXT_REVS_SQL = """
    UPDATE meta SET value = CAST(value AS INTEGER) + :count WHERE key = 'rev'
    RETURNING CAST(value AS INTEGER)
"""

PRAGMAS = (
    ("journal_mode", "wal"),
    ("synchronous", "full"),  # a committed write survives power loss
    ("foreign_keys", 1),
    # SQLite's default page cache per connection: every server thread keeps
    # its connection and its cache, so a larger one is paid once per thread,
    # and the OS caches the file anyway (bench/feed.py; bench/README.md).
    ("cache_size", -2000),
    ("busy_timeout", BUSY_TIMEOUT_S * 1000),
)

database = peewee.SqliteDatabase(None)


class SchemaError(Exception):
    """The database file cannot be used by this version of the server."""


def schema_sql():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return f.read()


def init_db(path, steps=None, fsync=True):
    """Bind ``database`` to ``path``, creating the schema or migrating an
    older one (``sync.migrations``; ``steps`` replaces its ``STEPS``).

    Returns the database id (a random string fixed at creation).
    """
    steps = migrations.STEPS if steps is None else steps
    known = migrations.latest(steps, SCHEMA_VERSION)
    database.init(path, pragmas=PRAGMAS, timeout=BUSY_TIMEOUT_S)
    with database.connection_context():
        version = database.execute_sql("PRAGMA user_version").fetchone()[0]
        if version > known:
            raise SchemaError(
                f"{path} was written by a newer version of the server (schema "
                f"{version}; this one knows {known}). Upgrade the server, or "
                f"restore a backup made by this version.")
        if version == 0:
            # One script, one transaction: a crash leaves version 0 and an
            # idempotent script to run again.
            database.connection().executescript(
                "BEGIN IMMEDIATE;\n" + schema_sql()
                + f"\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;\n")
        try:
            migrations.upgrade(database.connection(), path, steps, fsync=fsync)
        except migrations.MigrationError as exc:
            raise SchemaError(str(exc)) from None
        with write():
            database.execute_sql(INIT_META_SQL, {"db_id": secrets.token_hex(8)})
        return meta_get("db_id")


_pending = threading.local()  # callbacks waiting for this thread's commit


@contextlib.contextmanager
def quick_write(wait_ms):
    """A write transaction that waits at most ``wait_ms`` for the write lock
    (instead of the busy timeout) and raises ``OperationalError`` ("database
    is locked") after that: for bookkeeping that may be skipped."""
    database.execute_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")
    try:
        with database.atomic("IMMEDIATE"):
            yield
    finally:
        database.execute_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")


@contextlib.contextmanager
def write():
    """A write transaction: ``with write(): ...`` (nests as a savepoint).

    When the outermost transaction commits, the callbacks given to
    ``after_commit`` inside it run (in order); a rollback drops them.
    """
    try:
        with database.atomic("IMMEDIATE"):
            yield
    except BaseException:
        if not database.in_transaction():
            _pending.callbacks = []
        raise
    if not database.in_transaction():
        run_after_commit()


def after_commit(callback):
    """Run ``callback()`` once the current write transaction has committed
    (at once outside a transaction). It must not raise."""
    if not database.in_transaction():
        callback()
        return
    callbacks = getattr(_pending, "callbacks", None)
    if callbacks is None:
        callbacks = _pending.callbacks = []
    callbacks.append(callback)


def run_after_commit():
    callbacks, _pending.callbacks = getattr(_pending, "callbacks", None) or [], []
    for callback in callbacks:
        callback()


def named_list(name, values):
    """The slot of ``IN ({name})`` in a named query and its parameters: the
    placeholders ``:name_0, :name_1, ...`` (generated names only; the values
    are bound, never written into the SQL text) and ``{name_0: value, ...}``."""
    keys = [f"{name}_{i}" for i in range(len(values))]
    return ", ".join(f":{key}" for key in keys), dict(zip(keys, values))


def meta_get(key):
    row = database.execute_sql(META_SQL, {"key": key}).fetchone()
    return row[0] if row else None


def next_revs(count=1):
    """Reserve ``count`` new revisions; returns the first. Call inside ``write()``."""
    row = database.execute_sql(NEXT_REVS_SQL, {"count": count}).fetchone()
    return row[0] - count + 1


def current_rev():
    return int(meta_get("rev"))


def refuse_migration_beside_a_server(config, steps=None):
    """Raise ``DataDirError`` when the database needs a migration while a
    server (an older version, still running) holds the data directory: a
    command such as ``app.py token`` must not change the schema under it."""
    steps = migrations.STEPS if steps is None else steps
    path = config.path(DB_NAME)
    if not os.path.isfile(path) or not server_running(config):
        return
    conn = open_existing(path, readonly=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    target = migrations.latest(steps, SCHEMA_VERSION)
    if 0 < version < target:
        raise DataDirError(f"the database is at schema {version} and this version of the "
                           f"server migrates it to {target}, but a server (an older version) "
                           f"is running on {config.data_dir}; restart the server first: it "
                           f"migrates the database on start")

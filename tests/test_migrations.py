"""Schema migrations: ordered ``user_version`` steps applied at start-up in
one transaction, after a copy of the database file is taken."""

import os
import sqlite3

import pytest

from sync import migrations
from sync.db import SCHEMA_VERSION, SchemaError, database, init_db
from sync.migrations import Step, sql

from .seed import oldest


def read(path, query):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def columns(path, table):
    return [row[1] for row in read(path, f"PRAGMA table_info({table})")]


def rebuild_devices(conn):
    """The table rebuild SQLite documents for changes ALTER TABLE cannot make."""
    conn.execute("CREATE TABLE devices_new (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL "
                 "REFERENCES users (id) ON DELETE CASCADE, name TEXT NOT NULL, platform TEXT, "
                 "token_version INTEGER NOT NULL DEFAULT 1, acked_rev INTEGER, acked_at TEXT, "
                 "created_at TEXT NOT NULL, last_seen_at TEXT, "
                 "kind TEXT NOT NULL DEFAULT 'reader')")
    conn.execute("INSERT INTO devices_new (id, user_id, name, platform, token_version, "
                 "acked_rev, acked_at, created_at, last_seen_at) SELECT id, user_id, name, "
                 "platform, token_version, acked_rev, acked_at, created_at, last_seen_at "
                 "FROM devices")
    conn.execute("DROP TABLE devices")
    conn.execute("ALTER TABLE devices_new RENAME TO devices")
    conn.execute("CREATE INDEX devices_user ON devices (user_id)")


STEPS = (
    Step(2, "users get an email", sql("ALTER TABLE users ADD COLUMN email TEXT;\n"
                                      "UPDATE users SET email = name || '@example.org';")),
    Step(3, "devices get a kind", rebuild_devices),
)


def test_the_real_steps_reach_the_schema_version():
    migrations.check_steps(migrations.STEPS, 1)
    assert migrations.latest(migrations.STEPS, 1) == SCHEMA_VERSION


def test_a_current_database_opens_without_a_copy(tmp_path):
    path = str(tmp_path / "sync.sqlite3")
    init_db(path)
    init_db(path)
    assert read(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".bak")]


def test_the_real_steps_turn_a_version_1_database_into_the_schema(tmp_path):
    """Every table, column and index of schema.sql, and the rows kept."""
    path = oldest(tmp_path)
    init_db(path)
    fresh = str(tmp_path / "fresh.sqlite3")
    init_db(fresh)

    def shape(p):
        tables = [r[0] for r in read(p, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        indexes = read(p, "SELECT name FROM sqlite_master WHERE type = 'index' "
                          "AND name NOT LIKE 'sqlite_%' ORDER BY name")
        return {t: sorted(columns(p, t)) for t in tables}, indexes
    assert shape(path) == shape(fresh)
    assert read(path, "SELECT id, name, app_password_hash FROM devices") == [("d1", "Kobo", None)]
    assert read(path, "SELECT value FROM meta WHERE key = 'db_id'") == [("feedc0de",)]
    assert read(path + ".v1.bak", "PRAGMA user_version") == [(1,)]


def test_an_old_database_is_upgraded_through_every_step(tmp_path):
    path = oldest(tmp_path)
    db_id = read(path, "SELECT value FROM meta WHERE key = 'db_id'")[0][0]
    assert init_db(path, steps=STEPS) == db_id
    assert read(path, "PRAGMA user_version") == [(3,)]
    assert read(path, "SELECT name, email FROM users") == [("alice", "alice@example.org")]
    assert read(path, "SELECT id, user_id, kind FROM devices") == [("d1", 1, "reader")]
    assert read(path, "PRAGMA foreign_keys") == [(0,)]  # a fresh connection's default
    with database.connection_context():  # the server's connection enforces them again
        assert database.execute_sql("PRAGMA foreign_keys").fetchone() == (1,)
    backup = path + ".v1.bak"
    assert read(backup, "PRAGMA user_version") == [(1,)]
    assert "email" not in columns(backup, "users")
    assert read(backup, "PRAGMA journal_mode") == [("delete",)]  # one self-contained file
    init_db(path, steps=STEPS)  # nothing left to do the second time
    assert read(path, "PRAGMA user_version") == [(3,)]


def test_a_failing_step_leaves_the_old_version(tmp_path):
    def boom(conn):
        conn.execute("ALTER TABLE devices ADD COLUMN half_done TEXT")
        raise RuntimeError("disk on fire")

    path = oldest(tmp_path)
    with pytest.raises(SchemaError, match="schema 3 .*disk on fire.*unchanged at schema 1"):
        init_db(path, steps=(STEPS[0], Step(3, "breaks", boom)))
    assert read(path, "PRAGMA user_version") == [(1,)]
    assert "email" not in columns(path, "users")  # step 2 rolled back with step 3
    assert "half_done" not in columns(path, "devices")
    assert read(path + ".v1.bak", "SELECT name FROM users") == [("alice",)]
    init_db(path, steps=STEPS)  # fixed steps succeed on the same file later
    assert read(path, "PRAGMA user_version") == [(3,)]


def test_a_step_breaking_a_foreign_key_is_refused(tmp_path):
    path = oldest(tmp_path)
    orphaning = Step(2, "drops users", sql("DELETE FROM users;"))
    with pytest.raises(SchemaError, match="foreign key"):
        init_db(path, steps=(orphaning,))
    assert read(path, "PRAGMA user_version") == [(1,)]
    assert read(path, "SELECT name FROM users") == [("alice",)]


def test_steps_out_of_order_are_refused(tmp_path):
    path = oldest(tmp_path)
    with pytest.raises(ValueError, match="out of order"):
        init_db(path, steps=(STEPS[1],))
    assert read(path, "PRAGMA user_version") == [(1,)]


def test_a_newer_database_is_refused_untouched(tmp_path):
    path = oldest(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer version"):
        init_db(path)
    assert read(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


def test_sql_refuses_an_unfinished_statement():
    with pytest.raises(ValueError, match="incomplete"):
        sql("ALTER TABLE users ADD COLUMN x TEXT")


def test_no_migration_beside_a_running_server(tmp_path):
    """A command run while an older server holds the data directory must not
    migrate the schema under it; the server migrates when it restarts."""
    from sync import datadir, db
    from sync.config import Config

    config = Config.build(data_dir=str(tmp_path), access_log=False)
    oldest(tmp_path)
    db.refuse_migration_beside_a_server(config, steps=STEPS)  # no server: fine
    lock = datadir.lock_data_dir(config)
    try:
        with pytest.raises(datadir.DataDirError, match="restart the server first"):
            db.refuse_migration_beside_a_server(config, steps=STEPS)
    finally:
        os.close(lock)
    assert read(str(tmp_path / "sync.sqlite3"), "PRAGMA user_version") == [(1,)]
    current = Config.build(data_dir=str(tmp_path / "current"), access_log=False)
    os.makedirs(current.data_dir)
    init_db(current.path("sync.sqlite3"))
    lock = datadir.lock_data_dir(current)
    try:
        db.refuse_migration_beside_a_server(current)  # nothing to migrate: fine
    finally:
        os.close(lock)


def test_a_version_1_database_gets_the_web_tables_of_a_new_one(tmp_path):
    """The real steps turn a version 1 database into the schema a new one
    gets from schema.sql, with its rows kept."""
    os.makedirs(tmp_path / "old")
    old = oldest(tmp_path / "old")
    init_db(old)
    new = str(tmp_path / "new.sqlite3")
    init_db(new)
    for table in ("web_sessions", "web_devices"):
        assert read(old, f"PRAGMA table_info({table})") == read(new, f"PRAGMA table_info({table})")
        assert read(old, f"PRAGMA index_list({table})") == read(new, f"PRAGMA index_list({table})")
    assert read(old, "SELECT name FROM users") == [("alice",)]
    assert read(old, "SELECT id, name FROM devices") == [("d1", "Kobo")]
    assert read(old, "PRAGMA user_version") == [(SCHEMA_VERSION,)]

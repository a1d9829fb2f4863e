"""schema.sql is the source of truth: the models must match it."""

import pytest

from sync import db
from sync.models import ALL_MODELS


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_model_matches_schema(rt, model):
    table = model._meta.table_name
    columns = db.database.execute_sql(f"PRAGMA table_info({table})").fetchall()
    assert columns, f"{table} is missing from schema.sql"
    in_schema = {name: (notnull, pk) for _, name, _, notnull, _, pk in columns}
    in_model = {f.column_name: f for f in model._meta.sorted_fields}
    assert set(in_model) == set(in_schema)
    for name, field in in_model.items():
        notnull, pk = in_schema[name]
        if not pk:
            assert bool(notnull) == (not field.null), f"{table}.{name} nullability differs"


def test_every_table_has_a_model(rt):
    tables = {r[0] for r in db.database.execute_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    assert tables == {m._meta.table_name for m in ALL_MODELS}


def test_pragmas(rt):
    run = db.database.execute_sql
    assert run("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert run("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert run("PRAGMA foreign_keys").fetchone()[0] == 1
    assert run("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert run("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION


def test_schema_is_applied_once_and_reopening_keeps_the_db_id(config, rt):
    from sync.wsgi import open_runtime
    again = open_runtime(config)
    assert again.db_id == rt.db_id


def test_newer_database_is_refused(config, rt):
    from sync.wsgi import open_runtime
    db.database.execute_sql(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    with pytest.raises(db.SchemaError, match="newer version"):
        open_runtime(config)

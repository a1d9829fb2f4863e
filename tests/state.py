"""What a hostile request must leave as it found: every database row and
every file under ``blobs/`` and ``spool/``, read straight from disk."""

import os
import sqlite3


def snapshot(config):
    """Every table's rows (sorted) and the data directory's blob and spool files."""
    con = sqlite3.connect(config.path("sync.sqlite3"))
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
                for t in tables}
    finally:
        con.close()
    files = []
    for sub in ("blobs", "spool"):
        for root, _, names in os.walk(config.path(sub)):
            for name in names:
                full = os.path.join(root, name)
                files.append((os.path.relpath(full, config.data_dir), os.path.getsize(full)))
    return {"rows": rows, "files": sorted(files)}


def assert_4xx(resp):
    """A client error with a code, never a 5xx (the shape is checked by ``Api``)."""
    assert 400 <= resp.status_int < 500, (resp.status, resp.body[:300])
    if resp.request.method != "HEAD":
        assert resp.json["code"], resp.json


def rejected_unchanged(rt, call):
    """Run ``call``; it must answer a 4xx with a code and change nothing."""
    before = snapshot(rt.config)
    resp = call()
    assert_4xx(resp)
    assert snapshot(rt.config) == before
    return resp

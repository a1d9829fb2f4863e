"""Makes tests/data/v1: a data directory written by the version-1 server
(schema 1, commit af90743), for the migration tests.

    git archive af90743 | tar -x -C /tmp/v1
    python tests/data/make_v1.py /tmp/v1 tests/data/v1

Two users; alice has two devices, a put, an overwrite, a delete, a move and
an unresolved conflict; bob has one file. The database is checkpointed into
one file and secret.key is left out.
"""
import hashlib
import os
import shutil
import sqlite3
import sys

sys.path.insert(0, sys.argv[1])
import webtest  # noqa: E402

from sync import auth  # noqa: E402
from sync.config import Config  # noqa: E402
from sync.db import database  # noqa: E402
from sync.wsgi import create_app, open_runtime  # noqa: E402

out = sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
T = [1795737600.0]
def clock(): return T[0]
n = [0]
def ids():
    n[0] += 1
    return f"{n[0]:024x}"
rt = open_runtime(Config.build(data_dir=out, access_log=False), clock=clock, idgen=ids)
app = webtest.TestApp(create_app(rt))
def h(tok): return {"Authorization": f"Bearer {tok}"}
alice, bob = auth.issue_user_token(rt, "alice"), auth.issue_user_token(rt, "bob")
kobo = app.post_json("/api/v1/sync/devices", {"name": "Kobo"}, headers=h(alice)).json
laptop = app.post_json("/api/v1/sync/devices", {"name": "Laptop"}, headers=h(alice)).json
phone = app.post_json("/api/v1/sync/devices", {"name": "Phone"}, headers=h(bob)).json

def upload(dev, path, data, base_rev=None, mtime=1700000000):
    sha = hashlib.sha256(data).hexdigest()
    s = app.post_json("/api/v1/sync/upload", {"path": path, "size": len(data), "sha256": sha,
        "base_rev": base_rev, "mtime": mtime}, headers=h(dev["token"])).json
    if s["chunk_count"] and not s["received"]:
        app.put(f"/api/v1/sync/upload/{s['id']}/chunks/0", data,
                headers=dict(h(dev["token"]), **{"Content-Type": "application/octet-stream"}))
    return app.post(f"/api/v1/sync/upload/{s['id']}/complete", headers=h(dev["token"])).json

def report(dev, *items):
    return app.post_json("/api/v1/sync/report", {"changes": list(items)},
                         headers=h(dev["token"])).json["results"]

r1 = upload(kobo, "books/Dune.epub", b"Dune, first edition\n" * 50)
T[0] += 3600
r2 = upload(kobo, "books/Emma.epub", b"Emma\n" * 40)
r3 = upload(laptop, "notes/todo.txt", b"buy milk\n")
T[0] += 3600
upload(laptop, "notes/todo.txt", b"buy milk\nand bread\n", base_rev=r3["rev"], mtime=1700000100)
upload(laptop, "old.txt", b"soon gone\n")
report(laptop, {"op": "delete", "path": "old.txt", "base_rev": 5})
report(kobo, {"op": "move", "path": "books/Emma.epub", "to": "books/classics/Emma.epub",
              "base_rev": r2["rev"]})
upload(phone, "bob.txt", b"bob's file\n")
# an unresolved conflict with content of its own
upload(kobo, "notes/todo.txt", b"kobo's todo\n", base_rev=r3["rev"])
database.close()
conn = sqlite3.connect(os.path.join(out, "sync.sqlite3"))
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.execute("PRAGMA journal_mode = DELETE")
print(conn.execute("PRAGMA user_version").fetchone(),
      conn.execute("select path, rev, deleted from entries").fetchall())
print(conn.execute("select kind, path from conflicts").fetchall())
conn.close()
for f in ("secret.key",):
    os.unlink(os.path.join(out, f))
for leftover in ("sync.sqlite3-wal", "sync.sqlite3-shm"):
    p = os.path.join(out, leftover)
    if os.path.exists(p):
        os.unlink(p)

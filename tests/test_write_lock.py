"""No request holds the write lock long, and a read never fails for
bookkeeping (SPEC §6 v2): keep_both finds a free name among thousands taken
with a bounded number of queries, and the last_seen_at touch is skipped
while another writer holds the lock. Times are in bench/attacks.py."""

import sqlite3

from sync.db import database

from . import seed

TAKEN = 2000  # conflict names already taken (the attack used 10,000)


def conflict_names(device_name, date, count):
    names = ["kb/x (conflict {} {}).txt".format(device_name, date)]
    names += [f"kb/x (conflict {device_name} {date} {n}).txt" for n in range(2, count + 1)]
    return names


def statements_during(call):
    """``call()``'s result and the SQL statements this thread's connection ran."""
    seen = []
    conn = database.connection()
    conn.set_trace_callback(seen.append)
    try:
        return call(), seen
    finally:
        conn.set_trace_callback(None)


def test_keep_both_among_thousands_of_taken_names_takes_a_bounded_number_of_queries(
        rt, api, device):
    kb = api.post("/devices", {"name": "kb"}).json
    for path in conflict_names("kb", "2026-11-27", TAKEN):
        seed.put(rt, kb, path, b"held")
    seed.put(rt, kb, "kb/x.txt", b"one")
    seed.put(rt, kb, "kb/x.txt", b"two", base_rev=TAKEN + 1)
    cid = seed.put(rt, kb, "kb/x.txt", b"three", base_rev=TAKEN + 1)["conflict_id"]
    database.connect(reuse_if_open=True)
    resp, statements = statements_during(lambda: api.post(
        f"/conflicts/{cid}/resolve", {"resolution": "keep_both"}))
    [put] = resp.json["results"]
    assert put["path"] == f"kb/x (conflict kb 2026-11-27 {TAKEN + 1}).txt"
    # A handful of lookups of 500 names each, not one per taken name.
    lookups = [s for s in statements if "deleted = 0 AND path IN (SELECT value FROM json_each" in s]
    assert 1 <= len(lookups) <= TAKEN // 500 + 1, len(lookups)
    assert len(statements) < 100, len(statements)


def test_a_name_freed_in_the_same_unit_of_work_is_seen(rt, api, device):
    """A move whose source is the first conflict name: the batch lookup sees
    what this resolution changed before what the database holds."""
    kb = api.post("/devices", {"name": "kb"}).json
    seed.put(rt, kb, "kb/x (conflict kb 2026-11-27).txt", b"held")
    seed.put(rt, kb, "kb/x.txt", b"one")
    seed.put(rt, kb, "kb/x.txt", b"two", base_rev=2)
    cid = seed.put(rt, kb, "kb/x.txt", b"three", base_rev=2)["conflict_id"]
    [put] = api.post(f"/conflicts/{cid}/resolve", {"resolution": "keep_both"}).json["results"]
    assert put["path"] == "kb/x (conflict kb 2026-11-27 2).txt"


def test_a_read_never_fails_because_the_touch_cannot_get_the_write_lock(rt, api, dev,
                                                                        device, clock):
    seed.put(rt, "alice", "a.txt", b"content")
    clock.advance(3600)  # the device is due for its last_seen_at
    holder = sqlite3.connect(rt.config.path("sync.sqlite3"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer, busy for as long as it likes
    try:
        assert dev.get("/download/a.txt").body == b"content"
        dev.get("/changes")
        dev.get("/conflicts")
        seen = api.get(f"/devices/{device['id']}").json["last_seen_at"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert seen != "2026-11-27T01:00:00Z"  # skipped, not waited for
    dev.get("/changes")
    assert api.get(f"/devices/{device['id']}").json["last_seen_at"] == "2026-11-27T01:00:00Z"

"""``app.py check``: database integrity, every named blob present with its
size and digest, orphans listed and removed by ``--repair``."""

import os

import pytest

from sync import blobs, datadir
from sync.db import database, write

from . import seed
from .helpers import run_app
from .helpers import sha256 as digest_of


@pytest.fixture
def seeded(rt):
    shas = {}
    for name in ("a.txt", "b.txt", "c.txt"):
        seed.put(rt, "alice", name, name.encode() * 1000)
        shas[name] = digest_of(name.encode() * 1000)
    return shas


def problems_of(lines):
    return [line for line in lines if line.startswith("PROBLEM")]


def sql(statement, params=()):
    with database.connection_context(), write():
        database.execute_sql(statement, params)


def test_a_sound_data_dir_has_no_problem(rt, seeded):
    count, lines = seed.run_check(rt.config)
    assert count == 0 and problems_of(lines) == [], lines
    assert "database: integrity ok" in lines
    assert "blobs: 3 of 3 checked, 15000 bytes" in lines
    result = run_app("check", "--data-dir", rt.config.data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def test_a_missing_blob_is_a_problem_and_repair_cannot_hide_it(rt, seeded):
    os.unlink(blobs.blob_path(rt.config, seeded["b.txt"]))
    count, lines = seed.run_check(rt.config, repair=True)
    assert count == 1
    assert problems_of(lines) == [
        f"PROBLEM blob {seeded['b.txt']} named in blobs, entries, revisions is missing; "
        "used by alice: b.txt"]
    result = run_app("check", "--repair", "--data-dir", rt.config.data_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_wrong_size_and_damaged_content_are_problems(rt, seeded):
    with open(blobs.blob_path(rt.config, seeded["a.txt"]), "ab") as f:
        f.write(b"x")
    with open(blobs.blob_path(rt.config, seeded["c.txt"]), "r+b") as f:
        f.write(b"X")  # same size, other bytes
    count, lines = seed.run_check(rt.config)
    found = problems_of(lines)
    assert count == 3, lines
    assert (f"PROBLEM blob {seeded['a.txt']} is 5001 bytes, blobs, entries, revisions "
            f"say 5000; used by alice: a.txt") in found
    assert any(line.startswith(f"PROBLEM blob {seeded['a.txt']} is damaged") for line in found)
    assert any(line.startswith(f"PROBLEM blob {seeded['c.txt']} is damaged") for line in found)


def test_a_damaged_blob_names_every_library_path_that_uses_it(rt, seeded):
    same = b"c.txt" * 1000
    seed.put(rt, "alice", "copies/c again.txt", same)
    seed.put(rt, "bob", "theirs.txt", same)
    seed.put(rt, "alice", "c.txt", b"a newer version")     # the damaged one: history only
    with open(blobs.blob_path(rt.config, seeded["c.txt"]), "r+b") as f:
        f.write(b"X")
    count, lines = seed.run_check(rt.config)
    [line] = problems_of(lines)
    assert line.startswith(f"PROBLEM blob {seeded['c.txt']} is damaged")
    assert line.endswith("; used by alice: copies/c again.txt, bob: theirs.txt, "
                         "alice: c.txt (an older version)")


def test_orphans_are_listed_then_removed_by_repair(rt, seeded):
    stray = seed.store_blob(rt.config, b"nothing names me")
    misplaced = rt.config.path("blobs", "00", seeded["a.txt"])
    os.makedirs(os.path.dirname(misplaced))
    with open(misplaced, "wb") as f:
        f.write(b"a.txt" * 1000)
    leftover = blobs.blob_path(rt.config, seeded["b.txt"]) + ".tmp"
    open(leftover, "wb").close()
    spool = blobs.spool_path(rt.config, "abcdef0123456789")
    open(spool, "wb").close()

    count, lines = seed.run_check(rt.config)
    assert count == 4
    orphans = sorted(line.split()[2] for line in problems_of(lines))
    assert orphans == sorted([
        os.path.join("blobs", stray[:2], stray), os.path.join("blobs", "00", seeded["a.txt"]),
        os.path.relpath(leftover, rt.config.data_dir), os.path.join("spool", "abcdef0123456789")])

    count, lines = seed.run_check(rt.config, repair=True)
    assert count == 0 and len([line for line in lines if line.startswith("removed")]) == 4
    for path in (blobs.blob_path(rt.config, stray), misplaced, leftover, spool):
        assert not os.path.exists(path)
    for sha256 in seeded.values():  # what rows name stays
        assert os.path.isfile(blobs.blob_path(rt.config, sha256))
    assert seed.run_check(rt.config) == (0, seed.run_check(rt.config)[1])


def test_a_blob_row_nothing_refers_to_and_not_queued_is_a_problem_repair_queues(rt, seeded):
    """Such a row and its file would stay for ever: the clean-up only looks
    at queued content."""
    stray = seed.store_blob(rt.config, b"x" * 12)
    queued = seed.store_blob(rt.config, b"queued already")
    with database.connection_context():
        for sha256, size in ((stray, 12), (queued, 14)):
            sql("INSERT INTO blobs (sha256, size, created_at) VALUES (?, ?, 'x')",
                (sha256, size))
        sql("INSERT INTO blob_queue (sha256, queued_at) VALUES (?, 'x')", (queued,))
    message = (f"PROBLEM blob {stray} (12 bytes): no entry, revision, conflict or upload "
               f"refers to it and it is not queued for clean-up (--repair queues it)")
    count, lines = seed.run_check(rt.config)
    assert (count, problems_of(lines)) == (1, [message]), lines
    result = run_app("check", "--data-dir", rt.config.data_dir)
    assert result.returncode == 1 and message in result.stdout

    count, lines = seed.run_check(rt.config, repair=True)
    assert count == 0 and f"queued blob {stray} for clean-up (nothing refers to it)" in lines
    assert problems_of(seed.run_check(rt.config)[1]) == []
    assert set(seed.collect_garbage(rt)) == {stray, queued}
    with database.connection_context():
        assert not database.execute_sql("SELECT 1 FROM blobs WHERE sha256 IN (?, ?)",
                                        (stray, queued)).fetchall()
    for sha256 in seeded.values():  # what is referenced stays
        assert os.path.isfile(blobs.blob_path(rt.config, sha256))
    assert seed.run_check(rt.config)[0] == 0


def test_conflicts_and_instant_uploads_keep_their_blobs(rt, seeded):
    client = seed.store_blob(rt.config, b"the client's version")
    resolved = seed.store_blob(rt.config, b"dropped when resolved")
    instant = seed.store_blob(rt.config, b"held for an instant upload")
    with database.connection_context():
        device_id = "d" * 24
        sql("INSERT INTO devices (id, user_id, name, created_at) VALUES (?, 1, 'Kobo', 'x')",
            (device_id,))
        for cid, sha256, resolved_at in (("c1", client, None), ("c2", resolved, "x")):
            sql("INSERT INTO conflicts (id, user_id, path, kind, created_at, client_op, "
                "client_sha256, client_size, resolved_at) VALUES (?, 1, 'a.txt', "
                "'modify_modify', 'x', 'put', ?, ?, ?)", (cid, sha256, 20 if cid == "c1" else 21,
                                                         resolved_at))
        sql("INSERT INTO uploads (id, user_id, device_id, path, size, sha256, chunk_size, "
            "chunk_count, instant, created_at, touched_at) VALUES ('0123456789ab', 1, ?, "
            "'d.txt', 26, ?, 262144, 1, 1, 'x', 'x')", (device_id, instant))
    seed.recount(rt.config)
    count, lines = seed.run_check(rt.config)
    assert problems_of(lines) == [
        f"PROBLEM orphan {os.path.join('blobs', resolved[:2], resolved)} "
        f"(nothing names it; --repair removes it)"]
    seed.run_check(rt.config, repair=True)
    assert os.path.isfile(blobs.blob_path(rt.config, client))
    assert os.path.isfile(blobs.blob_path(rt.config, instant))
    assert not os.path.exists(blobs.blob_path(rt.config, resolved))


def test_an_upload_session_without_its_spool_file(rt, seeded):
    with database.connection_context():
        sql("INSERT INTO devices (id, user_id, name, created_at) VALUES ('dev1', 1, 'Kobo', 'x')")
        sql("INSERT INTO uploads (id, user_id, device_id, path, size, sha256, chunk_size, "
            "chunk_count, created_at, touched_at) VALUES ('0123456789ab', 1, 'dev1', 'd.txt', "
            "10, ?, 262144, 1, 'x', 'x')", ("0" * 64,))
        sql("INSERT INTO upload_chunks (upload_id, idx, size) VALUES ('0123456789ab', 0, 10)")
    count, lines = seed.run_check(rt.config)
    assert count == 1 and "upload session 0123456789ab has no spool file" in problems_of(lines)[0]
    assert seed.run_check(rt.config, repair=True)[0] == 0
    with database.connection_context():
        assert database.execute_sql("SELECT count(*) FROM uploads").fetchone()[0] == 0
        assert database.execute_sql("SELECT count(*) FROM upload_chunks").fetchone()[0] == 0


def test_a_damaged_database_is_reported(rt, seeded):
    path = rt.config.path("sync.sqlite3")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # garble every page after the first
        f.seek(4096)
        f.write(b"\x55" * (size - 4096))
    result = run_app("check", "--data-dir", rt.config.data_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "PROBLEM database" in result.stdout, result.stdout + result.stderr


def test_repair_refuses_while_a_server_holds_the_data_dir(rt, seeded):
    seed.store_blob(rt.config, b"orphan")
    lock = datadir.lock_data_dir(rt.config)
    try:
        with pytest.raises(datadir.DataDirError, match="stop it first"):
            seed.run_check(rt.config, repair=True)
        count, lines = seed.run_check(rt.config)  # a plain check runs beside the server
        assert count == 1 and lines[0].startswith("note: a server is running")
    finally:
        os.close(lock)
    assert seed.run_check(rt.config, repair=True)[0] == 0


def test_no_database_is_a_clear_error(tmp_path):
    result = run_app("check", "--data-dir", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no database" in result.stderr


def test_rows_that_disagree_on_a_size(rt, seeded, tmp_path):
    sql("INSERT INTO entries (user_id, path, fold, rev, size, sha256, mtime, changed_at) "
        "VALUES (1, 'copy.txt', 'copy.txt', 99, 1, ?, 0, 'x')", (seeded["a.txt"],))
    sql("INSERT INTO revisions (rev, user_id, path, size, sha256, mtime, changed_at) "
        "VALUES (99, 1, 'copy.txt', 1, ?, 0, 'x')", (seeded["a.txt"],))
    seed.recount(rt.config)
    count, lines = seed.run_check(rt.config)
    assert count == 1
    # The file is whole: the line names the row that is wrong, and whose.
    assert problems_of(lines)[0] == (
        f"PROBLEM blob {seeded['a.txt']} is 5000 bytes, but alice's file 'copy.txt' "
        f"says 1 bytes; alice's revision of 'copy.txt' says 1 bytes")
    # A backup is still whole (the blob is intact): it warns and succeeds.
    result = run_app("backup", str(tmp_path / "b"), "--data-dir", rt.config.data_dir)
    assert result.returncode == 0, result.stdout
    assert (f"WARNING blob {seeded['a.txt']} is whole, but alice's file 'copy.txt' says "
            f"1 bytes") in result.stdout

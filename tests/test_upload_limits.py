"""Limits on uploads (SPEC §5, §6 v2): open sessions per user, the declared
size of an instant upload, any chunk count, failed completions, and the
disk reserve."""

from sync import auth, blobs, library, uploads
from sync.db import database, write
from sync.wsgi import open_runtime

from .helpers import (
    CHUNK,
    DAY,
    Api,
    assert_error,
    content,
    count,
    other_app,
    run_app,
    sha256,
    spool_files,
    upload,
)
from .helpers import send_chunk as send
from .helpers import start_upload as start


def body(n, size=10):
    return {"path": f"f{n}.bin", "size": size, "sha256": f"{n:064x}", "base_rev": None}


# -- --max-open-uploads -------------------------------------------------------------

def test_the_next_session_past_the_limit_is_429_and_leaves_nothing(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock, max_open_uploads=3)
    sessions = [dev.post("/upload", body(i)).json for i in range(3)]
    before = (count("uploads"), spool_files(rt))
    resp = dev.post("/upload", body(3), status=429)
    assert_error(resp, 429, "too_many_uploads")
    assert "cancel" in resp.json["description"]
    assert (count("uploads"), spool_files(rt)) == before
    # Another user is not limited by alice's sessions.
    bob = Api(dev.testapp, auth.issue_user_token(rt, "bob"))
    bob = bob.as_(bob.post("/devices", {"name": "Phone"}).json["token"])
    bob.post("/upload", body(4))
    # Cancelling or completing one makes room; so does one expiring.
    dev.delete(f"/upload/{sessions[0]['id']}", status=204)
    dev.post("/upload", body(5))
    dev.post("/upload", body(6), status=429)
    dev.post(f"/upload/{sessions[1]['id']}/complete", status=400)  # not all sent: still open
    dev.post("/upload", body(7), status=429)
    data = content(10)
    dev.delete(f"/upload/{sessions[2]['id']}", status=204)
    done = start(dev, "real.bin", data).json
    send(dev, done["id"], 0, data)
    dev.post(f"/upload/{done['id']}/complete")
    dev.post("/upload", body(9))
    clock.advance(DAY)
    dev.post("/upload", body(8))


def test_the_default_is_a_hundred_per_user(tmp_path, clock):
    rt, dev = other_app(tmp_path, clock)
    assert rt.config.max_open_uploads == 100
    for i in range(100):
        dev.post("/upload", body(i, size=0))
    assert_error(dev.post("/upload", body(100, size=0), status=429), 429, "too_many_uploads")


# -- instant uploads: the declared size, and any chunk count ---------------------------

def test_an_instant_upload_with_another_size_is_digest_mismatch_and_opens_nothing(rt, dev):
    data = content(22)
    upload(dev, "small.txt", data)
    before = count("uploads")
    resp = dev.post("/upload", {"path": "big.iso", "size": 2621440000, "sha256": sha256(data),
                                "base_rev": None}, status=400)
    assert_error(resp, 400, "digest_mismatch")
    assert "22 bytes" in resp.json["description"]
    assert count("uploads") == before and spool_files(rt) == []
    dev.get("/download/big.iso", status=404)
    # The right size is instant as before.
    session = dev.post("/upload", {"path": "copy.txt", "size": 22, "sha256": sha256(data),
                                   "base_rev": None}).json
    assert session["received"] == [0]
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert dev.head("/download/copy.txt").headers["Content-Length"] == "22"


def test_an_instant_session_of_262144_chunks_works(rt, dev):
    """A 64 GiB file in 256 KiB chunks, content the library holds (a row of
    that size; instant sessions never read the blob): 10,923 chunks and
    more used to be 500 "too many SQL variables"."""
    size = 64 * 1024 ** 3
    sha = "ab" * 32
    with database.connection_context():
        user_id = auth.ensure_user(rt, "alice").id
        with write():
            library.apply_put(rt, user_id, None, "held.iso", sha, size, 0, None)
    session = dev.post("/upload", {"path": "again.iso", "size": size, "sha256": sha,
                                   "base_rev": None, "chunk_size": CHUNK}).json
    assert session["chunk_count"] == 262144 and len(session["received"]) == 262144
    receipt = dev.put(f"/upload/{session['id']}/chunks/262143", raw=b"x" * CHUNK).json
    assert receipt == {"index": 262143, "received": 262144, "bytes_received": size}
    assert len(dev.get(f"/upload/{session['id']}").json["received"]) == 262144
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"


def test_a_spooled_session_counts_its_chunks_without_reading_them_all(rt, dev):
    data = content(3 * CHUNK + 5)
    session = start(dev, "a.bin", data).json
    for index in (3, 0, 2):
        receipt = send(dev, session["id"], index, data).json
    assert receipt == {"index": 2, "received": 3, "bytes_received": 2 * CHUNK + 5}
    send(dev, session["id"], 0, data)  # re-sent: replaced, counted once
    assert dev.get(f"/upload/{session['id']}").json["received"] == [0, 2, 3]


# -- a database that holds a wrong size (written by an older server) -------------------

def test_backup_restore_and_check_name_the_entry_with_the_wrong_size(tmp_path):
    import sqlite3

    from . import seed as kit
    data_dir = tmp_path / "data"
    config = kit.config_for(data_dir)
    rt = open_runtime(config)
    kit.put(rt, "alice", "kb/x.txt", b"twenty-two bytes long!")
    kit.put(rt, "alice", "kb/fine.txt", b"fine")
    con = sqlite3.connect(config.path("sync.sqlite3"))
    with con:
        con.execute("UPDATE entries SET size = 2621440000 WHERE path = 'kb/x.txt'")
    con.close()

    backup = run_app("backup", str(tmp_path / "bk"), "--data-dir", str(data_dir))
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert "alice's file 'kb/x.txt' says 2621440000 bytes" in backup.stdout
    restored = run_app("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "new"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "alice's file 'kb/x.txt' says 2621440000 bytes" in restored.stdout
    assert kit.live_entries(kit.config_for(tmp_path / "new"))[("alice", "kb/fine.txt")]
    checked = run_app("check", "--data-dir", str(data_dir))
    assert checked.returncode == 1
    assert "alice's file 'kb/x.txt' says 2621440000 bytes" in checked.stdout


# -- failed completions ------------------------------------------------------------------

def test_a_failed_complete_answers_again_without_hashing_until_a_chunk_is_resent(
        rt, dev, monkeypatch):
    hashed = []
    real = blobs.hash_file
    monkeypatch.setattr(blobs, "hash_file", lambda path: hashed.append(path) or real(path))
    data = content(2 * CHUNK)
    wrong = bytearray(data)
    wrong[5] ^= 1
    session = start(dev, "a.bin", data).json
    send(dev, session["id"], 0, bytes(wrong))
    send(dev, session["id"], 1, data)
    first = dev.post(f"/upload/{session['id']}/complete", status=400).json
    assert first["code"] == "digest_mismatch"
    for _ in range(5):
        assert dev.post(f"/upload/{session['id']}/complete", status=400).json == first
    assert len(hashed) == 1
    send(dev, session["id"], 0, data)  # the bad chunk again, right this time
    assert dev.post(f"/upload/{session['id']}/complete").json["status"] == "applied"
    assert len(hashed) == 2


def test_at_most_two_spool_files_are_hashed_at_once(tmp_path):
    import threading
    import time
    inside, most = [0], [0]
    lock = threading.Lock()

    def slow_hash(path):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        with lock:
            inside[0] -= 1
        return 0, ""

    real = blobs.hash_file
    blobs.hash_file = slow_hash
    try:
        threads = [threading.Thread(target=uploads._hash, args=("x",)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        blobs.hash_file = real
    assert most[0] == uploads.HASHES_AT_ONCE == 2

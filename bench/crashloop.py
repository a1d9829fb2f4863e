"""Crash loop: run a mixed workload (reports, chunked uploads, completes,
deletes, moves) against ``python app.py`` and ``kill -9`` it at random
moments, again and again. After every kill, with the server down:

- ``PRAGMA integrity_check`` is ok;
- every blob row has its file, every file under ``blobs/`` hashes to its
  name (no partial content), every live entry's content is held;
- every open, non-instant upload session has its spool file;
- the figures the server maintains (pending changes, quota usage) equal a
  recount of the tables;

and after the restart, through the API:

- every change that got a 2xx is in the feed (a request cut by the kill
  may have gone either way, nothing else);
- the content of every changed entry downloads with its exact bytes;
- every chunk that got a 2xx is still counted in its open session.

Files without rows (blobs or spool, left by a kill between the rename and
the commit) are counted and shown: the janitor is expected to clean them.

    python bench/crashloop.py --kills 50
"""

import argparse
import hashlib
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import Client, Server, sha256, user_token  # noqa: E402

from sync import counts  # noqa: E402

PATHS_PER_WORKER = 8


class Failure(Exception):
    pass


class Ledger:
    """What the server promised, per path: a set of possible states.

    A state is ``None`` (no live entry) or a sha256. After a 2xx the set
    has one member; a request cut by the kill leaves {before, after}."""

    def __init__(self, paths):
        self.lock = threading.Lock()
        self.states = {p: {None} for p in paths}
        self.revs = {p: None for p in paths}
        self.open_sessions = {}  # upload id -> {"path", "sha", "acked": chunk indices}
        self.acked = 0

    def certain(self, path):
        with self.lock:
            states = self.states[path]
            return next(iter(states)) if len(states) == 1 else "?"

    def applied(self, path, state, rev):
        with self.lock:
            self.states[path] = {state}
            self.revs[path] = rev
            self.acked += 1

    def maybe(self, path, state):
        with self.lock:
            self.states[path] = self.states[path] | {state}


def make_pool(rng, count, big_mib=0):
    """``count`` contents of assorted sizes, and one of ``big_mib`` MiB if
    asked (its complete hashes and moves long enough to be killed in)."""
    pool = [b""]
    for _ in range(count - 1):
        size = rng.choice([1, 100, 4096, 256 * 1024, 256 * 1024 + 1, 700 * 1024])
        pool.append(rng.randbytes(size))
    if big_mib:
        pool.append(rng.randbytes(big_mib * 1024 * 1024 + 3))
    return {sha256(data): data for data in pool}


def worker(wid, client, ledger, pool, stop, rng, stats):
    paths = [f"w{wid}/f{j}.bin" for j in range(PATHS_PER_WORKER)]
    held = lambda: {s for p in ledger.states for s in ledger.states[p]  # noqa: E731
                    if s is not None and len(ledger.states[p]) == 1}
    while not stop.is_set():
        path = rng.choice(paths)
        state = ledger.certain(path)
        if state == "?":
            continue
        base = ledger.revs[path]
        op = rng.random()
        try:
            if op < 0.55:
                sha = rng.choice(list(pool))
                data = pool[sha]
                resp = client.create_upload(path, len(data), sha, base, 256 * 1024)
                if resp.status_code != 200:
                    raise Failure(f"upload create {resp.status_code} {resp.text}")
                session = resp.json()
                size, sid = session["chunk_size"], session["id"]
                acked = set(session["received"])
                ledger.open_sessions[sid] = {"path": path, "sha": sha, "acked": acked}
                for index in range(session["chunk_count"]):
                    if stop.is_set() and rng.random() < 0.5:
                        break
                    if index in session["received"] and rng.random() < 0.8:
                        continue
                    # A re-sent chunk stops counting until its new bytes are durable.
                    acked.discard(index)
                    chunk = data[index * size:(index + 1) * size]
                    resp = client.put_chunk(sid, index, chunk, digest=rng.random() < 0.5)
                    if resp.status_code != 200:
                        raise Failure(f"chunk {resp.status_code} {resp.text}")
                    acked.add(index)
                else:
                    ledger.maybe(path, sha)
                    resp = client.complete(sid)
                    if resp.status_code != 200:
                        raise Failure(f"complete {resp.status_code} {resp.text}")
                    body = resp.json()
                    ledger.open_sessions.pop(sid, None)
                    if body["status"] not in ("applied", "unchanged"):
                        raise Failure(f"complete on an owned path: {body}")
                    ledger.applied(path, sha, body["rev"])
                    stats["uploads"] += 1
            elif op < 0.75:
                candidates = sorted(held())
                if not candidates:
                    continue
                sha = rng.choice(candidates)
                ledger.maybe(path, sha)
                item = {"op": "put", "path": path, "sha256": sha, "size": len(pool[sha]),
                        "mtime": 1700000000, "base_rev": base}
                resp = client.report([item])
                if resp.status_code != 200:
                    raise Failure(f"report {resp.status_code} {resp.text}")
                result = resp.json()["results"][0]
                if result["status"] in ("applied", "unchanged"):
                    ledger.applied(path, sha, result.get("rev", base))
                    stats["reports"] += 1
                elif result["status"] == "upload_required":
                    ledger.applied(path, state, base)  # nothing changed
                else:
                    raise Failure(f"report on an owned path: {result}")
            elif op < 0.88:
                if state is None:
                    continue
                ledger.maybe(path, None)
                resp = client.report([{"op": "delete", "path": path, "base_rev": base}])
                if resp.status_code != 200:
                    raise Failure(f"delete {resp.status_code} {resp.text}")
                result = resp.json()["results"][0]
                if result["status"] not in ("applied", "unchanged"):
                    raise Failure(f"delete on an owned path: {result}")
                ledger.applied(path, None, result.get("rev"))
                stats["deletes"] += 1
            else:
                target = rng.choice(paths)
                if state is None or target == path or ledger.certain(target) is not None:
                    continue
                ledger.maybe(path, None)
                ledger.maybe(target, state)
                resp = client.report([{"op": "move", "path": path, "to": target,
                                       "base_rev": base}])
                if resp.status_code != 200:
                    raise Failure(f"move {resp.status_code} {resp.text}")
                result = resp.json()["results"][0]
                if result["status"] != "applied":
                    raise Failure(f"move on owned paths: {result}")
                ledger.applied(path, None, None)
                ledger.applied(target, state, result["rev"])
                stats["moves"] += 1
        except requests.RequestException:
            return  # the server was killed: what was in flight is in the ledger as "maybe"
        except Failure as exc:
            stats["failures"].append(f"worker {wid}: {exc}")
            return


def check_files(data_dir, verified):
    """Invariants on disk with the server down. Returns (checks, orphans)."""
    db = sqlite3.connect(os.path.join(data_dir, "sync.sqlite3"))
    try:
        ok = db.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            raise Failure(f"integrity_check: {ok}")
        blob_rows = dict(db.execute("SELECT sha256, size FROM blobs"))
        live = {r[0] for r in db.execute(
            "SELECT DISTINCT sha256 FROM entries WHERE deleted = 0 AND sha256 IS NOT NULL")}
        uploads = {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT id, instant, sha256 FROM uploads WHERE state = 'open'")}
        all_uploads = {r[0] for r in db.execute("SELECT id FROM uploads")}
        db.execute("BEGIN")
        wrong = counts.differences(db)
        db.execute("COMMIT")
        if wrong:
            raise Failure(f"maintained counts disagree with a recount: {wrong[:3]}")
    finally:
        db.close()
    checks = 2
    files = {}
    for root, _, names in os.walk(os.path.join(data_dir, "blobs")):
        for name in names:
            files[name] = os.path.join(root, name)
    for sha, size in blob_rows.items():
        checks += 1
        if sha not in files:
            raise Failure(f"blob row {sha} has no file")
        if os.path.getsize(files[sha]) != size:
            raise Failure(f"blob {sha} has {os.path.getsize(files[sha])} bytes, row says {size}")
    for name, full in files.items():
        key = (name, os.path.getsize(full))
        if key in verified:
            continue
        checks += 1
        h = hashlib.sha256()
        with open(full, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != name:
            raise Failure(f"blob file {name} holds other bytes (partial content?)")
        verified.add(key)
    for sha in live:
        checks += 1
        if sha not in blob_rows:
            raise Failure(f"a live entry has content {sha} with no blob row")
    spool = set(os.listdir(os.path.join(data_dir, "spool")))
    for upload_id, (instant, sha) in uploads.items():
        checks += 1
        # Killed between the rename into blobs/ and the commit: the blob
        # (checked above to hash to its name) stands in for the spool file.
        if not instant and upload_id not in spool and sha not in files:
            raise Failure(f"open upload {upload_id} lost its spool file")
    orphans = {"blob files without row": len(set(files) - set(blob_rows)),
               "spool files without session": len([s for s in spool if s not in all_uploads])}
    return checks, orphans


def check_api(client, ledger, pool, rng, downloaded):
    """Invariants through the restarted server; settles the ledger."""
    checks = 0
    feed, _ = client.feed()
    for path, states in ledger.states.items():
        change = feed.get(path)
        actual = change["sha256"] if change and change["op"] == "put" else None
        checks += 1
        if actual not in states:
            raise Failure(f"{path}: feed has {actual}, the server promised one of {states}")
        with ledger.lock:
            ledger.states[path] = {actual}
            ledger.revs[path] = change["rev"] if change else None
        if actual is not None and (downloaded.get(path) != (actual, change["rev"])
                                   or rng.random() < 0.1):
            resp = client.download(path)
            checks += 1
            if resp.status_code != 200 or resp.content != pool[actual]:
                raise Failure(f"{path}: download {resp.status_code}, "
                              f"{len(resp.content)} bytes, not the promised content")
            downloaded[path] = (actual, change["rev"])
    for sid, session in list(ledger.open_sessions.items()):
        acked = session["acked"]
        resp = client.call("GET", f"/upload/{sid}")
        checks += 1
        if resp.status_code == 404:
            # Completed just before the kill (its answer lost) or never created.
            ledger.open_sessions.pop(sid)
            continue
        if resp.status_code != 200:
            raise Failure(f"upload {sid}: {resp.status_code} {resp.text}")
        body = resp.json()
        if body["state"] == "open" and not acked <= set(body["received"]):
            raise Failure(f"upload {sid} lost acknowledged chunks "
                          f"{sorted(acked - set(body['received']))}")
        if body["state"] == "open" and len(body["received"]) == body["chunk_count"]:
            # Every chunk is in: the session completes after the restart.
            resp = client.complete(sid)
            checks += 1
            if resp.status_code != 200 or resp.json()["status"] not in ("applied", "unchanged"):
                raise Failure(f"upload {sid} does not complete after the restart: "
                              f"{resp.status_code} {resp.text}")
            ledger.applied(session["path"], session["sha"], resp.json()["rev"])
        else:
            client.call("DELETE", f"/upload/{sid}")
        ledger.open_sessions.pop(sid)
    return checks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=900,
                        help="stop after this long even if fewer kills were made")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--big-mib", type=int, default=0,
                        help="add a content of this many MiB to the mix")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    pool = make_pool(rng, 12, args.big_mib)
    workdir = tempfile.mkdtemp(prefix="crashloop-")
    data_dir = os.path.join(workdir, "data")
    server = Server(data_dir, os.path.join(workdir, "server.log"),
                    env={"SYNC_ACCESS_LOG": "0"})
    started = time.monotonic()
    kills = checks = 0
    stats = {"uploads": 0, "reports": 0, "deletes": 0, "moves": 0, "failures": []}
    orphans_seen = {}
    verified, downloaded = set(), {}
    try:
        server.start()
        owner = Client(server.url, user_token("crash"))
        devices = [owner.register(f"crash-{i}")["token"] for i in range(args.workers)]
        paths = [f"w{w}/f{j}.bin" for w in range(args.workers) for j in range(PATHS_PER_WORKER)]
        ledger = Ledger(paths)
        while kills < args.kills and time.monotonic() - started < args.max_seconds:
            stop = threading.Event()
            threads = [threading.Thread(target=worker, args=(
                w, Client(server.url, devices[w], timeout=30), ledger, pool, stop,
                random.Random(rng.random()), stats)) for w in range(args.workers)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 1.5))
            server.kill()
            stop.set()
            kills += 1
            for t in threads:
                t.join(60)
            if stats["failures"]:
                raise Failure("; ".join(stats["failures"]))
            n, orphans = check_files(data_dir, verified)
            checks += n
            for key, value in orphans.items():
                orphans_seen[key] = max(orphans_seen.get(key, 0), value)
            server.start()
            checks += check_api(Client(server.url, devices[0]), ledger, pool, rng,
                                downloaded)
            print(f"kill {kills}: {ledger.acked} changes acknowledged so far, "
                  f"{checks} invariant checks passed, orphans {orphans}", flush=True)
    except Failure as exc:
        print(f"FAILED after {kills} kills: {exc}")
        print(f"seed {seed}; data kept in {workdir}")
        server.kill()
        return 1
    finally:
        server.stop()
    seconds = time.monotonic() - started
    print(f"kills survived: {kills} in {seconds:.0f} s (seed {seed})")
    print(f"invariants checked: {checks}")
    print(f"acknowledged changes: {ledger.acked} (uploads {stats['uploads']}, "
          f"reports {stats['reports']}, deletes {stats['deletes']}, moves {stats['moves']})")
    print(f"largest count of files left without rows after a kill: {orphans_seen}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"data kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

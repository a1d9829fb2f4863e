"""Benchmark of history, run by hand:

    .venv/bin/python bench/history.py [--entries 20000] [--rewind 100000] [--revisions 10000]

Starts the real server (``app.py``) on loopback in subprocesses over
temporary data directories and measures, in one run:

- report ingest (instant puts of new paths, then overwrites of all of them,
  1,000 items per report) with the default history, with
  ``--history-days 0``, and with a server whose unit of work writes no
  revisions at all (version 1's write path), alternated three times so that load
  from elsewhere hits them alike; the ratios are the target (>= 0.8);
- the database's growth per 1,000 changes with history kept, against the
  same changes with ``--history-days 0`` once the clean-up has run;
- ``GET /history/{path}`` (first page) of a path with 10,000 revisions,
  against a path with one page (100) of them;
- a rewind of 100,000 paths a device overwrote (dry run and applied), and
  the longest time another user's one-item report waited meanwhile, against
  its latency on an idle server.

Prints figures and ratios; asserts nothing.
"""

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import SECRET, Client, Server, sha256, user_token  # noqa: E402
from sync import auth, janitor, library  # noqa: E402
from sync.config import Config  # noqa: E402
from sync.db import database, write  # noqa: E402
from sync.library import Library  # noqa: E402
from sync.wsgi import open_runtime  # noqa: E402

BATCH = 1000
PAGE_SIZE = 100  # the default page of GET /history
ONE, TWO = b"the first content of every path", b"the content a device overwrote it with"


def runtime(data_dir, **settings):
    os.environ["SYNC_JWT_SECRET"] = SECRET
    config = Config.build(data_dir=data_dir, access_log=False, jwt_secret=SECRET, **settings)
    return open_runtime(config)


def seed(data_dir, users=("alice", "bob"), **settings):
    """Give each user the two contents (through ``library.apply_put``, the
    path an upload completes by), so reports of them are instant uploads."""
    rt = runtime(data_dir, **settings)
    with database.connection_context():
        for name in users:
            user_id = auth.ensure_user(rt, name).id
            with write():
                for i, data in enumerate((ONE, TWO)):
                    library.apply_put(rt, user_id, None, f"seed/{i}", sha256(data), len(data),
                                      0, None)
    database.close()


# The server with the library's unit of work writing no revisions at all:
# the write path of version 1, the baseline of history's cost.
WITHOUT_REVISIONS = """\
import runpy, sys
sys.path.insert(0, {root!r})
from sync.library import Library
Library._record = lambda self, path, entry, moved_to: None
sys.argv[0] = {app!r}
runpy.run_path({app!r}, run_name="__main__")
"""


def start(data_dir, log, *args, script=None):
    return Server(data_dir, log, env={"SYNC_JANITOR_INTERVAL": "3600"}, args=args,
                  script=script).start()


def put(path, data, base_rev):
    return {"op": "put", "path": path, "sha256": sha256(data), "size": len(data),
            "mtime": 1700000000, "base_rev": base_rev}


def report_all(client, items):
    """Report ``items`` in batches; returns (seconds, results)."""
    results = []
    started = time.perf_counter()
    for i in range(0, len(items), BATCH):
        resp = client.report(items[i:i + BATCH])
        resp.raise_for_status()
        results += resp.json()["results"]
    return time.perf_counter() - started, results


def db_bytes(data_dir, collect=None):
    """Bytes of the database's used pages (after the WAL is checkpointed)."""
    path = os.path.join(data_dir, "sync.sqlite3")
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
    finally:
        conn.close()
    return (pages - free) * size


def ingest(tmp, label, entries, history_days, script=None):
    """New paths, then overwrites of each: (items/s of each round, bytes per 1,000 changes)."""
    data_dir = os.path.join(tmp, f"ingest-{label}")
    args = () if history_days is None else ("--history-days", str(history_days))
    seed(data_dir)
    server = start(data_dir, os.path.join(tmp, f"{label}.log"), *args, script=script)
    try:
        alice = Client(server.url, user_token("alice"))
        dev = alice.as_device(alice.register("Laptop")["token"])
        before = None
        paths = [f"lib/{i // 1000:03}/{i:06}.epub" for i in range(entries)]
        t_new, results = report_all(dev, [put(p, ONE, None) for p in paths])
        revs = [r["rev"] for r in results]
        server.stop()
        before = db_bytes(data_dir)
        server = start(data_dir, os.path.join(tmp, f"{label}.log"), *args, script=script)
        dev = Client(server.url, dev.session.headers["Authorization"].split()[1])
        t_over, results = report_all(dev, [put(p, TWO, r) for p, r in zip(paths, revs)])
        assert all(r["status"] == "applied" for r in results), results[:3]
    finally:
        server.stop()
    if history_days == 0:
        rt = runtime(data_dir, history_days=0)
        janitor.run_once(rt, pause=None)
        database.close()
    growth = (db_bytes(data_dir) - before) / entries * 1000
    shutil.rmtree(data_dir)
    return entries / t_new, entries / t_over, growth


def history_latency(tmp, revisions, rounds=50):
    """Median ms of GET /history/{path} (first page) for a path with many
    revisions and for a path with one page of them."""
    data_dir = os.path.join(tmp, "history")
    seed(data_dir)
    rt = runtime(data_dir)
    with database.connection_context():
        user_id = auth.ensure_user(rt, "alice").id
        for start_at in range(0, revisions, BATCH):
            with write():
                lib = Library(rt, user_id)
                lib.load(["many.epub", "one.epub"], conflicts=False)
                for i in range(start_at, min(start_at + BATCH, revisions)):
                    data = ONE if i % 2 else TWO
                    lib.put("many.epub", None, sha256(data), len(data), i)
                if start_at == 0:  # a full first page, the baseline
                    for i in range(PAGE_SIZE):
                        data = ONE if i % 2 else TWO
                        lib.put("one.epub", None, sha256(data), len(data), i)
                lib.flush()
    database.close()
    server = start(data_dir, os.path.join(tmp, "history.log"))
    try:
        alice = Client(server.url, user_token("alice"))

        def median_ms(path):
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                resp = alice.call("GET", f"/history/{path}")
                times.append(time.perf_counter() - started)
                resp.raise_for_status()
            assert len(resp.json()["revisions"]) == PAGE_SIZE
            return statistics.median(times) * 1000
        median_ms("one.epub")  # warm
        return median_ms("many.epub"), median_ms("one.epub")
    finally:
        server.stop()
        shutil.rmtree(data_dir)


def rewind(tmp, paths_count):
    """(dry run s, rewind s, bob's longest report wait ms meanwhile, bob's
    median idle report ms, count)."""
    data_dir = os.path.join(tmp, "rewind")
    seed(data_dir)
    server = start(data_dir, os.path.join(tmp, "rewind.log"))
    try:
        alice = Client(server.url, user_token("alice"))
        laptop = alice.as_device(alice.register("Laptop")["token"])
        x_record = alice.register("X")
        x = alice.as_device(x_record["token"])
        paths = [f"lib/{i // 1000:03}/{i:06}.epub" for i in range(paths_count)]
        _, results = report_all(laptop, [put(p, ONE, None) for p in paths])
        point = max(r["rev"] for r in results)
        report_all(x, [put(p, TWO, r["rev"]) for p, r in zip(paths, results)])
        bob = Client(server.url, user_token("bob"))
        bob_dev = bob.as_device(bob.register("Phone")["token"])
        n = [0]

        def bob_report():
            n[0] += 1
            started = time.perf_counter()
            resp = bob_dev.report([put(f"bob/{n[0]}.txt", ONE, None)])
            resp.raise_for_status()
            return time.perf_counter() - started

        idle = statistics.median(bob_report() for _ in range(50)) * 1000
        started = time.perf_counter()
        plan = alice.call("POST", "/rewind", json={"rev": point, "device_id": x_record["id"],
                                                   "dry_run": True}, timeout=600)
        dry = time.perf_counter() - started
        plan.raise_for_status()
        waits, stop = [], threading.Event()

        def keep_reporting():
            while not stop.is_set():
                waits.append(bob_report())
                time.sleep(0.01)

        thread = threading.Thread(target=keep_reporting)
        thread.start()
        time.sleep(0.2)
        started = time.perf_counter()
        done = alice.call("POST", "/rewind", json={"rev": point, "device_id": x_record["id"]},
                          timeout=600)
        applied = time.perf_counter() - started
        time.sleep(0.2)
        stop.set()
        thread.join()
        done.raise_for_status()
        count = done.json()["count"]
        memory = server.memory()
    finally:
        server.stop()
        shutil.rmtree(data_dir)
    return dry, applied, max(waits) * 1000, idle, count, plan.json()["count"], memory


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20000,
                        help="paths for the ingest figures (default 20000)")
    parser.add_argument("--rewind", type=int, default=100000,
                        help="paths a rewind puts back (default 100000)")
    parser.add_argument("--revisions", type=int, default=10000,
                        help="revisions of the path whose history is read (default 10000)")
    parser.add_argument("--dir", default=None, help="where the data directories go")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-history-", dir=args.dir)
    try:
        script = os.path.join(tmp, "without_revisions.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(WITHOUT_REVISIONS.format(root=ROOT, app=os.path.join(ROOT, "app.py")))
        runs = {"on": [], "off": [], "none": []}
        for _ in range(3):
            runs["on"].append(ingest(tmp, "on", args.entries, None))
            runs["off"].append(ingest(tmp, "off", args.entries, 0))
            runs["none"].append(ingest(tmp, "none", args.entries, 0, script=script))
        best = {k: (max(r[0] for r in v), max(r[1] for r in v), min(r[2] for r in v))
                for k, v in runs.items()}
        for i, what in ((0, "new paths "), (1, "overwrites")):
            on, off, none = best["on"][i], best["off"][i], best["none"][i]
            print(f"report ingest, {what}  history 30 d {on:7.0f} items/s   history 0 "
                  f"{off:7.0f} ({on / off:.2f}x)   no revisions written {none:7.0f} "
                  f"({on / none:.2f}x)")
        print(f"database growth / 1,000 overwrites  history 30 d {best['on'][2] / 1024:7.1f} KiB"
              f"   history 0 (after clean-up) {best['off'][2] / 1024:7.1f} KiB   no revisions "
              f"{best['none'][2] / 1024:7.1f} KiB")
        many, one = history_latency(tmp, args.revisions)
        print(f"GET /history first page      {args.revisions} revisions {many:6.2f} ms   "
              f"{PAGE_SIZE} revisions {one:6.2f} ms   ratio {many / one:.2f}")
        dry, applied, longest, idle, count, planned, memory = rewind(tmp, args.rewind)
        print(f"rewind of {count} paths          dry run {dry:6.2f} s   applied {applied:6.2f} s "
              f"  ({planned} planned)")
        print(f"another user's 1-item report  longest wait during the rewind {longest:7.1f} ms   "
              f"idle median {idle:5.1f} ms")
        print(f"server memory after the rewind  VmHWM {memory.get('VmHWM', 0) / 1024:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark of the report and the changes feed, run by hand:

    .venv/bin/python bench/feed.py [--entries 100000]

Starts the real server (``app.py``) on loopback in a subprocess over a
temporary data directory, seeds one entry through ``library.apply_put``,
then reports puts of many paths with that content (instant uploads) in
batches of 1,000, and reads the whole feed with ``limit=1000``. The same run
measures two baselines: a bare Falcon app on waitress answering a
precomputed 1,000-entry page, and raw SQLite inserts of the same rows with
the server's pragmas. Prints figures and ratios; asserts nothing.
"""

import argparse
import hashlib
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sync import auth, library  # noqa: E402
from sync.config import Config  # noqa: E402
from sync.db import PRAGMAS, database, write  # noqa: E402
from sync.wsgi import open_runtime  # noqa: E402

BATCH = 1000
PAGE = 1000
EDGE_PAGES = 10  # pages whose median latency is "the start" and "the end"
TIME_LIMIT_S = 600
SEED = b"the content every benchmark path shares"


def start(argv, pattern):
    """Start a server subprocess; (process, port) once it prints its port."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(pattern, line or "")
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"server did not start: {argv}")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_baseline():
    """The baseline server: Falcon on waitress answering one precomputed page."""
    import falcon
    import waitress

    change = {"path": "lib/000/0000.epub", "op": "put", "rev": 1, "size": len(SEED),
              "sha256": hashlib.sha256(SEED).hexdigest(), "mtime": 1700000000,
              "device_id": "0" * 24}
    page = json.dumps({"changes": [dict(change, rev=i + 1) for i in range(PAGE)],
                       "cursor": "x" * 30, "has_more": True}).encode()

    class Page:
        def on_get(self, req, resp):
            resp.data = page
            resp.content_type = falcon.MEDIA_JSON

    app = falcon.App()
    app.add_route("/page", Page())
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
    print(f"baseline on port {server.effective_port}", flush=True)
    server.run()


def bench_report(session, base, headers, sha, entries):
    """Report puts of ``entries`` paths in batches; (items/s, results seen,
    batch latencies in s)."""
    batches = []
    for b in range(entries // BATCH):
        items = [{"op": "put", "path": f"lib/{b:03d}/{i:04d}.epub", "sha256": sha,
                  "size": len(SEED), "mtime": 1700000000 + i, "base_rev": None}
                 for i in range(BATCH)]
        batches.append(json.dumps({"changes": items}))
    statuses, latencies = {}, []
    began = time.perf_counter()
    for body in batches:
        t0 = time.perf_counter()
        resp = session.post(f"{base}/report", data=body, headers=headers, timeout=60)
        resp.raise_for_status()
        latencies.append(time.perf_counter() - t0)
        for result in resp.json()["results"]:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        if time.perf_counter() - began > TIME_LIMIT_S:
            break
    elapsed = time.perf_counter() - began
    return sum(statuses.values()) / elapsed, statuses, latencies


def bench_feed(session, base, headers):
    """Read the whole feed; (entries/s, entries, page latencies in s, cursors
    each page was read from)."""
    latencies, count, cursor, cursors = [], 0, None, []
    began = time.perf_counter()
    while time.perf_counter() - began < TIME_LIMIT_S:
        cursors.append(cursor)
        t0 = time.perf_counter()
        resp = session.get(page_url(base, cursor), headers=headers, timeout=60)
        latencies.append(time.perf_counter() - t0)
        resp.raise_for_status()
        page = resp.json()
        count += len(page["changes"])
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    return count / (time.perf_counter() - began), count, latencies, cursors


def page_url(base, cursor):
    return f"{base}/changes?limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")


def bench_edges(session, base, headers, cursors):
    """Median latency of full pages at the start and at the end of the feed,
    read alternately so that load from elsewhere hits both alike."""
    start_urls = [page_url(base, c) for c in cursors[:EDGE_PAGES]]
    end_urls = [page_url(base, c) for c in cursors[-EDGE_PAGES - 1:-1]]
    start, end = [], []
    for _ in range(3):
        for s_url, e_url in zip(start_urls, end_urls):
            for url, into in ((s_url, start), (e_url, end)):
                t0 = time.perf_counter()
                session.get(url, headers=headers, timeout=60).json()
                into.append(time.perf_counter() - t0)
    return statistics.median(start), statistics.median(end)


def bench_baseline_http(session, port, pages):
    latencies = []
    began = time.perf_counter()
    for _ in range(pages):
        t0 = time.perf_counter()
        resp = session.get(f"http://127.0.0.1:{port}/page", timeout=60)
        resp.json()
        latencies.append(time.perf_counter() - t0)
    return PAGE * pages / (time.perf_counter() - began), latencies


def bench_sqlite_insert(path, entries):
    """Raw inserts of entry-like rows, 1,000 per transaction, server pragmas."""
    con = sqlite3.connect(path, isolation_level=None)
    for name, value in PRAGMAS:
        con.execute(f"PRAGMA {name} = {value}")
    con.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, user_id INT, path TEXT, fold TEXT, "
                "rev INT, deleted INT, size INT, sha256 TEXT, mtime INT, device_id TEXT, "
                "moved_from TEXT, changed_at TEXT, UNIQUE (user_id, path))")
    con.execute("CREATE UNIQUE INDEX e_rev ON e (user_id, rev)")
    con.execute("CREATE INDEX e_fold ON e (user_id, fold)")
    con.execute("CREATE INDEX e_sha ON e (user_id, sha256)")
    sha = hashlib.sha256(SEED).hexdigest()
    latencies = []
    began = time.perf_counter()
    for b in range(entries // BATCH):
        t0 = time.perf_counter()
        rows = [(1, f"lib/{b:03d}/{i:04d}.epub", f"lib/{b:03d}/{i:04d}.epub", b * BATCH + i, 0,
                 len(SEED), sha, 1700000000, "0" * 24, None, "2026-11-27T00:00:00Z")
                for i in range(BATCH)]
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO e (user_id, path, fold, rev, deleted, size, sha256, "
                        "mtime, device_id, moved_from, changed_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        con.execute("COMMIT")
        latencies.append(time.perf_counter() - t0)
    rate = entries / (time.perf_counter() - began)
    con.close()
    return rate, latencies


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        return serve_baseline()
    entries = max(BATCH, args.entries // BATCH * BATCH)

    with tempfile.TemporaryDirectory(prefix="bench-feed-") as tmp:
        config = Config.build(data_dir=os.path.join(tmp, "data"), access_log=False)
        rt = open_runtime(config)
        database.close()
        server, port = start([sys.executable, "app.py", "--data-dir", config.data_dir,
                              "--port", "0", "--access-log", "false"],
                             r"listening on http://[^:]+:(\d+)")
        baseline, baseline_port = start([sys.executable, __file__, "--baseline-server"],
                                        r"baseline on port (\d+)")
        try:
            base = f"http://127.0.0.1:{port}/api/v1/sync"
            session = requests.Session()
            user = {"Authorization": f"Bearer {auth.issue_user_token(rt, 'bench')}"}
            device = session.post(f"{base}/devices", json={"name": "bench"}, headers=user,
                                  timeout=10).json()
            headers = {"Authorization": f"Bearer {device['token']}",
                       "Content-Type": "application/json"}
            sha = hashlib.sha256(SEED).hexdigest()
            with database.connection_context():
                user_id = database.execute_sql(
                    "SELECT user_id FROM devices WHERE id = ?", (device["id"],)).fetchone()[0]
                with write():
                    library.apply_put(rt, user_id, device["id"], "seed.epub", sha, len(SEED),
                                      1700000000, None)

            report_rate, statuses, report_lat = bench_report(session, base, headers, sha, entries)
            feed_rate, count, latencies, cursors = bench_feed(session, base, headers)
            start_ms, end_ms = bench_edges(session, base, headers, cursors)
            base_rate, base_latencies = bench_baseline_http(
                requests.Session(), baseline_port, len(latencies))
        finally:
            stop(server)
            stop(baseline)
        insert_rate, insert_lat = bench_sqlite_insert(os.path.join(tmp, "raw.sqlite3"), entries)

    first_ms = statistics.median(latencies[:EDGE_PAGES])
    last_ms = statistics.median(latencies[-EDGE_PAGES - 1:-1])
    base_ms = statistics.median(base_latencies)
    report_med = BATCH / statistics.median(report_lat)
    insert_med = BATCH / statistics.median(insert_lat)
    feed_med = PAGE / statistics.median(latencies)
    base_med = PAGE / base_ms
    print(f"report: {entries} puts in batches of {BATCH}: {report_rate:,.0f} items/s overall, "
          f"{report_med:,.0f} items/s at the median batch {statuses}")
    print(f"  baseline raw SQLite insert (same rows, batches of {BATCH}, synchronous=full): "
          f"{insert_rate:,.0f} rows/s overall, {insert_med:,.0f} at the median batch; "
          f"report/raw = {report_rate / insert_rate:.2f} overall, "
          f"{report_med / insert_med:.2f} at the median")
    print(f"feed: {count} entries in {len(latencies)} pages of {PAGE}: {feed_rate:,.0f} "
          f"entries/s overall, {feed_med:,.0f} at the median page")
    print(f"  baseline bare Falcon+waitress precomputed page: {base_rate:,.0f} entries/s "
          f"overall, {base_med:,.0f} at the median page; feed/baseline = "
          f"{feed_rate / base_rate:.2f} overall, {feed_med / base_med:.2f} at the median")
    print(f"  page latency during the read (median of {EDGE_PAGES} full pages): "
          f"start {ms(first_ms)}, end {ms(last_ms)}, end/start = {last_ms / first_ms:.2f}")
    print(f"  page latency re-read alternately (median of {3 * EDGE_PAGES} each): "
          f"start {ms(start_ms)}, end {ms(end_ms)}, end/start = {end_ms / start_ms:.2f}; "
          f"baseline page {ms(base_ms)}, start/baseline = {start_ms / base_ms:.2f}")
    print("targets: report >= 20,000 items/s, feed >= 100,000 entries/s, end/start <= 1.2")
    return 0


if __name__ == "__main__":
    sys.exit(main())

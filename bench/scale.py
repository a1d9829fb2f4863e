"""What a request costs as the library grows: 1,000, 100,000 and 1,000,000
entries (SPEC §6: "the cost of a request does not grow with the size of the
library").

One server (``python app.py``, default settings plus a quota, so that
``POST /upload`` has to know the user's usage), one user, three devices: a
laptop that reports every change and acks at the head, a phone and an
e-reader that never ack (the case that once counted the whole library on
every device listing). The library grows by reports of 1,000 instant-upload
puts over HTTP; at each size the script measures, then grows on:

- ``GET /devices`` and ``GET /devices/{id}`` (acked and never acked),
- a single-item report, ``POST /upload`` of new content (then cancelled),
- the first and the last page of the feed (``limit=1000``),
- report ingest: the median items/s of ten reports of 1,000 new puts,
- one clean-up pass (``sync.janitor.run_once`` in this process, on the
  server's data directory) over a 200,000-blob store with 5,000 queued
  contents nothing refers to any more: its time, its longest write
  transaction, and the worst latency of single-item reports another
  writer sends meanwhile (beside the worst latency of the same writer
  without a pass). The blob store is seeded directly (rows and files); it
  is what a pass used to list in full.
- start-up time, and ``app.py backup`` and ``app.py check`` times.

Every figure is printed with its ratio to the figure at the first size.

    .venv/bin/python bench/scale.py                       # 1k, 100k, 1M: ~15 min, ~3 GB
    .venv/bin/python bench/scale.py --sizes 1000,100000   # quicker
"""

import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import ROOT, SECRET, Client, Server, sha256, user_token  # noqa: E402
from sync import cursors, janitor  # noqa: E402
from sync.config import Config  # noqa: E402
from sync.db import database, init_db  # noqa: E402
from sync.runtime import Runtime  # noqa: E402

BATCH = 1000
QUEUED = 5000
CONTENT = b"the one book every path holds\n" * 40


def median_ms(fn, times):
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def ok(resp):
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url}: {resp.status_code} "
                           f"{resp.text[:300]}")
    return resp


class Library:
    """The server, its devices and the growing library."""

    def __init__(self, base):
        self.base = base
        self.data = os.path.join(base, "data")
        self.server = Server(self.data, os.path.join(base, "server.log"),
                             env={"SYNC_QUOTA": str(1 << 40),
                                  "SYNC_JANITOR_INTERVAL": "100000"})
        self.size = 0
        self.batch_rates = []
        self.extra = 0

    def start(self):
        self.server.start(timeout=300)
        self.user = Client(self.server.url, user_token("reader"))
        if hasattr(self, "laptop"):  # a restart: another port
            self.dev = self.user.as_device(self.laptop["token"])

    def setup(self):
        self.start()
        self.laptop = self.user.register("Laptop")
        self.phone = self.user.register("Phone")
        self.kobo = self.user.register("Kobo")
        self.dev = self.user.as_device(self.laptop["token"])
        ok(self.dev.upload("seed.txt", CONTENT, None))
        self.size = 1

    def db(self):
        return sqlite3.connect(os.path.join(self.data, "sync.sqlite3"), timeout=60)

    def head_rev(self):
        conn = self.db()
        try:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0])
        finally:
            conn.close()

    def db_id(self):
        conn = self.db()
        try:
            return conn.execute("SELECT value FROM meta WHERE key = 'db_id'").fetchone()[0]
        finally:
            conn.close()

    def grow(self, target):
        sha, size = sha256(CONTENT), len(CONTENT)
        while self.size < target:
            n = min(BATCH, target - self.size)
            items = [{"op": "put", "path": f"lib/{i // 1000:04d}/{i:07d}.epub", "sha256": sha,
                      "size": size, "mtime": 1700000000, "base_rev": None}
                     for i in range(self.size, self.size + n)]
            started = time.perf_counter()
            resp = ok(self.dev.report(items))
            self.batch_rates.append(n / (time.perf_counter() - started))
            assert all(r["status"] == "applied" for r in resp.json()["results"])
            self.size += n

    def ingest(self, batches=10):
        """Median items/s of ``batches`` reports of 1,000 new puts, now."""
        done = len(self.batch_rates)
        self.grow(self.size + batches * BATCH)
        return statistics.median(self.batch_rates[done:])

    def single_report(self):
        self.extra += 1
        ok(self.dev.report([{"op": "put", "path": f"extra/{self.extra}.txt",
                             "sha256": sha256(CONTENT), "size": len(CONTENT),
                             "mtime": 1700000000, "base_rev": None}]))

    def upload_with_quota(self):
        data = os.urandom(32)
        session = ok(self.dev.create_upload(f"new/{data.hex()}.bin", 1 << 20,
                                            hashlib.sha256(data).hexdigest(), None)).json()
        ok(self.dev.call("DELETE", f"/upload/{session['id']}"))


def seed_blobs(lib, count, queued):
    """``count`` blobs (files and rows, nothing refers to them and nothing
    queued them) and ``queued`` more that the queue names; returns the time."""
    started = time.perf_counter()
    rows = []
    for i in range(count + queued):
        data = b"blob %d of the store\n" % i + os.urandom(8)
        sha = hashlib.sha256(data).hexdigest()
        path = os.path.join(lib.data, "blobs", sha[:2], sha)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        rows.append((sha, len(data)))
    conn = lib.db()
    try:
        with conn:
            conn.executemany("INSERT INTO blobs (sha256, size, created_at) "
                             "VALUES (?, ?, '2026-11-01T00:00:00Z')", rows)
            conn.executemany("INSERT OR IGNORE INTO blob_queue (sha256, queued_at) "
                             "VALUES (?, '2026-11-01T00:00:00Z')", [(s,) for s, _ in rows[count:]])
    finally:
        conn.close()
    return time.perf_counter() - started


class Writer(threading.Thread):
    """Single-item reports, one after another, recording each latency."""

    def __init__(self, lib):
        super().__init__(daemon=True)
        self.client = Client(lib.server.url, lib.laptop["token"])
        self.stop = threading.Event()
        self.latencies = []
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            self.n += 1
            started = time.perf_counter()
            ok(self.client.report([{"op": "put", "path": f"writer/{time.time_ns()}-{self.n}",
                                    "sha256": sha256(CONTENT), "size": len(CONTENT),
                                    "mtime": 0, "base_rev": None}]))
            self.latencies.append(time.perf_counter() - started)


def janitor_pass(lib):
    """(pass s, longest write transaction s, removed, worst writer latency
    during the pass ms, worst writer latency without a pass ms)."""
    config = Config.build(data_dir=lib.data, access_log=False)
    rt = Runtime(config=config, secret=b"", db_id=init_db(config.path("sync.sqlite3")))
    quiet = Writer(lib)
    quiet.start()
    time.sleep(2)
    quiet.stop.set()
    quiet.join()
    busy = Writer(lib)
    busy.start()
    time.sleep(0.2)
    started = time.perf_counter()
    result = janitor.run_once(rt)
    elapsed = time.perf_counter() - started
    busy.stop.set()
    busy.join()
    database.close()
    return (elapsed, result["longest_write_s"], result["blobs"],
            max(busy.latencies) * 1000, max(quiet.latencies) * 1000)


def timed_command(*args):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, os.path.join(ROOT, "app.py"), *args], cwd=ROOT,
                            capture_output=True, text=True,
                            env=dict(os.environ, SYNC_JWT_SECRET=SECRET))
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"app.py {' '.join(args)}: {result.stdout[-500:]} "
                           f"{result.stderr[-500:]}")
    return elapsed


def measure(lib, first_batches_done, blobs_done):
    figures = {}
    laptop_id = lib.laptop["id"]
    db_id = lib.db_id()
    ok(lib.dev.ack(cursors.encode(db_id, lib.head_rev())))
    figures["GET /devices (2 of 3 never acked), ms"] = median_ms(
        lambda: ok(lib.user.call("GET", "/devices")), 40)
    figures["GET /devices/{id}, acked, ms"] = median_ms(
        lambda: ok(lib.user.call("GET", f"/devices/{laptop_id}")), 40)
    figures["GET /devices/{id}, never acked, ms"] = median_ms(
        lambda: ok(lib.user.call("GET", f"/devices/{lib.phone['id']}")), 40)
    pending = ok(lib.user.call("GET", f"/devices/{lib.phone['id']}")).json()["pending_changes"]
    figures["single-item report, ms"] = median_ms(lib.single_report, 40)
    figures["POST /upload with a quota, ms"] = median_ms(lib.upload_with_quota, 40)
    figures["first feed page (1000), ms"] = median_ms(lambda: ok(lib.dev.changes()), 10)
    last = cursors.encode(db_id, max(0, lib.head_rev() - 1000))
    figures["last feed page (1000), ms"] = median_ms(lambda: ok(lib.dev.changes(last)), 10)
    figures["report ingest at this size (10 x 1000 puts), items/s"] = lib.ingest()
    if not blobs_done:
        seed_blobs(lib, blobs_total, QUEUED)
    else:
        seed_blobs(lib, 0, QUEUED)
    elapsed, longest, removed, busy, quiet = janitor_pass(lib)
    assert removed >= QUEUED, removed
    figures[f"clean-up pass ({QUEUED} queued, {blobs_total} blobs), s"] = elapsed
    figures["  its longest write transaction, ms"] = longest * 1000
    figures["  worst single-item report meanwhile, ms"] = busy
    figures["  worst single-item report, no pass, ms"] = quiet
    lib.server.stop()
    started = time.perf_counter()
    lib.start()
    figures["startup (to /healthz), s"] = time.perf_counter() - started
    dest = os.path.join(lib.base, "backup")
    figures["app.py backup, s"] = timed_command("backup", dest, "--data-dir", lib.data)
    shutil.rmtree(dest)
    figures["app.py check, s"] = timed_command("check", "--data-dir", lib.data)
    return figures, pending


def main():
    global blobs_total
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--sizes", default="1000,100000,1000000",
                        help="library sizes to measure at, ascending (default 1k, 100k, 1M)")
    parser.add_argument("--blobs", type=int, default=200_000,
                        help="blobs in the store for the clean-up pass (default 200,000)")
    parser.add_argument("--dir", default=None, help="where to put the data directory")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    blobs_total = args.blobs
    base = tempfile.mkdtemp(prefix="bench-scale-", dir=args.dir)
    lib = Library(base)
    results = []
    try:
        lib.setup()
        for n, size in enumerate(sizes):
            started = time.perf_counter()
            lib.grow(size)
            print(f"# {size:,} entries reached in {time.perf_counter() - started:.0f} s",
                  flush=True)
            figures, pending = measure(lib, n > 0, n > 0)
            assert pending >= size, (pending, size)
            results.append((size, figures))
            print(f"# measured at {size:,} (pending_changes of a never-acked device: "
                  f"{pending:,})", flush=True)
    finally:
        lib.server.stop()
        shutil.rmtree(base, ignore_errors=True)
    names = list(results[0][1])
    header = "| figure | " + " | ".join(f"{s:,}" for s, _ in results) + " | " + " | ".join(
        f"{s:,} / {results[0][0]:,}" for s, _ in results[1:]) + " |"
    print()
    print(header)
    print("|" + " --- |" * (1 + 2 * len(results) - 1))
    for name in names:
        base_value = results[0][1][name]
        cells = [f"{f[name]:,.1f}" if f[name] >= 10 else f"{f[name]:.2f}" for _, f in results]
        ratios = [f"{f[name] / base_value:.2f}" if base_value else "-" for _, f in results[1:]]
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()

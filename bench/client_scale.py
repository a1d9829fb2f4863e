"""The sync client at 1,000, 10,000 and 100,000 files: the first sync of a
folder whose content the server already holds (another device uploaded it),
then an idle pass (nothing changed anywhere), each as ``python -m
sync.client sync`` in its own process: wall time and peak resident memory
(``ru_maxrss``). Targets at 100,000 files: an idle pass under 3 s, peak RSS
under 150 MiB.

The server's library is seeded before it starts, through the library's unit
of work in this process (blob files, then ``library.Library`` in batches of
1,000, as completed uploads would leave it); the folder holds the same files.

    .venv/bin/python bench/client_scale.py                  # 1k, 10k, 100k: ~5 min
    .venv/bin/python bench/client_scale.py --sizes 1000,10000
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import ROOT, SECRET, Server, user_token  # noqa: E402

BATCH = 1000


def content(i):
    return b"file number %d of the library\n" % i


def rel_path(i):
    return f"books/{i // 1000:03d}/{i:06d}.txt"


def seed_server(data_dir, count):
    """``count`` files in user ``reader``'s library, with their blobs."""
    os.environ["SYNC_JWT_SECRET"] = SECRET
    from sync import auth, blobs
    from sync.config import Config
    from sync.db import database, write
    from sync.library import Library
    from sync.wsgi import open_runtime

    config = Config.build(data_dir=data_dir, access_log=False, fsync=False)
    rt = open_runtime(config)

    class Quiet:
        def notify(self, user_id):
            pass

    rt.waiters = getattr(rt, "waiters", None) or Quiet()
    with database.connection_context():
        user_id = auth.ensure_user(rt, "reader").id
        for first in range(0, count, BATCH):
            rows = []
            for i in range(first, min(first + BATCH, count)):
                data = content(i)
                sha = hashlib.sha256(data).hexdigest()
                path = blobs.blob_path(config, sha)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                rows.append((rel_path(i), sha, len(data)))
            with write():
                database.connection().executemany(
                    "INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)",
                    [(sha, size, rt.now()) for _, sha, size in rows])
                library = Library(rt, user_id)
                library.load([p for p, _, _ in rows])
                for path, sha, size in rows:
                    library.put(path, None, sha, size, 1700000000)
                library.flush()
    database.close()


def make_folder(folder, count):
    for i in range(count):
        path = os.path.join(folder, rel_path(i))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content(i))


_WRAPPER = """
import atexit, resource, runpy, sys
atexit.register(lambda: sys.stderr.write(
    "\\nMAXRSS %d\\n" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.argv = ["sync.client"] + sys.argv[1:]
runpy.run_module("sync.client", run_name="__main__", alter_sys=True)
"""


def client(*args):
    """Run the client; (seconds, its peak RSS in MiB, stdout)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _WRAPPER, *args], cwd=ROOT,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"client {args[0]} failed: {result.stdout[-800:]} "
                           f"{result.stderr[-800:]}")
    peak_kib = int(result.stderr.rsplit("MAXRSS ", 1)[1].split()[0])
    return elapsed, peak_kib / 1024, result.stdout


def run(size, base):
    data = os.path.join(base, f"data-{size}")
    folder = os.path.join(base, f"folder-{size}")
    started = time.perf_counter()
    seed_server(data, size)
    make_folder(folder, size)
    print(f"# {size:,} files seeded in {time.perf_counter() - started:.0f} s", flush=True)
    server = Server(data, os.path.join(base, f"server-{size}.log")).start(timeout=120)
    try:
        client("init", folder, "--server", server.url, "--token", user_token("reader"),
               "--device-name", "bench")
        first, first_rss, _ = client("sync", folder, "--quiet")
        idle, idle_rss, _ = client("sync", folder, "--quiet")
    finally:
        server.stop()
    state = os.path.join(folder, ".sync", "state.sqlite3")
    return {"first sync (content already on the server), s": first,
            "idle pass, s": idle,
            "first sync, peak RSS, MiB": first_rss,
            "idle pass, peak RSS, MiB": idle_rss,
            "state database, MiB": os.path.getsize(state) / 1024 / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="folder sizes, ascending (default 1k, 10k, 100k)")
    parser.add_argument("--dir", default=None, help="where to put the data and folders")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = tempfile.mkdtemp(prefix="bench-client-", dir=args.dir)
    results = []
    try:
        for size in sizes:
            results.append((size, run(size, base)))
            print(f"# {size:,}: {results[-1][1]}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    names = list(results[0][1])
    print()
    print("| figure | " + " | ".join(f"{s:,}" for s, _ in results) + " | "
          + " | ".join(f"{s:,} / {results[0][0]:,}" for s, _ in results[1:]) + " |")
    print("|" + " --- |" * (2 * len(results)))
    for name in names:
        base_value = results[0][1][name]
        cells = [f"{f[name]:.2f}" for _, f in results]
        ratios = [f"{f[name] / base_value:.2f}" for _, f in results[1:]]
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()

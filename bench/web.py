"""Benchmark of the web page's Files page, run by hand:

    .venv/bin/python bench/web.py [--folder 10000] [--others 90000] [--small 1000]

Seeds a temporary data directory with a folder of ``--folder`` files and
``--others`` files elsewhere in the same library (one content, through
``library.apply_put``), starts the real server (``app.py``) on loopback,
logs in through the login form and times, as the median of repeated
requests, the first and a middle page of that folder, the top of the
library and the overview. The same run measures the baselines:
``/healthz`` (the floor of a request), a page of the JSON feed of as many
entries as a page of the folder shows, and the overview of another user
whose library holds ``--small`` files. It also renders the whole folder as
one page, without paging, in this process. Prints figures and ratios;
asserts nothing.
"""

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import SECRET, Server  # noqa: E402
from sync import auth, library  # noqa: E402
from sync.config import Config  # noqa: E402
from sync.db import database, write  # noqa: E402
from sync.web import views  # noqa: E402
from sync.wsgi import open_runtime  # noqa: E402

PASSWORD = "bench password 1234"
CONTENT = b"the content every benchmark path shares"
ROUNDS = 30


def seed_user(rt, name, paths, sha):
    auth.add_user(rt, name, PASSWORD)
    uid = auth.ensure_user(rt, name).id
    device = rt.idgen()
    with write():
        database.execute_sql(
            "INSERT INTO devices (id, user_id, name, created_at) VALUES (?, ?, 'Laptop', ?)",
            (device, uid, rt.now()))
    for start in range(0, len(paths), 5000):
        with write():
            for path in paths[start:start + 5000]:
                library.apply_put(rt, uid, device, path, sha, len(CONTENT), 1700000000, None)
    return uid, device


def seed(data_dir, folder, others, small):
    rt = open_runtime(Config.build(data_dir=data_dir, jwt_secret=SECRET, access_log=False,
                                   fsync=False))
    sha = hashlib.sha256(CONTENT).hexdigest()
    blob = os.path.join(data_dir, "blobs", sha[:2], sha)
    os.makedirs(os.path.dirname(blob), exist_ok=True)
    with open(blob, "wb") as f:
        f.write(CONTENT)
    with database.connection_context():
        with write():
            database.execute_sql("INSERT INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)",
                                 (sha, len(CONTENT), rt.now()))
        paths = [f"big/file {i:05d}.epub" for i in range(folder)]
        paths += [f"other/{i // 1000:03d}/{i % 1000:03d}.epub" for i in range(others)]
        uid, device = seed_user(rt, "alice", paths, sha)
        seed_user(rt, "bob", [f"books/{i:05d}.epub" for i in range(small)], sha)
    database.close()
    return rt, uid, device


def median_ms(session, url, headers=None, rounds=ROUNDS):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        resp = session.get(url, headers=headers or {}, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
    return statistics.median(times), len(resp.content)


def unpaged_ms(rt, uid, folder_size):
    """The whole folder rendered as one page, in this process."""
    from sync.web import pages
    site = pages.Web(rt)
    template = site.env.get_template("files.html")
    with database.connection_context():
        t0 = time.perf_counter()
        items = views.list_folder(uid, "big", limit=folder_size + 1)[0]
        text = template.render(session=None, user_name="alice", csrf="x", path="/files",
                               flash=None, folder="big", items=items, crumbs=[("big", "big")],
                               next_url=None, first_url=None, upload_chunk=8 << 20)
        elapsed = (time.perf_counter() - t0) * 1000
    return elapsed, len(text.encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=90_000)
    parser.add_argument("--small", type=int, default=1000,
                        help="files of the other user, whose overview is the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        t0 = time.perf_counter()
        rt, uid, device = seed(data_dir, args.folder, args.others, args.small)
        print(f"seeded {args.folder:,} files in big/ and {args.others:,} elsewhere, "
              f"and {args.small:,} of another user, in {time.perf_counter() - t0:.1f} s")
        server = Server(data_dir, os.path.join(tmp, "server.log"),
                        env={"SYNC_ACCESS_LOG": "false"}).start()
        try:
            browser, small_browser = requests.Session(), requests.Session()
            for session, name in ((browser, "alice"), (small_browser, "bob")):
                resp = session.post(server.url + "/login", allow_redirects=False,
                                    data={"username": name, "password": PASSWORD}, timeout=30)
                assert resp.status_code == 303, resp.text
            token = auth.issue_user_token(rt, "alice")
            api = {"Authorization": f"Bearer {token}", "X-Device-Id": device}
            floor, _ = median_ms(browser, server.url + "/healthz")
            feed, feed_bytes = median_ms(
                browser, server.url + f"/api/v1/sync/changes?limit={views.PAGE_SIZE}", api)
            first, first_bytes = median_ms(browser, server.url + "/files?in=big")
            middle, _ = median_ms(
                browser, server.url + f"/files?in=big&after=big/file%20{args.folder // 2:05d}.epub")
            top, _ = median_ms(browser, server.url + "/files")
            overview, _ = median_ms(browser, server.url + "/")
            small_overview, _ = median_ms(small_browser, server.url + "/")
        finally:
            server.stop()
        whole, whole_bytes = unpaged_ms(rt, uid, args.folder)
    print(f"GET /healthz (floor)                          {floor:8.1f} ms")
    print(f"GET /changes?limit={views.PAGE_SIZE} (JSON baseline)     {feed:8.1f} ms  "
          f"{feed_bytes / 1000:.0f} kB")
    print(f"GET /files?in=big, first page of {views.PAGE_SIZE}        {first:8.1f} ms  "
          f"{first_bytes / 1000:.0f} kB  x{first / feed:.2f} the JSON page")
    print(f"GET /files?in=big, a middle page              {middle:8.1f} ms")
    print(f"GET /files (top: 2 folders, {args.folder + args.others:,} files under)"
          f" {top:8.1f} ms")
    print(f"GET / (overview), {args.small:,} files (baseline) {small_overview:8.1f} ms")
    print(f"GET / (overview), {args.folder + args.others:,} files          {overview:8.1f} ms  "
          f"x{overview / small_overview:.2f} the baseline")
    print(f"the whole folder as one page, unpaged         {whole:8.1f} ms  "
          f"{whole_bytes / 1000:.0f} kB (in process)")


if __name__ == "__main__":
    main()

"""WebDAV speed against baselines measured in the same run. Run by hand
(it writes about 5 GiB with the defaults):

    .venv/bin/python bench/webdav.py [--size-mib 256] [--files 10000] [--rounds 6] [--dir DIR]

1. PROPFIND Depth 1 of a folder of 10,000 files (seeded through the sync
   API as instant uploads), beside reading the same entries from the feed.
2. The peer: WsgiDAV's own filesystem provider under waitress (same
   threads and receive size, anonymous, no fsync) serving a folder:
   PROPFIND Depth 1 of a folder of 10,000 files.
3. A file of 256 MiB, ``--rounds`` times (6), new content each round: a
   chunked upload (8 MiB chunks, one connection), then a ``PUT`` through
   ``/dav/`` and a ``PUT`` to the peer (which goes first alternates); then
   ``GET /api/v1/sync/download``, ``GET`` through ``/dav/`` and from the
   peer (in turn, the other way round every other round). Medians over the
   rounds: the baselines are the upload and the download.
   Every measurement starts after an ``os.sync()`` (outside the time).
4. The server's peak resident memory (``VmHWM``).

Targets (SPEC §10): PROPFIND under 2 s; DAV GET >= 0.5x /download; DAV
PUT >= 0.5x the chunked upload; both ahead of the filesystem peer.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import MIB, Client, Server, sha256, user_token, write_random  # noqa: E402

CHUNK = 8 * MIB
BLOCK = MIB

PEER = r'''
import sys, waitress
from wsgidav.wsgidav_app import WsgiDAVApp
app = WsgiDAVApp({"provider_mapping": {"/": sys.argv[1]},
                  "simple_dc": {"user_mapping": {"*": True}},
                  "http_authenticator": {"domain_controller": None},
                  "verbose": 0, "logging": {"enable": False},
                  "dir_browser": {"enable": False}})
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[2]), threads=8, ident="peer",
               max_request_body_size=1 << 40, recv_bytes=256 * 1024, _quiet=True)
'''

PROPS = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/>'
         b'<d:getcontentlength/><d:getlastmodified/><d:getetag/></d:prop></d:propfind>')


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn):
    # Each measurement starts with nothing waiting to be written back: the
    # peer leaves its file dirty in the page cache (no fsync), and the
    # kernel would write it out during whatever is measured next.
    os.sync()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def get_all(session, url, **kw):
    count = 0
    with session.get(url, stream=True, timeout=600, **kw) as resp:
        resp.raise_for_status()
        for block in resp.iter_content(BLOCK):
            count += len(block)
    return count


def put_file(session, url, path, **kw):
    with open(path, "rb") as f:
        resp = session.put(url, data=f, timeout=600,
                           headers={"Content-Length": str(os.path.getsize(path))}, **kw)
    resp.raise_for_status()
    return resp


def propfind(session, url, **kw):
    resp = session.request("PROPFIND", url, data=PROPS, timeout=600,
                           headers={"Depth": "1", "Content-Type": "application/xml"}, **kw)
    assert resp.status_code == 207, resp.status_code
    return len(ElementTree.fromstring(resp.content).findall("{DAV:}response"))


def chunked_upload(client, path, data_path, size, sha):
    resp = client.create_upload(path, size, sha, None, chunk_size=CHUNK)
    resp.raise_for_status()
    session = resp.json()
    with open(data_path, "rb") as f:
        for index in range(session["chunk_count"]):
            client.put_chunk(session["id"], index, f.read(CHUNK)).raise_for_status()
    client.complete(session["id"]).raise_for_status()


def line(name, seconds, size_mib=None, baseline=None, target=""):
    rate = f"{size_mib / seconds:8.1f} MiB/s" if size_mib else " " * 14
    ratio = f"{baseline / seconds:5.2f}x" if baseline else "      "
    print(f"{name:<44} {seconds:8.3f} s {rate} {ratio} {target}")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def stop_all(peer, server, work):
    """End the peer and the server (either may be None) and remove ``work``."""
    if peer is not None:
        peer.kill()
        peer.wait()
    if server is not None:
        server.stop()
    shutil.rmtree(work, ignore_errors=True)


def start_peer(share, prelude="", env=None):
    """WsgiDAV's filesystem provider serving ``share`` (``prelude``: code run
    before it in its process); (the process, its URL) once it answers."""
    port = free_port()
    peer = subprocess.Popen([sys.executable, "-c", prelude + PEER, share, str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            requests.request("OPTIONS", url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    return peer, url


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-webdav-", dir=args.dir)
    server = peer = None
    try:
        data_path = os.path.join(work, "data.bin")
        write_random(data_path, args.size_mib)
        size = args.size_mib * MIB

        server = Server(os.path.join(work, "server"), os.path.join(work, "server.log"),
                        env={"SYNC_ACCESS_LOG": "false"}).start()
        api = Client(server.url, user_token("alice"))
        device = api.register("Bench")
        password = api.call("POST", f"/devices/{device['id']}/app-password").json()[
            "app_password"]
        dev = api.as_device(device["token"])
        dav = requests.Session()
        dav.auth = ("alice", password)
        root = server.url + "/dav/files/alice/"

        # 1. A folder of N files, seeded as instant uploads of one content.
        dev.upload("seed.txt", b"x", None).raise_for_status()
        for start in range(0, args.files, 1000):
            dev.report([{"op": "put", "path": f"many/{i:06d}.txt", "sha256": sha256(b"x"),
                         "size": 1, "mtime": 1600000000 + i, "base_rev": None}
                        for i in range(start, min(start + 1000, args.files))]).raise_for_status()

        seeded = server.memory()

        def feed_pages():
            cursor, count = None, 0
            while True:
                body = dev.changes(cursor).json()
                count += len(body["changes"])
                cursor = body["cursor"]
                if not body["has_more"]:
                    return count
        feed_s, _ = timed(feed_pages)
        fed = server.memory()
        propfind(dav, root + "many/")  # warm
        prop_s, count = timed(lambda: propfind(dav, root + "many/"))
        assert count == args.files + 1, count
        listed = server.memory()

        # 2. The peer: WsgiDAV's filesystem provider.
        share = os.path.join(work, "peer")
        os.makedirs(os.path.join(share, "many"))
        for i in range(args.files):
            with open(os.path.join(share, "many", f"{i:06d}.txt"), "wb") as f:
                f.write(b"x")
        peer, peer_url = start_peer(share)
        plain = requests.Session()
        propfind(plain, peer_url + "many/")
        peer_prop_s, count = timed(lambda: propfind(plain, peer_url + "many/"))
        assert count == args.files + 1, count

        # 3. The transfers, round by round, new content each round.
        times = {key: [] for key in ("up", "put", "peer_put", "down", "get", "peer_get")}
        for r in range(args.rounds):
            with open(data_path, "r+b") as f:
                f.write(os.urandom(32))
            sha = file_sha256(data_path)
            times["up"].append(timed(lambda: chunked_upload(dev, f"api-{r}.bin", data_path,
                                                            size, sha))[0])
            # The server and the peer take turns at going first: on this kind
            # of machine the later of two large writes in a row can be slower.
            puts = [("put", dav, f"{root}dav-{r}.bin"),
                    ("peer_put", plain, f"{peer_url}peer-{r}.bin")]
            for key, session, url in puts if r % 2 == 0 else puts[::-1]:
                times[key].append(timed(lambda: put_file(session, url, data_path))[0])
            gets = [("down", dev.session, f"{dev.url}/api/v1/sync/download/api-{r}.bin"),
                    ("get", dav, f"{root}dav-{r}.bin"),
                    ("peer_get", plain, f"{peer_url}peer-{r}.bin")]
            for key, session, url in gets if r % 2 == 0 else gets[::-1]:
                seconds, got = timed(lambda: get_all(session, url))
                assert got == size
                times[key].append(seconds)
        memory = server.memory()
        mib = args.size_mib
        t = {key: statistics.median(values) for key, values in times.items()}

        print(f"{'':<44} {'time':>10} {'throughput':>14} {'ratio':>6}")
        line(f"feed: {args.files} entries, pages of 1000", feed_s)
        line(f"PROPFIND Depth 1, {args.files} files (server)", prop_s, baseline=feed_s,
             target="target < 2 s" + ("  OK" if prop_s < 2 else "  MISSED"))
        line(f"PROPFIND Depth 1, {args.files} files (fs peer)", peer_prop_s)
        print(f"transfers: medians of {args.rounds} round(s)")
        line(f"upload {mib} MiB, 8 MiB chunks (baseline)", t["up"], mib)
        line(f"PUT {mib} MiB through /dav/", t["put"], mib, t["up"],
             "target >= 0.5x" + ("  OK" if t["up"] / t["put"] >= 0.5 else "  MISSED"))
        line(f"PUT {mib} MiB, WsgiDAV filesystem peer", t["peer_put"], mib, t["up"],
             "server ahead" if t["put"] < t["peer_put"] else "peer ahead")
        line(f"GET /api/v1/sync/download {mib} MiB (baseline)", t["down"], mib)
        line(f"GET {mib} MiB through /dav/", t["get"], mib, t["down"],
             "target >= 0.5x" + ("  OK" if t["down"] / t["get"] >= 0.5 else "  MISSED"))
        line(f"GET {mib} MiB, WsgiDAV filesystem peer", t["peer_get"], mib, t["down"],
             "server ahead" if t["get"] < t["peer_get"] else "peer ahead")
        for key, name in (("put", "PUT /dav/"), ("peer_put", "PUT peer")):
            print(f"  {name:<10} each round: " + " ".join(f"{x:.3f}" for x in times[key]))
        print(f"server peak RSS: {memory['VmHWM'] / 1024:.1f} MiB "
              f"(now {memory['VmRSS'] / 1024:.1f} MiB); after seeding "
              f"{seeded['VmHWM'] / 1024:.1f}, after the feed {fed['VmHWM'] / 1024:.1f}, "
              f"after PROPFIND {listed['VmHWM'] / 1024:.1f} MiB")
    finally:
        stop_all(peer, server, work)


if __name__ == "__main__":
    main()

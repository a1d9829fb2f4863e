"""Memory: the server's peak resident memory (VmHWM) while a large file is
uploaded in chunks and downloaded whole (and by ranges). The file is
generated on the fly, never held in memory; the data directory is deleted
at the end.

    python bench/memory.py --size 1GiB
"""

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MIB, Client, Server, user_token  # noqa: E402

BLOCK = MIB


def blocks(size, base):
    """The test file, a block at a time: ``base`` (random bytes) with the
    block's index stamped in, so no two blocks are alike."""
    offset = index = 0
    while offset < size:
        block = index.to_bytes(8, "big") + base[8:]
        yield block[:size - offset]
        offset += len(block)
        index += 1


def chunks(size, base, chunk_size):
    """The file cut into upload chunks (each built from a few blocks)."""
    pending = bytearray()
    for block in blocks(size, base):
        pending += block
        while len(pending) >= chunk_size:
            yield bytes(pending[:chunk_size])
            del pending[:chunk_size]
    if pending:
        yield bytes(pending)


class Sampler(threading.Thread):
    """Samples the server's VmRSS every 50 ms."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.peak_rss = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            try:
                self.peak_rss = max(self.peak_rss, self.server.memory()["VmRSS"])
            except (OSError, KeyError):
                return


def parse_size(text):
    units = {"gib": 1 << 30, "mib": 1 << 20, "": 1}
    low = text.lower()
    for unit, factor in units.items():
        if unit and low.endswith(unit):
            return int(float(low[:-len(unit)]) * factor)
    return int(low)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--chunk-size", default="8MiB")
    parser.add_argument("--dir", default=None, help="where to put the data directory")
    parser.add_argument("--parallel", type=int, default=1,
                        help="chunks sent at once, and downloads of the file at once")
    parser.add_argument("--logins", type=int, default=0,
                        help="then this many failing logins at once, three rounds "
                             "(each hashes with scrypt, 16 MiB); at most 16, since 50 "
                             "failures from one address lock it out")
    args = parser.parse_args(argv)
    if args.logins > 16:
        parser.error("--logins: at most 16 (50 failed logins from one address are throttled)")
    size, chunk_size = parse_size(args.size), parse_size(args.chunk_size)
    workdir = tempfile.mkdtemp(prefix="memory-", dir=args.dir)
    free = shutil.disk_usage(workdir).free
    if free < 2.2 * size:
        print(f"not enough disk: {free / MIB:.0f} MiB free, need {2.2 * size / MIB:.0f}")
        return 2
    base = os.urandom(BLOCK)
    h = hashlib.sha256()
    for block in blocks(size, base):
        h.update(block)
    digest = h.hexdigest()
    server = Server(os.path.join(workdir, "data"), os.path.join(workdir, "server.log"),
                    env={"SYNC_ACCESS_LOG": "0"}).start()
    try:
        owner = Client(server.url, user_token("mem"))
        client = owner.as_device(owner.register("big")["token"])
        idle = server.memory()
        sampler = Sampler(server)
        sampler.start()
        t0 = time.monotonic()
        resp = client.create_upload("big/file.bin", size, digest, None, chunk_size)
        resp.raise_for_status()
        session = resp.json()
        # Chunks go out ``--parallel`` at a time (the client holds that many).
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            pending = set()
            for index, chunk in enumerate(chunks(size, base, session["chunk_size"])):
                if len(pending) >= args.parallel:
                    done, pending = concurrent.futures.wait(
                        pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in done:
                        future.result().raise_for_status()
                pending.add(pool.submit(client.put_chunk, session["id"], index, chunk))
            for future in pending:
                future.result().raise_for_status()
        resp = client.complete(session["id"])
        resp.raise_for_status()
        upload_s = time.monotonic() - t0
        after_upload = server.memory()
        print(f"complete: {resp.json()}")

        def download():
            got, h = 0, hashlib.sha256()
            with client.download("big/file.bin", stream=True) as resp:
                resp.raise_for_status()
                for part in resp.iter_content(1 << 20):
                    got += len(part)
                    h.update(part)
            return got, h.hexdigest()

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            results = list(pool.map(lambda _: download(), range(args.parallel)))
        download_s = time.monotonic() - t0
        for got, hexdigest in results:
            if got != size or hexdigest != digest:
                print(f"DOWNLOAD MISMATCH: {got} bytes, sha {hexdigest}")
                return 1
        ranged = client.download("big/file.bin", headers={"Range": f"bytes={size // 2}-"},
                                 stream=True)
        ranged_bytes = sum(len(p) for p in ranged.iter_content(1 << 20))
        ranged.close()
        if args.logins:
            def login(n):
                # A name each (unknown names cost the same scrypt hash): ten
                # failures for one name would lock it out (429, no hash).
                for k in range(3):
                    resp = requests.post(server.url + "/api/v1/auth/login",
                                         json={"username": f"mem{n}-{k}", "password": "wrong"})
                    assert resp.status_code == 401, resp.status_code
            with concurrent.futures.ThreadPoolExecutor(args.logins) as pool:
                list(pool.map(login, range(args.logins)))
            print(f"{3 * args.logins} failing logins, {args.logins} at a time: "
                  f"VmHWM {server.memory()['VmHWM'] / 1024:.1f} MiB")
        final = server.memory()
        sampler.stop.set()
        sampler.join()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    gib = size / (1 << 30)
    print(f"file: {size / MIB:.0f} MiB ({gib:.2f} GiB), chunks of "
          f"{session['chunk_size'] / MIB:.0f} MiB, {args.parallel} at a time")
    print(f"upload: {upload_s:.1f} s ({size / MIB / upload_s:.0f} MiB/s); "
          f"{args.parallel} download(s): {download_s:.1f} s "
          f"({args.parallel * size / MIB / download_s:.0f} MiB/s); "
          f"range download of the second half: {ranged.status_code}, {ranged_bytes / MIB:.0f} MiB")
    print(f"server RSS idle: {idle['VmRSS'] / 1024:.1f} MiB; VmHWM after upload: "
          f"{after_upload['VmHWM'] / 1024:.1f} MiB; "
          f"after download: {final['VmHWM'] / 1024:.1f} MiB; "
          f"sampled peak VmRSS: {sampler.peak_rss / 1024:.1f} MiB")
    print(f"peak vs idle: {final['VmHWM'] / max(idle['VmRSS'], 1):.2f}x; target < 100 MiB: "
          f"{'ok' if final['VmHWM'] < 100 * 1024 else 'OVER'}")
    return 0 if final["VmHWM"] < 100 * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())

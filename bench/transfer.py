"""Upload and download throughput of the real server against ceilings
measured in the same run. Run by hand (it writes a few GiB):

    .venv/bin/python bench/transfer.py [--size-mib 1024] [--dir /path/on/the/disk]

1. The disk ceiling: ``dd if=/dev/zero bs=8M count=N conv=fsync``.
2. Upload: ``python app.py`` on 127.0.0.1, one connection, 8 MiB chunks,
   then complete (hash, fsync, rename).
3. A bare waitress app: the same chunk requests with their bodies read and
   dropped (the HTTP receive ceiling), and the file sent through
   ``wsgi.file_wrapper`` (the download ceiling); then the server's ``GET /download``.
4. 1 MiB ``Range`` reads at random offsets over one connection, for a few seconds.
5. The server's peak resident memory (``VmHWM`` of /proc/<pid>/status).

Targets: upload >= 0.6x dd, download >= 0.8x bare waitress, >= 1000 Range
reads/s, peak RSS < 100 MiB. Everything it wrote is deleted at the end.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MIB = 1024 * 1024
CHUNK = 8 * MIB
SECRET = "bench-transfer-secret-bench-transfer"

# Starts app.py's main() with one extra waitress adjustment, to show what it
# would change without editing the server.
TUNED_SERVER = r'''
import functools, sys, waitress
waitress.create_server = functools.partial(waitress.create_server, recv_bytes=int(sys.argv[1]))
from sync.cli import main
sys.exit(main([]))
'''

BARE_APP = r'''
import os, sys, waitress
path = sys.argv[1]
def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "PUT":  # read the body and drop it
        body, left = environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0)
        while left > 0:
            block = body.read(min(left, 1024 * 1024))
            if not block:
                break
            left -= len(block)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]
    size = os.path.getsize(path)
    if environ.get("HTTP_RANGE"):  # "bytes=a-b": the slice through file_wrapper
        first, last = map(int, environ["HTTP_RANGE"][6:].split("-"))
        f = open(path, "rb", buffering=0)
        f.seek(first)
        start_response("206 Partial Content", [("Content-Length", str(last - first + 1))])
        return environ["wsgi.file_wrapper"](f, 1024 * 1024)
    start_response("200 OK", [("Content-Length", str(size)),
                              ("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](open(path, "rb", buffering=0), 1024 * 1024)
server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4,
                                max_request_body_size=1 << 30, **eval(sys.argv[2]))
print("listening on http://127.0.0.1:%s" % server.effective_port, flush=True)
server.run()
'''


def start(argv, env=None):
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while True:
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("a server did not start")
        line = proc.stdout.readline()
        if "listening on" in line:
            port = int(line.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])
            return proc, port


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"{method} {path}: {resp.status} {data[:300]!r}")
    return resp, data


def range_reads(port, path, headers, size, seconds):
    """1 MiB Range reads per second at random offsets over one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = random.Random(1)
    reads = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and reads < 100000:
        first = rng.randrange(0, size - MIB)
        resp, data = request(conn, "GET", path, None,
                             dict(headers, Range=f"bytes={first}-{first + MIB - 1}"))
        assert resp.status == 206 and len(data) == MIB
        reads += 1
    rate = reads / (time.perf_counter() - started)
    conn.close()
    return rate


def download(port, path, headers, size):
    """Seconds to GET ``path`` whole, reading in 1 MiB blocks."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    got = 0
    while True:
        block = resp.read(MIB)
        if not block:
            break
        got += len(block)
    elapsed = time.perf_counter() - started
    conn.close()
    if resp.status != 200 or got != size:
        raise SystemExit(f"download of {path}: {resp.status}, {got} of {size} bytes")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    parser.add_argument("--range-seconds", type=float, default=3.0)
    parser.add_argument("--recv-bytes", type=int, default=None,
                        help="run the server with this waitress recv_bytes "
                             "(default: as app.py has it)")
    args = parser.parse_args()
    size = args.size_mib * MIB
    scratch = tempfile.mkdtemp(prefix="sync-bench-", dir=args.dir)
    procs = []
    try:
        run(args, size, scratch, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop(proc)
        shutil.rmtree(scratch, ignore_errors=True)


def run(args, size, scratch, procs):
    from sync import auth
    from sync.config import Config
    from sync.runtime import Runtime

    count = size // CHUNK
    source = os.path.join(scratch, "source.bin")
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    with open(source, "wb") as f:
        for i in range(count):
            piece = block[:-8] + i.to_bytes(8, "big")
            f.write(piece)
            digest.update(piece)
    sha256 = digest.hexdigest()

    # 1. the disk ceiling
    target = os.path.join(scratch, "dd.bin")
    started = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", f"bs={CHUNK}", f"count={count}",
                    "conv=fsync"], check=True, capture_output=True)
    dd_s = time.perf_counter() - started
    os.unlink(target)

    # 2. upload through the server
    data_dir = os.path.join(scratch, "data")
    env = dict(os.environ, SYNC_JWT_SECRET=SECRET, SYNC_ACCESS_LOG="false",
               SYNC_DATA_DIR=data_dir, SYNC_HOST="127.0.0.1", SYNC_PORT="0")
    argv = [sys.executable, "app.py"]
    if args.recv_bytes:
        argv = [sys.executable, "-c", TUNED_SERVER, str(args.recv_bytes)]
    server, port = start(argv, env)
    procs.append(server)
    rt = Runtime(config=Config.build(data_dir=data_dir, jwt_secret=SECRET),
                 secret=SECRET.encode(), db_id="")
    headers = {"Authorization": "Bearer " + auth.issue_user_token(rt, "bench")}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    _, body = request(conn, "POST", "/api/v1/sync/devices", json.dumps({"name": "bench"}),
                      dict(headers, **{"Content-Type": "application/json"}))
    headers = {"Authorization": "Bearer " + json.loads(body)["token"]}
    _, body = request(conn, "POST", "/api/v1/sync/upload",
                      json.dumps({"path": "big.bin", "size": size, "sha256": sha256,
                                  "base_rev": None, "chunk_size": CHUNK}),
                      dict(headers, **{"Content-Type": "application/json"}))
    upload_id = json.loads(body)["id"]
    started = time.perf_counter()
    with open(source, "rb") as f:
        for index in range(count):
            request(conn, "PUT", f"/api/v1/sync/upload/{upload_id}/chunks/{index}",
                    f.read(CHUNK), dict(headers, **{"Content-Type": "application/octet-stream"}))
    chunks_s = time.perf_counter() - started
    _, body = request(conn, "POST", f"/api/v1/sync/upload/{upload_id}/complete", b"", headers)
    upload_s = time.perf_counter() - started
    assert json.loads(body)["status"] == "applied", body
    conn.close()

    # 3. bare waitress: the HTTP ceiling of the upload (the same requests,
    # bodies read and dropped), then of the download
    blob = os.path.join(data_dir, "blobs", sha256[:2], sha256)
    adjust = repr({"recv_bytes": args.recv_bytes} if args.recv_bytes else {})
    bare, bare_port = start([sys.executable, "-c", BARE_APP, blob, adjust])
    procs.append(bare)
    conn = http.client.HTTPConnection("127.0.0.1", bare_port, timeout=120)
    started = time.perf_counter()
    with open(source, "rb") as f:
        for index in range(count):
            request(conn, "PUT", "/", f.read(CHUNK))
    bare_up_s = time.perf_counter() - started
    conn.close()
    download(bare_port, "/", {}, size)  # warm the page cache for both
    bare_s = min(download(bare_port, "/", {}, size) for _ in range(2))
    bare_range_rate = range_reads(bare_port, "/", {}, size, args.range_seconds)
    stop(bare)
    server_s = min(download(port, "/api/v1/sync/download/big.bin", headers, size)
                   for _ in range(2))

    # 4. 1 MiB Range reads
    range_rate = range_reads(port, "/api/v1/sync/download/big.bin", headers, size,
                             args.range_seconds)

    rss = peak_rss_mib(server.pid)
    stop(server)

    mb = size / 1e6
    dd_rate, up_rate = mb / dd_s, mb / upload_s
    bare_rate, down_rate = mb / bare_s, mb / server_s
    print(f"file: {args.size_mib} MiB, chunks of {CHUNK // MIB} MiB, one connection, 127.0.0.1"
          + (f", waitress recv_bytes={args.recv_bytes}" if args.recv_bytes else ""))
    print(f"disk   dd conv=fsync        {dd_rate:8.1f} MB/s")
    print(f"upload server               {up_rate:8.1f} MB/s  ({up_rate / dd_rate:.2f}x dd; "
          f"chunks {mb / chunks_s:.1f} MB/s, complete {upload_s - chunks_s:.2f} s)  "
          f"target >= 0.6x")
    print(f"upload bare waitress        {mb / bare_up_s:8.1f} MB/s  (HTTP receive only, "
          f"bodies dropped; the server is {up_rate * bare_up_s / mb:.2f}x this)")
    print(f"download bare waitress      {bare_rate:8.1f} MB/s")
    print(f"download server             {down_rate:8.1f} MB/s  ({down_rate / bare_rate:.2f}x bare)"
          f"  target >= 0.8x")
    print(f"1 MiB Range reads, bare     {bare_range_rate:8.0f} /s  (a seek and wsgi.file_wrapper)")
    print(f"1 MiB Range reads, server   {range_rate:8.0f} /s  "
          f"({range_rate / bare_range_rate:.2f}x bare)"
          f"  target >= 1000")
    print(f"server peak RSS (VmHWM)     {rss:8.1f} MiB  target < 100")


if __name__ == "__main__":
    main()

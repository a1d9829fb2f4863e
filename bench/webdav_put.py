"""Where the time of a WebDAV PUT goes, in the server and in the WsgiDAV
filesystem peer, measured in the same run. Run by hand:

    .venv/bin/python bench/webdav_put.py [--size-mib 256] [--puts 8] [--fresh]

Both servers run under timers put into waitress and into ``sync.blobs``
(in the benchmark's own launcher; nothing of it is in the server), and get
the same PUTs of one file in turn (which goes first alternates: the later
of two large writes in a row can be slower), each after an ``os.sync()``
(outside the time). The phases, medians over the PUTs:

- ``receive``: from the end of the request's headers to the app being
  called: waitress reads the socket and writes the body into a temporary
  file in TMPDIR (``temp file writes`` of it); for the server's PUT, whose
  body goes straight into its spool file (``blobs.SpoolWriter``), this
  includes writing and hashing it, and there is no temporary file;
- ``app``: the app, from its call to its return; for the server also
  ``temp file reads`` (reading the body back from waitress's file),
  ``copy + hash`` (``write_at`` without the fsync), ``fdatasync``, and
  ``store + commit`` (the rename into the blob store and the transaction);
- ``temp file dropped``: waitress closing (freeing) its temporary file;
- ``os.sync() after it``: what the PUT left for the disk to write (the
  peer does not fsync: its whole file, written back after its answer).

Without ``--fresh`` every PUT carries the content of the first one, as
bench/webdav.py's PUT does (the server then drops its spool file instead
of storing a second copy); with it each PUT has new content.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import MIB, ROOT, Client, Server, user_token, write_random  # noqa: E402
from webdav import start_peer, stop_all  # noqa: E402

WAITRESS_TIMERS = r'''
import os, sys, threading, time
import waitress.buffers, waitress.parser, waitress.task

_log = open(os.environ["PHASE_LOG"], "a", buffering=1)
LARGE = 1 << 20


def stamp(name, seconds):
    _log.write(f"{name}\t{seconds:.6f}\n")


_parse_header = waitress.parser.HTTPRequestParser.parse_header
def parse_header(self, header_plus):
    self._headers_done = time.perf_counter()
    return _parse_header(self, header_plus)
waitress.parser.HTTPRequestParser.parse_header = parse_header

_execute = waitress.task.WSGITask.execute
def execute(self):
    large = self.request.content_length > LARGE
    if large:
        stamp("receive", time.perf_counter() - self.request._headers_done)
    start = time.perf_counter()
    try:
        return _execute(self)
    finally:
        if large:
            stamp("app", time.perf_counter() - start)
waitress.task.WSGITask.execute = execute

_request_close = waitress.parser.HTTPRequestParser.close
def request_close(self):
    start = time.perf_counter()
    _request_close(self)
    if self.content_length > LARGE:
        stamp("temp file dropped", time.perf_counter() - start)
waitress.parser.HTTPRequestParser.close = request_close

_append = waitress.buffers.FileBasedBuffer.append
def append(self, data):
    start = time.perf_counter()
    _append(self, data)
    self._appending = getattr(self, "_appending", 0.0) + time.perf_counter() - start
waitress.buffers.FileBasedBuffer.append = append

_buffer_close = waitress.buffers.FileBasedBuffer.close
def buffer_close(self):
    if isinstance(self, waitress.buffers.TempfileBasedBuffer):
        stamp("temp file writes", getattr(self, "_appending", 0.0))
    return _buffer_close(self)
waitress.buffers.FileBasedBuffer.close = buffer_close
'''

SERVER_TIMERS = r'''
from sync import blobs, tree

_write_at = blobs.write_at
def write_at(config, upload_id, offset, read, length, digest=None):
    reading = [0.0]
    def timed_read(n):
        start = time.perf_counter()
        try:
            return read(n)
        finally:
            reading[0] += time.perf_counter() - start
    start = time.perf_counter()
    try:
        return _write_at(config, upload_id, offset, timed_read, length, digest)
    finally:
        stamp("temp file reads", reading[0])
        stamp("write_at", time.perf_counter() - start)
blobs.write_at = write_at

_sync_data = blobs._sync_data
def sync_data(fd):
    start = time.perf_counter()
    try:
        return _sync_data(fd)
    finally:
        stamp("fdatasync", time.perf_counter() - start)
blobs._sync_data = sync_data

_put_file = tree.put_file
def put_file(*args, **kwargs):
    start = time.perf_counter()
    try:
        return _put_file(*args, **kwargs)
    finally:
        stamp("store + commit", time.perf_counter() - start)
tree.put_file = put_file

from sync.cli import main
sys.exit(main())
'''

ROWS = ["receive", "temp file writes", "app", "temp file reads", "copy + hash", "fdatasync",
        "store + commit", "temp file dropped"]


def phases(path):
    found = defaultdict(list)
    with open(path) as f:
        for line in f:
            name, value = line.rstrip("\n").split("\t")
            found[name].append(float(value))
    if "write_at" in found:
        found["copy + hash"] = [w - s for w, s in zip(found.pop("write_at"), found["fdatasync"])]
    return {name: statistics.median(values) for name, values in found.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--puts", type=int, default=8)
    parser.add_argument("--fresh", action="store_true", help="new content for every PUT")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-webdav-put-", dir=args.dir)
    size = args.size_mib * MIB
    server = peer = None
    try:
        data_path = os.path.join(work, "data.bin")
        write_random(data_path, args.size_mib)
        logs = {"server": os.path.join(work, "server.phases"),
                "peer": os.path.join(work, "peer.phases")}
        launcher = os.path.join(work, "server_timed.py")
        with open(launcher, "w") as f:
            f.write(f"import sys; sys.path.insert(0, {ROOT!r})\n" + WAITRESS_TIMERS
                    + SERVER_TIMERS)
        server = Server(os.path.join(work, "server"), os.path.join(work, "server.log"),
                        env={"SYNC_ACCESS_LOG": "false", "PHASE_LOG": logs["server"]},
                        script=launcher).start()
        api = Client(server.url, user_token("alice"))
        device = api.register("Bench")
        password = api.call("POST", f"/devices/{device['id']}/app-password").json()[
            "app_password"]
        dav = requests.Session()
        dav.auth = ("alice", password)

        share = os.path.join(work, "peer")
        os.makedirs(share)
        peer, peer_url = start_peer(share, WAITRESS_TIMERS,
                                    dict(os.environ, PHASE_LOG=logs["peer"]))
        targets = {"server": (dav, server.url + "/dav/files/alice/"),
                   "peer": (requests.Session(), peer_url)}
        totals, written_back = defaultdict(list), defaultdict(list)
        for i in range(args.puts):
            if args.fresh:
                with open(data_path, "r+b") as f:
                    f.write(os.urandom(32))
            order = list(targets.items())
            for name, (session, url) in order if i % 2 == 0 else order[::-1]:
                os.sync()
                with open(data_path, "rb") as f:
                    start = time.perf_counter()
                    resp = session.put(f"{url}put-{i}.bin", data=f, timeout=600,
                                       headers={"Content-Length": str(size)})
                    totals[name].append(time.perf_counter() - start)
                resp.raise_for_status()
                start = time.perf_counter()
                os.sync()  # what the PUT left to write back (all of the peer's file)
                written_back[name].append(time.perf_counter() - start)

        found = {name: phases(path) for name, path in logs.items()}
        mib = args.size_mib
        print(f"PUT of {mib} MiB, median of {args.puts} "
              f"({'new content each time' if args.fresh else 'the same content'})")
        print(f"{'':<22} {'server':>9} {'peer':>9}")
        for name in ["PUT, at the client"] + ROWS + ["os.sync() after it"]:
            cells = []
            for who in ("server", "peer"):
                value = (statistics.median(totals[who]) if name == "PUT, at the client"
                         else statistics.median(written_back[who])
                         if name == "os.sync() after it" else found[who].get(name))
                cells.append(f"{value:8.3f}s" if value is not None else f"{'':>9}")
            print(f"{name:<22} {cells[0]:>9} {cells[1]:>9}")
        for who in ("server", "peer"):
            print(f"  {who:<6} each PUT: " + " ".join(f"{x:.3f}" for x in totals[who]))
        s = found["server"]
        saved = sum(s.get(name) or 0 for name in ("temp file writes", "temp file reads",
                                                  "temp file dropped"))
        if s.get("temp file writes"):
            print(f"waitress's temporary file costs the server {saved:.3f} s of the "
                  f"{statistics.median(totals['server']):.3f} s (its writes, its reads, "
                  f"dropping it)")
        else:
            print("the server's PUT body went straight into its spool file "
                  "(no waitress temporary file)")
    finally:
        stop_all(peer, server, work)


if __name__ == "__main__":
    main()

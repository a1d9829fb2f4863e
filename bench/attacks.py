"""The attacks of SPEC §6 (v2) against the real server, with figures:

- keep_both: a conflict on kb/x.txt whose conflict names are taken for
  n = 1 ... N; the resolve's time, and the time another user's device
  registration takes meanwhile (it needs the write lock);
- stalled readers: 8 sockets ask for GET /conflicts (25,000 conflicts) and
  never read; the time a normal request takes meanwhile, and whether SQLite
  can checkpoint its WAL;
- slow connections: 200 sockets send their headers a byte at a time; the
  time a normal request takes meanwhile;
- parked bodies: 10 connections without credentials each send 64 MiB of a
  chunk upload, and 10 more 64 MiB of a 1 GiB WebDAV PUT, and stop; the
  bytes the server then holds in ``TMPDIR`` (waitress's body files).

``--baseline DIR`` runs the same against the server in DIR (an older
checkout) first, in the same run, and prints both with their ratio.

    python bench/attacks.py --baseline /path/to/older/checkout
"""

import argparse
import hashlib
import os
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Client, Server, user_token  # noqa: E402

LONG = "A rather long book title, as some have, with a subtitle and an author " * 3
TIMEOUT = 20  # seconds a normal request may take before it counts as "not answered"


class SourceServer(Server):
    """``python app.py`` of another checkout."""

    def __init__(self, source, data_dir, log_path):
        super().__init__(data_dir, log_path,
                         env={"SYNC_ACCESS_LOG": "false", "PYTHONPATH": source},
                         script=os.path.join(source, "app.py"), cwd=source)


def timed(call):
    started = time.perf_counter()
    try:
        resp = call()
        return time.perf_counter() - started, resp.status_code
    except requests.RequestException as exc:
        return time.perf_counter() - started, type(exc).__name__


def keep_both(server, taken):
    api = Client(server.url, user_token("alice"), timeout=600)
    kb = api.as_device(api.register("kb")["token"])
    data = b"held content"
    kb.upload("held.txt", data, None)
    sha = hashlib.sha256(data).hexdigest()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    names = [f"kb/x (conflict kb {date}).txt"] + [
        f"kb/x (conflict kb {date} {n}).txt" for n in range(2, taken + 1)]
    for i in range(0, len(names), 1000):
        kb.report([{"op": "put", "path": p, "sha256": sha, "size": len(data), "mtime": 0,
                    "base_rev": None} for p in names[i:i + 1000]])
    one = kb.upload("kb/x.txt", b"one", None).json()
    kb.upload("kb/x.txt", b"two", one["rev"])
    cid = kb.upload("kb/x.txt", b"three", one["rev"]).json()["conflict_id"]
    bob = Client(server.url, user_token("bob"), timeout=600)
    bob.register("warm-up")
    result = {}

    def other():
        time.sleep(0.2)
        result["other"] = timed(lambda: bob.call("POST", "/devices", json={"name": "Phone"}))

    thread = threading.Thread(target=other)
    thread.start()
    resolve = timed(lambda: api.call("POST", f"/conflicts/{cid}/resolve",
                                     json={"resolution": "keep_both"}))
    thread.join()
    return {"resolve_s": resolve[0], "resolve_status": resolve[1],
            "other_s": result["other"][0], "other_status": result["other"][1]}


def stalled_readers(server, conflicts, readers=8):
    api = Client(server.url, user_token("carol"), timeout=600)
    dev = api.as_device(api.register("Laptop")["token"])
    for first in range(0, conflicts, 1000):
        # Long names, as a library of real books has: the listing is then
        # larger than waitress's 16 MiB output buffer.
        dev.report([{"op": "move", "path": f"gone/{LONG}{i}", "to": f"there/{LONG}{i}",
                     "base_rev": None} for i in range(first, min(first + 1000, conflicts))])
    host, port = server.url.split("//")[1].split(":")
    token = user_token("carol")
    socks = []
    for _ in range(readers):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(f"GET /api/v1/sync/conflicts HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        socks.append(sock)
    time.sleep(1)
    try:
        other = Client(server.url, user_token("dave"), timeout=TIMEOUT)
        answer = timed(lambda: other.call("GET", "/devices"))
        dev.report([{"op": "delete", "path": "x", "base_rev": None}])
        con = sqlite3.connect(os.path.join(server.data_dir, "sync.sqlite3"), timeout=TIMEOUT)
        busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        con.close()
    finally:
        for sock in socks:
            sock.close()
    return {"other_s": answer[0], "other_status": answer[1], "checkpoint_busy": busy}


def slow_connections(server, count=200):
    host, port = server.url.split("//")[1].split(":")
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(sock)
        for sock in socks:
            sock.sendall(b"a")
        answer = timed(lambda: requests.get(server.url + "/healthz", timeout=TIMEOUT))
    finally:
        for sock in socks:
            sock.close()
    return {"other_s": answer[0], "other_status": answer[1]}


def held_in(pid, folder):
    """Bytes in the files under ``folder`` that process ``pid`` holds open."""
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder):
                held += os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            pass
    return held


def parked_bodies(server, count=10, sent=64 * 1024 * 1024):
    host, port = server.url.split("//")[1].split(":")
    piece = b"x" * (1024 * 1024)
    socks = []
    try:
        for i in range(2 * count):
            sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
            if i < count:  # a chunk upload: the largest body the API takes
                head = f"PUT /api/v1/sync/upload/x/chunks/0 HTTP/1.1\r\nContent-Length: {sent + 1}"
            else:  # a WebDAV PUT of a whole file
                head = f"PUT /dav/files/alice/f{i}.bin HTTP/1.1\r\nContent-Length: {1 << 30}"
            sock.sendall(f"{head}\r\nHost: x\r\n\r\n".encode())
            try:
                for _ in range(sent // len(piece)):
                    sock.sendall(piece)
            except OSError:
                pass  # refused at once (413) and closed
            socks.append(sock)
        time.sleep(1)
        held = held_in(server.pid, server.env["TMPDIR"])
    finally:
        for sock in socks:
            sock.close()
    return {"held_mib": held / (1024 * 1024)}


def run(source, args):
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, scenario in (("keep_both", lambda s: keep_both(s, args.taken)),
                               ("stalled", lambda s: stalled_readers(s, args.conflicts)),
                               ("slow", slow_connections),
                               ("parked", parked_bodies)):
            if args.only and name not in args.only:
                continue
            data_dir = os.path.join(tmp, name)
            server = SourceServer(source, data_dir, os.path.join(tmp, name + ".log"))
            server.env["TMPDIR"] = os.path.join(tmp, name + "-tmp")
            os.mkdir(server.env["TMPDIR"])
            server.start()
            try:
                figures[name] = scenario(server)
            finally:
                server.kill()
    return figures


def show(label, figures):
    print(f"{label}:")
    if "keep_both" in figures:
        k = figures["keep_both"]
        print(f"  keep_both among taken names: resolve {k['resolve_s']:.2f} s "
              f"({k['resolve_status']}), another user's registration meanwhile "
              f"{k['other_s']:.2f} s ({k['other_status']})")
    if "stalled" in figures:
        s = figures["stalled"]
        print(f"  8 stalled readers: another request {s['other_s']:.2f} s ({s['other_status']}), "
              f"WAL checkpoint {'blocked' if s['checkpoint_busy'] else 'complete'}")
    if "slow" in figures:
        w = figures["slow"]
        print(f"  200 slow connections: a normal request {w['other_s']:.2f} s "
              f"({w['other_status']})")
    if "parked" in figures:
        print(f"  20 bodies without credentials: {figures['parked']['held_mib']:.0f} MiB "
              f"held in TMPDIR")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="DIR",
                        help="an older checkout to measure first, in the same run")
    parser.add_argument("--taken", type=int, default=9999,
                        help="conflict names already taken (default 9999: the last of the "
                             "10,000 a resolution tries is free)")
    parser.add_argument("--conflicts", type=int, default=25000,
                        help="conflicts the stalled readers ask for (default 25000)")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO",
                        choices=("keep_both", "stalled", "slow", "parked"),
                        help="run only these scenarios")
    args = parser.parse_args(argv)
    results = {}
    if args.baseline:
        results["baseline"] = run(os.path.abspath(args.baseline), args)
        show(f"baseline ({args.baseline})", results["baseline"])
    results["this"] = run(ROOT, args)
    show("this checkout", results["this"])
    if args.baseline:
        b, t = results["baseline"], results["this"]

        def ratio(scenario, key):
            return f"x{b[scenario][key] / max(t[scenario][key], 1e-6):.0f}"
        shown = []
        if "keep_both" in t:
            shown += [f"keep_both resolve {ratio('keep_both', 'resolve_s')}",
                      f"registration meanwhile {ratio('keep_both', 'other_s')}"]
        if "stalled" in t:
            shown.append(f"stalled readers {ratio('stalled', 'other_s')}")
        if "slow" in t:
            shown.append(f"slow connections {ratio('slow', 'other_s')}")
        if "parked" in t:
            shown.append(f"parked bodies {b['parked']['held_mib']:.0f} MiB -> "
                         f"{t['parked']['held_mib']:.0f} MiB")
        print("ratios (baseline / this): " + ", ".join(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

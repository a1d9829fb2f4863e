"""Other clients beside a large WebDAV PUT: the time of the PUT, and the
latency of ``GET /healthz`` asked every 10 ms by another client while it
runs (the PUT's body is received on the server's network thread, which
serves every connection). Run by hand:

    .venv/bin/python bench/dav_beside.py [--size-mib 1024] [--baseline DIR] [--rounds 2]

``--baseline DIR`` measures an older checkout too, alternating with this
one, each on a fresh data directory under ``--dir`` (default: this checkout).
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MIB, ROOT, Server, user_token, write_random  # noqa: E402


def measure(source, size, where):
    work = tempfile.mkdtemp(dir=where)
    server = Server(os.path.join(work, "data"), os.path.join(work, "server.log"),
                    env={"SYNC_ACCESS_LOG": "false", "PYTHONPATH": source},
                    script=os.path.join(source, "app.py"), cwd=source).start()
    try:
        headers = {"Authorization": "Bearer " + user_token("alice")}
        device = requests.post(server.url + "/api/v1/sync/devices", headers=headers,
                               json={"name": "Kobo", "platform": "kobo"}).json()
        password = requests.post(f"{server.url}/api/v1/sync/devices/{device['id']}/app-password",
                                 headers=headers).json()["app_password"]
        path = os.path.join(work, "body")
        write_random(path, size // MIB)
        latencies, done = [], threading.Event()

        def poll():
            session = requests.Session()
            while not done.is_set():
                start = time.perf_counter()
                session.get(server.url + "/healthz", timeout=30)
                latencies.append(time.perf_counter() - start)
                time.sleep(0.01)

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.5)
        start = time.perf_counter()
        with open(path, "rb") as f:
            resp = requests.put(server.url + "/dav/files/alice/big.bin", data=f,
                                auth=("alice", password), headers={"Content-Length": str(size)},
                                timeout=600)
        put_s = time.perf_counter() - start
        resp.raise_for_status()
        time.sleep(0.3)
        done.set()
        poller.join()
        latencies.sort()
        return {"put_s": put_s, "median_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                "max_ms": latencies[-1] * 1000, "count": len(latencies)}
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--baseline", metavar="DIR", help="an older checkout, in the same run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", default=ROOT, help="where the data directories go")
    args = parser.parse_args(argv)
    sources = [("this", ROOT)] + ([("baseline", os.path.abspath(args.baseline))]
                                  if args.baseline else [])
    for round_ in range(args.rounds):
        for label, source in sources if round_ % 2 == 0 else sources[::-1]:
            r = measure(source, args.size_mib * MIB, args.dir)
            print(f"{label:<9} PUT {args.size_mib} MiB {r['put_s']:6.2f} s; /healthz beside it "
                  f"(n={r['count']}): median {r['median_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"max {r['max_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

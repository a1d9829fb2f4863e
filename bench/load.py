"""Load: many concurrent clients against one ``python app.py`` (default
threads) on loopback, mixing report, changes, ack, upload and download.

Each client is a device of one of a few users; it writes mostly its own
paths and sometimes a path shared by its user's devices (so concurrent
writes meet). Prints requests/s, p50/p99 latency per endpoint and errors
by status; scans the server log for tracebacks and "database is locked";
then checks that the library equals what the 2xx answers promised: for
every path, the head is the applied change with the highest rev, and every
reported conflict is listed.

    python bench/load.py --clients 50 --seconds 60
"""

import argparse
import collections
import os
import random
import shutil
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Client, Server, percentile, sha256, user_token  # noqa: E402


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = collections.defaultdict(list)
        self.status = collections.Counter()
        self.applied = {}  # (user, path) -> (rev, sha or None)
        self.conflicts = set()  # (user, conflict id)
        self.chain = collections.defaultdict(list)  # (user, path) -> [(rev, base_rev, op)]

    def timed(self, endpoint, call):
        t0 = time.perf_counter()
        try:
            resp = call()
        except requests.RequestException as exc:
            with self.lock:
                self.status[(endpoint, type(exc).__name__)] += 1
            return None
        with self.lock:
            self.latency[endpoint].append(time.perf_counter() - t0)
            self.status[(endpoint, resp.status_code)] += 1
        return resp

    def promise(self, user, path, rev, sha, base_rev):
        with self.lock:
            self.chain[(user, path)].append((rev, base_rev, "put" if sha else "delete"))
            known = self.applied.get((user, path))
            if known is None or rev > known[0]:
                self.applied[(user, path)] = (rev, sha)


def client_loop(cid, user, client, pool, rec, deadline, rng):
    own = [f"c{cid}/f{j}.bin" for j in range(6)]
    shared = [f"shared/s{j}.bin" for j in range(3)]
    revs, cursor = {}, None
    while time.monotonic() < deadline:
        op = rng.random()
        path = rng.choice(shared if rng.random() < 0.15 else own)
        if op < 0.25:
            sha = rng.choice(list(pool))
            item = {"op": "put", "path": path, "sha256": sha, "size": len(pool[sha]),
                    "mtime": 1700000000 + cid, "base_rev": revs.get(path)}
            if rng.random() < 0.2 and path in revs:
                item = {"op": "delete", "path": path, "base_rev": revs.get(path)}
            resp = rec.timed("report", lambda: client.report([item]))
            if resp is not None and resp.status_code == 200:
                result = resp.json()["results"][0]
                if result["status"] == "applied":
                    revs[path] = result["rev"]
                    rec.promise(user, path, result["rev"],
                                item.get("sha256") if item["op"] == "put" else None,
                                item["base_rev"])
                elif result["status"] == "conflict":
                    rec.conflicts.add((user, result["conflict_id"]))
        elif op < 0.45:
            resp = rec.timed("changes", lambda: client.changes(cursor, limit=200))
            if resp is not None and resp.status_code == 200:
                body = resp.json()
                for change in body["changes"]:
                    revs[change["path"]] = change["rev"]
                cursor = body["cursor"]
        elif op < 0.55:
            if cursor:
                rec.timed("ack", lambda: client.ack(cursor))
        elif op < 0.8:
            if rng.random() < 0.5:
                data = rng.randbytes(rng.choice([1000, 100 * 1024, 400 * 1024]))
                sha = sha256(data)
            else:
                sha = rng.choice(list(pool))
                data = pool[sha]

            def upload():
                resp = rec.timed("upload create", lambda: client.create_upload(
                    path, len(data), sha, base_rev, 256 * 1024))
                if resp is None or resp.status_code != 200:
                    return
                session = resp.json()
                size = session["chunk_size"]
                for index in range(session["chunk_count"]):
                    if index in session["received"]:
                        continue
                    chunk = data[index * size:(index + 1) * size]
                    resp = rec.timed("upload chunk", lambda: client.put_chunk(
                        session["id"], index, chunk, digest=rng.random() < 0.5))
                    if resp is None or resp.status_code != 200:
                        return
                resp = rec.timed("upload complete", lambda: client.complete(session["id"]))
                if resp is not None and resp.status_code == 200:
                    body = resp.json()
                    if body["status"] == "applied":
                        revs[path] = body["rev"]
                        rec.promise(user, path, body["rev"], sha, base_rev)
                    elif body["status"] == "conflict":
                        rec.conflicts.add((user, body["conflict_id"]))
            base_rev = revs.get(path)
            upload()
        else:
            resp = rec.timed("download", lambda: client.download(path))
            if resp is not None and resp.status_code == 200:
                if sha256(resp.content) != resp.headers.get("ETag", "").strip('"'):
                    with rec.lock:
                        rec.status[("download", "bytes differ from ETag")] += 1


def verify(url, users, tokens, rec):
    """The final library against the promises; returns a list of problems.
    ``tokens``: a device token of each user (the feed is read as a device)."""
    problems = []
    for user in users:
        client = Client(url, tokens[user])
        feed, _ = client.feed()
        for (owner, path), (rev, sha) in rec.applied.items():
            if owner != user:
                continue
            change = feed.get(path)
            if change is None or change["rev"] < rev:
                problems.append(f"{user}:{path} promised rev {rev}, feed has {change}")
            elif change["rev"] == rev:
                actual = change["sha256"] if change["op"] == "put" else None
                if actual != sha:
                    problems.append(f"{user}:{path} rev {rev} promised {sha}, feed has {actual}")
        for (owner, path), chain in rec.chain.items():
            if owner != user:
                continue
            # No lost update: every applied change was made on top of the
            # one before it (its base_rev is the previous head's rev), except
            # a put over a deletion, which is applied whatever its base_rev.
            chain.sort()
            for (prev_rev, _, prev_op), (rev, base_rev, op) in zip(chain, chain[1:]):
                if base_rev != prev_rev and not (op == "put" and prev_op == "delete"):
                    problems.append(f"{user}:{path} rev {rev} applied on base_rev {base_rev}, "
                                    f"but the head was rev {prev_rev}: lost update")
        listed = {c["id"] for c in client.conflicts().json()["conflicts"]}
        for owner, conflict_id in rec.conflicts:
            if owner == user and conflict_id not in listed:
                problems.append(f"{user}: conflict {conflict_id} was reported but is not listed")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    pool = {}
    for size in (0, 10, 3000, 64 * 1024, 300 * 1024, 600 * 1024):
        data = rng.randbytes(size)
        pool[sha256(data)] = data
    workdir = tempfile.mkdtemp(prefix="load-")
    log_path = os.path.join(workdir, "server.log")
    server = Server(os.path.join(workdir, "data"), log_path).start()
    users = [f"user{u}" for u in range(args.users)]
    rec = Recorder()
    try:
        clients = []
        for cid in range(args.clients):
            user = users[cid % len(users)]
            token = Client(server.url, user_token(user)).register(f"dev{cid}")["token"]
            clients.append((cid, user, Client(server.url, token)))
        deadline = time.monotonic() + args.seconds
        started = time.monotonic()
        threads = [threading.Thread(target=client_loop, args=(
            cid, user, client, pool, rec, deadline, random.Random(rng.random())))
            for cid, user, client in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        peak = server.memory()
        tokens = {user: client.session.headers["Authorization"].split()[1]
                  for _, user, client in clients}
        problems = verify(server.url, users, tokens, rec)
    except BaseException:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    server.stop()
    with open(log_path, errors="replace") as f:
        log = f.read()
    total = sum(len(v) for v in rec.latency.values())
    print(f"{args.clients} clients, {args.users} users, {elapsed:.1f} s, server threads: default")
    print(f"requests: {total}, {total / elapsed:.0f} requests/s")
    print(f"{'endpoint':18} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for endpoint in sorted(rec.latency):
        values = rec.latency[endpoint]
        print(f"{endpoint:18} {len(values):7d} {percentile(values, 50) * 1000:8.1f} "
              f"{percentile(values, 99) * 1000:8.1f}")
    print("answers by status:")
    for (endpoint, status), count in sorted(rec.status.items(), key=str):
        print(f"  {endpoint:18} {status}: {count}")
    fives = sum(c for (e, s), c in rec.status.items() if isinstance(s, int) and s >= 500)
    print(f"5xx answers: {fives}; client-side errors: "
          f"{sum(c for (e, s), c in rec.status.items() if not isinstance(s, int))}")
    print(f"server log: {log.count('Traceback')} tracebacks, "
          f"{log.count('database is locked')} 'database is locked'")
    print(f"server peak RSS: {peak['VmHWM'] / 1024:.1f} MiB")
    print(f"promises checked: {len(rec.applied)} paths, {len(rec.conflicts)} conflicts; "
          f"problems: {len(problems)}")
    for problem in problems[:20]:
        print("  " + problem)
    if args.keep:
        print(f"data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems or fives else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of live sync (``sync --watch`` and ``POST /changes/wait``), run
by hand:

    .venv/bin/python bench/live.py [--edits 50] [--idle 60] [--max-waiters 64]

Starts the real server (``app.py``, default settings) on loopback over a
temporary data directory and measures, in one run:

- the time from a file saved in folder A to its bytes in folder B, both
  clients in ``--watch`` (subprocesses), over ``--edits`` edits; baseline:
  one ``sync`` pass of A then one of B, back to back in this process (the
  least a change costs to carry without waiting or events);
- what an idle watching client costs: its requests per minute (from the
  server's access log) and its CPU time, over ``--idle`` seconds;
- the server's resident memory and threads, idle and with 16 requests
  waiting, and ``GET /devices`` latency while they wait (baseline: the same
  requests with nobody waiting); the answer past the cap;
- the same with ``--max-waiters`` waiters on a second server started with
  that setting, and the idle memory of a server without waiting threads
  (``--max-waiters 0``, the thread count before waiting existed).

Prints figures and ratios; asserts nothing.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import Client, Server, percentile, user_token  # noqa: E402
from sync.client import cli  # noqa: E402
from sync.client.engine import Engine, Options  # noqa: E402
from sync.client.state import FolderLock  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def watch_client(folder, log):
    return subprocess.Popen([sys.executable, "-m", "sync.client", "sync", folder, "--watch",
                             "--quiet"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def has_cursor(folder):
    import sqlite3
    try:
        with sqlite3.connect(os.path.join(folder, ".sync", "state.sqlite3")) as conn:
            return conn.execute("SELECT 1 FROM meta WHERE key = 'cursor'").fetchone()
    except sqlite3.Error:
        return None


def until(check, limit, step=0.002):
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    return None


def content_is(path, data):
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False


def open_wait(url, token, cursor, timeout=55):
    host, port = url.split("//")[1].split(":")
    body = json.dumps({"cursor": cursor, "timeout": timeout}).encode()
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"POST /api/v1/sync/changes/wait HTTP/1.1\r\nHost: bench\r\n"
                 + f"Authorization: Bearer {token}\r\n".encode()
                 + b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def devices_latency(api, count=50):
    times = []
    for _ in range(count):
        started = time.perf_counter()
        resp = api.call("GET", "/devices")
        resp.raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times), percentile(times, 95)


def waiting_figures(server, waiters, label, devices):
    """RSS, threads and GET /devices latency with ``waiters`` requests
    waiting (of ``devices`` registered ones)."""
    api = Client(server.url, user_token("alice"))
    devices = [api.register(f"waiter {i}") for i in range(max(devices, waiters + 1))]
    cursor = api.as_device(devices[0]["token"]).changes().json()["cursor"]
    idle = proc_status(server.pid)
    base_med, base_p95 = devices_latency(api)
    socks = [open_wait(server.url, d["token"], cursor) for d in devices[:waiters]]
    try:
        time.sleep(1.0)  # every wait reached its condition
        answered = []
        for sock in socks:
            sock.setblocking(False)
            try:
                answered.append(sock.recv(4096))
            except BlockingIOError:
                pass
        if answered:
            print(f"{label}: {len(answered)} waits answered early: {answered[0][:300]!r}")
        busy = proc_status(server.pid)
        med, p95 = devices_latency(api)
        started = time.perf_counter()
        past = api.as_device(devices[waiters]["token"]).call(
            "POST", "/changes/wait", json={"cursor": cursor, "timeout": 30})
        past_s = time.perf_counter() - started
    finally:
        for sock in socks:
            sock.close()
    print(f"{label}: idle RSS {idle['VmRSS'] / 1024:.1f} MiB, {idle['Threads']} threads")
    if not waiters:
        print(f"{label}: a wait: {past.status_code} {past.json()} in {past_s * 1000:.1f} ms")
        return
    print(f"{label}: {waiters} waiting: RSS {busy['VmRSS'] / 1024:.1f} MiB "
          f"(+{(busy['VmRSS'] - idle['VmRSS']) / 1024:.1f}), {busy['Threads']} threads")
    print(f"{label}: GET /devices median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms while "
          f"{waiters} wait; nobody waiting {base_med * 1000:.1f} / {base_p95 * 1000:.1f} ms "
          f"(ratio {med / base_med:.2f} / {p95 / base_p95:.2f}); target p95 < 1000 ms")
    print(f"{label}: wait number {waiters + 1}: {past.status_code} {past.json()} "
          f"in {past_s * 1000:.1f} ms")


def latency_and_idle(server, work, edits, idle_s):
    token = user_token("alice")
    a, b = os.path.join(work, "a"), os.path.join(work, "b")
    for folder, name in ((a, "A"), (b, "B")):
        with open(os.devnull, "w") as quiet:
            sys.stdout, saved = quiet, sys.stdout
            try:
                assert cli.main(["init", folder, "--server", server.url, "--token", token,
                                 "--device-name", name]) == 0
            finally:
                sys.stdout = saved

    # Baseline: one pass of A, then one of B, in this process.
    passes = []
    target = os.path.join(b, "bench.txt")
    for i in range(10):
        data = f"baseline {i} ".encode() * 40
        with open(os.path.join(a, "bench.txt"), "wb") as f:
            f.write(data)
        started = time.perf_counter()
        for folder in (a, b):
            engine = Engine(folder, options=Options(quiet=True))
            try:
                with FolderLock(folder):
                    engine.run()
            finally:
                engine.close()
        assert content_is(target, data)
        passes.append(time.perf_counter() - started)
    base = statistics.median(passes)

    logs = [open(os.path.join(work, f"{n}.log"), "w+") for n in "ab"]
    clients = [watch_client(a, logs[0]), watch_client(b, logs[1])]
    try:
        until(lambda: has_cursor(a) and has_cursor(b), 20)
        time.sleep(1)
        times, missed = [], 0
        for i in range(edits):
            data = f"edit {i} ".encode() * 40
            with open(os.path.join(a, "bench.txt"), "wb") as f:
                f.write(data)
            took = until(lambda: content_is(target, data), 20)
            if took is None:
                missed += 1
            else:
                times.append(took)
            time.sleep(0.5)
        med, p95 = statistics.median(times), percentile(times, 95)
        print(f"A -> B over {len(times)} edits ({missed} missed): median {med * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; targets < 1000 / "
              f"< 3000 ms")
        print(f"baseline: a pass of A then of B, median of 10: {base * 1000:.0f} ms "
              f"(ratio watch/baseline {med / base:.2f})")

        time.sleep(3)  # the passes after the last edit are over
        with open(server.log_path) as f:
            before = sum(1 for _ in f)
        cpu_before = [cpu_seconds(c.pid) for c in clients]
        time.sleep(idle_s)
        cpu_after = [cpu_seconds(c.pid) for c in clients]
        with open(server.log_path) as f:
            lines = [line for line in f][before:]
        requests_seen = [line for line in lines if " /api/" in line]
        waits = [line for line in requests_seen if "/changes/wait" in line]
        per_min = len(requests_seen) / len(clients) / (idle_s / 60)
        cpu = [(after - before) / idle_s * 100 for before, after in zip(cpu_before, cpu_after)]
        print(f"idle client over {idle_s:.0f} s: {per_min:.1f} requests/min each "
              f"({len(waits)} of {len(requests_seen)} were waits); CPU "
              f"{', '.join(f'{c:.2f}%' for c in cpu)} of a core; target at most "
              f"{60 / 30:.0f}/min (one per 30 s wait)")
    finally:
        for c in clients:
            c.terminate()
        for c in clients:
            c.wait(10)
        for log in logs:
            log.close()
        time.sleep(3)  # the server sees the clients' waits go away within a few seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--max-waiters", type=int, default=64)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-live-")
    try:
        server = Server(os.path.join(work, "data"), os.path.join(work, "server.log"))
        server.start()
        try:
            latency_and_idle(server, work, args.edits, args.idle)
        finally:
            server.stop()
        # Memory and threads, each on a fresh server with the same devices.
        runs = [("baseline --max-waiters 0", ["--max-waiters", "0"], 0),
                ("default settings", [], 16),
                (f"--max-waiters {args.max_waiters}", ["--max-waiters", str(args.max_waiters)],
                 args.max_waiters)]
        for n, (label, extra, waiters) in enumerate(runs):
            fresh = Server(os.path.join(work, f"data{n}"), os.path.join(work, f"server{n}.log"),
                           args=extra)
            fresh.start()
            try:
                waiting_figures(fresh, waiters, label, devices=args.max_waiters + 1)
            finally:
                fresh.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""No lost updates under real concurrency: the app on waitress with 8
threads, 8 clients racing puts of different held contents on one path."""

import threading

import pytest
import requests
import waitress

from sync import auth
from sync.wsgi import create_app

from . import seed
from .helpers import sha256

CLIENTS = 8


@pytest.fixture
def server(rt):
    """The real app served by waitress on a free loopback port; its base URL."""
    srv = waitress.create_server(create_app(rt), host="127.0.0.1", port=0, threads=CLIENTS)
    stop = threading.Event()

    def serve():
        # Closing the socket under a running loop makes it fail in select();
        # the loop runs in short rounds and the server closes in its own thread.
        while not stop.is_set():
            srv.asyncore.loop(timeout=0.05, map=srv._map, count=1)
        srv.task_dispatcher.shutdown()
        srv.close()

    thread = threading.Thread(target=serve, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}/api/v1/sync"
    finally:
        stop.set()
        thread.join(timeout=10)


def test_racing_puts_on_one_path_apply_exactly_one(rt, device, server):
    seed.put(rt, device, "a.txt", b"base")
    contents = [f"version {i}".encode() for i in range(CLIENTS)]
    for i, data in enumerate(contents):
        seed.put(rt, device, f"held/{i}", data)
    token = auth.issue_user_token(rt, "alice")
    barrier = threading.Barrier(CLIENTS)
    answers = [None] * CLIENTS

    def client(i):
        item = {"op": "put", "path": "a.txt", "sha256": sha256(contents[i]),
                "size": len(contents[i]), "mtime": 1, "base_rev": 1}
        with requests.Session() as session:
            barrier.wait(timeout=10)
            answers[i] = session.post(
                f"{server}/report", json={"changes": [item]}, timeout=30,
                headers={"Authorization": f"Bearer {token}", "X-Device-Id": device["id"]})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None and r.status_code == 200 for r in answers), \
        [(r.status_code, r.text) if r is not None else None for r in answers]
    statuses = [r.json()["results"][0]["status"] for r in answers]
    assert sorted(statuses) == ["applied"] + ["conflict"] * (CLIENTS - 1)
    winner = statuses.index("applied")
    headers = {"Authorization": f"Bearer {token}", "X-Device-Id": device["id"]}
    changes = requests.get(f"{server}/changes?limit=1000", headers=headers,
                           timeout=10).json()["changes"]
    assert [c["sha256"] for c in changes if c["path"] == "a.txt"] == [sha256(contents[winner])]
    conflicts = requests.get(f"{server}/conflicts", headers=headers, timeout=10).json()
    assert sorted(c["client"]["sha256"] for c in conflicts["conflicts"]) == sorted(
        sha256(data) for i, data in enumerate(contents) if i != winner)

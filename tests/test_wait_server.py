"""``POST /changes/wait`` on the real waitress server with the settings
``app.py`` serves with (``sync.httpserver``): the thread budget (16 waiters and the API still
answers), the cap, and a client that goes away freeing its place."""

import json
import time

import pytest
import requests

from .helpers import Server, send_request, sha256

pytestmark = pytest.mark.slow


class Served(Server):
    """The server with a device of alice registered and the head of its
    feed; waits held open on raw connections."""

    def __init__(self, data_dir, **settings):
        super().__init__(data_dir, **settings)
        self.api = self.url + "/api/v1/sync"
        self.user = {"Authorization": f"Bearer {self.user_token()}"}
        device = requests.post(self.api + "/devices", json={"name": "Laptop"},
                               headers=self.user, timeout=10).json()
        self.device = {"Authorization": f"Bearer {device['token']}"}
        self.cursor = requests.get(self.api + "/changes", headers=self.device,
                                   timeout=10).json()["cursor"]

    def open_wait(self, timeout=55):
        """A raw connection holding a wait; the caller closes it."""
        body = json.dumps({"cursor": self.cursor, "timeout": timeout}).encode()
        sock = self.connect()
        send_request(sock, "POST", "/api/v1/sync/changes/wait",
                     {**self.device, "Content-Type": "application/json"}, body)
        return sock

    def waiters(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.rt.waiters.count != count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path / "data")
    yield served
    served.stop()


def test_sixteen_waiters_leave_the_api_answering(served):
    assert served.config.max_waiters >= 16  # the defaults
    socks = [served.open_wait() for _ in range(16)]
    try:
        assert served.waiters(16)
        for _ in range(3):
            resp = requests.get(served.api + "/devices", headers=served.user, timeout=5)
            assert resp.status_code == 200 and len(resp.json()["devices"]) == 1
        # A change still reaches all of them.
        moved = requests.post(served.api + "/report", headers=served.device, timeout=5, json={
            "changes": [{"op": "delete", "path": "nothing.txt", "base_rev": None}]})
        assert moved.json()["results"][0]["status"] == "unchanged"
        assert served.rt.waiters.count == 16  # nothing changed: nobody woke
    finally:
        for sock in socks:
            sock.close()
    assert served.waiters(0)


def test_past_the_default_cap_the_answer_is_a_backoff(served):
    limit = served.config.max_waiters
    socks = [served.open_wait() for _ in range(limit)]
    try:
        assert served.waiters(limit)
        started = time.monotonic()
        resp = requests.post(served.api + "/changes/wait", headers=served.device, timeout=5,
                             json={"cursor": served.cursor, "timeout": 30})
        assert time.monotonic() - started < 5
        assert resp.status_code == 200
        assert resp.json()["changes"] is False and resp.json()["backoff"] >= 1
    finally:
        for sock in socks:
            sock.close()


def test_a_client_that_goes_away_frees_its_place(served):
    kept = served.open_wait()
    gone = served.open_wait()
    try:
        assert served.waiters(2)
        gone.close()
        started = time.monotonic()
        assert served.waiters(1, timeout=10)
        assert time.monotonic() - started < 5  # "within a few seconds"
        # The other waiter still gets its answer.
        requests.post(served.api + "/report", headers=served.device, timeout=5, json={
            "changes": [{"op": "put", "path": "a.txt", "sha256": "0" * 64, "size": 1,
                         "mtime": 0, "base_rev": None}]})
        assert served.rt.waiters.count == 1  # upload_required: not a change yet
    finally:
        kept.close()
    assert served.waiters(0)


def test_a_woken_waiter_gets_its_answer_over_the_socket(served):
    sock = served.open_wait(timeout=30)
    try:
        assert served.waiters(1)
        data = b"hello"
        sha = sha256(data)
        session = requests.post(served.api + "/upload", headers=served.device, timeout=5, json={
            "path": "a.txt", "size": len(data), "sha256": sha, "base_rev": None}).json()
        requests.put(f"{served.api}/upload/{session['id']}/chunks/0", data=data,
                     headers=served.device, timeout=5)
        done = requests.post(f"{served.api}/upload/{session['id']}/complete",
                             headers=served.device, timeout=5).json()
        assert done["status"] == "applied"
        sock.settimeout(5)
        answer = b""
        while not answer.endswith(b"}"):
            piece = sock.recv(4096)
            assert piece, answer
            answer += piece
        assert answer.startswith(b"HTTP/1.1 200")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"changes": True}
    finally:
        sock.close()

"""The client's HTTP layer: retries with backoff on 5xx and connection
errors, error codes surfaced, timeouts on every call."""

import http.server
import json
import socket
import threading

import pytest

from sync.client import api as api_mod
from sync.client.api import Api, ApiError, Unreachable, content_digest


class Script(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of the server's script."""

    def do_GET(self):
        status, body = self.server.script.pop(0)
        self.server.seen.append(self.path)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Script)
    server.script, server.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make_api(server, sleeps):
    return Api(f"http://127.0.0.1:{server.server_address[1]}", "tok", sleep=sleeps.append)


def test_5xx_is_retried_with_growing_backoff(scripted):
    scripted.script = [(503, {}), (500, {}), (200, {"conflicts": []})]
    sleeps = []
    assert make_api(scripted, sleeps).conflicts() == []
    assert sleeps == [api_mod.BACKOFF_S, api_mod.BACKOFF_S * 2]
    assert scripted.seen == ["/api/v1/sync/conflicts"] * 3


def test_4xx_is_not_retried_and_carries_the_code(scripted):
    scripted.script = [(400, {"title": "Bad Request", "description": "old", "code": "cursor_expired"})]
    sleeps = []
    with pytest.raises(ApiError) as info:
        make_api(scripted, sleeps).changes("abc")
    assert info.value.status == 400 and info.value.code == "cursor_expired"
    assert sleeps == [] and scripted.seen == ["/api/v1/sync/changes?limit=1000&cursor=abc"]


def test_5xx_that_persists_becomes_an_error(scripted):
    scripted.script = [(503, {"code": "busy", "description": "later"})] * (api_mod.RETRIES + 1)
    sleeps = []
    with pytest.raises(ApiError) as info:
        make_api(scripted, sleeps).conflicts()
    assert info.value.status == 503 and len(sleeps) == api_mod.RETRIES


def test_an_unreachable_server_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = []
    api = Api(f"http://127.0.0.1:{port}", "tok", sleep=sleeps.append)
    with pytest.raises(Unreachable, match="cannot reach"):
        api.conflicts()
    assert len(sleeps) == api_mod.RETRIES
    assert max(sleeps) <= api_mod.BACKOFF_MAX_S


def test_content_digest_is_rfc9530():
    assert content_digest(b"hello") == "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:"

"""The client's HTTP layer: only what can heal is retried, with backoff (a
502/503/504, and once the server has answered, a refused or broken
connection); error codes surfaced; every way of not reaching the server
said in one line, fast."""

import http.server
import json
import threading

import pytest

from sync.client import api as api_mod
from sync.client.api import Api, ApiError, Unreachable, content_digest

from .helpers import free_port


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


def test_502_503_504_are_retried_with_growing_backoff(scripted):
    scripted.script = [(503, {}), (502, {}), (504, {}), (200, {"conflicts": []})]
    sleeps = []
    assert make_api(scripted, sleeps).conflicts() == []
    assert sleeps == [api_mod.BACKOFF_S, api_mod.BACKOFF_S * 2, api_mod.BACKOFF_S * 4]
    assert scripted.seen == ["/api/v1/sync/conflicts"] * 4


def test_a_500_is_a_bug_not_retried(scripted):
    scripted.script = [(500, {"code": "internal", "description": "The server failed"})]
    sleeps = []
    with pytest.raises(ApiError) as info:
        make_api(scripted, sleeps).conflicts()
    assert info.value.status == 500 and sleeps == []


def test_4xx_is_not_retried_and_carries_the_code(scripted):
    scripted.script = [(400, {"title": "Bad Request", "description": "old",
                              "code": "cursor_expired"})]
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


def test_a_refused_first_connection_is_reported_at_once_in_one_line():
    port = free_port()
    sleeps = []
    api = Api(f"http://127.0.0.1:{port}", "tok", sleep=sleeps.append)
    with pytest.raises(Unreachable) as info:
        api.conflicts()
    assert str(info.value) == f"connection refused: is the server running at http://127.0.0.1:{port}?"
    assert sleeps == []


def test_once_the_server_answered_a_refused_connection_is_retried_then_reported(scripted):
    port = scripted.server_address[1]
    scripted.script = [(200, {"conflicts": []})]
    sleeps = []
    api = make_api(scripted, sleeps)
    api.conflicts()
    scripted.shutdown()
    scripted.server_close()
    with pytest.raises(Unreachable, match=f"connection refused: is the server running at "
                                          f"http://127.0.0.1:{port}"):
        api.conflicts()
    assert len(sleeps) == api_mod.RETRIES
    assert max(sleeps) <= api_mod.BACKOFF_MAX_S
    assert sum(sleeps) <= api_mod.RETRY_WINDOW_S


def test_the_retry_window_bounds_how_long_a_call_keeps_trying(scripted):
    now = [0.0]
    scripted.script = [(503, {})] * 20

    def sleep(seconds):
        now[0] += seconds

    api = Api(f"http://127.0.0.1:{scripted.server_address[1]}", "tok", sleep=sleep,
              clock=lambda: now[0])
    with pytest.raises(ApiError):
        api.conflicts()
    assert 30 < now[0] <= api_mod.RETRY_WINDOW_S


def test_an_unknown_host_is_named():
    api = Api("http://no-such-host.invalid:8080", "tok", sleep=lambda s: None)
    with pytest.raises(Unreachable) as info:
        api.conflicts()
    assert str(info.value) == ("cannot find the host no-such-host.invalid: check the address "
                               "http://no-such-host.invalid:8080")


def test_https_to_a_plain_http_server_says_so(scripted):
    import time
    port = scripted.server_address[1]
    scripted.script = [(200, {"status": "ok"})] * 3
    api = Api(f"https://127.0.0.1:{port}", "tok", sleep=lambda s: None)
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        api.conflicts()
    assert str(info.value) == (f"the server at 127.0.0.1:{port} does not speak HTTPS: use "
                               f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < api_mod.FIRST_READ_TIMEOUT_S + 5


def test_content_digest_is_rfc9530():
    assert content_digest(b"hello") == "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:"

"""When the server cannot be reached, the client says why in one line and
fails fast; once the server has answered, a restart (refused connections
for a while) is waited out with backoff and the pass completes."""

import time

from sync.client import cli
from sync.client.api import Api
from sync.client.engine import Engine, Options

from .client_harness import folder_api, init, read, sync, write
from .helpers import Server, free_port


def test_no_server_listening_fails_within_seconds_in_one_line(server, tmp_path, capsys):
    folder = tmp_path / "a"
    init(server, folder, "Laptop A")
    port = free_port()
    assert cli.main(["config", str(folder), "--server", f"http://127.0.0.1:{port}"]) == 0
    capsys.readouterr()
    started = time.monotonic()
    assert sync(folder) == 1
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert err == f"sync: connection refused: is the server running at http://127.0.0.1:{port}?\n"
    assert elapsed < 3


def test_https_to_the_plain_http_server_says_so(server, tmp_path, capsys):
    folder = tmp_path / "a"
    init(server, folder, "Laptop A")
    https = server.url.replace("http://", "https://")
    assert cli.main(["config", str(folder), "--server", https]) == 0
    capsys.readouterr()
    started = time.monotonic()
    assert sync(folder) == 1
    elapsed = time.monotonic() - started
    netloc = server.url[len("http://"):]
    assert capsys.readouterr().err == (f"sync: the server at {netloc} does not speak HTTPS: "
                                       f"use http://{netloc}\n")
    assert elapsed < 15


def test_a_server_restart_of_15_seconds_does_not_fail_the_pass(tmp_path):
    port = free_port()
    first = Server(tmp_path / "data", port=port)
    a, b = tmp_path / "a", tmp_path / "b"
    init(first, a, "Laptop A")
    init(first, b, "Laptop B")
    write(a, "notes.txt", b"written before the restart")
    now = [0.0]
    servers = [first]

    class RestartingServer(Api):
        """The server goes down just before the report and comes back once
        15 s (of this test's clock) have passed."""

        def request(self, method, path, **kw):
            if path == "/report" and len(servers) == 1 and not servers[0].stopping:
                servers[0].stop()
            return super().request(method, path, **kw)

    def sleep(seconds):
        now[0] += seconds
        if now[0] >= 15 and len(servers) == 1:
            servers.append(Server(tmp_path / "data", port=port))

    api = folder_api(a, cls=RestartingServer)
    api.sleep, api.clock = sleep, lambda: now[0]
    engine = Engine(str(a), api=api, options=Options(quiet=True))
    try:
        summary = engine.run()
    finally:
        engine.close()
        for s in servers:
            if not s.stopping:
                s.stop()
    assert len(servers) == 2 and now[0] >= 15
    assert summary.up == 1 and summary.in_sync, summary.problems
    again = Server(tmp_path / "data", port=port) if servers[-1].stopping else None
    try:
        assert sync(b) == 0
        assert read(b, "notes.txt") == b"written before the restart"
    finally:
        if again:
            again.stop()

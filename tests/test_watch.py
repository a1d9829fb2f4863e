"""``sync --watch`` (SPEC §9): two real client folders kept in sync through
file events and ``POST /changes/wait`` against the real server on
loopback. The bounds are generous (a loaded machine); ``bench/live.py``
measures the latency precisely."""

import io
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sync.client import cli
from sync.client.engine import Engine, Options
from sync.client.watch import Watcher

from .client_harness import init, read, write
from .helpers import ROOT, Server

pytestmark = pytest.mark.slow

CARRY_S = 10  # the spec's 3 seconds, with room for a loaded machine


class Recording(Server):
    """The server, noting every request ``(when, method, path)``; with
    ``refuse_waits`` it answers ``/changes/wait`` 404, as a server from
    before waiting existed."""

    def __init__(self, data_dir, refuse_waits=False, **settings):
        self.refuse_waits = refuse_waits
        self.requests = []
        super().__init__(data_dir, **settings)

    def app(self):
        app = super().app()

        def recording(environ, start_response):
            self.requests.append((time.monotonic(), environ["REQUEST_METHOD"],
                                  environ["PATH_INFO"]))
            if self.refuse_waits and environ["PATH_INFO"].endswith("/changes/wait"):
                start_response("404 Not Found", [("Content-Type", "application/json")])
                return [b'{"title": "Not Found", "description": "No such route.", '
                        b'"code": "not_found"}']
            return app(environ, start_response)
        recording.body_gate = app.body_gate  # served with the app's own gate
        return recording


@pytest.fixture
def server(tmp_path):
    """The ``Recording`` server (``laptops`` registers its folders on it)."""
    server = Recording(tmp_path / "data")
    yield server
    server.stop()


class Client:
    """``python -m sync.client sync FOLDER --watch --quiet`` in a subprocess."""

    def __init__(self, folder, *extra):
        self.log = open(str(folder) + ".log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync.client", "sync", str(folder), "--watch", "--quiet",
             *extra], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.log.close()


def eventually(check, limit=CARRY_S):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def holds(folder, rel, data):
    try:
        return read(folder, rel) == data
    except OSError:
        return False


def gone(folder, rel):
    return not os.path.exists(os.path.join(str(folder), *rel.split("/")))


def started(client, folder):
    """The first pass of a client has run (its state has a cursor)."""
    import sqlite3
    path = os.path.join(str(folder), ".sync", "state.sqlite3")

    def has_cursor():
        try:
            with sqlite3.connect(path) as conn:
                return conn.execute("SELECT 1 FROM meta WHERE key = 'cursor'").fetchone()
        except sqlite3.Error:
            return False
    assert eventually(has_cursor), client.output()


def watching(folder):
    """A ``Client`` of ``folder`` whose first pass has run."""
    client = Client(folder)
    started(client, folder)
    return client


def test_two_folders_in_watch_mode_carry_every_kind_of_change(laptops):
    a, b = laptops
    ca, cb = watching(a), watching(b)
    try:
        write(a, "books/new.txt", b"first")
        assert eventually(lambda: holds(b, "books/new.txt", b"first")), ca.output()
        write(a, "books/new.txt", b"second, longer")
        assert eventually(lambda: holds(b, "books/new.txt", b"second, longer")), cb.output()
        os.rename(a / "books" / "new.txt", a / "books" / "renamed.txt")
        assert eventually(lambda: holds(b, "books/renamed.txt", b"second, longer")
                          and gone(b, "books/new.txt")), cb.output()
        os.remove(a / "books" / "renamed.txt")
        assert eventually(lambda: gone(b, "books/renamed.txt")), cb.output()
        write(b, "from-b.txt", b"the other way")
        assert eventually(lambda: holds(a, "from-b.txt", b"the other way")), ca.output()
    finally:
        code_a = ca.stop(signal.SIGTERM)
        code_b = cb.stop(signal.SIGINT)
    assert code_a == 0  # SIGTERM: the pass in progress ends, then a clean stop
    assert code_b == 130  # Ctrl-C


def test_quiet_prints_a_line_only_for_a_pass_that_changed_something(laptops, tmp_path):
    a, b = laptops
    log = tmp_path / "a.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sync.client", "sync", str(a), "--watch", "--quiet"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            write(a, "one.txt", b"1")
            assert eventually(lambda: "1 up" in log.read_text())
            time.sleep(1.5)  # idle: the waits and the events of its own writes print nothing
            write(a, "one.txt", b"11")
            assert eventually(lambda: log.read_text().count("1 up") == 2)
            time.sleep(1.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    lines = log.read_text().splitlines()
    assert lines == ["sync: 1 up, 0 down, 0 deleted here, 0 deleted on the server, "
                     "0 moved, 0 new conflicts"] * 2, lines


def test_watch_keeps_running_through_a_server_restart(server, laptops):
    a, b = laptops
    ca, cb = watching(a), watching(b)
    try:
        server.stop()
        write(a, "offline.txt", b"made while the server was down")
        time.sleep(2)  # the clients fail, back off and try again
        assert ca.proc.poll() is None and cb.proc.poll() is None
        server.start()
        # Backoff doubles from 1 s: within 1 + 2 + 4 s of the restart.
        assert eventually(lambda: holds(b, "offline.txt", b"made while the server was down"),
                          limit=20), ca.output() + cb.output()
        write(b, "after.txt", b"and back")
        assert eventually(lambda: holds(a, "after.txt", b"and back")), cb.output()
    finally:
        assert ca.stop() == 0
        assert cb.stop() == 0


# -- in-process: the watcher's own behaviour --------------------------------------

class Running:
    """A ``Watcher`` in a thread of this process, stopped by ``close()``."""

    def __init__(self, folder, **kw):
        self.engine = Engine(str(folder), options=Options(quiet=True))
        self.out, self.err = io.StringIO(), io.StringIO()
        self.watcher = Watcher(self.engine, quiet=True, out=self.out, err=self.err, **kw)
        self.code = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.code = self.watcher.run()

    def close(self):
        self.watcher.stop()
        self.thread.join(10)
        self.engine.close()
        assert not self.thread.is_alive()
        return self.code


def wait_requests(server, since):
    return [r for r in server.requests if r[0] >= since and r[2].endswith("/changes/wait")]


def test_an_idle_client_makes_one_request_per_wait_timeout(server, tmp_path):
    a = tmp_path / "a"
    init(server, a, "Laptop")
    write(a, "one.txt", b"1")
    running = Running(a, wait_timeout=2)
    try:
        assert eventually(lambda: running.watcher.passes_done >= 1 and wait_requests(server, 0))
        time.sleep(0.5)
        since = time.monotonic()
        time.sleep(6.2)
        idle = [r for r in server.requests if r[0] >= since]
        # One wait every 2 s, nothing else: three or four requests in 6.2 s.
        assert 3 <= len(idle) <= 4, idle
        assert all(path.endswith("/changes/wait") for _, _, path in idle), idle
    finally:
        assert running.close() == 0
    assert running.out.getvalue().count("1 up") == 1


def test_a_file_still_being_written_is_synced_once_it_settles(laptops):
    a, b = laptops
    running = Running(a)
    try:
        assert eventually(lambda: running.watcher.passes_done >= 1)
        with open(a / "growing.bin", "wb") as f:
            for i in range(12):
                f.write(bytes([i]) * 1000)
                f.flush()
                time.sleep(0.1)  # shorter than the settle time
        assert eventually(lambda: running.out.getvalue().count("1 up") == 1)
        time.sleep(1)
    finally:
        assert running.close() == 0
    assert running.out.getvalue().count(" up,") == 1, running.out.getvalue()
    assert cli.main(["sync", str(b), "--quiet"]) == 0
    assert read(b, "growing.bin") == b"".join(bytes([i]) * 1000 for i in range(12))


def test_without_file_events_the_folder_is_polled(laptops):
    a, b = laptops
    running = Running(a, events=False, interval=0.5)
    try:
        assert eventually(lambda: running.watcher.passes_done >= 1)
        assert running.watcher.mode == "polling"
        write(a, "polled.txt", b"found by polling")
        assert eventually(lambda: "1 up" in running.out.getvalue())
    finally:
        assert running.close() == 0
    assert cli.main(["sync", str(b), "--quiet"]) == 0
    assert read(b, "polled.txt") == b"found by polling"


def test_the_servers_backoff_is_honoured(tmp_path):
    server = Recording(tmp_path / "data", max_waiters=0)
    a = tmp_path / "a"
    init(server, a, "Laptop")
    running = Running(a, wait_timeout=1)
    try:
        assert eventually(lambda: running.watcher.passes_done >= 1 and wait_requests(server, 0))
        time.sleep(4)
        # Every wait is answered at once with backoff 10: one wait, not one a second.
        assert len(wait_requests(server, 0)) == 1
    finally:
        assert running.close() == 0
        server.stop()


def test_against_a_server_without_waiting_the_library_is_polled(tmp_path):
    server = Recording(tmp_path / "data", refuse_waits=True)
    a, b = tmp_path / "a", tmp_path / "b"
    init(server, a, "Laptop")
    init(server, b, "Desktop")
    running = Running(a, interval=1)
    try:
        assert eventually(lambda: running.watcher.passes_done >= 1)
        write(b, "remote.txt", b"from b")
        assert cli.main(["sync", str(b), "--quiet"]) == 0
        assert eventually(lambda: holds(a, "remote.txt", b"from b"))
    finally:
        assert running.close() == 0
        server.stop()


def test_a_refused_token_stops_the_watch(server, tmp_path, capsys):
    a = tmp_path / "a"
    init(server, a, "Laptop")
    from sync.client.state import load_config
    device_id = load_config(str(a))["device_id"]
    import requests
    requests.delete(f"{server.url}/api/v1/sync/devices/{device_id}", timeout=5,
                    headers={"Authorization": f"Bearer {server.user_token()}"})
    running = Running(a)
    running.thread.join(20)
    assert not running.thread.is_alive()
    assert running.code == 1
    assert "refused the token" in running.err.getvalue()
    running.engine.close()

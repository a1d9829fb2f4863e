"""Test helpers: a small API client over WebTest, the upload flow over it,
content and digests, the injected clock and ids, assertions (the error
shape, "refused and nothing changed"), a browser for the web page, and the
real server over HTTP: in a thread of this process (``Server``, with raw
sockets for clients that misbehave) or as ``python app.py`` (``AppProcess``).

Fixtures live in ``conftest.py``, data-directory seeding without HTTP in
``seed.py``, the sync client's harness in ``client_harness.py`` and the
checks against the API document in ``openapi_check.py``.
"""

import base64
import hashlib
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import webtest

from sync import auth, errors, httpserver
from sync.config import Config
from sync.db import database
from sync.wsgi import create_app, open_runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = 1795737600  # 2026-11-27T00:00:00Z
DAY = 24 * 3600
KIB = 1024
CHUNK = 256 * KIB  # the smallest chunk size a session may use

# The file of the ``stored`` fixture.
STORED_PATH = "books/Dune.txt"
STORED_SIZE = 1000
STORED_MTIME = 1700000000  # Tue, 14 Nov 2023 22:13:20 GMT


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now=START):
        self.now = float(now)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Ids:
    """Predictable ids: 000000000000000000000001, ..."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return f"{self.n:024x}"

PREFIX = "/api/v1/sync"


class Api:
    """Calls the app as one caller (a token, optionally an X-Device-Id).

    ``status`` is the expected status (WebTest fails the test otherwise).
    Every response passes through ``check_response`` so that checks on all
    responses (the error shape, the API document) live in one place.
    """

    def __init__(self, testapp, token=None, device_id=None, prefix=PREFIX):
        self.testapp = testapp
        self.token = token
        self.device_id = device_id
        self.prefix = prefix

    def as_(self, token=None, device_id=None, prefix=None):
        return Api(self.testapp, token, device_id, prefix or self.prefix)

    def headers(self, extra=None):
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.device_id:
            headers["X-Device-Id"] = self.device_id
        headers.update(extra or {})
        return headers

    def url(self, path):
        return path if path.startswith("/api/") or path == "/healthz" else self.prefix + path

    def request(self, method, path, body=None, status=200, headers=None, raw=None,
                content_type=None):
        headers = self.headers(headers)
        data = b""
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
            headers.setdefault("Content-Type", content_type or "application/octet-stream")
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            headers.setdefault("Content-Type", content_type or "application/json")
        resp = self.testapp.request(self.url(path), method=method, body=data,
                                    headers=headers, expect_errors=True)
        check_response(method, self.url(path), resp)
        if status != "*":
            assert resp.status_int == status, \
                f"{method} {path}: {resp.status}, expected {status}: {resp.text[:300]}"
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


RESPONSE_CHECKS = []


def check_response(method, url, resp):
    """Checks every response the suite receives: a 4xx/5xx has the one error shape."""
    if resp.status_int >= 400 and method != "HEAD":
        body = resp.json
        assert isinstance(body.get("code"), str) and body["code"], body
        assert body["code"] in errors.CODES, f"{body['code']!r} is not in sync/errors.py"
        assert isinstance(body.get("title"), str), body
        assert isinstance(body.get("description"), str) and body["description"], body
    for check in RESPONSE_CHECKS:
        check(method, url, resp)


def assert_error(resp, status, code):
    assert resp.status_int == status, resp
    assert resp.json["code"] == code, resp.json
    assert resp.content_type == "application/json"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def digest_header(data):
    """The ``Content-Digest`` / ``Repr-Digest`` value (RFC 9530) of ``data``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def content(size, seed=1):
    """Deterministic bytes that differ from chunk to chunk."""
    block = hashlib.sha256(str(seed).encode()).digest() * (KIB // 32)
    out = bytearray()
    i = 0
    while len(out) < size:
        out += block[:1000] + i.to_bytes(4, "big")
        i += 1
    return bytes(out[:size])


def other_app(tmp_path, clock, **settings):
    """A second app over its own data directory with extra settings: its
    runtime and the API as a device of alice."""
    config = Config.build(data_dir=str(tmp_path / "other"), access_log=False, **settings)
    rt = open_runtime(config, clock=clock, idgen=Ids())
    api = Api(webtest.TestApp(create_app(rt)), auth.issue_user_token(rt, "alice"))
    device = api.post("/devices", {"name": "Laptop"}).json
    return rt, api.as_(device["token"])


# -- the upload flow over HTTP ---------------------------------------------------

def start_upload(dev, path, data, status=200, **extra):
    """``POST /upload`` for ``data`` at ``path`` in chunks of ``CHUNK``."""
    body = {"path": path, "size": len(data), "sha256": sha256(data), "base_rev": None,
            "chunk_size": CHUNK}
    body.update(extra)
    return dev.post("/upload", body, status=status)


def send_chunk(dev, upload_id, index, data, chunk_size=CHUNK, status=200, headers=None):
    """``PUT`` chunk ``index`` of ``data``."""
    piece = data[index * chunk_size:(index + 1) * chunk_size]
    return dev.put(f"/upload/{upload_id}/chunks/{index}", raw=piece, status=status,
                   headers=headers)


def upload(dev, path, data, **extra):
    """A whole upload; returns complete's answer."""
    session = start_upload(dev, path, data, **extra).json
    for index in range(session["chunk_count"]):
        if index not in session["received"]:
            send_chunk(dev, session["id"], index, data, session["chunk_size"])
    return dev.post(f"/upload/{session['id']}/complete").json


# -- refused and nothing changed -------------------------------------------------

def snapshot(config):
    """Every table's rows (sorted) and the data directory's blob and spool
    files, read straight from disk."""
    con = sqlite3.connect(config.path("sync.sqlite3"))
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
                for t in tables}
    finally:
        con.close()
    files = []
    for sub in ("blobs", "spool"):
        for root, _, names in os.walk(config.path(sub)):
            for name in names:
                full = os.path.join(root, name)
                files.append((os.path.relpath(full, config.data_dir), os.path.getsize(full)))
    return {"rows": rows, "files": sorted(files)}


def count(table):
    """The number of rows of ``table`` (in the database open in this process)."""
    with database.connection_context():
        return database.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def spool_files(rt):
    """The names of the files in the data directory's spool."""
    return sorted(os.listdir(rt.config.path("spool")))


def assert_4xx(resp):
    """A client error with a code, never a 5xx (the shape is checked by ``Api``)."""
    assert 400 <= resp.status_int < 500, (resp.status, resp.body[:300])
    if resp.request.method != "HEAD":
        assert resp.json["code"], resp.json


def rejected_unchanged(rt, call):
    """Run ``call``; it must answer a 4xx with a code and change nothing."""
    before = snapshot(rt.config)
    resp = call()
    assert_4xx(resp)
    assert snapshot(rt.config) == before
    return resp


# -- the server as a process -----------------------------------------------------

def run_app(*args, env=None, input=None, timeout=120):
    """``python app.py ARGS`` run to its end (extra ``env`` variables, text
    on stdin): the ``subprocess.CompletedProcess``, output captured as text."""
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT,
                          env=dict(os.environ, **(env or {})), input=input,
                          capture_output=True, text=True, timeout=timeout)


SECRET = "crash-test-secret-crash-test-secret"  # SYNC_JWT_SECRET of an AppProcess
START_TIMEOUT_S = 60


class AppProcess:
    """``python app.py`` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.proc = None
        self.base = None

    def start(self):
        env = dict(os.environ, SYNC_JWT_SECRET=SECRET, SYNC_ACCESS_LOG="false",
                   SYNC_DATA_DIR=str(self.data_dir), SYNC_HOST="127.0.0.1", SYNC_PORT="0",
                   SYNC_THREADS="4")
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while "listening on" not in line:
            assert time.monotonic() < deadline, "the server did not start"
            line = self.proc.stdout.readline()
            assert line or self.proc.poll() is None, "the server exited"
        self.base = line.split("listening on ", 1)[1].split()[0] + "/api/v1/sync"
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()

    def close(self):
        """Kill the server if it still runs (a test's clean-up)."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on (at this moment)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the server in this process --------------------------------------------------

class Server:
    """The app over real HTTP in a thread of this process, served as
    ``app.py`` serves it (``sync.httpserver``) on 127.0.0.1 until ``stop()``;
    ``start()`` serves it again on the same port over the same data.
    Keywords are settings (``--threads`` ...); ``waitress`` overrides
    waitress's own. A subclass may wrap the app (``app()``)."""

    def __init__(self, data_dir, port=0, waitress=None, **settings):
        settings.setdefault("access_log", False)
        settings.setdefault("fsync", False)
        self.config = Config.build(data_dir=str(data_dir), host="127.0.0.1", port=port,
                                   **settings)
        self.rt = open_runtime(self.config)
        self.overrides = dict(asyncore_loop_timeout=0.1, **(waitress or {}))
        self.port = port
        self.start()

    def app(self):
        return create_app(self.rt)

    def start(self):
        self.server = httpserver.create_server(self.app(), self.config, port=self.port,
                                               **self.overrides)
        self.port = int(self.server.effective_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self.stopping:  # closing the sockets wakes the loop with EBADF
                raise

    def user_token(self, name="alice"):
        return auth.issue_user_token(self.rt, name)

    def connect(self, timeout=10):
        """A raw connection to the server; the caller closes it."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self):
        self.stopping = True
        self.server.logger.setLevel(logging.FATAL)  # closing channels logs noise
        # Closing every channel ends waitress's loop; then its workers stop.
        while self.server._map:
            for channel in list(self.server._map.values()):
                channel.handle_close()
        self.server.task_dispatcher.shutdown(timeout=1)
        self.thread.join(5)


def send_request(sock, method, path, headers=None, body=b""):
    """Send one HTTP/1.1 request on ``sock``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def read_response(sock):
    """(status, headers, body) of one response read from ``sock``."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError(f"closed after {buf!r}")
        buf += more
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        more = sock.recv(65536)
        if not more:
            break
        rest += more
    return status, headers, rest[:length]


def get_once(server, path, headers=None, timeout=10):
    """One GET on a new connection to ``server``: (status, headers, body)."""
    with server.connect(timeout) as sock:
        send_request(sock, "GET", path, dict(headers or {}, Connection="close"))
        return read_response(sock)


# -- the web page ----------------------------------------------------------------

PASSWORD = "correct horse battery staple"  # of the users ``seed.add_user`` makes
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


class Browser:
    """One browser on the web page: its own cookie jar over the app, logged
    in with a password, sending the CSRF token of the page it last loaded."""

    def __init__(self, app, https=False):
        env = {"wsgi.url_scheme": "https"} if https else {}
        self.app = webtest.TestApp(app, extra_environ=env)
        self.csrf = None

    def login(self, name, password=PASSWORD, status=303, **fields):
        resp = self.app.post("/login", {"username": name, "password": password, **fields},
                             status=status)
        if status == 303:
            self.get("/")
        return resp

    def get(self, url, status=200, **kw):
        resp = self.app.get(url, status=status, **kw)
        found = _CSRF.search(resp.text) if resp.content_type == "text/html" else None
        if found and found.group(1):
            self.csrf = found.group(1)
        return resp

    def post(self, url, fields=None, status=303, csrf=True, **kw):
        fields = dict(fields or {})
        if csrf is True:
            fields["csrf"] = self.csrf
        elif csrf:
            fields["csrf"] = csrf
        return self.app.post(url, fields, status=status, **kw)

    def json(self, method, url, body=None, status=200, csrf=True, raw=None, headers=None):
        headers = dict(headers or {})
        if csrf:
            headers["X-CSRF-Token"] = self.csrf if csrf is True else csrf
        if raw is not None:
            return self.app.request(url, method=method, body=raw, status=status,
                                    headers={**headers,
                                             "Content-Type": "application/octet-stream"})
        if body is None:
            return self.app.request(url, method=method, status=status, headers=headers)
        return self.app.request(url, method=method, status=status, json=body, headers=headers)

    def cookie(self):
        return self.app.cookies.get("sync_session")


# -- WebDAV ----------------------------------------------------------------------

DAV = "{DAV:}"
DAV_ROOT = "/dav/files/alice/"


class Dav:
    """A WebDAV client over WebTest: ``dav.req("PUT", "a.txt", body=..., status=201)``."""

    def __init__(self, testapp, authorization, root=DAV_ROOT):
        self.testapp = testapp
        self.authorization = authorization
        self.root = root

    def url(self, path):
        return path if path.startswith("/") else self.root + path

    def req(self, method, path="", body=b"", status=None, headers=None, **kw):
        headers = dict(headers or {})
        if self.authorization:
            headers.setdefault("Authorization", self.authorization)
        resp = self.testapp.request(self.url(path), method=method, body=body, headers=headers,
                                    expect_errors=True, **kw)
        if status is not None:
            assert resp.status_int == status, (resp.status, resp.body[:500])
        return resp

    def put(self, path, data, status=None, **kw):
        return self.req("PUT", path, body=data, status=status, **kw)

    def propfind(self, path="", depth="1", body=b"", status=207):
        resp = self.req("PROPFIND", path, body=body, status=status, headers={"Depth": depth})
        return parse_multistatus(resp.body) if status == 207 else resp

    def names(self, path=""):
        """The members' hrefs below ``path`` (Depth 1), relative to the root."""
        found = self.propfind(path)
        return sorted(href[len(self.root):] for href in found if href != self.url(path))


def basic(name, password):
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def parse_multistatus(body):
    """``{href: {property name: element}}`` of the 200 propstats of a 207."""
    result = {}
    for response in ET.fromstring(body).iter(DAV + "response"):
        href = response.find(DAV + "href").text
        props = {}
        for propstat in response.iter(DAV + "propstat"):
            if "200" in propstat.find(DAV + "status").text:
                for prop in propstat.find(DAV + "prop"):
                    props[prop.tag] = prop
        result[href] = props
    return result

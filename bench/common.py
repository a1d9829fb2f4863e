"""Shared pieces of the benchmarks: start ``python app.py`` in a subprocess
on a free loopback port, mint tokens with a known secret, and a small HTTP
client for the sync API (requests)."""

import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import jwt
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret-" + "x" * 40
PREFIX = "/api/v1/sync"
MIB = 1024 * 1024


class Server:
    """``python app.py`` on 127.0.0.1 with an ephemeral port and a data dir."""

    def __init__(self, data_dir, log_path, env=None, args=(), script=None, cwd=ROOT):
        self.script = script or os.path.join(ROOT, "app.py")
        self.cwd = cwd
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = dict(os.environ, SYNC_JWT_SECRET=SECRET, SYNC_DATA_DIR=data_dir,
                        SYNC_HOST="127.0.0.1", SYNC_PORT="0", **(env or {}))
        self.args = list(args)
        self.proc = None
        self.url = None

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, self.script, *self.args],
                                     cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline().decode()
        match = re.search(r"http://([\d.]+):(\d+)", line)
        if not match:
            self.kill()
            raise RuntimeError(f"server did not start: {line!r}; see {self.log_path}")
        self.url = f"http://{match.group(1)}:{match.group(2)}"
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("server did not answer /healthz")

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """``kill -9``: no clean-up of any kind in the server."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def memory(self):
        """{'VmRSS': kB, 'VmHWM': kB} of the server process."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0])
        return out


def user_token(name, ttl=86400):
    now = int(time.time())
    return jwt.encode({"sub": name, "iat": now, "exp": now + ttl}, SECRET, algorithm="HS256")


def write_random(path, mib):
    """A file of ``mib`` MiB of random bytes at ``path`` (content no store holds)."""
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def digest_header(data):
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


class Client:
    """The sync API as one caller. Methods return the ``requests`` response;
    they never raise on an HTTP status."""

    def __init__(self, url, token, timeout=60):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def call(self, method, path, **kw):
        kw.setdefault("timeout", self.timeout)
        return self.session.request(method, self.url + PREFIX + path, **kw)

    def register(self, name):
        resp = self.call("POST", "/devices", json={"name": name})
        resp.raise_for_status()
        return resp.json()

    def as_device(self, token):
        return Client(self.url, token, self.timeout)

    def report(self, changes):
        return self.call("POST", "/report", json={"changes": changes})

    def changes(self, cursor=None, limit=1000):
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self.call("GET", "/changes", params=params)

    def feed(self):
        """Every entry's latest state, paged from the beginning: {path: change}."""
        entries, cursor = {}, None
        while True:
            resp = self.changes(cursor)
            resp.raise_for_status()
            body = resp.json()
            for change in body["changes"]:
                entries[change["path"]] = change
            cursor = body["cursor"]
            if not body["has_more"]:
                return entries, cursor

    def ack(self, cursor):
        return self.call("POST", "/ack", json={"cursor": cursor})

    def create_upload(self, path, data_size, sha, base_rev, chunk_size=None, mtime=None):
        body = {"path": path, "size": data_size, "sha256": sha, "base_rev": base_rev}
        if chunk_size:
            body["chunk_size"] = chunk_size
        if mtime is not None:
            body["mtime"] = mtime
        return self.call("POST", "/upload", json=body)

    def put_chunk(self, upload_id, index, data, digest=False):
        headers = {"Content-Type": "application/octet-stream"}
        if digest:
            headers["Content-Digest"] = digest_header(data)
        return self.call("PUT", f"/upload/{upload_id}/chunks/{index}", data=data,
                         headers=headers)

    def complete(self, upload_id):
        return self.call("POST", f"/upload/{upload_id}/complete")

    def upload(self, path, data, base_rev, chunk_size=256 * 1024, mtime=None):
        """The whole upload of ``data``; returns the last response."""
        resp = self.create_upload(path, len(data), sha256(data), base_rev, chunk_size, mtime)
        if resp.status_code != 200:
            return resp
        session = resp.json()
        size = session["chunk_size"]
        for index in range(session["chunk_count"]):
            if index in session["received"]:
                continue
            resp = self.put_chunk(session["id"], index, data[index * size:(index + 1) * size])
            if resp.status_code != 200:
                return resp
        return self.complete(session["id"])

    def download(self, path, **kw):
        return self.call("GET", "/download/" + requests.utils.quote(path, safe="/"), **kw)

    def conflicts(self):
        return self.call("GET", "/conflicts")


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]

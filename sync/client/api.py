"""The HTTP layer: one ``Api`` per thread over a ``requests.Session``, with
a timeout on every call and retries with backoff on connection errors and
5xx answers. Error answers become ``ApiError`` carrying the server's
machine-readable ``code``."""

import base64
import hashlib
import time
from urllib.parse import quote

import requests

PREFIX = "/api/v1/sync"
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
CHUNK_TIMEOUT_S = 300  # the server fsyncs a whole chunk before it answers
RETRIES = 4
BACKOFF_S = 0.5
BACKOFF_MAX_S = 8
RETRY_STATUSES = {500, 502, 503, 504}


class ApiError(Exception):
    """The server answered with an error status (after any retries)."""

    def __init__(self, status, code, description, body=None):
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.body = body or {}


class Unreachable(Exception):
    """The server could not be reached, even after retries."""


def content_digest(data):
    """An RFC 9530 ``Content-Digest`` value for ``data``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode("ascii") + ":"


def _error(resp):
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(resp.status_code, body.get("code") or f"http_{resp.status_code}",
                    body.get("description") or body.get("title") or resp.reason or "",
                    body)


class Api:
    """Calls the sync API as one device. Not shared between threads: a thread
    that needs its own connection calls ``clone()``."""

    def __init__(self, server, token, retries=RETRIES, backoff=BACKOFF_S, sleep=time.sleep):
        self.server = server.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "sync-client/0.1"

    def clone(self):
        return type(self)(self.server, self.token, self.retries, self.backoff, self.sleep)

    def close(self):
        self.session.close()

    def request(self, method, path, json=None, data=None, headers=None, params=None,
                timeout=READ_TIMEOUT_S, stream=False, ok=(200,)):
        """One call, retried on connection errors and 5xx; ``ApiError`` when
        the status is not in ``ok``."""
        url = self.server + PREFIX + path
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.session.request(method, url, json=json, data=data, headers=headers,
                                            params=params, stream=stream,
                                            timeout=(CONNECT_TIMEOUT_S, timeout))
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise Unreachable(f"cannot reach {self.server}: {_reason(exc)}") from None
            else:
                if resp.status_code in ok:
                    return resp
                if resp.status_code not in RETRY_STATUSES or last:
                    error = _error(resp)
                    resp.close()
                    raise error
                resp.close()
            self.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
        raise AssertionError("unreachable")

    # Devices
    def register_device(self, name, platform):
        return self.request("POST", "/devices", json={"name": name, "platform": platform}).json()

    def list_devices(self):
        return self.request("GET", "/devices").json()["devices"]

    def get_device(self, device_id):
        return self.request("GET", f"/devices/{quote(device_id, safe='')}").json()

    # Feed, ack, report
    def changes(self, cursor=None, limit=1000):
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self.request("GET", "/changes", params=params).json()

    def ack(self, cursor):
        return self.request("POST", "/ack", json={"cursor": cursor}).json()

    def report(self, items):
        return self.request("POST", "/report", json={"changes": items}).json()["results"]

    # Conflicts
    def conflicts(self):
        return self.request("GET", "/conflicts").json()["conflicts"]

    def resolve(self, conflict_id, resolution):
        return self.request("POST", f"/conflicts/{quote(conflict_id, safe='')}/resolve",
                            json={"resolution": resolution}).json()

    # Uploads
    def create_upload(self, path, size, sha256, base_rev, mtime=None, chunk_size=None):
        body = {"path": path, "size": size, "sha256": sha256, "base_rev": base_rev}
        if mtime is not None:
            body["mtime"] = mtime
        if chunk_size is not None:
            body["chunk_size"] = chunk_size
        return self.request("POST", "/upload", json=body).json()

    def get_upload(self, upload_id):
        return self.request("GET", f"/upload/{quote(upload_id, safe='')}").json()

    def put_chunk(self, upload_id, index, data):
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Digest": content_digest(data)}
        return self.request("PUT", f"/upload/{quote(upload_id, safe='')}/chunks/{index}",
                            data=data, headers=headers, timeout=CHUNK_TIMEOUT_S).json()

    def complete_upload(self, upload_id):
        return self.request("POST", f"/upload/{quote(upload_id, safe='')}/complete").json()

    def cancel_upload(self, upload_id):
        self.request("DELETE", f"/upload/{quote(upload_id, safe='')}", ok=(204, 404))

    # Downloads
    def download(self, path, offset=0, sha256=None):
        """The streamed response for ``path``'s head content (close it); from
        ``offset`` on (206) if the head still holds ``sha256``, else all of
        it (200)."""
        headers = {}
        if offset:
            headers = {"Range": f"bytes={offset}-", "If-Range": f'"{sha256}"'}
        return self.request("GET", "/download/" + quote(path, safe="/"), stream=True,
                            headers=headers, ok=(200, 206))


def _reason(exc):
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."

"""The HTTP layer: one ``Api`` per thread over a ``requests.Session``, with
a timeout on every call. Only what can heal is retried, with backoff: once
the server has answered, a refused or broken connection, a timeout or a
502/503/504 (a server or its proxy restarting) is tried again for up to
``RETRY_WINDOW_S``; before the first answer, a refused connection, an
unknown host or a TLS failure is reported at once, in one line
(``Unreachable``). Error answers become ``ApiError`` carrying the server's
machine-readable ``code``."""

import base64
import errno
import hashlib
import socket
import time
from urllib.parse import quote, urlsplit

import requests

PREFIX = "/api/v1/sync"
CONNECT_TIMEOUT_S = 5
FIRST_READ_TIMEOUT_S = 10  # the first answer: a TLS handshake with a plain-HTTP server stalls
READ_TIMEOUT_S = 60
CHUNK_TIMEOUT_S = 300  # the server fsyncs a whole chunk before it answers
RETRIES = 10
BACKOFF_S = 0.5
BACKOFF_MAX_S = 8
RETRY_WINDOW_S = 60
RETRY_STATUSES = {502, 503, 504}


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
    that needs its own connection calls ``clone()``. ``ca_bundle`` is a file
    of CA certificates to trust for an https server (a home network's own
    CA); ``clock`` measures the retry window (tests move it)."""

    def __init__(self, server, token, retries=RETRIES, backoff=BACKOFF_S, sleep=time.sleep,
                 ca_bundle=None, clock=time.monotonic):
        self.server = server.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.ca_bundle = ca_bundle
        self.clock = clock
        self.reached = False
        self.session = requests.Session()
        if ca_bundle:
            self.session.verify = ca_bundle
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "sync-client/0.1"

    def clone(self):
        twin = type(self)(self.server, self.token, self.retries, self.backoff, self.sleep)
        twin.ca_bundle, twin.clock, twin.reached = self.ca_bundle, self.clock, self.reached
        if self.ca_bundle:
            twin.session.verify = self.ca_bundle
        return twin

    def close(self):
        self.session.close()

    def request(self, method, path, json=None, data=None, headers=None, params=None,
                timeout=READ_TIMEOUT_S, stream=False, ok=(200,)):
        """One call, retried while it can heal (see the module docstring);
        ``ApiError`` when the status is not in ``ok``."""
        url = self.server + PREFIX + path
        delay = self.backoff
        start = self.clock()
        # Per request: a session's verify loses to $REQUESTS_CA_BUNDLE.
        extra = {"verify": self.ca_bundle} if self.ca_bundle else {}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries or self.clock() - start + delay > RETRY_WINDOW_S
            read_timeout = timeout if self.reached else min(timeout, FIRST_READ_TIMEOUT_S)
            try:
                resp = self.session.request(method, url, json=json, data=data, headers=headers,
                                            params=params, stream=stream,
                                            timeout=(CONNECT_TIMEOUT_S, read_timeout), **extra)
            except (requests.ConnectionError, requests.Timeout) as exc:
                heals = self.reached and not isinstance(exc, requests.exceptions.SSLError) \
                    and _kind(exc) not in ("dns",)
                if last or not heals:
                    raise Unreachable(self.explain(exc)) from None
            else:
                self.reached = True
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

    def explain(self, exc):
        """One line saying why the server could not be reached."""
        where = self.server
        parts = urlsplit(self.server)
        kind = _kind(exc)
        if kind == "refused":
            return f"connection refused: is the server running at {where}?"
        if kind == "dns":
            return f"cannot find the host {parts.hostname}: check the address {where}"
        if kind == "tls-untrusted":
            return (f"the certificate of {where} is not trusted ({_reason(exc, 120)}); if it "
                    "comes from your own CA, give its certificate with --ca-bundle FILE")
        if kind == "tls":
            if self._speaks_plain_http(parts):
                return (f"the server at {parts.netloc} does not speak HTTPS: use "
                        f"http://{parts.netloc}")
            return f"the TLS handshake with {where} failed ({_reason(exc, 120)})"
        if kind == "timeout":
            if parts.scheme == "https" and not self.reached and self._speaks_plain_http(parts):
                return (f"the server at {parts.netloc} does not speak HTTPS: use "
                        f"http://{parts.netloc}")
            return f"no answer from {where} in time: is the address right, is the server up?"
        if kind == "unreachable":
            return f"no route to {where}: is this machine on the server's network?"
        return f"the connection to {where} broke: {_reason(exc, 160)}"

    def _speaks_plain_http(self, parts):
        """Does ``parts``' host and port answer plain HTTP (an https:// address
        given for an http server)?"""
        if parts.scheme != "https":
            return False
        try:
            requests.get(f"http://{parts.netloc}/healthz", timeout=(2, 2))
            return True
        except requests.RequestException:
            return False

    # Devices
    def register_device(self, name, platform):
        return self.request("POST", "/devices", json={"name": name, "platform": platform}).json()

    def list_devices(self):
        return self.request("GET", "/devices").json()["devices"]

    def delete_device(self, device_id):
        """Remove a device (a user token only); its tokens stop working."""
        self.request("DELETE", f"/devices/{quote(device_id, safe='')}", ok=(204,))

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


def _causes(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "reason", None) if isinstance(getattr(exc, "reason", None),
                                                           BaseException) else (
            exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args and isinstance(
                exc.args[0], BaseException) else None))


def _kind(exc):
    """refused, dns, unreachable, tls, tls-untrusted, timeout or broken."""
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == \
                errno.ECONNREFUSED:
            return "refused"
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return "dns"
        if getattr(cause, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable"
        if "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return "tls-untrusted"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    return "broken"


def _reason(exc, limit=200):
    """The innermost cause's text, short."""
    text = str(list(_causes(exc))[-1]) or str(exc)
    return text if len(text) < limit else text[:limit] + "..."

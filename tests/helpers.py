"""Test helpers: a small API client over WebTest and assertion helpers."""

import hashlib
import json

from sync import errors

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
                                    headers=headers, status=status, expect_errors=True)
        check_response(method, self.url(path), resp)
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

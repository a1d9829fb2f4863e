"""Helpers for the web page's tests: a browser-like WebTest client with its
own cookies, logged in with a password, that finds the CSRF token on the
page it last loaded."""

import re

import webtest

from sync import auth
from sync.db import database, write

from . import seed as seeding

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def add_user(rt, name, password=PASSWORD):
    with database.connection_context():
        auth.add_user(rt, name, password)


class Browser:
    """One browser: its own cookie jar over the app."""

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


def user_id(rt, name):
    with database.connection_context():
        return auth.ensure_user(rt, name).id


def seed(rt, name, files, device_id=None):
    """Files (path -> bytes) in ``name``'s library, as completed uploads leave them."""
    for path, data in files.items():
        seeding.put(rt, {"id": device_id} if device_id else name, path, data, mtime=0)


def seed_many(rt, name, paths, data=b"x"):
    """Many paths of the same content in one transaction (for listings)."""
    from sync import library
    sha256 = seeding.store_blob(rt.config, data)
    with database.connection_context():
        uid = auth.ensure_user(rt, name).id
        with write():
            database.execute_sql(
                "INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)",
                (sha256, len(data), rt.now()))
            for path in paths:
                library.apply_put(rt, uid, None, path, sha256, len(data), 1700000000, None)

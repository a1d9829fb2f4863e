"""Wiring: ``open_runtime(config)`` prepares the data directory, database and
secret; ``create_app(rt)`` builds the Falcon app with its routes, middleware
and error handlers. Nothing is opened at import time."""

import ctypes
import json
import logging
import time

import falcon

from . import blobs, bodygate, datadir, errors, fsutil, paths, web
from .auth import load_secret
from .db import database, init_db, meta_get, write
from .middleware import AccessLog, Auth, ClientAddress, Database, resolve_client
from .resources import (
    conflicts,
    devices,
    download,
    feed,
    history,
    login,
    meta,
    report,
    uploads,
    wait,
)
from .runtime import Runtime, new_id
from .web import pages as web_pages

log = logging.getLogger("sync")

API_PREFIXES = ("/api/v1/sync", "/api/sync")
PRIVATE_BLOBS = "private_blobs"  # meta key: every blob file has been made 0600
MARK_SQL = "INSERT OR IGNORE INTO meta (key, value) VALUES (:key, '1')"


def open_runtime(config, clock=time.time, idgen=new_id):
    """Create the data directory layout, open the database and load the secret."""
    datadir.prepare(config)
    changed = fsutil.tighten(config.data_dir, skip=(datadir.SECRET_NAME,))
    # SQLite creates a database 0644 (and its -wal and -shm files with the
    # database's mode): made 0600 first, it stays private.
    fsutil.create_private_file(config.path(datadir.DB_NAME))
    db_id = init_db(config.path(datadir.DB_NAME))
    with database.connection_context():
        if meta_get(PRIVATE_BLOBS) is None:
            # Once per data directory (blob files are made 0600 since).
            changed += fsutil.tighten_files(config.path(datadir.BLOBS_DIR))
            with write():
                database.execute_sql(MARK_SQL, {"key": PRIVATE_BLOBS})
    if changed:
        log.warning("took group and other permissions away from %d file(s) in %s "
                    "(the data directory is 0700, its files 0600)", len(changed),
                    config.data_dir)
    return Runtime(config=config, secret=load_secret(config), db_id=db_id,
                   clock=clock, idgen=idgen)


# glibc's malloc gives threads arenas of their own (up to 8 per core), and
# raises its mmap threshold to the largest block freed so far, after which
# even a large block (an scrypt hash) comes from an arena and stays there:
# a server that streamed a few large files, or hashed a burst of logins,
# stayed several times larger than it started (bench/memory.py; figures in
# bench/README.md). Two arenas keep transfer blocks (1 MiB at most) reused
# without a system call each; a fixed 4 MiB threshold sends larger blocks to
# mmap, returned to the system when freed.
M_ARENA_MAX, ARENA_MAX = -8, 2
M_MMAP_THRESHOLD, MMAP_THRESHOLD = -3, 4 * 1024 * 1024


def tune_malloc():
    """Cap glibc's arenas and fix its mmap threshold (a no-op elsewhere).
    True when both were set."""
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX)
                    and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def sync_routes(rt):
    """(template, resource) for every route under the sync prefixes."""
    return [
        ("/devices", devices.Collection(rt)),
        ("/devices/{device_id}", devices.Item(rt)),
        ("/devices/{device_id}/token", devices.Token(rt)),
        ("/devices/{device_id}/app-password", devices.AppPassword(rt)),
        ("/changes", feed.Changes(rt)),
        ("/changes/wait", wait.Wait(rt)),
        ("/ack", feed.Ack(rt)),
        ("/report", report.Report(rt)),
        ("/conflicts", conflicts.Collection(rt)),
        ("/conflicts/{conflict_id}/resolve", conflicts.Resolve(rt)),
        ("/upload", uploads.Collection(rt)),
        ("/upload/{upload_id}", uploads.Item(rt)),
        ("/upload/{upload_id}/chunks/{index}", uploads.Chunk(rt)),
        ("/upload/{upload_id}/complete", uploads.Complete(rt)),
        ("/download/{path:path}", download.Download(rt)),
        ("/history/{path:path}", history.History(rt)),
        ("/restore", history.Restore(rt)),
        ("/trash", history.Trash(rt)),
        ("/rewind", history.Rewind(rt)),
    ]


class Mount:
    """The Falcon app, with the WebDAV app beside it at ``/dav/`` (SPEC §10)."""

    def __init__(self, app, dav, prefix="/dav", trusted_proxies=(), body_gate=None):
        self.app = app
        self.dav = dav
        self.prefix = prefix
        self.trusted_proxies = trusted_proxies
        self.body_gate = body_gate  # installed by sync.httpserver.create_server

    def __call__(self, environ, start_response):
        bodygate.drop_credentials(environ)
        resolve_client(environ, self.trusted_proxies)  # environ["sync.client"]
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
            environ["PATH_INFO"] = path[len(self.prefix):] or "/"
            return self.dav(environ, start_response)
        return self.app(environ, start_response)

    def __getattr__(self, name):
        return getattr(self.app, name)


def create_app(rt):
    """The WSGI app for an opened ``Runtime``: the API, and WebDAV at ``/dav/``."""
    from .dav import DavApp

    return Mount(create_api(rt), DavApp(rt), trusted_proxies=rt.config.trusted_proxies,
                 body_gate=bodygate.BodyGate(rt))


def create_api(rt):
    """The Falcon app of the API."""
    middleware = [ClientAddress(rt), web.SecurityHeaders(), Database(), Auth(rt),
                  web.Sessions(rt)]
    if rt.config.access_log:
        middleware.insert(1, AccessLog())
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # ASCII-escaped JSON: a client string echoed back (a rejected path holding
    # a lone surrogate) cannot be encoded as UTF-8 and would turn an answer,
    # possibly to a request already committed, into an empty 500.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=json.dumps)
    app.add_route("/healthz", meta.Health())
    app.add_route("/api/v1/openapi.json", meta.OpenAPI())
    app.add_route("/api/v1/auth/login", login.Login(rt))
    for template, resource in sync_routes(rt):
        for prefix in API_PREFIXES:
            app.add_route(prefix + template, resource)
    page_routes, site = web_pages.routes(rt)
    for template, resource in page_routes:
        app.add_route(template, resource)
    app.add_error_handler(Exception, _unexpected_error(site))
    app.add_error_handler(falcon.HTTPError, _http_error(site))
    app.add_error_handler(errors.SyncError, _sync_error(site))
    app.add_error_handler(paths.PathError, _path_error(site))
    return app


def _render(resp, status, body, headers=None):
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


# Each handler answers a page of the web page with a page (``web.render_error``)
# and everything else with the one JSON error shape.

def _sync_error(site):
    def handle(req, resp, exc, params):
        if not web.render_error(site, req, resp, exc.status, exc.description, exc.headers):
            _render(resp, exc.status, exc.body(), exc.headers)
    return handle


def _path_error(site):
    def handle(req, resp, exc, params):
        """A library path the request names or sends that the library cannot hold."""
        error = errors.bad_request(errors.PATH_INVALID, str(exc))
        if not web.render_error(site, req, resp, 400, error.description):
            _render(resp, 400, error.body())
    return handle


def _http_error(site):
    def handle(req, resp, exc, params):
        """Falcon's own errors (unknown route, wrong method) in our shape, with a code."""
        body = exc.to_dict()
        status = exc.status_code
        body.setdefault("code", errors.DEFAULT_CODES.get(status, errors.ERROR))
        body.setdefault("description", body.get("title", ""))
        headers = dict(exc.headers or {})
        if not web.render_error(site, req, resp, status, body["description"], headers):
            _render(resp, status, body, headers)
    return handle


def _unexpected_error(site):
    full = _sync_error(site)

    def handle(req, resp, exc, params):
        if blobs.is_disk_full(exc):
            # A full disk (SQLITE_FULL, ENOSPC, EDQUOT, EFBIG from any open,
            # write, fallocate or fsync) is the server's state, not a bug:
            # 507, and it recovers by itself once space returns.
            log.warning("disk full on %s %s: %s", req.method, req.path, exc)
            return full(req, resp, errors.SyncError(
                507, errors.INSUFFICIENT_STORAGE,
                "The server's disk is full; try again later (reading still works)."),
                params)
        log.exception("unexpected error on %s %s", req.method, req.path)
        description = "The server failed; the error is in its log."
        if not web.render_error(site, req, resp, 500, description):
            _render(resp, 500, {"title": "Internal Server Error",
                                "description": description, "code": errors.INTERNAL})
    return handle

"""Falcon middleware: the thread's database connection, authentication,
and the access log."""

import logging
import time
import urllib.parse

from . import auth, devices, errors
from .db import database

access_log = logging.getLogger("sync.access")


class Database:
    """Give each server thread one connection, opened on its first request
    and kept: opening SQLite with its pragmas costs more than a small
    request itself. Transactions are the services' business
    (``sync.db.write``); a request never leaves one open."""

    def process_request(self, req, resp):
        database.connect(reuse_if_open=True)

    def process_response(self, req, resp, resource, req_succeeded):
        if not database.is_closed() and database.in_transaction():
            database.rollback()


class Auth:
    """Authenticate every route except those whose resource sets
    ``auth = False``; resolve the device the call acts for once
    (``req.context.device``, or None with the reason in
    ``req.context.device_refused``); record when a device was last seen."""

    def __init__(self, rt):
        self.rt = rt

    def process_resource(self, req, resp, resource, params):
        if resource is None or not getattr(resource, "auth", True):
            return
        principal = auth.authenticate(self.rt, req.get_header("Authorization"))
        req.context.principal = principal
        req.context.user_name = principal.user.name
        req.context.device, req.context.device_refused = None, None
        try:
            req.context.device = devices.acting_device(principal, req.get_header("X-Device-Id"))
        except errors.SyncError as exc:
            req.context.device_refused = exc  # the sync endpoints report it; others ignore it
        seen = principal.device or req.context.device
        if seen is not None:
            devices.touch(self.rt, seen)


class AccessLog:
    """One line per request: method, path, status, bytes, duration, user.
    The query string is left out and no header is logged, so no token is."""

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        started = req.context.get("started") or time.perf_counter()
        ms = (time.perf_counter() - started) * 1000
        user = req.context.get("user_name") or "-"
        # Percent-encoded again: a decoded %0A or space in a path would split
        # the line or shift its fields, and forge log lines.
        path = urllib.parse.quote(req.path, safe="/:@!$&'()*+,;=-._~")
        access_log.info("%s %s %s %.1fms user=%s", req.method, path,
                        resp.status_code if hasattr(resp, "status_code") else resp.status,
                        ms, user)

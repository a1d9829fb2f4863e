"""Falcon middleware: the client's address, the thread's database
connection, authentication, and the access log."""

import ipaddress
import logging
import time
import urllib.parse

from . import auth, devices, errors
from .db import database

access_log = logging.getLogger("sync.access")


# Proxy headers the app drops unless they come from a trusted proxy, so that
# nothing downstream can be fooled by a client's own.
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
                  "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_BY", "HTTP_X_REAL_IP",
                  "HTTP_FORWARDED")


def _ip(text):
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except (ValueError, AttributeError):
        return None


def client_address(env, trusted):
    """The client's address: the socket's peer, or the last hop of
    ``X-Forwarded-For`` when the peer is one of the ``trusted`` networks."""
    peer = env.get("REMOTE_ADDR") or "-"
    peer_ip = _ip(peer)
    if peer_ip is not None and getattr(peer_ip, "ipv4_mapped", None):
        peer_ip = peer_ip.ipv4_mapped
    if peer_ip is None or not any(peer_ip in net for net in trusted):
        return peer
    forwarded = env.get("HTTP_X_FORWARDED_FOR", "")
    hop = _ip(forwarded.split(",")[-1]) if forwarded else None
    return str(hop) if hop is not None else peer


CLIENT_KEY = "sync.client"


def resolve_client(environ, trusted):
    """Put the client's address in ``environ["sync.client"]`` (once) and
    drop the proxy headers; returns the address. WSGI apps beside the API
    (WebDAV) call this too."""
    if CLIENT_KEY not in environ:
        environ[CLIENT_KEY] = client_address(environ, trusted)
        for name in _PROXY_HEADERS:
            environ.pop(name, None)
    return environ[CLIENT_KEY]


class ClientAddress:
    """``req.context.client``: who is calling (SPEC §3, ``--trusted-proxies``).
    Proxy headers are removed from every request afterwards."""

    def __init__(self, rt):
        self.trusted = rt.config.trusted_proxies

    def process_request(self, req, resp):
        req.context.client = resolve_client(req.env, self.trusted)


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
    """One line per request: client address, method, path, status, duration,
    user. The query string is left out and no header is logged, so no token is."""

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        started = req.context.get("started") or time.perf_counter()
        ms = (time.perf_counter() - started) * 1000
        user = req.context.get("user_name") or "-"
        # Percent-encoded again: a decoded %0A or space in a path would split
        # the line or shift its fields, and forge log lines.
        path = urllib.parse.quote(req.path, safe="/:@!$&'()*+,;=-._~")
        access_log.info("%s %s %s %s %.1fms user=%s", req.context.get("client") or "-",
                        req.method, path,
                        resp.status_code if hasattr(resp, "status_code") else resp.status,
                        ms, user)

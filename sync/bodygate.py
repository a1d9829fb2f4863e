"""Which request bodies the server takes in before it knows who is calling.

waitress receives a request's whole body (in memory up to 512 KiB, in a
temporary file in ``TMPDIR`` beyond) before it calls the app. Without a
check between the headers and the body, any connection could park a body
as large as the largest file the server accepts (a WebDAV PUT carries a
whole file) without ever logging in (SPEC §6).

So once a request's headers have arrived, a body over ``SMALL_BODY`` (or of
unknown length) is taken only from a request whose credentials hold: a
token, an app password at ``/dav/``, or a web page session. A request whose
credentials do not hold has its body read and dropped as it arrives (or,
when it asked ``Expect: 100-continue``, not read at all) and reaches the app
with its credentials taken away, so the app answers 401 in its own way
(JSON, WebDAV, or the login page). A failed app-password login here counts
towards the login throttling like any other.

The body of a WebDAV PUT whose credentials hold is not left to waitress's
temporary file either: it is written into a spool file of the data
directory as it arrives, and hashed on the way (``blobs.SpoolWriter``),
which the PUT then takes over, so its bytes are written to disk once.

``install(server, gate)`` puts the check into a waitress server. The check
runs on waitress's network thread: it only reads the database (one indexed
row), never writes.
"""

import functools
import http.cookies
import io
import logging

from waitress.parser import HTTPRequestParser

from . import auth, blobs, errors
from .datadir import SPOOL_DIR
from .dav.app import Refused, basic_login
from .db import database
from .middleware import client_address
from .web import sessions

log = logging.getLogger("sync")

# Bodies up to this size are taken from anyone: logins and registrations
# are far smaller, and a thousand connections holding one each stay in memory.
SMALL_BODY = 64 * 1024
# Room for the headers of a multipart body or a JSON envelope around a chunk.
ENVELOPE = 64 * 1024
DAV_PREFIX = "/dav"
# The parser's mark on a request whose body was dropped, as waitress names
# headers (a client's own header of that name is removed first).
DROPPED_HEADER = "SYNC_BODY_DROPPED"
DROPPED_ENVIRON = "HTTP_" + DROPPED_HEADER


def body_limits(config):
    """(largest body of an API or page request, largest WebDAV PUT body)."""
    api = max(config.max_chunk_size, 2 * 1024 * 1024) + ENVELOPE
    return api, max(api, config.max_file_size + ENVELOPE)


def _is_dav(path):
    return path == DAV_PREFIX or path.startswith(DAV_PREFIX + "/")


class BodyGate:
    """Decides, from a request's headers, how large a body it may send."""

    def __init__(self, rt):
        self.rt = rt
        # The server's one login throttle (sync.throttle).
        self.throttle = rt.login_throttle
        self.api_limit, self.dav_limit = body_limits(rt.config)

    def limit(self, method, path, headers, peer):
        """(largest body this request may send, whether its credentials hold)."""
        limit = self.dav_limit if method == "PUT" and _is_dav(path) else self.api_limit
        try:
            database.connect(reuse_if_open=True)
            return limit, self._vouched(path, headers, peer)
        except Exception:  # the network thread must go on whatever happens
            log.exception("checking the credentials of %s %s failed", method, path)
            return limit, False

    def spool_for(self, method, path, length):
        """A ``blobs.SpoolWriter`` to receive the body of a WebDAV PUT whose
        credentials held straight into the spool (``length`` None: chunked),
        or None to leave the body to waitress (then the app answers 413 or
        507 as its limits say)."""
        config = self.rt.config
        if method != "PUT" or not _is_dav(path) or (length or 0) > config.max_file_size:
            return None
        try:
            room = blobs.free_bytes(config.path(SPOOL_DIR)) - config.min_free
            if length is not None and room < length:
                return None  # the app refuses it (507) before reading it
            return blobs.SpoolWriter(config, self.rt.idgen(), room)
        except OSError:
            log.warning("cannot open a spool file for %s %s; waitress buffers the body",
                        method, path, exc_info=True)
            return None

    def _vouched(self, path, headers, peer):
        scheme, _, value = headers.get("AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer":
            try:
                auth.authenticate(self.rt, headers["AUTHORIZATION"], create=False)
            except errors.SyncError:
                return False
            return True
        if scheme.lower() == "basic" and _is_dav(path):
            env = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": headers.get("X_FORWARDED_FOR")}
            address = client_address(env, self.rt.config.trusted_proxies)
            try:
                basic_login(self.throttle, value, address)
            except Refused:
                return False
            return True
        return self._web_session(headers.get("COOKIE", ""))

    def _web_session(self, cookie_header):
        try:
            morsel = http.cookies.SimpleCookie(cookie_header).get(sessions.COOKIE)
        except http.cookies.CookieError:
            return False
        return morsel is not None and sessions.find(self.rt, morsel.value) is not None


def drop_credentials(environ):
    """For a request whose body the parser dropped: no credentials and no
    body reach the app, which answers 401 (or the login page)."""
    if environ.pop(DROPPED_ENVIRON, None) is None:
        return
    for name in ("HTTP_AUTHORIZATION", "HTTP_COOKIE"):
        environ.pop(name, None)
    environ["CONTENT_LENGTH"] = "0"
    environ["wsgi.input"] = io.BytesIO()


class _Limits:
    """waitress's settings with another ``max_request_body_size``."""

    def __init__(self, adj, max_request_body_size):
        self._adj = adj
        self.max_request_body_size = max_request_body_size

    def __getattr__(self, name):
        return getattr(self._adj, name)


class _Dropped:
    """A body buffer that keeps nothing (waitress's buffer interface)."""

    def append(self, data):
        pass

    def __len__(self):
        return 0

    def getfile(self):
        return io.BytesIO()

    def close(self):
        pass


class GatedParser(HTTPRequestParser):
    """waitress's request parser, asking ``gate`` after the headers."""

    def __init__(self, adj, gate, peer):
        super().__init__(adj)
        self.gate = gate
        self.peer = peer

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        self.headers.pop(DROPPED_HEADER, None)
        if self.body_rcv is None or (not self.chunked and self.content_length <= SMALL_BODY):
            return
        limit, vouched = self.gate.limit(self.command, self.path, self.headers, self.peer)
        self.adj = _Limits(self.adj, limit)
        if vouched:
            spool = self.gate.spool_for(self.command, self.path,
                                        None if self.chunked else self.content_length)
            if spool is not None:
                self.body_rcv.buf = spool
            return
        self.headers[DROPPED_HEADER] = "1"
        if self.expect_continue:
            # The client waits for "100 Continue" before it sends the body:
            # answer at once instead, and close the connection after it.
            self.body_rcv = None
            self.expect_continue = False
            self.headers["CONNECTION"] = "close"
        else:
            self.body_rcv.buf = _Dropped()


def install(server, gate):
    """Make every new connection of a waitress ``server`` parse its requests
    with ``GatedParser`` and ``gate``."""
    base = server.channel_class

    class Channel(base):
        def __init__(self, server, sock, addr, adj, map=None):
            super().__init__(server, sock, addr, adj, map)
            peer = addr[0] if isinstance(addr, tuple) and addr else "-"
            self.parser_class = functools.partial(GatedParser, gate=gate, peer=peer)

        def handle_close(self):
            # A request cut off halfway (the client went away, or timed out)
            # lets go of its body here: a spool file is removed at once.
            if self.request is not None:
                self.request.close()
                self.request = None
            super().handle_close()

    server.channel_class = Channel
    return server

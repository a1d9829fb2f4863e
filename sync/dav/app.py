"""The WSGI app served at ``/dav/`` (SPEC §10).

In front of WsgiDAV it checks the request path, authenticates the caller
(HTTP Basic with the user name and an app password, or a Bearer device
token; never the account password), counts failed logins towards the login
throttle, records the device as seen, and serves ``GET``/``HEAD`` of files
itself, the way ``/download`` does: single ranges, the quoted sha256 as
ETag, conditional requests, and the blob streamed through the server's
``wsgi.file_wrapper`` (WsgiDAV's generic path copies 8 KiB blocks through
three generators). Everything else goes to WsgiDAV with our provider.
"""

import base64
import json
import logging
import mimetypes
import time
import urllib.parse
from email.utils import parsedate_to_datetime

from wsgidav import util
from wsgidav.error_printer import ErrorPrinter
from wsgidav.wsgidav_app import WsgiDAVApp

from .. import auth, blobs, devices, errors
from ..db import database
from ..resources.download import _etag_matches, _if_range_holds, _last_modified, byte_range
from .provider import Context, File, LibraryProvider
from .server import CappedLockStorage, Resolver

log = logging.getLogger("sync.dav")
access_log = logging.getLogger("sync.access")

MOUNT = "/dav"
REALM = "sync"


def _answer(start_response, status, code, description, headers=()):
    body = json.dumps({"title": errors.TITLES.get(status, "Error"),
                       "description": description, "code": code}).encode("ascii")
    start_response(f"{status} {_REASONS.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
                   + list(headers))
    return [body]


_REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified", 400: "Bad Request",
            401: "Unauthorized", 404: "Not Found", 412: "Precondition Failed",
            416: "Range Not Satisfiable", 429: "Too Many Requests"}


class Refused(Exception):
    def __init__(self, status, code, description, headers=()):
        super().__init__(description)
        self.status, self.code, self.description, self.headers = status, code, description, headers


def _unauthorized(description):
    return Refused(401, errors.UNAUTHORIZED, description,
                    [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')])


def basic_login(throttle, value, address):
    """The device whose app password logs in with the Basic credentials
    ``value`` from ``address``. Raises ``Refused``: 429 while ``throttle``
    holds the name or the address back (the password is not checked), 401
    for anything else, counted as a failed login."""
    credentials = auth.basic_credentials(value)
    if credentials is None:
        raise _unauthorized("The Basic credentials must be base64 of UTF-8 'name:password'.")
    name, password = credentials
    key = auth.normalize_user_name(name) or name
    wait = throttle.retry_after(key, address)
    if wait:
        raise Refused(429, errors.TOO_MANY_ATTEMPTS,
                       f"Too many failed logins; try again in {wait} seconds.",
                       [("Retry-After", str(wait))])
    device = auth.app_password_device(name, password)
    if device is None:
        throttle.failed(key, address, "WebDAV login")
        raise _unauthorized("Wrong user name or app password (the account password is not "
                            "accepted here: make an app password for the device).")
    return device


def dav_config(provider):
    return {
        "provider_mapping": {"/": provider},
        "mount_path": MOUNT,
        "middleware_stack": [ErrorPrinter, Resolver],
        "lock_storage": CappedLockStorage(),
        "property_manager": None,
        "verbose": 1,
        "logging": {"enable": False},
        "hotfixes": {"re_encode_path_info": False},
        "dir_browser": {"enable": False},
        "http_authenticator": {"domain_controller": None, "accept_basic": False,
                               "accept_digest": False},
        "add_header_MS_Author_Via": True,
        "suppress_version_info": True,
        "block_size": blobs.BLOCK,
    }


class DavApp:
    """``/dav/``: authentication, GET/HEAD of files, and WsgiDAV."""

    def __init__(self, rt):
        self.rt = rt
        # The server's one login throttle: guesses here and at
        # /api/v1/auth/login count together (sync.throttle).
        self.throttle = rt.login_throttle
        self.provider = LibraryProvider(rt)
        self.wsgidav = WsgiDAVApp(dav_config(self.provider))

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        database.connect(reuse_if_open=True)
        start_response = self._logged(environ, start_response, started)
        try:
            ctx = self._authenticate(environ)
            self._check_path(environ)
        except Refused as exc:
            self._end()
            return _answer(start_response, exc.status, exc.code, exc.description, exc.headers)
        environ["sync.dav"] = ctx
        environ["wsgidav.auth.user_name"] = ctx.user.name
        environ["wsgidav.auth.realm"] = REALM
        environ["wsgidav.auth.roles"] = []
        environ["wsgidav.auth.permissions"] = []
        if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            environ["wsgidav.provider"] = self.provider
            environ["wsgidav.config"] = self.wsgidav.config
            res = self.provider.get_resource_inst(environ["PATH_INFO"], environ)
            if isinstance(res, File):
                try:
                    return self._send(environ, start_response, res)
                except Refused as exc:
                    return _answer(start_response, exc.status, exc.code, exc.description,
                                   exc.headers)
                finally:
                    self._end()
        return self._iterate(self.wsgidav(environ, start_response))

    def _iterate(self, app_iter):
        try:
            yield from app_iter
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
            self._end()

    @staticmethod
    def _end():
        if not database.is_closed() and database.in_transaction():
            database.rollback()

    def _logged(self, environ, start_response, started):
        if not self.rt.config.access_log:
            return start_response

        def logging_start_response(status, headers, exc_info=None):
            ctx = environ.get("sync.dav")
            path = urllib.parse.quote(MOUNT + environ.get("PATH_INFO", ""),
                                      safe="/:@!$&'()*+,;=-._~")
            access_log.info("%s %s %s %.1fms user=%s", environ["REQUEST_METHOD"], path,
                            status.split(" ", 1)[0], (time.perf_counter() - started) * 1000,
                            ctx.user.name if ctx else "-")
            return start_response(status, headers, exc_info)
        return logging_start_response

    @staticmethod
    def _check_path(environ):
        """PATH_INFO as UTF-8 text; ``.`` and ``..`` segments are refused (400)."""
        try:
            path = util.re_encode_wsgi(environ.get("PATH_INFO", "") or "/")
        except UnicodeError:
            raise Refused(400, errors.PATH_INVALID, "The path is not UTF-8.") from None
        if any(part in (".", "..") for part in path.split("/")):
            raise Refused(400, errors.PATH_INVALID, "The path has a '.' or '..' segment.")
        environ["PATH_INFO"] = path
        destination = environ.get("HTTP_DESTINATION")
        if destination:
            environ["HTTP_DESTINATION"] = _same_server(destination, environ)

    def _authenticate(self, environ):
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            try:
                principal = auth.authenticate(self.rt, header)
            except errors.SyncError as exc:
                raise _unauthorized(exc.description) from None
            if not principal.is_device:
                raise _unauthorized("WebDAV acts for a device: log in with an app password "
                                    "or a device token, not a user token.")
            user, device = principal.user, principal.device
        elif scheme.lower() == "basic":
            address = environ.get("sync.client") or environ.get("REMOTE_ADDR", "-")
            device = basic_login(self.throttle, value, address)
            user = device.user
        else:
            raise _unauthorized("Log in with your user name and an app password.")
        devices.touch(self.rt, device)
        return Context(self.rt, user, device)

    def _send(self, environ, start_response, res):
        """A file's content as ``/download`` sends it."""
        etag = f'"{res.sha256}"'
        last_modified, http_date = _last_modified(res.mtime, res.changed_at)
        headers = [("ETag", etag), ("Last-Modified", http_date), ("Accept-Ranges", "bytes"),
                   ("Repr-Digest",
                    "sha-256=:" + base64.b64encode(bytes.fromhex(res.sha256)).decode() + ":")]
        if_match = environ.get("HTTP_IF_MATCH")
        if if_match is not None and not (if_match.strip() == "*" or etag in [
                t.strip() for t in if_match.split(",")]):
            raise Refused(412, errors.PRECONDITION_FAILED,
                           "If-Match does not match the current ETag.")
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is not None:
            if _etag_matches(if_none_match, etag):
                start_response("304 Not Modified", headers)
                return [b""]
        elif environ.get("HTTP_IF_MODIFIED_SINCE") and last_modified is not None:
            try:
                since = parsedate_to_datetime(environ["HTTP_IF_MODIFIED_SINCE"]).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                since = None
            if since is not None and int(last_modified) <= since:
                start_response("304 Not Modified", headers)
                return [b""]
        try:
            ranged = byte_range(environ.get("HTTP_RANGE"), res.size)
        except errors.SyncError as exc:
            raise Refused(exc.status, exc.code, exc.description,
                           list(exc.headers.items())) from None
        if ranged and environ.get("HTTP_IF_RANGE") is not None and not _if_range_holds(
                environ["HTTP_IF_RANGE"], etag, last_modified):
            ranged = None
        start, length = ranged or (0, res.size)
        headers.append(("Content-Type",
                        mimetypes.guess_type(res.lib_path)[0] or "application/octet-stream"))
        headers.append(("Content-Length", str(length)))
        status = "200 OK"
        if ranged:
            status = "206 Partial Content"
            headers.append(("Content-Range", f"bytes {start}-{start + length - 1}/{res.size}"))
        try:
            body = blobs.FileSlice(res.blob_path(), start, length)
        except FileNotFoundError:
            log.error("the blob %s of %r is missing from the data directory", res.sha256,
                      res.lib_path)
            raise Refused(404, errors.NOT_FOUND, "The content of this file is missing.") \
                from None
        if environ["REQUEST_METHOD"] == "HEAD":
            body.close()
            start_response(status, headers)
            return [b""]
        start_response(status, headers)
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(body, blobs.BLOCK)
        return blobs.read_blocks(body)


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _host(netloc, scheme):
    host, _, port = netloc.lower().rpartition(":") if ":" in netloc else (netloc.lower(), "", "")
    return host if port in ("", _DEFAULT_PORTS.get(scheme, "")) else f"{host}:{port}"


def _same_server(destination, environ):
    """A ``Destination`` on this server as a path: behind a TLS proxy the
    client writes ``https://`` while the request reached us over HTTP, and
    WsgiDAV would refuse the scheme (502). Another host stays as it is."""
    parts = urllib.parse.urlsplit(destination)
    if not parts.netloc:
        return destination
    here = environ.get("HTTP_HOST", "")
    if _host(parts.netloc, parts.scheme) in (_host(here, "http"), _host(here, "https")):
        return parts.path
    return destination

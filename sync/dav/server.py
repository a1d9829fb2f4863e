"""WsgiDAV's request handling, adjusted to SPEC §10 where it differs:

- ``PROPFIND`` with ``Depth: infinity`` (or no Depth) is 403 with the
  ``propfind-finite-depth`` precondition;
- ``PUT`` streams the body once into the blob store through
  ``sync.tree.received_body`` and applies it with ``sync.tree.put_file``, with
  ``X-OC-Mtime`` as the file's mtime (answered with ``X-OC-Mtime:
  accepted``) and ``If-Match``/``If-None-Match`` checked inside the write
  transaction;
- a PROPFIND answer is serialized a few hundred resources at a time into
  a temporary file and sent from there (WsgiDAV builds the whole
  multistatus tree first: 40 MiB for a folder of 10,000 files);
- a MOVE or COPY that made a new resource answers 201 (the provider does
  them natively, and WsgiDAV would answer 204);
- ``OPTIONS`` announces ``DAV: 1, 2``;
- locks last 30 minutes at most (WsgiDAV grants up to four weeks).
"""

import re
import tempfile

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_CREATED,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_NO_CONTENT,
    HTTP_NOT_FOUND,
    HTTP_NOT_IMPLEMENTED,
    HTTP_PRECONDITION_FAILED,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.lock_man.lock_storage import LockStorageDict
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_server import RequestServer
from wsgidav.util import etree

from .. import blobs, errors, tree
from .provider import Folder, dav_error, library_path

MAX_LOCK_SECONDS = 30 * 60
ANSWER_IN_MEMORY = 1024 * 1024  # a larger PROPFIND answer waits in a temporary file
_MTIME = re.compile(r"^-?[0-9]{1,15}(\.[0-9]*)?$")


class CappedLockStorage(LockStorageDict):
    """In-memory locks (a restart forgets them) of at most 30 minutes."""

    @staticmethod
    def _cap(timeout):
        if timeout is None or float(timeout) < 0 or float(timeout) > MAX_LOCK_SECONDS:
            return MAX_LOCK_SECONDS
        return timeout

    def create(self, path, lock):
        lock["timeout"] = self._cap(lock.get("timeout"))
        return super().create(path, lock)

    def refresh(self, token, *, timeout):
        return super().refresh(token, timeout=self._cap(timeout))


def etag_list(header):
    """The entity tags of an ``If-Match``/``If-None-Match`` header, unquoted
    (``W/`` dropped), or None without the header."""
    if header is None:
        return None
    return [t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()]


def oc_mtime(environ):
    """``X-OC-Mtime`` as integer epoch seconds, None when absent; 400 when garbled."""
    value = environ.get("HTTP_X_OC_MTIME")
    if value is None:
        return None
    value = value.strip()
    if not _MTIME.match(value):
        raise DAVError(HTTP_BAD_REQUEST, context_info="X-OC-Mtime must be epoch seconds.")
    return int(float(value))


class DavServer(RequestServer):
    def __init__(self, dav_provider):
        super().__init__(dav_provider)
        self.allow_propfind_infinite = False

    def _send_response(self, environ, start_response, root_res, success_code, error_list):
        if success_code == HTTP_NO_CONTENT and environ["sync.dav"].created and not error_list:
            success_code = HTTP_CREATED
        return super()._send_response(environ, start_response, root_res, success_code,
                                      error_list)

    def do_OPTIONS(self, environ, start_response):
        def announce(status, headers, exc_info=None):
            headers = [(k, "1, 2" if k.lower() == "dav" else v) for k, v in headers]
            return start_response(status, headers, exc_info)
        return super().do_OPTIONS(environ, announce)

    def do_PROPFIND(self, environ, start_response):
        path = environ["PATH_INFO"]
        res = self._davProvider.get_resource_inst(path, environ)
        depth = environ.setdefault("HTTP_DEPTH", "infinity")
        if depth not in ("0", "1", "infinity"):
            self._fail(HTTP_BAD_REQUEST, context_info=f"Invalid Depth header: {depth!r}.")
        if depth == "infinity":
            self._fail(HTTP_FORBIDDEN, context_info="Depth: infinity is not served; use 0 or 1.",
                       err_condition=PRECONDITION_CODE_PropfindFiniteDepth)
        if res is None:
            self._fail(HTTP_NOT_FOUND, context_info=path)
        self._evaluate_if_headers(res, environ)
        request = util.parse_xml_body(environ, allow_empty=True)
        mode, names = "allprop", None
        if request is not None:
            if request.tag != "{DAV:}propfind":
                self._fail(HTTP_BAD_REQUEST)
            mode, names = _propfind_mode(request, self._fail)
        # The answer is written a list of members at a time into a temporary
        # file (in memory while small) and sent from there with its length:
        # a folder of any size costs one list in memory, and the connection
        # stays open (WsgiDAV closes it after an answer without a length).
        if depth == "1" and isinstance(res, Folder):
            batches = res.iter_members()
        elif depth == "1" and res.is_collection:
            batches = iter([res.get_member_list()])
        else:
            batches = iter(())
        body = tempfile.SpooledTemporaryFile(max_size=ANSWER_IN_MEMORY)
        try:
            body.write(_HEAD + _responses([res], mode, names))
            for batch in batches:
                body.write(_responses(batch, mode, names))
            body.write(_TAIL)
            length = body.tell()
            body.seek(0)
        except OSError as exc:
            body.close()
            if blobs.is_disk_full(exc):
                self._fail(HTTP_INSUFFICIENT_STORAGE,
                           context_info="The server's temporary space is full.")
            raise
        except BaseException:
            body.close()
            raise
        start_response("207 Multi-Status", [("Content-Type", "application/xml; charset=utf-8"),
                                            ("Date", util.get_rfc1123_time()),
                                            ("Content-Length", str(length))])
        return blobs.read_blocks(body)

    def do_PUT(self, environ, start_response):
        path = environ["PATH_INFO"]
        provider = self._davProvider
        ctx = environ["sync.dav"]
        res = provider.get_resource_inst(path, environ)
        parent = provider.get_resource_inst(util.get_uri_parent(path), environ)
        if "HTTP_CONTENT_ENCODING" in environ:
            self._fail(HTTP_NOT_IMPLEMENTED, context_info="Content-Encoding is not supported.")
        if "HTTP_CONTENT_RANGE" in environ:
            self._fail(HTTP_BAD_REQUEST, context_info="Content-Range is not allowed on PUT.")
        mtime = oc_mtime(environ)
        if res is not None and res.is_collection:
            self._fail(HTTP_CONFLICT, context_info="A folder is there: a file cannot replace it.")
        if not isinstance(parent, Folder):
            self._fail(HTTP_CONFLICT, context_info="The parent must be an existing folder.")
        try:
            lib = tree.library_path(library_path(path.split("/", 3)[3] if path.count("/") >= 3
                                               else ""))
        except errors.SyncError as exc:
            raise dav_error(exc) from None
        if_match = etag_list(environ.get("HTTP_IF_MATCH"))
        if_none_match = etag_list(environ.get("HTTP_IF_NONE_MATCH"))
        if res is None and if_match is not None:
            self._fail(HTTP_PRECONDITION_FAILED,
                       context_info="If-Match names an ETag, but no file is there.")
        self._evaluate_if_headers(res, environ)
        self._check_write_permission(res if res is not None else parent, "0", environ)
        length = environ.get("CONTENT_LENGTH")
        try:
            length = int(length) if length not in (None, "") else None
        except ValueError:
            self._fail(HTTP_BAD_REQUEST, context_info="Content-Length is not a number.")
        with self._write_transaction(res if res is not None else parent, environ):
            try:
                if length is not None:
                    tree.check_quota(ctx.rt, ctx.user.id, length)
                with tree.received_body(ctx.rt, environ["wsgi.input"].read, length,
                                        getattr(environ["wsgi.input"], "spooled", None)) as body:
                    spool_id, sha256, size = body
                    environ["wsgidav.all_input_read"] = 1
                    result = tree.put_file(
                        ctx.rt, ctx.user.id, ctx.device.id, lib, sha256, size,
                        int(ctx.rt.clock()) if mtime is None else mtime,
                        if_match=if_match, if_none_match=if_none_match, spool_id=spool_id)
            except errors.SyncError as exc:
                raise dav_error(exc) from None
        headers = [("ETag", f'"{sha256}"')]
        if mtime is not None:
            headers.append(("X-OC-Mtime", "accepted"))
        code = HTTP_CREATED if result["created"] else HTTP_NO_CONTENT
        return util.send_status_response(environ, start_response, code, add_headers=headers)


_HEAD = b'<?xml version="1.0" encoding="utf-8" ?>\n<ns0:multistatus xmlns:ns0="DAV:">'
_TAIL = b"</ns0:multistatus>"


def _responses(resources, mode, names):
    """The ``<response>`` elements of ``resources``, serialized one by one."""
    parts = []
    for res in resources:
        single = etree.Element("{DAV:}multistatus")
        props = res.get_properties(mode, name_list=names if mode == "named" else None)
        util.add_property_response(single, res.get_href(), props)
        parts.append(_element_bytes(single[0]))
    return b"".join(parts)




def _element_bytes(element):
    return etree.tostring(element, encoding="unicode").encode("utf-8")


def _propfind_mode(request, fail):
    """("allprop"|"name"|"named", names) of a PROPFIND body (RFC 4918 §9.1)."""
    mode, names = None, []
    for node in request:
        if node.tag == "{DAV:}allprop":
            if mode:
                fail(HTTP_BAD_REQUEST)
            mode = "allprop"
        elif node.tag == "{DAV:}name":
            if mode:
                fail(HTTP_BAD_REQUEST)
            mode = "name"
        elif node.tag == "{DAV:}prop":
            if mode not in (None, "named"):
                fail(HTTP_BAD_REQUEST)
            mode = "named"
            names.extend(prop.tag for prop in node)
    return mode or "allprop", names


class Resolver(BaseMiddleware):
    """The last of WsgiDAV's middleware: hands the request to ``DavServer``."""

    def __call__(self, environ, start_response):
        provider = environ["wsgidav.provider"]
        if provider is None:
            raise DAVError(404)
        app_iter = DavServer(provider)(environ, start_response)
        yield from app_iter
        if hasattr(app_iter, "close"):
            app_iter.close()

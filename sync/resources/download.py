"""``GET``/``HEAD /download/{path}``: the head content of a library path
(or, with ``?rev=R``, of a kept revision of it: SPEC §8),
with ``ETag``, ``Repr-Digest``, single byte ranges, ``If-Range`` and
``If-None-Match``. Several ranges in one request are answered with the whole
file (200), which RFC 9110 allows. The bytes are streamed from the blob file
through the server's ``wsgi.file_wrapper``."""

import base64
import logging
import mimetypes
import re
from email.utils import formatdate, parsedate_to_datetime

import falcon

from .. import blobs, errors, history, library
from ..paths import normalize
from ..runtime import parse_iso
from .common import principal

log = logging.getLogger("sync.download")

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# No file has 20 digits of bytes; a longer number (Python refuses to convert
# one over 4,300 digits at all) counts as "beyond any file".
_MAX_DIGITS = 19
_BEYOND = 10 ** _MAX_DIGITS
_ENCODED_SLASH = re.compile(r"%2f", re.IGNORECASE)


def library_path(req, path):
    """The normalized library path of the request. Falcon decodes ``%2F``
    into ``/`` before routing, so the raw request target (``REQUEST_URI``
    from waitress, ``RAW_URI`` from others) is checked for an encoded slash."""
    raw = req.env.get("REQUEST_URI") or req.env.get("RAW_URI") or ""
    target = raw.split("?", 1)[0]
    if _ENCODED_SLASH.search(target):
        raise errors.bad_request(errors.PATH_INVALID,
                                 "A path segment must not contain an encoded '/'.")
    return normalize(path)


def byte_range(header, size):
    """``(start, length)`` for a single satisfiable ``Range``; None to send
    the whole file (no header, several ranges, or one we do not parse);
    416 when the range is outside the file."""
    match = _RANGE.match(header.strip().replace(" ", "")) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        length = min(_number(last), size)
        if length == 0:
            raise _unsatisfiable(size)
        return size - length, length
    start = _number(first)
    end = size - 1 if last == "" else min(_number(last), size - 1)
    if last != "" and _number(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, end - start + 1


def _number(digits):
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else _BEYOND


def _unsatisfiable(size):
    return errors.SyncError(416, errors.RANGE_NOT_SATISFIABLE,
                            f"The range is outside the file's {size} bytes.",
                            headers={"Content-Range": f"bytes */{size}"})


def _etag_matches(header, etag):
    """``If-None-Match``: weak comparison against a list of entity tags."""
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def _if_range_holds(header, etag, last_modified):
    """``If-Range``: a strong ETag match, or the exact Last-Modified date."""
    header = header.strip()
    if header.startswith('"'):
        return header == etag
    try:
        return parsedate_to_datetime(header).timestamp() == last_modified
    except (TypeError, ValueError, IndexError, OverflowError):
        return False


def _last_modified(mtime, changed_at):
    """The entry's mtime as (seconds, HTTP date); the time of the change when
    the device reported none, or one no HTTP date can carry."""
    for seconds in (mtime, parse_iso(changed_at)):
        if seconds is None:
            continue
        try:
            return seconds, formatdate(seconds, usegmt=True)
        except (OverflowError, OSError, ValueError):
            continue
    return None, formatdate(0, usegmt=True)


class Download:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp, path):
        self._answer(req, resp, path, send_body=True)

    def on_head(self, req, resp, path):
        self._answer(req, resp, path, send_body=False)

    def _answer(self, req, resp, path, send_body):
        wanted = library_path(req, path)
        rev = req.get_param("rev")
        if rev is not None:
            head = history.revision_content(principal(req).user.id, wanted, rev)
            if head is None:
                raise errors.not_found(f"{wanted!r} has no kept version at revision {rev}.")
        else:
            head = library.head_content(principal(req).user.id, wanted)
        if head is None:
            raise errors.not_found(f"No file at {wanted!r}.")
        sha256, size, mtime, changed_at = head
        etag = f'"{sha256}"'
        last_modified, http_date = _last_modified(mtime, changed_at)
        resp.set_header("ETag", etag)
        resp.set_header("Last-Modified", http_date)
        resp.set_header("Accept-Ranges", "bytes")
        resp.set_header("Repr-Digest",
                        "sha-256=:" + base64.b64encode(bytes.fromhex(sha256)).decode() + ":")
        if req.get_header("If-None-Match") and _etag_matches(req.get_header("If-None-Match"), etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = mimetypes.guess_type(wanted)[0] or "application/octet-stream"
        ranged = byte_range(req.get_header("Range"), size)
        if ranged and req.get_header("If-Range") is not None and not _if_range_holds(
                req.get_header("If-Range"), etag, last_modified):
            ranged = None
        start, length = ranged or (0, size)
        if ranged:
            resp.status = falcon.HTTP_206
            resp.set_header("Content-Range", f"bytes {start}-{start + length - 1}/{size}")
        try:
            body = blobs.FileSlice(blobs.blob_path(self.rt.config, sha256), start, length)
        except FileNotFoundError:
            log.error("the blob %s of %r is missing from the data directory", sha256, wanted)
            raise errors.not_found(f"The content of {wanted!r} is missing.") from None
        resp.content_length = length
        if send_body:
            resp.stream = body
        else:
            body.close()


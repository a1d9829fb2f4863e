"""Opaque feed cursors: the database id and a revision, base64url-encoded.

A cursor from another database (a restored backup, a reinstall) decodes to
``cursor_expired`` so a client never silently syncs against the wrong
history; anything that does not decode is ``cursor_invalid``.
"""

import base64
import binascii
import re

from . import errors

_FORM = re.compile(r"^([0-9a-f]{16})\.(0|[1-9][0-9]{0,17})$")


def encode(db_id, rev):
    raw = f"{db_id}.{rev}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(db_id, cursor, current_rev=None):
    """The revision in ``cursor``; ``current_rev`` bounds what was ever issued."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 64:
        raise errors.bad_request(errors.CURSOR_INVALID, "The cursor is not one this server issued.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    match = _FORM.match(raw)
    if not match or encode(match.group(1), match.group(2)) != cursor:
        raise errors.bad_request(errors.CURSOR_INVALID, "The cursor is not one this server issued.")
    if match.group(1) != db_id:
        raise errors.bad_request(
            errors.CURSOR_EXPIRED,
            "The cursor comes from another database (the server was restored or "
            "reinstalled): list the library again from the beginning.")
    rev = int(match.group(2))
    if current_rev is not None and rev > current_rev:
        raise errors.bad_request(errors.CURSOR_INVALID, "The cursor is not one this server issued.")
    return rev

"""Web page sessions (SPEC §11): opened by a login with a password, kept in
SQLite (they survive a restart), ended by logout or after ``--token-ttl``.

The browser holds a random value in a cookie; the database holds only its
SHA-256, so a copy of the database opens no session. Each session has its
own CSRF token, which every change the page asks for must send back.

A session opened before the user's tokens were revoked (``app.py user
revoke``, a password change) is refused and deleted like an old login
token: its creation time is kept to the microsecond for that comparison.
"""

import hashlib
import hmac
import math
import secrets

from ..db import database, write
from ..runtime import iso, parse_iso

COOKIE = "sync_session"


def _key(value):
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class Session:
    """An open session: its user and CSRF token, and the one message (if
    any) to show on the next page."""

    __slots__ = ("key", "user_id", "user_name", "csrf", "expires_at", "flash")

    def __init__(self, key, user_id, user_name, csrf, expires_at, flash):
        self.key, self.user_id, self.user_name = key, user_id, user_name
        self.csrf, self.expires_at, self.flash = csrf, expires_at, flash

    def csrf_matches(self, sent):
        return isinstance(sent, str) and hmac.compare_digest(sent, self.csrf)


DROP_EXPIRED_SQL = "DELETE FROM web_sessions WHERE expires_at <= :now"
OPEN_SQL = """
    INSERT INTO web_sessions (id, user_id, csrf, created_at, expires_at)
    VALUES (:id, :user_id, :csrf, :created_at, :expires_at)
"""
# A session that has not expired, with its user's name and revocation time.
FIND_SQL = """
    SELECT s.id, s.user_id, u.name, s.csrf, s.expires_at, s.flash,
           s.created_at, u.tokens_revoked_at
    FROM web_sessions s JOIN users u ON u.id = s.user_id
    WHERE s.id = :id AND s.expires_at > :now
"""
CLOSE_SQL = "DELETE FROM web_sessions WHERE id = :id"
SET_FLASH_SQL = "UPDATE web_sessions SET flash = :flash WHERE id = :id"


def _created_stamp(ts):
    """ISO 8601 UTC with microseconds, rounded down (never later than ``ts``)."""
    whole = math.floor(ts)
    return f"{iso(whole)[:-1]}.{int((ts - whole) * 1_000_000):06d}Z"


def _created_time(stamp):
    """Epoch seconds of a ``_created_stamp`` (or of an ``iso`` stamp, as older
    sessions have: the start of their second)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return parse_iso(whole + "Z") + (int(fraction) / 1_000_000 if fraction else 0)


def open_session(rt, user_id):
    """A new session for ``user_id``; returns the cookie value (shown once).
    Expired sessions of every user are removed on the way."""
    value = secrets.token_urlsafe(32)
    now = rt.clock()
    with write():
        database.execute_sql(DROP_EXPIRED_SQL, {"now": iso(now)})
        database.execute_sql(OPEN_SQL, {
            "id": _key(value), "user_id": user_id, "csrf": secrets.token_urlsafe(32),
            "created_at": _created_stamp(now), "expires_at": iso(now + rt.config.token_ttl)})
    return value


def find(rt, value):
    """The open session of a cookie value, or None (unknown, ended, expired,
    or opened before the user's tokens were revoked: then it is deleted)."""
    if not value or len(value) > 100:
        return None
    row = database.execute_sql(FIND_SQL, {"id": _key(value), "now": rt.now()}).fetchone()
    if row is None:
        return None
    *fields, created_at, revoked_at = row
    if revoked_at is not None and _created_time(created_at) < revoked_at:
        with write():
            database.execute_sql(CLOSE_SQL, {"id": fields[0]})
        return None
    return Session(*fields)


def close(session):
    """Logout: the session ends on the server."""
    with write():
        database.execute_sql(CLOSE_SQL, {"id": session.key})


def set_flash(session, message):
    """Keep ``message`` for the next page this session shows."""
    with write():
        database.execute_sql(SET_FLASH_SQL, {"flash": message, "id": session.key})


def take_flash(session):
    """The message waiting for this page (then gone), or None."""
    message = session.flash
    if message is not None:
        with write():
            database.execute_sql(SET_FLASH_SQL, {"flash": None, "id": session.key})
        session.flash = None
    return message

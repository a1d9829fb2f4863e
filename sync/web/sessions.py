"""Web page sessions (SPEC §11): opened by a login with a password, kept in
SQLite (they survive a restart), ended by logout or after ``--token-ttl``.

The browser holds a random value in a cookie; the database holds only its
SHA-256, so a copy of the database opens no session. Each session has its
own CSRF token, which every change the page asks for must send back.
"""

import hashlib
import hmac
import secrets

from ..db import database, write
from ..runtime import iso

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


def open_session(rt, user_id):
    """A new session for ``user_id``; returns the cookie value (shown once).
    Expired sessions of every user are removed on the way."""
    value = secrets.token_urlsafe(32)
    now = rt.clock()
    with write():
        database.execute_sql("DELETE FROM web_sessions WHERE expires_at <= ?", (iso(now),))
        database.execute_sql(
            "INSERT INTO web_sessions (id, user_id, csrf, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (_key(value), user_id, secrets.token_urlsafe(32), iso(now),
             iso(now + rt.config.token_ttl)))
    return value


def find(rt, value):
    """The open session of a cookie value, or None (unknown, ended or expired)."""
    if not value or len(value) > 100:
        return None
    row = database.execute_sql(
        "SELECT s.id, s.user_id, u.name, s.csrf, s.expires_at, s.flash "
        "FROM web_sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.id = ? AND s.expires_at > ?", (_key(value), rt.now())).fetchone()
    return None if row is None else Session(*row)


def close(session):
    """Logout: the session ends on the server."""
    with write():
        database.execute_sql("DELETE FROM web_sessions WHERE id = ?", (session.key,))


def set_flash(session, message):
    """Keep ``message`` for the next page this session shows."""
    with write():
        database.execute_sql("UPDATE web_sessions SET flash = ? WHERE id = ?",
                             (message, session.key))


def take_flash(session):
    """The message waiting for this page (then gone), or None."""
    message = session.flash
    if message is not None:
        with write():
            database.execute_sql("UPDATE web_sessions SET flash = NULL WHERE id = ?",
                                 (session.key,))
        session.flash = None
    return message

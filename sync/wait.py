"""Waiting for changes (SPEC §9): ``POST /changes/wait`` answers as soon as
the user's library changes after a cursor, or once its timeout passes.

A waiting request holds a server thread, so waiters are counted and capped
(``--max-waiters``); the server runs that many threads more than
``--threads`` so they never take the threads other requests need. Waiters
sleep on a condition of their user; every library write commits through
``sync.library``'s unit of work, which calls ``Waiters.notify`` after the
commit. A woken waiter checks the user's head against its cursor once (an
indexed probe): the database is never polled in a loop, and waiting writes
nothing to it.
"""

import contextlib
import threading
import time

from . import errors, feed
from .db import database

DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 55
# How long past the cap a client waits before its next wait.
BACKOFF_S = 10
# How often a waiter looks whether its client went away (no database access).
DISCONNECT_CHECK_S = 1.0


class _User:
    """The waiters of one user: a condition on the shared lock and a
    generation that every commit of the user's changes moves on."""

    __slots__ = ("cond", "generation", "count")

    def __init__(self, lock):
        self.cond = threading.Condition(lock)
        self.generation = 0
        self.count = 0


class Waiters:
    """Who waits for whose changes, and the wake-up after a commit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = {}
        self.count = 0
        self.closed = False

    def close(self):
        """The server is stopping: wake every waiter, and every wait from now
        on answers at once (``{"changes": false}``)."""
        with self._lock:
            self.closed = True
            for user in self._users.values():
                user.cond.notify_all()

    def notify(self, user_id):
        """Wake the requests waiting for ``user_id``'s changes (call after commit)."""
        with self._lock:
            user = self._users.get(user_id)
            if user is not None:
                user.generation += 1
                user.cond.notify_all()

    @contextlib.contextmanager
    def slot(self, user_id, limit):
        """A place among at most ``limit`` waiters: yields a ``_Ticket``, or
        None when every place is taken."""
        with self._lock:
            if self.count >= limit:
                ticket = None
            else:
                self.count += 1
                user = self._users.get(user_id)
                if user is None:
                    user = self._users[user_id] = _User(self._lock)
                user.count += 1
                ticket = _Ticket(user, lambda: self.closed)
        if ticket is None:
            yield None
            return
        try:
            yield ticket
        finally:
            with self._lock:
                self.count -= 1
                user.count -= 1
                if not user.count:
                    del self._users[user_id]


class _Ticket:
    def __init__(self, user, closed):
        self._user = user
        self.seen = user.generation  # read under the lock, at registration
        self.closed = closed

    def wait(self, timeout):
        """Sleep until a commit of the user's changes after the last look,
        or ``timeout`` seconds; True when there was one."""
        user = self._user
        with user.cond:
            if user.generation == self.seen and not self.closed():
                user.cond.wait(timeout)
            changed = user.generation != self.seen
            self.seen = user.generation
        return changed


def _parse(body):
    cursor = body.get("cursor")
    if cursor is None:
        raise errors.bad_request(errors.BODY_INVALID,
                                 "'cursor' is required: a cursor from the feed.")
    if not isinstance(cursor, str):
        raise errors.bad_request(errors.BODY_INVALID, "'cursor' must be a string.")
    timeout = body.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int) \
            or not 1 <= timeout <= MAX_TIMEOUT_S:
        raise errors.bad_request(
            errors.BODY_INVALID,
            f"'timeout' must be an integer number of seconds from 1 to {MAX_TIMEOUT_S}.")
    return cursor, timeout


def _has_changes(user_id, after):
    """Whether the user's library has an entry changed after rev ``after``.
    The rows are read to the end, so no read snapshot stays open while the
    request sleeps (it would keep SQLite from checkpointing its WAL)."""
    return bool(database.execute_sql(
        feed.CHANGED_AFTER_SQL, {"user_id": user_id, "rev": after}).fetchall())


def _release_page_cache():
    """A sleeping thread needs no page cache: give its memory back."""
    database.execute_sql("PRAGMA shrink_memory").fetchall()


def feed_position(rt, user_id, cursor):
    """The rev after which the feed lists changes for ``cursor``, with the
    feed's cursor errors (``cursor_invalid``, ``cursor_expired``)."""
    with database.atomic():  # one snapshot, as the feed reads it
        after, listing = feed.decode_cursor(rt, cursor)
        horizon = database.execute_sql(feed.HORIZON_SQL, {"user_id": user_id}).fetchone()[0]
    if not listing and after < horizon:
        raise errors.bad_request(
            errors.CURSOR_EXPIRED,
            "Deletions after this cursor have been purged: list the library "
            "again from the beginning.")
    return after


def wait(rt, user_id, body, disconnected=lambda: False, monotonic=time.monotonic):
    """``{"changes": true}`` once the user's library has a change after
    ``body["cursor"]``, ``{"changes": false}`` after ``body["timeout"]``
    seconds or when ``disconnected()`` turns true, and ``{"changes": false,
    "backoff": N}`` at once when ``--max-waiters`` requests already wait."""
    cursor, timeout = _parse(body)
    after = feed_position(rt, user_id, cursor)
    if _has_changes(user_id, after):
        return {"changes": True}
    deadline = monotonic() + timeout
    with rt.waiters.slot(user_id, rt.config.max_waiters) as ticket:
        if ticket is None:
            return {"changes": False, "backoff": BACKOFF_S}
        # A commit between the probe above and the registration: look again.
        if _has_changes(user_id, after):
            return {"changes": True}
        _release_page_cache()
        while True:
            remaining = deadline - monotonic()
            if remaining <= 0 or disconnected() or rt.waiters.closed:
                return {"changes": False}
            if ticket.wait(min(remaining, DISCONNECT_CHECK_S)) and _has_changes(user_id, after):
                return {"changes": True}

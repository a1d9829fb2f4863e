"""Throttling of password guesses (SPEC §3): after 10 failed logins for one
user name, or 50 from one client address, within 10 minutes, further
attempts for that name or from that address are refused with 429
``too_many_attempts`` and ``Retry-After`` until the window has passed,
without checking the password.

One ``LoginThrottle`` lives on the ``Runtime`` (``rt.login_throttle``) and
every way of logging in with a password goes through it::

    rt.login_throttle.check(name, address)    # SyncError 429 when locked out
    if not password_ok:
        rt.login_throttle.failed(name, address)  # counts and logs the failure

It is kept in memory: the server is one process, and a restart forgetting
the counts costs an attacker a restart they cannot cause.
"""

import collections
import logging
import math
import threading
import urllib.parse

from . import errors

log = logging.getLogger("sync.auth")

WINDOW_S = 600
FAILURES_PER_NAME = 10
FAILURES_PER_ADDRESS = 50
# A flood of made-up names must not grow memory without bound: beyond this
# many keys the ones whose last failure is oldest are forgotten.
MAX_KEYS = 100_000


class Window:
    """Failure times per key within a sliding window, at most ``limit``
    kept per key (the older ones cannot matter)."""

    def __init__(self, limit, window_s, clock, max_keys=MAX_KEYS):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._times = collections.OrderedDict()

    def _recent(self, key, now):
        times = self._times.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._times[key]
            return None
        return times

    def retry_after(self, key, now):
        """Seconds until ``key`` may try again, or 0 when it may now."""
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[0] + self.window_s - now))

    def add(self, key, now):
        times = self._recent(key, now)
        if times is None:
            times = self._times[key] = collections.deque(maxlen=self.limit)
        times.append(now)
        self._times.move_to_end(key)
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)


def shown(text):
    """``text`` safe for one log line: percent-encoded but for letters,
    digits and ``@._-`` (a name tried may hold anything)."""
    raw = str(text).encode("utf-8", "backslashreplace")  # a lone surrogate too
    return urllib.parse.quote(raw, safe="@._-:") or '""'


class LoginThrottle:
    """Failed-login counts per user name and per client address."""

    def __init__(self, clock, window_s=WINDOW_S, per_name=FAILURES_PER_NAME,
                 per_address=FAILURES_PER_ADDRESS):
        self.clock = clock
        self._lock = threading.Lock()
        self._names = Window(per_name, window_s, clock)
        self._addresses = Window(per_address, window_s, clock)

    def retry_after(self, name, address):
        """Seconds until ``name`` (None: any) may try again from ``address``;
        0 when it may now."""
        now = self.clock()
        with self._lock:
            return max(self._addresses.retry_after(address, now),
                       self._names.retry_after(_key(name), now) if name is not None else 0)

    def check(self, name, address):
        """Raise 429 ``too_many_attempts`` (with ``Retry-After``) while the
        name or the address is locked out; ``name`` may be None."""
        wait = self.retry_after(name, address)
        if wait:
            raise errors.SyncError(
                429, errors.TOO_MANY_ATTEMPTS,
                f"Too many failed logins for this name or from this address; try again "
                f"in {wait} seconds.", headers={"Retry-After": str(wait)})

    def failed(self, name, address, how="login"):
        """Count a failed attempt and log it on one line (for fail2ban)."""
        now = self.clock()
        with self._lock:
            self._addresses.add(address, now)
            if name is not None:
                self._names.add(_key(name), now)
        log.warning("failed %s from %s for user %s", how, shown(address), shown(name))


def _key(name):
    return name if isinstance(name, str) else repr(name)

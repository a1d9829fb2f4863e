"""``sync --watch``: keep a folder in sync as things change, on either side.

Local edits arrive as file-system events (watchdog: inotify, FSEvents,
ReadDirectoryChanges; a polling observer every ``--interval`` where none
can be had). A pass starts once the folder has been quiet for
``SETTLE_S``, so a file still being written is synced once, when it
settles (and at least every ``MAX_HOLD_S`` for a folder that never
settles). Events the client's own writes cause are recognised by a local
look at the folder against what was last synced, which costs no request.

Remote edits arrive through ``POST /changes/wait``, held open by a thread of
its own with the cursor of the last pass: the server answers as soon as the
library changes, and an idle client makes one request per wait timeout.

Failures (the server restarting, the network gone) are retried with a
backoff that doubles up to ``RETRY_MAX_S``, and the server's own
``backoff`` is honoured. SIGTERM stops after the pass in progress; Ctrl-C
interrupts at once (every pass step is safe to interrupt).
"""

import os
import signal
import sys
import threading
import time

import requests

from .api import ApiError, Unreachable
from .engine import PassError
from .scan import scan
from .state import SYNC_DIR, FolderError, FolderLock

SETTLE_S = 0.3
MAX_HOLD_S = 10.0
WAIT_TIMEOUT_S = 30
WAIT_MARGIN_S = 15        # beyond the wait's timeout before the client gives up on it
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
TICK_S = 5.0              # the longest the main loop sleeps without looking at its flags
IGNORED_EVENTS = ("opened", "closed_no_write")  # reading a file (hashing it) is no change


def changed_anything(summary):
    return bool(summary.up or summary.down or summary.deleted_here or summary.deleted_there
                or summary.moved or summary.new_conflicts)


class _Events:
    """A watchdog handler that pokes the watcher for changes outside ``.sync``."""

    def __init__(self, folder, poke):
        self.private = os.path.join(folder, SYNC_DIR)
        self.poke = poke

    def _outside(self, path):
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return bool(path) and path != self.private \
            and not path.startswith(self.private + os.sep)

    def dispatch(self, event):
        if event.event_type in IGNORED_EVENTS:
            return
        if self._outside(event.src_path) or self._outside(getattr(event, "dest_path", "")):
            self.poke()


def start_observer(folder, handler, events=True, poll_interval=30.0):
    """A started watchdog observer of ``folder`` (recursive): the platform's
    events, or polling every ``poll_interval`` seconds where they cannot be
    had (or ``events`` is false). Returns (observer, "events"|"polling")."""
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    if events:
        observer = Observer()
        try:
            observer.schedule(handler, folder, recursive=True)
            observer.start()
            return observer, "events"
        except OSError:  # no inotify, or its watch limit reached
            observer.stop()
    observer = PollingObserver(timeout=poll_interval)
    observer.schedule(handler, folder, recursive=True)
    observer.start()
    return observer, "polling"


class Watcher:
    """Runs passes of ``engine`` when the folder or the library changes."""

    def __init__(self, engine, interval=30.0, quiet=False, wait_timeout=WAIT_TIMEOUT_S,
                 events=True, out=None, err=None, clock=time.monotonic):
        self.engine = engine
        self.folder = engine.folder
        self.interval = interval
        self.quiet = quiet
        self.wait_timeout = wait_timeout
        self.events = events
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.clock = clock
        self.cond = threading.Condition()  # an RLock: a signal handler may take it
        self.stopping = False
        self.exit_code = 0
        self.first_event = self.last_event = None
        self.remote_due = False
        self.retry_at = None
        self.failures = 0
        self.cursor = None
        self.passes_done = 0
        self.last_error = None
        self.last_reason = None
        self.mode = None

    # -- what the other threads and signals call --------------------------------

    def poke_local(self):
        with self.cond:
            now = self.clock()
            if self.first_event is None:
                self.first_event = now
            self.last_event = now
            self.cond.notify_all()

    def poke_remote(self):
        with self.cond:
            self.remote_due = True
            self.cond.notify_all()

    def stop(self, code=0):
        with self.cond:
            self.stopping = True
            self.exit_code = code
            self.cond.notify_all()

    def _sleep(self, seconds):
        """Sleep unless stopped meanwhile; False when stopped."""
        deadline = self.clock() + seconds
        with self.cond:
            while not self.stopping:
                left = deadline - self.clock()
                if left <= 0:
                    return True
                self.cond.wait(min(left, TICK_S))
        return False

    # -- output -------------------------------------------------------------------

    def _say(self, text):
        print(f"sync: {text}", file=self.out, flush=True)

    def _problem(self, text):
        """A problem, printed once until it changes or a pass succeeds."""
        if text != self.last_error:
            print(f"sync: {text}", file=self.err, flush=True)
        self.last_error = text

    # -- the main loop -------------------------------------------------------------

    def run(self):
        """Watch until SIGTERM (0) or a refused token (1); the exit status."""
        from .cli import _api_reason  # the one wording of a server's refusal

        self._api_reason = _api_reason
        previous = self._on_sigterm()
        observer, self.mode = start_observer(self.folder, _Events(self.folder, self.poke_local),
                                             self.events, self.interval)
        waiter = threading.Thread(target=self._wait_loop, name="changes-wait", daemon=True)
        try:
            if not self.quiet:
                self._say(f"watching {self.folder} ({self.mode}); Ctrl-C to stop")
            self._pass()
            waiter.start()
            while True:
                why = self._next()
                if why is None:
                    break
                if why == "local" and self._local_unchanged():
                    continue
                self._pass()
        finally:
            with self.cond:
                self.stopping = True
                self.cond.notify_all()
            observer.stop()
            observer.join(5)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return self.exit_code

    def _on_sigterm(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        return signal.signal(signal.SIGTERM, lambda signum, frame: self.stop(0))

    def _next(self):
        """Block until a pass is due: "local", "remote" or "retry"; None to stop."""
        with self.cond:
            while not self.stopping:
                now = self.clock()
                times = []
                if self.last_event is not None:
                    at = min(self.last_event + SETTLE_S, self.first_event + MAX_HOLD_S)
                    if now >= at:
                        self.first_event = self.last_event = None
                        return "local"
                    times.append(at)
                if self.remote_due:
                    self.remote_due = False
                    return "remote"
                if self.retry_at is not None:
                    if now >= self.retry_at:
                        self.retry_at = None
                        return "retry"
                    times.append(self.retry_at)
                self.cond.wait(max(0.01, min([TICK_S] + [t - now for t in times])))
            return None

    def _local_unchanged(self):
        """Does the folder hold exactly what was last synced (same paths, sizes
        and mtimes)? Then the events were the client's own writes."""
        try:
            found = scan(self.folder)
            synced = self.engine.state.synced()
        except OSError:
            return False
        if found.problems or set(found.files) != set(synced):
            return False
        return all((f.size, f.mtime_ns) == (synced[p].size, synced[p].mtime_ns)
                   for p, f in found.files.items())

    def _pass(self):
        try:
            with FolderLock(self.folder):
                summary = self.engine.run()
        except PassError as exc:
            # A refusal (a mass deletion) stands until the folder or the
            # library changes: the next event tries again, not a timer.
            self._problem(str(exc))
        except FolderError as exc:
            self._problem(str(exc))
            self._retry_later()
        except Unreachable as exc:
            self._problem(f"{exc}; trying again")
            self._retry_later()
        except ApiError as exc:
            self._problem(self._api_reason(exc))
            if exc.status == 401:
                self.stop(1)
            else:
                self._retry_later()
        except OSError as exc:
            self._problem(f"{exc.filename or 'the folder'}: {exc.strerror or exc}")
            self._retry_later()
        else:
            self.failures = 0
            self.last_error = None
            with self.cond:
                self.retry_at = None
                self.cursor = self.engine.state.get("cursor")
                self.passes_done += 1
                self.cond.notify_all()
            if changed_anything(summary):
                self._say(summary.line())
            reason = summary.reason()
            if reason and reason != self.last_reason:
                print(f"sync: not in sync: {reason}", file=self.err, flush=True)
            self.last_reason = reason

    def _retry_later(self):
        delay = min(RETRY_MIN_S * 2 ** self.failures, RETRY_MAX_S)
        self.failures += 1
        with self.cond:
            self.retry_at = self.clock() + delay

    # -- the thread that waits for the server's changes ----------------------------

    def _wait_loop(self):
        api = self.engine.api.clone()
        api.retries = 0  # this loop has its own backoff
        delay = RETRY_MIN_S
        try:
            while not self.stopping:
                with self.cond:
                    cursor, done = self.cursor, self.passes_done
                if cursor is None:  # no pass has succeeded yet
                    self._await_pass(done)
                    continue
                try:
                    answer = api.request(
                        "POST", "/changes/wait",
                        json={"cursor": cursor, "timeout": self.wait_timeout},
                        timeout=self.wait_timeout + WAIT_MARGIN_S).json()
                except ApiError as exc:
                    if exc.code in ("cursor_expired", "cursor_invalid") or exc.status == 401:
                        # The pass relists (or reports the refused token and
                        # stops); a cursor refused again backs off.
                        self.poke_remote()
                        self._await_pass(done)
                        self._sleep(delay)
                        delay = min(delay * 2, RETRY_MAX_S)
                    elif exc.status in (404, 405):
                        # A server without waiting: look every --interval.
                        self._sleep(self.interval)
                        self.poke_remote()
                        self._await_pass(done)
                    else:
                        self._sleep(delay)
                        delay = min(delay * 2, RETRY_MAX_S)
                    continue
                except (Unreachable, ValueError, requests.RequestException):
                    # Unreachable, or an answer cut off or not JSON: as a
                    # network failure, try again later.
                    self._sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                delay = RETRY_MIN_S
                if not isinstance(answer, dict):
                    answer = {}
                backoff = answer.get("backoff")
                if isinstance(backoff, (int, float)) and backoff > 0:
                    # The server is busy: look again after its backoff.
                    if self._sleep(backoff):
                        self.poke_remote()
                        self._await_pass(done)
                    continue
                if answer.get("changes"):
                    with self.cond:
                        stale = self.cursor != cursor
                    if not stale:
                        self.poke_remote()
                        self._await_pass(done)
        finally:
            api.close()

    def _await_pass(self, done):
        """Sleep until a pass after the ``done``-th succeeds (or the watch stops)."""
        with self.cond:
            while not self.stopping and self.passes_done == done:
                self.cond.wait(TICK_S)


def watch(engine, interval=30.0, quiet=False, events=True):
    """``sync FOLDER --watch``: the exit status."""
    return Watcher(engine, interval=interval, quiet=quiet, events=events).run()

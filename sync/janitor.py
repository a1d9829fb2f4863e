"""Periodic clean-up in the server process: revisions retention no longer
keeps, expired upload sessions and their spool files, content nothing
refers to any more, and tombstones every device has acknowledged past the
grace period.

A pass costs what changed since the last one, not the size of the library:
content that may have lost its last reference is queued in ``blob_queue``
by the transaction that dropped the reference (``library.queue_content``),
expired sessions are found through their ``touched_at`` index, tombstones
through theirs. Everything is done in short batches, one write transaction
each (about ``BATCH_S`` seconds at most), with a pause between them so that
waiting writers go first. Only ``app.py check`` scans everything.
"""

import logging
import threading
import time

from . import blobs, feed, history, library, uploads
from .db import database, write

log = logging.getLogger("sync.janitor")

BATCH_S = 0.05  # stop taking work into a batch after this long
BLOB_BATCH = 200  # candidates looked at per batch, at most
# Between two batches: longer than the sleep of a writer that SQLite's busy
# handler has kept waiting for one batch (it sleeps 25, then 50 ms), so that
# such a writer finds the lock free before the next batch takes it.
PAUSE_S = 0.05

QUEUED_SQL = "SELECT sha256 FROM blob_queue LIMIT :limit"
DROP_BLOB_ROW_SQL = "DELETE FROM blobs WHERE sha256 = :sha256"
DROP_QUEUED_SQL = "DELETE FROM blob_queue WHERE sha256 = :sha256"


def _pause():
    time.sleep(PAUSE_S)


def sweep_blobs(rt, pause=_pause):
    """Remove the queued content nothing refers to any more: its file and
    its row, inside the write transaction that checked it (so no request can
    start referring to it in between). Returns ``(blobs removed, longest
    transaction in seconds)``."""
    removed, longest = 0, 0.0
    while True:
        started = time.monotonic()
        with write():
            queued = [r[0] for r in database.execute_sql(QUEUED_SQL, {"limit": BLOB_BATCH})]
            needed = library.content_referenced(queued)
            done, gone = [], []
            for sha256 in queued:
                if sha256 not in needed:
                    if blobs.is_sha256(sha256):
                        blobs.remove_blob(rt.config, sha256)
                    gone.append({"sha256": sha256})
                done.append({"sha256": sha256})
                if time.monotonic() - started > BATCH_S:
                    break
            cursor = database.cursor()
            cursor.executemany(DROP_BLOB_ROW_SQL, gone)
            cursor.executemany(DROP_QUEUED_SQL, done)
        longest = max(longest, time.monotonic() - started)
        removed += len(gone)
        if not queued or len(done) == len(queued) < BLOB_BATCH:
            break
        if pause is not None:
            pause()
    return removed, longest


def run_once(rt, pause=_pause):
    """One clean-up pass; safe to call at any time, from any thread.
    Returns what it removed and the longest write transaction it held."""
    with database.connection_context():
        # First: the content of the revisions it drops is queued for the sweep.
        history.expire(rt, on_dropped=lambda shas: library.queue_content(shas, rt.now()))
        sessions, t1 = uploads.sweep(rt, pause)
        removed, t2 = sweep_blobs(rt, pause)
        tombstones, t3 = feed.purge_tombstones(rt, pause)
    return {"uploads": sessions, "blobs": removed, "tombstones": tombstones,
            "longest_write_s": max(t1, t2, t3)}


def start(rt):
    """Run ``run_once`` now and then every ``janitor_interval`` seconds in a
    daemon thread. Returns the ``threading.Event`` that stops it."""
    stop = threading.Event()

    def loop():
        while True:
            try:
                run_once(rt)
            except Exception:
                log.exception("clean-up pass failed; trying again later")
            if stop.wait(rt.config.janitor_interval):
                return

    threading.Thread(target=loop, name="janitor", daemon=True).start()
    return stop

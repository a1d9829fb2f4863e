"""Periodic clean-up in the server process: revisions retention no longer
keeps, expired upload sessions and their spool files, unreferenced blobs,
and tombstones every device has acknowledged past the grace period."""

import logging
import threading

from . import feed, history, uploads
from .db import database

log = logging.getLogger("sync.janitor")


def run_once(rt):
    """One clean-up pass; safe to call at any time, from any thread."""
    with database.connection_context():
        history.expire(rt)  # before the sweep, which then collects their content
        uploads.sweep(rt)
        feed.purge_tombstones(rt)


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

"""Upload sessions: create, receive chunks, complete, cancel, expire."""


def sweep(rt):
    """Remove expired sessions with their spool files, and blobs nothing refers to."""

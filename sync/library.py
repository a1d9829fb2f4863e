"""The library engine: the changes feed, acks, reports and conflicts."""


def purge_tombstones(rt):
    """Remove tombstones every device of their user has acknowledged, once
    the grace period has passed."""

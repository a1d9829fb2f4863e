"""Durable file-system steps shared by the blob store, backups and migrations."""

import os


def fsync_path(path):
    """fsync a file or a directory by name (a directory, so that a rename or
    a new entry in it survives a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

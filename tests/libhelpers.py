"""Helpers for the library tests: content in a library without the upload
API, through ``library.apply_put`` (the code path an upload completes by)."""

from sync import library
from sync.db import database, write
from sync.models import Device

from .helpers import sha256


def hold(device, path, data=b"content", base_rev=None, mtime=1700000000, rt=None):
    """Apply a put of ``data`` at ``path`` as ``device`` (a device JSON record),
    as a completed upload would; returns apply_put's answer."""
    with database.connection_context():
        user_id = Device.get_by_id(device["id"]).user_id
        with write():
            return library.apply_put(rt, user_id, device["id"], path, sha256(data),
                                     len(data), mtime, base_rev)

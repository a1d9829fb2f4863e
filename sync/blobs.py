"""The content-addressed blob store and the upload spool, on disk.

``blobs/ab/<sha256>`` holds content named by its SHA-256; ``spool/<id>``
holds one upload in progress. File names are generated here from checked
hex digests and server-made ids only; no client string reaches a path.
"""

import os
import re

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{8,64}$")


def is_sha256(value):
    return isinstance(value, str) and bool(_SHA256.match(value))


def blob_path(config, sha256):
    if not is_sha256(sha256):
        raise ValueError("not a sha256 hex digest")
    return config.path("blobs", sha256[:2], sha256)


def spool_path(config, upload_id):
    if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
        raise ValueError("not an upload id")
    return config.path("spool", upload_id)


def ensure_dirs(config):
    for sub in ("blobs", "spool"):
        os.makedirs(config.path(sub), exist_ok=True)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_spool(config, upload_id):
    """Delete an upload's spool file if it is there."""
    try:
        os.unlink(spool_path(config, upload_id))
    except (FileNotFoundError, ValueError):
        pass

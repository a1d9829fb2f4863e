"""The content-addressed blob store and the upload spool, on disk.

``blobs/ab/<sha256>`` holds content named by its SHA-256; ``spool/<id>``
holds one upload in progress. File names are generated here from checked
hex digests and server-made ids only; no client string reaches a path.
"""

import concurrent.futures
import errno
import hashlib
import os
import re

from .datadir import BLOBS_DIR, SPOOL_DIR
from .fsutil import fsync_path, make_private_dir

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{8,64}$")


def is_sha256(value):
    return isinstance(value, str) and bool(_SHA256.match(value))


def blob_path(config, sha256):
    if not is_sha256(sha256):
        raise ValueError("not a sha256 hex digest")
    return config.path(BLOBS_DIR, sha256[:2], sha256)


def spool_path(config, upload_id):
    if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
        raise ValueError("not an upload id")
    return config.path(SPOOL_DIR, upload_id)


def remove_spool(config, upload_id):
    """Delete an upload's spool file if it is there."""
    try:
        os.unlink(spool_path(config, upload_id))
    except (FileNotFoundError, ValueError):
        pass


BLOCK = 1024 * 1024  # read/write/hash block: large enough for full disk speed, small in memory


class NoSpace(Exception):
    """The filesystem cannot hold a reservation."""


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def reserve_spool(config, upload_id, size):
    """Create ``spool/<id>`` reserved at ``size`` bytes (``posix_fallocate``
    where available, so a full disk is found now, not halfway through the
    upload). Raises ``NoSpace`` and leaves no file behind when it does not
    fit, or would leave less than ``config.min_free`` bytes free. Call it
    outside any write transaction: where glibc emulates fallocate by writing
    every block, a large reservation takes seconds."""
    path = spool_path(config, upload_id)
    # Asked first: an impossible size fails at once, and uploads never take
    # the reserve that keeps the database and everything else writable.
    if size and size > free_bytes(os.path.dirname(path)) - config.min_free:
        raise NoSpace(f"{size} bytes do not fit on the disk beside its reserve of "
                      f"{config.min_free} bytes")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if is_disk_full(exc):
            raise NoSpace(str(exc)) from None
        raise
    try:
        if size:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
            else:
                os.ftruncate(fd, size)
        if config.fsync:
            os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        if is_disk_full(exc):
            raise NoSpace(str(exc)) from None
        raise
    os.close(fd)
    if config.fsync:
        fsync_path(os.path.dirname(path))


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(exc):
    """Whether an error means the disk (or a quota, or a file size limit)
    has no room: an ``OSError`` ENOSPC, EDQUOT or EFBIG, or SQLite's
    SQLITE_FULL ("database or disk is full"), itself or as the cause of
    the error raised while handling it."""
    seen = 0
    while exc is not None and seen < 8:
        # SQLite rolls back by itself on SQLITE_FULL; the ROLLBACK that
        # follows fails with "no transaction is active", over the real cause.
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return True
        if not isinstance(exc, OSError) and "database or disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _sync_data(fd):
    # fdatasync flushes the data and the metadata needed to read it back
    # (the extents fallocate left unwritten), without a journal commit for
    # the file's mtime, which costs a chunk more than its data on ext4
    # (bench/transfer.py; bench/README.md).
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _start_writeback(fd, offset, length):
    # Told that a range will not be read again soon, Linux starts writing
    # its dirty pages back at once (and keeps them cached while it does),
    # so the disk writes a large body while the rest of it is copied and
    # hashed, and the fdatasync at the end waits for the last blocks only
    # (bench/README.md, "webdav").
    if _FADVISE:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


_FADVISE = hasattr(os, "posix_fadvise")


def write_at(config, upload_id, offset, read, length, digest=None):
    """Stream ``length`` bytes from ``read(n)`` into the spool file at
    ``offset``, block by block, never past ``offset + length``, feeding
    ``digest`` (a hashlib object) when one is given.

    Returns ``(count, more)``: ``count`` bytes were written and ``more``
    says the stream had bytes beyond ``length``. The bytes are durable
    (fdatasync, when configured) before this returns. Raises
    ``FileNotFoundError`` when the spool file is gone.
    """
    count = 0
    fd = os.open(spool_path(config, upload_id), os.O_WRONLY)
    try:
        while count < length:
            block = read(min(BLOCK, length - count))
            if not block:
                break
            start = offset + count
            view = memoryview(block)
            while view:
                written = os.pwrite(fd, view, offset + count)
                if digest is not None:
                    digest.update(view[:written])
                count += written
                view = view[written:]
            if config.fsync:
                _start_writeback(fd, start, len(block))
        more = bool(read(1))
        if config.fsync:
            _sync_data(fd)
    finally:
        os.close(fd)
    return count, more


class BackgroundHash:
    """SHA-256 computed in a second thread while the writer goes on with the
    next block (hashlib lets go of the GIL on large updates), so a PUT costs
    about the longer of writing and hashing, not their sum."""

    def __init__(self):
        self._digest = hashlib.sha256()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hash")
        self._pending = None

    def update(self, data):
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._digest.update, data)

    def hexdigest(self):
        if self._pending is not None:
            self._pending.result()
        self._pool.shutdown()
        return self._digest.hexdigest()

    def close(self):
        self._pool.shutdown(wait=True)


class SpoolWriter:
    """A whole request body written into a new spool file while it arrives,
    and hashed on the way (a WebDAV PUT whose credentials held, see
    ``sync.bodygate``): the body is written to disk once, never buffered
    elsewhere first and copied. It has the interface of waitress's body
    buffers (``append``, ``__len__``, ``getfile``, ``close``).

    At most ``room`` bytes are written (the free space beside the reserve
    when it was made); a write beyond it, or one that fails (a full disk),
    is kept in ``error`` and the rest of the body is counted and dropped.
    ``finish()`` makes the bytes durable and raises that error; ``close()``
    (waitress calls it once the request is over, whatever happened) removes
    a spool file nobody took into the blob store."""

    def __init__(self, config, spool_id, room):
        self.config = config
        self.spool_id = spool_id
        self.room = room
        self.count = 0
        self.error = None
        self.digest = BackgroundHash()
        self._unhashed = []  # pieces handed to the hash a block at a time
        self._unhashed_bytes = 0
        self._written_back = 0
        receiving(spool_id)
        try:
            self._fd = os.open(spool_path(config, spool_id),
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            receiving(spool_id, active=False)
            self.digest.close()
            raise

    def append(self, data):
        if self.error is None:
            try:
                if self.count + len(data) > self.room:
                    raise OSError(errno.ENOSPC, "the body does not fit beside the disk's reserve")
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
                self._hash(data)
                if self.config.fsync and self.count + len(data) - self._written_back >= BLOCK:
                    _start_writeback(self._fd, self._written_back,
                                     self.count + len(data) - self._written_back)
                    self._written_back = self.count + len(data)
            except OSError as exc:
                self.error = exc
                self._close_fd()
        self.count += len(data)

    def _hash(self, data, last=False):
        # waitress hands over what one recv() got (256 KiB at most): the
        # hash thread gets a block's worth at once, not each piece.
        if data:
            self._unhashed.append(data)
            self._unhashed_bytes += len(data)
        if self._unhashed and (last or self._unhashed_bytes >= BLOCK):
            self.digest.update(b"".join(self._unhashed))
            self._unhashed, self._unhashed_bytes = [], 0

    def __len__(self):
        return self.count

    def getfile(self):
        return SpooledBody(self)

    def finish(self):
        """The body's size, once its bytes are durable (when configured)."""
        if self.error is None:
            self._hash(b"", last=True)
            try:
                if self.config.fsync:
                    _sync_data(self._fd)
            except OSError as exc:
                self.error = exc
        self._close_fd()
        if self.error is not None:
            raise self.error
        return self.count

    def _close_fd(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self):
        self._close_fd()
        self.digest.close()
        remove_spool(self.config, self.spool_id)
        receiving(self.spool_id, active=False)


class SpooledBody:
    """``wsgi.input`` of a body a ``SpoolWriter`` received: ``spooled`` is
    the writer, for the code that takes the spool file over; ``read`` reads
    the file for anyone else."""

    def __init__(self, spooled):
        self.spooled = spooled
        self._offset = 0

    def read(self, size=-1):
        try:
            fd = os.open(spool_path(self.spooled.config, self.spooled.spool_id), os.O_RDONLY)
        except FileNotFoundError:
            return b""
        try:
            left = max(self.spooled.count - self._offset, 0)
            data = os.pread(fd, left if size is None or size < 0 else min(size, left),
                            self._offset)
        finally:
            os.close(fd)
        self._offset += len(data)
        return data


def read_blocks(file):
    """The bytes of an open ``file`` in blocks of ``BLOCK``; the file is
    closed at the end (or when the reader stops early)."""
    try:
        while True:
            block = file.read(BLOCK)
            if not block:
                break
            yield block
    finally:
        file.close()


def hash_file(path):
    """``(size, sha256 hex)`` of a file, read once in large blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            block = f.read(BLOCK)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def store_spool(config, upload_id, sha256, drop_duplicate=True):
    """Move a complete, verified spool file into ``blobs/ab/<sha256>``:
    fsync the file, ``os.replace`` it, fsync the directory. When the blob
    is already there the spool file is dropped instead (or left for the
    caller to remove, with ``drop_duplicate=False``: freeing a large file
    takes a while, too long to do under the write lock)."""
    source = spool_path(config, upload_id)
    target = blob_path(config, sha256)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        make_private_dir(folder)
        if config.fsync:
            fsync_path(os.path.dirname(folder))
    if os.path.exists(target):
        if drop_duplicate:
            os.unlink(source)
        return
    if config.fsync:
        fsync_path(source)
    os.replace(source, target)
    if config.fsync:
        fsync_path(folder)


def remove_blob(config, sha256):
    try:
        os.unlink(blob_path(config, sha256))
    except FileNotFoundError:
        pass


# Spool files of whole bodies being received (a WebDAV PUT has no upload
# session): the clean-up must not take them for the leftovers of a crash.
_receiving = set()


def receiving(spool_id, active=True):
    """Mark (or unmark) ``spool_id`` as a body being received by this process."""
    if active:
        _receiving.add(spool_id)
    else:
        _receiving.discard(spool_id)


def spool_ids(config):
    """Upload ids that have a spool file (bodies being received left out)."""
    return [name for name in os.listdir(config.path(SPOOL_DIR))
            if _UPLOAD_ID.match(name) and name not in _receiving]


def blob_files(config):
    """The sha256 of every file held under ``blobs/``."""
    root = config.path(BLOBS_DIR)
    found = []
    for prefix in os.listdir(root):
        folder = os.path.join(root, prefix)
        if len(prefix) != 2 or not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if is_sha256(name) and name[:2] == prefix:
                found.append(name)
    return found


class FileSlice:
    """Bytes ``start`` to ``start + length`` of a blob, as a seekable
    read-only file (positions relative to ``start``), so that a WSGI
    ``file_wrapper`` streams exactly the slice from disk."""

    def __init__(self, path, start, length):
        self._file = open(path, "rb", buffering=0)
        self._start = start
        self._end = start + length
        self._file.seek(start)

    def read(self, size=-1):
        remaining = max(self._end - self._file.tell(), 0)
        if size is None or size < 0:
            size = remaining
        else:
            # waitress asks for SO_SNDBUF bytes at a time (several MiB on
            # loopback); a short read keeps each download's buffer small.
            size = min(size, remaining, BLOCK)
        return self._file.read(size)

    def seekable(self):
        return True

    def seek(self, offset, whence=os.SEEK_SET):
        base = {os.SEEK_SET: self._start, os.SEEK_CUR: self._file.tell(),
                os.SEEK_END: self._end}[whence]
        return self._file.seek(min(max(base + offset, self._start), self._end)) - self._start

    def tell(self):
        return self._file.tell() - self._start

    def close(self):
        self._file.close()

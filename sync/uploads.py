"""Upload sessions: create, receive chunks, complete, cancel, expire.

A session has one spool file, ``spool/<id>``, reserved at full size when it
is created; each chunk is streamed to its offset, fsynced, and only then
recorded in ``upload_chunks``. Completing hashes the spool file once, moves
it into the blob store (fsync, rename, directory fsync) and then changes the
library in one transaction, storing the answer so that a retry replays it.
Every query is scoped to the caller's user: another user's session is 404.

The server is one process, so an in-process gate keeps a session's chunk
writers and its completion apart: bytes are never written into a spool file
that is being hashed or has become a blob.
"""

import base64
import binascii
import contextlib
import hashlib
import math
import os
import re
import threading
import time

from peewee import fn

from . import blobs, counts, errors, library
from .config import KIB, MIB
from .db import database, write
from .models import Blob, Upload, UploadChunk
from .paths import normalize
from .runtime import iso, parse_iso

DEFAULT_CHUNK_SIZE = 8 * MIB
MIN_CHUNK_SIZE = 256 * KIB
MAX_CHUNK_SIZE = 64 * MIB

MAX_INT = 2 ** 63 - 1  # SQLite's INTEGER

_INDEX = re.compile(r"^[0-9]{1,12}$")

# The bytes of the user's open sessions that will write a spool file.
SPOOL_BYTES_SQL = """
    SELECT COALESCE(SUM(size), 0) FROM uploads
    WHERE user_id = :user_id AND state = 'open' AND instant = 0
"""
# The size of content the user's library holds: a live entry, or the client
# side of an unresolved conflict.
HELD_SIZE_SQL = """
    SELECT size FROM entries WHERE user_id = :user_id AND sha256 = :sha256 AND deleted = 0
    UNION ALL
    SELECT client_size FROM conflicts
    WHERE user_id = :user_id AND client_sha256 = :sha256 AND resolved_at IS NULL
    LIMIT 1
"""
OPEN_SESSIONS_SQL = """
    SELECT COUNT(*) FROM uploads
    WHERE user_id = :user_id AND state = 'open' AND touched_at > :cutoff
"""
RECEIVED_SQL = "SELECT idx, size FROM upload_chunks WHERE upload_id = :upload_id ORDER BY idx"
HAS_CHUNK_SQL = "SELECT 1 FROM upload_chunks WHERE upload_id = :upload_id AND idx = :idx"
_DIGEST_MEMBER = re.compile(r"^([a-z][a-z0-9_.*-]*)=:([A-Za-z0-9+/=]*):(;.*)?$")


class _Gate:
    """Which chunks of which sessions are being written, and which sessions
    are being completed or cancelled (exclusive with their writers)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._writing = {}
        self._closing = set()

    @contextlib.contextmanager
    def chunk(self, upload_id, index):
        with self._cond:
            if upload_id in self._closing:
                raise errors.SyncError(409, errors.UPLOAD_BUSY,
                                       "The upload is being completed or cancelled.")
            indices = self._writing.setdefault(upload_id, set())
            if index in indices:
                raise errors.SyncError(409, errors.UPLOAD_BUSY,
                                       f"Chunk {index} is already being received.")
            indices.add(index)
        try:
            yield
        finally:
            with self._cond:
                indices.discard(index)
                if not indices:
                    self._writing.pop(upload_id, None)
                self._cond.notify_all()

    @contextlib.contextmanager
    def closing(self, upload_id):
        """Exclusive use of a session; yields the indices still being written."""
        with self._cond:
            while upload_id in self._closing:
                self._cond.wait()
            self._closing.add(upload_id)
            active = set(self._writing.get(upload_id, ()))
        try:
            yield active
        finally:
            with self._cond:
                self._closing.discard(upload_id)
                self._cond.notify_all()


_gate = _Gate()


def _invalid(description):
    return errors.bad_request(errors.BODY_INVALID, description)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _chunk_limit(config):
    return min(MAX_CHUNK_SIZE, config.max_chunk_size)


def _check_body(rt, body):
    """The validated fields of a ``POST /upload`` body."""
    for field in ("path", "size", "sha256", "base_rev"):
        if field not in body:
            raise _invalid(f"'{field}' is required.")
    path = normalize(body["path"])
    size = body["size"]
    if not _is_int(size) or size < 0:
        raise _invalid("'size' must be a non-negative integer (bytes).")
    if size > rt.config.max_file_size:
        raise errors.SyncError(413, errors.FILE_TOO_LARGE,
                               f"Files are limited to {rt.config.max_file_size} bytes.")
    sha256 = body["sha256"]
    if not blobs.is_sha256(sha256):
        raise _invalid("'sha256' must be 64 lowercase hexadecimal digits.")
    base_rev = body["base_rev"]
    if base_rev is not None and (not _is_int(base_rev) or not 0 <= base_rev <= MAX_INT):
        raise _invalid("'base_rev' must be a revision (an integer) or null.")
    mtime = body.get("mtime")
    if mtime is not None and (not _is_int(mtime) or not -MAX_INT <= mtime <= MAX_INT):
        raise _invalid("'mtime' must be an integer (seconds since the epoch) or null.")
    limit = _chunk_limit(rt.config)
    chunk_size = body.get("chunk_size")
    if chunk_size is None:
        chunk_size = min(DEFAULT_CHUNK_SIZE, limit)
    elif not _is_int(chunk_size) or not MIN_CHUNK_SIZE <= chunk_size <= limit:
        raise _invalid(f"'chunk_size' must be an integer from {MIN_CHUNK_SIZE} to {limit}.")
    return path, size, sha256, base_rev, mtime, chunk_size


def held_bytes(user_id):
    """Bytes the user's content holds (each content once; maintained, see
    ``sync.counts``) plus the size of the user's open sessions that will
    write a spool file (a bounded number)."""
    held = counts.usage(user_id)
    pending = database.execute_sql(SPOOL_BYTES_SQL, {"user_id": user_id}).fetchone()[0]
    return held + pending


def _held_size(user_id, sha256):
    """The size of the content ``sha256`` the user's library holds (a live
    entry, or the client side of an unresolved conflict), or None."""
    row = database.execute_sql(HELD_SIZE_SQL, {"user_id": user_id, "sha256": sha256}).fetchone()
    return None if row is None else row[0]


def _instant(user_id, sha256, size):
    """Whether a session for this content needs no bytes: the library holds
    it. 400 ``digest_mismatch`` when it holds it at another size (a declared
    size is never trusted: HEAD, downloads and backups depend on it)."""
    held = _held_size(user_id, sha256)
    if held is not None and held != size:
        raise errors.bad_request(
            errors.DIGEST_MISMATCH,
            f"Content with this sha256 is {held} bytes, not {size}: the size or the "
            f"sha256 is wrong.")
    return held is not None


def _no_room(size, config):
    return errors.SyncError(
        507, errors.INSUFFICIENT_STORAGE,
        f"The server's disk has no room for {size} bytes (it keeps {config.min_free} "
        f"bytes free).")


def _check_quota(rt, user, size):
    quota = rt.config.quota
    if quota and held_bytes(user.id) + size > quota:
        raise errors.SyncError(
            507, errors.QUOTA_EXCEEDED,
            f"This upload would take your storage over its quota of {quota} bytes.")


RESERVE_ATTEMPTS = 3


class _ContentWent(Exception):
    """The content an instant session relied on went before the session row
    was written: the session needs its bytes after all."""


def create(rt, user, device, body):
    """Open a session for ``device``. Content the user's library already
    holds is marked fully received without a spool file (``instant``).
    The spool file is reserved before the write transaction (a reservation
    may take seconds where fallocate is emulated) and the checks run again
    inside it. 400, 429 and 507 answers leave nothing behind."""
    path, size, sha256, base_rev, mtime, chunk_size = _check_body(rt, body)
    chunk_count = math.ceil(size / chunk_size)
    upload_id = rt.idgen()
    now = rt.now()
    reserved = False
    try:
        for attempt in range(RESERVE_ATTEMPTS):
            # Checked first without the lock, so that a refusal reserves
            # nothing; the last attempt reserves whatever the guess.
            _check_open_sessions(rt, user)
            needs_bytes = not _instant(user.id, sha256, size) or attempt == RESERVE_ATTEMPTS - 1
            if needs_bytes and not reserved:
                _check_quota(rt, user, size)
                try:
                    blobs.reserve_spool(rt.config, upload_id, size)
                except blobs.NoSpace:
                    raise _no_room(size, rt.config) from None
                reserved = True
            try:
                with write():
                    _check_open_sessions(rt, user)
                    instant = _instant(user.id, sha256, size)
                    if not instant:
                        if not reserved:
                            raise _ContentWent()
                        _check_quota(rt, user, size)
                    Upload.insert(id=upload_id, user=user.id, device=device.id, path=path,
                                  size=size, sha256=sha256, base_rev=base_rev, mtime=mtime,
                                  chunk_size=chunk_size, chunk_count=chunk_count,
                                  instant=int(instant), created_at=now, touched_at=now).execute()
            except _ContentWent:
                continue  # the content went meanwhile: reserve its bytes, then again
            break
        if instant and reserved:
            blobs.remove_spool(rt.config, upload_id)
            reserved = False
    except BaseException:
        if reserved:
            blobs.remove_spool(rt.config, upload_id)
        raise
    return _to_json(rt, _get(rt, user, upload_id))


def _check_open_sessions(rt, user):
    """429 ``too_many_uploads`` when the user has ``--max-open-uploads``
    sessions open already (expired ones, not yet swept, do not count)."""
    limit = rt.config.max_open_uploads
    cutoff = iso(rt.clock() - rt.config.upload_expiry)
    count = database.execute_sql(
        OPEN_SESSIONS_SQL, {"user_id": user.id, "cutoff": cutoff}).fetchone()[0]
    if count >= limit:
        raise errors.SyncError(
            429, errors.TOO_MANY_UPLOADS,
            f"You have {count} upload sessions open, the most the server allows; complete "
            f"or cancel some (DELETE /upload/{{id}}) before opening more.")


def _chunk_length(size, chunk_size, index):
    return min(chunk_size, size - index * chunk_size)


def _expired(rt, upload):
    return rt.clock() - parse_iso(upload.touched_at) >= rt.config.upload_expiry


def _get(rt, user, upload_id):
    """The caller's live session ``upload_id``: 404 for unknown, another
    user's, cancelled and expired ones."""
    upload = Upload.get_or_none((Upload.id == upload_id) & (Upload.user == user.id))
    if upload is None or _expired(rt, upload):
        raise errors.not_found(f"No upload session {upload_id!r}.")
    return upload


def _get_open(rt, user, upload_id):
    upload = _get(rt, user, upload_id)
    if upload.state == "completed":
        raise errors.SyncError(409, errors.UPLOAD_COMPLETED, "The upload is already complete.")
    return upload


def _received(upload_id):
    return [(idx, size) for idx, size in database.execute_sql(
        RECEIVED_SQL, {"upload_id": upload_id})]


def _to_json(rt, upload):
    # An instant session has every chunk (its content is held): no rows.
    if upload.state == "completed" or upload.instant:
        received = list(range(upload.chunk_count))
        bytes_received = upload.size
    else:
        rows = _received(upload.id)
        received = [idx for idx, _ in rows]
        bytes_received = sum(size for _, size in rows)
    return {
        "id": upload.id,
        "path": upload.path,
        "size": upload.size,
        "sha256": upload.sha256,
        "base_rev": upload.base_rev,
        "mtime": upload.mtime,
        "chunk_size": upload.chunk_size,
        "chunk_count": upload.chunk_count,
        "received": received,
        "bytes_received": bytes_received,
        "device_id": upload.device_id,
        "expires_at": iso(parse_iso(upload.touched_at) + rt.config.upload_expiry),
        "state": upload.state,
    }


def status(rt, user, upload_id):
    """The session with the indices of its received chunks."""
    return _to_json(rt, _get(rt, user, upload_id))


def _parse_digest(header):
    """The SHA-256 a ``Content-Digest`` header (RFC 9530) announces, or None
    when it names only other algorithms; 400 ``chunk_invalid`` when garbled."""
    if header is None:
        return None
    found = None
    for member in header.split(","):
        match = _DIGEST_MEMBER.match(member.strip())
        if not match:
            raise errors.bad_request(errors.CHUNK_INVALID,
                                     "Content-Digest must look like sha-256=:<base64>:.")
        if match.group(1) == "sha-256":
            try:
                found = base64.b64decode(match.group(2), validate=True)
            except (binascii.Error, ValueError):
                found = None
            if found is None or len(found) != 32:
                raise errors.bad_request(errors.CHUNK_INVALID,
                                         "The sha-256 of Content-Digest is not 32 bytes in base64.")
    return found


def _parse_index(upload, text):
    if not _INDEX.match(text) or int(text) >= upload.chunk_count:
        valid = (f"an integer from 0 to {upload.chunk_count - 1}" if upload.chunk_count
                 else "valid: this session has no chunks")
        raise errors.bad_request(errors.CHUNK_INVALID, f"Chunk index {text!r} is not {valid}.")
    return int(text)


def _touch(rt, upload_id):
    Upload.update(touched_at=rt.now()).where(Upload.id == upload_id).execute()


def put_chunk(rt, user, upload_id, index_text, read, content_length, digest_header):
    """Stream chunk ``index`` (read with ``read(n)``) to its offset in the
    spool file, make it durable, and only then record it. A re-sent chunk stops counting
    before its bytes are overwritten; a chunk of the wrong length or with a
    wrong ``Content-Digest`` is 400 ``chunk_invalid`` and is not counted."""
    upload = _get_open(rt, user, upload_id)
    index = _parse_index(upload, index_text)
    expected = _chunk_length(upload.size, upload.chunk_size, index)
    announced = _parse_digest(digest_header)
    if content_length is not None and content_length != expected:
        raise errors.bad_request(
            errors.CHUNK_INVALID,
            f"Chunk {index} must be {expected} bytes, not {content_length}.")
    with _gate.chunk(upload_id, index):
        _mismatches.pop(upload_id, None)  # a chunk is re-sent: complete hashes again
        if not upload.instant and _has_chunk(upload_id, index):
            with write():
                upload = _get_open(rt, user, upload_id)
                UploadChunk.delete().where((UploadChunk.upload == upload_id)
                                           & (UploadChunk.idx == index)).execute()
        # Hashed only to check an announced digest: complete hashes the whole file.
        digest = hashlib.sha256() if announced is not None else None
        if upload.instant:
            count, more = _discard(read, expected, digest)
        else:
            try:
                count, more = blobs.write_at(rt.config, upload_id, index * upload.chunk_size,
                                             read, expected, digest)
            except FileNotFoundError:
                # Cancelled or completed meanwhile: answer as for that state.
                _get_open(rt, user, upload_id)
                raise errors.not_found(f"No upload session {upload_id!r}.") from None
        if count != expected or more:
            raise errors.bad_request(
                errors.CHUNK_INVALID,
                f"Chunk {index} must be {expected} bytes; the body had "
                f"{'more' if more else count}.")
        if digest is not None and announced != digest.digest():
            raise errors.bad_request(errors.CHUNK_INVALID,
                                     f"Chunk {index} does not match its Content-Digest.")
        with write():
            _get_open(rt, user, upload_id)
            if upload.instant:
                received, bytes_received = upload.chunk_count, upload.size
            else:
                UploadChunk.replace(upload=upload_id, idx=index, size=expected).execute()
                received, bytes_received = (
                    UploadChunk.select(fn.COUNT(UploadChunk.idx),
                                       fn.COALESCE(fn.SUM(UploadChunk.size), 0))
                    .where(UploadChunk.upload == upload_id).tuples().get())
            _touch(rt, upload_id)
    return {"index": index, "received": received, "bytes_received": bytes_received}


def _has_chunk(upload_id, index):
    return database.execute_sql(
        HAS_CHUNK_SQL, {"upload_id": upload_id, "idx": index}).fetchone() is not None


def _discard(read, length, digest):
    """Read a chunk of an instant session (its content is already held)."""
    count = 0
    while count < length:
        block = read(min(blobs.BLOCK, length - count))
        if not block:
            break
        if digest is not None:
            digest.update(block)
        count += len(block)
    return count, bool(read(1))


def _result(upload):
    result = {"status": upload.result_status, "rev": upload.result_rev}
    if upload.result_conflict_id is not None:
        result["conflict_id"] = upload.result_conflict_id
    return result


def complete(rt, user, upload_id):
    """Verify the whole upload, move it into the blob store, and apply it to
    the library in one transaction. A completed session replays its answer."""
    upload = _get(rt, user, upload_id)
    if upload.state == "completed":
        return _result(upload)
    with _gate.closing(upload_id) as writing:
        upload = _get(rt, user, upload_id)
        if upload.state == "completed":
            return _result(upload)
        if upload.instant:
            missing = []
        else:
            have = {idx for idx, _ in _received(upload_id)} - writing
            missing = [i for i in range(upload.chunk_count) if i not in have]
        if missing:
            raise errors.bad_request(errors.CHUNKS_MISSING,
                                     f"{len(missing)} chunk(s) have not been received.",
                                     missing=missing)
        if not upload.instant:
            try:
                _store(rt, upload)
            except FileNotFoundError:
                # Deleting a device drops its sessions and spool files without
                # waiting for a complete that is hashing one: 404 as for any
                # session that is gone.
                _get(rt, user, upload_id)
                raise
        with write():
            upload = _get(rt, user, upload_id)
            if upload.state == "completed":
                return _result(upload)
            Blob.insert(sha256=upload.sha256, size=upload.size,
                        created_at=rt.now()).on_conflict_ignore().execute()
            mtime = upload.mtime if upload.mtime is not None else int(rt.clock())
            outcome = library.apply_put(rt, user.id, upload.device_id, upload.path,
                                        upload.sha256, upload.size, mtime, upload.base_rev)
            Upload.update(state="completed", touched_at=rt.now(),
                          result_status=outcome["status"], result_rev=outcome.get("rev"),
                          result_conflict_id=outcome.get("conflict_id")).where(
                Upload.id == upload_id).execute()
            UploadChunk.delete().where(UploadChunk.upload == upload_id).execute()
            upload = Upload.get_by_id(upload_id)
    return _result(upload)


def _store(rt, upload):
    """Hash the spool file and move it into ``blobs/``. After a crash between
    that move and the commit, the spool is gone and the blob is checked instead."""
    spool = blobs.spool_path(rt.config, upload.id)
    target = blobs.blob_path(rt.config, upload.sha256)
    known = _mismatches.get(upload.id)
    if known is not None:
        # Nothing was re-sent since: the same answer without reading again.
        raise errors.bad_request(errors.DIGEST_MISMATCH, known)
    if os.path.exists(spool):
        size, sha256 = _hash(spool)
        if size != upload.size or sha256 != upload.sha256:
            description = (f"The received bytes ({size} bytes, sha256 {sha256}) do not match "
                           f"the session's size and sha256; re-send the chunks that differ.")
            _mismatches[upload.id] = description
            raise errors.bad_request(errors.DIGEST_MISMATCH, description)
        blobs.store_spool(rt.config, upload.id, upload.sha256)
    elif not os.path.exists(target) or _hash(target) != (upload.size, upload.sha256):
        raise errors.SyncError(
            409, errors.UPLOAD_LOST,
            "The received bytes of this upload are gone; cancel it and upload again.")


# Completing hashes a whole spool file (a 1 GiB one: 0.55 s of a core, and
# the disk's full read speed). At most this many are hashed at once; other
# completions wait their turn.
HASHES_AT_ONCE = 2
_hash_slots = threading.BoundedSemaphore(HASHES_AT_ONCE)
# upload id -> the digest_mismatch answer of its last complete; dropped when
# a chunk is sent again (under the gate, which excludes complete).
_mismatches = {}


def _hash(path):
    with _hash_slots:
        return blobs.hash_file(path)


def cancel(rt, user, upload_id):
    """Cancel a session: its spool file and its rows go. The file goes
    first: on a full disk that is the room the database needs to record
    the cancellation (a session without its file is cancelled again by a
    retry, or swept)."""
    _get(rt, user, upload_id)
    with _gate.closing(upload_id):
        blobs.remove_spool(rt.config, upload_id)
        _mismatches.pop(upload_id, None)
        with write():
            upload = _get(rt, user, upload_id)
            upload.delete_instance()
            library.queue_content([upload.sha256], rt.now())


SWEEP_BATCH = 500


def sweep(rt, pause=None):
    """Remove expired sessions with their spool files (found through the
    ``touched_at`` index, in batches of ``SWEEP_BATCH``, one write
    transaction each, ``pause()`` between them) and spool files without a
    session (left by a crash). A removed session's content is queued for
    the blob clean-up. Returns ``(sessions removed, longest transaction in s)``."""
    cutoff = iso(rt.clock() - rt.config.upload_expiry)
    removed, longest = 0, 0.0
    while True:
        started = time.monotonic()
        with write():
            expired = list(Upload.select(Upload.id, Upload.sha256)
                           .where(Upload.state.in_(("open", "completed"))
                                  & (Upload.touched_at <= cutoff))
                           .limit(SWEEP_BATCH).tuples())
            if expired:
                Upload.delete().where(Upload.id.in_([r[0] for r in expired])).execute()
                library.queue_content({r[1] for r in expired}, rt.now())
        longest = max(longest, time.monotonic() - started)
        for upload_id, _ in expired:
            blobs.remove_spool(rt.config, upload_id)
        removed += len(expired)
        if len(expired) < SWEEP_BATCH:
            break
        if pause is not None:
            pause()
    started = time.monotonic()
    with write():
        # Inside the write lock: a session is created (and its spool file
        # reserved) in one, so no new session's file is taken for a leftover.
        files = list(blobs.spool_ids(rt.config))
        sessions = {r[0] for r in Upload.select(Upload.id).where(Upload.id.in_(files)).tuples()}
        for upload_id in files:
            if upload_id not in sessions:
                blobs.remove_spool(rt.config, upload_id)
    longest = max(longest, time.monotonic() - started)
    return removed, longest

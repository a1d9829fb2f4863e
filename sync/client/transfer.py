"""Moving content: resumable chunked uploads, sent several chunks at a time
(a small thread pool, each thread its own HTTP session), and streamed
downloads into a temporary file inside the folder, verified against the
expected sha256 before anyone may rename it into place."""

import hashlib
import os
import secrets
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import requests

from .api import ApiError
from .scan import FileChanging

UPLOAD_WORKERS = 4
DOWNLOAD_BLOCK = 1024 * 1024
RESUMES = 3  # a download stream broken this many times gives up until the next pass
PROGRESS_FROM = 4 * 1024 * 1024  # smaller transfers finish before a bar helps


class TransferError(Exception):
    """A transfer failed in a way the next pass may fix (message says why)."""


def progress_bar(enabled, size, label):
    """A tqdm bar for a transfer of ``size`` bytes, or ``None``."""
    if not enabled or size < PROGRESS_FROM:
        return None
    from tqdm import tqdm
    return tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                desc=label[-40:], leave=False, file=sys.stdout)


def _open_session(api, state, path, size, sha256, base_rev, mtime, chunk_size):
    """The upload session to use for this content: the remembered one when
    the server still has it (resume), else a new one, remembered at once."""
    stored = state.upload(path)
    if stored is not None:
        if (stored.sha256, stored.size, stored.base_rev) == (sha256, size, base_rev):
            try:
                session = api.get_upload(stored.upload_id)
                if session.get("state") in ("open", "completed"):
                    return session
            except ApiError as exc:
                if exc.status != 404:
                    raise
        else:
            try:
                api.cancel_upload(stored.upload_id)
            except ApiError:
                pass
        state.drop_upload(path)
    session = api.create_upload(path, size, sha256, base_rev, mtime=mtime, chunk_size=chunk_size)
    state.set_upload(path, session["id"], sha256, size, base_rev)
    return session


def _send_chunks(api, full_path, session, indices, workers, bar):
    size, chunk_size = session["size"], session["chunk_size"]
    upload_id = session["id"]
    local = threading.local()
    clones = []
    lock = threading.Lock()

    def send(index):
        if not hasattr(local, "api"):
            local.api = api.clone()
            with lock:
                clones.append(local.api)
        offset = index * chunk_size
        length = min(chunk_size, size - offset)
        with open(full_path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise FileChanging(full_path)
        local.api.put_chunk(upload_id, index, data)
        if bar is not None:
            with lock:
                bar.update(length)

    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(indices))))
    try:
        futures = [pool.submit(send, i) for i in indices]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            if future.done() and not future.cancelled() and future.exception():
                raise future.exception()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for clone in clones:
            clone.close()


def upload(api, state, folder, local, sha256, base_rev, mtime, chunk_size=None,
           workers=UPLOAD_WORKERS, show_progress=False):
    """Upload ``local`` (resuming a remembered session) and complete it; the
    server's answer to complete (``status``, ``rev``, ``conflict_id``)."""
    full_path = os.path.join(folder, local.rel)
    session = _open_session(api, state, local.path, local.size, sha256, base_rev, mtime,
                            chunk_size)
    if session.get("state") == "open":
        received = set(session.get("received") or [])
        missing = [i for i in range(session["chunk_count"]) if i not in received]
        bar = progress_bar(show_progress, local.size, "up " + local.path)
        if bar is not None:
            bar.update(local.size - sum(
                min(session["chunk_size"], local.size - i * session["chunk_size"])
                for i in missing))
        try:
            _send_chunks(api, full_path, session, missing, workers, bar)
        finally:
            if bar is not None:
                bar.close()
    result = _complete(api, state, local, full_path, session, workers)
    state.drop_upload(local.path)
    return result


def _complete(api, state, local, full_path, session, workers):
    """Complete the session, sending once more any chunk the server says it
    lacks; a session whose bytes do not add up is cancelled and forgotten."""
    for attempt in range(2):
        try:
            return api.complete_upload(session["id"])
        except ApiError as exc:
            missing = exc.body.get("missing")
            if exc.code == "chunks_missing" and attempt == 0 and isinstance(missing, list):
                _send_chunks(api, full_path, session, missing, workers, None)
                continue
            if exc.code in ("digest_mismatch", "chunks_missing", "upload_lost"):
                api.cancel_upload(session["id"])
                state.drop_upload(local.path)
                if exc.code == "digest_mismatch":
                    # The file changed under the upload: the next pass hashes
                    # the new content and starts again.
                    raise FileChanging(local.path) from None
                raise TransferError(f"the server lost the upload of {local.path} "
                                    f"({exc.code}); sent again on the next pass") from None
            raise
    raise AssertionError("unreachable")


def download(api, tmp_dir, path, sha256, size, show_progress=False):
    """Stream ``path``'s head into a new file under ``tmp_dir`` and return its
    name once its size and sha256 are verified and it is fsynced. A stream
    broken midway goes on from where it stopped (a Range request guarded by
    the sha256 as ETag). ``TransferError`` when the server's content is not
    what the feed said (it changed meanwhile; the next pass fetches it)."""
    os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
    tmp = os.path.join(tmp_dir, secrets.token_hex(8) + ".part")
    bar = progress_bar(show_progress, size, "down " + path)
    try:
        # 0666 less the umask, like any new file: the file keeps these
        # permissions once renamed into the folder (tmp_dir itself is 0700).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            written, got = _stream(api, f, path, sha256, bar)
            f.flush()
            os.fsync(f.fileno())
        if written != size or got != sha256:
            raise TransferError(f"{path} changed on the server during the download")
        return tmp
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        if bar is not None:
            bar.close()


def _stream(api, f, path, sha256, bar):
    """Write the download into ``f``, resuming a broken stream up to
    ``RESUMES`` times; (bytes written, their sha256)."""
    written, digest = 0, hashlib.sha256()
    for attempt in range(RESUMES + 1):
        resp = api.download(path, written, sha256)
        try:
            if resp.status_code == 200 and written:
                f.seek(0)       # the server sent it all again: start over
                f.truncate()
                written, digest = 0, hashlib.sha256()
                if bar is not None:
                    bar.reset()
            for block in resp.iter_content(DOWNLOAD_BLOCK):
                f.write(block)
                digest.update(block)
                written += len(block)
                if bar is not None:
                    bar.update(len(block))
            return written, digest.hexdigest()
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.Timeout):
            if attempt == RESUMES:
                raise
        finally:
            resp.close()
    raise AssertionError("unreachable")

"""Walking the local folder: every regular file under it except any
``.sync`` (a folder's own state, holding its device token, at whatever
depth) and any folder inside it that is a sync folder of its own (it syncs
itself; taking its files too would copy the two into each other), keyed
by its library path (NFC, so macOS's decomposed NFD names map to the
server's paths), and hashing with the state database as a cache (re-hashed
only when size or mtime moved). Symlinks and special files are skipped
with a warning; names the library cannot hold are reported, never silently
dropped; a folder that cannot be read is reported and left alone for the
pass, so it never reads as "its files were deleted"."""

import hashlib
import os
import stat
import sys
import unicodedata
from collections import namedtuple

from .. import paths
from .state import SYNC_DIR

HASH_BLOCK = 1024 * 1024

LocalFile = namedtuple("LocalFile", "path rel size mtime_ns")


class ScanResult:
    """``files`` (library path -> LocalFile), ``warnings`` (one line each),
    ``problems`` (the warnings about files left out of the sync: the folder is
    not in sync while there are any) and ``unreadable`` (library path
    prefixes whose contents are unknown)."""

    def __init__(self):
        self.files = {}
        self.warnings = []
        self.problems = []
        self.unreadable = []
        self.nested = []

    def left_alone(self, path):
        """Paths under a nested sync folder: neither sent nor deleted here."""
        return any(path == p or path.startswith(p + "/") for p in self.nested)

    def problem(self, text):
        self.warnings.append(text)
        self.problems.append(text)

    def is_unknown(self, path):
        return self.left_alone(path) or any(
            path == p or path.startswith(p + "/") for p in self.unreadable)


def library_path(rel):
    """The library path of the local relative path ``rel`` (``/``-separated),
    or ``None`` when the library cannot hold that name."""
    try:
        return paths.normalize(unicodedata.normalize("NFC", rel))
    except paths.PathError:
        return None


def _plain(name):
    """Whether a file name is printable ASCII the library holds as it is:
    already NFC, no control or disguising character, no backslash, not
    ``.`` or ``..``, short enough. Such a name needs no normalizing (most
    names of a large library: checking only this keeps a scan of 100,000
    files quick)."""
    return (name.isascii() and name.isprintable() and "\\" not in name
            and len(name) <= paths.MAX_SEGMENT_BYTES and name not in (".", ".."))


def _shown(rel):
    return rel.encode("utf-8", "backslashreplace").decode("utf-8")


def scan(folder):
    """Every regular file under ``folder`` (see the module docstring)."""
    result = ScanResult()
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        full_dir = os.path.join(folder, rel_dir) if rel_dir else folder
        # The folder's own library path (checked before it was entered).
        dir_path = library_path(rel_dir) if rel_dir else ""
        room = paths.MAX_PATH_BYTES - len((dir_path or "").encode("utf-8")) - 1
        try:
            entries = list(os.scandir(full_dir))
        except OSError as exc:
            result.problem(f"cannot read folder {_shown(rel_dir) or '.'}: "
                                   f"{exc.strerror or exc}; left alone")
            result.unreadable.append(library_path(rel_dir) or rel_dir)
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.name == SYNC_DIR:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted during the scan: gone, as the next look confirms
            except OSError as exc:
                result.problem(f"cannot read {_shown(rel)}: {exc.strerror or exc}")
                result.unreadable.append(library_path(rel) or rel)
                continue
            if stat.S_ISLNK(st.st_mode):
                result.warnings.append(f"skipped symlink {_shown(rel)}")
                continue
            if stat.S_ISDIR(st.st_mode):
                if library_path(rel) is None:
                    result.problem(f"skipped folder {_shown(rel)}: the library cannot "
                                           "hold that name")
                    continue
                if os.path.isdir(os.path.join(folder, rel, SYNC_DIR)):
                    result.warnings.append(f"skipped folder {_shown(rel)}: it is a sync folder "
                                           "of its own")
                    result.nested.append(library_path(rel))
                    continue
                stack.append(rel)
                continue
            if not stat.S_ISREG(st.st_mode):
                result.warnings.append(f"skipped special file {_shown(rel)}")
                continue
            if dir_path is not None and _plain(entry.name) and len(entry.name) <= room:
                path = f"{dir_path}/{entry.name}" if dir_path else entry.name
            else:
                path = library_path(rel)
            if path is None:
                result.problem(f"skipped {_shown(rel)}: the library cannot hold that name")
                continue
            if path in result.files:
                result.problem(
                    f"skipped {_shown(rel)}: same name as {_shown(result.files[path].rel)} "
                    "once Unicode-normalized")
                continue
            path = sys.intern(path)  # shared with the state's views (see state._by_path)
            result.files[path] = LocalFile(path, rel, st.st_size, st.st_mtime_ns)
    return result


def file_sha256(full_path):
    digest = hashlib.sha256()
    with open(full_path, "rb") as f:
        while True:
            block = f.read(HASH_BLOCK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


class Hasher:
    """sha256 of local files, cached in the state database by (size, mtime)."""

    def __init__(self, folder, state):
        self.folder = folder
        self.state = state
        self.hashed = 0

    def sha256(self, local):
        cached = self.state.cached_hash(local.path, local.size, local.mtime_ns)
        if cached:
            return cached
        full = os.path.join(self.folder, local.rel)
        before = os.stat(full)
        sha = file_sha256(full)
        after = os.stat(full)
        self.hashed += 1
        if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns) \
                == (local.size, local.mtime_ns):
            self.state.remember_hash(local.path, local.size, local.mtime_ns, sha)
            return sha
        raise FileChanging(local.path)


class FileChanging(Exception):
    """The file changed while it was being read; it is tried again next pass."""

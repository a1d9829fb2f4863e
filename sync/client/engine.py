"""One sync pass over a folder: read the server's open conflicts and its
feed, scan the folder, decide (``plan``), refuse mass deletions, report
local changes, upload what the server asks for, apply the server's changes
to the folder, and acknowledge the feed. Every local write re-checks the
file just before it happens (a download is renamed into place, a file
deleted or renamed, only if it is still the one the pass planned with), so
a local edit the client has not reported is never overwritten."""

import dataclasses
import os
import stat
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

from . import transfer
from .api import Api, ApiError
from .plan import make_plan
from .scan import FileChanging, Hasher, LocalFile, file_sha256, scan
from .state import TMP_DIR, Conflict, Remote, State, Synced, load_config, sync_dir

REPORT_BATCH = 1000
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024  # the server's default
FEED_PAGE = 1000


_CHANGE_KEYS = ("rev", "op", "path", "sha256", "size", "mtime", "moved_from")


def _compact(change):
    """A change of the feed as a tuple, its path and sha256 interned (shared
    with the scan's and the state's copies of the same strings)."""
    values = [change.get(k) for k in _CHANGE_KEYS]
    for i in (2, 3):
        if isinstance(values[i], str):
            values[i] = sys.intern(values[i])
    return tuple(values)


class _Changes:
    """The feed's changes in rev order, handed out as dicts one at a time
    (each time it is iterated) from the tuples ``read_feed`` keeps."""

    def __init__(self, latest):
        self.rows = sorted(latest.values())

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        for values in self.rows:
            yield {k: v for k, v in zip(_CHANGE_KEYS, values) if v is not None or k == "mtime"}


class PassError(Exception):
    """The pass stopped before changing anything; the message says why."""


@dataclasses.dataclass
class Options:
    quiet: bool = False
    allow_mass_delete: bool = False
    show_progress: bool = False
    chunk_size: int = None       # None: the server's default
    workers: int = transfer.UPLOAD_WORKERS


@dataclasses.dataclass
class Summary:
    up: int = 0
    down: int = 0
    deleted_here: int = 0
    deleted_there: int = 0
    moved: int = 0
    new_conflicts: int = 0
    open_conflicts: int = 0
    problems: list = dataclasses.field(default_factory=list)

    @property
    def in_sync(self):
        return not self.problems and not self.open_conflicts

    def line(self):
        return (f"{self.up} up, {self.down} down, {self.deleted_here} deleted here, "
                f"{self.deleted_there} deleted on the server, {self.moved} moved, "
                f"{self.new_conflicts} new conflicts")

    def reason(self):
        """One line saying why the folder is not in sync, or None."""
        parts = []
        if self.open_conflicts:
            parts.append(f"{self.open_conflicts} conflict(s) open (see the conflicts command)")
        if self.problems:
            parts.append(f"{len(self.problems)} problem(s): {self.problems[0]}")
        return "; ".join(parts) or None


class Engine:
    """Syncs one folder. ``api`` defaults to the folder's server and token."""

    def __init__(self, folder, api=None, options=None, out=None, err=None):
        self.folder = os.path.abspath(folder)
        self.config = load_config(self.folder)
        self.api = api or Api(self.config["server"], self.config["token"],
                              ca_bundle=self.config.get("ca_bundle"))
        self.options = options or Options()
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.state = State.open(self.folder)
        self.hasher = Hasher(self.folder, self.state)
        self.tmp_dir = os.path.join(sync_dir(self.folder), TMP_DIR)

    def close(self):
        self.state.close()

    def say(self, text):
        if not self.options.quiet:
            print(text, file=self.out, flush=True)

    def warn(self, text):
        print(f"warning: {text}", file=self.err, flush=True)

    # The server's view
    def read_feed(self, cursor):
        """Every change after ``cursor``: (changes, next cursor, relisted?);
        an expired cursor means listing the whole library again."""
        relisted = False
        latest = {}
        while True:
            try:
                page = self.api.changes(cursor, FEED_PAGE)
            except ApiError as exc:
                # cursor_invalid too: a cursor the server never issued means
                # it lost history (restored from an older copy of itself).
                if exc.code not in ("cursor_expired", "cursor_invalid") or relisted:
                    raise
                self.warn("the server no longer knows this folder's place in its history "
                          "(restored or reinstalled?): listing the whole library again")
                cursor, relisted, latest = None, True, {}
                continue
            for change in page["changes"]:
                # A tuple, not the page's dict: a first listing of 100,000
                # entries is held whole, and a dict costs four times more.
                latest[change["path"]] = _compact(change)
            cursor = page["cursor"]
            if not page["has_more"]:
                return _Changes(latest), cursor, relisted

    # Conflicts
    def mine(self, conflicts):
        """``{id: conflict}`` of the conflicts (as the server lists them) this device made."""
        me = self.config["device_id"]
        return {c["id"]: c for c in conflicts if (c.get("client") or {}).get("device_id") == me}

    def _record_conflicts(self, mine):
        with self.state.transaction():
            for cid, c in mine.items():
                client = c.get("client") or {}
                self.state.add_conflict(Conflict(cid, c["path"], c.get("kind"), client.get("to"),
                                                 client.get("op"), client.get("sha256")))

    def _settled(self, open_ids, local, synced, remote):
        """Conflicts of this device resolved since the last pass (here or on
        another device): ``(bases, resolved ids)``, where ``bases`` maps a path
        to its new synced base (None: no base). If the folder still holds the
        version that was reported, it takes whatever the server now has; if it
        was edited since, the old base stays so the edit is reported (and
        conflicts) again. A local file whose content the server does not hold
        at all (the losing side of a case clash, say) gets no base: it is
        never deleted by a resolution, and is reported again as new."""
        bases, resolved = {}, []
        held = {r.sha256 for r in remote.values()}
        for cid, c in self.state.conflicts().items():
            if cid in open_ids:
                continue
            paths = [c.path] + ([c.to] if c.to else [])
            if self._still_as_reported(c, local):
                try:
                    hashes = {p: self.hasher.sha256(local[p]) for p in paths if p in local}
                except (OSError, FileChanging):
                    continue  # settled on a later pass, once the file is readable
                for path in paths:
                    f = local.get(path)
                    if f is None or (path not in remote and hashes[path] not in held):
                        bases[path] = None
                    else:
                        bases[path] = Synced(path, 0, hashes[path], f.size, f.mtime_ns)
            resolved.append(cid)
        return bases, resolved

    def _still_as_reported(self, c, local):
        f = local.get(c.path)
        try:
            if c.client_op == "delete":
                return f is None
            if c.client_op == "move":
                return f is None and c.to in local
            return f is not None and self.hasher.sha256(f) == c.client_sha256
        except (OSError, FileChanging):
            return False

    # The pass
    def prepare(self, save):
        """Read the server and the folder; the ``(plan, scan, conflicts)`` of
        a pass. ``save`` records the feed, the rebased bases and the settled
        conflicts; without it (``status``) the same plan is computed and
        nothing is recorded."""
        conflicts = self.api.conflicts()
        mine = self.mine(conflicts)
        cursor = self.state.get("cursor")
        changes, next_cursor, relisted = self.read_feed(cursor)
        remote = with_changes({} if relisted else self.state.remote(), changes)
        before = self.state.synced()
        synced = rebased(before, remote) if relisted else dict(before)
        self.next_cursor = next_cursor
        found = scan(self.folder)
        self.state.forget_hashes(set(found.files))
        bases, resolved = self._settled(set(mine), found.files, synced, remote)
        for path, base in bases.items():
            if base is None:
                synced.pop(path, None)
            else:
                synced[path] = base
        if save:
            self.state.apply_feed(changes, next_cursor, relisted)
            del changes  # the heads are in `remote` now
            with self.state.transaction():
                self.state.replace_synced(before, synced)
                for cid in resolved:
                    self.state.drop_conflict(cid)
            self._record_conflicts(mine)
        self.synced_count = len(synced)
        self.folds = Folds(found.files, remote)
        frozen = set()
        for c in mine.values():
            frozen.add(c["path"])
            if (c.get("client") or {}).get("to"):
                frozen.add(c["client"]["to"])
        plan = make_plan(found.files, synced, remote, self.hasher.sha256,
                         skip=lambda p: p in frozen or found.is_unknown(p),
                         case_insensitive=_case_insensitive(self.folder))
        return plan, found, conflicts

    def run(self):
        """One full pass; the ``Summary``. ``PassError`` when the pass
        refused to start, ``Unreachable``/``ApiError`` when the server failed."""
        _clean_tmp(self.tmp_dir)
        plan, found, conflicts = self.prepare(save=True)
        summary = Summary()
        for warning in found.warnings:
            self.warn(warning)
        summary.problems.extend(found.problems)
        summary.problems.extend(plan.problems)
        if not self.options.allow_mass_delete:
            refusal = plan.mass_delete(self.synced_count)
            if refusal:
                raise PassError(refusal)
        self._drop_stale_uploads(found.files)
        self._adopt(plan.adopts)
        self._report(plan.reports, summary)
        self._apply_moves(plan.moves, summary)
        self._apply_downloads(plan.downloads, summary)
        self._apply_deletes(plan.deletes, summary)
        if plan.reports:  # reports and uploads may have raised conflicts
            conflicts = self.api.conflicts()
        mine = self.mine(conflicts)
        self._record_conflicts(mine)
        summary.open_conflicts = len(mine)
        if self.next_cursor != self.state.get("acked"):
            # An idle pass (--watch) does not ack again: that would be a
            # database write on the server every interval for nothing.
            self.api.ack(self.next_cursor)
            self.state.put("acked", self.next_cursor)
        return summary

    def _drop_stale_uploads(self, local):
        """Cancel remembered uploads of files that are gone from the folder
        (a changed file's session is replaced when it is uploaded again)."""
        for upload in self.state.uploads():
            if upload.path not in local:
                try:
                    self.api.cancel_upload(upload.upload_id)
                except ApiError:
                    pass  # the server expires it anyway
                self.state.drop_upload(upload.path)

    # Recording without transfers
    def _adopt(self, adopts):
        with self.state.transaction():
            for a in adopts:
                if a.local is None:
                    self.state.drop_synced(a.path)
                else:
                    self.state.set_synced(a.path, a.rev, a.sha256, a.local.size,
                                          a.local.mtime_ns)

    def _synced_put(self, local, sha256, rev, mtime=None):
        with self.state.transaction():
            self.state.set_synced(local.path, rev, sha256, local.size, local.mtime_ns)
            self.state.set_remote(local.path, rev, sha256, local.size,
                                  mtime if mtime is not None else local.mtime_ns // 10**9)

    def _known_rev(self, path, sha256):
        """The rev of the server's head at ``path`` if it holds ``sha256``;
        else 0, which the next feed read replaces."""
        r = self.state.remote_entry(path)
        return r.rev if r is not None and r.sha256 == sha256 else 0

    def _forget(self, path):
        with self.state.transaction():
            self.state.drop_synced(path)
            self.state.drop_remote(path)

    # Local changes to the server
    def _report(self, reports, summary):
        uploads = []
        for start in range(0, len(reports), REPORT_BATCH):
            batch = reports[start:start + REPORT_BATCH]
            results = self.api.report([r.item for r in batch])
            for report, result in zip(batch, results):
                self._reported(report, result, summary, uploads)
        # Files of one chunk go several at a time (a request's latency, not
        # bandwidth, is what costs there); larger files one at a time, with
        # their chunks in parallel.
        one_chunk = self.options.chunk_size or DEFAULT_CHUNK_SIZE
        small = [r for r in uploads if r.local.size <= one_chunk]
        large = [r for r in uploads if r.local.size > one_chunk]
        for report, outcome in self._pooled(small, lambda api, r: self._send(api, r, 1)):
            self._uploaded(report, outcome, summary)
        for report in large:
            try:
                outcome = self._send(self.api, report, self.options.workers)
            except Exception as exc:  # recorded as this file's problem
                outcome = exc
            self._uploaded(report, outcome, summary)

    def _pooled(self, items, work):
        """``(item, work(api, item) or the exception it raised)`` for each
        item as it finishes, from a few threads with an HTTP session each;
        the caller records results in this thread."""
        if not items:
            return
        local = threading.local()
        clones = []
        lock = threading.Lock()

        def run(item):
            if not hasattr(local, "api"):
                local.api = self.api.clone()
                with lock:
                    clones.append(local.api)
            return work(local.api, item)

        pool = ThreadPoolExecutor(max_workers=max(1, min(self.options.workers, len(items))))
        try:
            futures = {pool.submit(run, item): item for item in items}
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as exc:  # recorded as this item's problem
                    outcome = exc
                yield futures[future], outcome
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for clone in clones:
                clone.close()

    def _send(self, api, report, workers):
        item = report.item
        return transfer.upload(api, self.state, self.folder, report.local, report.sha256,
                               item["base_rev"], item["mtime"],
                               chunk_size=self.options.chunk_size, workers=workers,
                               show_progress=self.options.show_progress)

    def _reported(self, report, result, summary, uploads):
        item, status = report.item, result.get("status")
        op, path = item["op"], item["path"]
        if status == "upload_required" and op == "put":
            uploads.append(report)
        elif status in ("applied", "unchanged"):
            rev = result.get("rev")
            if op == "delete":
                self._forget(path)
                if status == "applied":
                    summary.deleted_there += 1
                    self.say(f"deleted on the server: {path}")
                return
            if op == "move":
                self._forget(path)
            if rev is None:
                rev = self._known_rev(item.get("to", path), report.sha256)
            self._synced_put(report.local, report.sha256, rev)
            if status == "applied":
                if op == "move":
                    summary.moved += 1
                    self.say(f"moved on the server: {path} -> {item['to']}")
                else:
                    summary.up += 1
                    self.say(f"up: {path}")
        elif status == "conflict":
            self._conflicted(result.get("conflict_id"), item, report.sha256, summary,
                             result.get("rev"))
        else:
            error = result.get("error") or status
            summary.problems.append(f"the server rejected {op} {path}: {error}")

    def _conflicted(self, conflict_id, item, sha256, summary, rev=None):
        summary.new_conflicts += 1
        self.say(f"conflict: {self._conflict_reason(item, rev)}")
        if conflict_id:
            self.state.add_conflict(Conflict(conflict_id, item["path"], None, item.get("to"),
                                             item["op"], sha256))

    def _conflict_reason(self, item, rev):
        """What clashed with what, in one line, for a conflict a report or an
        upload just raised."""
        path, op = item["path"], item["op"]
        name = item.get("to", path)
        twins = sorted(p for p in self.folds.get(name.casefold(), ()) if p != name)
        if op != "delete" and rev is None and twins:
            return (f"{name} differs only by case from {twins[0]} on the server (devices "
                    "that ignore case cannot hold both); both kept here")
        if op == "delete":
            return f"{path} was deleted here but changed on the server; nothing deleted"
        if op == "move":
            return (f"{path} was moved here to {item['to']}, but on the server {path} changed "
                    f"or {item['to']} exists; kept as it is here")
        if item.get("base_rev") is None:
            return (f"{path} was created here and on another device with different content; "
                    "kept as it is here")
        return f"{path} changed here and on the server; kept as it is here"

    def _uploaded(self, report, outcome, summary):
        item, local = report.item, report.local
        if isinstance(outcome, FileChanging):
            summary.problems.append(f"{local.path} changed during its upload; "
                                    "sent again on the next pass")
            return
        if isinstance(outcome, Exception):
            summary.problems.append(f"upload of {local.path} failed: {_why(outcome)}")
            return
        status = outcome.get("status")
        if status == "conflict":
            self._conflicted(outcome.get("conflict_id"), item, report.sha256, summary,
                             outcome.get("rev"))
            return
        self._synced_put(local, report.sha256, outcome.get("rev") or 0, item["mtime"])
        if status == "applied":
            summary.up += 1
            self.say(f"up: {local.path}")

    # Server changes to the folder
    def _full(self, rel):
        return os.path.join(self.folder, *rel.split("/"))

    def _unchanged_on_disk(self, rel, expect):
        """Is the file at ``rel`` still what the pass planned with (``expect``
        a synced row, or None for "nothing there")?"""
        try:
            st = os.stat(self._full(rel), follow_symlinks=False)
        except FileNotFoundError:
            return expect is None
        if expect is None:
            return False
        if (st.st_size, st.st_mtime_ns) == (expect.size, expect.mtime_ns):
            return True
        try:
            return st.st_size == expect.size and file_sha256(self._full(rel)) == expect.sha256
        except OSError:
            return False

    def _placed(self, path, rel, remote):
        """Give the placed file the server's mtime and record it as synced."""
        full = self._full(rel)
        if remote.mtime is not None:
            try:
                os.utime(full, (remote.mtime, remote.mtime))
            except OSError:
                pass
        st = os.stat(full)
        local = LocalFile(path, rel, st.st_size, st.st_mtime_ns)
        with self.state.transaction():
            self.state.set_synced(path, remote.rev, remote.sha256, st.st_size, st.st_mtime_ns)
            self.state.remember_hash(path, st.st_size, st.st_mtime_ns, remote.sha256)
        return local

    def _apply_moves(self, moves, summary):
        for move in moves:
            source, target = move.source.rel, move.path
            if not self._unchanged_on_disk(source, move.expect) or not (
                    self._unchanged_on_disk(target, None) or self._same_file(source, target)):
                summary.problems.append(f"{source} or {target} changed here during the pass; "
                                        "kept, reported on the next pass")
                continue
            try:
                os.makedirs(os.path.dirname(self._full(target)), exist_ok=True)
                os.rename(self._full(source), self._full(target))
            except OSError as exc:
                summary.problems.append(f"cannot move {source} to {target} here: {_why(exc)}")
                continue
            self._prune_dirs(source)
            self.state.drop_synced(move.source.path)
            self._placed(target, target, move.remote)
            summary.moved += 1
            self.say(f"moved here: {source} -> {target}")

    def _same_file(self, a, b):
        """Do two names reach one file (a case-only rename on a disk that
        ignores case)?"""
        try:
            return os.path.samefile(self._full(a), self._full(b))
        except OSError:
            return False

    def _apply_downloads(self, downloads, summary):
        def fetch(api, down):
            return transfer.download(api, self.tmp_dir, down.path, down.remote.sha256,
                                     down.remote.size, show_progress=self.options.show_progress)

        for down, outcome in self._pooled(downloads, fetch):
            if isinstance(outcome, Exception):
                summary.problems.append(f"download of {down.path} failed: {_why(outcome)}")
                continue
            self._place(down, outcome, summary)

    def _place(self, down, tmp, summary):
        """Rename a verified download into place, unless the local file moved
        since the pass was planned (checked just before the rename)."""
        try:
            if os.path.isdir(self._full(down.rel)):
                summary.problems.append(f"cannot write {down.path} here (a folder has that "
                                        "name): this folder cannot hold that name")
                return
            if not self._unchanged_on_disk(down.rel, down.expect):
                summary.problems.append(f"{down.rel} changed here during the pass; "
                                        "kept, reported on the next pass")
                return
            target = self._full(down.rel)
            if down.expect is not None:
                # A new version keeps the old one's permissions (an executable
                # script stays executable).
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(tmp, target)
        except OSError as exc:
            summary.problems.append(f"cannot write {down.path} here ({_why(exc)}): this "
                                    "folder cannot hold that name")
            return
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        self._placed(down.path, down.rel, down.remote)
        summary.down += 1
        self.say(f"down: {down.path}")

    def _apply_deletes(self, deletes, summary):
        for delete in deletes:
            if not self._unchanged_on_disk(delete.local.rel, delete.expect):
                summary.problems.append(f"{delete.local.rel} changed here during the pass; "
                                        "kept, reported on the next pass")
                continue
            try:
                os.remove(self._full(delete.local.rel))
            except FileNotFoundError:
                pass
            except OSError as exc:
                summary.problems.append(f"cannot delete {delete.local.rel}: {_why(exc)}")
                continue
            self._prune_dirs(delete.local.rel)
            self.state.drop_synced(delete.path)
            summary.deleted_here += 1
            self.say(f"deleted here: {delete.path}")

    def _prune_dirs(self, rel):
        """Remove the folders a delete or move left empty (never the root)."""
        parts = rel.split("/")[:-1]
        while parts:
            try:
                os.rmdir(self._full("/".join(parts)))
            except OSError:
                return
            parts.pop()


def with_changes(remote, changes):
    """The server's heads ``remote`` (path -> Remote) after a feed read."""
    remote = dict(remote)
    for change in changes:
        if change["op"] == "delete":
            remote.pop(change["path"], None)
        else:
            remote[change["path"]] = Remote(change["path"], change["rev"], change["sha256"],
                                            change["size"], change.get("mtime"),
                                            change.get("moved_from"))
    return remote


class Folds:
    """The paths sharing each case fold, among some collections of paths.
    A folder of 100,000 files has almost no two paths that differ only by
    case: each fold is stored once, as the path itself when folding leaves
    it unchanged, and only the shared folds keep a set (a set per path cost
    30 MiB at 100,000 files)."""

    def __init__(self, *collections):
        self.one = {}
        self.many = {}
        for collection in collections:
            for path in collection:
                key = path.casefold()
                if key == path:
                    key = path
                other = self.one.setdefault(key, path)
                if other != path:
                    self.many.setdefault(key, {other}).add(path)

    def get(self, key, default=()):
        if key in self.many:
            return self.many[key]
        path = self.one.get(key)
        return default if path is None else {path}


def rebased(synced, remote):
    """The bases after a relist: nothing of the old history can be trusted,
    so a base whose content the server no longer holds at that path is
    forgotten, and the local file is reported as new (uploaded, or a
    conflict) instead of being deleted or overwritten by a possibly older
    server."""
    kept = {}
    for path, s in synced.items():
        r = remote.get(path)
        if r is not None and r.sha256 == s.sha256:
            kept[path] = s._replace(rev=r.rev)
    return kept


def _why(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _clean_tmp(tmp_dir):
    """Downloads a killed pass left half-written."""
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".part"):
            try:
                os.remove(os.path.join(tmp_dir, name))
            except OSError:
                pass


def _case_insensitive(folder):
    """Does the folder's file system ignore case (macOS, Windows)?"""
    probe = os.path.join(sync_dir(folder), "state.sqlite3")
    return os.path.exists(os.path.join(sync_dir(folder), "STATE.SQLITE3")) and \
        os.path.exists(probe)

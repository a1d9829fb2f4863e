"""Deciding a pass from three views of every path (the local file, the
``synced`` base, the server's ``remote`` head): a change on the local side
only is reported (a deleted file whose exact content reappears elsewhere as
a move); a change on the server only is downloaded, deleted or renamed
here; a change on both sides is either equal content, simply recorded, or
the local change reported against the old base for the server to decide
(an edit beats a delete; anything else becomes a conflict). The client
never decides a conflict itself. Paths with an open conflict of this
device, paths under a folder that could not be read or that is a sync
folder of its own, and anything in a ``.sync`` folder are left alone."""

import dataclasses
from typing import Optional

from .scan import FileChanging, LocalFile
from .state import Remote, Synced

MASS_DELETE_MIN = 5  # a pass may always delete this many files
PRIVATE = ".sync"    # a sync folder's own state: never sent, fetched or deleted


def is_private(path):
    """Does ``path`` lie in a ``.sync`` folder (at any depth)?"""
    return PRIVATE in path.split("/")


@dataclasses.dataclass
class Report:
    """One item for ``POST /report`` and the local file behind it."""
    item: dict
    local: Optional[LocalFile] = None
    sha256: Optional[str] = None
    contested: bool = False      # the server's head moved too: it may conflict


@dataclasses.dataclass
class Download:
    path: str
    remote: Remote
    rel: str                     # where it goes, relative to the folder
    expect: Optional[Synced]     # what must be on disk there (None: nothing)


@dataclasses.dataclass
class LocalDelete:
    path: str
    local: LocalFile
    expect: Synced


@dataclasses.dataclass
class LocalMove:
    source: LocalFile
    expect: Synced
    path: str
    remote: Remote


@dataclasses.dataclass
class Adopt:
    """Record ``path`` as in sync at ``rev`` without moving any bytes
    (``local`` None: forget the path)."""
    path: str
    local: Optional[LocalFile]
    sha256: Optional[str]
    rev: int


@dataclasses.dataclass
class Plan:
    reports: list = dataclasses.field(default_factory=list)
    downloads: list = dataclasses.field(default_factory=list)
    deletes: list = dataclasses.field(default_factory=list)
    moves: list = dataclasses.field(default_factory=list)
    adopts: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)

    @property
    def server_deletes(self):
        return sum(1 for r in self.reports if r.item["op"] == "delete")

    def empty(self):
        return not (self.reports or self.downloads or self.deletes or self.moves)

    def mass_delete(self, library_size):
        """A line saying why this plan deletes too much, or None."""
        for count, where in ((len(self.deletes), "in this folder"),
                             (self.server_deletes, "on the server")):
            if count > MASS_DELETE_MIN and count > library_size / 2:
                return (f"this pass would delete {count} of {library_size} files {where}; "
                        "run again with --allow-mass-delete if that is intended")
        return None


def _base(synced):
    """The base_rev to report: rev 0 marks a base adopted without a known rev."""
    return synced.rev if synced is not None and synced.rev else None


def _mtime(local):
    return local.mtime_ns // 1_000_000_000


def _put(local, sha256, synced):
    return Report({"op": "put", "path": local.path, "sha256": sha256, "size": local.size,
                   "mtime": _mtime(local), "base_rev": _base(synced)}, local, sha256)


def make_plan(local, synced, remote, sha256_of, skip=lambda path: False,
              case_insensitive=False):
    """The ``Plan`` for these views; ``sha256_of(LocalFile)`` hashes lazily
    (cached), ``skip(path)`` leaves a path alone."""
    plan = Plan()
    local_folds = {}
    if case_insensitive:
        for path in local:
            local_folds.setdefault(path.casefold(), path)
    new_puts, gone = [], []
    for path in sorted(_unsettled(local, synced, remote)):
        if skip(path) or is_private(path):
            continue
        loc, s, r = local.get(path), synced.get(path), remote.get(path)
        try:
            local_changed, sha = _local_change(loc, s, sha256_of)
        except FileChanging:
            plan.problems.append(f"{path} is being written; left for the next pass")
            continue
        except OSError as exc:
            plan.problems.append(f"cannot read {path}: {exc.strerror or exc}")
            continue
        if r is not None and s is not None and r.sha256 == s.sha256 and r.rev != s.rev:
            # Same content at a newer rev (a new mtime, a resolution): rebase.
            s = s._replace(rev=r.rev)
            if not local_changed:
                plan.adopts.append(Adopt(path, loc, sha, r.rev))
        remote_changed = (r is None) != (s is None) or (
            r is not None and s is not None and r.rev != s.rev)
        if not local_changed and not remote_changed:
            if loc is not None and (loc.size, loc.mtime_ns) != (s.size, s.mtime_ns):
                plan.adopts.append(Adopt(path, loc, sha, s.rev))
            continue
        if local_changed and remote_changed:
            if loc is None and r is None:
                plan.adopts.append(Adopt(path, None, None, 0))
            elif loc is not None and r is not None and sha == r.sha256:
                plan.adopts.append(Adopt(path, loc, sha, r.rev))
            elif loc is not None:
                plan.reports.append(dataclasses.replace(_put(loc, sha, s), contested=True))
            else:
                plan.reports.append(Report({"op": "delete", "path": path,
                                            "base_rev": _base(s)}, contested=True))
        elif local_changed:
            if loc is None:
                gone.append((path, s))
            elif s is None:
                new_puts.append(_put(loc, sha, s))
            else:
                plan.reports.append(_put(loc, sha, s))
        elif r is None:
            plan.deletes.append(LocalDelete(path, loc, s))
        elif loc is not None and sha == r.sha256:
            plan.adopts.append(Adopt(path, loc, sha, r.rev))
        else:
            other = local_folds.get(path.casefold())
            # A case-only rename on the server (readme -> README) frees the
            # other name in this same pass: it becomes a local rename below.
            renamed = r.moved_from == other and other not in remote
            if loc is None and other is not None and other != path and not renamed:
                plan.problems.append(f"cannot hold {path} beside {other}: this folder's "
                                     "file system ignores case")
                continue
            plan.downloads.append(Download(path, r, loc.rel if loc is not None else path, s))
    _pair_local_moves(plan, gone, new_puts)
    _pair_remote_moves(plan, local)
    return plan


def _unsettled(local, synced, remote):
    """Every path of the three views except those nothing happened to: the
    local file as it was synced (size and mtime) and the server's head at the
    synced rev. Those need nothing (most paths of an idle pass), so they are
    left out before the sort and the per-path rules."""
    paths = []
    for path, loc in local.items():
        s = synced.get(path)
        if s is not None and loc.size == s.size and loc.mtime_ns == s.mtime_ns:
            r = remote.get(path)
            if r is not None and r.rev == s.rev:
                continue
        paths.append(path)
    paths.extend(path for path in synced if path not in local)
    paths.extend(path for path in remote if path not in local and path not in synced)
    return paths


def _local_change(loc, s, sha256_of):
    """(changed since the base?, the local sha256 or None)."""
    if loc is None:
        return s is not None, None
    if s is not None and (loc.size, loc.mtime_ns) == (s.size, s.mtime_ns):
        return False, s.sha256
    sha = sha256_of(loc)
    return s is None or sha != s.sha256, sha


def _pair_local_moves(plan, gone, new_puts):
    """A file gone from one path whose exact content appeared at a new path
    is reported as a move (the server keeps its history; other devices
    rename instead of downloading)."""
    by_content = {}
    for put in new_puts:
        by_content.setdefault((put.sha256, put.local.size), []).append(put)
    moves, deletes = [], []
    for path, s in gone:
        candidates = by_content.get((s.sha256, s.size))
        if candidates:
            put = candidates.pop(0)
            moves.append(Report({"op": "move", "path": path, "to": put.local.path,
                                 "base_rev": _base(s)}, put.local, put.sha256))
        else:
            deletes.append(Report({"op": "delete", "path": path, "base_rev": _base(s)}))
    puts = [p for group in by_content.values() for p in group]
    plan.reports = deletes + moves + plan.reports + sorted(puts, key=lambda p: p.item["path"])


def _pair_remote_moves(plan, local):
    """A server move whose source is here, unchanged, becomes a local rename."""
    deletes = {d.path: d for d in plan.deletes}
    downloads = []
    for down in plan.downloads:
        source = deletes.get(down.remote.moved_from or "")
        if (source is not None and down.expect is None and down.path not in local
                and source.expect.sha256 == down.remote.sha256):
            plan.moves.append(LocalMove(source.local, source.expect, down.path, down.remote))
            del deletes[source.path]
        else:
            downloads.append(down)
    plan.downloads = downloads
    plan.deletes = [d for d in plan.deletes if d.path in deletes]

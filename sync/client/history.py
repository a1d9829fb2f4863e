"""The client's ``history``, ``restore``, ``trash`` and ``rewind`` commands
(SPEC §8): getting back what a device overwrote or deleted. Each names the
device that made a change ("changed by Kobo, 2026-12-01 10:42"). The server
does the work; the next ``sync`` brings its result into the folder."""

import os
import sys
from urllib.parse import quote

from ..units import shown_size
from . import state as state_mod
from .api import Api, ApiError

PAGE = 1000


def add_commands(sub):
    """The four commands on the client's subparsers."""
    history = sub.add_parser("history", help="list the kept versions of a file",
                             description="The versions the server keeps of PATH, newest "
                             "first, with the device that made each.")
    history.add_argument("folder", metavar="FOLDER")
    history.add_argument("path", metavar="PATH",
                         help="the file, in the folder or as a library path")

    restore = sub.add_parser("restore", help="bring back an older version of a file",
                             description="Make a kept version of PATH the current one again "
                             "(a deleted file comes back). The next sync brings it here.")
    restore.add_argument("folder", metavar="FOLDER")
    restore.add_argument("path", metavar="PATH",
                         help="the file, in the folder or as a library path")
    restore.add_argument("--rev", type=int, default=None, metavar="R",
                         help="the version to bring back (see `history`); default: the one "
                         "before the current one")

    trash = sub.add_parser("trash", help="list deleted files that can be restored",
                           description="Deleted files whose content the server still keeps, "
                           "most recently deleted first, with the device that deleted each.")
    trash.add_argument("folder", metavar="FOLDER")
    trash.add_argument("prefix", metavar="PREFIX", nargs="?", default=None,
                       help="only files under this folder of the library")

    rewind = sub.add_parser("rewind", help="put the library back as it was at a point",
                            description="Every file changed after the point (by DEVICE, with "
                            "--device) goes back to what it was then. Shows what would "
                            "change, asks, then applies (--yes: without asking; with neither "
                            "a terminal nor --yes it only shows).")
    rewind.add_argument("folder", metavar="FOLDER")
    point = rewind.add_mutually_exclusive_group(required=True)
    point.add_argument("--rev", type=int, metavar="R",
                       help="the point: after every change up to revision R")
    point.add_argument("--at", metavar="TIME",
                       help="the point: an ISO 8601 time, e.g. 2026-12-01T10:00:00Z")
    rewind.add_argument("--prefix", default=None, metavar="P",
                        help="only files under this folder of the library")
    rewind.add_argument("--device", default=None, metavar="NAME_OR_ID",
                        help="only the files this device changed (a deleted device by its id)")
    rewind.add_argument("--yes", action="store_true", help="apply without asking")


COMMANDS = ("history", "restore", "trash", "rewind")


def run(args, api=None, ask=None):
    """Run one of ``COMMANDS``; ``api`` replaces the folder's HTTP client."""
    folder = os.path.abspath(args.folder)
    config = state_mod.load_config(folder)
    api = api or Api(config["server"], config["token"])
    try:
        return {"history": cmd_history, "restore": cmd_restore, "trash": cmd_trash,
                "rewind": cmd_rewind}[args.command](args, api, folder, ask=ask)
    finally:
        api.close()


def fail(message, code=1):
    print(f"sync: {message}", file=sys.stderr, flush=True)
    return code


def library_path(folder, path):
    """``path`` as a library path: a path inside the folder (absolute, or
    relative to the working directory) becomes relative to it; anything
    else is taken as a library path already."""
    full = os.path.abspath(path)
    if full.startswith(folder + os.sep) and os.path.relpath(full, folder).split(os.sep)[0] \
            != state_mod.SYNC_DIR:
        return os.path.relpath(full, folder).replace(os.sep, "/")
    return path.replace(os.sep, "/").strip("/")


def when(timestamp):
    """``2026-12-01T10:42:13Z`` as ``2026-12-01 10:42`` (UTC)."""
    return timestamp[:16].replace("T", " ") if timestamp else "?"


def who(device_id, device_name):
    if device_name:
        return device_name
    if device_id:
        return f"a deleted device ({device_id})"
    return "the user (no device)"


def _history(api, path, limit=100):
    resp = api.request("GET", "/history/" + quote(path, safe="/"), params={"limit": limit})
    return resp.json()


def _not_found(exc, what):
    if exc.status == 404:
        return fail(what)
    raise exc


def cmd_history(args, api, folder, ask=None):
    path = library_path(folder, args.path)
    try:
        page = _history(api, path, PAGE)
    except ApiError as exc:
        return _not_found(exc, f"the server keeps no version of {path}")
    print(f"{path}: {len(page['revisions'])} version(s) kept"
          + (" (the newest shown)" if page["has_more"] else ""))
    for r in page["revisions"]:
        by = who(r["device_id"], r["device_name"])
        if r["op"] == "delete":
            what = f"deleted by {by}, {when(r['changed_at'])}"
            if r.get("moved_to"):
                what = f"moved to {r['moved_to']} by {by}, {when(r['changed_at'])}"
        else:
            what = f"changed by {by}, {when(r['changed_at'])}  {shown_size(r['size'])}"
            if r.get("moved_from"):
                what += f"  (moved from {r['moved_from']})"
        print(f"  rev {r['rev']:<8} {what}")
    print(f"bring one back with `python -m sync.client restore {args.folder} {path} --rev R`")
    return 0


def cmd_restore(args, api, folder, ask=None):
    path = library_path(folder, args.path)
    rev = args.rev
    if rev is None:
        try:
            revisions = _history(api, path, 2)["revisions"]
        except ApiError as exc:
            return _not_found(exc, f"the server keeps no version of {path}")
        if len(revisions) < 2:
            return fail(f"{path} has no older version to restore (see `history`)")
        rev = revisions[1]["rev"]
    try:
        answer = api.request("POST", "/restore", json={"path": path, "rev": rev}).json()
    except ApiError as exc:
        if exc.status == 404:
            return fail(f"{path} has no kept version {rev} (see `history {args.folder} {path}`)")
        if exc.code == "case_clash":
            return fail(exc.description)
        raise
    if answer["status"] == "unchanged":
        print(f"{path} already is version {rev}; nothing to do")
    else:
        print(f"restored {path} to version {rev}"
              + (f" (now rev {answer['rev']})" if answer.get("rev") else " (deleted)")
              + f"; the next sync brings it to {args.folder}")
    return 0


def cmd_trash(args, api, folder, ask=None):
    params = {"limit": PAGE}
    if args.prefix:
        params["prefix"] = args.prefix
    items = []
    while True:
        page = api.request("GET", "/trash", params=params).json()
        items += page["entries"]
        if not page["has_more"]:
            break
        params["cursor"] = page["cursor"]
    if not items:
        print("the trash is empty" + (f" under {args.prefix}" if args.prefix else ""))
        return 0
    for item in items:
        print(f"{item['path']}  deleted by {who(item['device_id'], item['device_name'])}, "
              f"{when(item['deleted_at'])}  {shown_size(item['size'])}  (rev {item['rev']})")
    print(f"{len(items)} file(s); bring one back with "
          f"`python -m sync.client restore {args.folder} PATH`")
    return 0


def _device_id(api, wanted):
    """The id of the device named or numbered ``wanted``; a name no current
    device has is taken as the id of a deleted one."""
    devices = api.request("GET", "/devices").json()["devices"]
    for device in devices:
        if wanted == device["id"]:
            return device["id"], device["name"]
    named = [d for d in devices if d["name"] == wanted] or \
        [d for d in devices if d["name"].casefold() == wanted.casefold()]
    if len(named) > 1:
        raise _Ambiguous(f"{len(named)} devices are called {wanted!r}: give its id "
                         f"({', '.join(d['id'] for d in named)})")
    if named:
        return named[0]["id"], named[0]["name"]
    return wanted, None


class _Ambiguous(Exception):
    pass


def cmd_rewind(args, api, folder, ask=None):
    body = {"rev": args.rev} if args.rev is not None else {"at": args.at}
    if args.prefix:
        body["prefix"] = args.prefix
    label = "every device"
    if args.device:
        try:
            body["device_id"], name = _device_id(api, args.device)
        except _Ambiguous as exc:
            return fail(str(exc))
        label = name or f"the device {args.device} (no longer registered)"
    point = f"revision {args.rev}" if args.rev is not None else args.at
    try:
        plan = api.request("POST", "/rewind", json=dict(body, dry_run=True)).json()
    except ApiError as exc:
        if exc.code in ("rewind_too_old", "body_invalid", "path_invalid"):
            return fail(exc.description)
        raise
    if not plan["count"]:
        print(f"nothing to rewind: no file changed by {label} after {point} differs from "
              f"what it was then")
        return 0
    print(f"rewinding the changes of {label} after {point} would change "
          f"{plan['count']} file(s):")
    for change in plan["changes"]:
        if change["op"] == "delete":
            print(f"  delete   {change['path']}  (it did not exist then)")
        else:
            print(f"  restore  {change['path']}  (version {change['from_rev']})")
    if plan["count"] > len(plan["changes"]):
        print(f"  ... and {plan['count'] - len(plan['changes'])} more")
    if not args.yes:
        if ask is None and not sys.stdin.isatty():
            print("not applied: no terminal to ask; run again with --yes to apply")
            return 0
        answer = (ask or input)(f"apply these {plan['count']} change(s)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not applied")
            return 0
    done = api.request("POST", "/rewind", json=body).json()
    print(f"rewound {done['count']} file(s); run `python -m sync.client sync {args.folder}` "
          f"to bring them here")
    return 0

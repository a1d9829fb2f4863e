"""The client's command line: ``init``, ``sync`` (once or ``--watch``),
``status``, ``conflicts`` and ``resolve``. Exit status 0 means the folder is
in sync (or the command did what it said); anything else comes with a
one-line reason on standard error."""

import argparse
import os
import platform
import socket
import sys

from . import state as state_mod
from . import watch
from .api import Api, ApiError, Unreachable
from .engine import Engine, Options, PassError
from .state import FolderError, FolderLock

RESOLUTIONS = ("keep_server", "keep_client", "keep_both")
DEFAULT_INTERVAL_S = 30
PROG = "python -m sync.client"


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Keep a local folder in two-way sync with a sync server.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = sub.add_parser("init", help="register this device and make FOLDER a sync folder",
                          description="Register a device on the server with a user token "
                          "and keep its device token in FOLDER/.sync/ (mode 0700).")
    init.add_argument("folder", metavar="FOLDER")
    init.add_argument("--server", required=True, metavar="URL",
                      help="the server's address, e.g. http://raspberrypi.local:8080")
    init.add_argument("--token", default=os.environ.get("SYNC_TOKEN"), metavar="USER_TOKEN",
                      help="a user token (from `app.py token NAME` or the login endpoint); "
                      "default: $SYNC_TOKEN")
    init.add_argument("--device-name", default=None, metavar="NAME",
                      help="how this device is listed (default: the host name)")

    sync = sub.add_parser("sync", help="sync FOLDER with the server, once or continuously",
                          description="One full two-way pass: send local changes, fetch the "
                          "server's, settle what can be settled. Exit status 0 when the "
                          "folder is in sync.")
    sync.add_argument("folder", metavar="FOLDER")
    sync.add_argument("--watch", action="store_true",
                      help="keep syncing until stopped (SIGTERM or Ctrl-C): local edits as "
                      "the folder reports them, the server's as they happen")
    sync.add_argument("--interval", type=_positive_float, default=DEFAULT_INTERVAL_S,
                      metavar="SECONDS",
                      help="with --watch, how often the folder is looked at where the system "
                      f"gives no file events (default {DEFAULT_INTERVAL_S})")
    sync.add_argument("--quiet", action="store_true",
                      help="no progress bars or per-file lines; only the summary and problems "
                      "(with --watch, a line only for a pass that changed something)")
    sync.add_argument("--allow-mass-delete", action="store_true",
                      help="let a pass delete more than half of the files (on either side)")
    sync.add_argument("--chunk-size", type=int, default=None, metavar="BYTES",
                      help="upload chunk size (default: the server's, 8 MiB)")

    status = sub.add_parser("status", help="show what a sync would send and receive",
                            description="Show what a sync pass would send and receive, and "
                            "the open conflicts, without changing anything.")
    status.add_argument("folder", metavar="FOLDER")

    conflicts = sub.add_parser("conflicts", help="list the open conflicts")
    conflicts.add_argument("folder", metavar="FOLDER")

    resolve = sub.add_parser("resolve", help="settle a conflict",
                             description="keep_server drops the client's version, keep_client "
                             "makes it the head, keep_both saves it beside the server's as "
                             "'name (conflict DEVICE DATE).ext'. The next sync applies it here.")
    resolve.add_argument("folder", metavar="FOLDER")
    resolve.add_argument("id", metavar="ID")
    resolve.add_argument("resolution", choices=RESOLUTIONS)
    return parser


def _positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def fail(message, code=1):
    print(f"sync: {message}", file=sys.stderr, flush=True)
    return code


def main(argv=None, api=None):
    """Run one command; ``api`` replaces the folder's HTTP client (tests)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            return cmd_init(args)
        if args.command == "sync":
            return cmd_sync(args, api)
        if args.command == "status":
            return cmd_status(args, api)
        if args.command == "conflicts":
            return cmd_conflicts(args, api)
        return cmd_resolve(args, api)
    except (FolderError, PassError, Unreachable) as exc:
        return fail(str(exc))
    except ApiError as exc:
        return fail(_api_reason(exc))
    except OSError as exc:
        return fail(f"{exc.filename or 'the folder'}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        return fail("interrupted", 130)


def _api_reason(exc):
    if exc.status == 401:
        return ("the server refused the token (device deleted or its token regenerated?): "
                "run init again in a new folder")
    return f"the server answered {exc.status} {exc.code}: {exc.description}"


def cmd_init(args):
    if not args.token:
        return fail("a user token is needed: --token USER_TOKEN or $SYNC_TOKEN")
    if not args.server.startswith(("http://", "https://")):
        return fail(f"not a server address: {args.server!r} (try http://HOST:8080)")
    folder = os.path.abspath(args.folder)
    if os.path.exists(state_mod.sync_dir(folder)):
        return fail(f"{folder} is already a sync folder")
    name = args.device_name or socket.gethostname() or "device"
    api = Api(args.server, args.token)
    try:
        device = api.register_device(name[:100], platform.system().lower() or sys.platform)
    except ApiError as exc:
        if exc.status in (401, 403):
            return fail(f"the server refused the token ({exc.description}): init needs a "
                        "user token, from `app.py token NAME` or the login endpoint")
        raise
    finally:
        api.close()
    token = device.pop("token")
    state_mod.init_folder(folder, args.server, device, token)
    print(f"registered device {device['name']!r} ({device['id']}); {folder} is ready: "
          f"run `{PROG} sync {args.folder}`")
    return 0


def _engine(args, api, **options):
    return Engine(args.folder, api=api, options=Options(**options))


def _one_pass(engine):
    with FolderLock(engine.folder):
        summary = engine.run()
    print(f"sync: {summary.line()}", flush=True)
    return summary


def cmd_sync(args, api):
    show = not args.quiet and sys.stdout.isatty()
    engine = _engine(args, api, quiet=args.quiet, allow_mass_delete=args.allow_mass_delete,
                     show_progress=show, chunk_size=args.chunk_size)
    try:
        if not args.watch:
            summary = _one_pass(engine)
            reason = summary.reason()
            return fail(f"not in sync: {reason}") if reason else 0
        return watch.watch(engine, args.interval, quiet=args.quiet)
    finally:
        engine.close()


def cmd_status(args, api):
    engine = _engine(args, api)
    try:
        plan, found, conflicts = engine.prepare(save=False)
    finally:
        engine.close()
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    lines = []
    for r in plan.reports:
        item = r.item
        if item["op"] == "move":
            lines.append(f"  send     move {item['path']} -> {item['to']}")
        else:
            lines.append(f"  send     {item['op']} {item['path']}"
                         + (" (changed on the server too: may conflict)" if r.contested else ""))
    lines += [f"  receive  {d.path}" for d in plan.downloads]
    lines += [f"  receive  move {m.source.path} -> {m.path}" for m in plan.moves]
    lines += [f"  receive  delete {d.path}" for d in plan.deletes]
    lines += [f"  problem  {p}" for p in plan.problems]
    mine = engine.mine(conflicts)
    print(f"{len(plan.reports)} to send, {len(plan.downloads) + len(plan.moves) + len(plan.deletes)}"
          f" to receive, {len(mine)} conflict(s) of this device open"
          + (f" ({len(conflicts) - len(mine)} of other devices)" if len(conflicts) > len(mine)
             else ""))
    for line in lines:
        print(line)
    for c in mine.values():
        print(f"  conflict {c['id']} {c['kind']} {c['path']}")
    return 0


def cmd_conflicts(args, api):
    config = state_mod.load_config(os.path.abspath(args.folder))
    api = api or Api(config["server"], config["token"])
    conflicts = api.conflicts()
    names = {d["id"]: d["name"] for d in api.list_devices()}
    if not conflicts:
        print("no open conflicts")
        return 0
    for c in conflicts:
        client = c.get("client") or {}
        server = c.get("server") or {}
        who = names.get(client.get("device_id"), client.get("device_id") or "?")
        what = f"{c['path']} -> {client['to']}" if client.get("to") else c["path"]
        print(f"{c['id']}  {c['kind']:<13} {what}")
        print(f"    server: {server.get('op') or 'nothing'} rev {server.get('rev')}  "
              f"{_size(server.get('size'))}")
        print(f"    {who}: {client.get('op')}  {_size(client.get('size'))}  "
              f"(since {c.get('created_at')})")
    print(f"resolve with `{PROG} resolve {args.folder} ID keep_server|keep_client|keep_both`")
    return 0


def cmd_resolve(args, api):
    config = state_mod.load_config(os.path.abspath(args.folder))
    api = api or Api(config["server"], config["token"])
    try:
        answer = api.resolve(args.id, args.resolution)
    except ApiError as exc:
        if exc.code == "already_resolved":
            return fail(f"conflict {args.id} was already resolved")
        if exc.status == 404:
            return fail(f"no conflict {args.id}")
        raise
    for change in answer.get("results") or []:
        print(f"  {change.get('op')} {change.get('path')} (rev {change.get('rev')})")
    print(f"resolved {args.id}: {args.resolution}; the next sync applies it to {args.folder}")
    return 0


def _size(size):
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024

"""The client's command line: ``init``, ``sync`` (once or ``--watch``),
``status``, ``conflicts``, ``resolve``, ``devices`` and ``config``;
``history``, ``restore``, ``trash`` and ``rewind`` live in
``sync.client.history``. Exit status 0 means the folder is in sync (or the
command did what it said); anything else comes with a one-line reason on
standard error. Flags are never abbreviated (``sync.cliargs``)."""

import os
import platform
import socket
import sys

from .. import cliargs
from . import history, watch
from . import state as state_mod
from .api import Api, ApiError, Unreachable
from .engine import Engine, Options, PassError
from .manage import add_device_commands
from .state import FolderError, FolderLock

RESOLUTIONS = ("keep_server", "keep_client", "keep_both")
DEFAULT_INTERVAL_S = 30
MIN_CHUNK, MAX_CHUNK = 256 * 1024, 64 * 1024 * 1024


def _prog():
    """How the user ran the client, for the messages that tell them what to type."""
    name = os.path.basename(sys.argv[0] if sys.argv else "")
    return "sync-client" if name.startswith("sync-client") else "python -m sync.client"


PROG = _prog()


def build_parser():
    parser = cliargs.Parser(
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
    init.add_argument("--reattach", action="store_true",
                      help="FOLDER is already a sync folder whose device was deleted (or "
                      "whose token was lost): register it again as a new device, keeping "
                      "what it knows, so nothing is sent or fetched again")
    _ca_bundle_flag(init)

    sync = sub.add_parser("sync", help="sync FOLDER with the server, once or continuously",
                          description="One full two-way pass: send local changes, fetch the "
                          "server's, settle what can be settled. Exit status 0 when the "
                          "folder is in sync.")
    sync.add_argument("folder", metavar="FOLDER")
    sync.add_argument("--watch", action="store_true",
                      help="keep syncing until stopped (SIGTERM or Ctrl-C): local edits as "
                      "the folder reports them, the server's as they happen")
    sync.add_argument("--interval", type=cliargs.positive_duration,
                      default=DEFAULT_INTERVAL_S, metavar="DURATION",
                      help="with --watch, how often the folder is looked at where the system "
                      f"gives no file events: seconds, or 30s, 5m (default {DEFAULT_INTERVAL_S}s)")
    sync.add_argument("--quiet", action="store_true",
                      help="no progress bars or per-file lines; only the summary and problems "
                      "(with --watch, a line only for a pass that changed something)")
    sync.add_argument("--allow-mass-delete", action="store_true",
                      help="let a pass delete more than half of the files (on either side)")
    sync.add_argument("--chunk-size", type=_chunk_size, default=None, metavar="SIZE",
                      help="upload chunk size, 256KiB to 64MiB: bytes, or 256KiB, 8MiB "
                      "(default: the server's, 8MiB)")

    status = sub.add_parser("status", help="show what a sync would send and receive",
                            description="Show what a sync pass would send and receive, and "
                            "the open conflicts, without changing anything.")
    status.add_argument("folder", metavar="FOLDER")

    conflicts = sub.add_parser("conflicts", help="list the open conflicts")
    conflicts.add_argument("folder", metavar="FOLDER")

    resolve = sub.add_parser("resolve", help="settle a conflict",
                             description="A conflict has two versions: the server's, and the "
                             "one a device (named in `conflicts`) sent. keep_server keeps the "
                             "server's version, keep_client keeps that device's version, "
                             "keep_both saves the device's version beside the server's as "
                             "'name (conflict DEVICE DATE).ext'. It says which file of FOLDER "
                             "the next sync changes before anything changes.")
    resolve.add_argument("folder", metavar="FOLDER")
    resolve.add_argument("id", metavar="ID", help="the conflict's id, or any unique start of it")
    resolve.add_argument("resolution", choices=RESOLUTIONS)
    add_device_commands(sub)
    history.add_commands(sub)
    return parser


def _chunk_size(text):
    value = cliargs.size(text)
    if not MIN_CHUNK <= value <= MAX_CHUNK:
        raise cliargs.argparse.ArgumentTypeError(
            f"{text!r} is outside 256KiB to 64MiB: use bytes, or 256KiB, 8MiB, 64MiB")
    return value


def _ca_bundle_flag(parser):
    parser.add_argument("--ca-bundle", default=None, metavar="FILE",
                        help="a file of CA certificates (PEM) to trust for an https:// server "
                        "whose certificate comes from your own CA")


def fail(message, code=1):
    print(f"sync: {message}", file=sys.stderr, flush=True)
    return code


def main(argv=None, api=None):
    """Run one command; ``api`` replaces the folder's HTTP client (tests)."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "handler", None) is not None:
            return args.handler(args, api)
        if args.command == "init":
            return cmd_init(args)
        if args.command == "sync":
            return cmd_sync(args, api)
        if args.command == "status":
            return cmd_status(args, api)
        if args.command == "conflicts":
            return cmd_conflicts(args, api)
        if args.command in history.COMMANDS:
            return history.run(args, api)
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
        return ("the server refused the token of this folder's device (the device was "
                f"removed, or its token regenerated): run "
                f"`{PROG} init FOLDER --reattach --server URL "
                "--token USER_TOKEN`")
    return f"the server answered {exc.status} {exc.code}: {exc.description}"


def cmd_init(args):
    if not args.token:
        return fail("a user token is needed: --token USER_TOKEN or $SYNC_TOKEN")
    try:
        server = server_url(args.server)
    except ValueError as exc:
        return fail(str(exc))
    folder = os.path.abspath(args.folder)
    problem = _init_problem(folder, args.reattach)
    if problem:
        return fail(problem)
    name = args.device_name or _old_name(folder, args.reattach) or socket.gethostname() \
        or "device"
    api = Api(server, args.token, ca_bundle=args.ca_bundle)
    try:
        device = api.register_device(name[:100], platform.system().lower() or sys.platform)
        old = _forget_old_device(api, folder) if args.reattach else None
    except ApiError as exc:
        if exc.status in (401, 403):
            return fail(f"the server refused the token ({exc.description}): init needs a "
                        "user token, from `app.py token NAME` or the login endpoint")
        raise
    finally:
        api.close()
    token = device.pop("token")
    extra = {"ca_bundle": os.path.abspath(args.ca_bundle)} if args.ca_bundle else {}
    if args.reattach:
        state_mod.reattach_folder(folder, server, device, token, **extra)
        print(f"registered device {device['name']!r} ({device['id']}) for {folder}"
              + (f", in place of {old}" if old else "")
              + f"; run `{PROG} sync {args.folder}` (files are matched by content: nothing "
              "is sent again)")
        return 0
    state_mod.init_folder(folder, server, device, token, **extra)
    print(f"registered device {device['name']!r} ({device['id']}); {folder} is ready: "
          f"run `{PROG} sync {args.folder}`")
    return 0


def _init_problem(folder, reattach):
    """Why ``init`` (or ``init --reattach``) cannot use ``folder``, or None."""
    if os.path.exists(state_mod.sync_dir(folder)):
        if reattach:
            return None
        return (f"{folder} is already a sync folder; if its device was removed, run "
                f"`{PROG} init {folder} --reattach --server URL --token USER_TOKEN`")
    if reattach:
        return f"{folder} is not a sync folder yet: run init without --reattach"
    return state_mod.nesting_problem(folder)


def _old_name(folder, reattach):
    return state_mod.read_config(folder).get("device_name") if reattach else None


def _forget_old_device(api, folder):
    """Remove the device a reattached folder had, if the server still has it
    (a device that never acks holds back the purge of deletions); its name."""
    old = state_mod.read_config(folder)
    device_id = old.get("device_id")
    if not device_id:
        return None
    try:
        api.delete_device(device_id)
    except (ApiError, Unreachable):
        return None  # gone already; `devices remove` can do it later
    return f"the old device {old.get('device_name')!r} (removed)"


API_SUFFIXES = ("/api/v1/sync", "/api/sync", "/api/v1", "/api")


def server_url(text):
    """The server's base address from what a user typed: a trailing API path
    (``/api/v1/sync``) and slash are dropped; ``ValueError`` with a hint
    when there is no http:// or https://."""
    from urllib.parse import urlsplit
    text = text.strip()
    if not text.startswith(("http://", "https://")):
        parts = urlsplit("//" + text)
        try:
            port = parts.port
        except ValueError:
            port = None
        host = parts.hostname or text
        raise ValueError(f"not a server address: {text!r} (try http://{host}:{port or 8080})")
    url = text.rstrip("/")
    for suffix in API_SUFFIXES:
        if url.endswith(suffix):
            url = url[:-len(suffix)].rstrip("/")
            break
    return url


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
    receive = len(plan.downloads) + len(plan.moves) + len(plan.deletes)
    print(f"{len(plan.reports)} to send, {receive}"
          f" to receive, {len(mine)} conflict(s) of this device open"
          + (f" ({len(conflicts) - len(mine)} of other devices)" if len(conflicts) > len(mine)
             else ""))
    for line in lines:
        print(line)
    for c in mine.values():
        print(f"  conflict {c['id']} {c['kind']} {c['path']}")
    return 0


def _folder_api(folder, api=None):
    config = state_mod.load_config(folder)
    return config, api or Api(config["server"], config["token"],
                              ca_bundle=config.get("ca_bundle"))


def _seen_conflicts(folder, config, api, conflicts):
    """The server's conflicts as ``choices.Conflict``, seen from ``folder``."""
    from .choices import Conflict
    names = {d["id"]: d["name"] for d in api.list_devices()}
    state = state_mod.State.open(folder)
    try:
        heads = list(state.remote())
    finally:
        state.close()
    folds = {}
    for path in heads:
        folds.setdefault(path.casefold(), set()).add(path)
    return [Conflict(c, config["device_id"], names,
                     folds.get(c["path"].casefold(), set()) - {c["path"]}) for c in conflicts]


def cmd_conflicts(args, api):
    folder = os.path.abspath(args.folder)
    config, api = _folder_api(folder, api)
    conflicts = api.conflicts()
    if not conflicts:
        print("no open conflicts")
        return 0
    for c in _seen_conflicts(folder, config, api, conflicts):
        print(f"{c.c['id']}  {c.kind:<13} {c.what()}")
        for line in c.versions():
            print(f"    {line}")
        for resolution in RESOLUTIONS:
            print(f"    {resolution:<12} {c.label(resolution)}: the next sync "
                  f"{c.effect(resolution)}")
    print(f"resolve with `{PROG} resolve {args.folder} ID keep_server|keep_client|keep_both` "
          "(the start of ID is enough)")
    return 0


def cmd_resolve(args, api):
    folder = os.path.abspath(args.folder)
    config, api = _folder_api(folder, api)
    conflicts = api.conflicts()
    matches = [c for c in conflicts if c["id"] == args.id] or \
        [c for c in conflicts if c["id"].startswith(args.id)]
    if len(matches) > 1:
        return fail(f"{args.id} is the start of {len(matches)} conflicts' ids "
                    f"({', '.join(c['id'] for c in matches[:3])}): type more of it")
    if matches:
        [seen] = _seen_conflicts(folder, config, api, matches)
        conflict_id = seen.c["id"]
        print(f"{conflict_id}: {seen.label(args.resolution)} of {seen.what()}; the next sync "
              f"of {args.folder} {seen.effect(args.resolution)}", flush=True)
    else:
        conflict_id = args.id   # the server says why: already resolved, or unknown
    try:
        answer = api.resolve(conflict_id, args.resolution)
    except ApiError as exc:
        if exc.code == "already_resolved":
            return fail(f"conflict {args.id} was already resolved")
        if exc.status == 404:
            return fail(f"no conflict {args.id} (see `{PROG} conflicts {args.folder}`)")
        raise
    for change in answer.get("results") or []:
        print(f"  on the server: {change.get('op')} {change.get('path')} "
              f"(rev {change.get('rev')})")
    print(f"resolved {conflict_id}: {args.resolution}; run `{PROG} sync {args.folder}` to "
          "apply it here")
    return 0

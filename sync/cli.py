"""The command line: ``python app.py [serve]``, ``user add``, ``token``,
``app-password``, ``backup``, ``restore``, ``check``.

Every subcommand takes the settings flags (``--data-dir`` and the rest)
and honours the ``SYNC_*`` environment variables. The work is done by the
services (``sync.backup``, ``sync.check``, ``sync.auth``); what a command
prints is written here.
"""

import argparse
import getpass
import logging
import os
import signal
import sys

from . import cliargs
from . import config as config_mod
from .config import ConfigError
from .fsutil import PRIVATE_UMASK

log = logging.getLogger("sync")
MIN_PASSWORD = 8


def build_parser():
    parser = cliargs.Parser(
        prog="app.py",
        description="Self-hosted sync server. Without a command, serves the API.")
    config_mod.add_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the API (the default)")
    _settings(serve)

    user = sub.add_parser("user", help="manage local users")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = user_sub.add_parser("add", help="create a user, or set an existing user's password")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of a prompt")
    _create_flag(add)
    _settings(add)

    revoke = user_sub.add_parser(
        "revoke", help="make every user token of NAME issued until now invalid "
                       "(device tokens and app passwords stay valid)")
    revoke.add_argument("name")
    _settings(revoke)

    token = sub.add_parser("token", help="print a user token to standard output")
    token.add_argument("name")
    token.add_argument("--ttl", type=cliargs.positive_duration, default=None,
                       metavar="DURATION",
                       help="lifetime: seconds, or 30m, 24h, 30d (default: the token_ttl "
                       "setting)")
    _create_flag(token)
    _settings(token)

    app_password = sub.add_parser(
        "app-password", help="print a new WebDAV app password for a device of a user")
    app_password.add_argument("name", help="the user")
    app_password.add_argument("device", help="the device's id or name (created when no "
                                             "device of the user has that name)")
    _settings(app_password)

    backup = sub.add_parser("backup", help="copy the data directory while the server runs")
    backup.add_argument("dest", help="a new or empty directory to write the backup into")
    backup.add_argument("--link-dest", metavar="DIR", default=None,
                        help="an earlier backup on the same disk as DEST: hard-link the "
                             "blobs it holds instead of copying them again")
    _settings(backup)

    restore = sub.add_parser("restore", help="restore a backup (the server must be stopped)")
    restore.add_argument("src", help="a directory written by `backup`")
    restore.add_argument("--force", action="store_true",
                         help="replace what a non-empty data directory holds")
    _settings(restore)

    check = sub.add_parser("check", help="verify the database and every blob")
    check.add_argument("--repair", action="store_true",
                       help="remove files nothing refers to (the server must be stopped)")
    _settings(check)
    return parser


def _create_flag(subparser):
    subparser.add_argument("--create", action="store_true",
                           help="make a new data directory if DATA_DIR holds no database "
                           "yet (without it, a mistyped --data-dir is refused)")


def _settings(subparser):
    """The settings flags again on a subcommand, without defaults that would
    hide a flag given before the command."""
    for action in config_mod.SETTINGS:
        subparser.add_argument(config_mod.flag_name(action.name), dest=action.name,
                               default=argparse.SUPPRESS, metavar="VALUE",
                               help=f"see {config_mod.flag_name(action.name)} above")


def panic(message, code=1):
    print(f"app.py: error: {message}", file=sys.stderr)
    return code


def main(argv=None):
    args = build_parser().parse_args(argv)
    # Whatever the caller's umask: the data directory, backups and restores
    # hold password hashes and every path of every user.
    os.umask(PRIVATE_UMASK)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        config = config_mod.load(args)
        if args.command == "user" and args.user_command == "revoke":
            return cmd_user_revoke(config, args)
        if args.command == "user":
            return cmd_user_add(config, args)
        if args.command == "token":
            return cmd_token(config, args)
        if args.command == "app-password":
            return cmd_app_password(config, args)
        if args.command == "backup":
            return _keeping(cmd_backup, config, args)
        if args.command == "restore":
            return _keeping(cmd_restore, config, args)
        if args.command == "check":
            return _keeping(cmd_check, config, args)
        return cmd_serve(config)
    except ConfigError as exc:
        return panic(str(exc))


def _keeping(command, config, args):
    """Run backup, restore or check; what stops one is a one-line error."""
    import sqlite3

    from .datadir import DataDirError

    try:
        return command(config, args)
    except DataDirError as exc:
        return panic(str(exc))
    except (OSError, sqlite3.Error) as exc:
        return panic(f"{args.command} failed: {exc}")


def refuse_missing_database(config, create=False,
                            remedy=", or add --create to make a new data directory there"):
    """``token``, ``user add``, ``user revoke`` and ``app-password`` on a
    data directory with no database: a mistyped --data-dir would otherwise
    make a second secret, whose tokens the real server refuses, a device and
    app password the real server never heard of, or a revocation that
    revokes nothing."""
    if create or os.path.isfile(config.path("sync.sqlite3")):
        return
    raise ConfigError(f"there is no database in {config.data_dir}: check --data-dir (or "
                      f"SYNC_DATA_DIR){remedy}")


def _runtime(config, serving=False):
    from .datadir import DataDirError
    from .db import SchemaError, refuse_migration_beside_a_server
    from .wsgi import open_runtime
    try:
        if not serving:
            refuse_migration_beside_a_server(config)
        return open_runtime(config)
    except DataDirError as exc:
        raise ConfigError(str(exc)) from None
    except PermissionError as exc:
        raise ConfigError(f"the data directory {config.data_dir} is not writable "
                          f"({exc.strerror}: {exc.filename})") from None
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot open the data directory {config.data_dir}: {exc}") from None


SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}


def port_problem(host, port):
    """Why ``host:port`` cannot be listened on (in use, no such address), or
    None; checked before the data directory is touched, so a failed start
    leaves nothing behind."""
    import socket
    if not port:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    except OSError as exc:
        hint = (" (another server is running there? stop it, or choose another --port)"
                if exc.errno == 98 else "")
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}"
    finally:
        probe.close()
    return None


def cmd_serve(config):
    from . import httpserver, janitor
    from .datadir import DataDirError, lock_data_dir
    from .wsgi import create_app, tune_malloc

    problem = port_problem(config.host, config.port)
    if problem:
        return panic(problem)
    try:
        lock = lock_data_dir(config)  # held until the process ends
    except DataDirError as exc:
        return panic(str(exc))
    rt = _runtime(config, serving=True)
    app = create_app(rt)
    tune_malloc()
    try:
        server = httpserver.create_server(app, config)
    except OSError as exc:
        return panic(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}")
    # SIGTERM (systemctl stop) and Ctrl-C only note the signal: the serving
    # loop sees it within a second and stops in order (httpserver.serve).
    # Set before the line that says it listens: a signal from then on is logged.
    received = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in SIGNAL_NAMES}

    def drain():
        log.info("stopping (%s)", SIGNAL_NAMES[received[0]])
        rt.waiters.close()  # waiting requests answer now

    try:
        janitor.start(rt)
        print(f"sync server listening on http://{config.host}:{server.effective_port} "
              f"(data in {config.data_dir})", flush=True)
        httpserver.serve(server, lambda: bool(received), before_drain=drain)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    os.close(lock)
    log.info("stopped")
    return 0


def read_password(args, stdin=None, ask=getpass.getpass):
    """The new password: a line of standard input with --password-stdin,
    else asked twice on the terminal. ``ConfigError`` says what to do."""
    stdin = stdin or sys.stdin
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        if not stdin.isatty():
            raise ConfigError("no terminal to ask for the password: pipe it in with "
                              "--password-stdin (e.g. `printf '%s\\n' \"$PW\" | app.py user "
                              f"add {args.name} --password-stdin`)")
        password = ask(f"Password for {args.name}: ")
        if password != ask("Again: "):
            raise ConfigError("the passwords differ; nothing changed")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password is {'empty' if not password else 'too short'}: use "
                          f"at least {MIN_PASSWORD} characters; nothing changed")
    return password


def cmd_user_add(config, args):
    from . import auth

    if auth.normalize_user_name(args.name) is None:
        return panic(f"not a usable user name: {args.name!r} (1 to {auth.MAX_NAME_LENGTH} "
                     f"letters, digits and ._@-)")
    refuse_missing_database(config, args.create)
    password = read_password(args)
    rt = _runtime(config)
    try:
        created = auth.add_user(rt, args.name, password)
    except ValueError as exc:
        return panic(str(exc))
    if created:
        print(f"created user {args.name}", file=sys.stderr)
    else:
        print(f"updated user {args.name}: the password is changed", file=sys.stderr)
    return 0


def cmd_user_revoke(config, args):
    from . import auth

    refuse_missing_database(config, remedy="; nothing was revoked")
    rt = _runtime(config)
    try:
        existed = auth.revoke_user_tokens(rt, args.name)
    except ValueError as exc:
        return panic(str(exc))
    name = auth.normalize_user_name(args.name)
    note = "" if existed else f" ({name} had not used this server yet)"
    print(f"revoked every user token of {name} issued until now{note}; "
          f"devices keep syncing", file=sys.stderr)
    return 0


def cmd_token(config, args):
    from . import auth

    name = auth.normalize_user_name(args.name)
    if name is None:
        return panic(f"not a usable user name: {args.name!r} (1 to {auth.MAX_NAME_LENGTH} "
                     f"letters, digits and ._@-)")
    refuse_missing_database(config, args.create)
    rt = _runtime(config)
    ttl = None if args.ttl is None else max(1, int(args.ttl))
    print(auth.issue_user_token(rt, name, ttl))
    return 0


def cmd_app_password(config, args):
    from . import devices

    # No --create: a new database holds no user to make the password for.
    refuse_missing_database(config, remedy=", or make the user there first with "
                                           "`app.py user add NAME --create`")
    rt = _runtime(config)
    try:
        device, created, password = devices.app_password_for(rt, args.name, args.device)
    except devices.DeviceChoiceError as exc:
        return panic(str(exc))
    if created:
        print(f"registered device {device.name!r} ({device.id}) for {args.name}",
              file=sys.stderr)
    print(f"app password for {args.name}'s device {device.name!r} ({device.id}); "
          f"it replaces any earlier one:", file=sys.stderr)
    print(password)
    return 0


def _mib(n):
    return f"{n / (1024 * 1024):.1f} MiB"


def cmd_backup(config, args):
    """``app.py backup DEST``: print what was copied; 1 when something is off."""
    from .backup import backup

    r = backup(config, args.dest, link_dest=args.link_dest, fsync=config.fsync)
    print(f"backed up {config.data_dir} to {r['dest']}")
    print(f"  database: {_mib(r['db_bytes'])} (online backup API, new database id)")
    print(f"  blobs: {r['blobs']} ({r['linked']} hard-linked, {r['copied']} copied, "
          f"{r['reused']} linked from the earlier backup; "
          f"{_mib(r['bytes'])} taken from the data directory)")
    secret = "copied (mode 0600)" if r["secret"] else "none (SYNC_JWT_SECRET in use?)"
    print(f"  secret.key: {secret}")
    print(f"  upload sessions in progress left out: {r['uploads_left_out']} "
          f"(spool files are not backed up; those devices upload again)")
    return _report_wrong_sizes(r)


def _report_wrong_sizes(r):
    """A blob whose file disagrees with its rows: a WARNING naming the rows
    when the file is intact (the rows are wrong, the backup is whole), a
    PROBLEM (exit status 1) when the file itself is damaged."""
    from .backup import DB_NAME, blob_intact, blobs_path_in, open_existing, wrong_rows

    damaged = 0
    conn = open_existing(os.path.join(r["dest"], DB_NAME), readonly=True)
    try:
        for sha256, why in r["wrong_size"]:
            path = blobs_path_in(r["dest"], sha256)
            if path is not None and os.path.isfile(path) and blob_intact(path, sha256):
                rows = wrong_rows(conn, sha256, os.path.getsize(path)) or [why]
                for row in rows:
                    print(f"WARNING blob {sha256} is whole, but {row}: fix or delete that "
                          f"file (`app.py check` lists them)")
                continue
            damaged += 1
            print(f"PROBLEM blob {sha256}: {why}; run `app.py check`")
    finally:
        conn.close()
    return 1 if damaged else 0


def cmd_restore(config, args):
    """``app.py restore SRC [--force]``."""
    from .backup import restore

    r = restore(config, args.src, force=args.force, fsync=config.fsync)
    print(f"restored {os.path.abspath(args.src)} into {config.data_dir}")
    print(f"  blobs: {r['blobs']} ({r['linked']} hard-linked, {r['copied']} copied)")
    print(f"  new database id {r['db_id']}: devices list their library again from the start")
    if not r["secret"]:
        print("  the backup holds no secret.key: set SYNC_JWT_SECRET as before, or a new "
              "key is made on start and every token must be issued again")
    print(_restore_next_step(r["schema"]))
    for sha256, rows in r.get("wrong_rows", ()):
        for row in rows or ["a row gives it another size"]:
            print(f"WARNING blob {sha256} is whole, but {row}: fix or delete that file "
                  f"(`app.py check` lists them)")
    return 0


def _restore_next_step(schema):
    """What starting the server does with the restored database."""
    from . import migrations
    from .db import SCHEMA_VERSION

    target = migrations.latest(migrations.STEPS, SCHEMA_VERSION)
    if schema < target:
        return (f"  start the server: the backup's database is at schema {schema}, and the "
                f"server migrates it to {target} on start (after copying it)")
    return "  start the server"


def cmd_check(config, args):
    """``app.py check [--repair]``: prints each finding; 1 while a problem remains."""
    from .check import check

    return 1 if check(config, repair=args.repair, out=print) else 0

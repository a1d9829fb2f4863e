"""Looking after a folder's setup: ``devices`` (list the user's devices with
when each was last seen and how many changes it has not applied yet;
``devices FOLDER remove NAME``) and ``config`` (show a folder's settings, or
point it at a new server address or CA bundle)."""

import os

from . import state as state_mod
from .api import Api, ApiError


def add_device_commands(sub):
    devices = sub.add_parser(
        "devices", help="list the devices, or remove one",
        description="List every device of the user (last seen, changes it has not applied "
        "yet), or remove one: `devices FOLDER remove NAME_OR_ID`. A device that is no "
        "longer used should be removed: the server keeps deletions until every device has "
        "applied them. Removing needs a user token (--token or $SYNC_TOKEN).")
    devices.add_argument("folder", metavar="FOLDER")
    devices.add_argument("action", nargs="?", choices=("list", "remove"), default="list")
    devices.add_argument("name", nargs="?", metavar="NAME_OR_ID",
                         help="the device to remove: its name, its id, or the start of its id")
    devices.add_argument("--token", default=os.environ.get("SYNC_TOKEN"), metavar="USER_TOKEN",
                         help="a user token, to remove a device (default: $SYNC_TOKEN)")
    devices.set_defaults(handler=cmd_devices)

    config = sub.add_parser(
        "config", help="show or change a folder's server address",
        description="Without options, show FOLDER's settings. --server URL points the folder "
        "at the server's new address (the same server: its device token stays); --ca-bundle "
        "FILE trusts that CA for https (an empty FILE stops using one).")
    config.add_argument("folder", metavar="FOLDER")
    config.add_argument("--server", default=None, metavar="URL",
                        help="the server's new address, e.g. http://raspberrypi.local:8080")
    config.add_argument("--ca-bundle", default=None, metavar="FILE",
                        help="a file of CA certificates (PEM) to trust for https")
    config.set_defaults(handler=cmd_config)


def _when(stamp):
    return (stamp or "never").replace("T", " ").replace("Z", " UTC")


def cmd_devices(args, api):
    from .cli import PROG, _folder_api, fail
    folder = os.path.abspath(args.folder)
    config, api = _folder_api(folder, api)
    devices = api.list_devices()
    if args.action == "remove":
        return _remove(args, config, devices, PROG, fail)
    if args.name:
        return fail(f"`devices FOLDER {args.name}`: to remove a device, type "
                    f"`{PROG} devices {args.folder} remove {args.name}`")
    width = max([len(d["name"]) for d in devices] + [4])
    print(f"{'NAME':<{width}}  {'PLATFORM':<10} {'LAST SEEN':<24} {'PENDING':>7}  ID")
    for d in devices:
        here = "  (this folder)" if d["id"] == config["device_id"] else ""
        print(f"{d['name']:<{width}}  {(d.get('platform') or '-'):<10} "
              f"{_when(d.get('last_seen_at')):<24} {d.get('pending_changes', 0):>7}  "
              f"{d['id']}{here}")
    return 0


def _remove(args, config, devices, prog, fail):
    if not args.name:
        return fail(f"which device? `{prog} devices {args.folder} remove NAME_OR_ID`")
    matches = [d for d in devices if args.name in (d["id"], d["name"])] or \
        [d for d in devices if d["id"].startswith(args.name)]
    if not matches:
        return fail(f"no device {args.name!r} (see `{prog} devices {args.folder}`)")
    if len(matches) > 1:
        return fail(f"{len(matches)} devices match {args.name!r} "
                    f"({', '.join(d['id'] for d in matches)}): give the id")
    [device] = matches
    if device["id"] == config["device_id"]:
        return fail(f"{device['name']!r} is this folder's own device: remove it from another "
                    "folder, or stop syncing this folder first")
    if not args.token:
        return fail("removing a device needs a user token: --token USER_TOKEN or "
                    "$SYNC_TOKEN (from `app.py token NAME`)")
    api = Api(config["server"], args.token, ca_bundle=config.get("ca_bundle"))
    try:
        api.delete_device(device["id"])
    except ApiError as exc:
        if exc.status in (401, 403):
            return fail(f"the server refused the token ({exc.description}): removing a "
                        "device needs a user token, from `app.py token NAME`")
        raise
    finally:
        api.close()
    print(f"removed device {device['name']!r} ({device['id']}); its token no longer works")
    return 0


def cmd_config(args, api):
    from .cli import fail, server_url
    folder = os.path.abspath(args.folder)
    config = state_mod.load_config(folder)
    changed = {}
    if args.server is not None:
        try:
            changed["server"] = server_url(args.server)
        except ValueError as exc:
            return fail(str(exc))
    if args.ca_bundle is not None:
        if args.ca_bundle and not os.path.isfile(args.ca_bundle):
            return fail(f"--ca-bundle: no file {args.ca_bundle}")
        changed["ca_bundle"] = os.path.abspath(args.ca_bundle) if args.ca_bundle else None
    if changed:
        config.update(changed)
        if config.get("ca_bundle") is None:
            config.pop("ca_bundle", None)
        state_mod.write_config(folder, config)
    print(f"server:    {config['server']}")
    print(f"device:    {config.get('device_name')} ({config.get('device_id')})")
    print(f"ca bundle: {config.get('ca_bundle') or 'none (the system CAs)'}")
    if changed:
        print(f"saved; `sync {args.folder}` now uses it")
    return 0

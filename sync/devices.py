"""Devices: registration, records, tokens, and which device is syncing.

Service functions take the ``Runtime`` and the caller's ``Principal``; they
raise ``SyncError`` for the 4xx answers of SPEC §3 and §5 (Devices).
"""

import logging
import sqlite3

import peewee

from . import blobs, counts, cursors, errors, library
from .auth import app_password_hash, issue_device_token, new_app_password
from .db import database, quick_write, write
from .models import Device, Upload
from .runtime import iso

MAX_DEVICE_NAME = 100
MAX_PLATFORM = 100
LAST_SEEN_EVERY_S = 60
TOUCH_WAIT_MS = 200  # how long a touch waits for the write lock before it skips

log = logging.getLogger("sync")  # last_seen_at is written at most once a minute per device


def _check_name(value, field="name"):
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_DEVICE_NAME:
        raise errors.bad_request(
            errors.BODY_INVALID,
            f"'{field}' must be a string of 1 to {MAX_DEVICE_NAME} characters.")
    if not value.isprintable():
        raise errors.bad_request(errors.BODY_INVALID,
                                 f"'{field}' must not contain control characters.")
    return value


def _check_platform(value):
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_PLATFORM or not value.isprintable():
        raise errors.bad_request(
            errors.BODY_INVALID,
            f"'platform' must be a string of at most {MAX_PLATFORM} characters.")
    return value


def to_json(rt, device, pending=None):
    return {
        "id": device.id,
        "name": device.name,
        "platform": device.platform,
        "created_at": device.created_at,
        "last_seen_at": device.last_seen_at,
        "acked_cursor": (None if device.acked_rev is None
                         else cursors.encode(rt.db_id, device.acked_rev)),
        # Maintained as changes commit and as the device acks (sync.counts).
        "pending_changes": counts.pending_changes(device.id) if pending is None else pending,
        "app_password": device.app_password_hash is not None,
    }


def _forbid_device_token(principal, action):
    if principal.is_device:
        raise errors.forbidden(f"A device token may not {action}; use a user token.")


def _lookup(principal, device_id):
    """The device ``device_id`` if the caller may see it: 404 unknown, 403 another's."""
    device = Device.get_or_none(Device.id == device_id)
    if device is None:
        raise errors.not_found(f"No device {device_id!r}.")
    if device.user_id != principal.user.id:
        raise errors.forbidden("That device belongs to another user.")
    if principal.is_device and principal.device.id != device.id:
        raise errors.forbidden("A device token may only read and change its own device.")
    return device


def register(rt, principal, body):
    _forbid_device_token(principal, "register devices")
    name = _check_name(body.get("name"))
    platform = _check_platform(body.get("platform"))
    with write():
        device = Device.create(id=rt.idgen(), user=principal.user, name=name,
                               platform=platform, created_at=rt.now())
    result = to_json(rt, device)
    result["token"] = issue_device_token(rt, device)
    return result


def list_devices(rt, principal):
    with database.atomic():  # one snapshot: the devices and their counts agree
        devices = list(Device.select().where(Device.user == principal.user)
                       .order_by(Device.created_at, Device.id))
        pending = dict(database.execute_sql(counts.USER_DEVICES_PENDING_SQL,
                                            {"user_id": principal.user.id}))
    return {"devices": [to_json(rt, d, pending.get(d.id, 0)) for d in devices]}


def get(rt, principal, device_id):
    return to_json(rt, _lookup(principal, device_id))


def update(rt, principal, device_id, body):
    changes = {}
    if "name" in body:
        changes["name"] = _check_name(body["name"])
    if "platform" in body:
        changes["platform"] = _check_platform(body["platform"])
    with write():
        device = _lookup(principal, device_id)
        if changes:
            Device.update(**changes).where(Device.id == device.id).execute()
            device = Device.get_by_id(device.id)
    return to_json(rt, device)


def delete(rt, principal, device_id):
    """Delete a device: its tokens die, its upload sessions go, and their
    spool files are removed once that has committed."""
    _forbid_device_token(principal, "delete devices")
    with write():
        device = _lookup(principal, device_id)
        sessions = list(Upload.select(Upload.id, Upload.sha256).where(Upload.device == device.id)
                        .tuples())
        upload_ids = [r[0] for r in sessions]
        # A session's content may be in the blob store already (a completion
        # cut short): the clean-up checks it.
        library.queue_content({r[1] for r in sessions}, rt.now())
        device.delete_instance()
    for upload_id in upload_ids:
        blobs.remove_spool(rt.config, upload_id)


def regenerate_token(rt, principal, device_id):
    _forbid_device_token(principal, "regenerate device tokens")
    with write():
        device = _lookup(principal, device_id)
        Device.update(token_version=Device.token_version + 1).where(
            Device.id == device.id).execute()
        device = Device.get_by_id(device.id)
    return {"token": issue_device_token(rt, device)}


def acting_device(principal, header_device_id):
    """The device a sync call acts for: the device token's, or ``X-Device-Id``
    with a user token. 400 ``device_required`` without one; 403 for a device
    that is not the caller's."""
    if principal.is_device:
        if header_device_id and header_device_id != principal.device.id:
            raise errors.forbidden("X-Device-Id names another device than the token's.")
        return principal.device
    if not header_device_id:
        raise errors.bad_request(
            errors.DEVICE_REQUIRED,
            "This call acts for a device: use a device token or send X-Device-Id.")
    device = Device.get_or_none(Device.id == header_device_id)
    if device is None or device.user_id != principal.user.id:
        raise errors.forbidden("X-Device-Id does not name one of your devices.")
    return device


def touch(rt, device):
    """Record that ``device`` was seen (at most once a minute, to spare writes)."""
    now = rt.clock()
    # The timestamps are ISO strings of one format, so they compare as text
    # (cheaper than parsing one on every request).
    if device.last_seen_at is not None and device.last_seen_at > iso(now - LAST_SEEN_EVERY_S):
        return
    stamp = iso(now)
    # Bookkeeping must never fail the request it rides on (a read above
    # all): when the write lock is busy or the disk is full, the touch is
    # skipped and the next request tries again.
    try:
        with quick_write(TOUCH_WAIT_MS):
            Device.update(last_seen_at=stamp).where(Device.id == device.id).execute()
    except (peewee.OperationalError, sqlite3.OperationalError) as exc:
        log.info("last_seen_at of device %s not written now: %s", device.id, exc)
        return
    device.last_seen_at = stamp


# -- app passwords (WebDAV) ----------------------------------------------------

def set_app_password(rt, principal, device_id):
    """A new app password for the device (user token only), replacing the
    old one; only its hash is kept, so it is shown this once."""
    _forbid_device_token(principal, "manage app passwords")
    password = new_app_password()
    with write():
        device = _lookup(principal, device_id)
        Device.update(app_password_hash=app_password_hash(password)).where(
            Device.id == device.id).execute()
    return {"app_password": password}


def remove_app_password(rt, principal, device_id):
    """Revoke the device's app password (nothing to do when it has none)."""
    _forbid_device_token(principal, "manage app passwords")
    with write():
        device = _lookup(principal, device_id)
        Device.update(app_password_hash=None).where(Device.id == device.id).execute()


class DeviceChoiceError(Exception):
    """The command line named no usable user or device; the message says what to do."""


def app_password_for(rt, user_name, device_ref):
    """``app.py app-password NAME DEVICE``: a new app password for the user's
    device named or numbered ``device_ref``, registering a device of that
    name when the user has none. Returns ``(device, created, password)``."""
    from .models import User

    user = User.get_or_none(User.name == user_name)
    if user is None:
        raise DeviceChoiceError(
            f"there is no user {user_name!r}; create it with: app.py user add {user_name}")
    password = new_app_password()
    created = False
    with write():
        device = Device.get_or_none((Device.id == device_ref) & (Device.user == user.id))
        if device is None:
            named = list(Device.select().where((Device.user == user.id)
                                               & (Device.name == device_ref)))
            if len(named) > 1:
                raise DeviceChoiceError(
                    f"{user_name} has {len(named)} devices named {device_ref!r}; "
                    f"give the device's id instead (GET /api/v1/sync/devices lists them)")
            if named:
                device = named[0]
            else:
                try:
                    _check_name(device_ref)
                except errors.SyncError as exc:
                    raise DeviceChoiceError(f"cannot register a device named "
                                            f"{device_ref!r}: {exc.description}") from None
                device = Device.create(id=rt.idgen(), user=user.id, name=device_ref,
                                       platform="webdav", created_at=rt.now())
                # A WebDAV app holds no copy of the library to bring up to
                # date: it is never behind, and must not keep deletions'
                # tombstones from being purged.
                Device.update(acked_rev=counts.ALWAYS_ACKED, acked_at=rt.now()).where(
                    Device.id == device.id).execute()
                counts.acked(user.id, device.id, None, counts.ALWAYS_ACKED)
                device = Device.get_by_id(device.id)
                created = True
        Device.update(app_password_hash=app_password_hash(password)).where(
            Device.id == device.id).execute()
    return device, created, password

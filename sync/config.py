"""Settings: one table that feeds the command-line flags, the ``SYNC_*``
environment variables, validation and the README.

A value comes from its flag, else from ``SYNC_<NAME>``, else from the
default. ``load()`` returns a frozen ``Config``; tests build one with
``Config.build(data_dir=tmp_path, ...)``.
"""

import dataclasses
import ipaddress
import os
from collections import namedtuple

from . import units

Setting = namedtuple("Setting", "name default convert help")

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def _size(text):
    """Bytes from '64MiB', '1GiB', '512k' or a plain integer (``sync.units``)."""
    return units.parse_size(text)


def _seconds(text):
    """Whole seconds from '24h', '30d', '90s', '15m' or a plain integer."""
    return units.parse_seconds(text)


def _port(text):
    try:
        value = int(str(text).strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ValueError(f"{text!r} is not a port number: use 1 to 65535 (e.g. 8080)")
    return value


def _positive_int(text):
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{text!r} is not a whole number of at least 1")
    return value


def _addresses(text):
    """A tuple of IP networks from 'a, b/24' (an address is a /32 or /128)."""
    if isinstance(text, tuple):
        return text
    found = []
    for part in str(text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address: {part!r}") from None
    return tuple(found)


def _count(text):
    value = int(text)
    if value < 0:
        raise ValueError(f"must not be negative: {text!r}")
    return value


def _optional_str(text):
    return text or None


def _bool(text):
    if isinstance(text, bool):
        return text
    s = str(text).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


SETTINGS = (
    Setting("host", "127.0.0.1", str,
            "Address to listen on. 0.0.0.0 listens on every interface."),
    Setting("port", 8080, _port, "TCP port to listen on."),
    Setting("data_dir", "./data", str,
            "Directory holding the database, blobs, spool and secret key."),
    Setting("jwt_secret", None, _optional_str,
            "Secret that signs tokens. Overrides DATA_DIR/secret.key, which is "
            "generated on first start when this is unset."),
    Setting("threads", 8, _positive_int, "Worker threads of the HTTP server."),
    Setting("upload_expiry", 24 * 3600, _seconds,
            "Upload sessions untouched this long are removed with their spool "
            "file (seconds, or 30m, 24h, 7d)."),
    Setting("max_file_size", 64 * GIB, _size, "Largest file a device may upload (bytes, or 4GiB)."),
    Setting("max_chunk_size", 64 * MIB, _size,
            "Largest upload chunk a session may ask for (bytes, or 16MiB; at least 256KiB)."),
    Setting("quota", 0, _size,
            "Bytes of content each user may hold (0: no quota)."),
    Setting("token_ttl", 30 * 86400, _seconds,
            "Lifetime of user tokens issued by login and `app.py token` (seconds, or 30d)."),
    Setting("device_token_ttl", 3650 * 86400, _seconds,
            "Lifetime of device tokens (seconds, or 3650d)."),
    Setting("tombstone_grace", 30 * 86400, _seconds,
            "Deletions stay in the feed at least this long, and until every "
            "device of the user has acknowledged them (seconds, or 30d)."),
    Setting("janitor_interval", 3600, _seconds,
            "How often expired uploads and unreferenced blobs are cleaned up."),
    # -- history (SPEC §8) --
    Setting("history_days", 30, _count,
            "Days the server keeps overwritten and deleted versions (thinned to one "
            "per hour after a day, one per day after a week). 0 keeps none."),
    # --
    Setting("fsync", True, _bool,
            "fsync files and directories before acknowledging writes. Only "
            "turn off for throwaway test servers."),
    Setting("access_log", True, _bool, "Log one line per request to standard error."),
    # Limits that keep one client from taking the server from the others.
    Setting("max_connections", 1000, _positive_int,
            "Connections the server keeps open at once (idle and slow ones included); "
            "the open-files limit is raised to fit."),
    Setting("trusted_proxies", "", _addresses,
            "Comma-separated IP addresses of reverse proxies whose X-Forwarded-For "
            "names the client (its last hop); from anyone else the header is ignored."),
    Setting("max_open_uploads", 100, _positive_int,
            "Upload sessions a user may have open at once; the next is 429 "
            "too_many_uploads."),
    Setting("min_free", GIB, _size,
            "Free space on the data disk that uploads never take (bytes, or 1GiB): a "
            "session whose reservation would leave less is 507 insufficient_storage."),
    Setting("max_waiters", 16, _count,
            "Requests that may wait for changes at once (POST /changes/wait, "
            "used by `sync --watch`). Each holds a thread of its own, beside "
            "the --threads that serve everything else; past this many the "
            "answer comes at once and the client retries later (0: no waiting)."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Config:
    """The server's settings, validated. Field names match ``SETTINGS``."""

    host: str
    port: int
    data_dir: str
    jwt_secret: object
    threads: int
    upload_expiry: int
    max_file_size: int
    max_chunk_size: int
    quota: int
    token_ttl: int
    device_token_ttl: int
    tombstone_grace: int
    janitor_interval: int
    history_days: int
    fsync: bool
    access_log: bool
    max_connections: int
    trusted_proxies: tuple
    max_open_uploads: int
    min_free: int
    max_waiters: int

    @classmethod
    def build(cls, **values):
        """A config from defaults overridden by ``values`` (converted and checked)."""
        unknown = set(values) - set(_BY_NAME)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        kwargs = {}
        for setting in SETTINGS:
            raw = values.get(setting.name, setting.default)
            kwargs[setting.name] = None if raw is None else setting.convert(raw)
        kwargs["data_dir"] = os.path.abspath(str(kwargs["data_dir"]))
        if kwargs["max_chunk_size"] < 256 * KIB:
            raise ValueError("max_chunk_size must be at least 256KiB")
        return cls(**kwargs)

    def path(self, *parts):
        """A path inside the data directory."""
        return os.path.join(self.data_dir, *parts)


def env_name(name):
    return "SYNC_" + name.upper()


def flag_name(name):
    return "--" + name.replace("_", "-")


def add_arguments(parser, names=None):
    """Add a flag for each setting (or for ``names``) to an argparse parser."""
    for setting in SETTINGS:
        if names is not None and setting.name not in names:
            continue
        default = setting.default
        shown = "none" if default is None else default
        parser.add_argument(
            flag_name(setting.name), dest=setting.name, default=None, metavar="VALUE",
            help=f"{setting.help} [env {env_name(setting.name)}; default {shown}]")


def load(args=None, environ=None):
    """Settings from parsed flags (an argparse namespace), then the environment."""
    environ = os.environ if environ is None else environ
    values, sources = {}, {}
    for setting in SETTINGS:
        flag = getattr(args, setting.name, None) if args is not None else None
        if flag is not None:
            values[setting.name], sources[setting.name] = flag, flag_name(setting.name)
        elif env_name(setting.name) in environ:
            values[setting.name] = environ[env_name(setting.name)]
            sources[setting.name] = env_name(setting.name)
    for name, raw in values.items():
        try:
            _BY_NAME[name].convert(raw)
        except ValueError as exc:  # name the flag or variable the value came from
            raise ConfigError(f"{sources[name]}: {exc}") from None
    try:
        return Config.build(**values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class ConfigError(Exception):
    """A setting has a value that cannot be used."""

"""What every service function needs besides the database: settings, the
token secret, the database id, a clock and an id generator. Tests inject a
fixed clock and predictable ids through ``create_app``."""

import dataclasses
import secrets
import time
from datetime import datetime, timezone

from .throttle import LoginThrottle
from .wait import Waiters


def new_id():
    return secrets.token_hex(12)


def iso(ts):
    """ISO 8601 UTC with a Z, whole seconds: sorts as text."""
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    """Epoch seconds of a timestamp written by ``iso``."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()


@dataclasses.dataclass
class Runtime:
    config: object
    secret: bytes
    db_id: str
    clock: object = time.time
    idgen: object = new_id
    waiters: Waiters = dataclasses.field(default_factory=Waiters)
    login_throttle: object = None

    def __post_init__(self):
        if self.login_throttle is None:
            self.login_throttle = LoginThrottle(self.clock)

    def now(self):
        """The current time as an ISO 8601 UTC string."""
        return iso(self.clock())

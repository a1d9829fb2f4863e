"""Passwords, tokens and who is calling.

Passwords are stored as scrypt hashes. Tokens are HS256 JWTs signed with
the server secret: user tokens (``sub``) and device tokens (``sub``,
``typ: "device"``, ``did``, ``ver``). ``authenticate`` turns an
``Authorization`` header into a ``Principal`` or raises 401.
"""

import base64
import binascii
import dataclasses
import hashlib
import hmac
import os
import secrets
import stat
import threading
import unicodedata

import jwt

from . import errors
from .config import ConfigError
from .datadir import SECRET_NAME
from .db import database, write
from .models import Device, User

# scrypt's cost: 128 * N * r bytes of memory per hash, slow enough to make
# guessing expensive and fast enough for a login on a Raspberry Pi.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
MIN_SECRET_BYTES = 32
# Each hash holds its memory until it ends, and logins need no token: a burst
# of them would add up (bench/memory.py; figures in bench/README.md). Two run
# at a time; the others wait their turn, which also spreads a burst of guesses.
SCRYPT_AT_ONCE = 2
_scrypt_slots = threading.BoundedSemaphore(SCRYPT_AT_ONCE)


def _scrypt(password, salt, n, r, p, dklen):
    with _scrypt_slots:
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen)


def hash_password(password):
    salt = os.urandom(16)
    digest = _scrypt(password.encode("utf-8"), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, 32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password, stored):
    """True when ``password`` matches ``stored`` (a ``hash_password`` result)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = _scrypt(password.encode("utf-8"), base64.b64decode(salt),
                         int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)


# Checked against when the user does not exist, so that an unknown name
# costs the same time as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def load_secret(config):
    """The signing secret: ``SYNC_JWT_SECRET``, else ``DATA_DIR/secret.key``
    (created with mode 0600 on first start)."""
    if config.jwt_secret:
        secret = config.jwt_secret.encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"the JWT secret (SYNC_JWT_SECRET or --jwt-secret) is {len(secret)} bytes; "
                f"a signing secret needs at least "
                f"{MIN_SECRET_BYTES} (make one with: python3 -c 'import secrets; "
                f"print(secrets.token_hex(32))')")
        return secret
    path = config.path(SECRET_NAME)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path} can be read by other users (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}") from None
        with open(path, "rb") as f:
            secret = f.read().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"{path} is too short to be a secret; delete it to make a new one")
        return secret
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode("ascii"))
        f.flush()
        os.fsync(f.fileno())
    return load_secret(config)


def issue_user_token(rt, name, ttl=None):
    # ``iat`` keeps the fraction of its second (JWT allows a non-integer
    # NumericDate), so that revocation can tell a token of the revoking
    # second from one issued just after it.
    now = rt.clock()
    ttl = rt.config.token_ttl if ttl is None else ttl
    return jwt.encode({"sub": name, "iat": now, "exp": int(now) + ttl}, rt.secret,
                      algorithm="HS256")


def issue_device_token(rt, device):
    now = int(rt.clock())
    claims = {"sub": device.user.name, "typ": "device", "did": device.id,
              "ver": device.token_version, "iat": now,
              "exp": now + rt.config.device_token_ttl}
    return jwt.encode(claims, rt.secret, algorithm="HS256")


def check_password(rt, username, password, address="-", how="login"):
    """The ``User`` whose name and password these are, or None (the same
    work for an unknown name and a wrong password). Throttled: 429
    ``too_many_attempts`` while the name or ``address`` is locked out, and
    every failure is counted and logged (``sync.throttle``). The WebDAV and
    web-page logins call this too."""
    # A name no user can have (a lone surrogate cannot even be sent to
    # SQLite) is answered like an unknown one.
    name = normalize_user_name(username)
    throttled = name if name is not None else username
    rt.login_throttle.check(throttled, address)
    user = User.get_or_none(User.name == name) if name is not None else None
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok = verify_password(password, stored) and user is not None and user.password_hash
    if not ok:
        rt.login_throttle.failed(throttled, address, how)
        return None
    return user


def login(rt, username, password, address="-"):
    """A user token for a correct name and password, else 401 (see
    ``check_password``)."""
    user = check_password(rt, username, password, address)
    if user is None:
        raise errors.SyncError(401, errors.LOGIN_FAILED, "Wrong user name or password.",
                               headers={"WWW-Authenticate": "Bearer"})
    return {"access_token": issue_user_token(rt, user.name), "token_type": "bearer",
            "expires_in": rt.config.token_ttl}


MAX_NAME_LENGTH = 64
_NAME_PUNCTUATION = frozenset("._@-")


def normalize_user_name(name):
    """The NFC form of a usable user name, else None. A name is 1-64
    letters, digits and ``._@-``: no spaces or controls (it goes into the
    access log and the login log as it is), and two spellings of one name
    (NFD and NFC "alicé") are one user."""
    if not isinstance(name, str) or len(name) > 4 * MAX_NAME_LENGTH:
        return None
    try:
        name = unicodedata.normalize("NFC", name)
    except (TypeError, ValueError):
        return None
    if not 0 < len(name) <= MAX_NAME_LENGTH:
        return None
    if not all(ch.isalpha() or ch.isdecimal() or ch in _NAME_PUNCTUATION for ch in name):
        return None
    return name




# App passwords: five groups of five lowercase letters and digits
# (25 characters, 129 bits), easy to type on an e-reader's keyboard.
APP_PASSWORD_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
APP_PASSWORD_GROUPS, APP_PASSWORD_GROUP_LENGTH = 5, 5


def new_app_password():
    return "-".join(
        "".join(secrets.choice(APP_PASSWORD_ALPHABET) for _ in range(APP_PASSWORD_GROUP_LENGTH))
        for _ in range(APP_PASSWORD_GROUPS))


def app_password_hash(password):
    """The stored form of an app password: SHA-256 of its letters and digits.
    A random secret of 129 bits needs no slow hash, so every WebDAV request
    is checked with one hash and one indexed lookup. Dashes, spaces and case
    are ignored, as people type them."""
    normalized = "".join(password.split()).replace("-", "").lower()
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()


# Every request looks its caller up: plain SQL, since building the query
# with peewee cost more than the rest of a small request.
# The columns are the models' own, in their order (``_model``).
_USER_SQL = f"""
    SELECT {", ".join(f.column_name for f in User._meta.sorted_fields)}
    FROM users WHERE name = :name
"""
# A device of the user ``:user_name`` and that user; ``{device}`` says which device.
_USER_DEVICE_SQL = f"""
    SELECT {", ".join("d." + f.column_name for f in Device._meta.sorted_fields)},
           {", ".join("u." + f.column_name for f in User._meta.sorted_fields)}
    FROM devices d JOIN users u ON u.id = d.user_id
    WHERE {{device}} AND u.name = :user_name
"""
_DEVICE_SQL = _USER_DEVICE_SQL.format(device="d.id = :device_id")
_APP_PASSWORD_SQL = _USER_DEVICE_SQL.format(device="d.app_password_hash = :password_hash")
_ADD_USER_SQL = "INSERT OR IGNORE INTO users (name, created_at) VALUES (:name, :created_at)"


def _model(model, row):
    return model(**{f.name: value for f, value in zip(model._meta.sorted_fields, row)})


def _find_user(name):
    row = database.execute_sql(_USER_SQL, {"name": name}).fetchone()
    return None if row is None else _model(User, row)


def ensure_user(rt, name):
    """The user called ``name``, created if new (a token from a trusted issuer)."""
    user = _find_user(name)
    if user is None:
        with write():
            database.execute_sql(_ADD_USER_SQL, {"name": name, "created_at": rt.now()})
        user = _find_user(name)
    return user


def _find_device(device_id, user_name):
    row = database.execute_sql(
        _DEVICE_SQL, {"device_id": device_id, "user_name": user_name}).fetchone()
    if row is None:
        return None
    split = len(Device._meta.sorted_fields)
    device = _model(Device, row[:split])
    device.user = _model(User, row[split:])
    return device


def app_password_device(user_name, password):
    """The device of ``user_name`` whose app password this is, or None."""
    user_name = normalize_user_name(user_name)
    if user_name is None or not password:
        return None
    row = database.execute_sql(_APP_PASSWORD_SQL, {
        "password_hash": app_password_hash(password), "user_name": user_name}).fetchone()
    if row is None:
        return None
    split = len(Device._meta.sorted_fields)
    device = _model(Device, row[:split])
    device.user = _model(User, row[split:])
    return device


def basic_credentials(value):
    """(name, password) of the value of an ``Authorization: Basic`` header,
    or None when it is not base64 of UTF-8 ``name:password``."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def add_user(rt, name, password):
    """Create a local user with a password, or set the password of an existing one."""
    if normalize_user_name(name) is None:
        raise ValueError(f"not a usable user name: {name!r} (1 to {MAX_NAME_LENGTH} "
                         f"letters, digits and ._@-)")
    name = normalize_user_name(name)
    hashed = hash_password(password)
    with write():
        user = User.get_or_none(User.name == name)
        if user is None:
            User.create(name=name, password_hash=hashed, created_at=rt.now())
            return True
        # A new password ends every session the old one opened.
        User.update(password_hash=hashed, tokens_revoked_at=rt.clock()).where(
            User.id == user.id).execute()
        return False


def revoke_user_tokens(rt, name):
    """Refuse every user token of ``name`` issued before now (device tokens
    and app passwords stay). A name the server has not seen yet (tokens
    issued by ``app.py token`` or another issuer, never used) gets its user
    row now, so that those tokens are refused too. Returns whether the user
    existed before; ``ValueError`` for an unusable name."""
    normalized = normalize_user_name(name)
    if normalized is None:
        raise ValueError(f"not a usable user name: {name!r}")
    with write():
        existed = _find_user(normalized) is not None
        ensure_user(rt, normalized)
        User.update(tokens_revoked_at=rt.clock()).where(User.name == normalized).execute()
    return existed


@dataclasses.dataclass
class Principal:
    """Who is calling: a user, and the device when the token is a device token."""

    user: User
    device: object = None

    @property
    def is_device(self):
        return self.device is not None


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_times(claims, now):
    """401 unless ``exp`` is a number after ``now``, and ``iat`` and ``nbf``,
    when there, are numbers not after it."""
    if not _number(claims["exp"]):
        raise errors.unauthorized("The token is not valid.")
    for name in ("iat", "nbf"):
        if name in claims and (not _number(claims[name]) or claims[name] > now):
            raise errors.unauthorized("The token is not valid yet.")
    if claims["exp"] <= now:
        raise errors.unauthorized("The token has expired; log in again.")


def authenticate(rt, header, create=True):
    """The ``Principal`` of an ``Authorization: Bearer`` header, else 401.

    A user token names a user the database may not hold yet (``app.py
    token``): the user is created, or with ``create=False`` nothing is
    written and the principal's user is None."""
    if not header:
        raise errors.unauthorized("This endpoint needs an Authorization: Bearer token.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.unauthorized("The Authorization header must be 'Bearer <token>'.")
    try:
        # Times are the runtime's clock's (``rt.clock``), not PyJWT's own
        # reading of the system clock: one clock decides expiry, revocation
        # and everything else.
        claims = jwt.decode(token, rt.secret, algorithms=["HS256"],
                            options={"require": ["sub", "exp"], "verify_exp": False,
                                     "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidTokenError:
        raise errors.unauthorized("The token is not valid.") from None
    _check_times(claims, rt.clock())
    name = normalize_user_name(claims.get("sub"))
    if name is None:
        raise errors.unauthorized("The token names no valid user.")
    typ = claims.get("typ")
    if typ is None:
        user = ensure_user(rt, name) if create else _find_user(name)
        if user is None:
            return Principal(None)
        revoked = user.tokens_revoked_at
        iat = claims.get("iat")
        # Valid only when issued at or after the revocation. A whole-second
        # iat (another issuer's) is read as the start of its second, so a
        # token of the revoking second is refused unless it says more.
        if revoked is not None and (not isinstance(iat, (int, float)) or iat < revoked):
            raise errors.unauthorized("The token was revoked (a password change or "
                                      "`user revoke`); log in again.")
        return Principal(user)
    if typ != "device":
        raise errors.unauthorized("Unknown token type.")
    did, ver = claims.get("did"), claims.get("ver")
    if not isinstance(did, str) or not isinstance(ver, int) or isinstance(ver, bool):
        raise errors.unauthorized("The device token is not valid.")
    device = _find_device(did, name)
    if device is None or device.token_version != ver:
        raise errors.unauthorized("The device was deleted or its token was replaced.")
    return Principal(device.user, device)

"""Fixtures: a fresh data directory, runtime and app per test, with a clock
the test controls and predictable ids; callers of the API (a user, a
device, another user); a stored file to download; the real server in a
thread (and, for the sync client's tests, two laptop folders registered on
it); and ``python app.py`` as a process that a test starts and kills.
"""

import pytest
import webtest

from sync import auth
from sync.config import Config
from sync.wsgi import create_app, open_runtime

from . import client_harness, openapi_check
from .helpers import (
    RESPONSE_CHECKS,
    STORED_MTIME,
    STORED_PATH,
    STORED_SIZE,
    Api,
    AppProcess,
    Clock,
    Ids,
    Server,
    content,
    upload,
)

if openapi_check.check_response not in RESPONSE_CHECKS:
    RESPONSE_CHECKS.append(openapi_check.check_response)

# The fixtures' user tokens outlive every move of the test clock (tests
# step it by months to age history and tombstones); expiry has tests of its own.
FIXTURE_TOKEN_TTL = 10 * 365 * 86400


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def config(tmp_path):
    return Config.build(data_dir=str(tmp_path / "data"), access_log=False)


@pytest.fixture
def rt(config, clock):
    return open_runtime(config, clock=clock, idgen=Ids())


@pytest.fixture
def testapp(rt):
    return webtest.TestApp(create_app(rt))


@pytest.fixture
def anon(testapp):
    """The API without credentials."""
    return Api(testapp)


@pytest.fixture
def user_token(rt):
    return auth.issue_user_token(rt, "alice", ttl=FIXTURE_TOKEN_TTL)


@pytest.fixture
def api(testapp, user_token):
    """The API as user alice with a user token (no device)."""
    return Api(testapp, user_token)


@pytest.fixture
def device(api):
    """A registered device of alice: the JSON record with its token."""
    return api.post("/devices", {"name": "Laptop", "platform": "linux"}).json


@pytest.fixture
def dev(api, device):
    """The API as alice's device, with its device token."""
    return api.as_(device["token"])


@pytest.fixture
def bob(testapp, rt):
    """The API as another user, bob."""
    return Api(testapp, auth.issue_user_token(rt, "bob", ttl=FIXTURE_TOKEN_TTL))


@pytest.fixture
def data():
    """The bytes of the ``stored`` file."""
    return content(STORED_SIZE)


@pytest.fixture
def stored(dev, data):
    """``data`` uploaded by alice's device at ``books/Dune.txt`` (mtime
    ``STORED_MTIME``); returns the bytes."""
    upload(dev, STORED_PATH, data, mtime=STORED_MTIME)
    return data


# -- the sync client's tests ---------------------------------------------------

@pytest.fixture
def server(tmp_path):
    """The real server on waitress in a thread, over a fresh data directory."""
    server = Server(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def laptops(server, tmp_path):
    """Two client folders, ``a`` and ``b``, each registered as a device of alice."""
    a, b = tmp_path / "a", tmp_path / "b"
    client_harness.init(server, a, "Laptop A")
    client_harness.init(server, b, "Laptop B")
    return a, b


@pytest.fixture
def process(tmp_path):
    """``python app.py`` over a fresh data directory (``start()`` it); killed
    at the end if it still runs."""
    process = AppProcess(tmp_path / "data")
    yield process
    process.close()

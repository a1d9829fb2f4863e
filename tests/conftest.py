"""Fixtures: a fresh data directory, runtime and app per test, with a clock
the test controls and predictable ids."""

import pytest
import webtest

from sync import auth
from sync.config import Config
from sync.wsgi import create_app, open_runtime

from . import openapi_check
from .helpers import RESPONSE_CHECKS, Api

if openapi_check.check_response not in RESPONSE_CHECKS:
    RESPONSE_CHECKS.append(openapi_check.check_response)

START = 1795737600  # 2026-11-27T00:00:00Z


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now=START):
        self.now = float(now)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Ids:
    """Predictable ids: 000000000000000000000001, ..."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return f"{self.n:024x}"


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
    return auth.issue_user_token(rt, "alice")


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
    return Api(testapp, auth.issue_user_token(rt, "bob"))

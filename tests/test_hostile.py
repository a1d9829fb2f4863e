"""Hostile input (SPEC §6): every bad body, path, header and token gets a
4xx with a code, never a 5xx, and leaves every database row and every
file of the data directory as it was.

Property-based cases share one app per test: each example must change
nothing, so they cannot disturb each other.
"""

import json
import time
import urllib.parse

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync import auth

from .state import assert_4xx, snapshot

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=20))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
NOT_STRING = st.none() | st.booleans() | st.integers() | st.floats() | st.lists(
    st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
NOT_INT = (st.none() | st.booleans() | st.floats(allow_nan=False).filter(lambda f: f != int(f)
                                                                         if abs(f) < 1e300 else True)
           | st.text(max_size=5) | st.lists(st.integers(), max_size=2))
CONTROL = [chr(c) for c in range(0, 32)] + ["\x7f", "\x85", "\x9b"]

# Paths the spec says are refused, and paths that only look dangerous.
BAD_PATHS = [
    "", "/", "/etc/passwd", "..", ".", "../x", "a/../../b", "a/./b", "./a", "a//b",
    "a/", "a\\b", "..\\..\\x", "C:\\Windows", "a\x00b", "\x00", "a\nb", "a\rb", "\x1b[2J",
    "a\x7fb", "x" * 256, "é" * 128, "a/" + "y" * 256, "d/" * 2048 + "f",
    "\ud800", "a/\udfff",
]
BAD_PATH = st.sampled_from(BAD_PATHS) | st.builds(
    lambda a, c, b: a + c + b, st.text(max_size=6), st.sampled_from(CONTROL + ["\\"]),
    st.text(max_size=6)) | NOT_STRING


@pytest.fixture
def seen(api, dev, device):
    """Alice with a device that has been seen (so ``last_seen_at`` is set and
    stays put under the test's still clock)."""
    dev.get("/devices")
    return device


def send(caller, method, path, body=None, raw=None, headers=None):
    """One request that may carry anything; the status is checked by the test."""
    if raw is None and body is not None:
        raw = json.dumps(body)
        headers = dict(headers or {}, **{"Content-Type": "application/json"})
    return caller.request(method, path, raw=raw, status="*", headers=headers)


def rejected_unchanged(rt, call):
    """Run ``call``; it must answer a 4xx with a code and change nothing."""
    before = snapshot(rt.config)
    resp = call()
    assert_4xx(resp)
    assert snapshot(rt.config) == before
    return resp


# -- JSON bodies -------------------------------------------------------------

def test_deeply_nested_json_is_400_not_500(rt, api, seen):
    resp = rejected_unchanged(rt, lambda: send(api, "POST", "/devices", raw=b"[" * 100000))
    assert resp.json["code"] == "body_invalid"


def test_nan_and_infinity_are_not_json(rt, api, seen):
    for raw in (b'{"name": NaN}', b'{"name": "x", "platform": -Infinity}'):
        resp = rejected_unchanged(rt, lambda: send(api, "POST", "/devices", raw=raw))
        assert resp.json["code"] == "body_invalid"


def test_login_with_a_lone_surrogate_is_401(rt, anon):
    """A name SQLite cannot even encode is an unknown user, not a 500."""
    for name in ("\ud800", "a\udfffb"):
        resp = rejected_unchanged(rt, lambda: send(anon, "POST", "/api/v1/auth/login",
                                                   {"username": name, "password": "x"}))
        assert resp.status_int == 401 and resp.json["code"] == "login_failed"

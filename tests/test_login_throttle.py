"""Login throttling and the client address (SPEC §3 v2, §7): 10 failures
per name or 50 per address within 10 minutes lock the name or address out
with 429 ``too_many_attempts`` and Retry-After; every failure is one log
line with the address and the name tried; ``--trusted-proxies``."""

import logging

import pytest
import webtest

from sync import auth
from sync.config import Config
from sync.wsgi import create_app, open_runtime

from .helpers import Api, Clock, Dav, Ids, assert_error, basic

LOGIN = "/api/v1/auth/login"


def client(testapp_or_app, address):
    app = getattr(testapp_or_app, "app", testapp_or_app)
    return Api(webtest.TestApp(app, extra_environ={"REMOTE_ADDR": address}))


def attempt(caller, name, password, status):
    return caller.post(LOGIN, {"username": name, "password": password}, status=status)


@pytest.fixture
def alice(rt):
    auth.add_user(rt, "alice", "right")
    auth.add_user(rt, "bob", "bobs")


def test_ten_failures_for_a_name_lock_that_name_out_from_everywhere(rt, testapp, clock, alice):
    guesser = client(testapp, "203.0.113.7")
    for _ in range(10):
        attempt(guesser, "alice", "wrong", 401)
        clock.advance(1)
    resp = attempt(guesser, "alice", "right", 429)  # the right password, unchecked
    assert_error(resp, 429, "too_many_attempts")
    retry = int(resp.headers["Retry-After"])
    assert 600 - 10 <= retry <= 600
    # The name is locked from another address too; other names are not.
    elsewhere = client(testapp, "198.51.100.2")
    attempt(elsewhere, "alice", "right", 429)
    attempt(elsewhere, "bob", "bobs", 200)
    attempt(guesser, "bob", "bobs", 200)
    # Once the window has passed the first failure, one more try is allowed.
    clock.advance(retry)
    attempt(elsewhere, "alice", "right", 200)


def test_fifty_failures_from_an_address_lock_that_address_out(rt, testapp, clock, alice):
    guesser = client(testapp, "203.0.113.7")
    for i in range(50):
        attempt(guesser, f"user{i}", "wrong", 401)  # never 10 for one name
    resp = attempt(guesser, "alice", "right", 429)
    assert_error(resp, 429, "too_many_attempts")
    assert 1 <= int(resp.headers["Retry-After"]) <= 600
    attempt(client(testapp, "198.51.100.2"), "alice", "right", 200)
    clock.advance(601)
    attempt(guesser, "alice", "right", 200)


def test_spellings_of_one_name_share_its_count(rt, testapp, alice):
    import unicodedata
    auth.add_user(rt, "josé", "pw")
    nfd = unicodedata.normalize("NFD", "josé")
    for i in range(10):
        attempt(client(testapp, f"192.0.2.{i}"), nfd if i % 2 else "josé", "wrong", 401)
    attempt(client(testapp, "192.0.2.99"), "josé", "pw", 429)


def test_every_failure_is_one_log_line_with_the_address_and_the_name(rt, testapp, caplog):
    with caplog.at_level(logging.WARNING, logger="sync.auth"):
        attempt(client(testapp, "203.0.113.7"), "mallory\n2026 fake line", "x", 401)
        attempt(client(testapp, "203.0.113.7"), "nobody", "x", 401)
    lines = [r.getMessage() for r in caplog.records if r.name == "sync.auth"]
    assert lines == ["failed login from 203.0.113.7 for user mallory%0A2026%20fake%20line",
                     "failed login from 203.0.113.7 for user nobody"]
    assert all("\n" not in line for line in lines)


def test_a_successful_login_is_not_logged_as_a_failure(rt, testapp, alice, caplog):
    with caplog.at_level(logging.WARNING, logger="sync.auth"):
        attempt(client(testapp, "203.0.113.7"), "alice", "right", 200)
    assert not [r for r in caplog.records if r.name == "sync.auth"]


def test_the_throttle_forgets_old_keys_beyond_its_bound():
    from sync.throttle import Window
    clock = Clock()
    window = Window(limit=2, window_s=600, clock=clock, max_keys=100)
    for i in range(1000):
        window.add(f"name{i}", clock())
    assert len(window._times) == 100
    window.add("name999", clock())
    assert window.retry_after("name999", clock()) == 600
    assert window.retry_after("name0", clock()) == 0


# -- the client address -----------------------------------------------------------

def proxied_app(tmp_path, trusted):
    config = Config.build(data_dir=str(tmp_path / "data"), trusted_proxies=trusted)
    rt = open_runtime(config, clock=Clock(), idgen=Ids())
    auth.add_user(rt, "alice", "right")
    return rt, create_app(rt)


@pytest.mark.parametrize("peer, forwarded, seen", [
    ("10.0.0.2", "203.0.113.9", "203.0.113.9"),                 # the trusted proxy
    ("10.0.0.2", "1.2.3.4, 203.0.113.9", "203.0.113.9"),         # its last hop only
    ("::ffff:10.0.0.2", "203.0.113.9", "203.0.113.9"),           # IPv4 over IPv6
    ("10.0.0.2", "not an address", "10.0.0.2"),
    ("198.51.100.5", "203.0.113.9", "198.51.100.5"),             # anyone else: ignored
    ("198.51.100.5", None, "198.51.100.5"),
])
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path, caplog, peer, forwarded,
                                                          seen):
    rt, app = proxied_app(tmp_path, "10.0.0.2, 10.0.1.0/24")
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with caplog.at_level(logging.INFO):
        client(app, peer).post(LOGIN, {"username": "alice", "password": "x"}, status=401,
                               headers=headers)
    messages = [r.getMessage() for r in caplog.records]
    assert f"failed login from {seen} for user alice" in messages
    access = [m for m in messages if m.startswith(f"{seen} POST /api/v1/auth/login 401 ")]
    assert len(access) == 1, messages


def test_a_spoofed_x_forwarded_for_does_not_dodge_the_address_limit(tmp_path):
    rt, app = proxied_app(tmp_path, "")
    guesser = client(app, "203.0.113.7")
    for i in range(50):
        guesser.post(LOGIN, {"username": f"u{i}", "password": "x"}, status=401,
                     headers={"X-Forwarded-For": f"192.0.2.{i}"})
    guesser.post(LOGIN, {"username": "alice", "password": "right"}, status=429,
                 headers={"X-Forwarded-For": "192.0.2.200"})


def test_trusted_proxies_must_be_addresses(tmp_path):
    with pytest.raises(ValueError, match="not an IP address"):
        Config.build(data_dir=str(tmp_path), trusted_proxies="localhost")


def test_webdav_and_api_guesses_count_together_and_are_logged_alike(rt, testapp, alice,
                                                                    caplog):
    with caplog.at_level(logging.WARNING, logger="sync.auth"):
        for _ in range(5):
            Dav(testapp, basic("alice", "guess")).req("PROPFIND", "", status=401)
        for _ in range(5):
            attempt(client(testapp, "203.0.113.7"), "alice", "guess", 401)
    attempt(client(testapp, "198.51.100.2"), "alice", "right", 429)
    lines = [r.getMessage() for r in caplog.records if r.name == "sync.auth"]
    assert lines[0].startswith("failed WebDAV login from ") and lines[0].endswith("alice")
    assert lines[-1] == "failed login from 203.0.113.7 for user alice"

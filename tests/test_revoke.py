"""Revoking user tokens (SPEC §3 v2): ``app.py user revoke NAME`` and any
password change by ``user add NAME`` refuse every user token of NAME issued
before that moment; device tokens and app passwords stay valid."""

import os

import webtest

from sync import auth
from sync.config import Config
from sync.db import database
from sync.wsgi import create_app, open_runtime

from .helpers import Api, run_app
from .seed import oldest


def test_revoke_ends_older_user_tokens_and_keeps_devices(rt, testapp, clock, api, dev):
    old = api
    clock.advance(1.25)
    assert auth.revoke_user_tokens(rt, "alice")
    resp = old.get("/devices", status=401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in resp.json["description"]
    dev.get("/devices")  # the device token still syncs
    clock.advance(0.5)  # a login a moment later, in the same second, works
    Api(testapp, auth.issue_user_token(rt, "alice")).get("/devices")


def test_a_password_change_ends_the_sessions_of_the_old_password(rt, testapp, clock, anon):
    auth.add_user(rt, "alice", "old password")
    token = anon.post("/api/v1/auth/login", {"username": "alice",
                                             "password": "old password"}).json["access_token"]
    Api(testapp, token).get("/devices")
    clock.advance(1)
    auth.add_user(rt, "alice", "new password")
    Api(testapp, token).get("/devices", status=401)
    token = anon.post("/api/v1/auth/login", {"username": "alice",
                                             "password": "new password"}).json["access_token"]
    Api(testapp, token).get("/devices")


def test_revoke_leaves_other_users_alone(rt, api, bob, clock):
    clock.advance(1)
    auth.revoke_user_tokens(rt, "alice")
    bob.get("/devices")


def test_a_token_issued_just_before_a_revocation_is_refused(rt, testapp, clock):
    clock.advance(0.2)
    before = auth.issue_user_token(rt, "alice")
    Api(testapp, before).get("/devices")
    clock.advance(0.3)  # the same second
    auth.revoke_user_tokens(rt, "alice")
    Api(testapp, before).get("/devices", status=401)


def test_a_token_issued_just_after_a_revocation_is_accepted(rt, testapp, clock):
    clock.advance(0.5)
    auth.revoke_user_tokens(rt, "alice")
    clock.advance(0.000001)  # a microsecond later, in the same second
    Api(testapp, auth.issue_user_token(rt, "alice")).get("/devices")


def test_a_whole_second_iat_counts_as_the_start_of_its_second(rt, testapp, clock):
    import jwt

    def token(iat):
        return jwt.encode({"sub": "alice", "iat": iat, "exp": 4102444800}, rt.secret,
                          algorithm="HS256")
    second = int(clock())
    clock.advance(0.5)
    auth.revoke_user_tokens(rt, "alice")
    # Another issuer's whole seconds cannot say whether the token of the
    # revoking second came before it: refused; the next second is after.
    Api(testapp, token(second)).get("/devices", status=401)
    clock.advance(1)  # a token is not valid before its iat
    Api(testapp, token(second + 1)).get("/devices")


def test_a_token_without_iat_is_refused_once_tokens_were_revoked(rt, testapp, clock):
    import jwt
    no_iat = jwt.encode({"sub": "alice", "exp": 4102444800}, rt.secret, algorithm="HS256")
    Api(testapp, no_iat).get("/devices")
    auth.revoke_user_tokens(rt, "alice")
    Api(testapp, no_iat).get("/devices", status=401)


def test_the_revoke_command(tmp_path):
    data = str(tmp_path / "data")
    missing = run_app("user", "revoke", "alice", "--data-dir", data)
    assert missing.returncode == 1 and not os.path.exists(data)
    assert missing.stderr.strip() == (
        f"app.py: error: there is no database in {data}: check --data-dir (or "
        "SYNC_DATA_DIR); nothing was revoked")
    token = run_app("token", "alice", "--create", "--data-dir", data).stdout.strip()
    unused = run_app("token", "carol", "--data-dir", data).stdout.strip()
    assert token and unused
    result = run_app("user", "revoke", "alice", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert "revoked every user token of alice" in result.stderr
    fresh = run_app("token", "alice", "--data-dir", data).stdout.strip()
    rt = open_runtime(Config.build(data_dir=data, access_log=False))
    app = webtest.TestApp(create_app(rt))
    Api(app, token).get("/devices", status=401)
    Api(app, fresh).get("/devices")

    # A name whose tokens were never used yet: revoked all the same.
    result = run_app("user", "revoke", "carol", "--data-dir", data)
    assert result.returncode == 0 and "carol had not used this server yet" in result.stderr
    bad = run_app("user", "revoke", "no body", "--data-dir", data)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "not a usable user name" in bad.stderr
    rt = open_runtime(Config.build(data_dir=data, access_log=False))
    Api(webtest.TestApp(create_app(rt)), unused).get("/devices", status=401)


def test_a_migrated_database_keeps_its_users_tokens_valid(tmp_path):
    path = oldest(tmp_path)  # a version 1 database with a user alice
    rt = open_runtime(Config.build(data_dir=str(tmp_path), access_log=False))
    assert rt.config.path("sync.sqlite3") == path
    with database.connection_context():
        assert database.execute_sql(
            "SELECT name, tokens_revoked_at FROM users").fetchall() == [("alice", None)]
    Api(webtest.TestApp(create_app(rt)), auth.issue_user_token(rt, "alice")).get("/conflicts")

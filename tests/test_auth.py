"""Authentication (SPEC §3): tokens, login, device tokens, 401 cases."""

import time

import jwt
import pytest

from sync import auth

from .helpers import Api, assert_error


def _expect_401(api, token):
    resp = api.as_(token).get("/devices", status=401)
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    return resp


def test_missing_authorization_is_401(anon):
    resp = anon.get("/devices", status=401)
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Basic YWxpY2U6eA==", "Bearer", "Bearer ", "Token abc",
                                    "bearer not.a.jwt"])
def test_malformed_authorization_is_401(anon, header):
    resp = anon.get("/devices", headers={"Authorization": header}, status=401)
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_user_token_works_and_creates_the_user(api, rt):
    from sync.models import User
    assert api.get("/devices").json == {"devices": []}
    assert User.select().where(User.name == "alice").count() == 1


def test_expired_token_is_401(api, rt, clock):
    api.get("/devices")
    token = jwt.encode({"sub": "alice", "iat": int(clock()) - 100,
                        "exp": int(clock()) - 10}, rt.secret, algorithm="HS256")
    _expect_401(api, token)


def test_expiry_follows_the_servers_clock_not_pyjwts(testapp, rt, clock):
    """A token's lifetime is counted on the runtime's clock: issued 60 days
    before the system's time with a 30-day lifetime, it holds until that
    clock passes its ``exp``, then it is 401."""
    clock.now = time.time() - 60 * 86400
    token = auth.issue_user_token(rt, "alice", ttl=30 * 86400)
    user = Api(testapp, token)
    user.get("/devices", status=200)
    clock.advance(30 * 86400 + 1)
    _expect_401(user, token)


def test_a_non_numeric_exp_is_401(api, rt, clock):
    token = jwt.encode({"sub": "alice", "iat": int(clock()), "exp": "tomorrow"}, rt.secret,
                       algorithm="HS256")
    _expect_401(api, token)


def test_wrong_signature_is_401(api):
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, "another secret " * 3,
                       algorithm="HS256")
    _expect_401(api, token)


def test_alg_none_is_401(api):
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, None, algorithm="none")
    _expect_401(api, token)


def test_other_algorithm_with_the_same_secret_is_401(api, rt):
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, rt.secret, algorithm="HS512")
    _expect_401(api, token)


def test_token_without_exp_or_sub_is_401(api, rt):
    _expect_401(api, jwt.encode({"sub": "alice"}, rt.secret, algorithm="HS256"))
    _expect_401(api, jwt.encode({"exp": int(time.time()) + 60}, rt.secret, algorithm="HS256"))


def test_token_with_unusable_user_name_is_401(api, rt):
    for sub in ["", " alice", "a/b", "x" * 500]:
        _expect_401(api, jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, rt.secret,
                                    algorithm="HS256"))


def test_device_token_of_deleted_device_is_401(api, device, dev):
    dev.get("/devices")
    api.delete(f"/devices/{device['id']}", status=204)
    _expect_401(api, device["token"])


def test_regenerated_device_token_kills_the_old_one(api, device):
    new = api.post(f"/devices/{device['id']}/token").json["token"]
    _expect_401(api, device["token"])
    assert api.as_(new).get(f"/devices/{device['id']}").json["id"] == device["id"]


def test_device_token_with_wrong_ver_or_unknown_device_is_401(api, rt, device):
    now = int(time.time())
    base = {"sub": "alice", "typ": "device", "iat": now, "exp": now + 60}
    _expect_401(api, jwt.encode(dict(base, did=device["id"], ver=2), rt.secret, algorithm="HS256"))
    _expect_401(api, jwt.encode(dict(base, did="ffffffffffff", ver=1), rt.secret,
                                algorithm="HS256"))
    _expect_401(api, jwt.encode(dict(base, did=device["id"], ver="1"), rt.secret,
                                algorithm="HS256"))
    _expect_401(api, jwt.encode(dict(base, typ="admin", did=device["id"], ver=1), rt.secret,
                                algorithm="HS256"))


def test_device_token_of_another_users_device_is_401(api, rt, device):
    """A token naming bob with alice's device id is not bob's device."""
    now = int(time.time())
    token = jwt.encode({"sub": "bob", "typ": "device", "did": device["id"], "ver": 1,
                        "iat": now, "exp": now + 60}, rt.secret, algorithm="HS256")
    _expect_401(api, token)


def test_login_returns_a_working_token(anon, rt):
    auth.add_user(rt, "carol", "correct horse")
    resp = anon.post("/api/v1/auth/login", {"username": "carol", "password": "correct horse"})
    body = resp.json
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == rt.config.token_ttl
    assert anon.as_(body["access_token"]).get("/devices").json == {"devices": []}


def test_login_wrong_password_and_unknown_user_get_the_same_401(anon, rt):
    auth.add_user(rt, "carol", "correct horse")
    wrong = anon.post("/api/v1/auth/login", {"username": "carol", "password": "nope"}, status=401)
    unknown = anon.post("/api/v1/auth/login", {"username": "dave", "password": "nope"}, status=401)
    assert wrong.json == unknown.json
    assert_error(wrong, 401, "login_failed")


def test_login_of_token_only_user_fails(anon, api):
    api.get("/devices")  # creates alice without a password
    resp = anon.post("/api/v1/auth/login", {"username": "alice", "password": ""}, status=401)
    assert_error(resp, 401, "login_failed")


@pytest.mark.parametrize("body", [{}, {"username": "carol"}, {"username": 1, "password": "x"},
                                  {"username": "carol", "password": None}])
def test_login_bad_body_is_400(anon, body):
    assert_error(anon.post("/api/v1/auth/login", body, status=400), 400, "body_invalid")


def test_passwords_are_stored_hashed(rt):
    from sync.models import User
    auth.add_user(rt, "carol", "correct horse")
    stored = User.get(User.name == "carol").password_hash
    assert "correct horse" not in stored and stored.startswith("scrypt$")
    assert auth.verify_password("correct horse", stored)
    assert not auth.verify_password("correct horsf", stored)


def test_secret_key_file_is_private_and_stable(config, rt):
    import os
    import stat

    from sync.wsgi import open_runtime
    mode = stat.S_IMODE(os.stat(config.path("secret.key")).st_mode)
    assert mode == 0o600
    assert open_runtime(config).secret == rt.secret


def test_env_secret_overrides_the_file(tmp_path):
    from sync.config import Config
    from sync.wsgi import open_runtime
    cfg = Config.build(data_dir=str(tmp_path / "d"), jwt_secret="s" * 40)
    assert open_runtime(cfg).secret == b"s" * 40


def test_unsafe_secret_file_is_refused(config, rt):
    import os

    from sync.config import ConfigError
    from sync.wsgi import open_runtime
    os.chmod(config.path("secret.key"), 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        open_runtime(config)

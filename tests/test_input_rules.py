"""The (v2) rules on names and numbers a client chooses: user names (SPEC
§3), library paths that could display as others (§4), Range numbers of any
length, and the length of SYNC_JWT_SECRET (§2)."""

import os
import subprocess
import sys
import unicodedata

import jwt
import pytest

from sync import auth
from sync.config import Config, ConfigError
from sync.wsgi import open_runtime

from .helpers import Api, assert_error, rejected_unchanged, snapshot, start_upload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NFC = unicodedata.normalize("NFC", "alicé")
NFD = unicodedata.normalize("NFD", "alicé")


# -- user names ---------------------------------------------------------------

def test_nfd_and_nfc_spellings_of_a_name_are_one_user(rt, testapp):
    assert NFC != NFD
    nfc = Api(testapp, auth.issue_user_token(rt, NFC))
    nfd = Api(testapp, auth.issue_user_token(rt, NFD))
    made = nfc.post("/devices", {"name": "Laptop"}).json
    assert [d["id"] for d in nfd.get("/devices").json["devices"]] == [made["id"]]


def test_login_with_the_nfd_spelling_finds_the_nfc_user(rt, anon):
    auth.add_user(rt, NFD, "correct horse")  # stored as NFC
    with pytest.raises(ValueError):
        auth.add_user(rt, "alice bob", "x")
    token = anon.post("/api/v1/auth/login", {"username": NFC, "password": "correct horse"}).json
    claims = jwt.decode(token["access_token"], rt.secret, algorithms=["HS256"])
    assert claims["sub"] == NFC
    anon.post("/api/v1/auth/login", {"username": NFD, "password": "correct horse"})


@pytest.mark.parametrize("name", [
    "alice bob", "alice\tbob", "alice\nuser=root", "a" * 65, "", "al/ice", "al:ice",
    "alice\u202e", "ali\u00adce", "\ud800", "alice!",
])
def test_a_token_naming_an_unusable_user_is_401(rt, anon, name):
    token = jwt.encode({"sub": name, "exp": 4102444800}, rt.secret, algorithm="HS256")
    resp = rejected_unchanged(rt, lambda: anon.as_(token).get("/devices", status=401))
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert auth.normalize_user_name(name) is None


@pytest.mark.parametrize("name", ["alice", "a" * 64, "bob.smith@example.org", "x-1_2",
                                  "Ærøskøbing", "名前", "ａlice"])
def test_letters_digits_and_four_marks_make_a_name(name):
    assert auth.normalize_user_name(name) == name


def test_login_with_an_unusable_name_is_the_ordinary_401(rt, anon):
    auth.add_user(rt, "alice", "pw")
    for name in ("alice ", " alice", "alice bob"):
        resp = anon.post("/api/v1/auth/login", {"username": name, "password": "pw"},
                         status=401)
        assert_error(resp, 401, "login_failed")


def test_the_token_command_refuses_a_name_with_a_space(tmp_path):
    result = subprocess.run([sys.executable, "app.py", "--data-dir", str(tmp_path / "d"),
                             "token", "alice bob"], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode != 0
    assert "not a usable user name" in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


# -- the signing secret --------------------------------------------------------

def test_a_short_jwt_secret_is_refused(tmp_path):
    config = Config.build(data_dir=str(tmp_path / "d"), jwt_secret="abc")
    with pytest.raises(ConfigError, match="at least 32"):
        open_runtime(config)
    config = Config.build(data_dir=str(tmp_path / "e"), jwt_secret="s" * 32)
    assert open_runtime(config).secret == b"s" * 32


def test_the_server_refuses_to_start_with_a_short_jwt_secret(tmp_path):
    env = dict(os.environ, SYNC_JWT_SECRET="abc")
    result = subprocess.run([sys.executable, "app.py", "--data-dir", str(tmp_path / "d"),
                             "--port", "0"], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=60)
    assert result.returncode != 0
    assert "SYNC_JWT_SECRET" in result.stderr and "32" in result.stderr


# -- paths that display as other paths ------------------------------------------

@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u202a", "\u202b", "\u202c",
                                  "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
                                  "\u2069"])
def test_separators_and_bidi_controls_in_a_path_are_refused(rt, dev, char):
    path = f"docs/invoice{char}txt.exe"
    dev.get("/devices")  # last_seen_at is written now, not by the calls below
    before = snapshot(rt.config)
    resp = dev.post("/report", {"changes": [
        {"op": "delete", "path": path, "base_rev": None}]})
    assert resp.json["results"][0]["status"] == "rejected"
    assert snapshot(rt.config) == before
    resp = rejected_unchanged(rt, lambda: start_upload(dev, path, b"x", status=400))
    assert_error(resp, 400, "path_invalid")


def test_a_right_to_left_letter_is_still_a_fine_path(dev):
    resp = dev.post("/report", {"changes": [{"op": "delete", "path": "كتب/ملف.txt",
                                             "base_rev": None}]})
    assert resp.json["results"][0]["status"] == "unchanged"


# -- Range numbers -------------------------------------------------------------

@pytest.mark.parametrize("header, status, body", [
    ("bytes=" + "9" * 4300 + "-", 416, None),
    ("bytes=" + "9" * 5000 + "-" + "9" * 5000, 416, None),
    ("bytes=0-" + "9" * 5000, 206, slice(0, None)),
    ("bytes=-" + "9" * 5000, 206, slice(0, None)),
    ("bytes=" + "0" * 5000 + "5-9", 206, slice(5, 10)),
])
def test_a_range_with_a_huge_number_is_answered_not_a_500(api, stored, header, status, body):
    resp = api.get("/download/books/Dune.txt", headers={"Range": header}, status=status)
    if body is not None:
        assert resp.body == stored[body]
    else:
        assert resp.headers["Content-Range"] == f"bytes */{len(stored)}"

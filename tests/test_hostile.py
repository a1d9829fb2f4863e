"""Hostile input (SPEC §6): every bad body, path, header and token gets a
4xx with a code, never a 5xx, and leaves every database row and every
file of the data directory as it was.

Property-based cases share one app per test: each example must change
nothing, so they cannot disturb each other.
"""

import json
import urllib.parse

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync import auth

from .helpers import (
    CHUNK,
    assert_4xx,
    rejected_unchanged,
    sha256,
    snapshot,
    upload,
)

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
NOT_INT = (st.none() | st.booleans() | st.floats() | st.text(max_size=5)
           | st.lists(st.integers(), max_size=2) | st.integers(min_value=2 ** 63)
           | st.integers(max_value=-2 ** 63 - 1))
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


# -- JSON bodies -------------------------------------------------------------

RAW_BODIES = st.sampled_from([
    b"", b"{", b"null", b"[]", b"[1]", b"\"x\"", b"1e999999", b"NaN", b"{\"name\": NaN}",
    b"{\"name\": Infinity}", b"\xff\xfe{}", b"{\"name\": \"\\ud800\"}", b"[" * 100000,
    b"{\"a\":" * 50000, b"9" * 5000, b"\x00" * 10,
]) | st.binary(max_size=64)


@FUZZ
@given(raw=RAW_BODIES)
def test_garbled_json_is_refused_everywhere(rt, api, dev, seen, raw):
    for caller, method, path in [(api, "POST", "/devices"), (api, "PUT", f"/devices/{seen['id']}"),
                                 (api, "POST", "/api/v1/auth/login"), (dev, "POST", "/report"),
                                 (dev, "POST", "/ack"), (dev, "POST", "/upload"),
                                 (dev, "POST", "/conflicts/1/resolve")]:
        resp = rejected_unchanged(rt, lambda: send(caller, method, path, raw=raw,
                                                   headers={"Content-Type": "application/json"}))
        if resp.status_int == 400 and path != "/conflicts/1/resolve":
            assert resp.json["code"] == "body_invalid", (path, raw, resp.json)


def test_deeply_nested_json_is_400_not_500(rt, api, seen):
    resp = rejected_unchanged(rt, lambda: send(api, "POST", "/devices", raw=b"[" * 100000))
    assert resp.json["code"] == "body_invalid"


def test_nan_and_infinity_are_not_json(rt, api, seen):
    for raw in (b'{"name": NaN}', b'{"name": "x", "platform": -Infinity}'):
        resp = rejected_unchanged(rt, lambda: send(api, "POST", "/devices", raw=raw))
        assert resp.json["code"] == "body_invalid"


def test_json_body_over_2_mib_is_413(rt, api, dev, seen):
    big = json.dumps({"name": "x", "pad": "y" * (2 * 1024 * 1024)})
    for caller, path in [(api, "/devices"), (dev, "/report"), (dev, "/upload")]:
        resp = rejected_unchanged(rt, lambda: send(caller, "POST", path, raw=big,
                                                   headers={"Content-Type": "application/json"}))
        if resp.status_int != 405:
            assert resp.status_int == 413 and resp.json["code"] == "body_too_large"


@FUZZ
@given(body=JSON)
def test_any_json_to_device_endpoints_changes_nothing_unless_valid(rt, api, seen, body):
    def valid(b):
        return (isinstance(b, dict) and isinstance(b.get("name"), str)
                and 1 <= len(b["name"]) <= 100 and b["name"].isprintable()
                and (b.get("platform") is None or (isinstance(b["platform"], str)
                                                  and len(b["platform"]) <= 100
                                                  and b["platform"].isprintable())))
    if not valid(body):
        rejected_unchanged(rt, lambda: send(api, "POST", "/devices", body))
        if isinstance(body, dict) and ("name" in body or "platform" in body):
            rejected_unchanged(rt, lambda: send(api, "PUT", f"/devices/{seen['id']}", body))


@FUZZ
@given(name=NOT_STRING | st.sampled_from(["", "x" * 101, "a\x00", "tab\there", "\ud800", "\u2028"]),
       platform=st.just("linux") | NOT_STRING.filter(lambda v: v is not None)
       | st.sampled_from(["p" * 101, "a\nb", "\udc00"]))
def test_bad_device_fields_are_body_invalid(rt, api, seen, name, platform):
    for body in ({"name": name}, {"name": "ok", "platform": platform} if platform != "linux"
                 else {"name": name, "platform": platform}):
        resp = rejected_unchanged(rt, lambda: send(api, "POST", "/devices", body))
        assert resp.json["code"] == "body_invalid"
        resp = rejected_unchanged(rt, lambda: send(api, "PUT", f"/devices/{seen['id']}", body))
        assert resp.json["code"] == "body_invalid"


@pytest.fixture
def carol(rt):
    auth.add_user(rt, "carol", "correct horse")


@FUZZ
@given(username=NOT_STRING | st.text(max_size=200), password=NOT_STRING | st.text(max_size=50))
def test_login_with_anything_is_400_or_401(rt, anon, carol, username, password):
    resp = rejected_unchanged(rt, lambda: send(anon, "POST", "/api/v1/auth/login",
                                               {"username": username, "password": password}))
    if isinstance(username, str) and isinstance(password, str):
        assert resp.status_int == 401 and resp.json["code"] == "login_failed"
    else:
        assert resp.json["code"] == "body_invalid"


def test_login_with_a_lone_surrogate_is_401(rt, anon):
    """A name SQLite cannot even encode is an unknown user, not a 500."""
    for name in ("\ud800", "a\udfffb"):
        resp = rejected_unchanged(rt, lambda: send(anon, "POST", "/api/v1/auth/login",
                                                   {"username": name, "password": "x"}))
        assert resp.status_int == 401 and resp.json["code"] == "login_failed"


# -- ids in URLs and headers ---------------------------------------------------

ODD_IDS = st.sampled_from([
    "%00", "%2e%2e", "..%2f..%2fetc", "%ED%A0%80", "%FF%FE", "x" * 5000, "%E2%80%AE",
    "1%20OR%201=1", "'%3B--", "%5C%5C", "%0d%0aX-Injected:%201",
]) | st.text(min_size=1, max_size=30).map(lambda s: urllib.parse.quote(s, safe=""))


@FUZZ
@given(ident=ODD_IDS)
def test_odd_device_ids_in_the_url_are_404(rt, api, seen, ident):
    for method, body in [("GET", None), ("PUT", {"name": "x"}), ("DELETE", None)]:
        resp = rejected_unchanged(rt, lambda: send(api, method, f"/devices/{ident}", body))
        assert resp.status_int == 404 and resp.json["code"] == "not_found"
    resp = rejected_unchanged(rt, lambda: send(api, "POST", f"/devices/{ident}/token"))
    assert resp.status_int == 404


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff,
                                    blacklist_characters="\x7f"), max_size=60)


@FUZZ
@given(value=HEADER_TEXT | st.sampled_from(["000000000000000000000001 ", "*", "%00", "x" * 4000]))
def test_x_device_id_that_is_not_a_device_is_403(rt, api, seen, value):
    if value == seen["id"] or not value.strip():
        return
    resp = rejected_unchanged(rt, lambda: send(api.as_(api.token, value), "GET", "/changes"))
    if resp.status_int != 405:
        assert resp.status_int == 403, resp.json


@FUZZ
@given(value=HEADER_TEXT | st.sampled_from([
    "Bearer", "Bearer  ", "bearer x.y.z", "Basic YTpi", "Bearer a.b", "Bearer ....",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", "Bearer " + "A" * 8000]))
def test_garbage_authorization_is_401(rt, anon, seen, value):
    resp = rejected_unchanged(rt, lambda: send(anon, "GET", "/devices",
                                               headers={"Authorization": value}))
    assert resp.status_int == 401 and resp.headers["WWW-Authenticate"] == "Bearer"


# -- tokens ----------------------------------------------------------------------

def _forge(claims, key, alg="HS256", headers=None):
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _b64(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _flip(token, at):
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]


def _unsigned(header, claims, signature=b""):
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
                     _b64(signature)])


def test_hostile_tokens_are_401_and_create_nothing(rt, api, seen, bob):
    now = int(rt.clock())
    good = {"sub": "mallory", "iat": now, "exp": now + 600}
    dev_claims = {"sub": "alice", "typ": "device", "did": seen["id"], "ver": 1,
                  "iat": now, "exp": now + 600}
    bob_device = bob.post("/devices", {"name": "Bob's"}).json
    tokens = {
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, good),
        "alg None": _unsigned({"alg": "None"}, good),
        "alg missing": _unsigned({"typ": "JWT"}, good, b"x" * 32),
        "HS512 same secret": _forge(good, rt.secret, "HS512"),
        "HS384 same secret": _forge(good, rt.secret, "HS384"),
        "RS256 header, HMAC sig": _unsigned({"alg": "RS256"}, good, b"\x00" * 256),
        "wrong key": _forge(good, b"k" * 64),
        "empty key": _unsigned({"alg": "HS256"}, good),
        "expired": _forge(dict(good, exp=now - 5), rt.secret),
        "nbf in the future": _forge(dict(good, nbf=now + 3600), rt.secret),
        "iat in the future": _forge(dict(good, iat=now + 3600), rt.secret),
        "iat not a number": _forge(dict(good, iat="yesterday"), rt.secret),
        "exp not a number": _forge(dict(good, exp="never"), rt.secret),
        "exp huge float": _unsigned({"alg": "HS256"}, dict(good, exp=1e308), b"s"),
        "no exp": _forge({"sub": "mallory"}, rt.secret),
        "sub not a string": _forge(dict(good, sub=["alice"]), rt.secret),
        "sub with slash": _forge(dict(good, sub="alice/../bob"), rt.secret),
        "typ unknown": _forge(dict(good, typ="admin"), rt.secret),
        "device of bob named as alice's": _forge(dict(dev_claims, did=bob_device["id"]), rt.secret),
        "device with ver as bool": _forge(dict(dev_claims, ver=True), rt.secret),
        "device with ver as float": _forge(dict(dev_claims, ver=1.0), rt.secret),
        "device with did a list": _forge(dict(dev_claims, did=[seen["id"]]), rt.secret),
        "device ver 2": _forge(dict(dev_claims, ver=2), rt.secret),
        "device expired": _forge(dict(dev_claims, exp=now - 1), rt.secret),
        "truncated": auth.issue_user_token(rt, "alice")[:-3],
        # Not the last character: its low bits are padding, ignored by base64.
        "signature changed": _flip(auth.issue_user_token(rt, "alice"), -10),
        "two tokens": auth.issue_user_token(rt, "alice") + " " + auth.issue_user_token(rt, "alice"),
    }
    for why, token in tokens.items():
        for method, path in [("GET", "/devices"), ("POST", "/devices"), ("GET", "/changes"),
                             ("GET", "/conflicts"), ("GET", "/download/a.txt"),
                             ("POST", "/upload"), ("POST", "/report")]:
            resp = rejected_unchanged(rt, lambda: send(api.as_(token), method, path,
                                                       {"name": "x"} if method == "POST" else None))
            if resp.status_int != 405:
                assert resp.status_int == 401, (why, path, resp.json)
                assert resp.headers["WWW-Authenticate"] == "Bearer", why


def test_dead_device_tokens_are_401(rt, api, dev, seen):
    other = api.post("/devices", {"name": "Phone"}).json
    api.post(f"/devices/{seen['id']}/token")
    api.delete(f"/devices/{other['id']}", status=204)
    for token in (seen["token"], other["token"]):
        for method, path in [("GET", "/devices"), ("GET", f"/devices/{seen['id']}"),
                             ("GET", "/changes"), ("POST", "/report"), ("POST", "/ack"),
                             ("POST", "/upload"), ("GET", "/conflicts")]:
            resp = rejected_unchanged(rt, lambda: send(api.as_(token), method, path,
                                                       {} if method == "POST" else None))
            if resp.status_int != 405:
                assert resp.status_int == 401, (path, resp.json)


def test_another_users_device_as_x_device_id_is_403(rt, api, bob, seen):
    bob_device = bob.post("/devices", {"name": "Bob's"}).json
    bob.as_(bob_device["token"]).get("/devices")
    alice_as_bob = api.as_(api.token, bob_device["id"])
    for method, path in [("GET", "/changes"), ("POST", "/report"), ("POST", "/ack"),
                         ("POST", "/upload")]:
        resp = rejected_unchanged(rt, lambda: send(alice_as_bob, method, path,
                                                   {} if method == "POST" else None))
        if resp.status_int != 405:
            assert resp.status_int == 403, (path, resp.json)
    bob_device_token = bob.as_(bob_device["token"], seen["id"])
    resp = rejected_unchanged(rt, lambda: send(bob_device_token, "GET", "/changes"))
    if resp.status_int != 405:
        assert resp.status_int == 403


# -- report, feed, ack, conflicts ------------------------------------------------

SHA = "ab" * 32
VALID_ITEMS = {
    "put": {"op": "put", "path": "docs/x.txt", "sha256": SHA, "size": 1, "mtime": 0,
            "base_rev": None},
    "delete": {"op": "delete", "path": "docs/x.txt", "base_rev": None},
    "move": {"op": "move", "path": "docs/x.txt", "to": "docs/y.txt", "base_rev": None},
}
BAD_SHA = st.sampled_from(["", "ab" * 31, "ab" * 33, "zz" * 32, "ab" * 31 + "a\x00",
                           " " + "ab" * 32, "../" + "a" * 61]) | NOT_STRING
CORRUPT = {
    "op": st.sampled_from(["PUT", "", "copy", "put ", "delete\x00"]) | NOT_STRING,
    "path": BAD_PATH,
    "to": BAD_PATH,
    "base_rev": NOT_INT.filter(lambda v: v is not None) | st.integers(max_value=-1),
    "sha256": BAD_SHA,
    "size": NOT_INT | st.integers(max_value=-1),
    "mtime": NOT_INT,
}


@st.composite
def bad_items(draw):
    """A report item with exactly one required field corrupted or missing."""
    op = draw(st.sampled_from(sorted(VALID_ITEMS)))
    item = dict(VALID_ITEMS[op])
    field = draw(st.sampled_from([k for k in item if k != "base_rev" or op != "put"]
                                 + ["base_rev"]))
    if draw(st.integers(0, 5)) == 0 and field != "base_rev":
        del item[field]
    else:
        item[field] = draw(CORRUPT[field])
    if field == "to" and item.get("to") == item["path"]:
        item["to"] = "\x00"
    return item


def _all_rejected(resp, count):
    if resp.status_int == 200:
        results = resp.json["results"]
        assert len(results) == count
        for result in results:
            assert result["status"] == "rejected", result
            assert isinstance(result["error"], str) and result["error"], result


def _report_rejects_all(rt, dev, items):
    """A report of ``items``: each one rejected (or the whole body a 4xx), nothing changed."""
    before = snapshot(rt.config)
    resp = send(dev, "POST", "/report", {"changes": items})
    if resp.status_int != 200:
        assert_4xx(resp)
    _all_rejected(resp, len(items))
    assert snapshot(rt.config) == before


@FUZZ
@given(items=st.lists(bad_items(), min_size=1, max_size=3))
def test_report_items_with_a_bad_field_are_rejected_and_change_nothing(rt, dev, seen, items):
    _report_rejects_all(rt, dev, items)


@FUZZ
@given(path=BAD_PATH)
def test_hostile_paths_in_a_report_are_rejected(rt, dev, seen, path):
    items = [dict(VALID_ITEMS["put"], path=path), dict(VALID_ITEMS["delete"], path=path),
             dict(VALID_ITEMS["move"], path=path), dict(VALID_ITEMS["move"], to=path)]
    _report_rejects_all(rt, dev, items)


@pytest.mark.parametrize("body", [
    {}, {"changes": None}, {"changes": "put"}, {"changes": {}}, {"changes": []},
    {"changes": [VALID_ITEMS["delete"]] * 1001}, {"change": [VALID_ITEMS["delete"]]},
])
def test_malformed_report_bodies_are_400_and_apply_nothing(rt, dev, seen, body):
    resp = rejected_unchanged(rt, lambda: send(dev, "POST", "/report", body))
    assert resp.status_int == 400 and resp.json["code"] == "body_invalid"


CURSORS = st.sampled_from([
    "", "0", "abc", "=", "====", "AAAA", "%00", "\u00e9", "x" * 65, "x" * 5000,
    "MDAwMDAwMDAwMDAwMDAwMC4x",                                   # 0000000000000000.1
    "ZmZmZmZmZmZmZmZmZmZmZi4x",                                   # ffffffffffffffff.1
]) | st.text(max_size=40)


@FUZZ
@given(cursor=CURSORS, limit=st.none() | st.sampled_from(
    ["0", "-1", "1001", "1.5", "1e3", "", "abc", " 5", "99999999999999999999", "0x10", "\u0661"])
    | st.text(max_size=8))
def test_garbled_cursors_and_limits_are_400(rt, dev, seen, cursor, limit):
    params = {"cursor": cursor}
    if limit is not None:
        params["limit"] = limit
    query = urllib.parse.urlencode(params)
    resp = send(dev, "GET", "/changes?" + query)
    if resp.status_int == 200:
        # Only a cursor the server could have issued, with a usable limit.
        assert limit is None or limit.isdigit() and 1 <= int(limit) <= 1000
        return
    assert_4xx(resp)
    assert resp.json["code"] in ("cursor_invalid", "cursor_expired", "limit_invalid"), resp.json
    resp = rejected_unchanged(rt, lambda: send(dev, "POST", "/ack", {"cursor": cursor}))
    assert resp.json["code"] in ("cursor_invalid", "cursor_expired", "body_invalid"), resp.json


@FUZZ
@given(cursor=NOT_STRING)
def test_ack_cursor_of_the_wrong_type_is_body_invalid(rt, dev, seen, cursor):
    resp = rejected_unchanged(rt, lambda: send(dev, "POST", "/ack", {"cursor": cursor}))
    assert resp.json["code"] in ("body_invalid", "cursor_invalid")


def test_cursor_from_the_future_or_another_database_is_refused(rt, dev, seen):
    from sync import cursors
    future = cursors.encode(rt.db_id, 10 ** 9)
    other = cursors.encode("0123456789abcdef", 1)
    for cursor, code in [(future, "cursor_invalid"), (other, "cursor_expired")]:
        resp = rejected_unchanged(rt, lambda: send(dev, "GET", "/changes?cursor=" + cursor))
        assert resp.json["code"] == code
        resp = rejected_unchanged(rt, lambda: send(dev, "POST", "/ack", {"cursor": cursor}))
        assert resp.status_int == 400


@pytest.fixture
def conflict(dev, seen):
    """An unresolved conflict: a move of a path that does not exist."""
    resp = dev.post("/report", {"changes": [VALID_ITEMS["move"]]}).json
    return resp["results"][0]["conflict_id"]


@FUZZ
@given(body=JSON | st.fixed_dictionaries({"resolution": JSON | st.sampled_from(
    ["KEEP_SERVER", "keep_server ", "keep", "", "keep_client\x00"])}))
def test_bad_resolutions_are_400_and_change_nothing(rt, api, dev, conflict, body):
    for caller in (api, dev):
        resp = rejected_unchanged(rt, lambda: send(caller, "POST",
                                                   f"/conflicts/{conflict}/resolve", body))
        assert resp.status_int == 400
        assert resp.json["code"] in ("body_invalid", "resolution_invalid"), resp.json


@FUZZ
@given(ident=ODD_IDS)
def test_odd_conflict_ids_are_404(rt, api, conflict, ident):
    resp = rejected_unchanged(rt, lambda: send(api, "POST", f"/conflicts/{ident}/resolve",
                                               {"resolution": "keep_server"}))
    assert resp.status_int == 404, resp.json


def test_a_rejected_path_with_a_lone_surrogate_is_echoed_not_a_500(rt, dev, seen):
    """The answer to a report that applied other items must reach the client."""
    items = [{"op": "delete", "path": "\ud800", "base_rev": None},
             {"op": "move", "path": "a", "to": "b/\udfff", "base_rev": None}]
    resp = send(dev, "POST", "/report", {"changes": items})
    assert resp.status_int == 200
    assert [r["status"] for r in resp.json["results"]] == ["rejected", "rejected"]
    assert resp.json["results"][0]["path"] in ("\ud800", None)


# -- uploads and downloads -------------------------------------------------------

class Stock(dict):
    """The stocked library; a short repr keeps Hypothesis' reports readable."""

    def __repr__(self):
        return "<stocked library>"


@pytest.fixture
def stocked(dev, seen):
    """Alice's library holds ``docs/a.txt`` (300 KiB, two chunks) and an open
    session for ``docs/b.bin`` with chunk 0 of 2 received."""
    data = bytes(range(256)) * 1200
    assert upload(dev, "docs/a.txt", data)["status"] == "applied"
    other = data[::-1]
    session = dev.post("/upload", {"path": "docs/b.bin", "size": len(other),
                                   "sha256": sha256(other), "base_rev": None,
                                   "chunk_size": CHUNK}).json
    dev.put(f"/upload/{session['id']}/chunks/0", raw=other[:CHUNK])
    return Stock(data=data, session=session, other=other)


UPLOAD_CORRUPT = {
    "path": BAD_PATH,
    "size": NOT_INT.filter(lambda v: v is not None) | st.integers(max_value=-1),
    "sha256": BAD_SHA | st.just("AB" * 32),
    "base_rev": NOT_INT.filter(lambda v: v is not None) | st.integers(max_value=-1),
    "mtime": NOT_INT.filter(lambda v: v is not None),
    "chunk_size": NOT_INT.filter(lambda v: v is not None) | st.sampled_from(
        [0, 1, CHUNK - 1, 64 * 1024 * 1024 + 1, 2 ** 40]),
}


@st.composite
def bad_upload_bodies(draw):
    body = {"path": "docs/new.txt", "size": 10, "sha256": SHA, "base_rev": None,
            "mtime": 0, "chunk_size": CHUNK}
    field = draw(st.sampled_from(sorted(UPLOAD_CORRUPT)))
    if draw(st.integers(0, 4)) == 0 and field in ("path", "size", "sha256", "base_rev"):
        del body[field]
    else:
        body[field] = draw(UPLOAD_CORRUPT[field])
    return body


@FUZZ
@given(body=bad_upload_bodies())
def test_bad_upload_sessions_are_refused_and_leave_no_spool(rt, dev, stocked, body):
    resp = rejected_unchanged(rt, lambda: send(dev, "POST", "/upload", body))
    assert resp.json["code"] in ("body_invalid", "path_invalid", "file_too_large"), resp.json


@FUZZ
@given(index=st.sampled_from(["2", "-1", "1.0", "01x", "1e0", "99999999999999999999", "%00",
                              "%2e%2e", "0x0", "%D9%A1", "+1", "%201"])
       | st.text(min_size=1, max_size=6).filter(lambda s: "/" not in s).map(
           lambda s: urllib.parse.quote(s, safe="")))
def test_bad_chunk_indices_are_chunk_invalid(rt, dev, stocked, index):
    sid = stocked["session"]["id"]
    if urllib.parse.unquote(index) in ("0", "1"):
        return
    resp = rejected_unchanged(rt, lambda: send(dev, "PUT", f"/upload/{sid}/chunks/{index}",
                                               raw=stocked["other"][CHUNK:]))
    assert resp.status_int in (400, 404, 405), resp.json
    if resp.status_int == 400:
        assert resp.json["code"] == "chunk_invalid"


@FUZZ
@given(header=st.sampled_from([
    "sha-256=:AAAA:", "sha-256=AAAA", "sha-256=::", "sha-256=:" + "A" * 44 + ":",
    "sha-256=:not base64!:", "sha-512=:AAAA:, sha-256=:AAAA:", "md5=:AAAA:, sha-256=:AA==:",
    "SHA-256=:x:", ",", "sha-256", "=", "sha-256=:" + "A" * 5000 + ":",
]) | HEADER_TEXT)
def test_bad_content_digests_are_chunk_invalid_and_uncount_the_chunk(rt, dev, stocked, header):
    sid = stocked["session"]["id"]
    chunk = stocked["other"][CHUNK:]
    resp = send(dev, "PUT", f"/upload/{sid}/chunks/1", raw=chunk,
                headers={"Content-Digest": header})
    if resp.status_int == 200:
        # Only a header that names no sha-256 (other algorithms) may pass.
        assert "sha-256=" not in header.replace(" ", "")
        dev.delete(f"/upload/{sid}/chunks/1", status="*")
        return
    assert_4xx(resp)
    assert resp.json["code"] == "chunk_invalid", resp.json
    assert 1 not in dev.get(f"/upload/{sid}").json["received"]


def test_wrong_length_chunks_are_chunk_invalid_and_not_counted(rt, dev, stocked):
    sid = stocked["session"]["id"]
    last = stocked["other"][CHUNK:]
    for body in (b"", last[:-1], last + b"x", stocked["other"][:CHUNK]):
        resp = rejected_unchanged(rt, lambda: send(dev, "PUT", f"/upload/{sid}/chunks/1",
                                                   raw=body))
        assert resp.status_int in (400, 413) and resp.json["code"] in (
            "chunk_invalid", "body_too_large"), resp.json


def test_completing_with_a_chunk_missing_is_chunks_missing(rt, dev, stocked):
    sid = stocked["session"]["id"]
    resp = rejected_unchanged(rt, lambda: send(dev, "POST", f"/upload/{sid}/complete"))
    assert resp.json["code"] == "chunks_missing" and resp.json["missing"] == [1]


def test_wrong_bytes_are_digest_mismatch_and_the_session_stays_open(rt, dev, stocked):
    sid = stocked["session"]["id"]
    dev.put(f"/upload/{sid}/chunks/1", raw=b"\x00" * (len(stocked["other"]) - CHUNK))
    resp = rejected_unchanged(rt, lambda: send(dev, "POST", f"/upload/{sid}/complete"))
    assert resp.json["code"] == "digest_mismatch"
    assert dev.get(f"/upload/{sid}").json["state"] == "open"


DOWNLOAD_PATHS = st.sampled_from([
    "..", "../docs/a.txt", "docs/../docs/a.txt", "docs/./a.txt", "docs//a.txt", "/docs/a.txt",
    "docs%2Fa.txt", "docs%2fa.txt", "docs%5Ca.txt", "docs/a.txt%00", "%00", "docs/a.txt%0A",
    "%2e%2e/docs/a.txt", "%2E%2E", "docs/A.TXT", "docs/a.txt/", "docs/a.txt/..",
    "docs/" + "x" * 300, "d/" * 2100 + "a", "%ED%A0%80", "%FF", "%C0%AE%C0%AE/x",
    "docs/a.txt%20", "docs%00/a.txt", "blobs/../../sync.sqlite3", "..%2f..%2fsecret.key",
    "docs%0A/a.txt", "docs/a%0D%0A.txt",
]) | st.text(max_size=20).map(lambda s: urllib.parse.quote(s, safe="/"))


@FUZZ
@given(path=DOWNLOAD_PATHS)
def test_download_of_hostile_paths_is_4xx_and_never_other_bytes(rt, dev, api, stocked, path):
    if urllib.parse.unquote(path) in ("docs/a.txt", "docs/a.txt/"):
        return
    for caller in (dev, api):
        for method in ("GET", "HEAD"):
            resp = rejected_unchanged(rt, lambda: send(caller, method, "/download/" + path))
            assert resp.status_int in (400, 404), (path, resp.status)


RANGES = st.sampled_from([
    "bytes=0-0", "bytes=-1", "bytes=0-", "bytes=5-2", "bytes=999999999-", "bytes=-0",
    "bytes=0-999999999999999999999999", "bytes=-99999999999999999999", "bytes=1-2,3-4",
    "bytes=", "bytes=-", "items=0-1", "bytes=a-b", "bytes 0-1", "bytes=\u00b9-2",
    "bytes=0-1\x00", "bytes=307199-", "bytes=307200-", "bytes=--1",
]) | HEADER_TEXT.map(lambda s: "bytes=" + s)


@FUZZ
@given(range_=RANGES, if_range=st.none() | st.sampled_from(
    ['"x"', "W/\"x\"", "Thu, 01 Jan 1970 00:00:00 GMT", "not a date", "", "\"" + "a" * 64 + "\""]))
def test_any_range_header_answers_the_right_bytes_or_416(rt, dev, stocked, range_, if_range):
    data = stocked["data"]
    headers = {"Range": range_}
    if if_range is not None:
        headers["If-Range"] = if_range
    resp = send(dev, "GET", "/download/docs/a.txt", headers=headers)
    assert resp.status_int in (200, 206, 416), (range_, resp.status)
    if resp.status_int == 200:
        assert resp.body == data
    elif resp.status_int == 206:
        unit, _, spec = resp.headers["Content-Range"].partition(" ")
        span, _, total = spec.partition("/")
        first, _, last = span.partition("-")
        assert unit == "bytes" and int(total) == len(data)
        assert resp.body == data[int(first):int(last) + 1]
    else:
        assert resp.headers["Content-Range"] == f"bytes */{len(data)}"


@FUZZ
@given(mtime=st.sampled_from([2 ** 63 - 1, -(2 ** 63 - 1), 10 ** 15, -10 ** 12, 253402300800, -1]))
def test_download_of_a_file_with_an_extreme_mtime_is_not_a_500(rt, dev, stocked, mtime):
    """Any integer mtime is accepted, so Last-Modified must be written for it."""
    data = b"mtime %d" % mtime
    assert upload(dev, f"m/{mtime}.txt", data, mtime=mtime)["status"] == "applied"
    for method in ("GET", "HEAD"):
        resp = send(dev, method, f"/download/m/{mtime}.txt")
        assert resp.status_int == 200, resp.status
    assert resp.headers["ETag"] == f'"{sha256(data)}"'


def test_nfc_and_nfd_spellings_name_one_file(rt, dev, seen):
    """A path arrives NFD from macOS and NFC from elsewhere: one entry, stored
    NFC, reachable by either spelling, never a conflict with itself."""
    import unicodedata
    nfd = "Cafe\u0301/Re\u0301sume\u0301 \u00c4\u0308.txt"
    nfc = unicodedata.normalize("NFC", nfd)
    mixed = nfc.split("/")[0] + "/" + nfd.split("/")[1]
    assert len({nfd, nfc, mixed}) == 3
    data = b"one file, three spellings"
    applied = upload(dev, nfd, data)
    assert applied["status"] == "applied"
    assert [c["path"] for c in dev.get("/changes").json["changes"]] == [nfc]
    item = {"op": "put", "path": mixed, "sha256": sha256(data), "size": len(data), "mtime": 0,
            "base_rev": None}
    assert dev.post("/report", {"changes": [item]}).json["results"][0]["status"] == "unchanged"
    for spelling in (nfd, nfc, mixed):
        url = "/download/" + urllib.parse.quote(spelling)
        assert dev.get(url).body == data
    result = dev.post("/report", {"changes": [{"op": "delete", "path": mixed,
                                               "base_rev": applied["rev"]}]}).json["results"][0]
    assert result["status"] == "applied"
    changes = dev.get("/changes").json["changes"]
    assert [(c["path"], c["op"]) for c in changes] == [(nfc, "delete")]
    assert dev.get("/conflicts").json == {"conflicts": []}


def test_a_body_of_too_many_json_values_is_400_before_parsing(rt, api, dev, seen):
    """Two MiB of "{}," would be 700 000 dicts (some 50 MiB) in the server."""
    for caller, path, raw in [
            (dev, "/report", b'{"changes": [' + b"{}," * 60000 + b"{}]}"),
            (api, "/devices", b'{"name": "x", "extra": [' + b"0," * 60000 + b"0]}")]:
        resp = rejected_unchanged(rt, lambda: send(caller, "POST", path, raw=raw,
                                                   headers={"Content-Type": "application/json"}))
        assert resp.status_int == 400 and resp.json["code"] == "body_invalid"


def test_a_full_report_with_commas_and_brackets_in_its_paths_is_read(rt, dev, seen):
    """Punctuation inside strings does not count towards the value limit."""
    items = [{"op": "delete", "path": f"{i}/" + "/".join(["a,[{" * 50] * 5), "base_rev": None}
             for i in range(1000)]
    resp = dev.post("/report", {"changes": items})
    assert [r["status"] for r in resp.json["results"]] == ["unchanged"] * 1000


def test_keep_both_beside_a_path_near_the_length_limit_is_not_a_500(rt, dev, seen):
    """The conflict name does not fit in 4096 bytes: a 4xx, nothing changed."""
    path = "/".join(["d" * 250] * 16) + "/file.txt"
    assert 4000 < len(path.encode()) <= 4096
    first, second = b"first version", b"second version"
    assert upload(dev, path, first)["status"] == "applied"
    assert upload(dev, "elsewhere.txt", second)["status"] == "applied"
    item = {"op": "put", "path": path, "sha256": sha256(second), "size": len(second),
            "mtime": 0, "base_rev": None}
    result = dev.post("/report", {"changes": [item]}).json["results"][0]
    assert result["status"] == "conflict"
    resp = send(dev, "POST", f"/conflicts/{result['conflict_id']}/resolve",
                {"resolution": "keep_both"})
    if resp.status_int == 200:
        for change in resp.json["results"]:
            assert len(change["path"].encode()) <= 4096
    else:
        assert_4xx(resp)
        assert dev.get("/conflicts").json["conflicts"][0]["id"] == result["conflict_id"]


def test_the_access_log_keeps_one_line_per_request_whatever_the_path(rt, caplog, seen):
    """A decoded %0A in a path must not forge a second log line."""
    import logging

    import webtest

    from sync.config import Config
    from sync.wsgi import create_app
    config = Config.build(data_dir=rt.config.data_dir, access_log=True)
    logged = webtest.TestApp(create_app(type(rt)(config, rt.secret, rt.db_id, rt.clock,
                                                 rt.idgen)))
    url = "/api/v1/sync/download/a%0A127.0.0.1%20GET%20/admin%20200%0Db.txt"
    with caplog.at_level(logging.INFO, logger="sync.access"):
        resp = logged.get(url, headers={"Authorization": f"Bearer {seen['token']}"},
                          expect_errors=True)
    assert_4xx(resp)
    lines = [r.getMessage() for r in caplog.records if r.name == "sync.access"]
    assert len(lines) == 1 and "\n" not in lines[0] and "\r" not in lines[0]
    assert lines[0].split()[2] == "/api/v1/sync/download/a%0A127.0.0.1%20GET%20/admin%20200%0Db.txt"
    assert seen["token"] not in lines[0]


@pytest.mark.parametrize("tail", [b"}", b"\\"])
def test_a_body_of_unterminated_escapes_is_refused_without_backtracking(rt, api, seen, tail):
    """Counting values must not retry a string from every quote inside it: a
    1.9 MiB body of '\\"' would then take hours. The alarm only bounds a
    regression; the answer comes in well under a second."""
    import signal

    def stuck(signum, frame):
        raise AssertionError("the JSON value count did not finish in 60 s")

    raw = b'{"name": "' + b'\\"' * 1000000 + tail
    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(60)
    try:
        resp = rejected_unchanged(rt, lambda: send(api, "POST", "/devices", raw=raw,
                                                   headers={"Content-Type": "application/json"}))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert resp.status_int == 400 and resp.json["code"] == "body_invalid"


def test_deleting_a_device_while_its_upload_completes_is_404_not_500(rt, api, dev, seen,
                                                                     monkeypatch):
    """DELETE /devices drops the device's sessions and spool files while a
    complete may be hashing one; that complete answers 404."""
    import os
    import sqlite3

    from sync import blobs
    data = b"z" * (CHUNK + 10)
    session = dev.post("/upload", {"path": "late.bin", "size": len(data), "sha256": sha256(data),
                                   "base_rev": None, "chunk_size": CHUNK}).json
    for index in range(2):
        dev.put(f"/upload/{session['id']}/chunks/{index}",
                raw=data[index * CHUNK:(index + 1) * CHUNK])
    real_hash_file = blobs.hash_file

    def device_deleted_meanwhile(path):
        # What DELETE /devices/{id} does from another thread: commit, then
        # remove the spool files of the sessions it dropped.
        size_and_sha = real_hash_file(path)
        con = sqlite3.connect(rt.config.path("sync.sqlite3"))
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("DELETE FROM devices WHERE id = ?", (seen["id"],))
        con.commit()
        con.close()
        os.unlink(path)
        return size_and_sha

    monkeypatch.setattr(blobs, "hash_file", device_deleted_meanwhile)
    resp = send(api.as_(api.token, None), "POST", f"/upload/{session['id']}/complete",
                headers={"X-Device-Id": seen["id"]})
    assert resp.status_int == 404, resp.status
    monkeypatch.setattr(blobs, "hash_file", real_hash_file)
    assert api.get("/devices").json["devices"] == []

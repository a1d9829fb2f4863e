"""WebDAV (SPEC §10) through WebTest: every method and status, the feed
effects of each write, authentication, isolation between users, and what
survives a restart."""

import hashlib
import re
import xml.etree.ElementTree as ET

import pytest
import webtest

from sync import auth, blobs
from sync.config import Config
from sync.db import database
from sync.wsgi import create_app, open_runtime

from .helpers import DAV, DAV_ROOT, Dav, basic, parse_multistatus, sha256

pytestmark = pytest.mark.filterwarnings("ignore::webtest.lint.WSGIWarning")



@pytest.fixture
def kobo(api):
    device = api.post("/devices", {"name": "Kobo", "platform": "kobo"}).json
    device["app_password"] = api.post(f"/devices/{device['id']}/app-password").json[
        "app_password"]
    return device


@pytest.fixture
def dav(testapp, kobo):
    return Dav(testapp, basic("alice", kobo["app_password"]))


@pytest.fixture
def feed(api, kobo):
    """The changes of alice's library after the last call."""
    state = {"cursor": None}

    def read():
        path = "/changes" + (f"?cursor={state['cursor']}" if state["cursor"] else "")
        page = api.get(path, headers={"X-Device-Id": kobo["id"]}).json
        state["cursor"] = page["cursor"]
        return page["changes"]
    return read


def entries(user="alice"):
    return database.execute_sql(
        "SELECT e.path, e.deleted, e.sha256, e.size FROM entries e JOIN users u "
        "ON u.id = e.user_id WHERE u.name = ? ORDER BY e.path", (user,)).fetchall()


# -- authentication ----------------------------------------------------------------

def test_the_app_password_logs_in_and_acts_for_its_device(dav, kobo, api, feed):
    assert api.get(f"/devices/{kobo['id']}").json["last_seen_at"] is None
    dav.put("book.epub", b"dune", status=201)
    [change] = feed()
    assert change["device_id"] == kobo["id"] and change["op"] == "put"
    assert api.get(f"/devices/{kobo['id']}").json["last_seen_at"] is not None


@pytest.mark.parametrize("authorization", [
    None, "Basic !!!", basic("alice", "wrong-password-wrong"), "Bearer nonsense",
    "Digest username=alice",
])
def test_no_or_bad_credentials_are_401_with_basic_challenge(testapp, kobo, authorization):
    for method in ("PROPFIND", "GET", "PUT", "OPTIONS"):
        resp = Dav(testapp, authorization).req(method, "", status=401)
        assert re.match(r'^Basic realm="[^"]+"', resp.headers["WWW-Authenticate"])
        assert resp.json["code"] == "unauthorized"
    assert entries() == []


def test_the_account_password_is_never_accepted(testapp, rt, kobo):
    auth.add_user(rt, "alice", "account-password-1")
    Dav(testapp, basic("alice", "account-password-1")).req("PROPFIND", "", status=401)


def test_a_revoked_or_replaced_password_is_401(testapp, api, kobo):
    old = Dav(testapp, basic("alice", kobo["app_password"]))
    old.req("PROPFIND", "", status=207, headers={"Depth": "0"})
    new = api.post(f"/devices/{kobo['id']}/app-password").json["app_password"]
    old.req("PROPFIND", "", status=401, headers={"Depth": "0"})
    fresh = Dav(testapp, basic("alice", new))
    fresh.req("PROPFIND", "", status=207, headers={"Depth": "0"})
    api.delete(f"/devices/{kobo['id']}/app-password", status=204)
    fresh.req("PROPFIND", "", status=401, headers={"Depth": "0"})


def test_deleting_the_device_revokes_its_password(testapp, api, kobo, dav):
    api.delete(f"/devices/{kobo['id']}", status=204)
    dav.req("PROPFIND", "", status=401, headers={"Depth": "0"})


def test_another_users_name_with_my_password_is_401(testapp, kobo):
    Dav(testapp, basic("bob", kobo["app_password"])).req("PROPFIND", "", status=401)


def test_a_bearer_device_token_is_accepted_and_a_user_token_is_not(testapp, kobo, api, feed):
    Dav(testapp, f"Bearer {kobo['token']}").put("by-token.txt", b"x", status=201)
    assert feed()[0]["device_id"] == kobo["id"]
    Dav(testapp, f"Bearer {api.token}").req("PROPFIND", "", status=401)


def test_failed_logins_are_throttled_per_name(testapp, kobo):
    wrong = Dav(testapp, basic("alice", "not-the-password-at-all"))
    for _ in range(10):
        wrong.req("PROPFIND", "", status=401)
    resp = Dav(testapp, basic("alice", kobo["app_password"])).req("PROPFIND", "", status=429)
    assert int(resp.headers["Retry-After"]) > 0 and resp.json["code"] == "too_many_attempts"


def test_the_throttle_window_passes(testapp, kobo, clock):
    wrong = Dav(testapp, basic("alice", "not-the-password-at-all"))
    for _ in range(10):
        wrong.req("PROPFIND", "", status=401)
    clock.advance(601)
    Dav(testapp, basic("alice", kobo["app_password"])).req(
        "PROPFIND", "", status=207, headers={"Depth": "0"})


# -- isolation ------------------------------------------------------------------------

@pytest.fixture
def bobs_dav(testapp, bob):
    device = bob.post("/devices", {"name": "Phone"}).json
    password = bob.post(f"/devices/{device['id']}/app-password").json["app_password"]
    return Dav(testapp, basic("bob", password), root="/dav/files/bob/")


def test_users_never_see_each_others_libraries(dav, bobs_dav):
    dav.put("secret.txt", b"alice's", status=201)
    bobs_dav.put("mine.txt", b"bob's", status=201)
    for method in ("PROPFIND", "GET", "DELETE"):
        bobs_dav.req(method, "/dav/files/alice/secret.txt", status=404, headers={"Depth": "0"})
        bobs_dav.req(method, "/dav/files/alice/", status=404, headers={"Depth": "0"})
    bobs_dav.put("/dav/files/alice/planted.txt", b"x", status=409)
    bobs_dav.req("MKCOL", "/dav/files/alice/planted", status=409)
    for method in ("MOVE", "COPY"):  # alice's root does not exist for bob
        bobs_dav.req(method, "mine.txt", status=409,
                     headers={"Destination": "http://localhost:80/dav/files/alice/mine.txt"})
    assert dav.names() == ["secret.txt"] and bobs_dav.names() == ["mine.txt"]
    assert list(bobs_dav.propfind("/dav/files/")) == ["/dav/files/", "/dav/files/bob/"]


# -- OPTIONS and PROPFIND -----------------------------------------------------------------

def test_options_announces_classes_1_and_2(dav):
    resp = dav.req("OPTIONS", "", status=200)
    assert resp.headers["DAV"] == "1, 2"
    for method in ("PROPFIND", "PROPPATCH", "DELETE", "LOCK", "UNLOCK", "MOVE", "COPY"):
        assert method in resp.headers["Allow"]
    assert "PUT" in dav.req("OPTIONS", "new.txt", status=200).headers["Allow"]


def test_propfind_depth_0_and_1_and_the_properties(dav, clock):
    dav.req("MKCOL", "books", status=201)
    dav.put("books/Dune.epub", b"spice", status=201, headers={"X-OC-Mtime": "1600000000"})
    dav.put("notes.txt", b"n", status=201)
    root = dav.propfind("", depth="0")
    assert list(root) == [DAV_ROOT]
    props = root[DAV_ROOT]
    assert props[DAV + "resourcetype"].find(DAV + "collection") is not None
    assert int(props[DAV + "quota-used-bytes"].text) == 6
    assert int(props[DAV + "quota-available-bytes"].text) > 0
    listing = dav.propfind("")
    assert sorted(listing) == [DAV_ROOT, DAV_ROOT + "books/", DAV_ROOT + "notes.txt"]
    book = dav.propfind("books/Dune.epub", depth="0")[DAV_ROOT + "books/Dune.epub"]
    assert book[DAV + "getcontentlength"].text == "5"
    assert book[DAV + "getetag"].text == f'"{sha256(b"spice")}"'
    assert book[DAV + "getlastmodified"].text == "Sun, 13 Sep 2020 12:26:40 GMT"
    assert book[DAV + "getcontenttype"].text == "application/epub+zip"
    assert book[DAV + "displayname"].text == "Dune.epub"
    assert book[DAV + "creationdate"].text
    assert book[DAV + "supportedlock"].find(DAV + "lockentry") is not None
    assert DAV + "lockdiscovery" in book
    assert book[DAV + "resourcetype"].find(DAV + "collection") is None


def test_propfind_of_a_large_folder_lists_every_member_once(dav, api, kobo):
    """Depth 1 of a folder of more members than the server reads at once:
    each member once, folders among them, the dead properties of a member
    read in a later batch, and the length of the answer announced."""
    dav.req("MKCOL", "big", status=201)
    dav.put("big/first.txt", b"x", status=201)
    changes = [{"op": "put", "path": f"big/{i:04d}.txt", "sha256": sha256(b"x"), "size": 1,
                "mtime": 1600000000 + i, "base_rev": None} for i in range(1500)]
    changes.append({"op": "put", "path": "big/sub/inner.txt", "sha256": sha256(b"x"),
                    "size": 1, "mtime": 1, "base_rev": None})
    for start in range(0, len(changes), 1000):
        api.post("/report", {"changes": changes[start:start + 1000]},
                 headers={"X-Device-Id": kobo["id"]})
    dav.req("MKCOL", "big/empty", status=201)
    dav.req("MKCOL", "big/sub/made", status=201)
    dav.req("PROPPATCH", "big/1200.txt", body=PROPPATCH, status=207)
    resp = dav.req("PROPFIND", "big/", status=207, headers={"Depth": "1"})
    assert int(resp.headers["Content-Length"]) == len(resp.body) > 1024 * 1024
    assert "close" not in resp.headers.get("Connection", "")
    hrefs = [response.find(DAV + "href").text
             for response in ET.fromstring(resp.body).iter(DAV + "response")]
    expected = ([DAV_ROOT + name for name in ("big/", "big/empty/", "big/first.txt", "big/sub/")]
                + [DAV_ROOT + f"big/{i:04d}.txt" for i in range(1500)])
    assert sorted(hrefs) == sorted(expected)
    listing = parse_multistatus(resp.body)
    assert listing[DAV_ROOT + "big/1200.txt"]["{urn:z}author"].text == "Frank Herbert"
    assert "{urn:z}author" not in listing[DAV_ROOT + "big/0001.txt"]
    assert listing[DAV_ROOT + "big/0007.txt"][DAV + "getcontentlength"].text == "1"
    assert listing[DAV_ROOT + "big/empty/"][DAV + "resourcetype"].find(DAV + "collection") \
        is not None
    named = dav.req("PROPFIND", "big/", body=PROP_QUERY, status=207, headers={"Depth": "1"})
    authors = {href: props["{urn:z}author"].text
               for href, props in parse_multistatus(named.body).items()
               if "{urn:z}author" in props}
    assert authors == {DAV_ROOT + "big/1200.txt": "Frank Herbert"}
    small = dav.req("PROPFIND", "big/sub/", status=207, headers={"Depth": "1"})
    assert sorted(parse_multistatus(small.body)) == [
        DAV_ROOT + "big/sub/", DAV_ROOT + "big/sub/inner.txt", DAV_ROOT + "big/sub/made/"]


def test_propfind_depth_infinity_is_403_finite_depth(dav):
    for depth in ("infinity", None):
        headers = {} if depth is None else {"Depth": depth}
        resp = dav.req("PROPFIND", "", status=403, headers=headers)
        assert b"propfind-finite-depth" in resp.body


def test_propfind_of_nothing_is_404(dav):
    dav.propfind("nothing.txt", depth="0", status=404)


def test_the_etag_changes_with_the_content(dav):
    dav.put("a.txt", b"one", status=201)
    first = dav.propfind("a.txt", depth="0")[DAV_ROOT + "a.txt"][DAV + "getetag"].text
    dav.put("a.txt", b"two", status=204)
    second = dav.propfind("a.txt", depth="0")[DAV_ROOT + "a.txt"][DAV + "getetag"].text
    assert first != second and second.startswith('"') and second.endswith('"')


def test_a_folder_holding_files_is_a_collection_without_mkcol(dav, api, kobo):
    dav.put("a.txt", b"x", status=201)  # the sync API's files make folders too
    api.post("/report", {"changes": [{"op": "put", "path": "deep/er/b.txt",
                                      "sha256": sha256(b"x"), "size": 1, "mtime": 1,
                                      "base_rev": None}]},
             headers={"X-Device-Id": kobo["id"]})
    assert dav.names() == ["a.txt", "deep/"]
    assert dav.names("deep/") == ["deep/er/"]
    assert dav.names("deep/er/") == ["deep/er/b.txt"]


# -- GET and HEAD ----------------------------------------------------------------------

def test_get_and_head_serve_the_file_like_download(dav):
    data = bytes(range(256)) * 40
    dav.put("bin/data.bin".replace("bin/", ""), data, status=201)
    resp = dav.req("GET", "data.bin", status=200)
    assert resp.body == data
    assert resp.headers["ETag"] == f'"{sha256(data)}"'
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Length"] == str(len(data))
    head = dav.req("HEAD", "data.bin", status=200)
    assert head.body == b"" and head.headers["Content-Length"] == str(len(data))
    part = dav.req("GET", "data.bin", status=206, headers={"Range": "bytes=10-19"})
    assert part.body == data[10:20] and part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = dav.req("GET", "data.bin", status=206, headers={"Range": "bytes=-5"})
    assert tail.body == data[-5:]
    bad = dav.req("GET", "data.bin", status=416, headers={"Range": f"bytes={len(data)}-"})
    assert bad.headers["Content-Range"] == f"bytes */{len(data)}"
    etag = resp.headers["ETag"]
    dav.req("GET", "data.bin", status=304, headers={"If-None-Match": etag})
    dav.req("GET", "data.bin", status=412, headers={"If-Match": '"00"'})
    dav.req("GET", "data.bin", status=200, headers={"If-Match": etag})
    stale = dav.req("GET", "data.bin", status=200,
                    headers={"Range": "bytes=0-0", "If-Range": '"other"'})
    assert stale.body == data
    dav.req("GET", "missing.bin", status=404)


# -- PUT ---------------------------------------------------------------------------------

def test_put_creates_then_replaces_and_keeps_mtimes(dav, feed):
    resp = dav.put("a.txt", b"first", status=201, headers={"X-OC-Mtime": "1700000000"})
    assert resp.headers["X-OC-Mtime"] == "accepted"
    assert resp.headers["ETag"] == f'"{sha256(b"first")}"'
    [created] = feed()
    assert created["mtime"] == 1700000000 and created["sha256"] == sha256(b"first")
    resp = dav.put("a.txt", b"second", status=204)
    assert "X-OC-Mtime" not in resp.headers
    [replaced] = feed()
    assert replaced["sha256"] == sha256(b"second") and replaced["rev"] > created["rev"]
    assert replaced["mtime"] == 1795737600  # the time of the PUT (the test's clock)
    assert dav.req("GET", "a.txt").body == b"second"


def test_put_the_same_content_and_mtime_again_changes_nothing(dav, feed):
    dav.put("a.txt", b"same", status=201, headers={"X-OC-Mtime": "5"})
    feed()
    dav.put("a.txt", b"same", status=204, headers={"X-OC-Mtime": "5"})
    assert feed() == []


def test_a_garbled_x_oc_mtime_is_400(dav):
    dav.put("a.txt", b"x", status=400, headers={"X-OC-Mtime": "yesterday"})
    assert entries() == []


def test_put_if_match_makes_edit_loops_safe(dav, feed):
    dav.put("book.epub", b"v1", status=201)
    etag = dav.req("GET", "book.epub").headers["ETag"]
    dav.put("book.epub", b"v2", status=204, headers={"If-Match": etag})
    feed()
    resp = dav.put("book.epub", b"v3 from a stale copy", status=412, headers={"If-Match": etag})
    assert b"v3" not in dav.req("GET", "book.epub").body and resp.status_int == 412
    assert feed() == []
    dav.put("new.epub", b"x", status=412, headers={"If-Match": etag})
    dav.put("book.epub", b"x", status=412, headers={"If-None-Match": "*"})
    dav.put("fresh.epub", b"x", status=201, headers={"If-None-Match": "*"})
    assert [c["path"] for c in feed()] == ["fresh.epub"]


def test_put_in_a_missing_folder_or_inside_a_file_is_409(dav):
    dav.put("no/such/folder.txt", b"x", status=409)
    dav.put("file.txt", b"x", status=201)
    dav.put("file.txt/inside.txt", b"x", status=409)
    assert [e[0] for e in entries()] == ["file.txt"]


def test_put_onto_a_folder_is_409(dav):
    dav.req("MKCOL", "folder", status=201)
    dav.put("folder", b"x", status=409)
    assert entries() == []


def test_put_of_a_case_twin_is_409(dav):
    dav.put("Dune.epub", b"x", status=201)
    dav.put("dune.EPUB", b"y", status=409)
    assert [e[0] for e in entries()] == ["Dune.epub"]


@pytest.mark.parametrize("name", ["bad%01name.txt", "tab%09name.txt", "x" * 256])
def test_put_of_a_refused_path_is_400(dav, name):
    dav.put(name, b"x", status=400)
    dav.req("MKCOL", name, status=400)
    assert entries() == []


def test_dot_segments_are_400(dav, testapp):
    dav.put("a.txt", b"x", status=201)
    for path in ("/dav/files/alice/./a.txt", "/dav/files/alice/x/../a.txt"):
        environ = {"PATH_INFO": path, "HTTP_AUTHORIZATION": dav.authorization}
        resp = testapp.get("/", extra_environ=environ, expect_errors=True)
        assert resp.status_int == 400 and resp.json["code"] == "path_invalid"


def test_put_over_the_quota_is_507_and_changes_nothing(tmp_path, clock):
    rt = open_runtime(Config.build(data_dir=str(tmp_path / "q"), access_log=False, quota=10),
                      clock=clock)
    testapp = webtest.TestApp(create_app(rt))
    token = auth.issue_user_token(rt, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    device = testapp.post_json("/api/v1/sync/devices", {"name": "K"}, headers=headers).json
    password = testapp.post(f"/api/v1/sync/devices/{device['id']}/app-password",
                            headers=headers).json["app_password"]
    dav = Dav(testapp, basic("alice", password))
    dav.put("small.txt", b"12345", status=201)
    dav.put("big.txt", b"x" * 20, status=507)
    dav.put("copy-of-small.txt", b"12345", status=201)  # held content costs nothing
    assert [e[0] for e in entries()] == ["copy-of-small.txt", "small.txt"]


def test_put_over_the_largest_file_is_413(tmp_path, clock):
    rt = open_runtime(Config.build(data_dir=str(tmp_path / "m"), access_log=False,
                                   max_file_size=8), clock=clock)
    testapp = webtest.TestApp(create_app(rt))
    dev = Dav(testapp, f"Bearer {auth.issue_device_token(rt, _device(rt))}")
    dev.put("big.txt", b"x" * 9, status=413)
    dev.put("ok.txt", b"x" * 8, status=201)
    assert [e[0] for e in entries()] == ["ok.txt"]


def _device(rt):
    from sync.models import Device
    user = auth.ensure_user(rt, "alice")
    return Device.create(id="d" * 24, user=user.id, name="K", created_at=rt.now())


def test_a_chunked_put_without_length_is_stored(dav, testapp, feed):
    data = b"chunk" * 1000
    resp = testapp.request(DAV_ROOT + "chunked.txt", method="PUT", body=data,
                           headers={"Authorization": dav.authorization,
                                    "Transfer-Encoding": "chunked"}, expect_errors=True)
    assert resp.status_int == 201, resp.body
    assert dav.req("GET", "chunked.txt").body == data


def test_the_body_is_stored_once_as_a_blob_and_no_spool_is_left(dav, rt):
    import os
    data = os.urandom(3 * 1024 * 1024 + 7)
    dav.put("big.bin", data, status=201)
    digest = hashlib.sha256(data).hexdigest()
    assert open(rt.config.path("blobs", digest[:2], digest), "rb").read() == data
    assert os.listdir(rt.config.path("spool")) == []
    # The same content again (the store holds it: its copy is dropped after
    # the commit), and once more refused by a precondition.
    dav.put("again.bin", data, status=201)
    assert dav.req("GET", "again.bin").body == data
    dav.put("again.bin", data, status=412, headers={"If-Match": '"0000"'})
    assert os.listdir(rt.config.path("spool")) == []
    assert os.listdir(rt.config.path("blobs", digest[:2])) == [digest]


# -- MKCOL --------------------------------------------------------------------------------

def test_mkcol_makes_an_empty_folder_that_survives_a_restart(dav, config, clock, kobo):
    dav.req("MKCOL", "empty", status=201)
    dav.req("MKCOL", "empty", status=405)
    dav.req("MKCOL", "missing/child", status=409)
    dav.put("file.txt", b"x", status=201)
    dav.req("MKCOL", "file.txt", status=405)
    dav.req("MKCOL", "file.txt/child", status=409)
    dav.req("MKCOL", "EMPTY2", status=201)
    dav.req("MKCOL", "withbody", body=b"<x/>", status=415)
    again = Dav(webtest.TestApp(create_app(open_runtime(config, clock=clock))),
                dav.authorization)
    assert again.names() == ["EMPTY2/", "empty/", "file.txt"]
    assert again.names("empty/") == []


def test_mkcol_is_not_in_the_feed(dav, feed):
    dav.req("MKCOL", "empty", status=201)
    assert feed() == []


# -- DELETE -------------------------------------------------------------------------------

def test_delete_of_a_file_and_of_a_folder_in_one_transaction(dav, feed):
    dav.req("MKCOL", "f", status=201)
    dav.req("MKCOL", "f/sub", status=201)
    for name in ("f/a.txt", "f/sub/b.txt", "f/sub/c.txt", "other.txt"):
        dav.put(name, name.encode(), status=201)
    feed()
    dav.req("DELETE", "other.txt", status=204)
    assert [(c["path"], c["op"]) for c in feed()] == [("other.txt", "delete")]
    dav.req("DELETE", "f/", status=204)
    changes = feed()
    assert sorted((c["path"], c["op"]) for c in changes) == [
        ("f/a.txt", "delete"), ("f/sub/b.txt", "delete"), ("f/sub/c.txt", "delete")]
    revs = sorted(c["rev"] for c in changes)
    assert revs == list(range(revs[0], revs[0] + 3))  # one unit of work
    assert dav.names() == []
    dav.req("DELETE", "f/", status=404)
    dav.req("DELETE", "never.txt", status=404)


# -- MOVE and COPY -------------------------------------------------------------------------

def dest(path):
    return {"Destination": "http://localhost:80" + DAV_ROOT + path}


def test_move_of_a_file_is_a_move_in_the_feed(dav, feed):
    dav.put("a.txt", b"a", status=201, headers={"X-OC-Mtime": "42"})
    feed()
    dav.req("MOVE", "a.txt", status=201, headers=dest("b.txt"))
    changes = {c["path"]: c for c in feed()}
    assert changes["a.txt"]["op"] == "delete"
    assert changes["b.txt"]["moved_from"] == "a.txt" and changes["b.txt"]["mtime"] == 42
    assert dav.req("GET", "b.txt").body == b"a"


def test_move_of_a_folder_moves_every_file_and_empty_folder_at_once(dav, feed):
    dav.req("MKCOL", "src", status=201)
    dav.req("MKCOL", "src/empty", status=201)
    dav.put("src/x.txt", b"x", status=201)
    dav.put("src/y.txt", b"y", status=201)
    feed()
    dav.req("MOVE", "src/", status=201, headers=dest("dst/"))
    changes = feed()
    puts = sorted((c["path"], c.get("moved_from")) for c in changes if c["op"] == "put")
    assert puts == [("dst/x.txt", "src/x.txt"), ("dst/y.txt", "src/y.txt")]
    assert len(changes) == 4
    assert dav.names() == ["dst/"] and dav.names("dst/") == ["dst/empty/", "dst/x.txt",
                                                             "dst/y.txt"]


def test_overwrite_f_onto_an_existing_target_is_412_and_t_replaces(dav, feed):
    dav.put("a.txt", b"a", status=201)
    dav.put("b.txt", b"b", status=201)
    feed()
    for method in ("MOVE", "COPY"):
        dav.req(method, "a.txt", status=412, headers={**dest("b.txt"), "Overwrite": "F"})
    assert feed() == []
    dav.req("MOVE", "a.txt", status=204, headers={**dest("b.txt"), "Overwrite": "T"})
    assert dav.req("GET", "b.txt").body == b"a" and dav.names() == ["b.txt"]


def test_move_onto_a_folder_replaces_the_folder(dav):
    dav.req("MKCOL", "folder", status=201)
    dav.put("folder/inner.txt", b"i", status=201)
    dav.put("a.txt", b"a", status=201)
    dav.req("MOVE", "a.txt", status=204, headers=dest("folder"))
    assert dav.names() == ["folder"]
    assert dav.req("GET", "folder").body == b"a"


def test_copy_of_a_file_puts_the_same_content_without_copying_bytes(dav, feed, rt):
    import os
    dav.put("a.txt", b"content", status=201, headers={"X-OC-Mtime": "7"})
    feed()
    before = sorted(os.listdir(rt.config.path("blobs", sha256(b"content")[:2])))
    dav.req("COPY", "a.txt", status=201, headers=dest("b.txt"))
    [change] = feed()
    assert change["path"] == "b.txt" and change["sha256"] == sha256(b"content")
    assert "moved_from" not in change and change["mtime"] == 7
    assert sorted(os.listdir(rt.config.path("blobs", sha256(b"content")[:2]))) == before
    assert dav.names() == ["a.txt", "b.txt"]


def test_copy_of_a_folder_copies_every_file_and_depth_0_only_the_folder(dav, feed):
    dav.req("MKCOL", "src", status=201)
    dav.put("src/x.txt", b"x", status=201)
    dav.put("src/y.txt", b"y", status=201)
    feed()
    dav.req("COPY", "src/", status=201, headers=dest("all/"))
    assert sorted(c["path"] for c in feed()) == ["all/x.txt", "all/y.txt"]
    dav.req("COPY", "src/", status=201, headers={**dest("shallow/"), "Depth": "0"})
    assert feed() == []
    assert dav.names("shallow/") == [] and "shallow/" in dav.names()


def test_a_destination_behind_a_tls_proxy_is_this_server(dav):
    dav.put("a.txt", b"a", status=201)
    dav.req("MOVE", "a.txt", status=201,
            headers={"Destination": "https://localhost" + DAV_ROOT + "b.txt"})
    dav.req("COPY", "b.txt", status=201, headers={"Destination": DAV_ROOT + "c.txt"})
    dav.req("COPY", "b.txt", status=502,
            headers={"Destination": "https://elsewhere.example" + DAV_ROOT + "d.txt"})
    assert dav.names() == ["b.txt", "c.txt"]


def test_move_or_copy_into_a_missing_folder_is_409_and_onto_a_case_twin_is_409(dav):
    dav.put("a.txt", b"a", status=201)
    dav.put("B.txt", b"b", status=201)
    dav.req("MOVE", "a.txt", status=409, headers=dest("missing/a.txt"))
    dav.req("COPY", "a.txt", status=409, headers=dest("b.TXT"))
    dav.req("MOVE", "a.txt", status=409, headers=dest("b.txt"))
    assert dav.names() == ["B.txt", "a.txt"]


# -- dead properties -----------------------------------------------------------------------

PROPPATCH = (b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">'
             b'<D:set><D:prop><Z:author>Frank Herbert</Z:author></D:prop></D:set>'
             b'</D:propertyupdate>')
PROP_QUERY = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z">'
              b'<D:prop><Z:author/></D:prop></D:propfind>')


def author(dav, path):
    found = dav.propfind(path, depth="0", body=PROP_QUERY)
    prop = next(iter(found.values())).get("{urn:z}author")
    return None if prop is None else prop.text


def test_dead_properties_survive_a_restart_and_follow_copy_and_move(dav, config, clock):
    dav.put("dune.epub", b"d", status=201)
    dav.req("PROPPATCH", "dune.epub", body=PROPPATCH, status=207)
    assert author(dav, "dune.epub") == "Frank Herbert"
    again = Dav(webtest.TestApp(create_app(open_runtime(config, clock=clock))),
                dav.authorization)
    assert author(again, "dune.epub") == "Frank Herbert"
    again.req("COPY", "dune.epub", status=201, headers=dest("copy.epub"))
    again.req("MOVE", "dune.epub", status=201, headers=dest("moved.epub"))
    assert author(again, "copy.epub") == author(again, "moved.epub") == "Frank Herbert"
    again.req("DELETE", "moved.epub", status=204)
    again.put("moved.epub", b"new", status=201)
    assert author(again, "moved.epub") is None  # a new file starts without them


def test_protected_properties_cannot_be_set(dav):
    dav.put("a.txt", b"a", status=201)
    body = (b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
            b'<D:getetag>"x"</D:getetag></D:prop></D:set></D:propertyupdate>')
    resp = dav.req("PROPPATCH", "a.txt", body=body, status=207)
    assert b"403" in resp.body


# -- LOCK and UNLOCK -------------------------------------------------------------------------

LOCKINFO = (b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            b'</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner>'
            b'</D:lockinfo>')


def test_a_lock_refuses_writes_without_its_token_and_lasts_30_minutes_at_most(dav, feed):
    dav.put("a.txt", b"a", status=201)
    feed()
    resp = dav.req("LOCK", "a.txt", body=LOCKINFO, status=200,
                   headers={"Timeout": "Second-99999999"})
    token = resp.headers["Lock-Token"].strip("<>")
    assert b"Second-1800" in resp.body or b"Second-1799" in resp.body
    dav.put("a.txt", b"b", status=423)
    dav.req("DELETE", "a.txt", status=423)
    dav.req("MOVE", "a.txt", status=423, headers=dest("b.txt"))
    assert feed() == []
    dav.put("a.txt", b"b", status=204, headers={"If": f"(<{token}>)"})
    dav.req("UNLOCK", "a.txt", status=204, headers={"Lock-Token": f"<{token}>"})
    dav.req("DELETE", "a.txt", status=204)


def test_locks_are_kept_in_memory_only(dav, config, clock):
    dav.put("a.txt", b"a", status=201)
    dav.req("LOCK", "a.txt", body=LOCKINFO, status=200)
    again = Dav(webtest.TestApp(create_app(open_runtime(config, clock=clock))),
                dav.authorization)
    again.put("a.txt", b"b", status=204)


def test_an_infinite_lock_request_gets_30_minutes(dav):
    dav.req("MKCOL", "f", status=201)
    resp = dav.req("LOCK", "f/", body=LOCKINFO, status=200, headers={"Timeout": "Infinite"})
    assert re.search(rb"Second-(1800|1799)", resp.body)


def test_lock_of_an_unmapped_url_makes_an_empty_file(dav, feed):
    resp = dav.req("LOCK", "new.txt", body=LOCKINFO, status=201)
    assert resp.headers["Lock-Token"]
    [change] = feed()
    assert change["path"] == "new.txt" and change["size"] == 0


def test_the_sync_api_ignores_webdav_locks(dav, api, kobo, feed):
    dav.put("a.txt", b"a", status=201)
    rev = feed()[0]["rev"]
    dav.req("LOCK", "a.txt", body=LOCKINFO, status=200)
    result = api.post("/report", {"changes": [{"op": "delete", "path": "a.txt",
                                               "base_rev": rev}]},
                      headers={"X-Device-Id": kobo["id"]}).json
    assert result["results"][0]["status"] == "applied"


# -- history ---------------------------------------------------------------------------

def revisions(path):
    """The kept revisions of alice's ``path``, newest first (the history table)."""
    return database.execute_sql(
        "SELECT r.deleted, r.sha256, r.moved_from, r.moved_to, r.device_id FROM revisions r "
        "JOIN users u ON u.id = r.user_id WHERE u.name = 'alice' AND r.path = ? "
        "ORDER BY r.rev DESC", (path,)).fetchall()


def test_every_webdav_write_is_a_revision_of_its_device(dav, kobo):
    dav.put("a.txt", b"one", status=201)
    dav.put("a.txt", b"two", status=204)
    dav.req("MOVE", "a.txt", status=201, headers=dest("b.txt"))
    dav.req("DELETE", "b.txt", status=204)
    d = kobo["id"]
    assert revisions("a.txt") == [(1, None, None, "b.txt", d), (0, sha256(b"two"), None, None, d),
                                  (0, sha256(b"one"), None, None, d)]
    assert revisions("b.txt") == [(1, None, None, None, d), (0, sha256(b"two"), "a.txt", None, d)]


def test_a_folder_delete_keeps_every_file_in_the_history(dav, kobo):
    dav.req("MKCOL", "f", status=201)
    dav.put("f/x.txt", b"x", status=201)
    dav.put("f/y.txt", b"y", status=201)
    dav.req("DELETE", "f/", status=204)
    for name, data in (("f/x.txt", b"x"), ("f/y.txt", b"y")):
        assert revisions(name) == [(1, None, None, None, kobo["id"]),
                                   (0, sha256(data), None, None, kobo["id"])]


def test_a_refused_put_takes_its_body_out_of_the_blob_store(dav, rt):
    dav.put("Dune.epub", b"v1", status=201)
    dav.put("Other.epub", b"held", status=201)
    dav.put("dune.EPUB", b"refused body", status=409)  # refused once the body is stored
    dav.put("dune.epub", b"held", status=409)  # content a file still uses stays
    assert sorted(blobs.blob_files(rt.config)) == sorted([sha256(b"v1"), sha256(b"held")])
    assert database.execute_sql("SELECT sha256 FROM blobs WHERE sha256 = ?",
                                (sha256(b"refused body"),)).fetchall() == []


def test_webdav_writes_are_kept_in_the_history_with_their_device(dav, api, kobo):
    dav.put("a.txt", b"first", status=201)
    dav.put("a.txt", b"second", status=204)
    dav.req("DELETE", "a.txt", status=204)
    revisions = api.get("/history/a.txt").json["revisions"]
    assert [(r["op"], r["sha256"], r["device_id"]) for r in revisions] == [
        ("delete", None, kobo["id"]), ("put", sha256(b"second"), kobo["id"]),
        ("put", sha256(b"first"), kobo["id"])]
    assert api.get("/download/a.txt?rev=%d" % revisions[2]["rev"]).body == b"first"

"""The web page over WebTest (SPEC §11): logging in, sessions, CSRF, the
security headers, escaping, isolation between users, and every page and
form: files, devices, conflicts, the overview."""

import hashlib
import html
import re
import subprocess
import sys

import markupsafe
import pytest
import webtest

from sync import feed, library
from sync.config import Config
from sync.db import database
from sync.web import pages, sessions, views
from sync.wsgi import create_app, open_runtime

from . import seed
from .helpers import PASSWORD, ROOT, Api, Browser, sha256

PAGES = ["/", "/files", "/devices", "/conflicts", "/trash", "/rewind"]
HOSTILE = '<script>alert("x")<script>&amp;"\'.txt'


@pytest.fixture
def app(testapp):
    return testapp.app


def logged_in(rt, app, name):
    """A browser logged in as a new user ``name``."""
    seed.add_user(rt, name)
    browser = Browser(app)
    browser.login(name)
    return browser


@pytest.fixture
def alice(rt, app):
    return logged_in(rt, app, "alice")


@pytest.fixture
def bob_browser(rt, app):
    return logged_in(rt, app, "bob")


def session_count():
    with database.connection_context():
        return database.execute_sql("SELECT COUNT(*) FROM web_sessions").fetchone()[0]


def device_rows():
    with database.connection_context():
        return database.execute_sql("SELECT id, name, token_version, app_password_hash "
                                    "FROM devices ORDER BY id").fetchall()


def entry_rows():
    with database.connection_context():
        return database.execute_sql(
            "SELECT path, rev, deleted FROM entries ORDER BY path").fetchall()


# -- logging in -----------------------------------------------------------------

@pytest.mark.parametrize("url", PAGES + ["/files?in=books", "/files/move?path=a",
                                         "/files/delete?path=a", "/devices/rename?id=x",
                                         "/devices/remove?id=x", "/download/a.txt"])
def test_a_page_without_a_session_redirects_to_the_login_form(app, url):
    resp = Browser(app).get(url, status=303)
    location = resp.headers["Location"]
    assert location.startswith("/login")
    if url != "/":
        assert "next=" in location


@pytest.mark.parametrize("url", ["/logout", "/devices", "/files/delete",
                                 "/conflicts/resolve", "/devices/remove"])
def test_a_form_sent_without_a_session_changes_nothing(rt, app, url):
    seed.add_user(rt, "alice")
    before = device_rows(), entry_rows()
    resp = Browser(app).post(url, {"name": "Kobo"}, csrf="whatever", status=303)
    assert resp.headers["Location"] == "/login"
    assert (device_rows(), entry_rows()) == before


def test_the_upload_api_without_a_session_is_401(app):
    resp = Browser(app).json("POST", "/files/upload", {"path": "a"}, status=401, csrf="x")
    assert resp.json["code"] == "unauthorized"


def test_the_login_form_is_labelled_and_opens_a_session(rt, app):
    seed.add_user(rt, "alice")
    browser = Browser(app)
    page = browser.get("/login")
    assert '<label for="username">' in page.text and 'id="username"' in page.text
    assert '<label for="password">' in page.text and 'type="password"' in page.text
    resp = browser.login("alice")
    assert resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("sync_session=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on a home LAN
    assert f"Max-Age={rt.config.token_ttl}" in cookie
    assert "alice" in browser.get("/").text
    assert session_count() == 1
    with database.connection_context():
        stored = database.execute_sql("SELECT id FROM web_sessions").fetchone()[0]
    assert stored != browser.cookie()  # only its hash is kept
    assert stored == hashlib.sha256(browser.cookie().encode()).hexdigest()


def test_the_login_goes_back_to_the_page_asked_for(rt, app):
    seed.add_user(rt, "alice")
    browser = Browser(app)
    location = browser.get("/devices", status=303).headers["Location"]
    form = browser.get(location)
    assert 'name="next" value="/devices"' in form.text
    resp = browser.login("alice", next="/devices")
    assert resp.headers["Location"] == "/devices"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "evil",
                                    "/\\evil.example"])
def test_the_login_never_sends_the_browser_to_another_site(rt, app, target):
    seed.add_user(rt, "alice")
    resp = Browser(app).login("alice", next=target)
    assert resp.headers["Location"] == "/"


def test_the_cookie_is_secure_over_https(rt, app):
    seed.add_user(rt, "alice")
    resp = Browser(app, https=True).login("alice")
    assert "Secure" in resp.headers["Set-Cookie"]


def test_x_forwarded_proto_from_an_untrusted_peer_is_ignored(rt, app):
    seed.add_user(rt, "alice")
    browser = Browser(app)
    resp = browser.app.post("/login", {"username": "alice", "password": "correct horse "
                                       "battery staple"},
                            headers={"X-Forwarded-Proto": "https"},
                            extra_environ={"REMOTE_ADDR": "192.0.2.7"}, status=303)
    assert "Secure" not in resp.headers["Set-Cookie"]


@pytest.mark.parametrize("name,password", [("alice", "wrong"), ("nobody", "whatever"),
                                           ("", "")])
def test_a_wrong_name_or_password_shows_the_form_again(rt, app, name, password):
    seed.add_user(rt, "alice")
    browser = Browser(app)
    resp = browser.login(name, password, status=401)
    assert "Wrong user name or password." in resp.text
    assert "Set-Cookie" not in resp.headers
    assert resp.content_type == "text/html"
    assert session_count() == 0


def test_a_login_posted_from_another_site_is_refused(rt, app):
    seed.add_user(rt, "alice")
    resp = Browser(app).app.post(
        "/login", {"username": "alice", "password": "correct horse battery staple"},
        headers={"Origin": "https://evil.example"}, status=403)
    assert resp.content_type == "text/html"
    assert session_count() == 0


def test_the_login_form_with_a_session_goes_to_the_overview(alice):
    assert alice.get("/login", status=303).headers["Location"] == "/"


# -- sessions -------------------------------------------------------------------

def test_logout_ends_the_session_on_the_server(alice, app):
    cookie = alice.cookie()
    resp = alice.post("/logout")
    assert resp.headers["Location"] == "/login?bye=1"
    assert "You are logged out." in alice.get("/login?bye=1").text
    assert session_count() == 0
    stolen = Browser(app)
    stolen.app.set_cookie("sync_session", cookie)
    stolen.get("/", status=303)


def test_a_session_survives_a_restart(alice, config, clock):
    cookie = alice.cookie()
    again = Browser(create_app(open_runtime(config, clock=clock)))
    again.app.set_cookie("sync_session", cookie)
    assert "alice" in again.get("/").text


def test_a_session_expires_after_the_token_ttl(alice, rt, clock):
    clock.advance(rt.config.token_ttl - 10)
    alice.get("/")
    clock.advance(11)
    assert alice.get("/", status=303).headers["Location"] == "/login"


def test_expired_sessions_are_removed_at_the_next_login(alice, rt, clock, app):
    clock.advance(rt.config.token_ttl + 1)
    Browser(app).login("alice")
    assert session_count() == 1


def _app_py(data, *args, password=None):
    result = subprocess.run(
        [sys.executable, "app.py", *args, "--data-dir", data], cwd=ROOT, capture_output=True,
        text=True, timeout=120, input=None if password is None else password + "\n")
    assert result.returncode == 0, result.stderr
    return result


def test_user_revoke_and_a_password_change_end_every_web_session(tmp_path):
    data = str(tmp_path / "data")
    _app_py(data, "user", "add", "alice", "--password-stdin", "--create", password=PASSWORD)
    app = create_app(open_runtime(Config.build(data_dir=data, access_log=False)))
    phone, laptop = Browser(app), Browser(app)
    phone.login("alice")
    laptop.login("alice")
    assert session_count() == 2

    _app_py(data, "user", "revoke", "alice")
    for browser in (phone, laptop):
        assert browser.get("/files", status=303).headers["Location"].startswith("/login")
    assert session_count() == 0
    fresh = Browser(app)  # a login right after the revoke works
    fresh.login("alice")
    assert "alice" in fresh.get("/").text

    _app_py(data, "user", "add", "alice", "--password-stdin", password="a new password")
    assert fresh.get("/", status=303).headers["Location"] == "/login"
    assert session_count() == 0
    fresh.login("alice", status=401)  # the old password no longer opens one
    fresh.login("alice", "a new password")
    assert "alice" in fresh.get("/devices").text


def test_a_session_opened_before_an_earlier_revocation_is_refused_and_deleted(alice, rt, clock):
    with database.connection_context():
        database.execute_sql("UPDATE users SET tokens_revoked_at = ? WHERE name = 'alice'",
                             (clock() + 1,))  # as a revocation of an older version left it
    assert alice.get("/", status=303).headers["Location"] == "/login"
    assert session_count() == 0


def test_a_made_up_cookie_opens_nothing(app):
    browser = Browser(app)
    browser.app.set_cookie("sync_session", "x" * 43)
    browser.get("/", status=303)


# -- CSRF -----------------------------------------------------------------------

FORMS = [
    ("/devices", {"name": "Kobo"}),
    ("/devices/rename", {"id": "DEVICE", "name": "Renamed"}),
    ("/devices/remove", {"id": "DEVICE"}),
    ("/devices/app-password", {"id": "DEVICE", "action": "new"}),
    ("/files/move", {"path": "a.txt", "rev": "REV", "to": "b.txt"}),
    ("/files/delete", {"path": "a.txt", "rev": "REV"}),
    ("/conflicts/resolve", {"id": "CONFLICT", "resolution": "keep_client"}),
    ("/history/restore", {"path": "a.txt", "rev": "OLD"}),
    ("/trash/restore", {"path": "a.txt", "rev": "OLD"}),
    ("/rewind/apply", {"at": "2026-11-26T00:00:00"}),
    ("/logout", {}),
]


@pytest.fixture
def everything(rt, alice, api, device):
    """alice with a file, a device and an open conflict."""
    seed.put_files(rt, "alice", {"a.txt": b"server"})
    rev = views.head(seed.user_id(rt, "alice"), "a.txt").rev
    other = api.post("/devices", {"name": "Tolino"}).json
    kobo = api.as_(other["token"])
    kobo.post("/report", {"changes": [{"op": "put", "path": "a.txt", "sha256": sha256(b"server"),
                                       "size": 6, "mtime": 1, "base_rev": rev}]})
    with database.connection_context():
        conflict = library.report(rt, seed.user_id(rt, "alice"), device["id"], {"changes": [
            {"op": "delete", "path": "a.txt", "base_rev": rev - 1}]})["results"][0]
    assert conflict["status"] == "conflict"
    seed.put_files(rt, "alice", {"a.txt": b"server, again"})
    return {"DEVICE": device["id"], "REV": str(rev), "CONFLICT": conflict["conflict_id"],
            "OLD": str(rev)}


@pytest.mark.parametrize("url,fields", FORMS, ids=[f[0] for f in FORMS])
@pytest.mark.parametrize("csrf", [False, "forged", "OTHER"])
def test_every_form_without_the_sessions_csrf_token_is_403(everything, alice, app, rt, url,
                                                           fields, csrf):
    fields = {k: everything.get(v, v) for k, v in fields.items()}
    if csrf == "OTHER":
        other = Browser(app)
        other.login("alice")
        csrf = other.csrf
    before = device_rows(), entry_rows(), session_count(), _conflicts_open()
    resp = alice.post(url, fields, csrf=csrf, status=403)
    assert resp.content_type == "text/html"
    assert "reload the page" in resp.text
    assert (device_rows(), entry_rows(), session_count(), _conflicts_open()) == before


def _conflicts_open():
    with database.connection_context():
        return database.execute_sql(
            "SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL").fetchone()[0]


def test_the_upload_api_without_the_csrf_header_is_403(alice):
    data = b"hello"
    body = {"path": "h.txt", "size": 5, "sha256": sha256(data), "base_rev": None}
    for csrf in (False, "forged"):
        resp = alice.json("POST", "/files/upload", body, csrf=csrf, status=403)
        assert resp.json["code"] == "csrf_invalid"
    assert _table_count("uploads") == 0


def _table_count(table):
    with database.connection_context():
        return database.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# -- security headers -------------------------------------------------------------

@pytest.mark.parametrize("url", ["/login", "/static/style.css", "/healthz",
                                 "/api/v1/sync/devices", "/no/such/page"])
def test_every_answer_carries_the_security_headers(app, url):
    resp = webtest.TestApp(app).get(url, expect_errors=True)
    _assert_security_headers(resp)


def test_every_page_carries_the_security_headers(everything, alice):
    for url in PAGES + ["/files/move?path=a.txt", "/files/delete?path=a.txt",
                        "/devices/rename?id=" + everything["DEVICE"]]:
        resp = alice.get(url)
        _assert_security_headers(resp)
        assert resp.headers["Cache-Control"] == "no-store"
        # No inline script, no inline style, nothing from another site.
        assert not re.search(r"<script(?![^>]*\bsrc=)", resp.text)
        assert " style=" not in resp.text and "<style" not in resp.text
        assert " on" not in re.sub(r"\s+", " ", " ".join(re.findall(r"<[^>]+>", resp.text))) \
            .replace(' one', '')
        assert not re.search(r'(src|href)="(https?:)?//', resp.text)


def _assert_security_headers(resp):
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


# -- escaping -------------------------------------------------------------------

def test_hostile_file_and_device_names_are_escaped(rt, alice, api):
    kobo = api.post("/devices", {"name": '<img src=x onerror="alert(1)">'}).json
    seed.put_files(rt, "alice", {f"{HOSTILE}/{HOSTILE}": b"1", HOSTILE: b"2"}, device_id=kobo["id"])
    pages_text = [alice.get(u).text for u in
                  ["/", "/files", "/files?" + _q("in", HOSTILE), "/devices",
                   "/files/move?" + _q("path", HOSTILE), "/files/delete?" + _q("path", HOSTILE),
                   "/devices/rename?id=" + kobo["id"], "/devices/remove?id=" + kobo["id"]]]
    for text in pages_text:
        assert "<script>alert" not in text
        assert "<img src=x" not in text
    assert str(markupsafe.escape(HOSTILE)) in pages_text[1]
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in pages_text[0]


def test_a_hostile_user_name_is_escaped(rt, app):
    """Names are letters, digits and ._@- since version 2, but a database of
    version 1 may hold any printable name."""
    name = '<b>eve</b>"&'
    with database.connection_context():
        database.execute_sql("INSERT INTO users (name, created_at) VALUES (?, ?)",
                             (name, rt.now()))
        uid = database.execute_sql("SELECT id FROM users WHERE name = ?", (name,)).fetchone()[0]
        cookie = sessions.open_session(rt, uid)
    browser = Browser(app)
    browser.app.set_cookie("sync_session", cookie)
    for url in ["/", "/devices"]:
        text = browser.get(url).text
        assert "<b>eve" not in text and "&lt;b&gt;eve&lt;/b&gt;&#34;&amp;" in text
    added = browser.post("/devices", {"name": "Kobo"}, status=200).text
    assert "<b>eve" not in added and "/dav/files/%3Cb%3Eeve%3C%2Fb%3E%22%26/" in added


def _q(key, value):
    import urllib.parse
    return urllib.parse.urlencode({key: value})


# -- isolation --------------------------------------------------------------------

def test_users_see_and_change_only_their_own(everything, rt, alice, bob_browser):
    for url in PAGES:
        text = bob_browser.get(url).text
        assert "a.txt" not in text and "Tolino" not in text and "Laptop" not in text
    bob_browser.get("/download/a.txt", status=404)
    bob_browser.get("/files/move?path=a.txt", status=404)
    bob_browser.get("/devices/rename?id=" + everything["DEVICE"], status=403)
    before = device_rows(), entry_rows(), _conflicts_open()
    bob_browser.post("/devices/remove", {"id": everything["DEVICE"]}, status=403)
    bob_browser.post("/devices/rename", {"id": everything["DEVICE"], "name": "x"}, status=403)
    bob_browser.post("/conflicts/resolve", {"id": everything["CONFLICT"],
                                            "resolution": "keep_client"}, status=404)
    bob_browser.post("/files/delete", {"path": "a.txt", "rev": everything["REV"]})
    bob_browser.post("/files/move", {"path": "a.txt", "rev": everything["REV"], "to": "b"},
                     status=404)
    assert (device_rows()[:2], _conflicts_open()) == (before[0][:2], before[2])
    assert [r for r in entry_rows() if r[0] == "a.txt"] == \
        [r for r in before[1] if r[0] == "a.txt"]


# -- the overview -------------------------------------------------------------------

def test_the_overview_counts_files_bytes_devices_and_conflicts(everything, rt, alice):
    text = alice.get("/").text
    assert re.search(r"<dt>Files</dt><dd><a[^>]*>1</a>", text)
    assert "13 bytes" in text
    assert re.search(r"<dt>Devices</dt><dd><a[^>]*>2</a>", text)
    assert re.search(r"<dt>Open conflicts</dt><dd><a[^>]*>1</a>", text)
    assert "a.txt" in text and "Latest changes" in text


def recounted(uid):
    """The overview's figures counted from the tables, as the page once did."""
    def one(sql):
        return database.execute_sql(sql, (uid,)).fetchone()[0]
    return {"files": one("SELECT COUNT(*) FROM entries WHERE user_id = ? AND deleted = 0"),
            "conflicts": one("SELECT COUNT(*) FROM conflicts WHERE user_id = ? "
                             "AND resolved_at IS NULL")}


def overview_figures(text):
    return {"files": int(re.search(r"<dt>Files</dt><dd><a[^>]*>([\d,]+)</a>", text)
                         .group(1).replace(",", "")),
            "conflicts": int(re.search(r"<dt>Open conflicts</dt><dd><a[^>]*>(\d+)</a>", text)
                             .group(1))}


def test_the_overview_shows_the_counted_figures_after_every_kind_of_change(
        everything, rt, alice, api, device, clock):
    uid = seed.user_id(rt, "alice")
    dev = api.as_(device["token"])

    def same():
        with database.connection_context():
            expected = recounted(uid)
        assert overview_figures(alice.get("/").text) == expected
        return expected
    assert same() == {"files": 1, "conflicts": 1}
    seed.put_files(rt, "alice", {"b.txt": b"b", "c/d.txt": b"d", "e.txt": b"e"})
    rev = views.head(uid, "b.txt").rev
    dev.post("/report", {"changes": [
        {"op": "delete", "path": "e.txt", "base_rev": views.head(uid, "e.txt").rev},
        {"op": "move", "path": "c/d.txt", "to": "c/moved.txt",
         "base_rev": views.head(uid, "c/d.txt").rev},
        {"op": "put", "path": "B.txt", "sha256": sha256(b"b"), "size": 1, "mtime": 0,
         "base_rev": None}]})  # a case clash: one more conflict
    assert same() == {"files": 3, "conflicts": 2}
    put_rev = dev.get("/history/e.txt").json["revisions"][-1]["rev"]
    dev.post("/restore", {"path": "e.txt", "rev": put_rev})
    assert same()["files"] == 4
    [clash] = [c for c in dev.get("/conflicts").json["conflicts"] if c["kind"] == "case_clash"]
    dev.post(f"/conflicts/{clash['id']}/resolve", {"resolution": "keep_both"})
    dev.post(f"/conflicts/{everything['CONFLICT']}/resolve", {"resolution": "keep_client"})
    assert same()["conflicts"] == 0
    dev.post("/rewind", {"rev": rev})
    same()
    clock.advance(31 * 86400)  # past the tombstones' grace period, acked by every device
    for listed in api.get("/devices").json["devices"]:
        caller = api.as_(api.token, device_id=listed["id"])
        caller.post("/ack", {"cursor": caller.get("/changes").json["cursor"]})
    with database.connection_context():
        assert feed.purge_tombstones(rt)[0] > 0
    alice.login("alice")  # the session expired meanwhile
    same()


def vm_steps(call):
    """How many SQLite virtual machine steps (in hundreds) ``call`` makes:
    the work its queries do, whatever the machine's speed."""
    steps = [0]

    def tick():
        steps[0] += 1
        return 0
    connection = database.connection()
    connection.set_progress_handler(tick, 100)
    try:
        call()
    finally:
        connection.set_progress_handler(None, 100)
    return steps[0]


def test_the_overview_costs_the_same_for_a_small_and_a_large_library(rt, alice, api, device):
    uid = seed.user_id(rt, "alice")
    dev = api.as_(device["token"])
    seed.put_many(rt, "alice", [f"small/{i}.txt" for i in range(100)])
    with database.connection_context():
        small = vm_steps(lambda: views.overview(uid))
    seed.put_many(rt, "alice", [f"large/{i}.txt" for i in range(20_000)])
    dev.post("/report", {"changes": [{"op": "delete", "path": f"large/{i}.txt",
                                      "base_rev": views.head(uid, f"large/{i}.txt").rev}
                                     for i in range(1000)]})
    with database.connection_context():
        large = vm_steps(lambda: views.overview(uid))
        figures = views.overview(uid)
        assert {"files": figures["files"], "conflicts": figures["conflicts"]} == recounted(uid)
    assert figures["files"] == 19_100
    assert large <= small + 5, (small, large)


# -- files ------------------------------------------------------------------------

def test_the_files_page_lists_folders_and_files_with_their_device(rt, alice, api, device):
    seed.put_files(rt, "alice", {"books/Dune.epub": b"spice", "books/sf/Solaris.epub": b"ocean",
                       "notes.txt": b"hello"}, device_id=device["id"])
    top = alice.get("/files").text
    assert "books/" in top and "notes.txt" in top and "Dune.epub" not in top
    books = alice.get("/files?in=books").text
    assert "Dune.epub" in books and "sf/" in books and "Solaris" not in books
    assert "5 bytes" in books and "Laptop" in books
    assert 'href="/download/books/Dune.epub"' in books
    alice.get("/files?in=nothing/here", status=404)
    alice.get("/files?in=../etc", status=400)


def test_a_folder_is_listed_in_pages(rt, alice, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 7)
    names = [f"f{i:02}.txt" for i in range(10)] + [f"d{i}/x.txt" for i in range(6)]
    seed.put_many(rt, "alice", ["big/" + n for n in names] + ["big-sibling.txt", "big0.txt"])
    seen, url = [], "/files?in=big"
    while url:
        text = alice.get(url).text
        seen += re.findall(r'<td class="name"><a [^>]*>(?:<span[^>]*>▸</span> )?([^<]+)</a>',
                           text)
        found = re.search(r'<a href="([^"]+)" rel="next">', text)
        url = html.unescape(found.group(1)) if found else None
    assert seen == sorted([f"d{i}/" for i in range(6)] + [f"f{i:02}.txt" for i in range(10)])


def test_list_folder_skips_what_lies_inside_sub_folders(rt):
    paths = [f"a/{i:03}" for i in range(50)] + ["a/b/c/d", "a/b/e", "a/c", "a-z", "a0", "b/x"]
    seed.put_many(rt, "alice", paths)
    uid = seed.user_id(rt, "alice")
    with database.connection_context():
        items, start, inclusive = views.list_folder(uid, "a", limit=1000)
        assert [i.name for i in items] == [f"{i:03}" for i in range(50)] + ["b", "c"]
        assert [i.is_folder for i in items][-2:] == [True, False]
        assert start is None
        top = views.list_folder(uid, "", limit=1000)[0]
        # Path order: '-' sorts before '/', and '0' after it.
        assert [(i.name, i.is_folder) for i in top] == [("a-z", False), ("a", True),
                                                        ("a0", False), ("b", True)]
        page, start, inclusive = views.list_folder(uid, "", limit=2)
        assert [i.name for i in page] == ["a-z", "a"] and (start, inclusive) == ("a0", True)
        page, start, inclusive = views.list_folder(uid, "", start, inclusive, limit=1)
        assert [i.name for i in page] == ["a0"] and (start, inclusive) == ("a0", False)
        page, start, inclusive = views.list_folder(uid, "", start, inclusive, limit=1)
        assert [i.name for i in page] == ["b"] and start is None


def test_download_sends_the_same_bytes_as_an_attachment(rt, alice):
    data = bytes(range(256)) * 40
    seed.put_files(rt, "alice", {"music/<b>x</b>.html": data})
    resp = alice.get("/download/music/%3Cb%3Ex%3C/b%3E.html")
    assert resp.body == data
    assert resp.content_type == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment; filename*=UTF-8''")
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    alice.get("/download/music/none.html", status=404)
    part = alice.get("/download/music/%3Cb%3Ex%3C/b%3E.html", headers={"Range": "bytes=0-9"},
                     status=206)
    assert part.body == data[:10]


def test_upload_through_the_page_api_lists_the_file_for_the_web_device(rt, alice, api):
    data = b"0123456789" * 30000  # 300,000 bytes: two chunks of 256 KiB
    body = {"path": "up/load.bin", "size": len(data), "sha256": sha256(data),
            "base_rev": None, "chunk_size": 256 * 1024, "mtime": 1700000000}
    session = alice.json("POST", "/files/upload", body).json
    assert session["chunk_count"] == 2
    alice.json("PUT", f"/files/upload/{session['id']}/chunks/1", raw=data[256 * 1024:])
    again = alice.json("GET", f"/files/upload/{session['id']}").json
    assert again["received"] == [1]  # resumable: the page asks what is missing
    alice.json("PUT", f"/files/upload/{session['id']}/chunks/0", raw=data[:256 * 1024])
    done = alice.json("POST", f"/files/upload/{session['id']}/complete").json
    assert done["status"] == "applied"
    assert alice.get("/download/up/load.bin").body == data
    listing = alice.get("/files?in=up").text
    assert "load.bin" in listing and "Web page" in listing
    web = [d for d in api.get("/devices").json["devices"] if d["name"] == "Web page"]
    assert len(web) == 1 and web[0]["platform"] == "web" and web[0]["pending_changes"] == 0
    assert alice.json("GET", "/files/rev?path=up/load.bin").json == {"rev": done["rev"]}
    assert alice.json("GET", "/files/rev?path=up/none").json == {"rev": None}


def test_the_web_device_never_holds_back_the_purge_of_tombstones(rt, alice, api, dev, clock):
    seed.put_files(rt, "alice", {"a.txt": b"a"})
    alice.json("GET", "/files/rev?path=a.txt")
    data = b"web"
    session = alice.json("POST", "/files/upload", {"path": "w.txt", "size": 3,
                                                   "sha256": sha256(data),
                                                   "base_rev": None}).json
    alice.json("PUT", f"/files/upload/{session['id']}/chunks/0", raw=data)
    alice.json("POST", f"/files/upload/{session['id']}/complete")
    rev = views_head(rt, "a.txt").rev
    dev.post("/report", {"changes": [{"op": "delete", "path": "a.txt", "base_rev": rev}]})
    dev.post("/ack", {"cursor": dev.get("/changes").json["cursor"]})
    clock.advance(rt.config.tombstone_grace + 1)
    seed.put_files(rt, "alice", {"b.txt": b"new"})
    with database.connection_context():
        feed.purge_tombstones(rt)
    assert "a.txt" not in [r[0] for r in entry_rows()]
    web = [d for d in api.get("/devices").json["devices"] if d["platform"] == "web"]
    assert web[0]["pending_changes"] == 0
    import sqlite3

    from sync import counts
    conn = sqlite3.connect(rt.config.path("sync.sqlite3"))
    try:
        assert counts.differences(conn) == []  # what check recounts agrees
    finally:
        conn.close()


def views_head(rt, path):
    with database.connection_context():
        return views.head(seed.user_id(rt, "alice"), path)


def test_rename_or_move_a_file(rt, alice, dev):
    seed.put_files(rt, "alice", {"books/Dune.epub": b"spice"})
    form = alice.get("/files/move?path=books/Dune.epub").text
    assert '<label for="to">' in form and 'value="books/Dune.epub"' in form
    rev = views_head(rt, "books/Dune.epub").rev
    resp = alice.post("/files/move", {"path": "books/Dune.epub", "rev": str(rev),
                                      "to": "sf/Dune (1965).epub"})
    assert resp.headers["Location"] == "/files?in=sf"
    assert "Moved “books/Dune.epub” to “sf/Dune (1965).epub”." in alice.get("/files?in=sf").text
    feed = dev.get("/changes").json["changes"]
    assert feed[-1]["path"] == "sf/Dune (1965).epub" and feed[-1]["moved_from"] == \
        "books/Dune.epub"


def test_a_move_to_an_invalid_path_shows_the_form_again(rt, alice):
    seed.put_files(rt, "alice", {"a.txt": b"a"})
    rev = str(views_head(rt, "a.txt").rev)
    before = entry_rows()
    for target in ("../x", "a/./b", ""):
        resp = alice.post("/files/move", {"path": "a.txt", "rev": rev, "to": target},
                          status=400)
        assert 'role="alert"' in resp.text
    alice.post("/files/move", {"path": "a.txt", "rev": "x", "to": "b.txt"}, status=400)
    assert entry_rows() == before


def test_a_move_of_a_file_changed_meanwhile_becomes_a_conflict(rt, alice):
    seed.put_files(rt, "alice", {"a.txt": b"a"})
    rev = views_head(rt, "a.txt").rev
    seed.put_files(rt, "alice", {"a.txt": b"changed"})
    resp = alice.post("/files/move", {"path": "a.txt", "rev": str(rev), "to": "b.txt"})
    assert resp.headers["Location"] == "/conflicts"
    assert views_head(rt, "a.txt") is not None and views_head(rt, "b.txt") is None


def test_delete_asks_first_then_deletes(rt, alice):
    seed.put_files(rt, "alice", {"docs/a.txt": b"a"})
    confirm = alice.get("/files/delete?path=docs/a.txt").text
    assert "Delete this file?" in confirm and "Cancel" in confirm
    assert views_head(rt, "docs/a.txt") is not None  # asking changed nothing
    rev = views_head(rt, "docs/a.txt").rev
    resp = alice.post("/files/delete", {"path": "docs/a.txt", "rev": str(rev)})
    assert resp.headers["Location"] == "/files?in=docs"
    assert views_head(rt, "docs/a.txt") is None
    alice.get("/files/delete?path=docs/a.txt", status=404)


# -- devices ----------------------------------------------------------------------

def test_add_a_device_shows_its_token_once(rt, alice, testapp):
    page = alice.get("/devices").text
    assert '<label for="device-name">' in page and '<label for="device-platform">' in page
    resp = alice.post("/devices", {"name": "Kobo", "platform": "kobo"}, status=200)
    assert resp.headers["Cache-Control"] == "no-store"
    token = re.search(r'<textarea id="token"[^>]*>([^<]+)</textarea>', resp.text).group(1)
    me = Api(testapp, token).get("/devices").json["devices"]
    assert [d["name"] for d in me] == ["Kobo"]
    assert "http://localhost:80" in resp.text or "http://localhost" in resp.text
    listing = alice.get("/devices").text
    assert "Kobo" in listing and token not in listing


def test_adding_a_device_without_a_name_shows_the_form_again(alice):
    resp = alice.post("/devices", {"name": "", "platform": ""}, status=400)
    assert 'role="alert"' in resp.text
    assert device_rows() == []


def test_rename_and_remove_a_device(rt, alice, api, device, dev):
    form = alice.get("/devices/rename?id=" + device["id"]).text
    assert '<label for="name">' in form
    alice.post("/devices/rename", {"id": device["id"], "name": "Old laptop"})
    assert api.get("/devices/" + device["id"]).json["name"] == "Old laptop"
    alice.post("/devices/rename", {"id": device["id"], "name": ""}, status=400)
    confirm = alice.get("/devices/remove?id=" + device["id"]).text
    assert "Remove this device?" in confirm
    dev.get("/devices/" + device["id"])  # asking changed nothing
    resp = alice.post("/devices/remove", {"id": device["id"]})
    assert resp.headers["Location"] == "/devices"
    assert "Removed “Old laptop”" in alice.get("/devices").text
    dev.get("/devices", status=401)
    alice.get("/devices/remove?id=" + device["id"], status=404)


# -- conflicts ----------------------------------------------------------------------

@pytest.fixture
def conflict(rt, api, device, dev):
    """A modify_modify conflict on notes.txt: Laptop's edit beat Kobo's."""
    kobo = api.post("/devices", {"name": "Kobo"}).json
    base = seed.put(rt, device, "notes.txt", b"first")["rev"]
    seed.put(rt, device, "notes.txt", b"laptop edit", base_rev=base)
    answer = seed.put(rt, kobo, "notes.txt", b"kobo edit!", base_rev=base)
    assert answer["status"] == "conflict"
    return answer["conflict_id"]


def test_a_conflict_shows_both_versions_and_resolutions_in_words(conflict, alice):
    text = alice.get("/conflicts").text
    assert "notes.txt" in text
    assert "On the server" in text and "From Kobo" in text
    assert "11 bytes" in text and "10 bytes" in text and "Laptop" in text
    for words in ("Keep the server's version", "Keep Kobo's version", "Keep both"):
        assert words in text


def test_keep_both_saves_the_devices_version_beside(conflict, alice, dev, rt):
    resp = alice.post("/conflicts/resolve", {"id": conflict, "resolution": "keep_both"})
    assert resp.headers["Location"] == "/conflicts"
    page = alice.get("/conflicts").text
    assert "notes (conflict Kobo 2026-11-27).txt" in page and "No conflicts" in page
    feed = {c["path"]: c for c in dev.get("/changes").json["changes"]}
    assert feed["notes (conflict Kobo 2026-11-27).txt"]["sha256"] == sha256(b"kobo edit!")
    assert feed["notes.txt"]["sha256"] == sha256(b"laptop edit")
    alice.post("/conflicts/resolve", {"id": conflict, "resolution": "keep_both"}, status=400)


def test_an_unknown_resolution_is_refused_with_a_page(conflict, alice):
    resp = alice.post("/conflicts/resolve", {"id": conflict, "resolution": "both"}, status=400)
    assert resp.content_type == "text/html"
    assert _conflicts_open() == 1


# -- static files -------------------------------------------------------------------

def test_static_files_are_served_from_the_package(app):
    client = webtest.TestApp(app)
    site = pages.Web.__new__(pages.Web)
    from sync.web import render
    static = render.Static()
    css = client.get(static.url("style.css"))
    assert css.content_type == "text/css"
    assert "immutable" in css.headers["Cache-Control"]
    js = client.get("/static/upload.js")
    assert js.content_type == "text/javascript" and js.headers["Cache-Control"] == "no-cache"
    client.get("/static/nothing.js", status=404)
    client.get("/static/..%2fpages.py", status=404)
    assert site is not None


# -- app passwords ------------------------------------------------------------------

def test_a_new_device_gets_an_app_password_shown_once_with_the_webdav_address(rt, alice, api):
    resp = alice.post("/devices", {"name": "KOReader"}, status=200)
    password = re.search(r'<code id="app-password" class="secret">([^<]+)</code>',
                         resp.text).group(1)
    assert re.fullmatch(r"[a-z0-9]{5}(-[a-z0-9]{5}){4}", password)
    assert "http://localhost:80/dav/files/alice/" in resp.text
    from sync import auth
    with database.connection_context():
        assert auth.app_password_device("alice", password) is not None
    listing = alice.get("/devices").text
    assert password not in listing
    assert re.search(r'App password"><a [^>]*>yes', listing)


def test_make_a_new_app_password_or_remove_it(rt, alice, api, device):
    from sync import auth
    page = alice.get("/devices/app-password?id=" + device["id"]).text
    assert "has no app password" in page
    first = alice.post("/devices/app-password", {"id": device["id"], "action": "new"},
                       status=200)
    assert "token" not in re.sub(r"<[^>]+>", "", first.text).lower().split("copy")[0]
    old = re.search(r'id="app-password" class="secret">([^<]+)<', first.text).group(1)
    second = alice.post("/devices/app-password", {"id": device["id"], "action": "new"},
                        status=200)
    new = re.search(r'id="app-password" class="secret">([^<]+)<', second.text).group(1)
    with database.connection_context():
        assert auth.app_password_device("alice", old) is None
        assert auth.app_password_device("alice", new) is not None
    alice.post("/devices/app-password", {"id": device["id"], "action": "remove"})
    assert api.get("/devices/" + device["id"]).json["app_password"] is False
    alice.post("/devices/app-password", {"id": device["id"], "action": "other"}, status=400)
    alice.post("/devices/app-password", {"id": device["id"], "action": "new"}, csrf=False,
               status=403)
    assert api.get("/devices/" + device["id"]).json["app_password"] is False


# -- history, trash and rewind --------------------------------------------------------

def _revisions(api, path):
    return api.get("/history/" + path).json["revisions"]


def test_a_files_history_lists_every_version_with_who_and_when(rt, alice, api, device):
    seed.put_files(rt, "alice", {"books/Dune.epub": b"first"}, device_id=device["id"])
    seed.put_files(rt, "alice", {"books/Dune.epub": b"second!"})
    files = alice.get("/files?in=books").text
    assert 'href="/history?path=books%2FDune.epub"' in files
    page = alice.get("/history?path=books/Dune.epub").text
    assert "History of" in page and "Dune.epub" in page
    assert "5 bytes" in page and "7 bytes" in page and "Laptop" in page
    assert "current" in page
    old = _revisions(api, "books/Dune.epub")[-1]
    assert f'/download/books/Dune.epub?rev={old["rev"]}' in page
    assert alice.get(f"/download/books/Dune.epub?rev={old['rev']}").body == b"first"
    alice.get("/history?path=books/none", status=404)
    alice.get("/history?path=../x", status=400)


def test_restore_a_version_from_the_history_page(rt, alice, api):
    seed.put_files(rt, "alice", {"a.txt": b"old"})
    seed.put_files(rt, "alice", {"a.txt": b"overwritten"})
    old = _revisions(api, "a.txt")[-1]
    resp = alice.post("/history/restore", {"path": "a.txt", "rev": str(old["rev"]),
                                           "when": old["changed_at"]})
    assert resp.headers["Location"] == "/history?path=a.txt"
    assert "Restored “a.txt”" in alice.get("/history?path=a.txt").text
    assert api.get("/download/a.txt").body == b"old"
    newest = _revisions(api, "a.txt")[0]
    assert newest["device_name"] == "Web page"
    alice.post("/history/restore", {"path": "a.txt", "rev": "999999"}, status=404)


def test_restore_from_the_trash(rt, alice, api, dev):
    seed.put_files(rt, "alice", {"docs/gone.txt": b"bring me back"})
    rev = views_head(rt, "docs/gone.txt").rev
    dev.post("/report", {"changes": [{"op": "delete", "path": "docs/gone.txt",
                                      "base_rev": rev}]})
    page = alice.get("/trash").text
    assert "docs/gone.txt" in page and "Laptop" in page and "13 bytes" in page
    assert "docs/gone.txt" in alice.get("/trash?prefix=docs").text
    assert "docs/gone.txt" not in alice.get("/trash?prefix=music").text
    resp = alice.post("/trash/restore", {"path": "docs/gone.txt", "rev": str(rev),
                                         "prefix": "docs"})
    assert resp.headers["Location"] == "/trash?prefix=docs"
    assert "Restored “docs/gone.txt”." in alice.get("/trash?prefix=docs").text
    assert api.get("/download/docs/gone.txt").body == b"bring me back"


def test_rewind_shows_what_would_change_then_applies_it(rt, alice, api, clock, dev):
    seed.put_files(rt, "alice", {"a.txt": b"good", "b.txt": b"good too"})
    clock.advance(3600)
    point = rt.now()
    clock.advance(60)
    seed.put_files(rt, "alice", {"a.txt": b"encrypted!", "new.txt": b"ransom note"})
    form = alice.get("/rewind").text
    for field in ('<label for="at">', '<label for="rewind-prefix">', '<label for="device">'):
        assert field in form
    before = entry_rows()
    at = point[:19]
    preview = alice.post("/rewind", {"at": at, "prefix": "", "device_id": ""}, status=200)
    assert "2 files would change" in preview.text
    assert "a.txt" in preview.text and "comes back as it was" in preview.text
    assert "new.txt" in preview.text and "is deleted" in preview.text
    assert entry_rows() == before  # the preview changed nothing
    resp = alice.post("/rewind/apply", {"at": at, "prefix": "", "device_id": ""})
    assert resp.headers["Location"] == "/"
    assert "Rewound 2 files to" in alice.get("/").text
    assert api.get("/download/a.txt").body == b"good"
    api.get("/download/new.txt", status=404)


def test_a_rewind_with_a_bad_time_shows_the_form_again(alice):
    resp = alice.post("/rewind", {"at": "yesterday", "prefix": "", "device_id": ""},
                      status=400)
    assert 'role="alert"' in resp.text
    resp = alice.post("/rewind", {"at": "2000-01-01T00:00", "prefix": "", "device_id": ""},
                      status=400)
    assert 'role="alert"' in resp.text


def test_an_unknown_address_gets_a_page_and_the_api_keeps_json(app):
    client = webtest.TestApp(app)
    page = client.get("/no/such/page", status=404)
    assert page.content_type == "text/html" and "Not Found" in page.text
    api = client.get("/api/v1/sync/nothing", status=404)
    assert api.content_type == "application/json" and api.json["code"] == "not_found"


@pytest.mark.parametrize("trusted,peer,secure", [
    ("127.0.0.1", "127.0.0.1", True), ("10.0.0.0/8", "10.1.2.3", True),
    ("127.0.0.1", "192.0.2.7", False), ("", "127.0.0.1", False)])
def test_the_cookie_is_secure_behind_a_trusted_proxy_that_says_https(tmp_path, clock, trusted,
                                                                     peer, secure):
    from sync.config import Config
    try:
        config = Config.build(data_dir=str(tmp_path / "d"), access_log=False,
                              trusted_proxies=trusted)
    except ValueError:
        pytest.skip("no --trusted-proxies setting yet")
    rt = open_runtime(config, clock=clock)
    seed.add_user(rt, "alice")
    browser = Browser(create_app(rt))
    resp = browser.app.post("/login", {"username": "alice", "password": "correct horse "
                                       "battery staple"},
                            headers={"X-Forwarded-Proto": "https",
                                     "X-Forwarded-For": "198.51.100.9"},
                            extra_environ={"REMOTE_ADDR": peer}, status=303)
    assert ("Secure" in resp.headers["Set-Cookie"]) == secure


def test_the_login_form_is_throttled_like_the_api(rt, app, clock):
    """Ten failed logins for a name (SPEC §3) lock the name out of the form
    too, the right password included, with a sentence and Retry-After."""
    if not hasattr(rt, "login_throttle"):
        pytest.skip("no login throttle yet")
    seed.add_user(rt, "alice")
    guesser = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "203.0.113.7"})
    for _ in range(10):
        guesser.post("/login", {"username": "alice", "password": "wrong"}, status=401)
        clock.advance(1)
    browser = Browser(app)
    resp = browser.login("alice", status=429)
    assert resp.content_type == "text/html" and 'role="alert"' in resp.text
    assert 590 <= int(resp.headers["Retry-After"]) <= 600
    assert "Set-Cookie" not in resp.headers and session_count() == 0
    clock.advance(600)
    browser.login("alice")

"""Paged conflict listings, and clients that ask for a large answer and
never read it (SPEC §5 Conflicts v2, §6 v2): the others are still answered
and SQLite can still checkpoint its WAL."""

import socket
import sqlite3

import pytest
import webtest

from sync import auth
from sync.wsgi import create_app

from .helpers import Api, Server, assert_error, get_once, read_response, send_request

CONFLICTS = 12000  # answers of about 4 MiB each: more than the socket buffers hold
STALLED = 8


def make_conflicts(api, count, start=0):
    """``count`` move conflicts (moves of paths that do not exist: no content)."""
    for first in range(start, start + count, 1000):
        items = [{"op": "move", "path": f"gone/{i}.txt", "to": f"there/{i}.txt",
                  "base_rev": None} for i in range(first, min(first + 1000, start + count))]
        results = api.post("/report", {"changes": items}).json["results"]
        assert {r["status"] for r in results} == {"conflict"}


# -- paging -----------------------------------------------------------------------------

def test_conflicts_page_oldest_first_with_a_cursor(api, dev):
    make_conflicts(dev, 25)
    seen, cursor, pages = [], None, 0
    while True:
        url = "/conflicts?limit=10" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url).json
        assert len(page["conflicts"]) <= 10
        seen += [c["path"] for c in page["conflicts"]]
        cursor, pages = page["cursor"], pages + 1
        if not page["has_more"]:
            break
    assert pages == 3
    assert seen == [f"gone/{i}.txt" for i in range(25)]
    # A resolution meanwhile does not shift later pages.
    first = api.get("/conflicts?limit=5").json
    api.post(f"/conflicts/{first['conflicts'][0]['id']}/resolve",
             {"resolution": "keep_server"})
    second = api.get(f"/conflicts?limit=5&cursor={first['cursor']}").json
    assert [c["path"] for c in second["conflicts"]] == [f"gone/{i}.txt" for i in range(5, 10)]


def test_without_paging_the_answer_keeps_its_version_1_shape(api, dev):
    make_conflicts(dev, 3)
    assert set(api.get("/conflicts").json) == {"conflicts"}


def test_more_than_a_page_without_a_limit_says_so(api, dev):
    make_conflicts(dev, 1001)
    page = api.get("/conflicts").json
    assert len(page["conflicts"]) == 1000 and page["has_more"] is True
    rest = api.get(f"/conflicts?cursor={page['cursor']}").json
    assert [c["path"] for c in rest["conflicts"]] == ["gone/1000.txt"]
    assert rest["has_more"] is False


@pytest.mark.parametrize("query, code", [
    ("limit=0", "limit_invalid"), ("limit=1001", "limit_invalid"), ("limit=ten", "limit_invalid"),
    ("cursor=garbage", "cursor_invalid"), ("cursor=c%FF", "cursor_invalid"),
])
def test_bad_paging_is_400(api, query, code):
    assert_error(api.get(f"/conflicts?{query}", status=400), 400, code)


def test_a_feed_cursor_is_no_conflicts_cursor(api, dev):
    cursor = dev.get("/changes").json["cursor"]
    assert_error(api.get(f"/conflicts?cursor={cursor}", status=400), 400, "cursor_invalid")


# -- stalled readers ----------------------------------------------------------------------

@pytest.fixture
def live(tmp_path):
    # A small output watermark makes the stall happen at a bounded size: a
    # streamed answer blocks its worker once 64 KiB wait for the client.
    server = Server(tmp_path / "data", threads=8,
                    waitress={"outbuf_high_watermark": 64 * 1024})
    yield server
    server.stop()


def test_eight_stalled_readers_leave_the_server_answering_and_the_wal_checkpointing(live):
    app = Api(webtest.TestApp(create_app(live.rt)), auth.issue_user_token(live.rt, "alice"))
    device = app.post("/devices", {"name": "Laptop"}).json
    make_conflicts(app.as_(device["token"]), CONFLICTS)
    token = auth.issue_user_token(live.rt, "alice")
    stalled = []
    try:
        for _ in range(STALLED):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", live.port))
            send_request(sock, "GET", "/api/v1/sync/conflicts",
                    {"Authorization": f"Bearer {token}"})
            stalled.append(sock)  # and never read
        # Everyone else is still answered (every worker thread would be
        # pinned by a streamed answer)...
        for _ in range(3):
            status, _, body = get_once(live, "/api/v1/sync/devices",
                                  {"Authorization": f"Bearer {token}"}, timeout=10)
            assert status == 200 and b'"Laptop"' in body
        # ...writes go on, and no reader holds a snapshot back from the WAL.
        with live.connect() as sock:
            body = (b'{"changes": [{"op": "delete", "path": "x", "base_rev": null}]}')
            send_request(sock, "POST", "/api/v1/sync/report",
                    {"Authorization": f"Bearer {device['token']}",
                     "Content-Type": "application/json", "Connection": "close"}, body)
            assert read_response(sock)[0] == 200
        con = sqlite3.connect(live.config.path("sync.sqlite3"))
        try:
            busy, log, checkpointed = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            con.close()
        assert busy == 0 and log == checkpointed == 0
    finally:
        for sock in stalled:
            sock.close()

"""A large request body is taken in only from a caller whose credentials
hold (SPEC §6, ``sync.bodygate``): without them the body is read and
dropped, never parked in ``TMPDIR``, and the answer is 401.

The real server (waitress with ``app.py``'s settings) in this process, with
``TMPDIR`` pointed at a folder of the test's own, so the files waitress
keeps request bodies in can be seen among the process's open files."""

import base64
import json
import logging
import os
import socket
import tempfile
import threading
import time

import pytest

from sync import auth, bodygate

from .helpers import Server, read_response, send_request

MIB = 1024 * 1024
BIG = 24 * MIB  # over waitress's 512 KiB in memory: a body this size goes to TMPDIR


@pytest.fixture
def tmpdir_seen(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def live(tmp_path, tmpdir_seen):
    server = Server(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def alice(live):
    """(the token of alice's device, Basic credentials of its app password)."""
    token = auth.issue_user_token(live.rt, "alice")
    sock = live.connect()
    body = b'{"name": "Kobo", "platform": "kobo"}'
    send_request(sock, "POST", "/api/v1/sync/devices",
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, body)
    status, _, answer = read_response(sock)
    assert status in (200, 201), answer
    device = json.loads(answer)
    send_request(sock, "POST", f"/api/v1/sync/devices/{device['id']}/app-password",
            {"Authorization": f"Bearer {token}"}, b"")
    status, _, answer = read_response(sock)
    assert status in (200, 201), answer
    password = json.loads(answer)["app_password"]
    sock.close()
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    return device["token"], f"Basic {basic}"


def parked_files(folder):
    """The files under ``folder`` this process holds open (waitress's body files)."""
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        held += target.startswith(str(folder))
    return held


def send_head(sock, method, path, headers, length=None):
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def send_body(sock, size, block=MIB):
    piece = b"x" * block
    while size > 0:
        sock.sendall(piece[:size])
        size -= block


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def half_sent(live, method, path, headers, size=BIG):
    """Send the headers and half the body; the socket (the rest unsent)."""
    sock = live.connect(timeout=20)
    send_head(sock, method, path, headers, size)
    send_body(sock, size // 2)
    time.sleep(0.3)  # the server's network thread has had the bytes
    return sock


def finish(sock, size=BIG):
    send_body(sock, size - size // 2)
    try:
        return read_response(sock)
    finally:
        sock.close()


def test_an_anonymous_webdav_put_is_dropped_as_it_arrives_and_answered_401(
        live, alice, tmpdir_seen):
    sock = half_sent(live, "PUT", "/dav/files/alice/big.bin", {})
    assert parked_files(tmpdir_seen) == 0
    status, headers, body = finish(sock)
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic")
    _, basic = alice
    sock = live.connect()
    send_request(sock, "GET", "/dav/files/alice/big.bin", {"Authorization": basic})
    assert read_response(sock)[0] == 404  # nothing was stored
    sock.close()


def test_a_wrong_app_password_is_dropped_too_and_counts_as_one_failed_login(
        live, alice, tmpdir_seen, caplog):
    wrong = "Basic " + base64.b64encode(b"alice:not-the-password").decode()
    sock = half_sent(live, "PUT", "/dav/files/alice/big.bin", {"Authorization": wrong})
    assert parked_files(tmpdir_seen) == 0
    with caplog.at_level(logging.WARNING, logger="sync"):
        status, _, _ = finish(sock)
    assert status == 401
    # One failed login logged for the name (by the gate), not two.
    failed = [r for r in caplog.records if "failed WebDAV login" in r.getMessage()]
    assert len(failed) == 1 and "for user alice" in failed[0].getMessage()


def test_an_app_password_put_is_taken_in_whole_and_stored(live, alice, tmpdir_seen):
    _, basic = alice
    sock = half_sent(live, "PUT", "/dav/files/alice/big.bin", {"Authorization": basic})
    assert parked_files(tmpdir_seen) == 1  # waitress holds the body it is receiving
    status, _, body = finish(sock)
    assert status == 201, body.decode(errors='replace')[-1500:]
    sock = live.connect()
    send_request(sock, "GET", "/dav/files/alice/big.bin", {"Authorization": basic,
                                                     "Range": "bytes=0-0"})
    status, headers, body = read_response(sock)
    sock.close()
    assert status == 206 and headers["content-range"] == f"bytes 0-0/{BIG}" and body == b"x"


def test_an_api_chunk_without_a_token_is_dropped_and_answered_401_json(live, tmpdir_seen):
    size = 4 * MIB
    sock = half_sent(live, "PUT", "/api/v1/sync/upload/some-id/chunks/0",
                     {"Authorization": "Bearer not-a-token"}, size)
    assert parked_files(tmpdir_seen) == 0
    status, _, body = finish(sock, size)
    assert status == 401 and b'"code": "unauthorized"' in body


def test_an_api_chunk_with_a_token_reaches_the_app_with_its_body(live, alice, tmpdir_seen):
    token, _ = alice
    size = 4 * MIB
    sock = half_sent(live, "PUT", "/api/v1/sync/upload/some-id/chunks/0",
                     {"Authorization": f"Bearer {token}"}, size)
    assert parked_files(tmpdir_seen) == 1
    status, _, body = finish(sock, size)
    assert status == 404 and b"No upload session" in body, body  # authenticated: the app looked


def test_a_web_upload_with_a_session_cookie_is_taken_and_without_one_dropped(
        live, tmpdir_seen):
    from sync.web import sessions

    user = auth.ensure_user(live.rt, "alice")
    cookie = sessions.open_session(live.rt, user.id)
    size = 2 * MIB
    sock = half_sent(live, "PUT", "/files/upload/some-id/chunks/0",
                     {"Cookie": f"{sessions.COOKIE}={cookie}"}, size)
    assert parked_files(tmpdir_seen) == 1
    finish(sock, size)
    sock = half_sent(live, "PUT", "/files/upload/some-id/chunks/0",
                     {"Cookie": f"{sessions.COOKIE}=forged"}, size)
    assert parked_files(tmpdir_seen) == 0
    finish(sock, size)


def test_expect_100_continue_without_credentials_is_answered_at_once_and_closed(live):
    sock = live.connect()
    send_head(sock, "PUT", "/dav/files/alice/big.bin", {"Expect": "100-continue"}, BIG)
    status, headers, _ = read_response(sock)  # no body sent: no "100 Continue" first
    assert status == 401
    assert headers.get("connection") == "close"
    sock.settimeout(5)
    assert sock.recv(1) == b""  # closed: what the client sends next is never parsed
    sock.close()


def test_a_chunked_body_without_credentials_is_dropped(live, tmpdir_seen):
    sock = live.connect(timeout=20)
    send_head(sock, "PUT", "/dav/files/alice/big.bin", {"Transfer-Encoding": "chunked"})
    piece = b"x" * MIB
    for _ in range(4):
        sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    time.sleep(0.3)
    assert parked_files(tmpdir_seen) == 0
    sock.sendall(b"0\r\n\r\n")
    assert read_response(sock)[0] == 401
    sock.close()


def test_a_client_cannot_mark_its_own_request_as_dropped(live, alice):
    token, _ = alice
    sock = live.connect()
    send_request(sock, "GET", "/api/v1/sync/devices",
            {"Authorization": f"Bearer {token}", "Sync-Body-Dropped": "1"})
    assert read_response(sock)[0] == 200
    sock.close()


def test_small_bodies_need_no_credentials_before_the_app(live):
    sock = live.connect()
    body = b'{"username": "nobody", "password": "' + b"p" * (bodygate.SMALL_BODY - 100) + b'"}'
    send_request(sock, "POST", "/api/v1/auth/login", {"Content-Type": "application/json"}, body)
    assert read_response(sock)[0] == 401  # the app checked the password
    sock.close()


def test_an_anonymous_body_over_the_largest_limit_is_413_without_reading_it(live):
    sock = live.connect()
    send_head(sock, "PUT", "/api/v1/sync/upload/x/chunks/0", {},
              live.server.adj.max_request_body_size + 1)
    status, _, _ = read_response(sock)
    assert status == 413
    sock.close()


def test_parked_anonymous_bodies_use_no_disk_while_the_server_answers_others(
        live, alice, tmpdir_seen):
    token, _ = alice
    socks = [half_sent(live, "PUT", f"/dav/files/alice/f{i}.bin", {}, 8 * MIB) for i in range(6)]
    try:
        assert parked_files(tmpdir_seen) == 0
        probe = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        send_request(probe, "GET", "/api/v1/sync/devices", {"Authorization": f"Bearer {token}"})
        assert read_response(probe)[0] == 200
        probe.close()
    finally:
        threads = [threading.Thread(target=finish, args=(s, 8 * MIB)) for s in socks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)

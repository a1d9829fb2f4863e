"""Clients that hold connections without finishing a request (SPEC §6):
slow headers must not lock out everyone else. Figures for the same
scenarios, against waitress's defaults, are in bench/attacks.py."""


from sync import httpserver
from sync.config import Config

from .helpers import get_once

SLOW = 200  # connections that send their headers a byte at a time


def test_the_server_takes_far_more_connections_than_waitress_by_default(server):
    assert server.server.adj.connection_limit >= 1000 > SLOW
    assert server.server.adj.asyncore_use_poll  # select() stops at descriptor 1024


def test_two_hundred_slow_header_senders_do_not_lock_out_a_normal_request(server):
    """With waitress's default connection limit (100) the server stops
    accepting after 100 of these and the last request is never answered."""
    slow = []
    try:
        for i in range(SLOW):
            sock = server.connect()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(sock)
        for sock in slow:  # a byte each, as a trickler sends every ten seconds
            sock.sendall(b"a")
        status, _, body = get_once(server, "/healthz", timeout=10)
        assert status == 200 and b"ok" in body
        # The slow ones are still open and waiting, not dropped to make room.
        assert len(server.server._map) > SLOW
    finally:
        for sock in slow:
            sock.close()


def test_the_connection_limit_is_lowered_to_fit_the_open_files_limit(tmp_path):
    config = Config.build(data_dir=str(tmp_path / "d"), max_connections=5000)
    assert httpserver.connection_limit(config, budget=lambda wanted: wanted) == 5000
    limit = httpserver.connection_limit(config, budget=lambda wanted: 2048)
    assert limit * httpserver.FDS_PER_CONNECTION <= 2048 - httpserver.FDS_SPARE
    assert 500 < limit < 5000

"""The real server over HTTP in this process: waitress with the settings
``app.py`` uses (``sync.httpserver``), a free port, and raw sockets to play
clients that misbehave."""

import logging
import socket
import threading

from sync import httpserver
from sync.config import Config
from sync.wsgi import create_app, open_runtime


class LiveServer:
    """``create_app`` served by ``sync.httpserver.create_server`` until ``stop()``."""

    def __init__(self, data_dir, waitress_overrides=None, **settings):
        settings.setdefault("access_log", False)
        settings.setdefault("fsync", False)
        self.config = Config.build(data_dir=str(data_dir), host="127.0.0.1", port=0,
                                   **settings)
        self.rt = open_runtime(self.config)
        overrides = dict(asyncore_loop_timeout=0.1)
        overrides.update(waitress_overrides or {})
        self.server = httpserver.create_server(create_app(self.rt), self.config, **overrides)
        self.port = int(self.server.effective_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self.stopping:
                raise

    def connect(self, timeout=10):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock

    def stop(self):
        self.stopping = True
        self.server.logger.setLevel(logging.FATAL)
        while self.server._map:
            for channel in list(self.server._map.values()):
                channel.handle_close()
        self.server.task_dispatcher.shutdown()
        self.thread.join(5)


def request(sock, method, path, headers=None, body=b""):
    """Send one HTTP/1.1 request on ``sock``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def read_response(sock):
    """(status, headers, body) of one response read from ``sock``."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError(f"closed after {buf!r}")
        buf += more
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        more = sock.recv(65536)
        if not more:
            break
        rest += more
    return status, headers, rest[:length]


def get(server, path, headers=None, timeout=10):
    """One request on a new connection: (status, headers, body)."""
    with server.connect(timeout) as sock:
        request(sock, "GET", path, dict(headers or {}, Connection="close"))
        return read_response(sock)

"""End-to-end harness for the sync client: client folders in temp dirs,
driven through the client's own command line, against the real server in a
thread (``helpers.Server``). The ``server`` and ``laptops`` fixtures
(``conftest.py``) build on it."""

import os
import threading
import unicodedata

from sync.client import cli
from sync.client.api import Api

from .helpers import sha256

SMALL_CHUNK = 256 * 1024


class CountingApi(Api):
    """The client's HTTP layer, counting chunk PUTs in a list shared by the
    per-thread clones, and failing every PUT after ``fail_after`` of them."""

    def __init__(self, *args, puts=None, fail_after=None, lock=None, **kw):
        super().__init__(*args, **kw)
        self.puts = puts if puts is not None else []
        self.fail_after = fail_after
        self.lock = lock or threading.Lock()

    def clone(self):
        return type(self)(self.server, self.token, self.retries, self.backoff, self.sleep,
                           puts=self.puts, fail_after=self.fail_after, lock=self.lock)

    def put_chunk(self, upload_id, index, data):
        with self.lock:
            if self.fail_after is not None and len(self.puts) >= self.fail_after:
                raise ConnectionError("the network went away")
            self.puts.append(index)
        return super().put_chunk(upload_id, index, data)


def folder_api(folder, cls=CountingApi, **kw):
    from sync.client.state import load_config
    config = load_config(str(folder))
    return cls(config["server"], config["token"], sleep=lambda s: None, **kw)


def init(server, folder, name, token=None):
    code = cli.main(["init", str(folder), "--server", server.url,
                     "--token", token or server.user_token(), "--device-name", name])
    assert code == 0


def sync(folder, *args, api=None):
    return cli.main(["sync", str(folder), "--quiet", "--chunk-size", str(SMALL_CHUNK), *args],
                    api=api)


def write(folder, rel, data, mtime=None):
    full = os.path.join(str(folder), *rel.split("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(full, (mtime, mtime))
    return full


def tree(folder):
    """{relative path: sha256} of every file under ``folder`` but ``.sync``."""
    found = {}
    for root, dirs, files in os.walk(str(folder)):
        if root == str(folder) and ".sync" in dirs:
            dirs.remove(".sync")
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, str(folder)).replace(os.sep, "/")
            with open(full, "rb") as f:
                found[unicodedata.normalize("NFC", rel)] = sha256(f.read())
    return found


def read(folder, rel):
    with open(os.path.join(str(folder), *rel.split("/")), "rb") as f:
        return f.read()

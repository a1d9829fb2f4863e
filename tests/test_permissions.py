"""The data directory is 0700 and every file in it 0600, whatever the
umask (SPEC §2): the database holds password hashes and every user's paths."""

import logging
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
import webtest

from sync import auth
from sync.config import Config
from sync.wsgi import create_app, open_runtime

from . import seed
from .helpers import Api, start_upload, upload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(root):
    """{relative path: mode} of everything under ``root`` (and root itself)."""
    found = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, root)] = stat.S_IMODE(os.lstat(full).st_mode)
    return found


def assert_private(root):
    for name, mode in modes(root).items():
        assert not mode & 0o077, (name, oct(mode))


def test_a_new_data_directory_is_private_under_an_open_umask(tmp_path, open_umask):
    config = Config.build(data_dir=str(tmp_path / "data"), access_log=False)
    rt = open_runtime(config)
    api = Api(webtest.TestApp(create_app(rt)), auth.issue_user_token(rt, "alice"))
    device = api.post("/devices", {"name": "Laptop"}).json
    # A blob and its folder, the WAL, and a spool file still open.
    upload(api.as_(device["token"]), "books/a.txt", b"some bytes")
    start_upload(api.as_(device["token"]), "books/b.txt", b"other bytes")
    found = modes(config.data_dir)
    assert found["."] == 0o700
    for name in ("sync.sqlite3", "sync.sqlite3-wal", "sync.sqlite3-shm", "secret.key"):
        assert found[name] == 0o600, name
    assert found["blobs"] == found["spool"] == 0o700
    assert_private(config.data_dir)


def test_the_server_makes_everything_private_under_an_open_umask(tmp_path):
    """The real command line, started with umask 000: the lock file, the
    database and a backup it writes are private too."""
    data, dest = tmp_path / "data", tmp_path / "backup"
    env = dict(os.environ)
    for args in (["token", "alice", "--create"], ["backup", str(dest)]):
        subprocess.run(["sh", "-c", 'umask 000 && exec "$@"', "sh", sys.executable, "app.py",
                        "--data-dir", str(data), *args], check=True, cwd=ROOT, env=env,
                       capture_output=True, timeout=120)
    assert_private(data)
    assert_private(dest)


def test_existing_files_others_could_read_are_tightened_at_start(tmp_path, open_umask, caplog):
    data = tmp_path / "data"
    config = seed.config_for(data)
    rt = open_runtime(config)
    seed.put(rt, "alice", "books/a.txt", b"some bytes")  # a blob file 0644
    # As an older version left it: no mark that the blob files were checked.
    con = sqlite3.connect(data / "sync.sqlite3")
    with con:
        con.execute("DELETE FROM meta WHERE key = 'private_blobs'")
    con.close()
    os.chmod(data, 0o755)
    os.chmod(data / "sync.sqlite3", 0o644)
    os.chmod(data / "blobs", 0o755)
    (data / "spool" / "0123456789abcdef").write_bytes(b"")
    os.chmod(data / "spool" / "0123456789abcdef", 0o666)
    with caplog.at_level(logging.WARNING, logger="sync"):
        open_runtime(config)
    assert_private(data)
    # The data dir, the database, blobs/, the spool file, and the blob (and
    # its folder) the test kit wrote without a mode.
    assert any("took group and other permissions away from 6 file(s)" in r.getMessage()
               for r in caplog.records), caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sync"):
        open_runtime(config)
    assert "permissions" not in caplog.text

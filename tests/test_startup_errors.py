"""``python app.py`` refuses to start with one clear line, no traceback and
a non-zero exit: data directory not writable, port in use, a database from
a newer version, a secret file others can read, another server running."""

import os
import shutil
import socket
import sqlite3
import subprocess
import sys

import pytest

from sync import datadir
from sync.wsgi import open_runtime

from . import seed
from .helpers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(data_dir, port=None):
    """Run the server; it must give up at once (a server that starts is
    killed by the timeout and fails the test)."""
    return subprocess.run(
        [sys.executable, "app.py", "--data-dir", str(data_dir), "--port", str(port or free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=20)


def refused(result, *words):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("app.py: error: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def initialised(tmp_path):
    """A data directory as a first start leaves it (database, secret key)."""
    data = tmp_path / "data"
    open_runtime(seed.config_for(data))
    return data


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory this process cannot write in: mode 0555, or for root
    (whom modes do not stop) the immutable attribute."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)],
                                                    capture_output=True).returncode:
        pytest.skip("running as root on a filesystem without chattr +i")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_data_dir_not_writable(read_only_dir):
    refused(start(read_only_dir), "not writable", str(read_only_dir))
    assert os.listdir(read_only_dir) == []


def test_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        refused(start(tmp_path / "data", port), "cannot listen", str(port))


def test_database_from_a_newer_version(tmp_path):
    data = initialised(tmp_path)
    conn = sqlite3.connect(str(data / "sync.sqlite3"), isolation_level=None)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    refused(start(data), "newer version", "schema 99")


def test_secret_file_others_can_read(tmp_path):
    data = initialised(tmp_path)
    os.chmod(data / "secret.key", 0o644)
    refused(start(data), "secret.key", "chmod 600")


def test_another_server_on_the_same_data_dir(tmp_path):
    data = initialised(tmp_path)
    lock = datadir.lock_data_dir(seed.config_for(data))
    try:
        refused(start(data), f"pid {os.getpid()}", "stop it first")
    finally:
        os.close(lock)

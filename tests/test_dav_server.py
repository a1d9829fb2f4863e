"""WebDAV against the real server (``python app.py``): a PUT killed with
SIGKILL leaves nothing partial, and the clients people use work: the
``litmus`` suite (its basic, copymove, props, locks and http sections) and
``rclone`` (owncloud vendor: a tree up and back, ``check`` clean, mtimes
kept). litmus and rclone come from Debian's packages (``.ci/run`` installs
them when it runs as root); without them those tests are skipped."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
import requests

from sync import auth
from sync.config import Config
from sync.runtime import Runtime
from sync.wsgi import open_runtime

from .helpers import SECRET, sha256

pytestmark = pytest.mark.slow


@pytest.fixture
def password(tmp_path):
    """An app password of a device of alice, made before the server starts."""
    rt = open_runtime(Config.build(data_dir=str(tmp_path / "data"), jwt_secret=SECRET,
                                   access_log=False))
    from sync import devices
    auth.add_user(rt, "alice", "account-password")
    _, _, secret = devices.app_password_for(rt, "alice", "Client")
    return secret


def root_url(process):
    return process.base.rsplit("/api/v1/sync", 1)[0] + "/dav/files/alice/"


def test_a_put_killed_midway_leaves_nothing_partial(process, password, tmp_path):
    process.start()
    url = root_url(process)
    data = os.urandom(48 * 1024 * 1024)
    credentials = base64.b64encode(f"alice:{password}".encode()).decode()
    # Killed while the body arrives, then while the server streams it into
    # its spool file (or moves it into the blob store).
    for sent, wait in ((len(data) // 2, 0.05), (len(data), 0.15)):
        host, port = url.split("//")[1].split("/")[0].split(":")
        head = (f"PUT /dav/files/alice/big.bin HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Basic {credentials}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head + data[:sent])
            time.sleep(wait)
            process.kill()
        process.start()
        url = root_url(process)
        got = requests.get(url + "big.bin", auth=("alice", password), timeout=30)
        assert got.status_code == 404 or got.content == data
        listing = requests.request("PROPFIND", url, auth=("alice", password),
                                   headers={"Depth": "1"}, timeout=30)
        assert listing.status_code == 207
        if got.status_code == 404:
            assert b"big.bin" not in listing.content
    spool = tmp_path / "data" / "spool"
    deadline = time.monotonic() + 60  # the clean-up at start-up takes the leftovers
    while os.listdir(spool) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.listdir(spool) == []
    done = requests.put(url + "big.bin", data=data, auth=("alice", password), timeout=60)
    assert done.status_code in (201, 204)
    assert requests.get(url + "big.bin", auth=("alice", password), timeout=30).content == data


# -- litmus ------------------------------------------------------------------------------

LITMUS_SECTIONS = ("basic", "copymove", "props", "locks", "http")


_tried_apt = set()


def need(tool):
    """Skip unless ``tool`` (a Debian package of the same name) is installed;
    as root with apt-get, install it first (once per run)."""
    if shutil.which(tool) is None and tool not in _tried_apt and os.geteuid() == 0 \
            and shutil.which("apt-get"):
        _tried_apt.add(tool)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", tool]
        if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True,
                           timeout=600)
            subprocess.run(install, env=env, capture_output=True, timeout=600)
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed and could not be (the Debian package "
                    f"'{tool}': apt-get install {tool}, as root)")


def test_litmus_passes_basic_copymove_props_locks_and_http(process, password, tmp_path):
    need("litmus")
    process.start()
    result = subprocess.run(["litmus", root_url(process), "alice", password],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TESTS=" ".join(LITMUS_SECTIONS)))
    summaries = dict(re.findall(r"<- summary for `(\w+)': of \d+ tests run: (.*)",
                                result.stdout))
    assert set(summaries) == set(LITMUS_SECTIONS), result.stdout[-3000:]
    for section, summary in summaries.items():
        assert re.match(r"(\d+) passed, 0 failed", summary), (section, summary,
                                                              result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-3000:]


# -- rclone ------------------------------------------------------------------------------

def make_tree(root):
    files = {
        "Bücher/Dune – Frank Herbert.epub": os.urandom(1000),
        "Bücher/日本語/ノート.txt": "こんにちは\n".encode(),
        "Musik/Ελληνικά/song.flac": os.urandom(6 * 1024 * 1024 + 123),
        "empty.txt": b"",
        "a/b/c/d/deep.txt": b"deep",
    }
    for i, (path, data) in enumerate(sorted(files.items())):
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        os.utime(full, (1600000000 + i * 3600, 1600000000 + i * 3600))
    return files


def rclone(*args, password, url, cwd):
    obscured = subprocess.run(["rclone", "obscure", password], capture_output=True,
                              text=True, check=True).stdout.strip()
    env = dict(os.environ, RCLONE_CONFIG_DAV_TYPE="webdav", RCLONE_CONFIG_DAV_URL=url,
               RCLONE_CONFIG_DAV_VENDOR="owncloud", RCLONE_CONFIG_DAV_USER="alice",
               RCLONE_CONFIG_DAV_PASS=obscured, RCLONE_CONFIG=os.devnull)
    return subprocess.run(["rclone", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def mtimes(root):
    return {str(p.relative_to(root)): int(p.stat().st_mtime)
            for p in root.rglob("*") if p.is_file()}


def test_rclone_syncs_a_tree_up_and_back_with_mtimes(process, password, tmp_path):
    need("rclone")
    process.start()
    url = root_url(process)
    up, down = tmp_path / "up", tmp_path / "down"
    files = make_tree(up)
    for args in (("sync", str(up), "dav:library"), ("check", str(up), "dav:library"),
                 ("sync", "dav:library", str(down)), ("check", str(up), str(down))):
        result = rclone(*args, password=password, url=url, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr[-3000:])
        if args[0] == "check":
            assert "0 differences found" in result.stderr, result.stderr
    for path, data in files.items():
        assert (down / path).read_bytes() == data
    assert mtimes(down) == mtimes(up)
    listing = rclone("lsjson", "-R", "--files-only", "dav:library", password=password, url=url,
                     cwd=tmp_path)
    remote = {item["Path"]: item for item in json.loads(listing.stdout)}
    assert set(remote) == set(files)
    assert {p: item["Size"] for p, item in remote.items()} == {p: len(d) for p, d in
                                                               files.items()}
    # What rclone put is in the library, with its mtimes, for every device.
    rt = Runtime(config=Config.build(data_dir=str(tmp_path / "data"), jwt_secret=SECRET),
                 secret=SECRET.encode(), db_id="")
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + auth.issue_user_token(rt, "alice")
    [device] = session.get(process.base + "/devices", timeout=10).json()["devices"]
    changes = session.get(process.base + "/changes", headers={"X-Device-Id": device["id"]},
                          timeout=10).json()["changes"]
    library = {c["path"]: (c["sha256"], c["mtime"], c["device_id"]) for c in changes
               if c["op"] == "put"}
    assert library == {"library/" + p: (sha256(d), int((up / p).stat().st_mtime), device["id"])
                       for p, d in files.items()}

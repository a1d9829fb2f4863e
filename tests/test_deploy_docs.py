"""The deployment guide and units, checked for what broke a Pi user: the
system user is `syncserver` everywhere (Debian already has a `sync` user,
uid 4, without a group), one data-directory path, no made-up clone URL, and
the guide goes on to a connected laptop and a home network without a
public name."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "docs", "deploy")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _docs():
    paths = glob.glob(os.path.join(DEPLOY, "*")) + [os.path.join(ROOT, "README.md")]
    return {os.path.relpath(p, ROOT): _read(p) for p in paths if os.path.isfile(p)}


def test_the_service_user_is_syncserver_everywhere():
    for name, text in _docs().items():
        for pattern in (r"User=sync(?![\w-])", r"Group=sync(?![\w-])", r"-u sync(?![\w-])",
                        r"-[og] sync(?![\w-])", r"nologin sync(?![\w-])"):
            assert not re.search(pattern, text), (name, pattern)
    for unit in ("sync-server.service", "sync-backup.service"):
        text = _read(os.path.join(DEPLOY, unit))
        assert "User=syncserver\nGroup=syncserver\n" in text
    guide = _read(os.path.join(DEPLOY, "raspberry-pi.md"))
    assert "useradd --system --user-group --home-dir /srv/sync --shell /usr/sbin/nologin " \
           "syncserver" in guide


def test_one_data_directory_path():
    for name, text in _docs().items():
        assert not re.search(r"(--data-dir|SYNC_DATA_DIR=)\s*/srv/sync(?!/data)", text), name


def test_no_made_up_clone_url():
    for name, text in _docs().items():
        assert "example.org/sync-server" not in text, name


def test_the_guide_goes_on_to_a_connected_laptop_and_a_home_network():
    guide = _read(os.path.join(DEPLOY, "raspberry-pi.md"))
    for words in ("app.py user add alice --data-dir /srv/sync/data",
                  "app.py token alice --ttl 1h --data-dir /srv/sync/data",
                  "pipx install .", "sync-client init ~/Library --server",
                  "sync-client sync ~/Library", "raspberrypi.local",
                  "Environment=SYNC_HOST=0.0.0.0",
                  "tls internal", "--ca-bundle", "sudo .venv/bin/pip install -e ."):
        assert words in guide, words
    readme = _read(os.path.join(ROOT, "README.md"))
    assert "sudo git pull && sudo .venv/bin/pip install -e ." in readme
    assert "pipx install ." in readme and "sync-client --help" in readme

"""Looking after devices and folders from the client: ``devices`` lists and
removes them, ``init --reattach`` brings back a folder whose device was
removed without sending anything again, ``config`` points a folder at a new
server address, and ``--server`` forgives a trailing API path."""

import json
import os

import pytest

from sync.client import cli
from sync.client.cli import server_url

from .client_harness import CountingApi, folder_api, read, sync, tree, write


def _devices(folder):
    return {d["name"]: d for d in folder_api(folder).request("GET", "/devices").json()["devices"]}


def test_devices_lists_last_seen_and_pending_and_removes_one(laptops, server, capsys):
    a, b = laptops
    api = CountingApi(server.url, server.user_token(), sleep=lambda s: None)
    api.register_device("Kobo", "ereader")
    write(a, "x.txt", b"x")
    assert sync(a) == 0 and sync(a) == 0
    capsys.readouterr()
    assert cli.main(["devices", str(a)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "PLATFORM", "LAST", "SEEN", "PENDING", "ID"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert rows["Kobo"].split()[1:4] == ["ereader", "never", "1"]
    [here] = [line for line in out if line.endswith("(this folder)")]
    assert here.startswith("Laptop A ") and " UTC " in here

    assert cli.main(["devices", str(a), "remove", "Kobo"]) == 1
    assert "needs a user token" in capsys.readouterr().err
    assert cli.main(["devices", str(a), "remove", "Laptop A",
                     "--token", server.user_token()]) == 1
    assert "this folder's own device" in capsys.readouterr().err
    assert cli.main(["devices", str(a), "remove", "Nook", "--token", server.user_token()]) == 1
    assert "no device 'Nook'" in capsys.readouterr().err
    assert cli.main(["devices", str(a), "remove", "Kobo", "--token", server.user_token()]) == 0
    assert "removed device 'Kobo'" in capsys.readouterr().out
    assert set(_devices(a)) == {"Laptop A", "Laptop B"}


def test_a_folder_whose_device_was_removed_is_reattached_without_sending_anything(
        laptops, server, capsys):
    a, b = laptops
    write(a, "big.bin", os.urandom(600 * 1024))
    write(a, "notes.txt", b"n")
    assert sync(a) == 0 and sync(b) == 0
    assert cli.main(["devices", str(a), "remove", "Laptop B",
                     "--token", server.user_token()]) == 0
    capsys.readouterr()
    assert sync(b) == 1
    err = capsys.readouterr().err
    assert "refused the token of this folder's device (the device was removed" in err
    assert "init FOLDER --reattach --server URL --token USER_TOKEN" in err
    assert cli.main(["init", str(b), "--server", server.url,
                     "--token", server.user_token()]) == 1
    assert "--reattach" in capsys.readouterr().err

    write(a, "later.txt", b"made while b was detached")
    assert sync(a) == 0
    assert cli.main(["init", str(b), "--reattach", "--server", server.url,
                     "--token", server.user_token()]) == 0
    assert "nothing is sent again" in capsys.readouterr().out
    assert set(_devices(a)) == {"Laptop A", "Laptop B"}   # the same name, a new device
    api = folder_api(b)
    assert sync(b, api=api) == 0
    assert api.puts == []                                 # nothing uploaded again
    assert tree(a) == tree(b) and read(b, "later.txt") == b"made while b was detached"


def test_reattach_removes_the_old_device_when_it_still_exists(laptops, server):
    a, b = laptops
    old = json.loads((b / ".sync" / "config.json").read_text())["device_id"]
    os.remove(b / ".sync" / "token")                      # the token was lost
    assert cli.main(["init", str(b), "--reattach", "--server", server.url,
                     "--token", server.user_token()]) == 0
    ids = {d["id"] for d in _devices(a).values()}
    assert old not in ids and len(ids) == 2
    assert sync(b) == 0


def test_init_reattach_needs_a_sync_folder(server, tmp_path, capsys):
    assert cli.main(["init", str(tmp_path / "new"), "--reattach", "--server", server.url,
                     "--token", server.user_token()]) == 1
    assert "not a sync folder yet: run init without --reattach" in capsys.readouterr().err


def test_config_changes_the_server_address_and_shows_it(laptops, server, capsys):
    a, _ = laptops
    assert cli.main(["config", str(a)]) == 0
    assert f"server:    {server.url}" in capsys.readouterr().out
    assert cli.main(["config", str(a), "--server", "http://127.0.0.1:1/api/v1/sync/"]) == 0
    assert json.loads((a / ".sync" / "config.json").read_text())["server"] == \
        "http://127.0.0.1:1"
    assert "token" not in json.loads((a / ".sync" / "config.json").read_text())
    assert cli.main(["config", str(a), "--server", "127.0.0.1:9"]) == 1
    assert "try http://127.0.0.1:9" in capsys.readouterr().err
    assert cli.main(["config", str(a), "--server", server.url + "/api/v1"]) == 0
    assert sync(a) == 0


def test_ca_bundle_is_kept_and_used(laptops, tmp_path, capsys):
    a, _ = laptops
    bundle = tmp_path / "home-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert cli.main(["config", str(a), "--ca-bundle", str(tmp_path / "missing.pem")]) == 1
    assert "--ca-bundle: no file" in capsys.readouterr().err
    assert cli.main(["config", str(a), "--ca-bundle", str(bundle)]) == 0
    from sync.client.engine import Engine
    engine = Engine(str(a))
    try:
        assert engine.api.session.verify == str(bundle)
        assert engine.api.clone().session.verify == str(bundle)
    finally:
        engine.close()
    assert cli.main(["config", str(a), "--ca-bundle", ""]) == 0
    assert "ca_bundle" not in json.loads((a / ".sync" / "config.json").read_text())


@pytest.mark.parametrize("typed, url", [
    ("http://pi:8080/api/v1/sync", "http://pi:8080"),
    ("http://pi:8080/api/v1/", "http://pi:8080"),
    ("https://sync.example.net/api/sync", "https://sync.example.net"),
    ("http://pi:8080/sync/", "http://pi:8080/sync"),
    ("http://raspberrypi.local:8080", "http://raspberrypi.local:8080"),
])
def test_a_trailing_api_path_is_dropped(typed, url):
    assert server_url(typed) == url


@pytest.mark.parametrize("typed, hint", [("pi:9000", "http://pi:9000"),
                                         ("raspberrypi.local", "http://raspberrypi.local:8080")])
def test_the_missing_scheme_hint_keeps_the_port(typed, hint):
    with pytest.raises(ValueError, match=f"try {hint}"):
        server_url(typed)


def test_a_conflict_id_prefix_must_be_unique(laptops, capsys):
    a, b = laptops
    for name in ("one.txt", "two.txt"):
        write(a, name, b"base")
    assert sync(a) == 0 and sync(b) == 0
    for name in ("one.txt", "two.txt"):
        write(a, name, b"edited on a")
        write(b, name, b"edited on b")
    assert sync(a) == 0 and sync(b) == 1
    conflicts = folder_api(b).conflicts()
    assert len(conflicts) == 2
    capsys.readouterr()
    assert cli.main(["resolve", str(b), "", "keep_server"]) == 1
    assert "is the start of 2 conflicts' ids" in capsys.readouterr().err
    assert len(folder_api(b).conflicts()) == 2            # nothing resolved
    first = conflicts[0]["id"]
    prefix = next(first[:n] for n in range(1, 25)
                  if not conflicts[1]["id"].startswith(first[:n]))
    assert cli.main(["resolve", str(b), prefix, "keep_server"]) == 0
    assert [c["id"] for c in folder_api(b).conflicts()] == [conflicts[1]["id"]]
    assert cli.main(["resolve", str(b), conflicts[1]["id"], "keep_client"]) == 0
    assert sync(b) == 0 and sync(a) == 0 and tree(a) == tree(b)

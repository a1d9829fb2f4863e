"""The client never leaks or deletes what it should not, end to end through
the real client and the real server: a sync folder inside another, a case
clash, abbreviated flags, ``status`` after a server restore, and a
resolution made on the device that did not raise the conflict. Every
scenario ends with the two folders byte-identical."""

import os

import pytest

from sync import backup, cliargs
from sync import cli as server_cli
from sync.client import cli

from .client_harness import folder_api, init, read, sync, tree, write
from .helpers import Server


def _identical(a, b):
    assert sync(a) == 0 and sync(b) == 0 and sync(a) == 0
    assert tree(a) == tree(b)


def _paths_on_server(folder):
    return {c["path"] for c in folder_api(folder).changes()["changes"]}


# 1. A sync folder inside another one

def test_init_refuses_a_folder_inside_or_around_a_sync_folder(laptops, server, capsys):
    a, _ = laptops
    capsys.readouterr()
    assert cli.main(["init", str(a / "sub"), "--server", server.url,
                     "--token", server.user_token()]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sync: {a / 'sub'} is inside the sync folder {a}:")
    assert len(err.splitlines()) == 1
    assert cli.main(["init", str(a.parent), "--server", server.url,
                     "--token", server.user_token()]) == 1
    assert f"holds the sync folder {a}" in capsys.readouterr().err
    assert not os.path.exists(a / "sub" / ".sync") and not os.path.exists(a.parent / ".sync")
    names = [d["name"] for d in folder_api(a).request("GET", "/devices").json()["devices"]]
    assert sorted(names) == ["Laptop A", "Laptop B"]     # no device registered for them


def test_a_sync_folder_moved_inside_another_leaks_nothing_and_does_not_recurse(
        laptops, server, tmp_path):
    a, b = laptops
    inner = tmp_path / "phone"
    init(server, inner, "Phone")
    write(inner, "a.txt", b"from the phone")
    assert sync(inner) == 0
    write(a, "mine.txt", b"a's own")
    os.rename(inner, a / "phone")              # the user moves it in afterwards
    for _ in range(3):
        assert sync(a) == 0
        assert sync(a / "phone") == 0
    on_server = _paths_on_server(a)
    assert on_server == {"a.txt", "mine.txt"}
    assert not any(".sync" in p.split("/") or p.startswith("phone/") for p in on_server)
    assert set(tree(a / "phone")) == {"a.txt", "mine.txt"}   # it syncs itself, once
    os.rename(a / "phone", inner)
    _identical(a, b)
    assert set(tree(a)) == {"a.txt", "mine.txt"}


def test_a_sync_dir_on_the_server_is_never_fetched(laptops):
    import hashlib
    a, b = laptops
    api = folder_api(a)
    data = b"a stolen token"
    session = api.create_upload("notes/.sync/token", len(data),
                                hashlib.sha256(data).hexdigest(), None)
    api.put_chunk(session["id"], 0, data)
    assert api.complete_upload(session["id"])["status"] == "applied"
    write(a, "notes/plan.txt", b"plan")
    _identical(a, b)
    assert set(tree(b)) == {"notes/plan.txt"}
    assert not os.path.exists(b / "notes" / ".sync")


# 2. A case clash

def test_a_case_clash_says_what_clashed_and_never_deletes_the_local_file(laptops, capsys):
    from sync.client.engine import Engine, Options
    a, b = laptops
    write(a, "docs/README.txt", b"the upper one")
    write(a, "docs/readme.txt", b"the lower one")
    import io
    out = io.StringIO()
    engine = Engine(str(a), options=Options(), out=out)
    summary = engine.run()
    engine.close()
    assert summary.new_conflicts == 1 and summary.open_conflicts == 1
    [conflict] = folder_api(a).conflicts()
    clashed, other = conflict["path"], ({"docs/README.txt", "docs/readme.txt"}
                                        - {conflict["path"]}).pop()
    assert f"conflict: {clashed} differs only by case from {other} on the server" \
        in out.getvalue()

    capsys.readouterr()
    assert cli.main(["conflicts", str(a)]) == 0
    listing = capsys.readouterr().out
    assert f"{clashed} and {other} differ only by case" in listing

    assert cli.main(["resolve", str(a), conflict["id"][:6], "keep_server"]) == 0
    said = capsys.readouterr().out
    assert f"keeps {clashed} here, unsynced (the server keeps {other})" in said
    assert "deleted here" not in said
    before = read(a, clashed)
    sync(a)
    assert read(a, clashed) == before          # never deleted by the resolution
    assert "0 up, 0 down, 0 deleted here" in capsys.readouterr().out
    [again] = folder_api(a).conflicts()        # still there, so it says so again
    assert again["kind"] == "case_clash" and again["path"] == clashed

    assert cli.main(["resolve", str(a), again["id"], "keep_client"]) == 0
    _identical(a, b)
    assert set(tree(b)) == {"docs/README.txt", "docs/readme.txt"}


# 3. Abbreviated flags

def test_an_abbreviated_safety_flag_is_refused_and_deletes_nothing(laptops, capsys):
    a, b = laptops
    for i in range(10):
        write(a, f"f{i}.txt", b"%d" % i)
    _identical(a, b)
    for i in range(8):
        os.remove(a / f"f{i}.txt")
    capsys.readouterr()
    assert sync(a) == 1
    assert "would delete 8 of 10 files on the server" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        sync(a, "--a")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option --a (did you mean --allow-mass-delete?" in err
    assert len(err.splitlines()) == 1
    assert len(_paths_on_server(a)) == 10 and sync(b) == 0 and len(tree(b)) == 10
    for i in range(8):
        write(a, f"f{i}.txt", b"%d" % i)
    _identical(a, b)


def test_no_parser_of_the_server_or_the_client_takes_abbreviations():
    for parser in (cli.build_parser(), server_cli.build_parser()):
        every = list(cliargs.parsers(parser))
        assert len(every) > 5
        assert all(p.allow_abbrev is False for p in every)


# 4. status after a server restore

def test_status_after_a_server_restore_shows_what_the_pass_then_does(laptops, server,
                                                                     tmp_path, capsys):
    a, b = laptops
    write(a, "docs/before-backup.txt", b"old")
    _identical(a, b)
    backup.backup(server.rt.config, str(tmp_path / "bk"), fsync=False)
    write(a, "docs/after-backup.txt", b"new since the backup")
    _identical(a, b)
    server.stop()
    restored = server.rt.config.__class__.build(data_dir=str(tmp_path / "restored"),
                                                access_log=False, fsync=False)
    backup.restore(restored, str(tmp_path / "bk"), fsync=False)
    again = Server(tmp_path / "restored")
    try:
        for folder in (a, b):
            assert cli.main(["config", str(folder), "--server", again.url]) == 0
        capsys.readouterr()
        assert cli.main(["status", str(a)]) == 0
        status = capsys.readouterr().out
        assert "send     put docs/after-backup.txt" in status
        assert "receive  delete docs/after-backup.txt" not in status
        assert status.startswith("1 to send, 0 to receive")
        assert sync(a) == 0
        assert "1 up, 0 down, 0 deleted here" in capsys.readouterr().out
        assert _paths_on_server(a) == {"docs/before-backup.txt", "docs/after-backup.txt"}
        _identical(a, b)
        assert read(b, "docs/after-backup.txt") == b"new since the backup"
    finally:
        again.stop()


# 5. A resolution from the device that did not raise the conflict

def test_resolving_on_the_other_device_names_versions_by_device_and_the_file(laptops,
                                                                           capsys):
    a, b = laptops
    write(a, "notes/plan.txt", b"base")
    _identical(a, b)
    write(a, "notes/plan.txt", b"edited on a")
    assert sync(a) == 0
    write(b, "notes/plan.txt", b"edited on b")
    assert sync(b) == 1                     # b raised it: b's version is the client's
    [conflict] = folder_api(a).conflicts()
    capsys.readouterr()
    assert cli.main(["conflicts", str(a)]) == 0
    listing = capsys.readouterr().out
    assert "keep_server  keep the server's version: the next sync changes nothing here" \
        in listing
    assert ("keep_client  keep Laptop B's version: the next sync replaces notes/plan.txt "
            "here with Laptop B's version") in listing
    assert "Laptop A (this device)" in listing

    assert cli.main(["resolve", str(a), conflict["id"], "keep_client"]) == 0
    said = capsys.readouterr().out
    first = said.splitlines()[0]
    assert first == (f"{conflict['id']}: keep Laptop B's version of notes/plan.txt; the next "
                     f"sync of {a} replaces notes/plan.txt here with Laptop B's version")
    assert sync(a) == 0
    assert read(a, "notes/plan.txt") == b"edited on b"
    _identical(a, b)

"""The sync client end to end: the real server over HTTP, two client folders
(two laptops), files created, edited, deleted, moved and renamed on one side
appearing on the other; large files in chunks; resumed uploads."""

import os
import unicodedata

import pytest

from sync.client import cli
from sync.client.api import ApiError
from sync.client.engine import Engine, Options

from .client_harness import SMALL_CHUNK, CountingApi, folder_api, init, read, sync, tree, write
from .helpers import sha256


def test_init_registers_a_device_and_keeps_its_token_private(server, tmp_path):
    folder = tmp_path / "lib"
    init(server, folder, "Kobo")
    assert oct(os.stat(folder / ".sync").st_mode & 0o777) == "0o700"
    assert oct(os.stat(folder / ".sync" / "token").st_mode & 0o777) == "0o600"
    devices = folder_api(folder).request("GET", "/devices").json()["devices"]
    assert [d["name"] for d in devices] == ["Kobo"]
    assert cli.main(["init", str(folder), "--server", server.url,
                     "--token", server.user_token()]) != 0


def test_files_travel_both_ways(laptops, capsys):
    a, b = laptops
    write(a, "books/Dune.epub", b"spice" * 1000, mtime=1_700_000_000)
    write(a, "empty.txt", b"")
    write(a, unicodedata.normalize("NFD", "music/Beyoncé.mp3"), b"halo")
    write(a, "deep/er/still/note.md", b"# hi")
    assert sync(a) == 0
    assert sync(b) == 0
    assert tree(b) == tree(a)
    nfc = unicodedata.normalize("NFC", "music/Beyoncé.mp3")
    assert nfc in tree(b)
    assert os.stat(b / "books/Dune.epub").st_mtime == 1_700_000_000
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(b / "books/Dune.epub").st_mode & 0o777 == 0o666 & ~umask

    os.chmod(a / "books/Dune.epub", 0o640)
    write(b, "books/Dune.epub", b"more spice")          # edited
    os.remove(b / "empty.txt")                          # deleted
    os.rename(b / "deep/er/still/note.md", b / "note (renamed).md")   # moved
    os.rename(b / nfc, b / "music/Halo.mp3")            # renamed
    write(b, "new.txt", b"from b")                      # created
    assert sync(b) == 0
    capsys.readouterr()
    assert sync(a) == 0
    assert tree(a) == tree(b)
    assert set(tree(a)) == {"books/Dune.epub", "note (renamed).md", "music/Halo.mp3", "new.txt"}
    assert not os.path.exists(a / "deep")   # folders left empty are pruned
    assert os.stat(a / "books/Dune.epub").st_mode & 0o777 == 0o640   # kept its mode
    assert "0 up, 2 down, 1 deleted here, 0 deleted on the server, 2 moved" in \
        capsys.readouterr().out

    capsys.readouterr()
    assert sync(a) == 0 and sync(b) == 0
    out = capsys.readouterr().out
    assert out.count("0 up, 0 down, 0 deleted here, 0 deleted on the server, 0 moved") == 2


def test_moves_travel_as_renames(laptops):
    a, b = laptops
    write(a, "a/one.bin", os.urandom(5000))
    assert sync(a) == 0 and sync(b) == 0
    os.makedirs(a / "b")
    os.rename(a / "a/one.bin", a / "b/two.bin")
    assert sync(a) == 0
    api = folder_api(b)
    changes = api.changes()["changes"]
    assert {c["path"]: c["op"] for c in changes} == {"a/one.bin": "delete", "b/two.bin": "put"}
    assert [c.get("moved_from") for c in changes if c["op"] == "put"] == ["a/one.bin"]
    engine = Engine(str(b), api=api, options=Options(quiet=True))
    summary = engine.run()
    engine.close()
    assert (summary.moved, summary.down) == (1, 0)
    assert tree(b) == tree(a)


def test_a_large_file_goes_in_parallel_chunks(laptops):
    a, b = laptops
    data = os.urandom(4 * SMALL_CHUNK + 1234)
    write(a, "big.bin", data)
    api = folder_api(a)
    assert sync(a, api=api) == 0
    assert sorted(api.puts) == [0, 1, 2, 3, 4]
    assert sync(b) == 0
    assert read(b, "big.bin") == data


def test_an_interrupted_upload_resumes_where_it_stopped(laptops, capsys):
    a, b = laptops
    data = os.urandom(6 * SMALL_CHUNK + 77)
    write(a, "big.bin", data)
    failing = folder_api(a, fail_after=3)
    engine = Engine(str(a), api=failing,
                    options=Options(quiet=True, chunk_size=SMALL_CHUNK, workers=1))
    summary = engine.run()
    engine.close()
    assert summary.up == 0 and "upload of big.bin failed" in summary.problems[0]
    assert len(failing.puts) == 3

    resumed = folder_api(a)
    assert sync(a, api=resumed) == 0
    assert sorted(resumed.puts) == [3, 4, 5, 6]
    assert sync(b) == 0
    assert read(b, "big.bin") == data


def test_an_edit_during_the_download_is_never_overwritten(laptops):
    a, b = laptops
    write(a, "notes.txt", b"v1")
    assert sync(a) == 0 and sync(b) == 0
    write(a, "notes.txt", b"v2 from a")
    assert sync(a) == 0

    class EditsWhileDownloading(CountingApi):
        def download(self, path, offset=0, sha256=None):
            write(b, path, b"typed on b meanwhile")
            return super().download(path, offset, sha256)

    engine = Engine(str(b), api=folder_api(b, cls=EditsWhileDownloading),
                    options=Options(quiet=True))
    summary = engine.run()
    engine.close()
    assert "changed here during the pass" in summary.problems[0]
    assert read(b, "notes.txt") == b"typed on b meanwhile"
    assert os.listdir(b / ".sync" / "tmp") == []
    assert sync(b) != 0   # reported now: it became a conflict, nothing lost
    assert read(b, "notes.txt") == b"typed on b meanwhile"
    assert [c["path"] for c in folder_api(b).conflicts()] == ["notes.txt"]


def test_an_edit_beats_a_concurrent_delete(laptops):
    a, b = laptops
    write(a, "keep.txt", b"v1")
    assert sync(a) == 0 and sync(b) == 0
    os.remove(a / "keep.txt")
    assert sync(a) == 0
    write(b, "keep.txt", b"v2 edited on b")
    assert sync(b) == 0
    assert sync(a) == 0
    assert read(a, "keep.txt") == b"v2 edited on b"


def test_mass_deletion_needs_to_be_allowed(laptops, capsys):
    a, b = laptops
    for i in range(8):
        write(a, f"f{i}.txt", b"%d" % i)
    assert sync(a) == 0 and sync(b) == 0
    for i in range(6):
        os.remove(a / f"f{i}.txt")
    capsys.readouterr()
    assert sync(a) != 0
    assert "--allow-mass-delete" in capsys.readouterr().err
    assert sync(b) == 0 and len(tree(b)) == 8          # nothing was deleted
    assert sync(a, "--allow-mass-delete") == 0
    assert sync(b) != 0                                # now b would lose 6 of 8
    assert len(tree(b)) == 8
    assert sync(b, "--allow-mass-delete") == 0
    assert set(tree(b)) == {"f6.txt", "f7.txt"}


def test_a_folder_without_its_sync_dir_is_refused(laptops, capsys):
    a, _ = laptops
    write(a, "x.txt", b"x")
    assert sync(a) == 0
    os.rename(a / ".sync", a / "moved-away")
    capsys.readouterr()
    assert sync(a) != 0
    assert "refusing" in capsys.readouterr().err


@pytest.mark.parametrize("db_id, rev", [("0" * 16, 1), (None, 10**6)],
                         ids=["another database", "a rev the server never reached"])
def test_an_unknown_cursor_relists_without_losing_local_files(laptops, server, db_id, rev):
    from sync import cursors
    from sync.client.state import State
    a, b = laptops
    write(a, "x.txt", b"x")
    assert sync(a) == 0 and sync(b) == 0
    state = State.open(str(b))
    state.put("cursor", cursors.encode(db_id or server.rt.db_id, rev))
    state.close()
    write(b, "y.txt", b"y")
    assert sync(b) == 0
    assert sync(a) == 0
    assert set(tree(a)) == {"x.txt", "y.txt"}


def test_status_shows_both_directions_and_changes_nothing(laptops, capsys):
    a, b = laptops
    write(a, "shared.txt", b"1")
    assert sync(a) == 0 and sync(b) == 0
    write(a, "from-a.txt", b"a")
    assert sync(a) == 0
    write(b, "from-b.txt", b"b")
    os.remove(b / "shared.txt")
    capsys.readouterr()
    assert cli.main(["status", str(b)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 to send, 1 to receive, 0 conflict(s)")
    assert "send     put from-b.txt" in out and "send     delete shared.txt" in out
    assert "receive  from-a.txt" in out
    assert cli.main(["status", str(b)]) == 0
    assert capsys.readouterr().out == out           # nothing was recorded
    assert set(tree(b)) == {"from-b.txt"}
    assert sync(b) == 0
    assert set(tree(b)) == {"from-a.txt", "from-b.txt"}


def test_the_client_runs_as_a_module(server, tmp_path):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = tmp_path / "pi-books"
    write(folder, "Dune.epub", b"spice")

    def run(*args, **env):
        return subprocess.run([sys.executable, "-m", "sync.client", *args], cwd=root,
                              env=dict(os.environ, **env), capture_output=True, text=True,
                              timeout=60)

    result = run("init", str(folder), "--server", server.url, SYNC_TOKEN=server.user_token())
    assert result.returncode == 0, result.stderr
    result = run("sync", str(folder))
    assert result.returncode == 0, result.stderr
    assert "sync: 1 up, 0 down" in result.stdout
    assert "up: Dune.epub" in result.stdout
    os.remove(folder / ".sync" / "token")
    result = run("sync", str(folder))
    assert result.returncode != 0 and result.stderr.startswith("sync: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_names_this_folder_cannot_hold_are_reported(laptops, capsys):
    a, b = laptops
    api = folder_api(a)
    for path, data in (("x", b"a file"), ("x/y", b"a file under a file")):
        session = api.create_upload(path, len(data), sha256(data), None)
        api.put_chunk(session["id"], 0, data)
        assert api.complete_upload(session["id"])["status"] == "applied"
    capsys.readouterr()
    assert sync(b) != 0
    err = capsys.readouterr().err
    assert "cannot hold that name" in err
    # Whichever arrived first is here; the other one is reported.
    if os.path.isdir(b / "x"):
        assert "cannot write x here" in err and read(b, "x/y") == b"a file under a file"
    else:
        assert "cannot write x/y here" in err and read(b, "x") == b"a file"
    assert sync(b) != 0      # reported again on every pass, never dropped


def test_init_with_a_bad_token_or_no_server_says_why(server, tmp_path, capsys):
    folder = tmp_path / "lib"
    assert cli.main(["init", str(folder), "--server", server.url, "--token", "garbage"]) != 0
    assert "refused the token" in capsys.readouterr().err
    assert not os.path.exists(folder / ".sync")
    assert cli.main(["init", str(folder), "--server", "pi:8080", "--token", "t"]) != 0
    assert "not a server address" in capsys.readouterr().err


def test_symlinks_are_skipped_but_unsyncable_names_keep_the_folder_out_of_sync(laptops, capsys):
    a, b = laptops
    write(a, "real.txt", b"r")
    os.symlink(a / "real.txt", a / "link.txt")
    capsys.readouterr()
    assert sync(a) == 0
    assert "skipped symlink link.txt" in capsys.readouterr().err
    write(a, "bad\\name.txt", b"x")
    assert sync(a) != 0
    assert "bad\\name.txt: the library cannot hold that name" in capsys.readouterr().err
    assert sync(b) == 0 and set(tree(b)) == {"real.txt"}


def test_an_upload_of_a_file_deleted_meanwhile_is_cancelled(laptops):
    from sync.client.state import State
    a, _ = laptops
    write(a, "big.bin", os.urandom(3 * SMALL_CHUNK))
    engine = Engine(str(a), api=folder_api(a, fail_after=1),
                    options=Options(quiet=True, chunk_size=SMALL_CHUNK, workers=1))
    assert engine.run().problems
    engine.close()
    state = State.open(str(a))
    [upload] = state.uploads()
    state.close()
    os.remove(a / "big.bin")
    api = folder_api(a)
    assert sync(a, api=api) == 0
    state = State.open(str(a))
    assert state.uploads() == []
    state.close()
    with pytest.raises(ApiError) as info:
        api.get_upload(upload.upload_id)
    assert info.value.status == 404


def test_a_download_broken_midway_goes_on_from_where_it_stopped(laptops):
    import requests
    a, b = laptops
    data = os.urandom(3 * 1024 * 1024 + 5)
    write(a, "film.mkv", data)
    assert sync(a) == 0
    calls = []

    class BreaksOnce(CountingApi):
        def download(self, path, offset=0, sha256=None):
            resp = super().download(path, offset, sha256)
            calls.append((offset, resp.status_code))
            if len(calls) == 1:
                blocks = resp.iter_content

                def broken(size):
                    it = blocks(size)
                    yield next(it)
                    raise requests.exceptions.ChunkedEncodingError("connection reset")
                resp.iter_content = broken
            return resp

    engine = Engine(str(b), api=folder_api(b, cls=BreaksOnce), options=Options(quiet=True))
    summary = engine.run()
    engine.close()
    assert summary.down == 1 and not summary.problems
    assert calls == [(0, 200), (1024 * 1024, 206)]
    assert read(b, "film.mkv") == data


def test_complete_resends_missing_chunks_and_drops_a_session_that_does_not_add_up(laptops):
    from sync.client.state import State
    a, b = laptops
    data = os.urandom(3 * SMALL_CHUNK)
    write(a, "big.bin", data)

    class SkipsChunkOne(CountingApi):
        def put_chunk(self, upload_id, index, chunk):
            if index == 1 and self.puts.count(1) == 0:
                self.puts.append(1)          # claims it went, sends nothing
                return {"index": 1}
            return super().put_chunk(upload_id, index, chunk)

    api = folder_api(a, cls=SkipsChunkOne)
    assert sync(a, api=api) == 0
    assert sorted(api.puts) == [0, 1, 1, 2]

    write(a, "big.bin", data[::-1])

    class Garbles(CountingApi):
        def put_chunk(self, upload_id, index, chunk):
            return super().put_chunk(upload_id, index, b"x" * len(chunk) if index == 0 else chunk)

    engine = Engine(str(a), api=folder_api(a, cls=Garbles),
                    options=Options(quiet=True, chunk_size=SMALL_CHUNK))
    summary = engine.run()
    engine.close()
    assert "big.bin changed during its upload" in summary.problems[0]
    state = State.open(str(a))
    assert state.uploads() == []
    state.close()
    assert sync(a) == 0 and sync(b) == 0
    assert read(b, "big.bin") == data[::-1]


def test_an_idle_pass_reads_but_writes_nothing_on_the_server(laptops):
    a, _ = laptops
    write(a, "x.txt", b"x")
    assert sync(a) == 0
    assert sync(a) == 0     # reads its own change back from the feed and acks it
    seen = []

    class Records(CountingApi):
        def request(self, method, path, **kw):
            seen.append((method, path))
            return super().request(method, path, **kw)

    assert sync(a, api=folder_api(a, cls=Records)) == 0
    assert [m for m, _ in seen if m != "GET"] == []
    assert ("GET", "/changes") in seen

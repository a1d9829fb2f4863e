"""The client's folder setup and state database, on real temp folders."""

import os
import stat

import pytest

from sync.client.state import FolderError, FolderLock, State, init_folder, load_config


def test_init_makes_a_private_sync_dir(tmp_path):
    folder = tmp_path / "lib"
    init_folder(str(folder), "http://pi:8080", {"id": "d1", "name": "Laptop"}, "secret-token")
    base = folder / ".sync"
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o700
    for name in os.listdir(base):
        if os.path.isfile(base / name):
            assert stat.S_IMODE(os.stat(base / name).st_mode) == 0o600, name
    config = load_config(str(folder))
    assert config == {"server": "http://pi:8080", "device_id": "d1", "device_name": "Laptop",
                      "token": "secret-token"}


def test_init_refuses_an_existing_sync_folder(tmp_path):
    init_folder(str(tmp_path), "http://pi", {"id": "d1", "name": "A"}, "t")
    with pytest.raises(FolderError, match="already"):
        init_folder(str(tmp_path), "http://pi", {"id": "d2", "name": "B"}, "t")
    assert load_config(str(tmp_path))["device_id"] == "d1"


def test_a_folder_without_sync_dir_is_refused(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x")
    with pytest.raises(FolderError, match="missing"):
        load_config(str(tmp_path))
    with pytest.raises(FolderError, match="not a directory"):
        load_config(str(tmp_path / "nowhere"))


def test_feed_is_recorded_with_its_cursor(tmp_path):
    init_folder(str(tmp_path), "http://pi", {"id": "d1", "name": "A"}, "t")
    state = State.open(str(tmp_path))
    put = {"op": "put", "path": "a", "rev": 1, "sha256": "aa", "size": 1, "mtime": 5}
    state.apply_feed([put, dict(put, path="b", rev=2)], "c2", relisted=False)
    assert set(state.remote()) == {"a", "b"} and state.get("cursor") == "c2"
    state.apply_feed([{"op": "delete", "path": "a", "rev": 3},
                      dict(put, path="c", rev=4, moved_from="x")], "c4", relisted=False)
    remote = state.remote()
    assert set(remote) == {"b", "c"} and remote["c"].moved_from == "x"
    state.apply_feed([dict(put, path="z", rev=9)], "c9", relisted=True)
    assert set(state.remote()) == {"z"} and state.get("cursor") == "c9"
    state.close()
    reopened = State.open(str(tmp_path))
    assert reopened.get("cursor") == "c9"
    reopened.close()


def test_a_failed_transaction_changes_nothing(tmp_path):
    init_folder(str(tmp_path), "http://pi", {"id": "d1", "name": "A"}, "t")
    state = State.open(str(tmp_path))
    state.set_synced("a", 1, "aa", 1, 10)
    with pytest.raises(RuntimeError):
        with state.transaction():
            state.drop_synced("a")
            raise RuntimeError("boom")
    assert set(state.synced()) == {"a"}
    state.close()


def test_uploads_and_conflicts_are_remembered(tmp_path):
    init_folder(str(tmp_path), "http://pi", {"id": "d1", "name": "A"}, "t")
    state = State.open(str(tmp_path))
    state.set_upload("big.bin", "u1", "ff", 10, None)
    state.add_conflict(("c1", "a.txt", "modify_modify", None, "put", "ee"))
    state.close()
    state = State.open(str(tmp_path))
    assert state.upload("big.bin").upload_id == "u1"
    assert state.conflicts()["c1"].client_sha256 == "ee"
    state.drop_upload("big.bin")
    state.drop_conflict("c1")
    assert state.uploads() == [] and state.conflicts() == {}
    state.close()


def test_one_pass_at_a_time(tmp_path):
    init_folder(str(tmp_path), "http://pi", {"id": "d1", "name": "A"}, "t")
    with FolderLock(str(tmp_path)):
        with pytest.raises(FolderError, match="another sync"):
            with FolderLock(str(tmp_path)):
                pass
    with FolderLock(str(tmp_path)):
        pass


def test_progress_bars_only_when_asked_and_for_large_transfers():
    from sync.client.transfer import PROGRESS_FROM, progress_bar
    assert progress_bar(False, 10 * PROGRESS_FROM, "big") is None
    assert progress_bar(True, PROGRESS_FROM - 1, "small") is None
    bar = progress_bar(True, PROGRESS_FROM, "big")
    try:
        assert bar.total == PROGRESS_FROM
    finally:
        bar.close()

"""The client's folder scanner and hashing, on real temp folders."""

import os
import socket
import unicodedata

import pytest

from sync.client.scan import Hasher, scan
from sync.client.state import State, init_folder

from .helpers import sha256


def write(folder, rel, data=b"x"):
    full = folder / rel
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(data)
    return full


def test_scan_lists_regular_files_by_library_path(tmp_path):
    write(tmp_path, "books/Dune.epub", b"spice")
    write(tmp_path, "empty.txt", b"")
    write(tmp_path, ".sync/state.sqlite3", b"not synced")
    (tmp_path / "empty-folder").mkdir()
    found = scan(str(tmp_path))
    assert set(found.files) == {"books/Dune.epub", "empty.txt"}
    dune = found.files["books/Dune.epub"]
    assert dune.size == 5 and dune.rel == "books/Dune.epub"
    assert dune.mtime_ns == os.stat(tmp_path / "books/Dune.epub").st_mtime_ns
    assert found.warnings == []


def test_a_sync_folder_inside_is_left_alone_and_no_sync_dir_is_ever_read(tmp_path):
    write(tmp_path, "notes/.sync/token", b"a device token")
    write(tmp_path, "notes/a.txt")
    write(tmp_path, "papers/.sync", b"a file named .sync")
    write(tmp_path, "papers/b.txt")
    found = scan(str(tmp_path))
    assert set(found.files) == {"papers/b.txt"}
    assert found.warnings == ["skipped folder notes: it is a sync folder of its own"]
    assert found.problems == []
    assert found.is_unknown("notes/a.txt") and not found.is_unknown("papers/b.txt")


def test_nfd_names_map_to_nfc_paths(tmp_path):
    nfd = unicodedata.normalize("NFD", "Beyoncé.mp3")
    write(tmp_path, nfd, b"la")
    found = scan(str(tmp_path))
    nfc = unicodedata.normalize("NFC", "Beyoncé.mp3")
    assert list(found.files) == [nfc]
    assert found.files[nfc].rel == nfd


def test_two_names_equal_once_normalized_are_reported(tmp_path):
    write(tmp_path, unicodedata.normalize("NFC", "é.txt"), b"1")
    write(tmp_path, unicodedata.normalize("NFD", "é.txt"), b"2")
    found = scan(str(tmp_path))
    assert len(found.files) == 1
    assert any("Unicode" in w for w in found.problems)


def test_symlinks_and_special_files_are_skipped_with_a_warning(tmp_path):
    write(tmp_path, "real.txt")
    os.symlink(tmp_path / "real.txt", tmp_path / "link.txt")
    os.symlink(tmp_path, tmp_path / "loop")
    os.mkfifo(tmp_path / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        found = scan(str(tmp_path))
    finally:
        sock.close()
    assert set(found.files) == {"real.txt"}
    assert found.problems == []    # skipped on purpose: the folder can still be in sync
    text = "\n".join(found.warnings)
    assert "symlink link.txt" in text and "symlink loop" in text
    assert "special file pipe" in text and "special file sock" in text


def test_names_the_library_cannot_hold_are_reported(tmp_path):
    write(tmp_path, "tab\there.txt")
    write(tmp_path, "back\\slash.txt")
    os.makedirs(os.fsencode(tmp_path) + b"/bad\xff")
    with open(os.fsencode(tmp_path) + b"/bad\xff/x.txt", "wb") as f:
        f.write(b"x")
    found = scan(str(tmp_path))
    assert found.files == {}
    assert len(found.warnings) == 3 and found.problems == found.warnings
    assert all("cannot hold" in w for w in found.warnings)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_an_unreadable_folder_is_unknown_not_empty(tmp_path):
    write(tmp_path, "locked/a.txt")
    write(tmp_path, "open.txt")
    os.chmod(tmp_path / "locked", 0)
    try:
        found = scan(str(tmp_path))
    finally:
        os.chmod(tmp_path / "locked", 0o700)
    assert set(found.files) == {"open.txt"}
    assert found.is_unknown("locked/a.txt") and not found.is_unknown("open.txt")
    assert not found.is_unknown("lockedx.txt")


def _folder(tmp_path):
    folder = tmp_path / "f"
    init_folder(str(folder), "http://127.0.0.1:1", {"id": "d1", "name": "Laptop"}, "tok")
    return folder


def test_hashes_are_cached_until_size_or_mtime_moves(tmp_path):
    folder = _folder(tmp_path)
    full = write(folder, "a.txt", b"one")
    state = State.open(str(folder))
    hasher = Hasher(str(folder), state)
    local = scan(str(folder)).files["a.txt"]
    assert hasher.sha256(local) == sha256(b"one")
    assert hasher.sha256(local) == sha256(b"one")
    assert hasher.hashed == 1
    full.write_bytes(b"two")
    os.utime(full, ns=(local.mtime_ns + 10**9, local.mtime_ns + 10**9))
    local = scan(str(folder)).files["a.txt"]
    assert hasher.sha256(local) == sha256(b"two")
    assert hasher.hashed == 2
    state.close()

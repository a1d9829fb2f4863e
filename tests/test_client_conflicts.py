"""Conflicts through the sync client: a concurrent edit on two laptops
becomes a conflict, the local version stays untouched while it is open, and
each resolution does what it says on both laptops."""

import os
from datetime import datetime, timezone

import pytest

from sync.client import cli

from .client_harness import folder_api, read, sync, tree, write


@pytest.fixture
def laptops(laptops):
    """The two laptops of ``conftest.py``, both in sync with ``notes/plan.txt``."""
    a, b = laptops
    write(a, "notes/plan.txt", b"base")
    assert sync(a) == 0 and sync(b) == 0
    return a, b


def _edit_both(a, b):
    write(a, "notes/plan.txt", b"edited on a")
    assert sync(a) == 0
    write(b, "notes/plan.txt", b"edited on b")
    assert sync(b) != 0
    [conflict] = folder_api(b).conflicts()
    assert conflict["kind"] == "modify_modify" and conflict["path"] == "notes/plan.txt"
    return conflict


def test_a_concurrent_edit_becomes_a_conflict_and_local_bytes_stay(laptops, capsys):
    a, b = laptops
    conflict = _edit_both(a, b)
    assert read(b, "notes/plan.txt") == b"edited on b"
    capsys.readouterr()
    assert cli.main(["conflicts", str(b)]) == 0
    out = capsys.readouterr().out
    assert conflict["id"] in out and "modify_modify" in out and "Laptop B" in out

    write(b, "notes/plan.txt", b"edited on b, again, while the conflict is open")
    assert sync(b) != 0
    assert "1 conflict(s) open" in capsys.readouterr().err
    assert read(b, "notes/plan.txt") == b"edited on b, again, while the conflict is open"
    assert len(folder_api(b).conflicts()) == 1      # not reported a second time
    assert sync(a) == 0                             # a is in sync: the conflict is b's
    assert read(a, "notes/plan.txt") == b"edited on a"


def _resolve(b, conflict, resolution):
    assert cli.main(["resolve", str(b), conflict["id"], resolution]) == 0


def test_keep_server_drops_the_client_version(laptops):
    a, b = laptops
    conflict = _edit_both(a, b)
    _resolve(b, conflict, "keep_server")
    assert sync(b) == 0 and sync(a) == 0
    assert read(a, "notes/plan.txt") == read(b, "notes/plan.txt") == b"edited on a"
    assert set(tree(a)) == set(tree(b)) == {"notes/plan.txt"}


def test_keep_client_makes_the_client_version_the_head(laptops):
    a, b = laptops
    conflict = _edit_both(a, b)
    _resolve(b, conflict, "keep_client")
    assert sync(b) == 0 and sync(a) == 0
    assert read(a, "notes/plan.txt") == read(b, "notes/plan.txt") == b"edited on b"


def test_keep_both_saves_the_client_version_beside(laptops):
    a, b = laptops
    conflict = _edit_both(a, b)
    _resolve(b, conflict, "keep_both")
    assert sync(b) == 0 and sync(a) == 0
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    copy = f"notes/plan (conflict Laptop B {day}).txt"
    assert tree(a) == tree(b) and set(tree(a)) == {"notes/plan.txt", copy}
    assert read(a, "notes/plan.txt") == b"edited on a"
    assert read(a, copy) == b"edited on b"


def test_resolving_on_another_device_applies_here_too(laptops):
    a, b = laptops
    conflict = _edit_both(a, b)
    _resolve(a, conflict, "keep_client")
    assert sync(b) == 0 and sync(a) == 0
    assert read(a, "notes/plan.txt") == read(b, "notes/plan.txt") == b"edited on b"


def test_an_edit_made_while_open_is_not_lost_by_the_resolution(laptops):
    a, b = laptops
    conflict = _edit_both(a, b)
    write(b, "notes/plan.txt", b"newer on b")
    _resolve(b, conflict, "keep_server")
    assert sync(b) != 0                      # reported again: a new conflict
    assert read(b, "notes/plan.txt") == b"newer on b"
    [again] = folder_api(b).conflicts()
    assert again["id"] != conflict["id"]


def test_a_delete_against_an_edit_is_a_conflict_keep_server_restores(laptops):
    a, b = laptops
    write(a, "notes/plan.txt", b"edited on a")
    assert sync(a) == 0
    os.remove(b / "notes/plan.txt")
    assert sync(b) != 0
    [conflict] = folder_api(b).conflicts()
    assert conflict["kind"] == "delete_modify"
    assert not os.path.exists(b / "notes/plan.txt")
    _resolve(b, conflict, "keep_server")
    assert sync(b) == 0
    assert read(b, "notes/plan.txt") == b"edited on a"


def test_resolving_twice_is_a_clear_error(laptops, capsys):
    a, b = laptops
    conflict = _edit_both(a, b)
    _resolve(b, conflict, "keep_server")
    capsys.readouterr()
    assert cli.main(["resolve", str(b), conflict["id"], "keep_client"]) != 0
    assert "already resolved" in capsys.readouterr().err
    assert cli.main(["resolve", str(b), "nope", "keep_client"]) != 0
    assert "no conflict nope" in capsys.readouterr().err

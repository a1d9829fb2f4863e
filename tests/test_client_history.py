"""Getting files back with the client (SPEC §8 Client), end to end: the
real server over HTTP and real client folders. The scenario history exists
for: a device goes wrong, its damage reaches every device, and one rewind
puts everything back."""

import json
import os

import pytest

from sync.client import cli, history

from .client_harness import folder_api, init, sync, tree, write
from .helpers import sha256


def device_id(folder):
    with open(os.path.join(str(folder), ".sync", "config.json"), encoding="utf-8") as f:
        return json.load(f)["device_id"]


def newest_rev(folder):
    api = folder_api(folder)
    return max(c["rev"] for c in api.changes()["changes"])


@pytest.fixture
def a_and_x(server, tmp_path):
    """Device A holds 50 files and a diary, synced to device X."""
    a, x = tmp_path / "a", tmp_path / "x"
    init(server, a, "Laptop A")
    init(server, x, "X")
    for i in range(50):
        write(a, f"docs/{i:02}.txt", f"original document {i}\n".encode() * (i + 1))
    write(a, "diary.txt", b"monday\n")
    assert sync(a) == 0 and sync(x) == 0
    assert tree(x) == tree(a)
    return a, x


def damage(a, x):
    """X overwrites 30 files with other bytes and deletes 20; A syncs its
    own unrelated edit and receives the damage."""
    for i in range(30):
        write(x, f"docs/{i:02}.txt", os.urandom(64))
    for i in range(30, 50):
        os.remove(os.path.join(str(x), "docs", f"{i:02}.txt"))
    assert sync(x) == 0
    write(a, "diary.txt", b"monday\ntuesday: all is well\n")
    assert sync(a) == 0
    docs = lambda folder: {p: h for p, h in tree(folder).items() if p.startswith("docs/")}  # noqa: E731
    assert docs(a) == docs(x)


@pytest.mark.parametrize("x_deleted_first", [False, True], ids=["x-registered", "x-deleted"])
def test_rewinding_a_device_that_went_wrong_brings_every_file_back(server, a_and_x,
                                                                    x_deleted_first, capsys):
    a, x = a_and_x
    originals = tree(a)
    before_x = newest_rev(a)
    damage(a, x)
    damaged = tree(a)
    assert sum(1 for p in originals if p.startswith("docs/")) == 50
    assert len([p for p in damaged if p.startswith("docs/")]) == 30
    device = "X"
    if x_deleted_first:
        device = device_id(x)
        api = folder_api(a)
        api.session.headers["Authorization"] = f"Bearer {server.user_token()}"
        api.request("DELETE", f"/devices/{device}", ok=(204,))
    capsys.readouterr()
    assert cli.main(["rewind", str(a), "--rev", str(before_x), "--device", device,
                     "--yes"]) == 0
    out = capsys.readouterr().out
    assert "would change 50 file(s)" in out and "rewound 50 file(s)" in out
    assert sync(a) == 0
    expected = dict(originals, **{"diary.txt": sha256(b"monday\ntuesday: all is well\n")})
    assert tree(a) == expected  # all 50 byte-identical, A's own edit untouched
    if not x_deleted_first:
        assert sync(x) == 0
        assert tree(x) == expected


def test_rewind_shows_first_and_applies_only_when_told(server, a_and_x, capsys):
    a, x = a_and_x
    before_x = newest_rev(a)
    damage(a, x)
    damaged = tree(a)
    capsys.readouterr()
    # No terminal and no --yes: only shown (the test's stdin is not a terminal).
    assert cli.main(["rewind", str(a), "--rev", str(before_x), "--device", "X"]) == 0
    out = capsys.readouterr().out
    assert "restore  docs/00.txt" in out and "not applied" in out
    # Asked, and the answer is no.
    args = cli.build_parser().parse_args(["rewind", str(a), "--rev", str(before_x)])
    assert history.run(args, ask=lambda prompt: "n") == 0
    assert "not applied" in capsys.readouterr().out
    assert sync(a) == 0 and tree(a) == damaged
    assert history.run(args, ask=lambda prompt: "y") == 0
    assert "rewound 51 file(s)" in capsys.readouterr().out


def test_rewind_errors_are_one_line(server, a_and_x, capsys):
    a, _ = a_and_x
    assert cli.main(["rewind", str(a), "--at", "not a time", "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sync: 'at' is not an ISO 8601 time") and err.count("\n") == 1
    assert cli.main(["rewind", str(a), "--at", "2020-01-01T00:00:00Z", "--yes"]) == 1
    assert "more than 30 days ago" in capsys.readouterr().err


def test_history_restore_and_trash_name_the_devices(server, a_and_x, capsys):
    a, x = a_and_x
    write(x, "docs/00.txt", b"edited on X\n")
    os.remove(os.path.join(str(x), "docs", "01.txt"))
    assert sync(x) == 0 and sync(a) == 0
    capsys.readouterr()
    assert cli.main(["history", str(a), os.path.join(str(a), "docs", "00.txt")]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("  rev")]
    assert len(lines) == 2
    assert "changed by X, " in lines[0] and "changed by Laptop A, " in lines[1]
    assert cli.main(["trash", str(a)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("docs/01.txt  deleted by X, ")
    assert cli.main(["trash", str(a), "music"]) == 0
    assert "the trash is empty under music" in capsys.readouterr().out
    # restore: by default the version before the current one.
    assert cli.main(["restore", str(a), "docs/00.txt"]) == 0
    assert "restored docs/00.txt" in capsys.readouterr().out
    assert cli.main(["restore", str(a), "docs/01.txt"]) == 0
    assert sync(a) == 0
    assert tree(a) == tree(x) | {
        "docs/00.txt": sha256(b"original document 0\n"),
        "docs/01.txt": sha256(b"original document 1\n" * 2)}
    assert cli.main(["history", str(a), "nothing.txt"]) == 1
    assert "keeps no version of nothing.txt" in capsys.readouterr().err
    assert cli.main(["restore", str(a), "docs/00.txt", "--rev", "99999"]) == 1
    assert "has no kept version 99999" in capsys.readouterr().err

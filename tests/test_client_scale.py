"""The shortcuts that keep a pass over a large folder quick (see
bench/client_scale.py) decide exactly what the general rules decide: the
scan's plain-name path, the plan leaving out paths nothing happened to, and
the feed held as tuples."""

import unicodedata

from sync.client import engine
from sync.client.plan import make_plan
from sync.client.scan import LocalFile, library_path, scan
from sync.client.state import Remote, Synced


def test_plain_and_other_names_get_the_library_path_of_the_general_rule(tmp_path):
    names = ["plain.txt", "with space (1).epub", "a" * 255, "a" * 256,
             unicodedata.normalize("NFD", "café.txt"), "back\\slash", "tab\there",
             "bidi\u202etxt", "...", "ok"]
    folder = tmp_path / "f"
    (folder / "sub dir").mkdir(parents=True)
    made = []
    for name in names:
        try:
            (folder / "sub dir" / name).write_bytes(b"x")
        except OSError:
            continue  # a name this filesystem cannot hold
        made.append(name)
    found = scan(str(folder))
    expected = {library_path(f"sub dir/{name}") for name in made} - {None}
    assert set(found.files) == expected
    assert "sub dir/café.txt" in found.files and "sub dir/back\\slash" not in found.files
    assert len(found.problems) == len(made) - len(expected)


def views(n, changed_local=(), changed_remote=()):
    local, synced, remote = {}, {}, {}
    for i in range(n):
        path = f"p/{i}"
        mtime = 2_000_000_000 if path in changed_local else 1_000_000_000
        local[path] = LocalFile(path, path, 1, mtime)
        synced[path] = Synced(path, i + 1, f"s{i}", 1, 1_000_000_000)
        rev = i + 1 + (1000 if path in changed_remote else 0)
        remote[path] = Remote(path, rev, f"s{i}" if path not in changed_remote else "new", 1,
                              0, None)
    return local, synced, remote


def test_an_idle_folder_plans_nothing_and_hashes_nothing():
    hashed = []
    plan = make_plan(*views(500), lambda f: hashed.append(f) or "x")
    assert plan.empty() and not plan.adopts and hashed == []


def test_the_one_changed_path_among_many_is_planned():
    local, synced, remote = views(500, changed_local={"p/7"}, changed_remote={"p/9"})
    plan = make_plan(local, synced, remote, lambda f: "edited")
    assert [r.item["path"] for r in plan.reports] == ["p/7"]
    assert [d.path for d in plan.downloads] == ["p/9"]


def test_the_feed_as_tuples_gives_back_every_change_in_rev_order():
    latest = {}
    for change in ({"path": "b", "op": "put", "rev": 3, "sha256": "x", "size": 1, "mtime": 7},
                   {"path": "a", "op": "delete", "rev": 5, "size": None, "sha256": None,
                    "mtime": None},
                   {"path": "c", "op": "put", "rev": 4, "sha256": "y", "size": 2, "mtime": 8,
                    "moved_from": "a"}):
        latest[change["path"]] = engine._compact(change)
    assert list(engine._Changes(latest)) == [
        {"rev": 3, "op": "put", "path": "b", "sha256": "x", "size": 1, "mtime": 7},
        {"rev": 4, "op": "put", "path": "c", "sha256": "y", "size": 2, "mtime": 8,
         "moved_from": "a"},
        {"rev": 5, "op": "delete", "path": "a", "mtime": None}]

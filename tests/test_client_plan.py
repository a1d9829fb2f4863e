"""Deciding a pass from the three views (local, synced base, server head),
and the mass-deletion guard."""

from sync.client.plan import make_plan
from sync.client.scan import LocalFile
from sync.client.state import Remote, Synced


def local(path, sha, size=1, mtime_ns=1_000_000_000):
    return LocalFile(path, path, size, mtime_ns), sha


def views(locals_=(), synced=(), remote=()):
    files, shas = {}, {}
    for f, sha in locals_:
        files[f.path] = f
        shas[f.path] = sha
    return (files, {s.path: s for s in synced}, {r.path: r for r in remote},
            lambda f: shas[f.path])


def plan_of(**kw):
    files, synced, remote, sha_of = views(**kw)
    return make_plan(files, synced, remote, sha_of)


def ops(plan):
    return [(r.item["op"], r.item["path"], r.item.get("base_rev")) for r in plan.reports]


def test_nothing_moved_means_nothing_to_do():
    plan = plan_of(locals_=[local("a", "s1")], synced=[Synced("a", 3, "s1", 1, 1_000_000_000)],
                   remote=[Remote("a", 3, "s1", 1, 1, None)])
    assert plan.empty() and not plan.adopts


def test_local_edits_new_files_and_deletes_are_reported_with_their_base():
    plan = plan_of(locals_=[local("edited", "new", mtime_ns=2_000_000_000), local("fresh", "f")],
                   synced=[Synced("edited", 4, "old", 1, 1_000_000_000),
                           Synced("gone", 5, "g", 1, 1_000_000_000)],
                   remote=[Remote("edited", 4, "old", 1, 1, None),
                           Remote("gone", 5, "g", 1, 1, None)])
    assert sorted(ops(plan)) == [("delete", "gone", 5), ("put", "edited", 4),
                                 ("put", "fresh", None)]
    put = next(r for r in plan.reports if r.item["path"] == "edited").item
    assert put == {"op": "put", "path": "edited", "sha256": "new", "size": 1, "mtime": 2,
                   "base_rev": 4}


def test_a_touched_file_with_the_same_content_is_only_recorded():
    plan = plan_of(locals_=[local("a", "s1", mtime_ns=9_000_000_000)],
                   synced=[Synced("a", 3, "s1", 1, 1_000_000_000)],
                   remote=[Remote("a", 3, "s1", 1, 1, None)])
    assert plan.empty()
    assert [(a.path, a.rev) for a in plan.adopts] == [("a", 3)]


def test_server_changes_are_downloaded_deleted_or_renamed_here():
    plan = plan_of(locals_=[local("old", "m"), local("kept", "k"), local("doomed", "d")],
                   synced=[Synced("old", 1, "m", 1, 1_000_000_000),
                           Synced("kept", 2, "k", 1, 1_000_000_000),
                           Synced("doomed", 3, "d", 1, 1_000_000_000)],
                   remote=[Remote("new", 7, "m", 1, 1, "old"), Remote("kept", 8, "k2", 1, 1, None),
                           Remote("fresh", 9, "f", 1, 1, None)])
    assert not plan.reports
    assert sorted(d.path for d in plan.downloads) == ["fresh", "kept"]
    assert [(m.source.path, m.path) for m in plan.moves] == [("old", "new")]
    assert [d.path for d in plan.deletes] == ["doomed"]


def test_a_local_rename_is_reported_as_a_move():
    plan = plan_of(locals_=[local("b/new name", "m")],
                   synced=[Synced("a/old", 1, "m", 1, 1_000_000_000)],
                   remote=[Remote("a/old", 1, "m", 1, 1, None)])
    assert [r.item for r in plan.reports] == [
        {"op": "move", "path": "a/old", "to": "b/new name", "base_rev": 1}]


def test_both_sides_changed_goes_to_the_server_never_overwrites():
    plan = plan_of(locals_=[local("a", "mine", mtime_ns=2_000_000_000)],
                   synced=[Synced("a", 1, "base", 1, 1_000_000_000),
                           Synced("b", 1, "bb", 1, 1_000_000_000)],
                   remote=[Remote("a", 2, "theirs", 1, 1, None), Remote("b", 3, "b2", 1, 1, None)])
    assert sorted(ops(plan)) == [("delete", "b", 1), ("put", "a", 1)]
    assert all(r.contested for r in plan.reports)
    assert not plan.downloads and not plan.deletes


def test_both_sides_with_the_same_content_agree_without_transfer():
    plan = plan_of(locals_=[local("a", "same")], remote=[Remote("a", 6, "same", 1, 1, None)])
    assert plan.empty() and [(a.path, a.rev) for a in plan.adopts] == [("a", 6)]


def test_skipped_paths_are_left_alone():
    files, synced, remote, sha_of = views(
        locals_=[local("frozen", "mine", mtime_ns=5)],
        synced=[Synced("frozen", 1, "base", 1, 1), Synced("locked/x", 1, "x", 1, 1)],
        remote=[Remote("frozen", 2, "theirs", 1, 1, None), Remote("locked/x", 1, "x", 1, 1, None)])
    plan = make_plan(files, synced, remote, sha_of,
                     skip=lambda p: p == "frozen" or p.startswith("locked/"))
    assert plan.empty()


def test_a_case_insensitive_folder_cannot_hold_two_cases():
    files, synced, remote, sha_of = views(locals_=[local("readme.md", "r")],
                                          remote=[Remote("README.md", 3, "R", 1, 1, None)])
    plan = make_plan(files, synced, remote, sha_of, case_insensitive=True)
    assert not plan.downloads and "ignores case" in plan.problems[0]
    plan = make_plan(files, synced, remote, sha_of, case_insensitive=False)
    assert [d.path for d in plan.downloads] == ["README.md"]


def _library(n):
    return [Synced(f"f{i}", i + 1, f"s{i}", 1, 1) for i in range(n)]


def test_mass_delete_on_the_server_is_refused():
    synced = _library(10)
    plan = plan_of(locals_=[local(f"f{i}", f"s{i}") for i in range(4)], synced=synced,
                   remote=[Remote(s.path, s.rev, s.sha256, 1, 1, None) for s in synced])
    assert plan.server_deletes == 6
    assert "delete 6 of 10 files on the server" in plan.mass_delete(10)


def test_mass_delete_here_is_refused():
    synced = _library(10)
    plan = plan_of(locals_=[local(f"f{i}", f"s{i}") for i in range(10)], synced=synced,
                   remote=[Remote(s.path, s.rev, s.sha256, 1, 1, None) for s in synced[:4]])
    assert len(plan.deletes) == 6
    assert "in this folder" in plan.mass_delete(10)


def test_small_or_partial_deletes_are_allowed():
    synced = _library(10)
    plan = plan_of(locals_=[local(f"f{i}", f"s{i}") for i in range(5)], synced=synced,
                   remote=[Remote(s.path, s.rev, s.sha256, 1, 1, None) for s in synced])
    assert plan.server_deletes == 5 and plan.mass_delete(10) is None
    synced = _library(4)
    plan = plan_of(synced=synced, remote=[Remote(s.path, s.rev, s.sha256, 1, 1, None)
                                          for s in synced])
    assert plan.server_deletes == 4 and plan.mass_delete(4) is None


def test_a_case_only_rename_on_the_server_is_a_local_rename_even_ignoring_case():
    files, synced, remote, sha_of = views(
        locals_=[local("readme.md", "r")], synced=[Synced("readme.md", 3, "r", 1, 1_000_000_000)],
        remote=[Remote("README.md", 4, "r", 1, 1, "readme.md")])
    plan = make_plan(files, synced, remote, sha_of, case_insensitive=True)
    assert not plan.problems and not plan.downloads and not plan.deletes
    assert [(m.source.path, m.path) for m in plan.moves] == [("readme.md", "README.md")]

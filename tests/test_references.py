"""``sync.references``: the variants of "which content is still referenced"
name the same places, find content in each of them, and are served by
indexes (no variant scans a table)."""

import json
import re

import pytest

from sync import references
from sync.db import database

from . import seed
from .helpers import sha256


def _tables(sql):
    return set(re.findall(r"\bFROM\s+(\w+)", sql)) - {"json_each"}


def test_every_variant_names_only_places_the_clean_up_keeps():
    kept = _tables(references.CONTENT_REFERENCED_SQL)
    assert kept == {"entries", "conflicts", "uploads", "revisions"}
    mentioned = _tables(references.MENTIONS_SQL + references.REVISION_MENTIONS_SQL)
    assert mentioned - {"blobs"} == kept
    for held in (references.HOLDS_CONTENT_SQL, references.HELD_SIZES_SQL, references.HELD_SQL):
        assert _tables(held) == {"entries", "conflicts"}


@pytest.mark.parametrize("name", ["CONTENT_REFERENCED_SQL", "HOLDS_CONTENT_SQL",
                                  "HELD_SIZES_SQL", "HELD_SQL"])
def test_no_variant_scans_a_table(rt, name):
    params = {"shas": json.dumps(["ab" * 32]), "user_id": 1, "sha256": "ab" * 32}
    with database.connection_context():
        plan = database.execute_sql("EXPLAIN QUERY PLAN " + getattr(references, name),
                                    params).fetchall()
    scans = [row[-1] for row in plan if row[-1].startswith("SCAN")
             and not row[-1].startswith("SCAN j")]
    assert not scans, plan


def test_the_variants_find_a_live_entry_and_a_conflicts_client_side(rt, api, dev, device):
    seed.put(rt, device, "a.txt", b"one")
    seed.put(rt, device, "a.txt", b"two", base_rev=1)
    conflict = seed.put(rt, device, "a.txt", b"three", base_rev=1)
    assert conflict["status"] == "conflict"
    shas = [sha256(b"one"), sha256(b"two"), sha256(b"three"), sha256(b"never")]
    with database.connection_context():
        def run(sql, **params):
            return database.execute_sql(sql, params).fetchall()
        referenced = {r[0] for r in run(references.CONTENT_REFERENCED_SQL, shas=json.dumps(shas))}
        # b"one" is kept by its revision (history), b"two" is the head, b"three" the conflict's.
        assert referenced == set(shas[:3])
        held = {r[0] for r in run(references.HELD_SQL, user_id=1, shas=json.dumps(shas))}
        assert held == {sha256(b"two"), sha256(b"three")}
        sizes = dict(run(references.HELD_SIZES_SQL, user_id=1, shas=json.dumps(shas)))
        assert sizes == {shas[0]: None, shas[1]: 3, shas[2]: 5, shas[3]: None}
        assert run(references.HOLDS_CONTENT_SQL, user_id=1, sha256=sha256(b"three"))
        assert not run(references.HOLDS_CONTENT_SQL, user_id=2, sha256=sha256(b"three"))
        tables = {r[0] for r in run(references.MENTIONS_SQL + references.REVISION_MENTIONS_SQL)}
        assert tables == {"blobs", "entries", "conflicts", "revisions"}

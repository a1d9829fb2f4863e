"""Which content is still referenced: one question, its variants side by side.

Content (a file ``blobs/ab/<sha256>``) is referenced while a row names it:

    entries     a live entry (``deleted = 0``)
    conflicts   either side of an unresolved conflict
    uploads     an open upload session (its completion may already have
                moved the spool file into ``blobs/``)
    revisions   a kept revision (history)

A user's library *holds* content (an upload of it is instant, and it counts
toward the user's quota) while one of that user's live entries or the client
side of one of that user's unresolved conflicts names it: the first two
places, for one user.

Each variant below asks the question for one use; they must name the same
places. A table that starts referring to content adds its line to
``CONTENT_REFERENCED_SQL`` and to ``MENTIONS_SQL`` (and to the ``HOLDS``
variants when it is part of what a user's library holds). The statements are
plain SQL with named parameters, for ``sync.db.database`` and for the sqlite3
connections of ``sync.backup`` and ``sync.check`` alike; every branch is
served by an index.
"""

# The clean-up: which of the sha256s in ``:shas`` (a JSON array) anything
# still refers to. It removes a blob only when this finds nothing; every
# change that drops a reference queues the content for it
# (``sync.library.queue_content``).
CONTENT_REFERENCED_SQL = """
    SELECT j.value FROM json_each(:shas) j
     WHERE EXISTS (SELECT 1 FROM entries WHERE sha256 = j.value AND deleted = 0)
        OR EXISTS (SELECT 1 FROM conflicts
                    WHERE client_sha256 = j.value AND resolved_at IS NULL)
        OR EXISTS (SELECT 1 FROM conflicts
                    WHERE server_sha256 = j.value AND resolved_at IS NULL)
        OR EXISTS (SELECT 1 FROM uploads WHERE sha256 = j.value AND state = 'open')
        OR EXISTS (SELECT 1 FROM revisions WHERE sha256 = j.value)
"""

# Whether user ``:user_id``'s library holds ``:sha256`` (an upload of it is instant).
HOLDS_CONTENT_SQL = """
    SELECT 1 FROM entries
     WHERE user_id = :user_id AND sha256 = :sha256 AND deleted = 0
    UNION ALL
    SELECT 1 FROM conflicts
     WHERE user_id = :user_id AND client_sha256 = :sha256 AND resolved_at IS NULL
    LIMIT 1
"""

# A report's batch: for each sha256 in ``:shas`` (a JSON array), its size when
# user ``:user_id``'s library holds it, else NULL. One probe per sha256 (LIMIT
# 1): many paths may share one content.
HELD_SIZES_SQL = """
    SELECT j.value, COALESCE(
           (SELECT size FROM entries
             WHERE user_id = :user_id AND sha256 = j.value AND deleted = 0 LIMIT 1),
           (SELECT client_size FROM conflicts
             WHERE user_id = :user_id AND client_sha256 = j.value AND resolved_at IS NULL
             LIMIT 1))
      FROM json_each(:shas) j
"""

# The quota: which of the sha256s in ``:shas`` user ``:user_id``'s library holds.
HELD_SQL = """
    SELECT j.value FROM json_each(:shas) j
     WHERE EXISTS (SELECT 1 FROM entries
                    WHERE sha256 = j.value AND user_id = :user_id AND deleted = 0)
        OR EXISTS (SELECT 1 FROM conflicts
                    WHERE client_sha256 = j.value AND user_id = :user_id
                      AND resolved_at IS NULL)
"""

# Backups and ``check``: every row that names content, as (table, sha256,
# size), including the blob rows themselves. The sessions counted here are the
# instant ones (their content was held when they opened); those with a spool
# file are ``COMPLETING`` in ``sync.backup``. ``REVISION_MENTIONS_SQL`` is
# appended for a database that has the revisions table (a backup made before
# history has none).
MENTIONS_SQL = """
    SELECT 'blobs' AS t, sha256 AS sha256, size AS size FROM blobs
    UNION ALL
    SELECT 'entries', sha256, size FROM entries
     WHERE deleted = 0 AND sha256 IS NOT NULL
    UNION ALL
    SELECT 'conflicts', client_sha256, client_size FROM conflicts
     WHERE resolved_at IS NULL AND client_sha256 IS NOT NULL
    UNION ALL
    SELECT 'conflicts', server_sha256, server_size FROM conflicts
     WHERE resolved_at IS NULL AND server_sha256 IS NOT NULL
    UNION ALL
    SELECT 'uploads', sha256, size FROM uploads WHERE instant = 1 AND state = 'open'
"""
REVISION_MENTIONS_SQL = """
    UNION ALL
    SELECT 'revisions', sha256, size FROM revisions WHERE sha256 IS NOT NULL
"""

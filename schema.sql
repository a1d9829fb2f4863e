-- The database schema: the source of truth for sync/models.py.
-- Applied at start-up to a new database; PRAGMA user_version records the
-- schema version so that later versions can migrate an existing file.
-- Timestamps are ISO 8601 UTC text ("2026-11-27T04:32:41Z"), so they sort.

-- Server-wide values: 'db_id' (random, carried in every cursor so a cursor
-- from another or a restored database is recognised) and 'rev' (the last
-- revision handed out; one counter for the whole server).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT,                        -- NULL: token-only user
    horizon_rev   INTEGER NOT NULL DEFAULT 0,  -- tombstones up to this rev are purged
    created_at    TEXT NOT NULL,
    tokens_revoked_at REAL                     -- user tokens with an earlier iat are 401
);

CREATE TABLE IF NOT EXISTS devices (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    platform      TEXT,
    token_version INTEGER NOT NULL DEFAULT 1,  -- the `ver` claim a token must carry
    acked_rev     INTEGER,                     -- NULL until the first ack
    acked_at      TEXT,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT,
    -- SHA-256 (hex) of the device's WebDAV app password; NULL: none. The
    -- password is random (over 100 bits), so a fast hash is enough.
    app_password_hash TEXT
);
CREATE INDEX IF NOT EXISTS devices_user ON devices (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS devices_app_password ON devices (app_password_hash);

-- One row per library path of a user: its latest state (a tombstone when
-- deleted). `rev` is unique server-wide; the feed reads (user_id, rev).
CREATE TABLE IF NOT EXISTS entries (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,                  -- NFC, validated
    fold       TEXT NOT NULL,                  -- path.casefold(), for case clashes
    rev        INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    size       INTEGER,                        -- NULL on a tombstone
    sha256     TEXT,                           -- NULL on a tombstone
    mtime      INTEGER,                        -- NULL on a tombstone
    device_id  TEXT,                           -- the device that made the change
    moved_from TEXT,                           -- set on the put half of a move
    changed_at TEXT NOT NULL,
    UNIQUE (user_id, path)
);
CREATE UNIQUE INDEX IF NOT EXISTS entries_user_rev ON entries (user_id, rev);
CREATE INDEX IF NOT EXISTS entries_user_fold ON entries (user_id, fold);
-- (sha256, user_id): whether one user, or anyone, still refers to a content.
CREATE INDEX IF NOT EXISTS entries_sha256 ON entries (sha256, user_id);
-- The tombstones in revision order, for the purge.
CREATE INDEX IF NOT EXISTS entries_tombstones ON entries (user_id, rev) WHERE deleted = 1;

CREATE TABLE IF NOT EXISTS conflicts (
    id               TEXT PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path             TEXT NOT NULL,
    kind             TEXT NOT NULL
                     CHECK (kind IN ('modify_modify', 'delete_modify', 'move', 'case_clash')),
    created_at       TEXT NOT NULL,
    server_rev       INTEGER,
    server_op        TEXT,
    server_sha256    TEXT,
    server_size      INTEGER,
    server_mtime     INTEGER,
    server_device_id TEXT,
    client_op        TEXT NOT NULL,
    client_sha256    TEXT,
    client_size      INTEGER,
    client_mtime     INTEGER,
    client_device_id TEXT,
    client_to        TEXT,
    resolution       TEXT,
    resolved_at      TEXT
);
CREATE INDEX IF NOT EXISTS conflicts_user ON conflicts (user_id, resolved_at);
CREATE INDEX IF NOT EXISTS conflicts_client_sha256 ON conflicts (client_sha256, user_id)
    WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS conflicts_server_sha256 ON conflicts (server_sha256)
    WHERE resolved_at IS NULL;

-- Content the server holds in blobs/ab/<sha256>. A row is written only
-- after the file has been renamed into place and its directory fsynced.
CREATE TABLE IF NOT EXISTS blobs (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS uploads (
    id                 TEXT PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id          TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    path               TEXT NOT NULL,
    size               INTEGER NOT NULL,
    sha256             TEXT NOT NULL,
    base_rev           INTEGER,
    mtime              INTEGER,
    chunk_size         INTEGER NOT NULL,
    chunk_count        INTEGER NOT NULL,
    state              TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completed')),
    instant            INTEGER NOT NULL DEFAULT 0,  -- content already held: no spool file
    created_at         TEXT NOT NULL,
    touched_at         TEXT NOT NULL,               -- expiry counts from here
    result_status      TEXT,                        -- the answer of complete, replayed
    result_rev         INTEGER,
    result_conflict_id TEXT
);
CREATE INDEX IF NOT EXISTS uploads_user ON uploads (user_id);
CREATE INDEX IF NOT EXISTS uploads_touched ON uploads (state, touched_at);
CREATE INDEX IF NOT EXISTS uploads_open ON uploads (user_id) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS uploads_sha256 ON uploads (sha256);

-- A chunk row exists only once its bytes are written and fsynced.
CREATE TABLE IF NOT EXISTS upload_chunks (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (upload_id, idx)
) WITHOUT ROWID;

-- WebDAV (schema 2). Empty folders made with MKCOL: the library holds only
-- files, and a folder that holds one exists without a row here.
CREATE TABLE IF NOT EXISTS dav_folders (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,                  -- NFC, validated, no trailing '/'
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, path)
) WITHOUT ROWID;

-- Dead properties set with PROPPATCH, by library path (file or folder);
-- `value` is the property's XML element as UTF-8 text.
CREATE TABLE IF NOT EXISTS dav_properties (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path    TEXT NOT NULL,
    name    TEXT NOT NULL,                     -- Clark notation: {namespace}name
    value   TEXT NOT NULL,
    PRIMARY KEY (user_id, path, name)
) WITHOUT ROWID;

-- History (schema 3): one row per revision of a path, the head included, written
-- in the same transaction as the change to `entries`. `rev` is the change's
-- server-wide revision. `replaced_at` is set when a newer revision of the
-- same path is made: a revision's age for retention counts from then (from
-- `changed_at` for a deletion nothing replaced). A live path's head
-- (replaced_at NULL, deleted 0) is never expired.
CREATE TABLE IF NOT EXISTS revisions (
    rev         INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    size        INTEGER,                       -- NULL on a delete
    sha256      TEXT,                          -- NULL on a delete
    mtime       INTEGER,                       -- NULL on a delete
    device_id   TEXT,                          -- the device that made it (kept when deleted)
    moved_from  TEXT,                          -- the put half of a move
    moved_to    TEXT,                          -- the delete half of a move
    changed_at  TEXT NOT NULL,
    replaced_at TEXT
);
CREATE INDEX IF NOT EXISTS revisions_user_path ON revisions (user_id, path, rev);
CREATE INDEX IF NOT EXISTS revisions_sha256 ON revisions (sha256) WHERE sha256 IS NOT NULL;
-- The revisions retention may expire, by the time their age counts from.
CREATE INDEX IF NOT EXISTS revisions_aging ON revisions (COALESCE(replaced_at, changed_at))
    WHERE replaced_at IS NOT NULL OR deleted = 1;
-- The trash: deletions that are still their path's newest revision.
CREATE INDEX IF NOT EXISTS revisions_trash ON revisions (user_id, rev)
    WHERE deleted = 1 AND replaced_at IS NULL;

-- Maintained figures (schema 4): each is changed in the same write transaction as the
-- change that moves it, so that no request counts the library. `app.py
-- check` recounts them and `check --repair` rewrites them.
-- `entries`: the user's rows in entries (tombstones included); `bytes`: the
-- size of each distinct content the user's live entries and unresolved
-- conflicts' client side hold, counted once (what --quota limits).
-- (schema 7) `files`: live entries; `open_conflicts`: unresolved conflicts
-- (the web page's overview).
CREATE TABLE IF NOT EXISTS user_counts (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    entries INTEGER NOT NULL DEFAULT 0,
    bytes   INTEGER NOT NULL DEFAULT 0,
    files   INTEGER NOT NULL DEFAULT 0,
    open_conflicts INTEGER NOT NULL DEFAULT 0
);
-- The user's entries whose rev is at or before the device's acked cursor;
-- pending_changes = user_counts.entries - acked_entries. No row: 0.
CREATE TABLE IF NOT EXISTS device_counts (
    device_id     TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    acked_entries INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- Content that may have lost its last reference, queued as it happens; the
-- clean-up checks each against what still refers to content and removes
-- the blob when nothing does.
CREATE TABLE IF NOT EXISTS blob_queue (
    sha256    TEXT PRIMARY KEY,
    queued_at TEXT NOT NULL
) WITHOUT ROWID;

-- The web page (schema 5, SPEC §11). A session is found by the SHA-256 of its cookie
-- value (the value itself is never stored); `csrf` is the token every form
-- and script of that session sends back; `flash` the one message the next
-- page shows. Sessions end at `expires_at` (login + --token-ttl) or logout.
CREATE TABLE IF NOT EXISTS web_sessions (
    id         TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    flash      TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user_id);
CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions (expires_at);

-- The device the web page acts for when it changes a user's library (an
-- upload session belongs to a device). It holds no copy of the library, so
-- its ack is kept at the newest revision: it never holds back the purge of
-- tombstones nor shows changes waiting.
CREATE TABLE IF NOT EXISTS web_devices (
    user_id   INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL UNIQUE REFERENCES devices (id) ON DELETE CASCADE
);

"""peewee models mirroring ``schema.sql`` (the schema is the source of truth;
``tests/test_schema.py`` fails when the two drift), and the rule for when
code uses them.

Models vs named SQL:

- Row-at-a-time reads and writes of users, devices, upload sessions, their
  chunks and blob rows use these models (``Device.get_or_none(...)``,
  ``Upload.update(...).where(...)``).
- Set-based and hot queries (the feed, a report's batch of entries, the
  clean-up, counts, backups, "which content is still referenced") are SQL:
  a named module-level constant, triple-quoted when it is long, with named
  parameters, run through ``sync.db.database.execute_sql`` (or a sqlite3
  connection in ``sync.backup``/``sync.check``). A part that varies (the
  placeholders of an ``IN`` list, an optional condition) is a ``{slot}`` in
  the constant, filled only with fixed text (``sync.db.named_list`` for an
  ``IN`` list); values are always bound parameters. Every query that asks
  which content is still referenced is one of the variants in
  ``sync.references`` (``CONTENT_REFERENCED_SQL`` and those beside it).
- Never both on one table in one function: a function that needs SQL for a
  table uses SQL for every statement on that table.
"""

import peewee

from .db import database


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Meta(BaseModel):
    """Server-wide key/value pairs: ``db_id`` and the revision counter ``rev``."""

    key = peewee.TextField(primary_key=True)
    value = peewee.TextField()

    class Meta:
        table_name = "meta"
        without_rowid = True


class User(BaseModel):
    """An account. Created by ``app.py user add`` or by the first valid token
    naming it; ``horizon_rev`` is the newest purged tombstone's revision;
    user tokens issued (``iat``) before ``tokens_revoked_at`` are refused."""

    id = peewee.AutoField()
    name = peewee.TextField(unique=True)
    password_hash = peewee.TextField(null=True)
    horizon_rev = peewee.IntegerField(default=0)
    created_at = peewee.TextField()
    tokens_revoked_at = peewee.FloatField(null=True)

    class Meta:
        table_name = "users"


class Device(BaseModel):
    """A registered device of a user. Its tokens carry ``token_version``;
    bumping it (or deleting the row) kills them."""

    id = peewee.TextField(primary_key=True)
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    name = peewee.TextField()
    platform = peewee.TextField(null=True)
    token_version = peewee.IntegerField(default=1)
    acked_rev = peewee.IntegerField(null=True)
    acked_at = peewee.TextField(null=True)
    created_at = peewee.TextField()
    last_seen_at = peewee.TextField(null=True)
    app_password_hash = peewee.TextField(null=True)

    class Meta:
        table_name = "devices"


class Entry(BaseModel):
    """The latest state of one library path of a user (a tombstone when
    ``deleted``). ``rev`` is unique server-wide and orders the feed."""

    id = peewee.AutoField()
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    path = peewee.TextField()
    fold = peewee.TextField()
    rev = peewee.IntegerField()
    deleted = peewee.IntegerField(default=0)
    size = peewee.IntegerField(null=True)
    sha256 = peewee.TextField(null=True)
    mtime = peewee.IntegerField(null=True)
    device_id = peewee.TextField(null=True)
    moved_from = peewee.TextField(null=True)
    changed_at = peewee.TextField()

    class Meta:
        table_name = "entries"


class Conflict(BaseModel):
    """A change a device made that could not become the head, kept with both
    sides until someone resolves it."""

    id = peewee.TextField(primary_key=True)
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    path = peewee.TextField()
    kind = peewee.TextField()
    created_at = peewee.TextField()
    server_rev = peewee.IntegerField(null=True)
    server_op = peewee.TextField(null=True)
    server_sha256 = peewee.TextField(null=True)
    server_size = peewee.IntegerField(null=True)
    server_mtime = peewee.IntegerField(null=True)
    server_device_id = peewee.TextField(null=True)
    client_op = peewee.TextField()
    client_sha256 = peewee.TextField(null=True)
    client_size = peewee.IntegerField(null=True)
    client_mtime = peewee.IntegerField(null=True)
    client_device_id = peewee.TextField(null=True)
    client_to = peewee.TextField(null=True)
    resolution = peewee.TextField(null=True)
    resolved_at = peewee.TextField(null=True)

    class Meta:
        table_name = "conflicts"


class Blob(BaseModel):
    """Content held in ``blobs/ab/<sha256>``; the row is written only after
    the file is durably in place."""

    sha256 = peewee.TextField(primary_key=True)
    size = peewee.IntegerField()
    created_at = peewee.TextField()

    class Meta:
        table_name = "blobs"
        without_rowid = True


class Upload(BaseModel):
    """A resumable upload session with one spool file ``spool/<id>``
    (none when ``instant``: the content was already held)."""

    id = peewee.TextField(primary_key=True)
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    device = peewee.ForeignKeyField(Device, column_name="device_id", on_delete="CASCADE")
    path = peewee.TextField()
    size = peewee.IntegerField()
    sha256 = peewee.TextField()
    base_rev = peewee.IntegerField(null=True)
    mtime = peewee.IntegerField(null=True)
    chunk_size = peewee.IntegerField()
    chunk_count = peewee.IntegerField()
    state = peewee.TextField(default="open")
    instant = peewee.IntegerField(default=0)
    created_at = peewee.TextField()
    touched_at = peewee.TextField()
    result_status = peewee.TextField(null=True)
    result_rev = peewee.IntegerField(null=True)
    result_conflict_id = peewee.TextField(null=True)

    class Meta:
        table_name = "uploads"


class UploadChunk(BaseModel):
    """A chunk whose bytes are written and fsynced in the session's spool file."""

    upload = peewee.ForeignKeyField(Upload, column_name="upload_id", on_delete="CASCADE")
    idx = peewee.IntegerField()
    size = peewee.IntegerField()

    class Meta:
        table_name = "upload_chunks"
        primary_key = peewee.CompositeKey("upload", "idx")
        without_rowid = True


class DavFolder(BaseModel):
    """An empty folder made over WebDAV (MKCOL); folders holding files need none."""

    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    path = peewee.TextField()
    created_at = peewee.TextField()

    class Meta:
        table_name = "dav_folders"
        primary_key = peewee.CompositeKey("user", "path")
        without_rowid = True


class DavProperty(BaseModel):
    """A WebDAV dead property of a file or folder, set with PROPPATCH."""

    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    path = peewee.TextField()
    name = peewee.TextField()
    value = peewee.TextField()

    class Meta:
        table_name = "dav_properties"
        primary_key = peewee.CompositeKey("user", "path", "name")
        without_rowid = True


class Revision(BaseModel):
    """One revision of a library path (a put or a delete), the head included,
    kept under the retention rule of ``sync.history``."""

    rev = peewee.IntegerField(primary_key=True)
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    path = peewee.TextField()
    deleted = peewee.IntegerField(default=0)
    size = peewee.IntegerField(null=True)
    sha256 = peewee.TextField(null=True)
    mtime = peewee.IntegerField(null=True)
    device_id = peewee.TextField(null=True)
    moved_from = peewee.TextField(null=True)
    moved_to = peewee.TextField(null=True)
    changed_at = peewee.TextField()
    replaced_at = peewee.TextField(null=True)

    class Meta:
        table_name = "revisions"


class UserCount(BaseModel):
    """Maintained figures of a user: rows in ``entries``, bytes of distinct
    content held (the quota's usage), live files and open conflicts; see
    ``sync.counts``."""

    user = peewee.ForeignKeyField(User, column_name="user_id", primary_key=True,
                                  on_delete="CASCADE")
    entries = peewee.IntegerField(default=0)
    bytes = peewee.IntegerField(default=0)
    files = peewee.IntegerField(default=0)
    open_conflicts = peewee.IntegerField(default=0)

    class Meta:
        table_name = "user_counts"


class DeviceCount(BaseModel):
    """How many of its user's entries a device has acknowledged (rev at or
    before its acked cursor); see ``sync.counts``."""

    device = peewee.ForeignKeyField(Device, column_name="device_id", primary_key=True,
                                    on_delete="CASCADE")
    acked_entries = peewee.IntegerField(default=0)

    class Meta:
        table_name = "device_counts"
        without_rowid = True


class BlobQueue(BaseModel):
    """Content that may have lost its last reference, for the clean-up."""

    sha256 = peewee.TextField(primary_key=True)
    queued_at = peewee.TextField()

    class Meta:
        table_name = "blob_queue"
        without_rowid = True


class WebSession(BaseModel):
    """A browser's login to the web page, found by the SHA-256 of its cookie;
    ``csrf`` must come back with every change it asks for."""

    id = peewee.TextField(primary_key=True)
    user = peewee.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    csrf = peewee.TextField()
    created_at = peewee.TextField()
    expires_at = peewee.TextField()
    flash = peewee.TextField(null=True)

    class Meta:
        table_name = "web_sessions"
        without_rowid = True


class WebDevice(BaseModel):
    """The device a user's web page acts for when it changes the library."""

    user = peewee.ForeignKeyField(User, column_name="user_id", primary_key=True,
                                  on_delete="CASCADE")
    device = peewee.ForeignKeyField(Device, column_name="device_id", unique=True,
                                    on_delete="CASCADE")

    class Meta:
        table_name = "web_devices"


ALL_MODELS = (Meta, User, Device, Entry, Conflict, Blob, Upload, UploadChunk, DavFolder,
              DavProperty, Revision, UserCount, DeviceCount, BlobQueue, WebSession, WebDevice)

"""The WsgiDAV provider over the library: ``/files/{user}/`` is the root of
the authenticated user's library, folders are collections and files are
resources. Reads come from the entries (and ``dav_folders``); every write
calls ``sync.tree``, which goes through the library's unit of work.

A request's context (``environ["sync.dav"]``, a ``Context``) carries the
user, the device the app password belongs to, and what the request has
already read, so a PROPFIND of a large folder reads each thing once.
"""

import mimetypes
import unicodedata

from wsgidav import util, xml_tools
from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    DAVError,
    PRECONDITION_CODE_ProtectedProperty,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.util import etree

from .. import blobs, errors, paths, tree
from ..runtime import parse_iso

FILES = "files"
LOCK_PROPERTIES = ("{DAV:}lockdiscovery", "{DAV:}supportedlock")


class Context:
    """What one WebDAV request knows: who, for which device, and caches."""

    def __init__(self, rt, user, device):
        self.rt = rt
        self.user = user
        self.device = device
        self.props = {}
        self.usage = None
        self.created = False

    def dead_properties(self, path):
        if path not in self.props:
            self.props.update(tree.properties(self.user.id, [path]))
        return self.props[path]

    def quota(self):
        if self.usage is None:
            self.usage = tree.usage(self.rt, self.user.id)
        return self.usage


def dav_error(exc):
    """A ``SyncError`` of the services as the DAVError WsgiDAV answers with."""
    return DAVError(exc.status, context_info=exc.description)


def library_path(path):
    """The library path of a share-relative path ``/files/{user}/a/b``
    (NFC, as the library stores it; macOS sends NFD)."""
    return unicodedata.normalize("NFC", "/".join(p for p in path.split("/") if p))


class _Props:
    """Properties shared by files and folders: a quoted ``getetag``, dead
    properties in SQLite, and protected live and lock properties."""

    lib_path = None

    @property
    def ctx(self):
        return self.environ["sync.dav"]

    def get_property_names(self, *, is_allprop):
        names = super().get_property_names(is_allprop=is_allprop)
        if self.lib_path is not None:
            names.extend(self.ctx.dead_properties(self.lib_path))
        return names

    def get_property_value(self, name):
        if name == "{DAV:}getetag":
            etag = self.get_etag()
            if etag is None:
                raise DAVError(HTTP_NOT_FOUND)
            return f'"{etag}"'
        if name.startswith("{DAV:}") or self.lib_path is None:
            return super().get_property_value(name)
        value = self.ctx.dead_properties(self.lib_path).get(name)
        if value is None:
            raise DAVError(HTTP_NOT_FOUND)
        return xml_tools.string_to_xml(value)

    def set_property_value(self, name, value, *, dry_run=False):
        if name.startswith("{DAV:}") or name in LOCK_PROPERTIES or self.lib_path is None:
            raise DAVError(HTTP_FORBIDDEN, err_condition=PRECONDITION_CODE_ProtectedProperty)
        if dry_run:
            return
        text = None if value is None else etree.tostring(value, encoding="unicode")
        try:
            tree.set_property(self.ctx.user.id, self.lib_path, name, text)
        except errors.SyncError as exc:  # a full disk: 507 for that property
            raise dav_error(exc) from None
        self.ctx.props.pop(self.lib_path, None)

    # -- writes shared by files and folders ------------------------------------------

    def _target(self, dest_path):
        """The library path of a MOVE/COPY destination in the same user's root."""
        parts = [p for p in dest_path.split("/") if p]
        if len(parts) < 3 or parts[0] != FILES or parts[1] != self.ctx.user.name:
            raise DAVError(HTTP_FORBIDDEN, context_info="The destination must be in your library.")
        target = library_path("/".join(parts[2:]))
        try:
            return tree.library_path(target)
        except errors.SyncError as exc:
            raise dav_error(exc) from None

    def _check_locks(self, depth):
        lock_man = self.provider.lock_manager
        if "wsgidav.conditions.if" not in self.environ:
            util.parse_if_header_dict(self.environ)
        lock_man.check_write_permission(
            url=self.get_ref_url(), depth=depth,
            token_list=self.environ["wsgidav.ifLockTokenList"],
            principal=self.environ["wsgidav.user_name"])

    def _forget_locks(self):
        self.provider.lock_manager.remove_all_locks_from_url(self.get_ref_url(), recursive=True)

    def handle_delete(self):
        self._check_locks("infinity" if self.is_collection else "0")
        try:
            tree.delete(self.ctx.rt, self.ctx.user.id, self.ctx.device.id, self.lib_path)
        except errors.SyncError as exc:
            raise dav_error(exc) from None
        self._forget_locks()
        return True

    def handle_move(self, dest_path):
        target = self._target(dest_path)
        overwrite = self.environ.get("HTTP_OVERWRITE", "T") == "T"
        try:
            result = tree.move(self.ctx.rt, self.ctx.user.id, self.ctx.device.id,
                               self.lib_path, target, overwrite)
        except errors.SyncError as exc:
            raise dav_error(exc) from None
        self._forget_locks()
        self.ctx.created = result["created"]
        return True

    def handle_copy(self, dest_path, *, depth_infinity):
        target = self._target(dest_path)
        overwrite = self.environ.get("HTTP_OVERWRITE", "T") == "T"
        try:
            result = tree.copy(self.ctx.rt, self.ctx.user.id, self.ctx.device.id,
                               self.lib_path, target, overwrite, depth_infinity)
        except errors.SyncError as exc:
            raise dav_error(exc) from None
        self.ctx.created = result["created"]
        return True


class File(_Props, DAVNonCollection):
    """A live file of the library: a row of ``entries``."""

    def __init__(self, path, environ, row):
        super().__init__(path, environ)
        self.lib_path, self.sha256, self.size, self.mtime, self.changed_at, self.rev = row

    def get_content_length(self):
        return self.size

    def get_content_type(self):
        return mimetypes.guess_type(self.lib_path)[0] or "application/octet-stream"

    def get_creation_date(self):
        return parse_iso(self.changed_at)

    def get_display_name(self):
        return self.lib_path.rsplit("/", 1)[-1]

    def get_etag(self):
        return self.sha256

    def get_last_modified(self):
        return self.mtime if self.mtime is not None else parse_iso(self.changed_at)

    def support_etag(self):
        return True

    def support_ranges(self):
        return True

    def get_content(self):
        return open(blobs.blob_path(self.ctx.rt.config, self.sha256), "rb")

    def blob_path(self):
        return blobs.blob_path(self.ctx.rt.config, self.sha256)


class Folder(_Props, DAVCollection):
    """A folder of the library: the root, a folder holding files, or an
    empty folder made with MKCOL."""

    def __init__(self, path, environ, lib_path, created_at=None):
        super().__init__(path, environ)
        self.lib_path = lib_path
        self.created_at = created_at
        self._members = None

    def get_display_name(self):
        return self.lib_path.rsplit("/", 1)[-1] if self.lib_path else self.ctx.user.name

    def get_creation_date(self):
        return parse_iso(self.created_at) if self.created_at else None

    def get_last_modified(self):
        return self.get_creation_date()

    def get_used_bytes(self):
        return self.ctx.quota()[0]

    def get_available_bytes(self):
        return self.ctx.quota()[1]

    def _child_path(self, name):
        return self.path.rstrip("/") + "/" + name

    def get_member_list(self):
        if self._members is None:
            files, folders = tree.children(self.ctx.user.id, self.lib_path)
            members = [Folder(self._child_path(name), self.environ,
                              (self.lib_path + "/" if self.lib_path else "") + name, created)
                       for name, created in sorted(folders.items())]
            members += [File(self._child_path(row[0].rsplit("/", 1)[-1]), self.environ, row)
                        for row in files]
            missing = [m.lib_path for m in members if m.lib_path not in self.ctx.props]
            self.ctx.props.update(tree.properties(self.ctx.user.id, missing))
            self._members = members
        return self._members

    def _member(self, item):
        """A resource of an item of ``tree.iter_children``."""
        if item[0] == "file":
            row = item[1]
            return File(self._child_path(row[0].rsplit("/", 1)[-1]), self.environ, row)
        _, name, created = item
        return Folder(self._child_path(name), self.environ,
                      (self.lib_path + "/" if self.lib_path else "") + name, created)

    def iter_members(self, batch=500):
        """The members in lists of ``batch``, each list's dead properties read
        with one query and forgotten when the next list is asked for: a
        PROPFIND of a large folder holds one list at a time, not the folder."""
        members = []
        for item in tree.iter_children(self.ctx.user.id, self.lib_path):
            members.append(self._member(item))
            if len(members) == batch:
                yield from self._with_properties(members)
                members = []
        if members:
            yield from self._with_properties(members)

    def _with_properties(self, members):
        ctx = self.ctx
        missing = [m.lib_path for m in members if m.lib_path not in ctx.props]
        ctx.props.update(tree.properties(ctx.user.id, missing))
        yield members
        for path in missing:
            ctx.props.pop(path, None)

    def get_member_names(self):
        return [m.name for m in self.get_member_list()]

    def get_member(self, name):
        return self.provider.get_resource_inst(self._child_path(name), self.environ)

    def create_collection(self, name):
        try:
            path = tree.library_path(self._join(name))
            tree.make_folder(self.ctx.rt, self.ctx.user.id, path)
        except errors.SyncError as exc:
            raise dav_error(exc) from None

    def create_empty_resource(self, name):
        """LOCK of an unmapped URL makes an empty file (RFC 4918 §9.10.4)."""
        try:
            path = tree.library_path(self._join(name))
            ctx = self.ctx
            with tree.received_body(ctx.rt, lambda n: b"", 0) as (spool_id, sha256, size):
                tree.put_file(ctx.rt, ctx.user.id, ctx.device.id, path, sha256, size,
                              int(ctx.rt.clock()), if_none_match=["*"], spool_id=spool_id)
        except errors.SyncError as exc:
            raise dav_error(exc) from None
        return self.provider.get_resource_inst(self._child_path(name), self.environ)

    def _join(self, name):
        name = unicodedata.normalize("NFC", name)
        return (self.lib_path + "/" if self.lib_path else "") + name


class Virtual(DAVCollection):
    """``/`` and ``/files/``: read-only collections leading to the user's root."""

    def __init__(self, path, environ, member):
        super().__init__(path, environ)
        self.member = member

    def get_member_names(self):
        return [self.member]

    def get_member(self, name):
        return self.provider.get_resource_inst(self.path.rstrip("/") + "/" + name, self.environ)

    def get_property_value(self, name):
        if name == "{DAV:}getetag":
            raise DAVError(HTTP_NOT_FOUND)
        return super().get_property_value(name)

    def prevent_locking(self):
        return True


class LibraryProvider(DAVProvider):
    """Resolves share-relative paths to resources of the caller's library."""

    def __init__(self, rt):
        super().__init__()
        self.rt = rt

    def is_readonly(self):
        return False

    def get_resource_inst(self, path, environ):
        ctx = environ["sync.dav"]
        parts = [p for p in path.split("/") if p]
        if not parts:
            return Virtual("/", environ, FILES)
        if parts[0] != FILES:
            return None
        if len(parts) == 1:
            return Virtual("/" + FILES, environ, ctx.user.name)
        if parts[1] != ctx.user.name:
            return None  # another user's library: as if it did not exist
        lib = library_path("/".join(parts[2:]))
        if lib:
            try:
                if paths.normalize(lib) != lib:
                    return None
            except paths.PathError:
                return None
        base = f"/{FILES}/{parts[1]}"
        full = base + ("/" + lib if lib else "")
        row = tree.file_at(ctx.user.id, lib)
        if row is not None:
            return File(full, environ, row)
        exists, created_at = tree.folder_at(ctx.user.id, lib)
        return Folder(full, environ, lib, created_at) if exists else None

"""The page's responders: each reads the form or query, calls the service
function the JSON API calls, and renders a template (or redirects, 303,
after a change, with a one-line message kept in the session)."""

import urllib.parse

import falcon

from .. import auth, conflicts, devices, errors, history, library, paths
from ..db import write
from ..resources import download, uploads
from . import form, is_https, local_target, render, sessions, views

CONFLICTS_SHOWN = 100


class Web:
    """What every page needs: the runtime, the templates and static files."""

    def __init__(self, rt):
        self.rt = rt
        self.static = render.Static()
        self.env = render.environment(self.static)
        self.env.globals.update(history=True, app_passwords=True,
                                extra_nav=[("/trash", "Trash"), ("/rewind", "Rewind")])

    def page(self, req, template, **context):
        session = req.context.get("session")
        context.setdefault("flash", sessions.take_flash(session) if session else None)
        return self.env.get_template(template).render(
            session=session, user_name=session.user_name if session else None,
            csrf=session.csrf if session else "", path=req.path, **context)


def _html(web, req, resp, template, status=falcon.HTTP_200, **context):
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.set_header("Cache-Control", "no-store")
    resp.text = web.page(req, template, **context)


def _done(req, message, location):
    """After a change: keep ``message`` for the next page and send the browser there."""
    sessions.set_flash(req.context.session, message)
    raise falcon.HTTPSeeOther(location)


def _user_id(req):
    return req.context.principal.user.id


def _folder_of(path):
    return path.rpartition("/")[0]


def _files_url(folder):
    return render.url("/files", **({"in": folder} if folder else {}))


def _path_param(req, name="path"):
    """A library path from the query or form, normalized; 400 when invalid."""
    value = req.get_param(name) if req.method == "GET" else form(req).get(name)
    return paths.normalize(value if value is not None else "")


def _rev_field(fields, name="rev"):
    value = fields.get(name, "")
    if not value.isdigit() or len(value) > 18:
        raise errors.bad_request(errors.BODY_INVALID, "The form lost track of the file's "
                                 "version: reload the page and try again.")
    return int(value)


class _Resource:
    auth = False
    web = "page"

    def __init__(self, site):
        self.site = site
        self.rt = site.rt

    def html(self, req, resp, template, status=falcon.HTTP_200, **context):
        _html(self.site, req, resp, template, status, **context)


# -- logging in and out --------------------------------------------------------

class Login(_Resource):
    web = "public"

    def on_get(self, req, resp):
        session = sessions.find(self.rt, req.cookies.get(sessions.COOKIE))
        target = local_target(req.get_param("next"))
        if session is not None:
            raise falcon.HTTPSeeOther(target)
        notice = "You are logged out." if req.get_param("bye") else None
        self.html(req, resp, "login.html", next=target, error=None, username="",
                  notice=notice)

    def on_post(self, req, resp):
        fields = form(req)
        origin = req.get_header("Origin")
        if origin and origin != "null" and urllib.parse.urlsplit(origin).netloc != req.host \
                and urllib.parse.urlsplit(origin).netloc != req.get_header("Host"):
            raise errors.forbidden("This login form did not come from this site.")
        username, password = fields.get("username", ""), fields.get("password", "")
        target = local_target(fields.get("next"))
        try:
            auth.login(self.rt, username, password, req.context.get("client") or "-")
        except errors.SyncError as exc:
            if exc.status == 401:
                exc.description = "Wrong user name or password."
            for name, value in exc.headers.items():
                if name != "WWW-Authenticate":
                    resp.set_header(name, value)
            self.html(req, resp, "login.html", status=exc.status, next=target,
                      error=exc.description, username=username, notice=None)
            return
        user = auth.ensure_user(self.rt, auth.normalize_user_name(username))
        value = sessions.open_session(self.rt, user.id)
        resp.set_cookie(sessions.COOKIE, value, max_age=self.rt.config.token_ttl, path="/",
                        secure=is_https(self.rt, req), http_only=True, same_site="Strict")
        raise falcon.HTTPSeeOther(target)


class Logout(_Resource):
    def on_post(self, req, resp):
        sessions.close(req.context.session)
        resp.unset_cookie(sessions.COOKIE, path="/")
        resp.status = falcon.HTTP_303
        resp.set_header("Location", "/login?bye=1")


# -- overview ------------------------------------------------------------------

class Overview(_Resource):
    def on_get(self, req, resp):
        figures = views.overview(_user_id(req))
        self.html(req, resp, "overview.html", figures=figures, quota=self.rt.config.quota)


# -- files ---------------------------------------------------------------------

class Files(_Resource):
    def on_get(self, req, resp):
        folder = req.get_param("in") or ""
        if folder:
            folder = paths.normalize(folder.strip("/"))
        start, inclusive = req.get_param("after"), False
        if req.get_param("from"):
            start, inclusive = req.get_param("from"), True
        items, next_start, next_inclusive = views.list_folder(
            _user_id(req), folder, start, inclusive, limit=views.PAGE_SIZE)
        if folder and not items and not start and not views.folder_exists(_user_id(req), folder):
            raise errors.not_found("This folder holds no files (it may have been moved or "
                                   "deleted).")
        next_url = None
        if next_start is not None:
            key = "from" if next_inclusive else "after"
            next_url = render.url("/files", **{"in": folder or None, key: next_start})
        crumbs, parts = [], folder.split("/") if folder else []
        for i, part in enumerate(parts):
            crumbs.append((part, "/".join(parts[:i + 1])))
        self.html(req, resp, "files.html", folder=folder, items=items, crumbs=crumbs,
                  next_url=next_url, first_url=_files_url(folder) if start else None,
                  upload_chunk=min(8 * 1024 * 1024, self.rt.config.max_chunk_size))


class FileRev(_Resource):
    """The head revision of a path as JSON, for the upload script's ``base_rev``."""

    web = "api"

    def on_get(self, req, resp):
        head = views.head(_user_id(req), _path_param(req))
        resp.media = {"rev": head.rev if head else None}


def _report_one(rt, req, item):
    """One change through the report service, as the web page's device."""
    device = views.web_device(rt, req.context.principal.user)
    return library.report(rt, _user_id(req), device.id, {"changes": [item]})["results"][0]


class Move(_Resource):
    def on_get(self, req, resp):
        path = _path_param(req)
        item = views.head(_user_id(req), path)
        if item is None:
            raise errors.not_found("There is no file at this path any more.")
        self.html(req, resp, "move.html", item=item, target=path, error=None)

    def on_post(self, req, resp):
        fields = form(req)
        path = _path_param(req)
        rev = _rev_field(fields)
        item = views.head(_user_id(req), path)
        if item is None:
            raise errors.not_found("There is no file at this path any more.")
        target = fields.get("to", "").strip().strip("/")
        error = None
        if target == path:
            error = "The new name is the same as the old one."
        else:
            result = _report_one(self.rt, req, {"op": "move", "path": path, "to": target,
                                                "base_rev": rev})
            if result["status"] == "applied":
                _done(req, f"Moved “{path}” to “{paths.normalize(target)}”.",
                      _files_url(_folder_of(paths.normalize(target))))
            if result["status"] == "conflict":
                _done(req, f"“{path}” was not moved: it changed meanwhile or the new "
                      f"name is taken. See Conflicts.", "/conflicts")
            error = result.get("error") or "The file could not be moved."
        self.html(req, resp, "move.html", status=falcon.HTTP_400, item=item, target=target,
                  error=error)


class Delete(_Resource):
    def on_get(self, req, resp):
        path = _path_param(req)
        item = views.head(_user_id(req), path)
        if item is None:
            raise errors.not_found("There is no file at this path any more.")
        self.html(req, resp, "delete.html", item=item)

    def on_post(self, req, resp):
        fields = form(req)
        path = _path_param(req)
        result = _report_one(self.rt, req, {"op": "delete", "path": path,
                                            "base_rev": _rev_field(fields)})
        if result["status"] == "conflict":
            _done(req, f"“{path}” was not deleted: it changed on another device "
                  f"meanwhile. See Conflicts.", "/conflicts")
        _done(req, f"Deleted “{path}”.", _files_url(_folder_of(path)))


class Download(download.Download):
    """The download of §5 for the page: a file, always as an attachment, so
    a stored HTML or script file never runs as part of this site."""

    auth = False
    web = "page"

    def _answer(self, req, resp, path, send_body):
        super()._answer(req, resp, path, send_body)
        if resp.status in (falcon.HTTP_200, falcon.HTTP_206, 200, 206):
            name = path.rpartition("/")[2]
            resp.content_type = "application/octet-stream"
            resp.set_header("Content-Disposition",
                            "attachment; filename*=UTF-8''" + urllib.parse.quote(name, safe=""))
            resp.set_header("Content-Security-Policy",
                            "default-src 'none'; sandbox; frame-ancestors 'none'")


# The chunked upload API of §5, served to the page's script with the session
# cookie, acting for the web page's device.

class UploadCollection(uploads.Collection):
    auth, web, acts = False, "api", True


class UploadItem(uploads.Item):
    auth, web, acts = False, "api", True


class UploadChunk(uploads.Chunk):
    auth, web, acts = False, "api", True


class UploadComplete(uploads.Complete):
    auth, web, acts = False, "api", True


# -- devices -------------------------------------------------------------------

def _device_list(rt, req):
    return devices.list_devices(rt, req.context.principal)["devices"]


class Devices(_Resource):
    def on_get(self, req, resp):
        self.html(req, resp, "devices.html", devices=_device_list(self.rt, req),
                  web_device_id=views.web_device_id(_user_id(req)), error=None, name="",
                  platform="")

    def on_post(self, req, resp):
        fields = form(req)
        name, platform = fields.get("name", "").strip(), fields.get("platform", "").strip()
        try:
            with write():  # the device and its app password, or neither
                record = devices.register(self.rt, req.context.principal,
                                          {"name": name, "platform": platform or None})
                record["app_password_value"] = devices.set_app_password(
                    self.rt, req.context.principal, record["id"])["app_password"]
        except errors.SyncError as exc:
            self.html(req, resp, "devices.html", status=falcon.HTTP_400,
                      devices=_device_list(self.rt, req),
                      web_device_id=views.web_device_id(_user_id(req)),
                      error=exc.description, name=name, platform=platform)
            return
        self.html(req, resp, "device_added.html", device=record, token=True,
                  **_addresses(self.rt, req))


def _addresses(rt, req):
    """The server's address as this browser reaches it, and the WebDAV root."""
    scheme = "https" if is_https(rt, req) else "http"
    host = req.get_header("Host") or req.host
    user = urllib.parse.quote(req.context.session.user_name, safe="")
    return {"server_url": f"{scheme}://{host}",
            "dav_url": f"{scheme}://{host}/dav/files/{user}/"}


def _own_device(rt, req, device_id):
    return devices.get(rt, req.context.principal, device_id or "")


class RenameDevice(_Resource):
    def on_get(self, req, resp):
        device = _own_device(self.rt, req, req.get_param("id"))
        self.html(req, resp, "device_rename.html", device=device, name=device["name"],
                  error=None)

    def on_post(self, req, resp):
        fields = form(req)
        device = _own_device(self.rt, req, fields.get("id"))
        name = fields.get("name", "").strip()
        try:
            devices.update(self.rt, req.context.principal, device["id"], {"name": name})
        except errors.SyncError as exc:
            self.html(req, resp, "device_rename.html", status=falcon.HTTP_400, device=device,
                      name=name, error=exc.description)
            return
        _done(req, f"Renamed “{device['name']}” to “{name}”.", "/devices")


class RemoveDevice(_Resource):
    def on_get(self, req, resp):
        self.html(req, resp, "device_remove.html",
                  device=_own_device(self.rt, req, req.get_param("id")))

    def on_post(self, req, resp):
        device = _own_device(self.rt, req, form(req).get("id"))
        devices.delete(self.rt, req.context.principal, device["id"])
        _done(req, f"Removed “{device['name']}”: its token no longer works.", "/devices")


class AppPassword(_Resource):
    """A new app password for a device (shown once), or its removal."""

    def on_get(self, req, resp):
        self.html(req, resp, "app_password.html",
                  device=_own_device(self.rt, req, req.get_param("id")))

    def on_post(self, req, resp):
        fields = form(req)
        device = _own_device(self.rt, req, fields.get("id"))
        if fields.get("action") == "remove":
            devices.remove_app_password(self.rt, req.context.principal, device["id"])
            _done(req, f"“{device['name']}” has no app password any more.", "/devices")
        if fields.get("action") != "new":
            raise errors.bad_request(errors.BODY_INVALID, "Choose to make a new app password "
                                     "or to remove it.")
        device["app_password_value"] = devices.set_app_password(
            self.rt, req.context.principal, device["id"])["app_password"]
        self.html(req, resp, "device_added.html", device=device, token=False,
                  **_addresses(self.rt, req))


# -- conflicts -----------------------------------------------------------------

KIND_WORDS = {
    "modify_modify": "{client} and the server both have a changed version of this file.",
    "delete_modify": "{client} deleted this file, but it was changed elsewhere meanwhile.",
    "move": "{client} moved this file to “{to}”, but it changed meanwhile or that name "
            "was taken.",
    "case_clash": "{client} made this file, whose name differs only in upper and lower "
                  "case from another one; some devices cannot hold both.",
}


def _conflict_view(conflict, names, changed_at):
    client = conflict["client"]
    server = conflict["server"]
    client_name = names.get(client["device_id"], "A removed device")
    server_name = names.get(server["device_id"], "a removed device") \
        if server["device_id"] else "no device"
    return {
        "id": conflict["id"], "path": conflict["path"], "kind": conflict["kind"],
        "created_at": conflict["created_at"],
        "summary": KIND_WORDS[conflict["kind"]].format(client=client_name,
                                                      to=client.get("to") or ""),
        "client_name": client_name, "server_name": server_name, "server": server,
        "client": client, "server_changed_at": changed_at.get(server["rev"]),
    }


class Conflicts(_Resource):
    def on_get(self, req, resp):
        user_id = _user_id(req)
        names = views.device_names(user_id)
        shown = []
        for conflict in conflicts.iter_conflicts(self.rt, user_id):
            shown.append(conflict)
            if len(shown) > CONFLICTS_SHOWN:
                break
        more = len(shown) > CONFLICTS_SHOWN
        shown = shown[:CONFLICTS_SHOWN]
        changed_at = views.changed_at(user_id, [c["server"]["rev"] for c in shown])
        self.html(req, resp, "conflicts.html", more=more, limit=CONFLICTS_SHOWN,
                  conflicts=[_conflict_view(c, names, changed_at) for c in shown])


class Resolve(_Resource):
    def on_post(self, req, resp):
        fields = form(req)
        conflict_id = fields.get("id", "")
        resolution = fields.get("resolution", "")
        result = conflicts.resolve(self.rt, _user_id(req), conflict_id,
                                 {"resolution": resolution})
        path = result["conflict"]["path"]
        words = {"keep_server": "kept the server's version",
                 "keep_client": "kept the device's version",
                 "keep_both": "kept both versions"}[resolution]
        saved = [c["path"] for c in result["results"] if c["op"] == "put" and c["path"] != path]
        extra = f" The other version is now “{saved[-1]}”." if resolution == "keep_both" \
            and saved else ""
        _done(req, f"“{path}”: {words}.{extra}", "/conflicts")


# -- history, trash and rewind ---------------------------------------------------

def _web_device_id(rt, req):
    return views.web_device(rt, req.context.principal.user).id


def _restored(result, when):
    path = result["path"]
    if result["status"] == "unchanged":
        return f"“{path}” already was that version: nothing changed."
    return f"Restored “{path}” to its version of {when}."


class History(_Resource):
    def on_get(self, req, resp):
        path = _path_param(req)
        page = history.history(self.rt, _user_id(req), path, req.get_param("cursor"),
                               req.get_param("limit"))
        head = views.head(_user_id(req), path)
        next_url = render.url("/history", path=path, cursor=page["cursor"]) \
            if page["has_more"] else None
        self.html(req, resp, "history.html", file_path=path, page=page, next_url=next_url,
                  head_rev=head.rev if head else None, first=not req.get_param("cursor"))


def _restore(site, req, fields):
    rev = _rev_field(fields)
    path = _path_param(req)
    result = history.restore(site.rt, _user_id(req), _web_device_id(site.rt, req),
                             {"path": path, "rev": rev})
    return path, result


class Restore(_Resource):
    """Restore a revision from a file's history page."""

    def on_post(self, req, resp):
        fields = form(req)
        path, result = _restore(self.site, req, fields)
        _done(req, _restored(result, render.when(fields.get("when"))),
              render.url("/history", path=path))


class Trash(_Resource):
    def on_get(self, req, resp):
        prefix = (req.get_param("prefix") or "").strip("/") or None
        page = history.trash(self.rt, _user_id(req), prefix, req.get_param("cursor"),
                             req.get_param("limit"))
        next_url = render.url("/trash", prefix=prefix, cursor=page["cursor"]) \
            if page["has_more"] else None
        self.html(req, resp, "trash.html", page=page, prefix=prefix or "", next_url=next_url)


class TrashRestore(_Resource):
    def on_post(self, req, resp):
        fields = form(req)
        path, result = _restore(self.site, req, fields)
        _done(req, f"Restored “{path}”." if result["status"] == "applied"
              else f"“{path}” is already there: nothing changed.",
              render.url("/trash", prefix=fields.get("prefix") or None))


def _rewind_body(req, fields, dry_run):
    """The rewind's request from the form: a point in time (UTC), optionally
    a folder and a device."""
    at = fields.get("at", "").strip()
    body = {"at": at + ("" if at.endswith("Z") or len(at) > 19 else "Z") if at else "",
            "dry_run": dry_run}
    if fields.get("prefix", "").strip().strip("/"):
        body["prefix"] = fields["prefix"].strip().strip("/")
    if fields.get("device_id"):
        body["device_id"] = fields["device_id"]
    return body


class Rewind(_Resource):
    def _form(self, req, resp, status=falcon.HTTP_200, **context):
        values = {"at": "", "prefix": "", "device_id": "", "preview": None, "error": None}
        values.update(context)
        self.html(req, resp, "rewind.html", status=status,
                  devices=_device_list(self.rt, req), **values)

    def on_get(self, req, resp):
        hour_ago = self.rt.clock() - 3600
        self._form(req, resp, at=render.when(hour_ago).replace(" UTC", "").replace(" ", "T"),
                   prefix=req.get_param("prefix") or "")

    def on_post(self, req, resp):
        fields = form(req)
        values = {k: fields.get(k, "") for k in ("at", "prefix", "device_id")}
        try:
            preview = history.rewind(self.rt, _user_id(req), None,
                                     _rewind_body(req, fields, dry_run=True))
        except (errors.SyncError, paths.PathError) as exc:
            self._form(req, resp, status=falcon.HTTP_400, error=getattr(
                exc, "description", str(exc)), **values)
            return
        self._form(req, resp, preview=preview, **values)


class RewindApply(_Resource):
    def on_post(self, req, resp):
        fields = form(req)
        result = history.rewind(self.rt, _user_id(req), _web_device_id(self.rt, req),
                                _rewind_body(req, fields, dry_run=False))
        _done(req, f"Rewound {render.plural(result['count'], 'file')} to "
              f"{fields.get('at', '').replace('T', ' ')} UTC." if result["count"]
              else "Nothing needed to change.", "/")


# -- static files --------------------------------------------------------------

class Static:
    auth = False
    web = "public"

    def __init__(self, site):
        self.static = site.static

    def on_get(self, req, resp, name):
        found = self.static.files.get(name)
        if found is None:
            raise errors.not_found("No such file.")
        data, content_type, digest = found
        resp.content_type = content_type
        resp.data = data
        if req.get_param("v") == digest:
            resp.set_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            resp.set_header("Cache-Control", "no-cache")


def routes(rt):
    """(template, resource) of every route of the page, and the ``Web``."""
    site = Web(rt)
    table = [
        ("/", Overview(site)),
        ("/login", Login(site)),
        ("/logout", Logout(site)),
        ("/files", Files(site)),
        ("/files/rev", FileRev(site)),
        ("/files/move", Move(site)),
        ("/files/delete", Delete(site)),
        ("/files/upload", UploadCollection(rt)),
        ("/files/upload/{upload_id}", UploadItem(rt)),
        ("/files/upload/{upload_id}/chunks/{index}", UploadChunk(rt)),
        ("/files/upload/{upload_id}/complete", UploadComplete(rt)),
        ("/download/{path:path}", Download(rt)),
        ("/devices", Devices(site)),
        ("/devices/rename", RenameDevice(site)),
        ("/devices/remove", RemoveDevice(site)),
        ("/devices/app-password", AppPassword(site)),
        ("/conflicts", Conflicts(site)),
        ("/conflicts/resolve", Resolve(site)),
        ("/history", History(site)),
        ("/history/restore", Restore(site)),
        ("/trash", Trash(site)),
        ("/trash/restore", TrashRestore(site)),
        ("/rewind", Rewind(site)),
        ("/rewind/apply", RewindApply(site)),
        ("/static/{name}", Static(site)),
    ]
    return table, site

